"""When certificates are issued, retried and renewed: the schedule as pure functions, and the scheduler that
does one pass over the certificate store at a time. All state is in the store, so a restarted scheduler
carries on where the last one stopped."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..errors import MistError
from .acme_client import IssuedCertificate, issue
from .challenges import ChallengeResponder

if TYPE_CHECKING:  # the store filters with this module's schedule, so it imports us at run time
    from .store import Certificate, CertificateStore

log = logging.getLogger(__name__)

# Seconds to wait after the 1st, 2nd, ... failure; the last one repeats. Let's Encrypt allows 5 failed
# validations per hour per name, which the first steps stay under.
RETRY_BACKOFF: tuple[int, ...] = (60, 300, 1800, 7200, 21600)

Action = Literal["issue", "retry", "renew"]


# ------------------------------------------------------------------------------------------ the schedule


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


# ----------------------------------------------------------------------------------------- the scheduler


@dataclass(frozen=True)
class CertificateSettings:
    """The settings a pass reads (from ``acme_directory_url``, ``acme_email``, ``acme_ca_bundle``,
    ``cert_renewal_days``)."""

    directory_url: str
    email: str = ""
    ca_bundle: str = ""
    renewal_days: int = 30


@dataclass
class Outcome:
    domain: str
    action: Action
    ok: bool
    error: str = ""
    next_attempt_at: dt.datetime | None = None


@dataclass
class TickReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def issued(self) -> list[str]:
        return [o.domain for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[str]:
        return [o.domain for o in self.outcomes if not o.ok]


IssueFn = Callable[[str, CertificateSettings], Awaitable[IssuedCertificate]]
SettingsFn = Callable[[], CertificateSettings | Awaitable[CertificateSettings]]
Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def acme_issuer(
    cert_store: CertificateStore,
    responder: ChallengeResponder,
    *,
    on_line: Callable[[str], None] | None = None,
) -> IssueFn:
    """The usual ``issue_fn``: the account key from the store, HTTP-01 through ``responder``."""

    async def issue_one(domain: str, settings: CertificateSettings) -> IssuedCertificate:
        account_key = await cert_store.account_key(settings.directory_url, settings.email)
        issued = await issue(
            [domain],
            directory_url=settings.directory_url,
            account_key=account_key,
            email=settings.email,
            responder=responder,
            ca_bundle=settings.ca_bundle or None,
            on_line=on_line,
        )
        if issued.account_uri:
            await cert_store.set_account_uri(settings.directory_url, issued.account_uri)
        return issued

    return issue_one


class CertificateScheduler:
    """Issues pending certificates, retries failed ones when their time comes and renews those inside the
    renewal window. ``tick()`` does one pass; ``run(interval)`` passes forever; ``wake()`` starts the next
    pass now (after a domain is added, say)."""

    def __init__(
        self,
        cert_store: CertificateStore,
        issue_fn: IssueFn,
        settings_fn: SettingsFn,
        clock: Clock = _utc_now,
        *,
        on_change: Callable[[Certificate], Awaitable[None] | None] | None = None,
    ) -> None:
        self._certs = cert_store
        self._issue = issue_fn
        self._settings = settings_fn
        self._clock = clock
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    async def tick(self) -> TickReport:
        """One pass over the store. A failure on one domain is recorded on it and does not stop the pass."""
        async with self._lock:
            settings = await self._current_settings()
            report = TickReport()
            now = self._clock()
            # Each domain at most once a pass: a certificate just issued is not also "due" in the same pass.
            done: set[str] = set()
            passes: list[tuple[Action, list[Certificate]]] = [
                ("issue", await self._certs.pending()),
                ("retry", await self._certs.due_for_retry(now)),
                ("renew", await self._certs.due_for_renewal(now, settings.renewal_days)),
            ]
            for action, certs in passes:
                for cert in certs:
                    if cert.domain in done:
                        continue
                    done.add(cert.domain)
                    if action == "renew":
                        await self._certs.mark_renewing(cert.domain)
                    report.outcomes.append(await self._attempt(cert, action, settings))
            return report

    async def run(self, interval: float = 60.0) -> None:
        """Pass every ``interval`` seconds (or sooner when woken) until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:  # a broken pass (the store, the settings) must not end the scheduler
                log.exception("certificate pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()

    async def _current_settings(self) -> CertificateSettings:
        value = self._settings()
        if inspect.isawaitable(value):
            value = await value
        assert isinstance(value, CertificateSettings)
        return value

    async def _attempt(self, cert: Certificate, action: Action, settings: CertificateSettings) -> Outcome:
        domain = cert.domain
        try:
            issued = await self._issue(domain, settings)
        except Exception as exc:
            error = exc.message if isinstance(exc, MistError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, MistError):
                log.exception("certificate issuance for %s failed unexpectedly", domain)
            # The clock is read again: an order can take a while, and the backoff counts from its end.
            when = next_retry_at(self._clock(), cert.attempts + 1)
            saved = await self._certs.mark_failed(domain, error=error, next_attempt_at=when)
            await self._changed(saved)
            return Outcome(domain, action, ok=False, error=error, next_attempt_at=when)
        saved = await self._certs.save_issued(domain, issued)
        await self._changed(saved)
        return Outcome(domain, action, ok=True)

    async def _changed(self, cert: Certificate) -> None:
        if self._on_change is None:
            return
        result = self._on_change(cert)
        if inspect.isawaitable(result):
            await result
