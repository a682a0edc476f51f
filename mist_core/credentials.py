"""The sessions a client keeps between runs: ``credentials.json`` in the user's config directory, one entry
per host, readable by the user alone. The CLI, the TUI and scripts share this one store; every change is
made under one file lock, so a process never writes back a stale copy over a pair another one just
rotated, and a session is renewed by one process at a time."""

from __future__ import annotations

import asyncio
import base64
import binascii
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import clock, config
from .models import Session


def credentials_path() -> Path:
    return config.config_dir() / "credentials.json"


# The keys of an entry that belong to a login; ``forget`` drops these and keeps the rest (a pinned
# certificate, keys written by newer versions).
SESSION_KEYS = ("token", "refresh_token", "username")

# An access token this close to its expiry is renewed before use: a command started now must not see it
# expire halfway.
RENEW_MARGIN = timedelta(seconds=30)
# How often a coroutine waiting for the lock looks again (it must not block the event loop meanwhile).
_LOCK_POLL_SECONDS = 0.02


class _FileLock:
    """``flock`` on ``credentials.json.lock``, shared by every store of this process on that file.

    Re-entrant within a thread: a renewal holds the lock while it saves the new pair, and a coroutine that
    saves while another one of the same event loop renews does not wait for itself. Other threads and
    other processes wait."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        # Held by a coroutine across awaits: the other coroutines of the thread wait for it, though the lock
        # is re-entrant for them (they would otherwise renew the same session together).
        self.held_by_coroutine = False

    def acquire(self, *, blocking: bool = True) -> bool:
        if not self._thread_lock.acquire(blocking=blocking):
            return False
        if self._depth == 0:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            except BaseException:
                self._thread_lock.release()
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BaseException as err:
                os.close(fd)
                self._thread_lock.release()
                if isinstance(err, BlockingIOError):
                    return False
                raise
            self._fd = fd
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None
        self._thread_lock.release()


_LOCKS: dict[Path, _FileLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> _FileLock:
    key = path.absolute()
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = _FileLock(key)
        return lock


class CredentialStore:
    """``{"<host>": {"token": ..., "refresh_token": ..., "username": ..., "certificate": ...}}``.

    ``token`` is the access token, ``refresh_token`` renews it, ``certificate`` is the PEM of a daemon's
    self-signed certificate the user chose to trust. Keys this code does not know are kept when an entry is
    rewritten. ``MIST_TOKEN`` overrides the stored token for ``token``/``refresh_token`` (and then no
    refresh token is used); ``get`` and ``entry`` show what is stored."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or credentials_path()
        self._lock = _lock_for(self.path.with_name(self.path.name + ".lock"))

    # ------------------------------------------------------------------------------------------ reading

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

    def get(self, host: str) -> tuple[str | None, str | None]:
        """``(token, username)`` stored for ``host``, whatever ``MIST_TOKEN`` says."""
        entry = self.entry(host)
        token, username = entry.get("token"), entry.get("username")
        return (
            token if isinstance(token, str) and token else None,
            username if isinstance(username, str) and username else None,
        )

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

    # ------------------------------------------------------------------------------------------ changing

    def save(
        self,
        host: str,
        token: str,
        username: str,
        refresh_token: str | None = None,
        *,
        certificate: str | None = None,
    ) -> None:
        """A new login for ``host``; ``certificate`` replaces the pinned one when given. A login without a
        refresh token drops the stored one: it belonged to the session this one replaces."""
        with self.locked():
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
        with self.locked():
            data = self._load()
            entry = {**self._entry_of(data, host), "token": token}
            if refresh_token:
                entry["refresh_token"] = refresh_token
            data[host] = entry
            self._write(data)

    def forget(self, host: str) -> bool:
        """Drop the login of ``host`` (not its pinned certificate); whether there was one."""
        with self.locked():
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

    async def renew(
        self, host: str, refresh: Callable[[str], Awaitable[Session]], *, margin: timedelta = RENEW_MARGIN
    ) -> tuple[str | None, str | None]:
        """The stored pair of ``host``, renewed first with ``refresh`` when its access token is (nearly)
        expired, all under the lock: a refresh token works once, so two processes renewing together would
        end the session for both. The second one waits, then finds the pair the first one saved.

        ``refresh`` raising (``Unauthenticated``: the session is over) leaves the store as it was."""
        async with self.locked_async():
            token, refresh_token = self.token(host), self.refresh_token(host)
            expiry = access_token_expiry(token) if token else None
            if not refresh_token or expiry is None or expiry - margin > clock.now():
                return token, refresh_token
            session = await refresh(refresh_token)
            self.update_tokens(host, session.token, session.refresh_token)
            return session.token, session.refresh_token

    # ------------------------------------------------------------------------------------------ locking

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Held around every read-modify-write of the file, and while a session is renewed."""
        self._lock.acquire()
        try:
            yield
        finally:
            self._lock.release()

    @asynccontextmanager
    async def locked_async(self) -> Any:
        """``locked`` for a coroutine: waits without blocking its event loop."""
        lock = self._lock
        while lock.held_by_coroutine or not lock.acquire(blocking=False):
            await asyncio.sleep(_LOCK_POLL_SECONDS)
        lock.held_by_coroutine = True
        try:
            yield
        finally:
            lock.held_by_coroutine = False
            lock.release()

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        # A fresh temporary name in the same directory, created 0600: the token is never readable by others,
        # not even for a moment, and the file is replaced whole or not at all.
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=2)
                fh.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


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
