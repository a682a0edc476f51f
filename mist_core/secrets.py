"""Encryption of secrets at rest: AES-256-GCM under a master key kept outside the database.

A sealed value is ``v1:<key id>:<base64(nonce + ciphertext)>``. The key id lets the master key be rotated;
the associated data binds the value to its row (``env:<app id>:<KEY>``), so a ciphertext copied into another
row does not decrypt.

The key file holds one base64 key per line: the first seals, the others only open (during a rotation).
``SEALED`` lists every place that holds sealed values, columns and copies inside JSON documents alike (a
deployment's config snapshot keeps its env secrets sealed), so a rotation re-seals them all: a value left
under a retired key could never be opened again.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets as _random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import SecretError

_PREFIX = "v1"


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"mist-key-id:" + key).hexdigest()[:12]


@dataclass(frozen=True)
class SealedColumn:
    """A column of sealed values: ``SELECT <key columns>, <column> FROM <table> WHERE <where>``, each value
    bound to ``binding.format(**row)``."""

    table: str
    column: str
    keys: tuple[str, ...]
    binding: str
    where: str = "1"

    def reseal(self, box: SecretBox, stored: str, row: Mapping[str, Any]) -> tuple[str, int]:
        """The stored value sealed under ``box``'s current key, and how many secrets that was."""
        return box.reseal(stored, bound_to=self.binding.format(**row)), 1


@dataclass(frozen=True)
class SealedInDocument:
    """Sealed values copied into a JSON document column: in each row's document, the items of the list
    ``items`` whose ``flag`` is true hold a sealed ``field``, bound to ``binding`` formatted with the row's
    key columns and the item's fields."""

    table: str
    column: str
    keys: tuple[str, ...]
    items: str
    field: str
    flag: str
    binding: str
    where: str = "1"

    def reseal(self, box: SecretBox, stored: str, row: Mapping[str, Any]) -> tuple[str, int]:
        document = json.loads(stored)
        count = 0
        for item in document.get(self.items) or []:
            if item.get(self.flag):
                bound_to = self.binding.format_map({**item, **row})
                item[self.field] = box.reseal(item[self.field], bound_to=bound_to)
                count += 1
        return (json.dumps(document), count) if count else (stored, 0)


# Every place a sealed value is kept. A feature that seals a value, or copies one somewhere else, adds it here;
# tests/security/test_key_rotation.py scans the whole database after a rotation for any it missed.
SEALED: tuple[SealedColumn | SealedInDocument, ...] = (
    SealedColumn("env_vars", "value", ("app_id", "key"), "env:{app_id}:{key}", "secret = 1"),
    # The env snapshot a deployment ran with, repeated by a rollback to it.
    SealedInDocument(
        "deployments", "config", ("id", "app_id"), "env", "value", "secret", "env:{app_id}:{key}"
    ),
    SealedColumn("users", "totp_secret", ("id",), "totp:{id}", "totp_secret IS NOT NULL"),
    SealedColumn("users", "totp_pending", ("id",), "totp-pending:{id}", "totp_pending IS NOT NULL"),
    SealedColumn("acme_accounts", "key_sealed", ("id",), "acme-account:{id}", "key_sealed != ''"),
    SealedColumn(
        "certificates", "key_sealed", ("id",), "cert:{id}:key", "key_sealed IS NOT NULL AND key_sealed != ''"
    ),
    SealedColumn("git_providers", "token_sealed", ("id",), "provider:{id}:token", "token_sealed IS NOT NULL"),
    SealedColumn("git_providers", "key_sealed", ("id",), "provider:{id}:key", "key_sealed IS NOT NULL"),
    SealedColumn(
        "git_providers", "secret_sealed", ("id",), "provider:{id}:secret", "secret_sealed IS NOT NULL"
    ),
    SealedColumn(
        "app_sources", "token_sealed", ("app_id",), "source:{app_id}:token", "token_sealed IS NOT NULL"
    ),
    SealedColumn("app_sources", "key_sealed", ("app_id",), "source:{app_id}:key", "key_sealed IS NOT NULL"),
    SealedColumn("app_sources", "secret_sealed", ("app_id",), "source:{app_id}:secret"),
    # A backup destination's S3 keys.
    SealedColumn(
        "backup_destinations", "credentials", ("id",), "backup-destination:{id}", "credentials IS NOT NULL"
    ),
    SealedColumn("databases", "password_sealed", ("id",), "database:{id}:password", "password_sealed != ''"),
    SealedColumn(
        "databases",
        "admin_password_sealed",
        ("id",),
        "database:{id}:admin-password",
        "admin_password_sealed IS NOT NULL",
    ),
)


