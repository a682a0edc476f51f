"""The daemon as an operator meets it: ``python -m mist_core.daemon`` started for real, on a temp data dir."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mist_core.server import create_app

STARTUP_DEADLINE = 60.0


def _daemon_cmd(data: Path, sock: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mist_core.daemon", "--data", str(data), "--socket", str(sock), *extra]


def _answers(sock: Path) -> bool:
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://mist") as c:
            return c.get("/v1/setup", timeout=2).status_code == 200
    except (httpx.HTTPError, OSError):
        return False


def _wait_until_serving(proc: subprocess.Popen[bytes], sock: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"daemon exited with {proc.returncode}: {err.decode()}")
        if _answers(sock):
            return
        time.sleep(0.1)
    raise AssertionError("daemon did not start serving")


class RunningDaemon:
    def __init__(self, data: Path, sock: Path) -> None:
        self.data = data
        self.sock = sock
        self.proc = subprocess.Popen(_daemon_cmd(data, sock), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_until_serving(self.proc, sock)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.sock)), base_url="http://mist")

    def terminate(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, err.decode()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    running = RunningDaemon(tmp_path / "data", tmp_path / "run" / "mist.sock")
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.communicate()


def test_socket_is_readable_and_writable_by_owner_and_group_only(daemon: RunningDaemon) -> None:
    mode = stat.S_IMODE(os.stat(daemon.sock).st_mode)
    assert mode == 0o660


def test_second_daemon_on_the_same_data_dir_is_refused(daemon: RunningDaemon, tmp_path: Path) -> None:
    result = subprocess.run(
        _daemon_cmd(daemon.data, tmp_path / "other.sock"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "already running" in result.stderr
    assert "Traceback" not in result.stderr
    assert _answers(daemon.sock)


def test_second_daemon_on_a_live_socket_is_refused(daemon: RunningDaemon, tmp_path: Path) -> None:
    result = subprocess.run(
        _daemon_cmd(tmp_path / "other-data", daemon.sock), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "already answers" in result.stderr
    assert _answers(daemon.sock)


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "mist.sock"
    sock.parent.mkdir()
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(sock))
    leftover.close()  # the file stays behind, as after a crash
    running = RunningDaemon(tmp_path / "data", sock)
    try:
        assert _answers(sock)
    finally:
        running.terminate()


def test_sigterm_shuts_down_cleanly_and_removes_the_socket(daemon: RunningDaemon) -> None:
    code, err = daemon.terminate()
    assert code == 0, err
    assert "Traceback" not in err
    assert not daemon.sock.exists()


def test_tls_files_must_come_in_pairs(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("")
    result = subprocess.run(
        _daemon_cmd(
            tmp_path / "data", tmp_path / "mist.sock", "--listen", "127.0.0.1:18999", "--tls-cert", str(cert)
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "--tls-key" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_input_is_problem_json_naming_the_field(daemon: RunningDaemon) -> None:
    with daemon.client() as c:
        token = c.post("/v1/setup", json={"username": "owner", "password": "correct horse battery"}).json()[
            "token"
        ]
        response = c.post(
            "/v1/projects", json={"description": "no name"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["field"] == "name"
    assert "name" in body["detail"]


def test_unknown_route_is_problem_json_not_found(daemon: RunningDaemon) -> None:
    with daemon.client() as c:
        response = c.get("/v1/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_found"


def test_missing_token_is_problem_json_unauthenticated(daemon: RunningDaemon) -> None:
    with daemon.client() as c:
        c.post(
            "/v1/setup", json={"username": "owner", "password": "correct horse battery"}
        ).raise_for_status()
        response = c.get("/v1/projects")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_openapi_document_is_served_and_docs_ui_is_not(daemon: RunningDaemon) -> None:
    with daemon.client() as c:
        spec = c.get("/v1/openapi.json").json()
        assert "/v1/apps" in spec["paths"]
        assert c.get("/docs").status_code == 404


class _BrokenCore:
    """A core whose every call fails the way a bug would, to see what the HTTP layer lets out."""

    def api(self, token: str | None, **caller: object) -> object:
        raise RuntimeError("boom at /var/lib/mist/secret-path with password=hunter2")


async def test_internal_errors_are_500_problem_json_without_a_traceback() -> None:
    transport = httpx.ASGITransport(app=create_app(_BrokenCore()), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://mist") as c:
        response = await c.get("/v1/projects")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "internal"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert "secret-path" not in response.text


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as an operator would bring them."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mist test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


async def test_the_api_is_served_over_tls_on_tcp_and_remote_mist_works_through_it(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    from mist_core.client import RemoteMist

    cert, key = _self_signed(tmp_path)
    sock = tmp_path / "run" / "mist.sock"
    listen = f"127.0.0.1:{unused_tcp_port}"
    proc = subprocess.Popen(
        _daemon_cmd(
            tmp_path / "data", sock, "--listen", listen, "--tls-cert", str(cert), "--tls-key", str(key)
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until_serving(proc, sock)
        async with RemoteMist(
            f"https://{listen}", verify=ssl.create_default_context(cafile=str(cert))
        ) as mist:
            session = await mist.auth.setup("admin", "correct horse battery staple")
            assert session.user.username == "admin"
            assert (await mist.projects.create("over-tls")).name == "over-tls"
        # Plain HTTP on the TLS port gets no API answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{listen}/v1/setup", timeout=5).raise_for_status()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


async def test_internal_errors_carry_the_security_headers_too() -> None:
    transport = httpx.ASGITransport(app=create_app(_BrokenCore()), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://mist") as c:
        response = await c.get("/v1/projects")
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


async def test_every_account_operation_round_trips_through_remote_mist(daemon: RunningDaemon) -> None:
    """Each account route answers what ``RemoteMist`` expects (the models, the status codes, the query
    parameters): users, members, invitations, sessions, tokens, two-factor, password, key rotation, audit."""
    from datetime import UTC, datetime, timedelta

    from mist_core.auth.totp import totp_now
    from mist_core.client import RemoteMist
    from mist_core.errors import NotFound, Unauthenticated
    from mist_core.models import UserChanges

    password = "correct horse battery staple"
    host = f"unix://{daemon.sock}"
    started = datetime.now(UTC) - timedelta(minutes=1)
    async with RemoteMist(host) as owner, RemoteMist(host) as dev, RemoteMist(host) as invited:
        setup = await owner.auth.setup("owner", password)
        assert setup.refresh_token and owner.refresh_token == setup.refresh_token
        await owner.projects.create("shop")

        # users
        created = await owner.users.create("dev", "tangerine quartz meadow", role="developer")
        assert (await owner.users.get("dev")).id == created.id
        assert (
            await owner.users.update("dev", UserChanges(full_name="Dee Veloper"))
        ).full_name == "Dee Veloper"
        assert (await owner.users.set_role("dev", "viewer")).role == "viewer"
        assert (await owner.users.set_role("dev", "developer")).role == "developer"
        assert {u.username for u in await owner.users.list()} == {"owner", "dev"}

        # members
        assert (await owner.members.add("shop", "dev", "developer")).role == "developer"
        assert {m.username: m.role for m in await owner.members.list("shop")}["dev"] == "developer"

        # sessions and password
        await dev.auth.login("dev", "tangerine quartz meadow")
        assert (await dev.auth.whoami()).username == "dev"
        mine = await dev.sessions.list()
        assert [s.current for s in mine] == [True]
        assert mine[0].source == "unix"
        assert mine[0].user_agent == "mist-client"
        await dev.auth.change_password("tangerine quartz meadow", "another long passphrase")
        every = await owner.sessions.list(username="*")
        assert {s.username for s in every} >= {"owner", "dev"}
        await owner.sessions.revoke(mine[0].id)
        with pytest.raises(Unauthenticated):
            await dev.auth.whoami()
        await dev.auth.login("dev", "another long passphrase")

        # tokens: the secret works as a bearer token
        created_token = await dev.tokens.create("ci", scope="read", project="shop", expires_days=None)
        assert created_token.info.expires_at is None
        assert [t.name for t in await dev.tokens.list()] == ["ci"]
        assert [t.username for t in await owner.tokens.list(all=True)] == ["dev"]
        async with RemoteMist(host, created_token.token) as script:
            assert [p.name for p in (await script.projects.list()).items] == ["shop"]
        await dev.tokens.revoke(created_token.info.id)
        async with RemoteMist(host, created_token.token) as script:
            with pytest.raises(Unauthenticated):
                await script.projects.list()

        # two-factor
        totp = await dev.auth.totp_setup()
        assert totp.uri.startswith("otpauth://")
        recovery = await dev.auth.totp_enable(totp_now(totp.secret))
        assert recovery.codes
        assert (await dev.auth.whoami()).totp_enabled
        await dev.auth.totp_disable("another long passphrase")

        # invitations
        invite = await owner.invites.create(
            username="newbie", role="viewer", project="shop", project_role="viewer"
        )
        assert [i.id for i in await owner.invites.list()] == [invite.invite.id]
        joined = await invited.invites.accept(invite.token, "newbie", "violet harbour lantern")
        assert joined.user.username == "newbie" and (await invited.auth.whoami()).role == "viewer"
        second = await owner.invites.create(email="later@example.com")
        await owner.invites.revoke(second.invite.id)

        # members removed, users deleted (projects pass to the caller)
        await owner.members.remove("shop", "newbie")
        await owner.users.delete("newbie", reassign_to="owner")
        with pytest.raises(NotFound):
            await owner.users.get("newbie")

        # secrets and audit
        rotation = await owner.secrets.rotate_key()
        assert rotation.key_id
        page = await owner.audit.list(
            action="user.", since=started, until=datetime.now(UTC) + timedelta(minutes=1)
        )
        assert page.items and all(e.action.startswith("user.") for e in page.items)
        assert (await owner.audit.list(until=started)).items == []

        await owner.auth.logout()
        assert owner.token is None and owner.refresh_token is None


def test_the_help_names_the_hooks_listener_and_its_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mist_core.daemon", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "--hooks-listen" in result.stdout and "MIST_HOOKS_LISTEN" in result.stdout


@pytest.mark.parametrize("value", ["8080", "127.0.0.1:http", "127.0.0.1:0"])
def test_a_malformed_hooks_address_is_refused_at_start(tmp_path: Path, value: str) -> None:
    result = subprocess.run(
        _daemon_cmd(tmp_path / "data", tmp_path / "mist.sock", "--hooks-listen", value),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "--hooks-listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_hooks_listener_from_the_environment_serves_only_hooks_over_plain_http(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    sock = tmp_path / "run" / "mist.sock"
    hooks = f"http://127.0.0.1:{unused_tcp_port}"
    env = {**os.environ, "MIST_HOOKS_LISTEN": f"127.0.0.1:{unused_tcp_port}"}
    proc = subprocess.Popen(
        _daemon_cmd(tmp_path / "data", sock), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        _wait_until_serving(proc, sock)
        unknown = httpx.post(f"{hooks}/hooks/no-such-hook", content=b"{}", timeout=10)
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("application/problem+json")
        assert unknown.headers["x-content-type-options"] == "nosniff"
        api = httpx.get(f"{hooks}/v1/setup", timeout=10)
        assert api.status_code == 404 and api.json()["code"] == "not_found"
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://mist") as c:
            assert c.get("/v1/setup").status_code == 200
            assert c.post("/hooks/no-such-hook", content=b"{}").status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
