"""Domains, certificates and the proxy as every ``MistAPI`` serves them, embedded and through the daemon."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mist_core.api import MistAPI
from mist_core.errors import Conflict, InvalidInput, NotFound
from mist_core.models import AppSpec, DomainSettings

GIT_URL = "https://example.com/acme/web.git"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _app(mist: MistAPI, name: str = "web") -> str:
    project = _unique("shop")
    await mist.projects.create(project)
    await mist.apps.create(f"{project}/{name}", AppSpec(git_url=GIT_URL, port=8080))
    return f"{project}/{name}"


def _self_signed(domain: str) -> tuple[str, str]:
    """A certificate for ``domain`` valid from yesterday for 90 days, and its key, both in PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


# ---------------------------------------------------------------------------------------------- domains


async def test_a_domain_is_added_listed_updated_and_removed(mist: MistAPI) -> None:
    ref = await _app(mist)
    domain = f"{_unique('web')}.example.com"
    added = await mist.domains.add(ref, domain)
    assert (added.name, added.https, added.security_headers) == (domain, True, True)
    assert f"{added.project}/{added.app}" == ref

    listed = await mist.domains.list(ref)
    assert [d.name for d in listed] == [domain]
    # The app carries its domains, alone and in a page of apps (the dashboard's).
    assert (await mist.apps.get(ref)).domains == [domain]
    assert [a.domains for a in (await mist.apps.list()).items if a.ref == ref] == [[domain]]

    settings = DomainSettings(
        https=True, hsts_max_age=31536000, path_prefix="/api", headers={"X-Robots-Tag": "noindex"}
    )
    updated = await mist.domains.update(ref, domain, settings)
    assert updated.hsts_max_age == 31536000
    assert updated.path_prefix == "/api"
    assert updated.headers == {"X-Robots-Tag": "noindex"}
    assert (await mist.domains.list(ref))[0].hsts_max_age == 31536000

    await mist.domains.remove(ref, domain)
    assert await mist.domains.list(ref) == []
    assert (await mist.apps.get(ref)).domains == []


async def test_a_domain_is_added_with_its_settings(mist: MistAPI) -> None:
    ref = await _app(mist)
    domain = f"{_unique('site')}.example.com"
    added = await mist.domains.add(
        ref, domain, DomainSettings(https=False, www_redirect="to-apex", security_headers=False)
    )
    assert added.https is False
    assert added.www_redirect == "to-apex"
    assert added.redirect_from == f"www.{domain}"
    assert added.security_headers is False


@pytest.mark.parametrize(
    "bad", ["", "not a domain", "-leading.example.com", "a..b.example.com", "a" * 64 + ".com"]
)
async def test_a_bad_domain_name_is_refused_naming_the_field(mist: MistAPI, bad: str) -> None:
    ref = await _app(mist)
    with pytest.raises(InvalidInput) as caught:
        await mist.domains.add(ref, bad)
    assert caught.value.field == "domain"
    assert await mist.domains.list(ref) == []


async def test_bad_domain_settings_are_refused_naming_the_field(mist: MistAPI) -> None:
    ref = await _app(mist)
    domain = f"{_unique('web')}.example.com"
    with pytest.raises(InvalidInput) as caught:
        await mist.domains.add(ref, domain, DomainSettings(path_prefix="no-slash"))
    assert caught.value.field == "path_prefix"
    with pytest.raises(InvalidInput) as caught:
        await mist.domains.add(ref, domain, DomainSettings(headers={"Bad Name": "x"}))
    assert (caught.value.field or "").startswith("headers")


async def test_a_domain_used_by_another_app_is_refused_naming_that_app(mist: MistAPI) -> None:
    first = await _app(mist, "web")
    second = await _app(mist, "api")
    domain = f"{_unique('shared')}.example.com"
    await mist.domains.add(first, domain)
    with pytest.raises(Conflict) as caught:
        await mist.domains.add(second, domain)
    assert first in caught.value.message
    assert await mist.domains.list(second) == []


async def test_removing_a_domain_the_app_does_not_have_is_not_found(mist: MistAPI) -> None:
    ref = await _app(mist)
    with pytest.raises(NotFound):
        await mist.domains.remove(ref, f"{_unique('nope')}.example.com")


@pytest.mark.parametrize("name", ["..", "."])
async def test_a_dot_segment_as_a_domain_never_reaches_another_route(mist: MistAPI, name: str) -> None:
    ref = await _app(mist)
    with pytest.raises((InvalidInput, NotFound)):
        await mist.domains.remove(ref, name)
    assert (await mist.apps.get(ref)).ref == ref


async def test_domains_of_an_unknown_app_are_not_found(mist: MistAPI) -> None:
    with pytest.raises(NotFound):
        await mist.domains.list(f"{_unique('ghost')}/web")