def _write_key_file(path: Path, keys: list[bytes]) -> None:
    """Replace the key file atomically (0600 from the start), so a crash leaves the old or the new file."""
    tmp = path.with_name(path.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(b"".join(base64.b64encode(k) + b"\n" for k in keys))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class SecretBox:
    """Seals and opens secret values. ``keys`` holds every key that may still open old values; the first
    one seals new values."""

    def __init__(self, key: bytes, *older: bytes) -> None:
        for k in (key, *older):
            if len(k) != 32:
                raise SecretError("the master key must be 32 bytes (AES-256)")
        self._use(key, *older)

    def _use(self, key: bytes, *older: bytes) -> None:
        self._raw = [key, *older]
        self._sealing_id = _key_id(key)
        self._keys = {_key_id(k): AESGCM(k) for k in (key, *older)}

    @property
    def key_id(self) -> str:
        """The id of the key that seals new values."""
        return self._sealing_id

    def begin_rotation(self, path: Path) -> str:
        """Write a new key first in the key file (the old ones stay, so every value still opens) and seal
        with it from now on; returns its id. ``finish_rotation`` drops the old keys once all is re-sealed."""
        if os.environ.get("MIST_MASTER_KEY"):
            raise SecretError(
                "the master key comes from MIST_MASTER_KEY, which Mist cannot change: put the key in the key "
                "file instead (unset MIST_MASTER_KEY) to rotate it"
            )
        new = AESGCM.generate_key(bit_length=256)
        _write_key_file(path, [new, *self._raw])
        self._use(new, *self._raw)
        return self._sealing_id

    def finish_rotation(self, path: Path) -> None:
        _write_key_file(path, [self._raw[0]])
        self._use(self._raw[0])

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """Load the master key (``MIST_MASTER_KEY``, base64, wins), creating a 0600 key file on first use."""
        if env := os.environ.get("MIST_MASTER_KEY"):
            return cls(base64.b64decode(env))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n")
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretError(
                f"the master key file {path} is readable by others (mode {mode:o}): chmod 600 it"
            )
        keys = [base64.b64decode(line) for line in path.read_bytes().split() if line]
        if not keys:
            raise SecretError(f"the master key file {path} is empty")
        return cls(*keys)

    def reseal(self, sealed: str, *, bound_to: str) -> str:
        """The same secret sealed under the current key."""
        return self.seal(self.open(sealed, bound_to=bound_to), bound_to=bound_to)

    def seal(self, plaintext: str, *, bound_to: str) -> str:
        nonce = _random.token_bytes(12)
        ct = self._keys[self._sealing_id].encrypt(nonce, plaintext.encode(), bound_to.encode())
        return f"{_PREFIX}:{self._sealing_id}:{base64.b64encode(nonce + ct).decode()}"

    def open(self, sealed: str, *, bound_to: str) -> str:
        try:
            prefix, key_id, payload = sealed.split(":", 2)
        except ValueError:
            raise SecretError("a stored secret is malformed") from None
        if prefix != _PREFIX or key_id not in self._keys:
            raise SecretError(
                f"a stored secret was sealed with an unknown key ({key_id}): is the master key right?"
            )
        raw = base64.b64decode(payload)
        try:
            return self._keys[key_id].decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
        except InvalidTag:
            raise SecretError("a stored secret does not match its row or key; it cannot be opened") from None
