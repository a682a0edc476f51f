"""Certificates from a real ACME server (Pebble): HTTP-01 issuance through the challenge responder, keys
sealed at rest, failure and retry with backoff, renewal inside the window, and a scheduler that carries on
after a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pebble import Pebble, free_port, start_pebble

from mist_core.secrets import SecretBox
from mist_core.store import Store
from mist_core.tls.acme_client import split_pem_chain
from mist_core.tls.challenges import MAX_REQUEST_BYTES, ChallengeResponder
from mist_core.tls.renewal import CertificateScheduler, CertificateSettings, acme_issuer
from mist_core.tls.store import CertificateStore

# Pebble issues certificates valid for 20 days (its certificateValidityPeriod), so renewal comes within the
# test's reach by moving the clock a few days.
VALIDITY = dt.timedelta(days=20)
DOMAIN = "app.test"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


class WrongAnswers(ChallengeResponder):
    """A responder that serves a key authorization, just not the right one."""

    def answer(self, path: str) -> str | None:
        right = super().answer(path)
        return None if right is None else "wrong." + right.split(".", 1)[1]


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    server = start_pebble(
        tmp_path_factory.mktemp("pebble"),
        http_port=free_port(),
        validity_seconds=int(VALIDITY.total_seconds()),
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def responder(pebble: Pebble) -> AsyncIterator[ChallengeResponder]:
    async with ChallengeResponder("127.0.0.1", pebble.http_port) as r:
        yield r


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(os.urandom(32))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "mist.db")
    try:
        yield store
    finally:
        await store.close()


def settings_for(pebble: Pebble, renewal_days: int = 30) -> CertificateSettings:
    return CertificateSettings(
        directory_url=pebble.directory_url,
        email="ops@example.com",
        ca_bundle=pebble.ca_bundle,
        renewal_days=renewal_days,
    )


def scheduler_for(
    certs: CertificateStore,
    responder: ChallengeResponder,
    pebble: Pebble,
    clock: Clock,
    renewal_days: int = 30,
) -> CertificateScheduler:
    return CertificateScheduler(
        certs, acme_issuer(certs, responder), lambda: settings_for(pebble, renewal_days), clock
    )


def _pem_body(pem: str) -> bytes:
    """The base64 lines of a PEM block, without its armour: what a leak would contain."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----")).encode()[:64]


