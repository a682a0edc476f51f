"""The TUI against the real core in-process (``--embedded``): first-time setup, then the admin screens."""

from __future__ import annotations

import pytest

from mist_tui.__main__ import connect
from mist_tui.app import MistApp
from mist_tui.config import Config, Credentials, Target
from tests.tui.scenarios import SIZE, until

pytestmark = pytest.mark.docker


async def test_setup_on_a_fresh_embedded_core_reaches_an_empty_dashboard_and_lists_settings(tmp_path):
    app = MistApp(
        connect,
        Config(),
        target=Target("embedded", str(tmp_path / "data")),
        credentials=Credentials(tmp_path / "credentials.json"),
        cursor_blink=False,
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen", timeout=30)
        await pilot.press(*"ada", "tab", *"correct horse battery", "tab", *"correct horse battery", "enter")
        await until(pilot, lambda: type(app.screen).__name__ == "DashboardScreen", timeout=30)
        await until(pilot, lambda: "no projects yet" in str(app.screen.table.border_subtitle), timeout=10)
        assert app.user is not None and app.user.username == "ada"
        app.action_goto("settings")
        await until(
            pilot, lambda: type(app.screen).__name__ == "SettingsScreen" and app.screen.table.row_count > 0
        )
        app.pop_screen()
        app.action_goto("users")
        await until(
            pilot, lambda: type(app.screen).__name__ == "UsersScreen" and app.screen.table.row_count == 1
        )
