"""Accounts: password hashing (scrypt, memory-hard) and strength rules, and the opaque tokens (refresh tokens,
API tokens, invitations, recovery codes) that Mist stores only as hashes."""

from __future__ import annotations

import functools
import gzip
import hashlib
import hmac
import secrets
from importlib import resources
from typing import Any

from ..errors import InvalidInput

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # scrypt takes any length; a bound keeps a login request cheap
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@functools.cache
def _common_passwords() -> frozenset[str]:
    """The 20,000 most common passwords (the list Django ships, BSD licence), lower-cased."""
    data = resources.files(__package__).joinpath("common-passwords.txt.gz").read_bytes()
    return frozenset(line.strip().lower() for line in gzip.decompress(data).decode().splitlines())


def check_password_strength(password: str, *, username: str | None = None) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters", field="password"
        )
    if "\x00" in password:
        raise InvalidInput("the password contains a NUL character", field="password")
    lowered = password.lower()
    if lowered in _common_passwords() or len(set(lowered)) < 4:
        raise InvalidInput(
            "the password is one of the most common passwords: choose another one", field="password"
        )
    if username and len(username) >= 4 and username.lower() in lowered:
        raise InvalidInput("the password contains the username: choose another one", field="password")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(candidate.hex(), digest)


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the username does not exist, so both paths take the same time. Made on
    first use: a scrypt hash costs about 50 ms, which every importer of this package (the command line too)
    would otherwise pay."""
    return hash_password(secrets.token_hex(8))


def __getattr__(name: str) -> Any:
    if name == "DUMMY_HASH":
        return dummy_hash()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def new_token(prefix: str = "mist_") -> str:
    """A random opaque token; the prefix says what it is (``mist_r_`` refresh, ``mist_t_`` API token,
    ``mist_i_`` invitation)."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