# ---------------------------------------------------------------------------------------------- certificates


async def test_an_undeployed_app_has_no_certificate_or_a_pending_one(mist: MistAPI) -> None:
    ref = await _app(mist)
    assert await mist.certificates.list(ref) == []
    domain = f"{_unique('web')}.example.com"
    await mist.domains.add(ref, domain)
    certificates = await mist.certificates.list(ref)
    assert all(c.status == "pending" and not c.has_certificate for c in certificates)
    assert {c.domain for c in certificates} <= {domain}


async def test_an_upload_with_a_key_that_does_not_match_is_refused(mist: MistAPI) -> None:
    ref = await _app(mist)
    domain = f"{_unique('web')}.example.com"
    await mist.domains.add(ref, domain)
    cert_pem, _ = _self_signed(domain)
    _, other_key = _self_signed(domain)
    with pytest.raises(InvalidInput) as caught:
        await mist.certificates.upload(domain, cert_pem, other_key)
    assert caught.value.field == "key"
    assert "does not match" in caught.value.message
    assert all(c.source != "uploaded" for c in await mist.certificates.list(ref))


async def test_an_upload_for_another_name_is_refused_naming_the_names(mist: MistAPI) -> None:
    ref = await _app(mist)
    domain = f"{_unique('web')}.example.com"
    await mist.domains.add(ref, domain)
    cert_pem, key_pem = _self_signed("other.example.org")
    with pytest.raises(InvalidInput) as caught:
        await mist.certificates.upload(domain, cert_pem, key_pem)
    assert "other.example.org" in caught.value.message


async def test_a_valid_uploaded_certificate_is_listed_as_uploaded_without_its_key(mist: MistAPI) -> None:
    ref = await _app(mist)
    domain = f"{_unique('web')}.example.com"
    await mist.domains.add(ref, domain)
    cert_pem, key_pem = _self_signed(domain)

    uploaded = await mist.certificates.upload(domain, cert_pem, key_pem)
    assert (uploaded.domain, uploaded.status, uploaded.source) == (domain, "issued", "uploaded")
    assert uploaded.not_after is not None
    assert uploaded.cert_pem.strip() == cert_pem.strip()

    listed = {c.domain: c for c in await mist.certificates.list(ref)}
    assert listed[domain].source == "uploaded"
    assert any(c.domain == domain for c in await mist.certificates.list())
    body = json.dumps([c.model_dump(mode="json") for c in listed.values()])
    key_body = "".join(key_pem.strip().splitlines()[1:-1])
    assert "PRIVATE KEY" not in body
    assert key_body[:40] not in body


async def test_an_uploaded_key_never_reaches_a_log_line(
    mist: MistAPI, caplog: pytest.LogCaptureFixture
) -> None:
    ref = await _app(mist)
    domain = f"{_unique('web')}.example.com"
    await mist.domains.add(ref, domain)
    cert_pem, key_pem = _self_signed(domain)
    _, other_key = _self_signed(domain)
    caplog.set_level("DEBUG")
    with pytest.raises(InvalidInput):
        await mist.certificates.upload(domain, cert_pem, other_key)
    await mist.certificates.upload(domain, cert_pem, key_pem)
    for pem in (key_pem, other_key):
        key_body = "".join(pem.strip().splitlines()[1:-1])
        assert key_body[:40] not in caplog.text


async def test_renewing_a_domain_without_a_certificate_is_not_found(mist: MistAPI) -> None:
    with pytest.raises(NotFound):
        await mist.certificates.renew(f"{_unique('nope')}.example.com")


# ---------------------------------------------------------------------------------------------- proxy


@pytest.mark.xdist_group("mist-proxy")  # expects no `mist-proxy` container
async def test_the_proxy_status_answers_with_traefik_by_default(mist: MistAPI) -> None:
    status = await mist.proxy.status()
    assert status.backend == "traefik"
    # No Traefik runs in the tests, and the status says so rather than assuming it serves.
    assert status.reachable is False and "mist proxy install" in status.detail
    assert status.routes >= 0 and status.domains >= 0


@pytest.mark.xdist_group("mist-proxy")  # expects no `mist-proxy` container
async def test_a_proxy_reload_routes_only_apps_that_have_a_live_deployment(mist: MistAPI) -> None:
    before = await mist.proxy.status()
    ref = await _app(mist)
    await mist.domains.add(ref, f"{_unique('web')}.example.com")
    status = await mist.proxy.reload()
    assert status.backend == "traefik"
    assert status.reachable is False  # the routes are written; no Traefik runs here to serve them
    assert (status.routes, status.domains) == (before.routes, before.domains)
    assert status.http_address and status.https_address
