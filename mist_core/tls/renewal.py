"""The certificate scheduler: one pass over the certificate store at a time issues, retries and renews what
its schedule (``tls.schedule``) says is due. All state is in the store, so a restarted scheduler
carries on where the last one stopped."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import MistError
from .acme_client import IssuedCertificate, issue
from .challenges import ChallengeResponder
from .schedule import Action, next_retry_at

if TYPE_CHECKING:
    from ..models import Certificate
    from .store import CertificateStore

log = logging.getLogger(__name__)

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
