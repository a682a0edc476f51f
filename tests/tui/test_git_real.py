"""The Git tab against the real core in-process: an app's tab shows its webhook, and making a deploy key
there shows the public key the core made (the same the API gives), with its fingerprint."""

from __future__ import annotations

import io
from pathlib import Path
from uuid import uuid4

import pytest
from rich.console import Console

from mist_core.local import open_embedded
from mist_core.models import AppSpec
from mist_tui.app import MistApp
from mist_tui.config import Config, Credentials, Target
from tests.gitutil import init_repo
from tests.mistkit import remove_everything_of
from tests.tui.scenarios import SIZE, screen_name, until

pytestmark = pytest.mark.docker

PASSWORD = "correct horse battery"


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


def source_text(app: MistApp) -> str:
    console = Console(width=116, record=True, file=io.StringIO())
    console.print(app.screen.query_one("#git-source").content)  # type: ignore[attr-defined]
    return console.export_text()


async def test_git_tab_makes_a_deploy_key_and_shows_the_one_the_core_keeps(tmp_path):
    project = "p" + uuid4().hex[:8]
    repo_root = tmp_path / "repos"
    repo = init_repo(repo_root / "web", {"index.html": "hello\n"})
    app = make_app(tmp_path, repo_root)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: screen_name(pilot) == "SetupScreen", timeout=30)
            await pilot.press(*"ada", "tab", *PASSWORD, "tab", *PASSWORD, "enter")
            await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
            assert app.api is not None
            await app.api.projects.create(project)
            await app.api.apps.create(f"{project}/web", AppSpec(git_url=str(repo)))

            app.open_app(f"{project}/web")
            await until(pilot, lambda: screen_name(pilot) == "AppScreen" and app.screen.current is not None)  # type: ignore[attr-defined]
            await pilot.press("6")
            pane = app.screen.query_one("GitPane")
            await until(pilot, lambda: pane.loaded, timeout=10)  # type: ignore[attr-defined]
            assert "none (K makes one)" in source_text(app)
            assert "public_url" in source_text(app)  # no public address yet: no webhook URL
            assert app.screen.query_one("#deliveries").row_count == 0

            await pilot.press("K")
            await until(pilot, lambda: screen_name(pilot) == "CopyDialog", timeout=10)
            source = await app.api.apps.source(f"{project}/web")
            assert source.deploy_key and source.deploy_key.startswith("ssh-ed25519 ")
            assert source.deploy_key in str(app.screen.query_one("#secret-value").render())
            await pilot.press("escape")
            await until(pilot, lambda: screen_name(pilot) == "AppScreen")
            shown = source_text(app)
            assert "ssh deploy key" in shown
            assert source.deploy_key_fingerprint and source.deploy_key_fingerprint in shown
            assert source.deploy_key.split()[1] in shown.replace("\n", "")
    finally:
        remove_everything_of(project)
