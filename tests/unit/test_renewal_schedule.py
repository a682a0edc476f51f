"""The certificate schedule: when a certificate is renewed, how failures back off, what a pass does."""

from __future__ import annotations

import datetime as dt

import pytest

from mist_core.tls.schedule import (
    RETRY_BACKOFF,
    next_action,
    next_retry_at,
    renewal_at,
    renewal_due,
    retry_delay,
)
from mist_core.tls.store import Certificate

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _cert(**values: object) -> Certificate:
    fields: dict[str, object] = {
        "id": 1,
        "domain": "app.test",
        "status": "issued",
        "source": "acme",
        "updated_at": NOW,
        **values,
    }
    return Certificate.model_validate(fields)


def test_renewal_is_due_once_expiry_is_within_the_window() -> None:
    assert renewal_due(NOW + dt.timedelta(days=30), NOW, 30)
    assert renewal_due(NOW + dt.timedelta(days=2), NOW, 30)
    assert renewal_due(NOW - dt.timedelta(days=1), NOW, 30)  # already expired: renew at once
    assert not renewal_due(NOW + dt.timedelta(days=30, seconds=1), NOW, 30)
    assert not renewal_due(NOW + dt.timedelta(days=60), NOW, 30)


def test_renewal_time_is_the_window_before_expiry() -> None:
    assert renewal_at(NOW + dt.timedelta(days=90), 30) == NOW + dt.timedelta(days=60)
    assert renewal_at(NOW + dt.timedelta(days=90), 30, NOW) == NOW + dt.timedelta(days=60)


def test_a_certificate_shorter_lived_than_the_window_renews_two_thirds_through_its_life() -> None:
    issued, expires = NOW, NOW + dt.timedelta(days=6)
    assert renewal_at(expires, 30, issued) == NOW + dt.timedelta(days=4)
    assert not renewal_due(expires, NOW + dt.timedelta(days=1), 30, issued)
    assert renewal_due(expires, NOW + dt.timedelta(days=4), 30, issued)


@pytest.mark.parametrize(
    ("failures", "minutes"),
    [(1, 1), (2, 5), (3, 30), (4, 120), (5, 360), (6, 360), (50, 360)],
)
def test_failures_back_off_1_5_30_minutes_then_2_and_6_hours_capped(failures: int, minutes: int) -> None:
    assert retry_delay(failures) == dt.timedelta(minutes=minutes)
    assert next_retry_at(NOW, failures) == NOW + dt.timedelta(minutes=minutes)


def test_backoff_never_shrinks() -> None:
    assert list(RETRY_BACKOFF) == sorted(RETRY_BACKOFF)
    assert retry_delay(0) == retry_delay(1)


def test_pending_and_interrupted_renewals_are_issued() -> None:
    assert next_action(_cert(status="pending"), NOW, 30) == "issue"
    assert next_action(_cert(status="renewing", not_after=NOW + dt.timedelta(days=5)), NOW, 30) == "issue"


def test_a_failed_certificate_waits_for_its_retry_time() -> None:
    failed = _cert(status="failed", next_attempt_at=NOW + dt.timedelta(minutes=5))
    assert next_action(failed, NOW, 30) is None
    assert next_action(failed, NOW + dt.timedelta(minutes=5), 30) == "retry"


def test_an_issued_certificate_is_renewed_only_inside_the_window() -> None:
    cert = _cert(not_after=NOW + dt.timedelta(days=45))
    assert next_action(cert, NOW, 30) is None
    assert next_action(cert, NOW + dt.timedelta(days=15), 30) == "renew"
    assert next_action(cert, NOW, 60) == "renew"
    assert next_action(cert.model_copy(update={"not_before": NOW - dt.timedelta(days=45)}), NOW, 60) is None


def test_an_uploaded_certificate_is_never_renewed_by_mist() -> None:
    cert = _cert(source="uploaded", not_after=NOW + dt.timedelta(days=1))
    assert next_action(cert, NOW, 30) is None
