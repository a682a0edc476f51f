"""Clients that connect and then do little or nothing, against a real daemon: a flood of idle connections on
the public hooks listener, slowloris heads and bodies, clients that read nothing of their answers. The daemon
runs with the common open-file limit of 1,024 (soft and hard, as a service manager sets it) and short
deadlines, so that the attacks are cheap to make and their end is quick to see; every check waits for what the
daemon does, up to a deadline many times the configured one."""

from __future__ import annotations

import contextlib
import re
import resource
import select
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Daemon

# The daemon's deadlines (head, idle, body), seconds.
DEADLINE = 3
# How long a check waits for the daemon to close a connection: ten times its deadline.
GENEROUS = 30.0
OPEN_FILES = 1024
HOOKS_BOUND = 64
# More connections than the daemon has file descriptors.
FLOOD = 1100


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = FLOOD + 400
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the flood needs {needed} open files in the test process; the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    hooks_port, api_port = free_port(), free_port()
    daemon = Daemon(
        tmp_path_factory.mktemp("mistd-slow"),
        env={
            "MIST_HOOKS_LISTEN": f"127.0.0.1:{hooks_port}",
            "MIST_MAX_CONNECTIONS": str(HOOKS_BOUND),
            "MIST_HEADER_TIMEOUT": str(DEADLINE),
            "MIST_IDLE_TIMEOUT": str(DEADLINE),
            "MIST_BODY_TIMEOUT": str(DEADLINE),
        },
        args=["--listen", f"127.0.0.1:{api_port}"],
        open_files=OPEN_FILES,
    )
    daemon.hooks_port = hooks_port  # type: ignore[attr-defined]
    daemon.api_port = api_port  # type: ignore[attr-defined]
    try:
        daemon.setup_owner()
        yield daemon
    finally:
        daemon.stop()


# ---------------------------------------------------------------------------------------------- helpers


def connect(daemon: Daemon, listener: str) -> socket.socket:
    """A connection to one of the daemon's listeners: ``hooks`` (plain HTTP), ``socket`` (the Unix socket)
    or ``api`` (TLS, handshake done)."""
    if listener == "socket":
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(10)
        conn.connect(str(daemon.sock))
        return conn
    port = daemon.hooks_port if listener == "hooks" else daemon.api_port  # type: ignore[attr-defined]
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    if listener == "api":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context.wrap_socket(conn)
    return conn


def closed_by_daemon(conn: socket.socket, deadline: float = GENEROUS) -> bool:
    """Whether the daemon ends the connection (an end of stream or a reset) within ``deadline``; whatever it
    sends before that is read and dropped."""
    end = time.monotonic() + deadline
    while (left := end - time.monotonic()) > 0:
        conn.settimeout(left)
        try:
            if not conn.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except TimeoutError:
            return False
    return False


