"""What stored text can do to the terminal of whoever reads it, against a real daemon: a variable's value, a
commit message, a line of a build log and a line an app prints all carry escape sequences (clear the screen,
set the window title, a one-byte CSI, a bidi override). The ``mist`` command prints them as visible text and
never as sequences; its JSON keeps them exact; ``mist logs`` keeps an app's colours on a terminal and nothing
else. The TUI shows them as text too."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from gitutil import init_repo
from images import busybox_image

from mist_core.models import EnvVar

from .conftest import Daemon

ROOT = Path(__file__).resolve().parents[2]
MIST = Path(sys.executable).parent / "mist"

# Clears the screen, sets the window title, colours a word, asks the terminal to answer (a one-byte CSI), and
# reverses the rest of the line.
PAYLOAD = "\x1b[2J\x1b]0;owned\x07 \x1b[31mred\x1b[0m \x9b6n \u202eevil"
# None of these may reach a terminal from stored text (ESC, the one-byte CSI, BEL, the bidi override).
UNSAFE = ("\x1b", "\x9b", "\x07", "\u202e")
COLOUR = "\x1b[31mred\x1b[0m"
# httpd in the background of a shell that exits on SIGTERM: a redeploy does not wait out the grace period.
SERVE = "; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"


def unsafe_in(text: str) -> list[str]:
    return [repr(ch) for ch in UNSAFE if ch in text]


def new_project(d: Daemon) -> str:
    project = "term-" + uuid.uuid4().hex[:8]
    d.ok("POST", "/projects", token=d.owner_token, json={"name": project})
    return project


def mist(d: Daemon, tmp_path: Path, *args: str, tty: bool = False, env: dict[str, str] | None = None) -> str:
    """``mist ARGS`` as a user runs it against the daemon, its stdout a pipe or (``tty``) a terminal."""
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment.update(
        MIST_HOST=f"unix://{d.sock}",
        MIST_TOKEN=d.owner_token,
        MIST_CONFIG_DIR=str(tmp_path / "cfg"),
        PYTHONPATH=str(ROOT),
        **(env or {}),
    )
    if not tty:
        result = subprocess.run(
            [str(MIST), *args], capture_output=True, env=environment, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout.decode("utf-8", errors="surrogateescape")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [str(MIST), *args], stdout=terminal, stderr=subprocess.PIPE, env=environment, close_fds=True
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's other side closed: the command is done
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    return output.decode("utf-8", errors="surrogateescape")


def test_the_cli_prints_a_stored_value_as_text_and_its_json_keeps_it_exact(
    daemon: Daemon, tmp_path: Path
) -> None:
    d = daemon
    project = new_project(d)
    repo = init_repo(d.repos / project, {"README.md": "nothing to build\n"})
    d.ok("POST", f"/projects/{project}/apps", token=d.owner_token, json={"name": "web", "git_url": str(repo)})
    path = f"/projects/{project}/apps/web/env"
    d.ok("POST", path, token=d.owner_token, json={"key": "GREETING", "value": PAYLOAD})

    for tty in (False, True):
        shown = mist(d, tmp_path, "env", "list", f"{project}/web", tty=tty)
        assert not unsafe_in(shown), (tty, shown)
        assert "\ufffd[2J\ufffd]0;owned\ufffd" in shown  # what the value holds is visible, as text

    document = mist(d, tmp_path, "env", "list", f"{project}/web", "--json")
    assert not unsafe_in(document), document
    assert [EnvVar.model_validate(v).value for v in json.loads(document)] == [PAYLOAD]

    # `mist env export > .env` writes the value exactly; on a terminal it is shown as text.
    assert "\x1b[2J\x1b]0;owned\x07" in mist(d, tmp_path, "env", "export", f"{project}/web")
    assert not unsafe_in(mist(d, tmp_path, "env", "export", f"{project}/web", tty=True))


@pytest.mark.docker
def test_build_output_commit_messages_and_app_output_reach_the_terminal_as_text(
    daemon: Daemon, tmp_path: Path
) -> None:
    d = daemon
    busybox_image()
    project = new_project(d)
    # The project's name makes the step new to the engine's build cache, so the build runs it and prints.
    printf = (
        rf"printf '{project} marker \033[2J\033]0;owned\007 \033[31mred\033[0m \302\2336n \342\200\256evil\n'"
    )
    repo = init_repo(
        d.repos / project,
        {
            "Dockerfile": (
                "FROM mist-test/busybox:1\n"
                f"RUN {printf}\n"
                "COPY index.html /www/index.html\n"
                f'CMD ["sh", "-c", {json.dumps(printf + SERVE)}]\n'
            ),
            "index.html": "ok\n",
        },
        message=f"deploy {PAYLOAD}",
    )
    owner = d.owner_token
    app_path = f"/projects/{project}/apps/web"
    d.ok(
        "POST",
        f"/projects/{project}/apps",
        token=owner,
        json={
            "name": "web",
            "git_url": str(repo),
            "port": 8080,
            "health": {"type": "tcp", "interval": 0.2, "retries": 50},
        },
    )
    try:
        deployment = d.ok("POST", app_path + "/deploy", token=owner, json={})
        state: dict[str, Any] = {}
        for _ in range(1200):
            state = d.ok("GET", f"/deployments/{deployment['id']}", token=owner)
            if state["state"] in ("live", "failed", "cancelled"):
                break
            time.sleep(0.1)
        assert state["state"] == "live", state.get("error")
        # The build printed the sequences, and the stored log holds them (JSON keeps it exact).
        stored = mist(d, tmp_path, "--json", "deployment", "log", str(deployment["id"]))
        assert any("\x1b[2J" in line["text"] for line in json.loads(stored))

        for args in (
            ("deployment", "log", str(deployment["id"])),
            ("deployment", "show", str(deployment["id"])),
            ("deployments", f"{project}/web"),
        ):
            for tty in (False, True):
                shown = mist(d, tmp_path, *args, tty=tty)
                assert not unsafe_in(shown), (args, tty, shown)
        assert "marker \ufffd[2J\ufffd]0;owned\ufffd" in mist(
            d, tmp_path, "deployment", "log", str(deployment["id"])
        )

        logs: list[str] = []
        for _ in range(100):
            logs = [mist(d, tmp_path, "logs", f"{project}/web")]
            if "marker" in logs[0]:
                break
            time.sleep(0.1)
        # Into a pipe or a file: plain text, the colours removed with everything else.
        assert "marker" in logs[0] and " red " in logs[0] and not unsafe_in(logs[0]), logs[0]
        # On a terminal the app's colours stay (reset at the end of the line), and only they.
        on_terminal = mist(d, tmp_path, "logs", f"{project}/web", tty=True)
        assert COLOUR in on_terminal, on_terminal
        without_colour = on_terminal.replace("\x1b[31m", "").replace("\x1b[0m", "")
        assert not unsafe_in(without_colour), on_terminal
        # NO_COLOR: not even the colours.
        plain = mist(d, tmp_path, "logs", f"{project}/web", tty=True, env={"NO_COLOR": "1"})
        assert "marker" in plain and not unsafe_in(plain), plain
    finally:
        d.call("DELETE", app_path, token=owner)


async def test_the_tui_shows_stored_control_characters_and_markup_as_text(daemon: Daemon) -> None:
    from mist_tui.__main__ import connect
    from mist_tui.app import MistApp
    from mist_tui.config import Config, Credentials, Target
    from tests.tui.scenarios import SIZE, screen_name, until

    d = daemon
    project = new_project(d)
    repo = init_repo(d.repos / project, {"README.md": "nothing to build\n"})
    d.ok("POST", f"/projects/{project}/apps", token=d.owner_token, json={"name": "web", "git_url": str(repo)})
    owner = d.owner_token
    d.ok("POST", f"/projects/{project}/apps/web/env", token=owner, json={"key": "GREETING", "value": PAYLOAD})
    # Markup, too: read as markup it would restyle the screen or bind a click to quitting the app.
    markup = "[bold]loud[/bold] [@click=app.quit]quit[/]"
    d.ok("POST", f"/projects/{project}/apps/web/env", token=owner, json={"key": "MARKUP", "value": markup})

    app = MistApp(
        connect,
        Config(theme="textual-dark"),
        target=Target("daemon", f"unix://{d.sock}", d.owner_token),
        credentials=Credentials(Path(d.root) / f"tui-{uuid.uuid4().hex[:8]}.json"),
        cursor_blink=False,
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
        app.open_app(f"{project}/web")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen" and app.screen.current is not None)  # type: ignore[attr-defined]
        await pilot.press("4")
        await until(pilot, lambda: app.screen.query_one("#env").row_count == 2, timeout=10)
        await pilot.pause()
        screen = app.export_screenshot()
        assert not unsafe_in(screen), unsafe_in(screen)
        assert "\ufffd[2J\ufffd]0;owned\ufffd" in screen.replace("&#160;", " ")
        assert markup in screen.replace("&#160;", " ")

        # Editing it: the form shows the value as text, and keeps it exact.
        await pilot.press("e")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        await pilot.pause()
        screen = app.export_screenshot()
        assert not unsafe_in(screen), unsafe_in(screen)
        assert app.screen.values()["value"] == PAYLOAD  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
