"""When certificates are issued, retried and renewed, as pure functions: the renewal window, the back-off
after a failure, and what a pass of the scheduler does with one certificate. The certificate store filters
with it and the scheduler acts on it."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from ..models import Certificate

# Seconds to wait after the 1st, 2nd, ... failure; the last one repeats. Let's Encrypt allows 5 failed
# validations per hour per name, which the first steps stay under.
RETRY_BACKOFF: tuple[int, ...] = (60, 300, 1800, 7200, 21600)

Action = Literal["issue", "retry", "renew"]


def retry_delay(failures: int) -> dt.timedelta:
    """How long to wait after the ``failures``-th failure in a row (1 for the first)."""
    index = min(max(failures, 1), len(RETRY_BACKOFF)) - 1
    return dt.timedelta(seconds=RETRY_BACKOFF[index])


def next_retry_at(now: dt.datetime, failures: int) -> dt.datetime:
    return now + retry_delay(failures)


def renewal_window(window_days: int, not_before: dt.datetime | None, not_after: dt.datetime) -> dt.timedelta:
    """How long before expiry renewal starts: ``window_days``, but never more than a third of the
    certificate's lifetime, so a short-lived certificate (shorter than the window) is not renewed on every
    pass; it is renewed two thirds of the way through its life instead."""
    window = dt.timedelta(days=window_days)
    if not_before is not None and not_after > not_before:
        window = min(window, (not_after - not_before) / 3)
    return window


def renewal_at(
    not_after: dt.datetime, window_days: int, not_before: dt.datetime | None = None
) -> dt.datetime:
    """When a certificate valid until ``not_after`` becomes due for renewal."""
    return not_after - renewal_window(window_days, not_before, not_after)


def renewal_due(
    not_after: dt.datetime, now: dt.datetime, window_days: int, not_before: dt.datetime | None = None
) -> bool:
    return now >= renewal_at(not_after, window_days, not_before)


def next_action(cert: Certificate, now: dt.datetime, window_days: int) -> Action | None:
    """What the scheduler does with ``cert`` at ``now``, if anything."""
    if cert.source != "acme":
        return None
    if cert.status in ("pending", "renewing"):
        return "issue"
    if cert.status == "failed":
        if cert.next_attempt_at is None or cert.next_attempt_at <= now:
            return "retry"
        return None
    if cert.not_after is not None and renewal_due(cert.not_after, now, window_days, cert.not_before):
        return "renew"
    return None
