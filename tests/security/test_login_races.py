"""One-time things under concurrent requests, against a real daemon: a two-factor code (or a recovery code)
opens one session however many logins carry it at once, and the account lockout holds when the wrong passwords
arrive together rather than one after another.

The requests really overlap: each comes from its own thread on its own connection to the daemon's socket,
and all are released at once by a barrier.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from .conftest import Daemon, describe, is_problem, strong_password, totp_code

pytestmark = pytest.mark.docker

ACCOUNT_THRESHOLD = 5  # failed logins before an account locks (docs/accounts.md)


def _together(d: Daemon, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST each body to /v1/login at the same moment, each from a thread and a connection of its own."""
    barrier = threading.Barrier(len(bodies))

    def one(body: dict[str, Any]) -> httpx.Response:
        with httpx.Client(
            transport=httpx.HTTPTransport(uds=str(d.sock)), base_url="http://mist", timeout=120
        ) as client:
            client.get("/v1/setup").raise_for_status()  # the connection is open before the barrier
            barrier.wait()
            return client.post("/v1/login", json=body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(one, bodies))


def _account(d: Daemon) -> tuple[str, str]:
    username, password = f"race-{uuid.uuid4().hex[:8]}", strong_password()
    d.create_user(username, "developer", password)
    return username, password


def _with_two_factor(d: Daemon, username: str, password: str) -> tuple[str, list[str]]:
    """Turn on two-factor authentication for the account; its secret and recovery codes."""
    token = d.login(username, password)["token"]
    setup = d.ok("POST", "/me/totp", token=token)
    codes = d.ok("POST", "/me/totp/enable", token=token, json={"code": totp_code(setup["secret"])})
    return str(setup["secret"]), list(codes["codes"])


def _sessions(d: Daemon, token: str) -> list[dict[str, Any]]:
    return list(d.ok("GET", "/sessions", token=token))


def _one_session_among(d: Daemon, answers: list[httpx.Response]) -> dict[str, Any]:
    opened = [a for a in answers if a.status_code == 200]
    others = [a for a in answers if a.status_code != 200]
    assert len(opened) == 1, "\n".join(describe(a) for a in answers)
    for answer in others:
        assert answer.status_code in (401, 429) and is_problem(answer), describe(answer)
    return dict(opened[0].json())


def test_one_two_factor_code_sent_by_eight_concurrent_logins_opens_one_session(daemon: Daemon) -> None:
    d = daemon
    username, password = _account(d)
    secret, _ = _with_two_factor(d, username, password)
    # Enabling used the current time step; the next one is still within the accepted drift.
    code = totp_code(secret, at=time.time() + 30)
    answers = _together(d, [{"username": username, "password": password, "totp": code}] * 8)
    session = _one_session_among(d, answers)
    # The session that enabled two-factor authentication, and the one login that got through.
    assert len(_sessions(d, session["token"])) == 2
    again = d.call("POST", "/login", json={"username": username, "password": password, "totp": code})
    assert again.status_code in (401, 429) and is_problem(again), describe(again)


def test_one_recovery_code_sent_by_eight_concurrent_logins_opens_one_session(daemon: Daemon) -> None:
    d = daemon
    username, password = _account(d)
    _, recovery = _with_two_factor(d, username, password)
    answers = _together(d, [{"username": username, "password": password, "totp": recovery[0]}] * 8)
    session = _one_session_among(d, answers)
    assert len(_sessions(d, session["token"])) == 2


def test_concurrent_wrong_passwords_are_checked_at_most_up_to_the_lockout(daemon: Daemon) -> None:
    d = daemon
    username, password = _account(d)
    answers = _together(
        d, [{"username": username, "password": f"wrong-{n}-{uuid.uuid4().hex}"} for n in range(25)]
    )
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {401, 429}, "\n".join(describe(a) for a in answers)
    assert all(is_problem(a) for a in answers)
    checked = statuses.count(401)
    assert 1 <= checked <= ACCOUNT_THRESHOLD, f"{checked} wrong passwords were checked: {statuses}"
    for answer in answers:
        if answer.status_code == 429:
            assert answer.json()["code"] == "too_many_attempts", describe(answer)
    # Locked: even the right password is refused until the lock ends.
    right = d.call("POST", "/login", json={"username": username, "password": password})
    assert right.status_code == 429 and right.json()["code"] == "too_many_attempts", describe(right)