def read_response(conn: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"the daemon closed the connection before answering: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert length, head
    while len(body) < int(length.group(1)):
        body += conn.recv(65536)
    return int(head.split()[1]), body


def drip(conn: socket.socket, line: bytes, deadline: float = GENEROUS) -> bool:
    """Send ``line`` every half second, as a slowloris client does, until the daemon ends the connection
    (True) or ``deadline`` passes (False)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            conn.sendall(line)
        except (BrokenPipeError, ConnectionResetError):
            return True
        readable, _, _ = select.select([conn], [], [], 0.5)
        if readable:
            try:
                if not conn.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True
    return False


def flood(port: int, count: int) -> list[socket.socket]:
    """``count`` connections opened and left idle (the connects complete in the background)."""
    conns = []
    for _ in range(count):
        conn = socket.socket()
        conn.setblocking(False)
        conn.connect_ex(("127.0.0.1", port))
        conns.append(conn)
    return conns


def fresh_client(daemon: Daemon) -> httpx.Client:
    """A client with a connection of its own: one kept from before a flood would prove nothing."""
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(daemon.sock)), base_url="http://mist", timeout=20
    )


def close_all(conns: list[socket.socket]) -> None:
    for conn in conns:
        with contextlib.suppress(OSError):
            conn.close()


# ---------------------------------------------------------------------------------------------- floods


def test_a_flood_on_the_hooks_listener_leaves_the_unix_socket_serving(guarded: Daemon) -> None:
    slow = [connect(guarded, "hooks") for _ in range(5)]
    for conn in slow:
        conn.sendall(b"POST /hooks/x HTTP/1.1\r\nHost: mist\r\n")
    idle = flood(guarded.hooks_port, FLOOD)  # type: ignore[attr-defined]
    try:
        time.sleep(1)  # let the connects land
        for _ in range(3):
            with fresh_client(guarded) as client:
                assert client.get("/v1/setup").status_code == 200
                projects = client.get(
                    "/v1/projects", headers={"Authorization": f"Bearer {guarded.owner_token}"}
                )
                assert projects.status_code == 200, projects.text
    finally:
        close_all(idle + slow)


def hooks_listener_answers(daemon: Daemon, request: bytes) -> bool:
    """Whether the hooks listener answers one request within GENEROUS seconds, retrying while it is still
    busy closing the connections an earlier test left it (they hold slots of its bound until it sees them go)."""
    end = time.monotonic() + GENEROUS
    while time.monotonic() < end:
        with connect(daemon, "hooks") as conn:
            conn.settimeout(2)
            try:
                conn.sendall(request)
                if conn.recv(12).startswith(b"HTTP/1.1 400"):
                    return True
            except (OSError, TimeoutError):
                pass
        time.sleep(0.2)
    return False


def test_connections_beyond_the_hooks_listener_bound_are_closed_unread(guarded: Daemon) -> None:
    request = b"GET /hooks/github/callback HTTP/1.1\r\nHost: mist\r\n\r\n"
    assert hooks_listener_answers(guarded, request), "the hooks listener does not answer before the test"
    conns = []
    try:
        for _ in range(HOOKS_BOUND + 40):
            conn = connect(guarded, "hooks")
            conns.append(conn)
            with contextlib.suppress(OSError):
                conn.sendall(request)
        answered = refused = 0
        for conn in conns:
            conn.settimeout(GENEROUS)
            try:
                first = conn.recv(12)
            except ConnectionResetError:
                first = b""
            if first.startswith(b"HTTP/1.1 400"):
                answered += 1
            elif not first:
                refused += 1
        assert answered <= HOOKS_BOUND, f"{answered} connections answered; the bound is {HOOKS_BOUND}"
        assert refused >= 40 - 5, f"only {refused} of the connections beyond the bound were closed unread"
        assert answered >= 1, f"no connection answered ({refused} closed unread of {len(conns)})"
    finally:
        close_all(conns)
    # Once they are gone, the listener serves again.
    with connect(guarded, "hooks") as conn:
        conn.sendall(request)
        assert read_response(conn)[0] == 400


def test_a_flood_grows_the_log_by_a_few_kilobytes(guarded: Daemon) -> None:
    before = guarded.log_path.stat().st_size
    for _ in range(200):
        with connect(guarded, "hooks") as conn:
            conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            closed_by_daemon(conn, 10)
    idle = flood(guarded.hooks_port, FLOOD)  # type: ignore[attr-defined]
    try:
        end = time.monotonic() + GENEROUS
        summary = "more lines like 'Invalid HTTP request received.' were left out of the log"
        while summary not in guarded.log_text()[before:] and time.monotonic() < end:
            time.sleep(0.5)
        grown = guarded.log_path.stat().st_size - before
        assert summary in guarded.log_text()[before:], (
            f"no summary of left-out lines; the log grew {grown} bytes"
        )
        assert grown < 16_000, guarded.log_text()[before : before + 3000]
    finally:
        close_all(idle)


# ---------------------------------------------------------------------------------------------- deadlines


@pytest.mark.parametrize("listener", ["hooks", "socket", "api"])
def test_a_connection_that_sends_nothing_is_closed(guarded: Daemon, listener: str) -> None:
    with connect(guarded, listener) as conn:
        assert closed_by_daemon(conn)


def test_a_tls_connection_that_never_starts_its_handshake_is_closed(guarded: Daemon) -> None:
    port = guarded.api_port  # type: ignore[attr-defined]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        assert closed_by_daemon(conn)


@pytest.mark.parametrize("listener", ["hooks", "socket"])
def test_a_request_head_sent_a_line_at_a_time_is_closed(guarded: Daemon, listener: str) -> None:
    with connect(guarded, listener) as conn:
        conn.sendall(b"GET /hooks/github/callback HTTP/1.1\r\nHost: mist\r\n")
        assert drip(conn, b"X-Padding: " + uuid.uuid4().hex.encode() + b"\r\n")


def test_a_kept_alive_connection_that_starts_a_request_and_stops_is_closed(guarded: Daemon) -> None:
    with connect(guarded, "hooks") as conn:
        conn.sendall(b"GET /hooks/github/callback HTTP/1.1\r\nHost: mist\r\n\r\n")
        assert read_response(conn)[0] == 400
        conn.sendall(b"GET /hooks/github/callback HTTP/1.1\r\n")
        assert closed_by_daemon(conn)


@pytest.mark.parametrize(("listener", "path"), [("hooks", "/hooks/abc"), ("socket", "/v1/login")])
def test_a_request_body_that_stalls_is_closed(guarded: Daemon, listener: str, path: str) -> None:
    with connect(guarded, listener) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: mist\r\nContent-Type: application/json\r\n"
            'Content-Length: 1000\r\n\r\n{"username":'.encode()
        )
        assert closed_by_daemon(conn)


def test_a_client_that_reads_none_of_its_answers_is_cut_off(guarded: Daemon) -> None:
    request = b"GET /v1/openapi.json HTTP/1.1\r\nHost: mist\r\n\r\n"
    with connect(guarded, "socket") as conn:
        # Enough pipelined requests that their answers fill every buffer between the daemon and this client
        # (the requests themselves fit in the socket's buffer).
        conn.sendall(request * 200)
        poller = select.poll()
        poller.register(conn, select.POLLHUP | select.POLLRDHUP | select.POLLERR)
        # Nothing is read: the daemon must notice that on its own and drop the connection.
        assert poller.poll(GENEROUS * 1000), "the daemon kept writing to a client that reads nothing"


# ---------------------------------------------------------------------------------------------- streams


def test_an_event_stream_stays_open_past_the_deadlines(guarded: Daemon) -> None:
    headers = {"Authorization": f"Bearer {guarded.owner_token}"}
    name = "slow-" + uuid.uuid4().hex[:8]
    with fresh_client(guarded) as client, client.stream("GET", "/v1/events", headers=headers) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines).startswith(":")
        time.sleep(DEADLINE * 3)  # quiet for longer than any deadline: a stream being served is not idle
        guarded.ok("POST", "/projects", token=guarded.owner_token, json={"name": name})
        for line in lines:
            if line.startswith("data:") and name in line:
                break
        else:
            pytest.fail("the event stream ended before the project's event came")


def test_daemon_refuses_bounds_that_do_not_fit_its_open_file_limit(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="open-file limit is 1024"):
        Daemon(tmp_path, env={"MIST_MAX_SOCKET_CONNECTIONS": "5000"}, open_files=OPEN_FILES)
