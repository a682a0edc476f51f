"""Mist's one "now": every expiry (access tokens, sessions, invites, API tokens, lock-outs, the credential
store's renewal) reads it here, so a test moves time forward instead of sleeping until a token expires.

In production nothing ever moves it and ``now()`` is the system's UTC time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    """The current time in UTC (aware), as Mist sees it."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def timestamp() -> float:
    """``now()`` in seconds since the epoch, for code that counts in seconds (TOTP steps, JWT claims)."""
    return now().timestamp()


def advance(by: timedelta | float) -> None:
    """Move Mist's time forward by ``by`` (a timedelta, or seconds); a frozen clock stays frozen at the new
    instant."""
    global _offset, _frozen
    step = by if isinstance(by, timedelta) else timedelta(seconds=by)
    if step < timedelta(0):
        raise ValueError("the clock only moves forward")
    if _frozen is not None:
        _frozen += step
    else:
        _offset += step


def freeze(at: datetime) -> None:
    """Stop Mist's time at ``at`` (aware, or taken as UTC) until ``advance`` or ``reset``."""
    global _frozen
    _frozen = at if at.tzinfo else at.replace(tzinfo=UTC)


def reset() -> None:
    """Back to the system's time."""
    global _offset, _frozen
    _offset, _frozen = timedelta(0), None