async def test_a_certificate_for_app_test_is_issued_over_http01_and_chains_to_pebbles_root(
    pebble: Pebble, responder: ChallengeResponder, db: Store, box: SecretBox
) -> None:
    certs = CertificateStore(db, box)
    await certs.mark_pending(DOMAIN)
    lines: list[str] = []
    scheduler = CertificateScheduler(
        certs, acme_issuer(certs, responder, on_line=lines.append), lambda: settings_for(pebble), Clock()
    )

    report = await scheduler.tick()

    assert report.issued == [DOMAIN], report
    cert = await certs.require(DOMAIN)
    assert cert.status == "issued" and cert.source == "acme"
    leaf = x509.load_pem_x509_certificate(cert.cert_pem.encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [DOMAIN]
    assert cert.not_after == leaf.not_valid_after_utc
    assert cert.serial == format(leaf.serial_number, "x")

    chain = [leaf, *(x509.load_pem_x509_certificate(p.encode()) for p in split_pem_chain(cert.chain_pem))]
    root = x509.load_pem_x509_certificate(pebble.root_pem().encode())
    for child, parent in zip(chain, [*chain[1:], root], strict=True):
        child.verify_directly_issued_by(parent)

    key_pem = await certs.key_pem(DOMAIN)
    assert key_pem is not None
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert key.public_key() == leaf.public_key()
    assert any("answering the HTTP-01 challenge for app.test" in line for line in lines)
    assert await certs.account_uri(pebble.directory_url)
    assert responder.tokens == []  # answers are withdrawn once the order is over


async def test_private_keys_are_sealed_at_rest(
    pebble: Pebble, responder: ChallengeResponder, tmp_path: Path, box: SecretBox
) -> None:
    db = await Store.open(tmp_path / "sealed.db")
    certs = CertificateStore(db, box)
    await certs.mark_pending(DOMAIN)
    await scheduler_for(certs, responder, pebble, Clock()).tick()
    key_pem = await certs.key_pem(DOMAIN)
    account_pem = await certs.account_key(pebble.directory_url, "ops@example.com")
    assert key_pem and account_pem
    await db.close()

    stored = b"".join(p.read_bytes() for p in tmp_path.glob("sealed.db*"))
    assert b"PRIVATE KEY" not in stored
    assert _pem_body(key_pem) not in stored
    assert _pem_body(account_pem) not in stored
    assert b"BEGIN CERTIFICATE" in stored  # the certificate itself is public and stored as is


async def test_a_failed_order_is_recorded_with_the_acme_error_then_a_retry_succeeds(
    pebble: Pebble, db: Store, box: SecretBox
) -> None:
    certs = CertificateStore(db, box)
    await certs.mark_pending(DOMAIN)
    clock = Clock()
    async with WrongAnswers("127.0.0.1", pebble.http_port) as wrong:
        report = await scheduler_for(certs, wrong, pebble, clock).tick()

    assert report.failed == [DOMAIN]
    failed = await certs.require(DOMAIN)
    assert failed.status == "failed"
    assert "could not validate the domain" in failed.last_error
    assert "app.test" in failed.last_error and "key authorization" in failed.last_error.lower()
    assert failed.attempts == 1
    assert failed.next_attempt_at == clock.now + dt.timedelta(minutes=1)
    assert not failed.has_certificate

    async with ChallengeResponder("127.0.0.1", pebble.http_port) as right:
        scheduler = scheduler_for(certs, right, pebble, clock)
        assert (await scheduler.tick()).outcomes == []  # not before its retry time
        clock.advance(dt.timedelta(minutes=1))
        report = await scheduler.tick()

    assert [(o.domain, o.action, o.ok) for o in report.outcomes] == [(DOMAIN, "retry", True)]
    issued = await certs.require(DOMAIN)
    assert issued.status == "issued"
    assert issued.last_error == "" and issued.attempts == 0 and issued.next_attempt_at is None


async def test_failures_in_a_row_back_off_further(pebble: Pebble, db: Store, box: SecretBox) -> None:
    certs = CertificateStore(db, box)
    await certs.mark_pending(DOMAIN)
    clock = Clock()
    # Nothing listens on the validation port: Pebble's connection is refused.
    stopped = ChallengeResponder("127.0.0.1", pebble.http_port)
    scheduler = scheduler_for(certs, stopped, pebble, clock)
    await scheduler.tick()
    clock.advance(dt.timedelta(minutes=1))
    await scheduler.tick()
    cert = await certs.require(DOMAIN)
    assert cert.attempts == 2
    assert "connection refused" in cert.last_error
    assert cert.next_attempt_at == clock.now + dt.timedelta(minutes=5)


async def test_a_certificate_inside_the_renewal_window_is_renewed(
    pebble: Pebble, responder: ChallengeResponder, db: Store, box: SecretBox
) -> None:
    certs = CertificateStore(db, box)
    await certs.mark_pending(DOMAIN)
    clock = Clock()
    await scheduler_for(certs, responder, pebble, clock, renewal_days=5).tick()
    first = await certs.require(DOMAIN)
    assert first.not_after is not None

    # Pebble's certificates last 20 days: outside a 5-day window now, inside it 16 days later.
    assert (await scheduler_for(certs, responder, pebble, clock, renewal_days=5).tick()).outcomes == []
    clock.advance(dt.timedelta(days=16))
    report = await scheduler_for(certs, responder, pebble, clock, renewal_days=5).tick()
    assert [(o.action, o.ok) for o in report.outcomes] == [("renew", True)]
    second = await certs.require(DOMAIN)

    # A 30-day window is longer than the certificate's life: renewal comes two thirds into it (day 13.3),
    # not on every pass.
    later = Clock()
    assert (await scheduler_for(certs, responder, pebble, later, renewal_days=30).tick()).outcomes == []
    later.advance(dt.timedelta(days=14))
    report = await scheduler_for(certs, responder, pebble, later, renewal_days=30).tick()
    assert [(o.action, o.ok) for o in report.outcomes] == [("renew", True)]
    third = await certs.require(DOMAIN)

    assert len({first.serial, second.serial, third.serial}) == 3
    assert second.status == third.status == "issued"
    assert third.not_after is not None and third.not_after >= first.not_after
    leaf = x509.load_pem_x509_certificate(third.cert_pem.encode())
    key_pem = await certs.key_pem(DOMAIN)
    assert key_pem is not None
    assert serialization.load_pem_private_key(key_pem.encode(), None).public_key() == leaf.public_key()


async def test_a_restarted_scheduler_on_the_same_database_carries_on(
    pebble: Pebble, responder: ChallengeResponder, tmp_path: Path, box: SecretBox
) -> None:
    path = tmp_path / "restart.db"
    clock = Clock()
    first_db = await Store.open(path)
    certs = CertificateStore(first_db, box)
    await certs.mark_pending(DOMAIN)
    await certs.mark_pending("other.test")
    await scheduler_for(certs, WrongAnswers(), pebble, clock).tick()  # never started: refused
    await certs.mark_renewing("other.test")  # as if the daemon died in the middle of an order
    await first_db.close()

    second_db = await Store.open(path)
    try:
        certs = CertificateStore(second_db, box)
        assert (await certs.require(DOMAIN)).status == "failed"
        clock.advance(dt.timedelta(minutes=2))
        report = await scheduler_for(certs, responder, pebble, clock).tick()
        assert sorted(report.issued) == [DOMAIN, "other.test"]
        assert {c.domain: c.status for c in await certs.list()} == {DOMAIN: "issued", "other.test": "issued"}
    finally:
        await second_db.close()


async def test_the_responder_serves_registered_tokens_and_nothing_else() -> None:
    async with ChallengeResponder("127.0.0.1", 0) as r:
        r.add("tok-EN_1", "tok-EN_1.thumbprint")
        base = f"http://127.0.0.1:{r.port}"
        async with httpx.AsyncClient() as http:
            hit = await http.get(f"{base}/.well-known/acme-challenge/tok-EN_1")
            miss = await http.get(f"{base}/.well-known/acme-challenge/other")
            elsewhere = await http.get(f"{base}/tok-EN_1")
            posted = await http.post(f"{base}/.well-known/acme-challenge/tok-EN_1")
            r.remove("tok-EN_1")
            withdrawn = await http.get(f"{base}/.well-known/acme-challenge/tok-EN_1")
    assert (hit.status_code, hit.text) == (200, "tok-EN_1.thumbprint")
    assert [miss.status_code, elsewhere.status_code, withdrawn.status_code] == [404, 404, 404]
    assert posted.status_code == 405


async def test_the_responder_refuses_an_oversized_request() -> None:
    async with ChallengeResponder("127.0.0.1", 0) as r:
        reader, writer = await asyncio.open_connection("127.0.0.1", r.port)
        # One byte over the limit and nothing more, so the server has read all of it when it answers.
        head = b"GET / HTTP/1.1\r\nX-Padding: "
        writer.write(head + b"a" * (MAX_REQUEST_BYTES + 1 - len(head)))
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 431")
