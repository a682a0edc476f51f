"""The daemon as an operator meets it: ``python -m mist_core.daemon`` started for real, on a temp data dir."""

from __future__ import annotations

import os
import signal
import socket
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


def test_plain_tcp_on_a_public_address_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        _daemon_cmd(tmp_path / "data", tmp_path / "mist.sock", "--listen", "0.0.0.0:18999"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "TLS" in result.stderr
    assert "--tls-cert" in result.stderr


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

    def api(self, token: str | None) -> object:
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
        async with RemoteMist(f"https://{listen}", verify=str(cert)) as mist:
            session = await mist.auth.setup("admin", "correct horse battery staple")
            assert session.user.username == "admin"
            assert (await mist.projects.create("over-tls")).name == "over-tls"
        # Plain HTTP on the TLS port gets no API answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{listen}/v1/setup", timeout=5).raise_for_status()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
