"""A domain served over HTTPS with a certificate Mist obtained itself: a real Caddy on 127.0.0.1, Pebble as the
ACME server (HTTP-01 answered through Caddy), a deployed app, renewal by a short certificate lifetime, and a
redeploy that moves the route to the new container."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from caddykit import free_port, request, running_caddy
from cryptography import x509
from gitutil import commit
from mistkit import PASSWORD, busybox_site, busybox_spec, deploy_and_wait, remove_everything_of
from pebble import start_pebble

from mist_core.local import LocalMist, open_embedded
from mist_core.models import Certificate, DeploymentState

pytestmark = pytest.mark.docker

DOMAIN = "shop.mist.test"


def serial_of(der: bytes | None) -> str:
    assert der is not None
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


async def wait_for_certificate(mist: LocalMist, *, not_serial: str = "", timeout: float = 60) -> Certificate:
    async with asyncio.timeout(timeout):
        while True:
            for cert in await mist.certificates.list():
                if cert.domain == DOMAIN and cert.status == "issued" and cert.serial != not_serial:
                    return cert
            await asyncio.sleep(0.2)


async def https_when_ready(port: int, root: str, timeout: float = 15) -> object:
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await asyncio.to_thread(request, port, DOMAIN, tls_ca=root)
            except OSError:
                await asyncio.sleep(0.2)


async def test_a_domain_gets_a_certificate_over_http_01_through_caddy_is_served_over_https_and_renewed(
    tmp_path: Path, git_repo, project_name, busybox
):
    http_port, https_port = free_port(), free_port()
    with running_caddy(tmp_path / "caddy") as caddy_admin:
        pebble = start_pebble(tmp_path / "pebble", http_port=http_port, validity_seconds=15)
        mist = await open_embedded(tmp_path / "data", git_roots=[tmp_path])
        assert isinstance(mist, LocalMist)
        try:
            await mist.auth.setup("admin", PASSWORD)
            for key, value in {
                "proxy_backend": "caddy",
                "caddy_admin_url": caddy_admin,
                "proxy_http_address": f"127.0.0.1:{http_port}",
                "proxy_https_address": f"127.0.0.1:{https_port}",
                "acme_directory_url": pebble.directory_url,
                "acme_ca_bundle": pebble.ca_bundle,
                "acme_challenge_address": f"127.0.0.1:{free_port()}",
                "stop_grace_period": "2",
            }.items():
                await mist.settings.set(key, value)

            repo = git_repo(busybox_site("hello over https"))
            ref = f"{project_name}/web"
            await mist.projects.create(project_name)
            await mist.apps.create(ref, busybox_spec(repo))
            domain = await mist.domains.add(ref, DOMAIN)
            assert domain.https and [d.name for d in await mist.domains.list(ref)] == [DOMAIN]
            first = await deploy_and_wait(mist, ref)
            assert first.state == DeploymentState.live

            cert = await wait_for_certificate(mist)
            assert cert.source == "acme" and cert.not_after is not None
            root = pebble.root_pem()

            # HTTPS with the domain as SNI: the app's page, with the certificate Pebble issued (Caddy gets it
            # right after it is stored).
            response = await https_when_ready(https_port, root)
            assert response.status == 200 and response.body == b"hello over https"
            assert serial_of(response.cert_der) == cert.serial.lower().lstrip("0")
            assert response.headers.get("x-content-type-options") == "nosniff"
            # Plain HTTP is redirected to HTTPS.
            plain = await asyncio.to_thread(request, http_port, DOMAIN)
            assert (
                plain.status in (301, 308) and plain.headers["location"] == f"https://{DOMAIN}:{https_port}/"
            )

            # The certificate lives 15 s: inside its renewal window, the scheduler gets a new one and Caddy
            # serves it.
            renewed = cert
            async with asyncio.timeout(60):
                while renewed.serial == cert.serial:
                    await mist.core.cert_scheduler.tick()  # type: ignore[union-attr]
                    renewed = await wait_for_certificate(mist, timeout=30)
                    await asyncio.sleep(0.5)
            async with asyncio.timeout(20):
                while True:
                    response = await asyncio.to_thread(request, https_port, DOMAIN, tls_ca=root)
                    if serial_of(response.cert_der) == renewed.serial.lower().lstrip("0"):
                        break
                    await asyncio.sleep(0.2)
            assert response.body == b"hello over https"

            # A redeploy moves the route to the new container.
            commit(repo, {"index.html": "second version"}, "second")
            second = await deploy_and_wait(mist, ref)
            assert second.state == DeploymentState.live
            response = await asyncio.to_thread(request, https_port, DOMAIN, tls_ca=root)
            assert response.body == b"second version"

            # Removing the domain stops it being served.
            await mist.domains.remove(ref, DOMAIN)
            with pytest.raises(Exception):  # noqa: B017 - no certificate for the name any more: the handshake fails
                await asyncio.to_thread(request, https_port, DOMAIN, tls_ca=root)
        finally:
            await mist.close()
            pebble.stop()
            await asyncio.to_thread(remove_everything_of, project_name)
