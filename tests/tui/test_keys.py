"""Keys as users of k9s and lazydocker expect them, on a real core: each test names a key that did the
wrong thing and checks what the user sees now."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui.realcore import make_app, seed
from tests.tui.scenarios import screen_name, until

pytestmark = pytest.mark.docker

SIZE = (120, 36)


async def on_dashboard(pilot: Pilot) -> None:
    await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
    await until(pilot, lambda: pilot.app.screen.table.row_count > 0, timeout=15)  # type: ignore[attr-defined]


async def test_ctrl_p_and_colon_both_open_the_palette_and_typing_goes_into_it(tmp_path: Path) -> None:
    seeded = await seed(tmp_path, {"shop": ["web"]})
    async with make_app(seeded, tmp_path).run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        for key in ("ctrl+p", "colon"):
            await pilot.press(key)
            await until(pilot, lambda: screen_name(pilot) == "CommandPalette")
            await pilot.press(*"met")  # "m" on the dashboard would open the metrics screen
            await pilot.pause(0.2)
            assert screen_name(pilot) == "CommandPalette"
            await pilot.press("escape")
            await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
