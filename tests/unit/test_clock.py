"""Mist's clock: expiry checks read it, so moving it forward expires tokens without waiting."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mist_core import clock
from mist_core.auth.access import AccessTokens
from mist_core.credentials import RENEW_MARGIN, CredentialStore
from mist_core.errors import TokenExpired


def test_an_access_token_expires_when_the_clock_passes_its_lifetime() -> None:
    tokens = AccessTokens(secrets.token_bytes(32), timedelta(minutes=15))
    token, _ = tokens.issue(user_id=1, session_id=1)
    assert tokens.verify(token).user_id == 1
    clock.advance(timedelta(minutes=15, seconds=1))
    with pytest.raises(TokenExpired):
        tokens.verify(token)


def test_a_token_issued_by_a_clock_ahead_of_the_system_is_valid_until_it_expires() -> None:
    clock.advance(timedelta(days=3))
    tokens = AccessTokens(secrets.token_bytes(32), timedelta(seconds=60))
    token, expires = tokens.issue(user_id=7, session_id=2)
    assert expires > datetime.now(UTC) + timedelta(days=2)
    assert tokens.verify(token).user_id == 7


async def test_the_credential_store_renews_once_the_clock_nears_the_expiry(tmp_path: Path) -> None:
    tokens = AccessTokens(secrets.token_bytes(32), timedelta(minutes=15))
    token, _ = tokens.issue(user_id=1, session_id=1)
    host = "unix:///run/mist.sock"
    store = CredentialStore(tmp_path / "credentials.json")
    store.save(host, token, "ada", "refresh-1")
    renewed: list[str] = []

    async def refresh(refresh_token: str) -> Any:
        renewed.append(refresh_token)
        return SimpleNamespace(token="token-2", refresh_token="refresh-2")

    assert await store.renew(host, refresh) == (token, "refresh-1")
    assert renewed == []
    clock.advance(timedelta(minutes=15) - RENEW_MARGIN + timedelta(seconds=1))
    assert await store.renew(host, refresh) == ("token-2", "refresh-2")
    assert renewed == ["refresh-1"]


def test_a_frozen_clock_stands_still_and_moves_only_forward() -> None:
    at = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    clock.freeze(at)
    assert clock.now() == at
    clock.advance(90)
    assert clock.now() == at + timedelta(seconds=90)
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.reset()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
