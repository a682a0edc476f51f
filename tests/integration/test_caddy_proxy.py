"""Routing through a real Caddy (a host process with its admin API and listeners on 127.0.0.1) to a real
busybox httpd container: HTTPS with the certificate Mist loaded, the HTTP redirect, headers, path prefixes,
removed domains and the ACME challenge path."""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import httpx
import pytest
from caddykit import free_port, request, running_caddy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mist_core.domains import DomainOptions, add_domain, remove_domain
from mist_core.proxy import CaddyProxy, ProxyError, route_table
from mist_core.proxy.routes import DomainRoute, Route, RouteTable, with_hooks_route
from mist_core.store import Store, ts

pytestmark = pytest.mark.docker


def _self_signed(names: list[str]) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


@pytest.fixture
def caddy_admin(tmp_path: Path) -> Iterator[str]:
    """A Caddy process whose admin API listens on a free loopback port; its storage under tmp_path."""
    with running_caddy(tmp_path) as admin:
        yield admin


@pytest.fixture
def app_container(docker_client: docker.DockerClient, busybox: str) -> Iterator[tuple[str, str]]:
    """A busybox httpd on port 8080 serving / and /api/; yields (container name, its IP address)."""
    name = f"mist-test-proxy-{uuid.uuid4().hex[:8]}"
    script = (
        "mkdir -p /www/api && echo 'hello from the app' > /www/index.html"
        " && echo 'the api' > /www/api/index.html && exec httpd -f -p 8080 -h /www"
    )
    container = docker_client.containers.run(
        busybox, ["sh", "-c", script], name=name, detach=True, labels={"dev.mist.test": "1"}
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            container.reload()
            ip = container.attrs["NetworkSettings"]["IPAddress"]
            if ip:
                try:
                    if httpx.get(f"http://{ip}:8080/", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} never answered: {container.logs()!r}")
            time.sleep(0.1)
        yield name, ip
    finally:
        container.remove(force=True)


@pytest.fixture
def challenge_responder() -> Iterator[str]:
    """Stands in for Mist's ACME challenge responder: answers every path with the path itself."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"challenge answer for {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _store_with_live_app(tmp_path: Path, container: str) -> tuple[Store, int]:
    store = await Store.open(tmp_path / "mist.db")
    async with store.write() as w:
        await w.execute(
            "INSERT INTO projects (id, name, created_at, updated_at) VALUES (1, 'shop', ?, ?)", (ts(), ts())
        )
        spec = {"git_url": "https://example.com/a.git", "port": 8080}
        await w.execute(
            "INSERT INTO apps (id, project_id, name, spec, status, created_at, updated_at) "
            "VALUES (1, 1, 'web', ?, 'live', ?, ?)",
            (json.dumps(spec), ts(), ts()),
        )
        await w.execute(
            "INSERT INTO deployments (id, app_id, state, ref, container_name, config, created_at) "
            "VALUES (7, 1, 'live', 'main', ?, ?, ?)",
            (container, json.dumps({"spec": spec}), ts()),
        )
        await w.execute("UPDATE apps SET live_deployment_id = 7 WHERE id = 1")
    return store, 1


async def test_caddy_serves_an_app_over_https_with_the_loaded_certificate_headers_and_redirects(
    tmp_path: Path, caddy_admin: str, app_container: tuple[str, str], challenge_responder: str
) -> None:
    container, ip = app_container
    http_port, https_port = free_port(), free_port()
    proxy = CaddyProxy(
        caddy_admin, http_address=f"127.0.0.1:{http_port}", https_address=f"127.0.0.1:{https_port}"
    )
    store, app_id = await _store_with_live_app(tmp_path, container)
    try:
        await add_domain(
            store,
            app_id,
            "app.test",
            DomainOptions(hsts_max_age=3600, www_redirect="to-apex", headers={"X-Served-By": "mist"}),
        )
        await add_domain(store, app_id, "api.app.test", DomainOptions(path_prefix="/api"))
        await add_domain(store, app_id, "plain.app.test", DomainOptions(https=False))
        resolve = {container: ip}
        table = await route_table(
            store, challenge_upstream=challenge_responder, upstream_resolver=resolve.__getitem__
        )
        cert_pem, key_pem = _self_signed(["app.test", "www.app.test", "api.app.test"])
        certificates = {name: (cert_pem, key_pem) for name in table.host_names()}
        await proxy.load(table, certificates)

        # HTTPS: the app's page, the certificate Mist loaded, security headers, HSTS and the custom header.
        page = request(https_port, "app.test", tls_ca=cert_pem)
        assert page.status == 200
        assert page.body.strip() == b"hello from the app"
        loaded = x509.load_pem_x509_certificate(cert_pem.encode())
        assert page.cert_der == loaded.public_bytes(serialization.Encoding.DER)
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert page.headers["strict-transport-security"] == "max-age=3600"
        assert page.headers["x-served-by"] == "mist"

        # HTTP: a redirect to HTTPS on the same host and path.
        plain = request(http_port, "app.test", "/some/page?x=1")
        assert plain.status in (301, 308)
        assert plain.headers["location"] == f"https://app.test:{https_port}/some/page?x=1"

        # The www name redirects to the apex.
        www = request(https_port, "www.app.test", "/a", tls_ca=cert_pem)
        assert www.status in (301, 308)
        assert www.headers["location"] == f"https://app.test:{https_port}/a"

        # A path prefix: only requests under it reach the app.
        api = request(https_port, "api.app.test", "/api/", tls_ca=cert_pem)
        assert (api.status, api.body.strip()) == (200, b"the api")
        assert request(https_port, "api.app.test", "/", tls_ca=cert_pem).status == 404

        # A domain with HTTPS off is served over plain HTTP, without HSTS.
        served = request(http_port, "plain.app.test")
        assert served.status == 200 and served.body.strip() == b"hello from the app"
        assert "strict-transport-security" not in served.headers

        # The ACME challenge path goes to Mist's responder, whatever the host.
        challenge = request(http_port, "app.test", "/.well-known/acme-challenge/tok123")
        assert challenge.status == 200
        assert challenge.body == b"challenge answer for /.well-known/acme-challenge/tok123"

        status = await proxy.status()
        assert "mist_https" in status["apps"]["http"]["servers"]

        # A removed domain stops being served after the next load.
        await remove_domain(store, app_id, "plain.app.test")
        table = await route_table(
            store, challenge_upstream=challenge_responder, upstream_resolver=resolve.__getitem__
        )
        await proxy.load(table, certificates)
        assert request(http_port, "plain.app.test").status == 404
        assert request(https_port, "app.test", tls_ca=cert_pem).status == 200
    finally:
        await store.close()


async def test_caddy_refusing_a_config_raises_proxy_error_with_caddys_message(
    tmp_path: Path, caddy_admin: str
) -> None:
    port = free_port()
    proxy = CaddyProxy(caddy_admin, http_address=f"127.0.0.1:{port}", https_address=f"127.0.0.1:{port}")
    store = await Store.open(tmp_path / "mist.db")
    try:
        table = await route_table(store, challenge_upstream="127.0.0.1:9")
        # A key that does not match the certificate: Caddy refuses the whole config.
        cert_pem, _ = _self_signed(["app.test"])
        _, other_key = _self_signed(["app.test"])
        with pytest.raises(ProxyError) as caught:
            await proxy.load(table, {"app.test": (cert_pem, other_key)})
        assert "Caddy refused" in caught.value.message
        assert len(caught.value.message) > len("Caddy refused the configuration: ")
    finally:
        await store.close()


async def test_an_unreachable_caddy_is_a_proxy_error_naming_the_setting() -> None:
    proxy = CaddyProxy(
        f"http://127.0.0.1:{free_port()}", http_address="127.0.0.1:1", https_address="127.0.0.1:2"
    )
    with pytest.raises(ProxyError, match="caddy_admin_url"):
        await proxy.status()


def _late_app(port: int, delay: float) -> tuple[threading.Thread, list[ThreadingHTTPServer]]:
    """An HTTP server that starts listening on ``port`` only after ``delay`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"late app"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    servers: list[ThreadingHTTPServer] = []

    def serve() -> None:
        time.sleep(delay)
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        servers.append(server)
        server.serve_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, servers


async def test_caddy_retries_a_failed_dial_to_an_app_for_a_bounded_time(
    tmp_path: Path, caddy_admin: str
) -> None:
    """A connection the app's container cannot take at once (starting, stopping, its backlog full) delays a
    request instead of failing it; an app that never answers still gets a 502."""
    http_port, app_port, dead_port = free_port(), free_port(), free_port()
    proxy = CaddyProxy(
        caddy_admin, http_address=f"127.0.0.1:{http_port}", https_address=f"127.0.0.1:{free_port()}"
    )

    def route(app: str, app_id: int, port: int) -> Route:
        return Route(
            project="shop",
            app=app,
            app_id=app_id,
            deployment_id=app_id,
            container=f"mist-shop-{app}-{app_id}",
            upstream=f"127.0.0.1:{port}",
            port=port,
            port_assumed=False,
            domains=(DomainRoute(name=f"{app}.shop.test", https=False),),
        )

    table = RouteTable(
        routes=(route("late", 1, app_port), route("dead", 2, dead_port)), challenge_upstream="127.0.0.1:9"
    )
    await proxy.load(table)
    _, servers = _late_app(app_port, delay=0.4)
    try:
        response = await asyncio.to_thread(request, http_port, "late.shop.test")
        assert response.status == 200 and response.body == b"late app"
        assert (await asyncio.to_thread(request, http_port, "dead.shop.test")).status == 502
    finally:
        deadline = time.monotonic() + 5
        while not servers and time.monotonic() < deadline:
            time.sleep(0.05)
        for server in servers:
            server.shutdown()
            server.server_close()


async def test_mists_own_hooks_route_reaches_the_hooks_listener_before_any_app_on_that_host(
    tmp_path: Path, caddy_admin: str, app_container: tuple[str, str], challenge_responder: str
) -> None:
    # The "challenge responder" stands in for the daemon's hooks listener: it answers every path with itself.
    container, ip = app_container
    http_port, https_port = free_port(), free_port()
    proxy = CaddyProxy(
        caddy_admin, http_address=f"127.0.0.1:{http_port}", https_address=f"127.0.0.1:{https_port}"
    )
    store, app_id = await _store_with_live_app(tmp_path, container)
    try:
        await add_domain(store, app_id, "mist.app.test", DomainOptions(https=False))
        table = await route_table(
            store, challenge_upstream=challenge_responder, upstream_resolver={container: ip}.__getitem__
        )
        table = with_hooks_route(table, "http://mist.app.test", challenge_responder)
        assert table.routes[0].key == "_mist--hooks"
        await proxy.load(table, {})

        hook = request(http_port, "mist.app.test", "/hooks/Hk7Qm2xV9aLp")
        assert (hook.status, hook.body) == (200, b"challenge answer for /hooks/Hk7Qm2xV9aLp")
        # Everything else on that host is still the app's.
        page = request(http_port, "mist.app.test", "/")
        assert (page.status, page.body.strip()) == (200, b"hello from the app")
    finally:
        await store.close()
