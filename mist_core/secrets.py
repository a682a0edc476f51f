"""Encryption of secrets at rest: AES-256-GCM under a master key kept outside the database.

A sealed value is ``v1:<key id>:<base64(nonce + ciphertext)>``. The key id lets the master key be rotated;
the associated data binds the value to its row (``env:<app id>:<KEY>``), so a ciphertext copied into another
row does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets as _random
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import MistError

_PREFIX = "v1"


class SecretError(MistError):
    code = "secret_error"
    status = 500


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"mist-key-id:" + key).hexdigest()[:12]


class SecretBox:
    """Seals and opens secret values. ``keys`` holds every key that may still open old values; the first
    one seals new values."""

    def __init__(self, key: bytes, *older: bytes) -> None:
        for k in (key, *older):
            if len(k) != 32:
                raise SecretError("the master key must be 32 bytes (AES-256)")
        self._sealing_id = _key_id(key)
        self._keys = {_key_id(k): AESGCM(k) for k in (key, *older)}

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
        return cls(base64.b64decode(path.read_bytes().strip()))

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
