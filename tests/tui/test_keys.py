"""Keys as users of k9s and lazydocker expect them, on a real core: each test names a key that did the
wrong thing and checks what the user sees now."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox

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


async def test_escape_closes_the_help_panel_before_it_leaves_the_screen(tmp_path: Path) -> None:
    seeded = await seed(tmp_path, {"shop": ["web"]})
    async with make_app(seeded, tmp_path).run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        pilot.app.open_app("shop/web")  # type: ignore[attr-defined]
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        await pilot.press("question_mark")
        await until(pilot, lambda: bool(pilot.app.screen.query("HelpPanel")))
        await pilot.press("escape")
        await until(pilot, lambda: not pilot.app.screen.query("HelpPanel"))
        assert screen_name(pilot) == "AppScreen"
        await pilot.press("escape")  # with the panel gone, Esc goes back as before
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")


async def test_enter_on_a_form_checkbox_submits_the_form_without_toggling_it(tmp_path: Path) -> None:
    seeded = await seed(tmp_path, {"shop": ["web"]})
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        app.open_app("shop/web")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        await pilot.press("4")
        await pilot.pause(0.2)
        await pilot.press("a")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        await pilot.press(*"GREETING", "tab", *"hello", "tab")
        assert isinstance(app.focused, Checkbox)
        await pilot.press("enter")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        assert app.api is not None
        [var] = await app.api.env.list("shop/web")
        assert (var.key, var.secret) == ("GREETING", False)


async def test_a_confirm_dialog_says_which_keys_answer_it(tmp_path: Path) -> None:
    seeded = await seed(tmp_path, {"shop": ["web"]})
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        app.open_app("shop/web")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        await pilot.press("X")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        buttons = [str(b.label) for b in app.screen.query("Button")]
        assert buttons == ["n  Cancel", "y  Delete shop/web"]
        await pilot.press("n")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")


async def test_the_log_app_picker_highlights_the_first_app_and_moves_with_j_and_k(tmp_path: Path) -> None:
    seeded = await seed(tmp_path, {"shop": ["api", "web", "worker"]})
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        app.open_logs()
        await until(pilot, lambda: screen_name(pilot) == "LogsScreen")
        picker = app.screen.query_one("#log-apps")
        await until(pilot, lambda: picker.option_count == 3)  # type: ignore[attr-defined]
        assert picker.highlighted == 0  # type: ignore[attr-defined]
        await pilot.press("j", "j")
        assert picker.highlighted == 2  # type: ignore[attr-defined]
        await pilot.press("k")
        assert picker.highlighted == 1  # type: ignore[attr-defined]
        await pilot.press("space")
        await until(pilot, lambda: list(picker.selected) == ["shop/web"])  # type: ignore[attr-defined]


async def test_number_keys_leave_the_git_tab(tmp_path: Path) -> None:
    seeded = await seed(tmp_path, {"shop": ["web"]})
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        app.open_app("shop/web")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        tabs = app.screen.query_one("#app-tabs")
        await pilot.press("6")
        await until(pilot, lambda: tabs.active == "git")  # type: ignore[attr-defined]
        await pilot.pause(0.5)
        await pilot.press("1")
        await until(pilot, lambda: tabs.active == "overview")  # type: ignore[attr-defined]
        await pilot.press("6")
        await until(pilot, lambda: tabs.active == "git")  # type: ignore[attr-defined]
        await pilot.pause(0.5)
        await pilot.press("7")
        await until(pilot, lambda: tabs.active == "settings")  # type: ignore[attr-defined]
        focused = app.focused
        assert focused is not None and focused.region.area > 0  # focus is on something the user can see


async def test_n_in_the_log_search_goes_to_the_next_match_below_what_is_on_screen(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mist_tui.widgets.log_view import LogEntry

    seeded = await seed(tmp_path, {"shop": ["web"]})
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        app.open_logs()
        await until(pilot, lambda: screen_name(pilot) == "LogsScreen")
        panel = app.screen.query_one("#multi-logs")
        view = panel.view  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        for i in range(400):
            view.write(LogEntry(now, f"line {i}" + (" needle" if i % 50 == 10 else "")))
        await until(pilot, lambda: view.row_count == 400)
        view.focus()
        await pilot.press("slash", *"needle", "enter")
        await pilot.pause(0.2)
        await pilot.press("n")
        await pilot.pause(0.2)
        view.scroll_to(y=200, animate=False, immediate=True)
        await pilot.pause(0.2)
        await pilot.press("n")
        await pilot.pause(0.2)
        assert view._current_match == 210


def first_hits(pilot: Pilot) -> list[str]:
    options = pilot.app.screen.query_one("CommandList")
    return [str(options.get_option_at_index(i).prompt).splitlines()[0] for i in range(options.option_count)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("shop/web", "Open shop/web"),
        ("deploy shop/web", "Deploy shop/web"),
        ("logs ticker", "Logs of jobs/ticker"),
        ("rollback shop/web", "Roll back shop/web to its previous deployment"),
    ],
)
async def test_the_palette_acts_on_apps_by_name(tmp_path: Path, typed: str, expected: str) -> None:
    seeded = await seed(tmp_path, {"shop": ["web", "api"], "jobs": ["ticker"]})
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await pilot.press("colon")
        await until(pilot, lambda: screen_name(pilot) == "CommandPalette")
        await pilot.press(*typed)
        await until(pilot, lambda: expected in first_hits(pilot)[:1])
        await pilot.press("enter")
        if typed.startswith("deploy"):
            await until(pilot, lambda: screen_name(pilot) == "FormDialog")
            assert "Deploy shop/web" in str(app.screen.query_one(".dialog-title").render())
        elif typed.startswith("logs"):
            await until(pilot, lambda: screen_name(pilot) == "LogsScreen")
            picker = app.screen.query_one("#log-apps")
            await until(pilot, lambda: list(picker.selected) == ["jobs/ticker"])  # type: ignore[attr-defined]
        else:
            await until(pilot, lambda: screen_name(pilot) == "AppScreen")
            assert app.screen.app_ref == "shop/web"  # type: ignore[attr-defined]
            if typed.startswith("rollback"):
                # Never deployed: nothing to go back to, and it says so.
                await until(
                    pilot, lambda: any("no earlier deployment" in n.message for n in app._notifications)
                )


async def test_y_copies_the_selected_app_variable_or_log_line(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mist_tui.widgets.log_view import LogEntry

    seeded = await seed(tmp_path, {"shop": ["web"]})
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        table = app.screen.table  # type: ignore[attr-defined]
        table.move_cursor(row=table.get_row_index("shop/web"))
        await pilot.press("y")
        assert app.clipboard == "shop/web"

        assert app.api is not None
        await app.api.env.set("shop/web", "GREETING", "bonjour")
        await app.api.env.set("shop/web", "TOKEN", "s3cret", secret=True)
        app.open_app("shop/web")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        await pilot.press("4")
        env = app.screen.query_one("#env")
        await until(pilot, lambda: env.row_count == 2)  # type: ignore[attr-defined]
        env.move_cursor(row=env.get_row_index("GREETING"))  # type: ignore[attr-defined]
        await pilot.press("y")
        assert app.clipboard == "bonjour"
        env.move_cursor(row=env.get_row_index("TOKEN"))  # type: ignore[attr-defined]
        await pilot.press("y")
        assert app.clipboard == "bonjour"  # a masked secret is not copied
        assert any("r reveals it" in n.message for n in app._notifications)

        await pilot.press("escape")
        app.open_logs()
        await until(pilot, lambda: screen_name(pilot) == "LogsScreen")
        view = app.screen.query_one("#multi-logs").view  # type: ignore[attr-defined]
        for i in range(3):
            view.write(LogEntry(datetime.now(UTC), f"line {i}"))
        await until(pilot, lambda: view.row_count == 3)
        view.focus()
        await pilot.press("y")
        assert app.clipboard == "line 2"
