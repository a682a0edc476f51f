"""Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits) for two-factor login.

A code is accepted for the current step and one step either side (clock drift), and never twice: the core
remembers the last step used per account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

STEP = 30
DIGITS = 6
DRIFT = 1  # steps either side


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def code_at(secret: str, step: int) -> str:
    digest = hmac.new(_key(secret), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def current_step(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // STEP)


def totp_now(secret: str, at: float | None = None) -> str:
    """The code an authenticator app shows now (tests and `mist 2fa` use it)."""
    return code_at(secret, current_step(at))


def verify(secret: str, code: str, *, last_step: int | None = None, at: float | None = None) -> int | None:
    """The step ``code`` belongs to, if it is valid now and newer than ``last_step``; else None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = current_step(at)
    for step in range(now - DRIFT, now + DRIFT + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def uri(secret: str, account: str, issuer: str = "Mist") -> str:
    label = quote(f"{issuer}:{account}", safe=":@")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP}
    )
    return f"otpauth://totp/{label}?{query}"


def recovery_codes(count: int = 10) -> list[str]:
    """One-time codes, ``xxxxx-xxxxx`` (lower-case base32 without look-alikes)."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return [
        "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(2)) for _ in range(count)
    ]
