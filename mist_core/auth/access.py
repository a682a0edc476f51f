"""Access tokens: short-lived JWTs (HS256) naming a user and their session, signed with a key kept like the
master key (a 0600 file outside the database, or ``MIST_SIGNING_KEY``).

Only HS256 is accepted when verifying, so ``alg: none`` and algorithm-confusion tokens are refused before their
claims are read. Every token is also checked against its session row by the core, so a revoked session's token
stops working at once, not when it expires.
"""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from .. import clock
from ..errors import TokenExpired, Unauthenticated

ALGORITHM = "HS256"
ISSUER = "mist"
AUDIENCE = "mist-api"


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: int
    expires_at: datetime


class AccessTokens:
    def __init__(self, key: bytes, lifetime: timedelta) -> None:
        if len(key) < 32:
            raise ValueError("the signing key must be at least 32 bytes")
        self._key = key
        self.lifetime = lifetime

    @classmethod
    def from_file(cls, path: Path, lifetime: timedelta) -> AccessTokens:
        if env := os.environ.get("MIST_SIGNING_KEY"):
            return cls(base64.b64decode(env), lifetime)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64encode(secrets.token_bytes(32)) + b"\n")
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise Unauthenticated(
                f"the signing key file {path} is readable by others (mode {mode:o}): chmod 600 it"
            )
        return cls(base64.b64decode(path.read_bytes().strip()), lifetime)

    def issue(self, user_id: int, session_id: int) -> tuple[str, datetime]:
        now = clock.now()
        expires = now + self.lifetime
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "sid": session_id,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), expires.replace(microsecond=0)

    def verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                # Expiry is checked against Mist's clock below, not the library's.
                options={
                    "require": ["exp", "iat", "sub", "sid", "iss", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
            if int(claims["exp"]) <= clock.timestamp():
                raise jwt.ExpiredSignatureError("Signature has expired")
        except jwt.ExpiredSignatureError:
            raise TokenExpired("your access token has expired: log in again, or refresh it") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not valid: log in again with `mist login`") from None
        try:
            return AccessClaims(
                user_id=int(claims["sub"]),
                session_id=int(claims["sid"]),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            )
        except (TypeError, ValueError):
            raise Unauthenticated("the token is not valid: log in again with `mist login`") from None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("mist_")
