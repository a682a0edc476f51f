"""The TUI against the real core in-process, real git and real Docker, driven with keys only: first-time
setup, logging in again after a restart, creating a project and an app, deploying, reading the app's logs,
setting a variable and redeploying, and filtering the dashboard."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest
from textual.pilot import Pilot

from mist_core.local import open_embedded
from mist_tui.app import MistApp
from mist_tui.config import Config, Credentials, Target
from tests.gitutil import init_repo
from tests.images import busybox_image
from tests.mistkit import remove_everything_of
from tests.tui.scenarios import SIZE, screen_name, until

pytestmark = pytest.mark.docker

PASSWORD = "correct horse battery"
# The trap makes a stop fast; the echo gives the Logs tab something to show, including a variable.
DOCKERFILE = (
    "FROM mist-test/busybox:1\n"
    "COPY index.html /www/index.html\n"
    'CMD ["sh","-c","trap \'exit 0\' TERM; echo \\"web up, greeting=$GREETING\\"; '
    'httpd -f -p 8080 -h /www & wait"]\n'
)


def make_app(tmp_path: Path, repo_root: Path) -> MistApp:
    async def connect(target: Target):
        return await open_embedded(target.address, target.token, git_roots=[repo_root])

    return MistApp(
        connect,
        Config(theme="textual-dark"),
        target=Target("embedded", str(tmp_path / "data")),
        credentials=Credentials(tmp_path / "credentials.json"),
        cursor_blink=False,
    )


def rows(pilot: Pilot) -> list[str]:
    return [str(key.value) for key in pilot.app.screen.table.rows]  # type: ignore[attr-defined]


def summary(pilot: Pilot) -> str:
    return str(pilot.app.screen.query_one("#deployment-summary").render())


def log_text(view) -> str:
    return "\n".join(view.visible_text())


async def deploy_from_app_screen(pilot: Pilot, previous: int | None = None) -> int:
    """``D``, accept the app's branch, and watch the deployment screen until it is live."""
    await pilot.press("D")
    await until(pilot, lambda: screen_name(pilot) == "FormDialog")
    await pilot.press("enter")
    await until(
        pilot,
        lambda: (
            screen_name(pilot) == "DeploymentScreen"
            and pilot.app.screen.deployment is not None  # type: ignore[attr-defined]
            and pilot.app.screen.deployment_id != previous
        ),  # type: ignore[attr-defined]
        timeout=15,
    )
    screen = pilot.app.screen
    await until(pilot, lambda: " live" in summary(pilot) or "failed" in summary(pilot), timeout=60)
    build_log = log_text(screen.query_one("#build-log").view)  # type: ignore[attr-defined]
    assert " live" in summary(pilot), f"{summary(pilot)}\n{build_log}"
    steps = screen.query_one("#steps")
    states = [
        str(steps.get_row(step)[1]) for step in ("fetching", "building", "starting", "checking", "switching")
    ]
    assert states == ["✓ done"] * 5
    assert "index.html" in build_log  # the build's own output reached the screen
    return screen.deployment_id  # type: ignore[attr-defined]


async def test_setup_login_create_deploy_logs_env_redeploy_and_filter(tmp_path):
    busybox_image()
    project = "p" + uuid4().hex[:8]
    repo_root = tmp_path / "repos"
    repo = init_repo(repo_root / "web", {"Dockerfile": DOCKERFILE, "index.html": "hello from mist\n"})
    try:
        # First start: a fresh core has no accounts, so the owner is created.
        app = make_app(tmp_path, repo_root)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: screen_name(pilot) == "SetupScreen", timeout=30)
            await pilot.press(*"ada", "tab", *PASSWORD, "tab", *PASSWORD, "enter")
            await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
            await until(pilot, lambda: "no projects yet" in str(pilot.app.screen.table.border_subtitle))

        # Second start on the same data: the account exists, so it asks to log in.
        app = make_app(tmp_path, repo_root)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: screen_name(pilot) == "LoginScreen", timeout=30)
            await pilot.press(*"ada", "enter", *PASSWORD, "enter")
            await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
            assert app.user is not None and app.user.username == "ada"
            await until(
                pilot, lambda: "no projects yet" in str(pilot.app.screen.table.border_subtitle), timeout=15
            )

            # A project, then an app in it from the local repository.
            await pilot.press("n")
            await until(pilot, lambda: screen_name(pilot) == "FormDialog", timeout=10)
            await pilot.press(*project, "tab", *"The shop", "enter")
            await until(pilot, lambda: f"{project}/" in rows(pilot), timeout=10)
            await pilot.press("c")
            await until(pilot, lambda: screen_name(pilot) == "AppForm")
            assert pilot.app.screen.query_one("#field-project").value == project  # type: ignore[attr-defined]
            await pilot.press(
                "tab", *"web", "tab", *str(repo), "tab", "tab", *"8080", "tab", "slash", "enter"
            )
            await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=10)
            await until(pilot, lambda: f"{project}/web" in rows(pilot), timeout=10)
            table = pilot.app.screen.table  # type: ignore[attr-defined]
            assert "new" in str(table.get_row(f"{project}/web")[2])

            # Open it and deploy; the deployment screen shows the steps and the build log until live.
            table.move_cursor(row=table.get_row_index(f"{project}/web"))
            await pilot.press("enter")
            await until(pilot, lambda: screen_name(pilot) == "AppScreen")
            first = await deploy_from_app_screen(pilot)

            # The Logs tab shows what the container printed.
            await pilot.press("escape")
            await until(pilot, lambda: screen_name(pilot) == "AppScreen")
            await pilot.press("3")
            logs = pilot.app.screen.query_one("#app-logs").view  # type: ignore[attr-defined]
            await until(pilot, lambda: "web up, greeting=" in log_text(logs), timeout=20)

            # A variable in the Environment tab, then a redeploy that goes live with it.
            await pilot.press("4")
            await pilot.pause(0.2)
            await pilot.press("a")
            await until(pilot, lambda: screen_name(pilot) == "FormDialog")
            await pilot.press(*"GREETING", "tab", *"bonjour", "enter")
            await until(pilot, lambda: screen_name(pilot) == "AppScreen")
            env = pilot.app.screen.query_one("#env")
            await until(pilot, lambda: "GREETING" in [str(k.value) for k in env.rows])
            second = await deploy_from_app_screen(pilot, previous=first)
            assert second != first
            await pilot.press("escape")
            await until(pilot, lambda: screen_name(pilot) == "AppScreen")
            await pilot.press("3")
            await until(pilot, lambda: "web up, greeting=bonjour" in log_text(logs), timeout=20)

            # Back on the dashboard: the app is live, and the filter finds it by project name.
            await pilot.press("escape")
            await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
            await until(
                pilot, lambda: "live" in str(pilot.app.screen.table.get_row(f"{project}/web")[2]), timeout=10
            )
            await pilot.press("slash", *project[:5])
            await until(pilot, lambda: rows(pilot) == [f"{project}/web"])
            await pilot.press(*"zzz")  # a filter that matches nothing empties the table
            await until(pilot, lambda: rows(pilot) == [])
    finally:
        remove_everything_of(project)
