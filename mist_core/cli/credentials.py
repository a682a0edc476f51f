"""The sessions the command line keeps between runs: ``credentials.json`` in the user's config directory,
one entry per host, readable by the user alone. The TUI reads and writes the same file."""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import config


def credentials_path() -> Path:
    return config.config_dir() / "credentials.json"


# The keys of an entry that belong to a login; ``forget`` drops these and keeps the rest (a pinned
# certificate, keys written by newer versions or by the TUI).
SESSION_KEYS = ("token", "refresh_token", "username")


class CredentialStore:
    """``{"<host>": {"token": ..., "refresh_token": ..., "username": ..., "certificate": ...}}``.

    ``token`` is the access token, ``refresh_token`` renews it, ``certificate`` is the PEM of a daemon's
    self-signed certificate the user chose to trust. Keys this code does not know are kept when an entry is
    rewritten. ``MIST_TOKEN`` overrides the stored token (and then no refresh token is used)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or credentials_path()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A damaged file must not lock the user out: treat it as empty; the next login rewrites it.
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _entry_of(data: dict[str, Any], host: str) -> dict[str, Any]:
        entry = data.get(host)
        return dict(entry) if isinstance(entry, dict) else {}

    def entry(self, host: str) -> dict[str, Any]:
        return self._entry_of(self._load(), host)

    def _text(self, host: str, key: str) -> str | None:
        value = self.entry(host).get(key)
        return value if isinstance(value, str) and value else None

    def token(self, host: str) -> str | None:
        if env := os.environ.get("MIST_TOKEN"):
            return env
        return self._text(host, "token")

    def refresh_token(self, host: str) -> str | None:
        """The stored refresh token, unless ``MIST_TOKEN`` chooses another identity for this run."""
        if os.environ.get("MIST_TOKEN"):
            return None
        return self._text(host, "refresh_token")

    def username(self, host: str) -> str | None:
        return self._text(host, "username")

    def certificate(self, host: str) -> str | None:
        return self._text(host, "certificate")

    def save(
        self,
        host: str,
        token: str,
        username: str,
        *,
        refresh_token: str | None = None,
        certificate: str | None = None,
    ) -> None:
        """A new login for ``host``; ``certificate`` replaces the pinned one when given."""
        data = self._load()
        entry = {**self._entry_of(data, host), "token": token, "username": username}
        if refresh_token:
            entry["refresh_token"] = refresh_token
        else:
            entry.pop("refresh_token", None)
        if certificate:
            entry["certificate"] = certificate
        data[host] = entry
        self._write(data)

    def update_tokens(self, host: str, token: str, refresh_token: str | None) -> None:
        """The renewed pair of a session (after a refresh): everything else in the entry stays."""
        data = self._load()
        entry = {**self._entry_of(data, host), "token": token}
        if refresh_token:
            entry["refresh_token"] = refresh_token
        data[host] = entry
        self._write(data)

    def forget(self, host: str) -> bool:
        """Drop the login of ``host`` (not its pinned certificate); whether there was one."""
        data = self._load()
        entry = data.get(host)
        if not isinstance(entry, dict):
            return False
        had_session = any(k in entry for k in SESSION_KEYS)
        rest = {k: v for k, v in entry.items() if k not in SESSION_KEYS}
        if rest:
            data[host] = rest
        else:
            del data[host]
        self._write(data)
        return had_session

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Held while a session is renewed: a refresh token works once, and a second ``mist`` process
        presenting the same one would end the session for both."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        # Created 0600 from the start, so the token is never readable by others, not even for a moment.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def access_token_expiry(token: str) -> datetime | None:
    """When an access token (a JWT) expires, read from its payload without checking the signature: only to
    renew it in time, never to trust it. None for anything that is not a JWT with an ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return datetime.fromtimestamp(exp, UTC)
