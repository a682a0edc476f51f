"""A real daemon for the security tests, started as an operator would (``python -m mist_core.daemon``) on a
temporary data directory, with its log captured so tests can search it, and HTTP helpers to act as anyone.

Settings that would reach outside the machine or touch shared resources (the ACME server, a Caddy admin API)
are pointed at a closed port on 127.0.0.1 right after setup.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import importlib.util
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import docker
import httpx
import pytest

STARTUP_DEADLINE = 60.0
PROBLEM = "application/problem+json"
# A port nothing listens on: settings that name a remote service point here, so nothing leaves the machine.
CLOSED = "http://127.0.0.1:9"
SAFE_SETTINGS = {
    "acme_directory_url": f"{CLOSED}/directory",
    "caddy_admin_url": CLOSED,
}


def strong_password() -> str:
    return "Mist-" + uuid.uuid4().hex + "-pw"


def load_corpus() -> ModuleType:
    """``tests/unit/injection_corpus.py``, whatever the import mode."""
    path = Path(__file__).parents[1] / "unit" / "injection_corpus.py"
    spec = importlib.util.spec_from_file_location("injection_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def totp_code(secret: str, at: float | None = None) -> str:
    """RFC 6238 (HMAC-SHA1, 30 s, 6 digits), written here so the test does not trust the core's copy."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    step = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 1_000_000).zfill(6)


def is_problem(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith(PROBLEM)


def describe(response: httpx.Response) -> str:
    body = response.text
    return f"{response.request.method} {response.request.url.path} -> {response.status_code} {body[:300]!r}"


def self_signed(domain: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=60))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def _limit_open_files(limit: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


class Daemon:
    """One ``mistd`` process on its own data directory and Unix socket."""

    def __init__(
        self,
        root: Path,
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        open_files: int | None = None,
    ) -> None:
        """``args`` are added to the daemon's command line; ``open_files`` sets its open-file limit, soft and
        hard, as a service manager would (``LimitNOFILE=``)."""
        self.root = root
        self.data = root / "data"
        self.sock = root / "run" / "mist.sock"
        self.repos = root / "repos"
        self.repos.mkdir(parents=True, exist_ok=True)
        self.log_path = root / "daemon.log"
        self.signing_key = os.urandom(32)
        self.owner_password = strong_password()
        self.owner: dict[str, Any] = {}
        self.env = {
            **os.environ,
            "MIST_GIT_ROOTS": str(self.repos),
            # Generous: the tests log in hundreds of times from one address.
            "MIST_AUTH_RATE": "100000/10000",
            "MIST_METRICS_INTERVAL": "1",
            # One daemon serves the whole session, whose tests can take longer than the default 15 minutes
            # of an access token on a busy machine; expiry is tested with forged tokens and own daemons.
            "MIST_ACCESS_TOKEN_SECONDS": "14400",
            # The most talkative level: a secret must stay out of the log whatever an operator turns on.
            "MIST_LOG_LEVEL": "debug",
            # Known to the test so it can forge tokens that differ from real ones in one way only.
            "MIST_SIGNING_KEY": base64.b64encode(self.signing_key).decode(),
            **(env or {}),
        }
        for name in ("MIST_HOST", "MIST_TOKEN", "MIST_MASTER_KEY", "MIST_DATA_DIR", "MIST_SOCKET"):
            self.env.pop(name, None)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mist_core.daemon",
                "--data",
                str(self.data),
                "--socket",
                str(self.sock),
                *(args or []),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            preexec_fn=None if open_files is None else _limit_open_files(open_files),
        )
        self.http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.sock)), base_url="http://mist", timeout=60
        )
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the daemon exited with {self.proc.returncode}: {self.log_text()[-3000:]}"
                )
            try:
                if self.http.get("/v1/setup", timeout=2).status_code == 200:
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the daemon did not start serving: {self.log_text()[-3000:]}")

    # ------------------------------------------------------------------------------------------ HTTP

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"params": params, "headers": all_headers}
        if json is not None:
            kwargs["json"] = json
        return self.http.request(method, "/v1" + path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call and insist on a 2xx; the JSON body (or None)."""
        response = self.call(method, path, **kwargs)
        assert response.is_success, describe(response)
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    @property
    def owner_token(self) -> str:
        return str(self.owner["token"])

    def setup_owner(self, username: str = "owner") -> dict[str, Any]:
        self.owner = self.ok("POST", "/setup", json={"username": username, "password": self.owner_password})
        for key, value in SAFE_SETTINGS.items():
            self.ok("PUT", f"/settings/{key}", token=self.owner_token, json={"value": value})
        return self.owner

    def login(self, username: str, password: str, totp: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"username": username, "password": password}
        if totp is not None:
            body["totp"] = totp
        return self.ok("POST", "/login", json=body)

    def create_user(self, username: str, role: str, password: str) -> dict[str, Any]:
        return self.ok(
            "POST",
            "/users",
            token=self.owner_token,
            json={"username": username, "password": password, "role": role},
        )

    def create_token(self, session_token: str, scope: str, project: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": "t" + uuid.uuid4().hex[:8], "scope": scope}
        if project:
            body["project"] = project
        return self.ok("POST", "/tokens", token=session_token, json=body)

    # ------------------------------------------------------------------------------------------ inspection

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_bytes().decode(errors="replace")

    @property
    def instance_id(self) -> str | None:
        try:
            return (self.data / "instance-id").read_text().strip()
        except FileNotFoundError:
            return None

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self._remove_docker_leftovers()

    def _remove_docker_leftovers(self) -> None:
        """Containers, images, volumes and networks this daemon made (they carry its instance id); nothing else
        is touched."""
        instance = self.instance_id
        if not instance:
            return
        client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
        try:
            label = {"label": f"dev.mist.instance={instance}"}
            for container in client.containers.list(all=True, filters=label):
                container.remove(force=True)
            for image in client.images.list(filters=label):
                try:
                    client.images.remove(image.id, force=True)
                except docker.errors.APIError:
                    pass
            for volume in client.volumes.list(filters=label):
                volume.remove(force=True)
            for network in client.networks.list(filters=label):
                network.reload()
                for container in network.containers:
                    network.disconnect(container, force=True)
                network.remove()
        finally:
            client.close()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the security tests of a session, set up with an owner account."""
    running = Daemon(tmp_path_factory.mktemp("mistd"))
    try:
        running.setup_owner()
        yield running
    finally:
        running.stop()
