"""The TUI against a real daemon that is killed and started again under it: while the daemon is away every
screen says its data is stale; once it is back the TUI reconnects by itself and shows what changed meanwhile."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from textual.pilot import Pilot

from mist_core.client import RemoteMist
from mist_core.local import open_embedded
from mist_tui.app import MistApp, StaleBanner
from mist_tui.config import Config, Credentials, Target
from tests.tui.scenarios import screen_name, until

pytestmark = pytest.mark.docker

PASSWORD = "correct horse battery"
STARTUP_DEADLINE = 60.0


class Daemon:
    """``python -m mist_core.daemon`` on a data directory and a socket of its own, startable again."""

    def __init__(self, data: Path, sock: Path) -> None:
        self.data, self.sock = data, sock
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mist_core.daemon", "--data", str(self.data), "--socket", str(self.sock)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited: {self.proc.communicate()[1].decode()}")
            if self.answers():
                return
            time.sleep(0.1)
        raise AssertionError("the daemon did not start serving")

    def answers(self) -> bool:
        try:
            with self.client() as client:
                return client.get("/v1/setup", timeout=2).status_code == 200
        except (httpx.HTTPError, OSError):
            return False

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.sock)), base_url="http://mist")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.communicate(timeout=60)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path / "data", tmp_path / "run" / "mist.sock")
    running.start()
    try:
        yield running
    finally:
        running.kill()


def make_app(daemon: Daemon, tmp_path: Path, token: str) -> MistApp:
    async def connect(target: Target) -> RemoteMist:
        return RemoteMist(target.address, target.token)

    return MistApp(
        connect,
        Config(theme="textual-dark"),
        target=Target("daemon", f"unix://{daemon.sock}", token),
        credentials=Credentials(tmp_path / "credentials.json"),
        cursor_blink=False,
    )


def rows(pilot: Pilot) -> list[str]:
    return [str(key.value) for key in pilot.app.screen.table.rows]  # type: ignore[attr-defined]


def banner(pilot: Pilot) -> str:
    found = pilot.app.screen.query(StaleBanner)
    return str(found.first().render()) if found else ""


async def test_daemon_killed_and_restarted_under_the_open_dashboard(daemon: Daemon, tmp_path: Path) -> None:
    with daemon.client() as client:
        token = client.post("/v1/setup", json={"username": "ada", "password": PASSWORD}).json()["token"]
        before = "b" + uuid4().hex[:8]
        made = client.post(
            "/v1/projects", json={"name": before}, headers={"Authorization": f"Bearer {token}"}
        )
        assert made.status_code in (200, 201), made.text
    after = "a" + uuid4().hex[:8]

    app = make_app(daemon, tmp_path, token)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
        await until(pilot, lambda: f"{before}/" in rows(pilot), timeout=15)
        assert banner(pilot) == ""

        daemon.kill()
        # While it is down: one banner saying since when the data is stale, and the figures greyed.
        await until(pilot, lambda: "data is stale; retrying" in banner(pilot), timeout=15)
        assert banner(pilot).strip().startswith("disconnected since ")
        assert pilot.app.screen.has_class("-stale")
        assert len(pilot.app.screen.query(StaleBanner)) == 1

        # Something changes meanwhile (through the core on the same data), then the daemon comes back.
        core = await open_embedded(daemon.data, token, run_workers=False)
        try:
            await core.projects.create(after)
        finally:
            await core.close()
        await pilot.pause(1.5)  # a few reconnection attempts fail first
        assert "data is stale" in banner(pilot)
        daemon.start()
        back = time.monotonic()

        await until(pilot, lambda: f"{after}/" in rows(pilot), timeout=5)
        assert time.monotonic() - back <= 5
        await until(pilot, lambda: banner(pilot) == "", timeout=5)
        assert not pilot.app.screen.has_class("-stale")

        # The streams were opened again: a change made through the daemon now shows without a reload.
        with daemon.client() as client:
            client.delete(f"/v1/projects/{before}", headers={"Authorization": f"Bearer {token}"})
        await until(pilot, lambda: f"{before}/" not in rows(pilot), timeout=10)


async def test_a_screen_opened_while_disconnected_loads_when_the_daemon_is_back(
    daemon: Daemon, tmp_path: Path
) -> None:
    with daemon.client() as client:
        token = client.post("/v1/setup", json={"username": "ada", "password": PASSWORD}).json()["token"]

    app = make_app(daemon, tmp_path, token)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
        await until(
            pilot, lambda: "no projects yet" in str(pilot.app.screen.table.border_subtitle), timeout=15
        )
        daemon.kill()
        await until(pilot, lambda: "data is stale" in banner(pilot), timeout=15)

        await pilot.press("u")  # the users screen, opened during the outage, cannot load
        await until(pilot, lambda: screen_name(pilot) == "UsersScreen")
        await until(pilot, lambda: "data is stale" in banner(pilot), timeout=5)

        daemon.start()
        table = pilot.app.screen.query_one("#list")
        await until(pilot, lambda: "ada" in [str(k.value) for k in table.rows], timeout=5)  # type: ignore[attr-defined]
        assert banner(pilot) == ""
