"""``mist exec`` as a person runs it: the installed ``mist`` program on a real daemon (Unix socket, and TCP with
TLS and the pinned certificate) into an app's real container, with its terminal a real pty where a person
would have one. Asserts on what the user sees and on what is left running in the container afterwards."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest

from tests.images import busybox_image
from tests.mistkit import remove_everything_of

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
MIST = Path(sys.executable).parent / "mist"
PASSWORD = "correct horse battery staple"
# Bounds on waiting for something that happens within a second or two: a wedged session fails the test
# instead of hanging it.
DEADLINE = 60.0


@dataclass
class Live:
    """A daemon with a deployed app ``ref``; ``mist(...)`` runs the installed program as its admin."""

    sock: Path
    url: str
    ref: str
    container: str
    env: dict[str, str]

    def argv(self, *args: str, host: str | None = None) -> list[str]:
        return [str(MIST), "--host", host or f"unix://{self.sock}", *args]

    def mist(
        self, *args: str, host: str | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args, host=host),
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(sock: Path) -> bool:
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://mist") as c:
            return c.get("/v1/setup", timeout=2).status_code == 200
    except (httpx.HTTPError, OSError):
        return False


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    busybox_image()
    tmp = tmp_path_factory.mktemp("exec")
    repo = tmp / "repos" / "web"
    repo.mkdir(parents=True)
    (repo / "Dockerfile").write_text(
        'FROM mist-test/busybox:1\nCOPY index.html /www/\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
    )
    (repo / "index.html").write_text("hello from the container\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first page")

    env = {
        **os.environ,
        "MIST_CONFIG_DIR": str(tmp / "cfg"),
        "MIST_GIT_ROOTS": str(tmp / "repos"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    env.pop("MIST_TOKEN", None)
    env.pop("MIST_HOST", None)
    sock = tmp / "run" / "mist.sock"
    listen = f"127.0.0.1:{_free_port()}"
    cmd = [
        sys.executable, "-m", "mist_core.daemon", "--data", str(tmp / "data"), "--socket", str(sock),
        "--listen", listen,
    ]  # fmt: skip
    log = (tmp / "daemon.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    project = f"x{uuid.uuid4().hex[:8]}"
    try:
        deadline = time.monotonic() + DEADLINE
        while not _answers(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the daemon did not start: {(tmp / 'daemon.log').read_text()}")
            time.sleep(0.1)
        running = Live(sock, f"https://{listen}", f"{project}/web", "", env)
        for args in (
            ("setup", "-u", "admin", "--password-stdin"),
            ("project", "create", project),
            ("app", "create", running.ref, "--git", str(repo), "--port", "8080"),
            ("deploy", running.ref, "--wait"),
        ):
            result = running.mist(*args, input=PASSWORD + "\n")
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        described = running.mist("describe", running.ref, "--json")
        assert described.returncode == 0, described.stderr
        import json

        running.container = json.loads(described.stdout)["name"]
        yield running
    finally:
        with contextlib.suppress(Exception):
            subprocess.run([str(MIST), "--host", f"unix://{sock}", "app", "delete", f"{project}/web", "--yes"],
                           env=env, capture_output=True, timeout=120)  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        remove_everything_of(project)


class Terminal:
    """``mist ARGS`` with a pty as its terminal (stdin, stdout and stderr), as a person's shell starts it."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True
        )
        os.close(slave)
        self.seen = bytearray()

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while text.encode() not in self.seen:
            assert self.proc.poll() is None or self._readable(0), f"mist ended; it showed: {self.seen!r}"
            assert time.monotonic() < deadline, f"{text!r} never showed; the terminal shows: {self.seen!r}"
            self._readable(0.5)

    def _readable(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the other side closed: mist ended
            return False
        if b"\x1b[6n" in data:
            os.write(self.master, b"\x1b[1;1R")  # where the cursor is, as a terminal answers the shell
        self.seen += data
        return bool(data)

    def exit_status(self) -> int:
        deadline = time.monotonic() + DEADLINE
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"mist did not end; the terminal shows: {self.seen!r}"
            self._readable(0.2)
        while self._readable(0):
            pass
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        os.close(self.master)


@contextlib.contextmanager
def terminal(argv: list[str], env: dict[str, str]) -> Iterator[Terminal]:
    t = Terminal(argv, env)
    try:
        yield t
    finally:
        t.close()


def _processes(container: str) -> list[str]:
    """The command lines running in ``container``."""
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        top = client.containers.get(container).top(ps_args="-eo pid,args")
    finally:
        client.close()
    return [p[-1] for p in top.get("Processes") or []]


def _wait_for_process(container: str, marker: str, present: bool, t: Terminal | None = None) -> None:
    deadline = time.monotonic() + DEADLINE
    while any(marker in p for p in _processes(container)) != present:
        shown = t.seen if t is not None else b""
        assert time.monotonic() < deadline, (
            f"{marker!r} present={not present}: {_processes(container)} {shown!r}"
        )
        if t is not None:
            t._readable(0.2)
        else:
            time.sleep(0.2)


def test_an_interactive_shell_under_a_terminal_echoes_a_commands_output(live: Live) -> None:
    with terminal(live.argv("exec", live.ref), live.env) as t:
        t.wait_for("# ")
        t.type("echo $((6 * 7))-answer\n")
        t.wait_for("42-answer")
        t.type("cat /www/index.html; exit\n")
        t.wait_for("hello from the container")
        assert t.exit_status() == 0


def test_the_exit_status_of_mist_exec_is_the_commands(live: Live) -> None:
    result = live.mist("exec", live.ref, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    with terminal(live.argv("exec", live.ref, "--", "sh", "-c", "exit 7"), live.env) as t:
        assert t.exit_status() == 7


def test_exec_over_tcp_and_tls_with_the_pinned_certificate(live: Live) -> None:
    from mist_core.client import fetch_certificate

    _, fingerprint = fetch_certificate(live.url)
    login = live.mist(
        "login",
        "-u",
        "admin",
        "--password-stdin",
        "--fingerprint",
        fingerprint,
        host=live.url,
        input=PASSWORD + "\n",
    )
    assert login.returncode == 0, login.stderr
    piped = live.mist("exec", live.ref, "--", "cat", "/www/index.html", host=live.url)
    assert (piped.returncode, piped.stdout) == (0, "hello from the container\n"), piped.stderr
    with terminal(live.argv("exec", live.ref, host=live.url), live.env) as t:
        t.wait_for("# ")
        t.type("stty size; echo $((6 * 7))-over-tls; exit 5\n")
        t.wait_for("42-over-tls")
        assert t.exit_status() == 5


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipes"])
def test_a_client_that_goes_away_mid_session_leaves_nothing_running(live: Live, tty: bool) -> None:
    marker = f"{uuid.uuid4().int % 100000 + 100000}"
    argv = live.argv("exec", live.ref, "--tty" if tty else "--no-tty", "--", "sleep", marker)
    with terminal(argv, live.env) as t:
        _wait_for_process(live.container, f"sleep {marker}", present=True, t=t)
        t.proc.send_signal(signal.SIGKILL)  # no goodbye: the connection just drops
        t.proc.wait(timeout=30)
    _wait_for_process(live.container, f"sleep {marker}", present=False)
    after = live.mist("exec", live.ref, "--", "echo", "still serving")
    assert (after.returncode, after.stdout) == (0, "still serving\n"), after.stderr


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipes"])
def test_a_program_the_container_lacks_is_named_and_exits_126(live: Live, tty: bool) -> None:
    argv = live.argv("exec", live.ref, "--tty" if tty else "--no-tty", "--", "no-such-program", "--flag")
    with terminal(argv, live.env) as t:
        assert t.exit_status() == 126  # as docker exec says: the command cannot be run
    assert b"no-such-program" in t.seen and b"Traceback" not in t.seen and b"daemon's log" not in t.seen
