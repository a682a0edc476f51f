"""The daemon's transport as an attacker and an operator meet it: real ``mistd`` processes on a temp data dir,
reached over their Unix socket and over TLS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mist_core.client import CertificateMismatch, RemoteMist, certificate_fingerprint, fetch_certificate
from mist_core.errors import DaemonUnavailable, TooManyAttempts, Unauthenticated
from mist_core.models import Session
from mist_core.server.certificate import ensure_self_signed

STARTUP_DEADLINE = 60.0
PASSWORD = "correct horse battery staple"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}
FINGERPRINT = re.compile(r"fingerprint (SHA256:(?:[0-9a-f]{2}:){31}[0-9a-f]{2})")


class Mistd:
    """One ``python -m mist_core.daemon`` process; ``stop()`` returns its stderr."""

    def __init__(self, tmp: Path, *extra: str, env: dict[str, str] | None = None, data: Path | None = None):
        self.data = data or tmp / "data"
        self.sock = tmp / "run" / "mist.sock"
        cmd = [sys.executable, "-m", "mist_core.daemon", "--data", str(self.data), "--socket", str(self.sock)]
        self.proc = subprocess.Popen(
            [*cmd, *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.stderr = ""
        deadline = time.monotonic() + STARTUP_DEADLINE
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mistd did not start: {self.stop()}")
            time.sleep(0.1)

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.sock)), base_url="http://mist")

    def _answers(self) -> bool:
        try:
            with self.client() as c:
                return c.get("/v1/setup", timeout=2).status_code == 200
        except (httpx.HTTPError, OSError):
            return False

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.stderr = err.decode()
        return self.stderr

    def fingerprint(self) -> str:
        """The fingerprint the daemon printed at start (read after ``stop()``)."""
        found = FINGERPRINT.search(self.stderr)
        assert found, self.stderr
        return found.group(1)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Mistd]:
    d = Mistd(tmp_path)
    try:
        yield d
    finally:
        d.stop()


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    return body  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------- headers


def test_every_answer_carries_the_security_headers(daemon: Mistd) -> None:
    with daemon.client() as c:
        answers = [
            c.get("/v1/setup"),
            c.get("/v1/openapi.json"),
            c.get("/v1/projects"),  # 409 setup_required / 401: errors too
            c.get("/v1/no/such/route"),
            c.post("/v1/login", content=b"{not json", headers={"content-type": "application/json"}),
        ]
    for response in answers:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, name, response.headers)
        # Plain HTTP (the local socket) gets no HSTS: it only means something over TLS.
        assert "strict-transport-security" not in response.headers


def test_a_cors_preflight_gets_no_access_control_headers(daemon: Mistd) -> None:
    with daemon.client() as c:
        response = c.options(
            "/v1/login",
            headers={
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        simple = c.get("/v1/setup", headers={"Origin": "https://evil.example"})
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")
    for r in (response, simple):
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]


# ---------------------------------------------------------------------------------------------- body size


def test_a_body_declared_larger_than_the_limit_is_refused_with_413(daemon: Mistd) -> None:
    big = b'{"username": "' + b"a" * (1024 * 1024 + 1) + b'", "password": "x"}'
    with daemon.client() as c:
        response = c.post("/v1/setup", content=big, headers={"content-type": "application/json"})
    body = _assert_problem(response, 413, "body_too_large")
    assert "bytes" in str(body["detail"])
    with daemon.client() as c:
        assert c.get("/v1/setup").json()["needs_setup"] is True  # nothing was created


def test_a_chunked_body_is_counted_while_it_streams_and_refused_past_the_limit(daemon: Mistd) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "'
        for _ in range(17):  # 17 x 64 KiB: past 1 MiB, with no Content-Length to announce it
            yield b"a" * 65536
        yield b'", "password": "x"}'

    with daemon.client() as c:
        response = c.post("/v1/setup", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    _assert_problem(response, 413, "body_too_large")


def test_a_body_under_the_limit_still_reaches_the_core(daemon: Mistd) -> None:
    with daemon.client() as c:
        response = c.post(
            "/v1/setup", json={"username": "owner", "password": PASSWORD, "padding": "a" * 500_000}
        )
    # Read and parsed (so refused for its unknown field), not cut off by the size limit.
    body = _assert_problem(response, 422, "invalid_input")
    assert body["field"] == "padding"


# ---------------------------------------------------------------------------------------------- rate limit


def test_credential_endpoints_are_rate_limited_per_address_with_retry_after(tmp_path: Path) -> None:
    d = Mistd(tmp_path, env={"MIST_AUTH_RATE": "3/0.01"})
    try:
        with d.client() as c:
            # Malformed bodies never reach the core, so what stops the 4th call is the limiter, not a lockout.
            first = [c.post("/v1/login", json={}).status_code for _ in range(3)]
            limited = c.post("/v1/login", json={})
            other_route = c.post("/v1/refresh", json={})
            unlimited = c.get("/v1/setup")
    finally:
        d.stop()
    assert first == [422, 422, 422]
    body = _assert_problem(limited, 429, "too_many_attempts")
    retry = int(limited.headers["retry-after"])
    assert retry >= 1
    assert body["extra"] == {"retry_after": retry}
    assert limited.headers["x-content-type-options"] == "nosniff"
    assert other_route.status_code == 422  # each endpoint has its own bucket
    assert unlimited.status_code == 200


async def test_remote_mist_raises_too_many_attempts_with_the_wait(tmp_path: Path) -> None:
    d = Mistd(tmp_path, "--auth-rate", "1/0.01")
    try:
        async with RemoteMist(d.host) as mist:
            await mist.auth.setup("owner", PASSWORD)
            with pytest.raises(Unauthenticated):
                await mist.auth.login("owner", "not the password at all")
            with pytest.raises(TooManyAttempts) as refused:
                await mist.auth.login("owner", PASSWORD)
    finally:
        d.stop()
    assert refused.value.extra["retry_after"] >= 1
    assert "wait" in refused.value.message


# ---------------------------------------------------------------------------------------------- socket


def test_socket_is_0660_and_belongs_to_the_socket_group_when_it_exists(tmp_path: Path) -> None:
    import grp

    group = grp.getgrnam("nogroup")  # stands in for `mist`: any existing group the daemon can hand it to
    d = Mistd(tmp_path, "--socket-group", "nogroup")
    try:
        info = os.stat(d.sock)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == group.gr_gid
        assert os.stat(d.sock.parent).st_gid == group.gr_gid
    finally:
        d.stop()


def test_a_missing_socket_group_leaves_the_socket_0660_with_the_daemons_group(tmp_path: Path) -> None:
    d = Mistd(tmp_path, env={"MIST_SOCKET_GROUP": "no-such-group-for-mist"})
    try:
        info = os.stat(d.sock)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == os.getegid()
    finally:
        d.stop()


# ---------------------------------------------------------------------------------------------- TLS


def test_tcp_without_a_certificate_gets_a_generated_one_kept_across_restarts(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    listen = f"127.0.0.1:{unused_tcp_port}"
    first = Mistd(tmp_path, "--listen", listen)
    try:
        pem, presented = fetch_certificate(f"https://{listen}")
        with httpx.Client(verify=False) as c:
            over_tls = c.get(f"https://{listen}/v1/setup")
        # Plain HTTP on the TLS port gets no API answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{listen}/v1/setup", timeout=5).raise_for_status()
    finally:
        first.stop()
    assert first.fingerprint() == presented == certificate_fingerprint(pem)
    assert over_tls.status_code == 200
    assert over_tls.headers["strict-transport-security"].startswith("max-age=")
    key = first.data / "tls" / "api.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700

    second = Mistd(tmp_path, "--listen", listen)
    try:
        assert fetch_certificate(f"https://{listen}")[1] == presented
    finally:
        second.stop()
    assert second.fingerprint() == presented


def test_tcp_on_a_public_address_is_tls_too_and_never_plain(tmp_path: Path) -> None:
    # Only the options are checked here (no listener is opened on a public address): TLS is always on.
    from mist_core.daemon import DaemonOptions, check_tcp_options

    options = DaemonOptions(data_dir=tmp_path / "data", socket_path=None, listen="0.0.0.0:7443")
    assert check_tcp_options(options) == ("0.0.0.0", 7443)


@pytest.fixture
def tls_daemon(tmp_path: Path, unused_tcp_port: int) -> Iterator[tuple[Mistd, str, str]]:
    listen = f"127.0.0.1:{unused_tcp_port}"
    d = Mistd(tmp_path, "--listen", listen, env={"MIST_ACCESS_TOKEN_SECONDS": "900"})
    pem = (d.data / "tls" / "api.crt").read_text()
    try:
        yield d, f"https://{listen}", pem
    finally:
        d.stop()


async def test_remote_mist_with_the_pinned_certificate_works(tls_daemon: tuple[Mistd, str, str]) -> None:
    _, host, pem = tls_daemon
    async with RemoteMist(host, certificate=pem) as mist:
        session = await mist.auth.setup("owner", PASSWORD)
        assert session.user.username == "owner"
        assert (await mist.auth.whoami()).username == "owner"
        sessions = await mist.sessions.list()
    # The daemon saw the TCP peer's address, not "unix".
    assert [s.source for s in sessions if s.current] == ["127.0.0.1"]


async def test_remote_mist_with_another_pinned_certificate_refuses_and_names_both(
    tls_daemon: tuple[Mistd, str, str], tmp_path: Path
) -> None:
    _, host, pem = tls_daemon
    other_cert, _, _ = ensure_self_signed(tmp_path / "other", ["127.0.0.1"])
    other = other_cert.read_text()
    async with RemoteMist(host, certificate=other) as mist:
        with pytest.raises(CertificateMismatch) as refused:
            await mist.auth.status()
    assert isinstance(refused.value, DaemonUnavailable)
    message = refused.value.message
    assert certificate_fingerprint(pem) in message  # what the daemon presented
    assert certificate_fingerprint(other) in message  # what was pinned
    assert "log in again" in message


async def test_remote_mist_without_a_pin_does_not_trust_a_self_signed_daemon(
    tls_daemon: tuple[Mistd, str, str],
) -> None:
    _, host, pem = tls_daemon
    async with RemoteMist(host) as mist:
        with pytest.raises(DaemonUnavailable) as refused:
            await mist.auth.status()
    assert not isinstance(refused.value, CertificateMismatch)
    assert "not trusted" in refused.value.message
    assert certificate_fingerprint(pem) in refused.value.message


# ---------------------------------------------------------------------------------------------- refresh


async def _wait_until_expired(d: Mistd, token: str) -> None:
    """Until the daemon calls ``token`` expired (the access token lives one second here)."""
    async with httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=str(d.sock)), base_url="http://mist"
    ) as c:
        for _ in range(200):
            response = await c.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401:
                assert response.json()["code"] == "token_expired"
                return
            await asyncio.sleep(0.1)
    raise AssertionError("the access token never expired")


@pytest.fixture
def short_tokens(tmp_path: Path) -> Iterator[Mistd]:
    d = Mistd(tmp_path, env={"MIST_ACCESS_TOKEN_SECONDS": "1", "MIST_METRICS_INTERVAL": "0.2"})
    try:
        yield d
    finally:
        d.stop()


async def test_an_expired_access_token_is_renewed_once_and_the_new_pair_handed_over(
    short_tokens: Mistd,
) -> None:
    async with RemoteMist(short_tokens.host) as first:
        setup = await first.auth.setup("owner", PASSWORD)
    assert setup.refresh_token
    saved: list[Session] = []
    async with RemoteMist(
        short_tokens.host, setup.token, refresh_token=setup.refresh_token, on_session=saved.append
    ) as mist:
        await _wait_until_expired(short_tokens, setup.token)
        # Two calls at once both meet the expired token: one renewal serves both (a second would spend a
        # used refresh token and revoke the session).
        me, projects = await asyncio.gather(mist.auth.whoami(), mist.projects.list())
        assert me.username == "owner"
        assert projects.items == []
        assert len(saved) == 1
        assert mist.token == saved[0].token != setup.token
        assert mist.refresh_token == saved[0].refresh_token != setup.refresh_token

    # The used refresh token is refused.
    async with RemoteMist(short_tokens.host) as stale:
        with pytest.raises(Unauthenticated):
            await stale.auth.refresh(setup.refresh_token)


async def test_a_stream_renews_an_expired_token_before_it_starts(short_tokens: Mistd) -> None:
    async with RemoteMist(short_tokens.host) as first:
        setup = await first.auth.setup("owner", PASSWORD)
    saved: list[Session] = []

    async def keep(session: Session) -> None:  # an async callback works too
        saved.append(session)

    async with RemoteMist(
        short_tokens.host, setup.token, refresh_token=setup.refresh_token, on_session=keep
    ) as mist:
        await _wait_until_expired(short_tokens, setup.token)
        stream = mist.metrics.stream()
        sample = await anext(aiter(stream))
        await stream.aclose()  # type: ignore[attr-defined]
    assert sample.system.cpu_count >= 1
    assert len(saved) == 1


async def test_without_a_refresh_token_an_expired_token_is_reported(short_tokens: Mistd) -> None:
    async with RemoteMist(short_tokens.host) as first:
        setup = await first.auth.setup("owner", PASSWORD)
    async with RemoteMist(short_tokens.host, setup.token) as mist:
        await _wait_until_expired(short_tokens, setup.token)
        with pytest.raises(Unauthenticated) as refused:
            await mist.auth.whoami()
    assert refused.value.code == "token_expired"


def test_an_account_lockout_is_429_with_retry_after_and_names_no_password(daemon: Mistd) -> None:
    with daemon.client() as c:
        c.post("/v1/setup", json={"username": "owner", "password": PASSWORD}).raise_for_status()
        answers = [
            c.post("/v1/login", json={"username": "owner", "password": f"wrong guess {i}"}) for i in range(8)
        ]
    assert {a.status_code for a in answers} <= {401, 429}
    locked = answers[-1]
    body = _assert_problem(locked, 429, "too_many_attempts")
    assert int(locked.headers["retry-after"]) >= 1
    assert "wrong guess" not in locked.text
    assert body["extra"]["retry_after"] >= 1  # type: ignore[index]
