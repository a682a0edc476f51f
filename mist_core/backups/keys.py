"""The backup key: what encrypts backups, kept outside the database and apart from the master key.

It lives in ``backup.key`` in the data directory (0600, made on first use; one base64 key a line: the first
encrypts, the others still decrypt older backups) or comes from ``MIST_BACKUP_KEY`` (base64). An encrypted
backup names its key by id, so a new key can be put first without losing the old backups. Backups leave the
server: keep a copy of this key somewhere else too, or an encrypted backup of a lost server cannot be read.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from ..errors import MistError, SecretError

KEY_FILE = "backup.key"
ENV = "MIST_BACKUP_KEY"


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"mist-backup-key-id:" + key).hexdigest()[:12]


class BackupKeys:
    """Every backup key at hand, by id; the first one encrypts."""

    def __init__(self, *keys: bytes) -> None:
        if not keys:
            raise SecretError("there is no backup key")
        for key in keys:
            if len(key) != 32:
                raise SecretError("a backup key must be 32 bytes (AES-256), written in base64")
        self._keys = {key_id(k): k for k in keys}
        self._current = key_id(keys[0])

    def current(self) -> tuple[str, bytes]:
        return self._current, self._keys[self._current]

    def key(self, wanted: str) -> bytes:
        try:
            return self._keys[wanted]
        except KeyError:
            raise MistError(
                f"the backup was encrypted with backup key {wanted}, which this server does not have: put that "
                f"key (base64) on a line of {KEY_FILE} in the data directory, or in {ENV}"
            ) from None

    @classmethod
    def load(cls, path: Path) -> BackupKeys:
        """``MIST_BACKUP_KEY`` if set, else the key file, made (0600) with a new random key on first use."""
        if env := os.environ.get(ENV):
            return cls(*(base64.b64decode(part) for part in env.split(",") if part.strip()))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(base64.b64encode(os.urandom(32)) + b"\n")
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretError(
                f"the backup key file {path} is readable by others (mode {mode:o}): chmod 600 it"
            )
        return cls(*(base64.b64decode(line) for line in path.read_bytes().split() if line))
