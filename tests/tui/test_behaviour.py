"""What the TUI does, driven with Pilot on the seeded real core: what the user sees and what the core then holds."""

from __future__ import annotations

import json
from datetime import timedelta

from textual.app import App, ComposeResult

from mist_core.models import AppChanges
from mist_tui.config import Config, Target
from mist_tui.widgets.line_table import Cell, Column, LineTable
from mist_tui.widgets.log_view import LogEntry, LogView
from tests.tui.scenarios import SIZE, make_app, on_dashboard, open_app, until
from tests.tui.world import NOW, PASSWORD, add_apps, empty_world, new_world


def rows(table) -> list[str]:
    return [str(key.value) for key in table.rows]


async def test_filter_narrows_the_dashboard_to_matching_apps_and_escape_restores_them():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        table = app.screen.table
        assert table.row_count == 8
        await pilot.press("slash", *"shop")
        await pilot.pause()
        assert rows(table) == ["shop/api", "shop/web", "shop/worker"]
        await pilot.press("escape")
        await pilot.pause()
        assert table.row_count == 8


async def test_filter_by_status_word_shows_only_failed_apps():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await pilot.press("slash", *"failed")
        await pilot.pause()
        assert rows(app.screen.table) == ["internal/metabase"]


async def test_sort_key_cycles_columns_and_cpu_puts_the_busiest_app_first():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        screen = app.screen
        for _ in range(4):
            await pilot.press("s")
        assert screen.sort_key == "cpu"
        assert rows(screen.table)[:3] == ["shop/worker", "shop/web", "shop/api"]
        await pilot.press("o")
        assert rows(screen.table)[-1] == "shop/worker"


async def test_an_event_refetches_only_that_app_and_updates_its_row_in_place():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        table = app.screen.table
        assert "live" in str(table.get_cell("shop/web", "status"))
        await app.api.apps.stop("shop/web")  # the core announces the new status
        await until(pilot, lambda: "stopped" in str(table.get_cell("shop/web", "status")))
        assert table.row_count == 8


async def test_a_deleted_app_event_removes_its_row():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await app.api.apps.delete("labs/sandbox")  # the core announces it
        await until(pilot, lambda: "labs/sandbox" not in rows(app.screen.table))


async def test_dashboard_pages_through_ten_thousand_apps_500_at_a_time():
    world = new_world()
    add_apps(world, 10_000)  # written straight into the store: the core then holds 10,008 apps
    app = make_app(world)
    calls: list[tuple[int, int]] = []

    def count_pages(view) -> None:
        list_apps = view.apps.list

        async def counted(**kw):
            calls.append((kw.get("limit"), kw.get("offset")))
            return await list_apps(**kw)

        view.apps.list = counted

    world.on_open(count_pages)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "DashboardScreen")
        await until(
            pilot, lambda: app.screen.table.row_count == 10_008 and not app.screen._loading, timeout=60
        )
        assert {limit for limit, _ in calls} == {500}
        assert len(calls) == 21


async def test_clicking_a_header_sorts_by_its_column_and_clicking_again_reverses():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        screen = app.screen
        # Inside the table's border: the header is the first line, the App column follows Project's 18 cells.
        await pilot.click("#apps", offset=(22, 1))
        assert screen.sort_key == "app"
        assert rows(screen.table)[:2] == ["shop/api", "labs/experiment"]
        assert "App ▼" in screen.table.render_line(0).text
        await pilot.click("#apps", offset=(22, 1))
        assert screen.sort_reverse
        assert rows(screen.table)[0] == "shop/worker"


async def test_a_click_puts_the_cursor_on_a_row_and_a_click_on_the_cursors_row_opens_the_app():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        table = app.screen.table
        await pilot.click("#apps", offset=(30, 4))  # the third row
        assert table.selected_key == "internal/metabase"
        assert type(app.screen).__name__ == "DashboardScreen"
        await pilot.click("#apps", offset=(30, 4))
        await until(pilot, lambda: type(app.screen).__name__ == "AppScreen")
        assert app.screen.app_ref == "internal/metabase"


async def test_dashboard_keys_move_the_cursor_and_enter_opens_the_app_under_it():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        table = app.screen.table
        await pilot.press("j", "j", "down", "k")
        assert table.selected_key == "internal/metabase"
        await pilot.press("G")
        assert table.selected_key == "shop/worker"
        await pilot.press("g")
        assert table.selected_key == "blog/site"
        await pilot.press("enter")
        await until(pilot, lambda: type(app.screen).__name__ == "AppScreen")
        assert app.screen.app_ref == "blog/site"


async def test_a_metrics_sample_redraws_the_cpu_of_the_apps_it_names():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        table = app.screen.table
        line = table.get_row_index("shop/web") + 1  # under the header
        last = app.world.samples[-1]
        busy = [
            c.model_copy(update={"cpu_percent": 71.5}) if (c.project, c.app) == ("shop", "web") else c
            for c in last.containers
        ]
        app.world.metrics.push(last.model_copy(update={"containers": busy}))
        await until(pilot, lambda: "71.5%" in table.render_line(line).text)
        assert "71.5%" in table.get_cell("shop/web", "cpu")


async def test_adding_an_env_var_calls_the_api_and_shows_the_new_row():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot, tab="environment")
        await pilot.press("a")
        await until(pilot, lambda: type(app.screen).__name__ == "FormDialog")
        await pilot.press(*"CACHE_TTL", "tab", *"300", "enter")
        await until(pilot, lambda: type(app.screen).__name__ == "AppScreen")
        table = app.screen.query_one("#env")
        await until(pilot, lambda: "CACHE_TTL" in rows(table))
        stored = {v.key: v for v in await app.api.env.list("shop/web")}["CACHE_TTL"]
        assert (stored.value, stored.secret) == ("300", False)


async def test_a_refused_env_name_is_shown_in_the_dialog_which_stays_open():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot, tab="environment")
        await pilot.press("a")
        await until(pilot, lambda: type(app.screen).__name__ == "FormDialog")
        await pilot.press(*"9LIVES", "enter")
        await until(
            pilot,
            lambda: (
                "environment variable name '9LIVES' is not valid"
                in str(app.screen.query_one("#error-key").render())
            ),
        )
        assert type(app.screen).__name__ == "FormDialog"


async def test_deleting_an_env_var_asks_first_naming_it_then_calls_unset():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot, tab="environment")
        table = app.screen.query_one("#env")
        await until(pilot, lambda: table.row_count == 5)
        await pilot.press("d")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog")
        assert "DATABASE_URL" in app.screen.message and "shop/web" in app.screen.message
        await pilot.press("y")
        await until(pilot, lambda: "DATABASE_URL" not in rows(table))
        assert "DATABASE_URL" not in [v.key for v in await app.api.env.list("shop/web")]


async def test_secrets_are_masked_until_revealed():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot, tab="environment")
        table = app.screen.query_one("#env")
        await until(pilot, lambda: table.row_count == 5)
        assert str(table.get_cell("STRIPE_KEY", "value")) == "••••••"
        await pilot.press("r")
        await until(pilot, lambda: str(table.get_cell("STRIPE_KEY", "value")) == "sk_live_51Hc0ffee")


async def test_saving_settings_changes_only_the_changed_fields():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot, tab="settings")
        before = (await app.api.apps.get("shop/web")).spec
        screen = app.screen
        screen.query_one("#set-branch").value = "release"
        screen.query_one("#set-cpus").value = "0.5"
        screen.query_one("SettingsPane").action_save()

        async def saved() -> bool:
            return (await app.api.apps.get("shop/web")).spec.branch == "release"

        for _ in range(100):
            if await saved():
                break
            await pilot.pause(0.05)
        after = (await app.api.apps.get("shop/web")).spec
        assert (after.branch, after.cpus) == ("release", 0.5)
        assert after.model_dump(exclude={"branch", "cpus"}) == before.model_dump(exclude={"branch", "cpus"})


async def test_a_restart_policy_the_form_does_not_list_is_kept_when_another_field_is_saved():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await app.api.apps.update("shop/web", AppChanges(restart="on-failure:5"))
        await open_app(pilot, tab="settings")
        screen = app.screen
        await until(pilot, lambda: screen.query_one("#set-restart").value == "on-failure:5")
        screen.query_one("#set-branch").value = "release"
        screen.query_one("SettingsPane").action_save()
        for _ in range(100):
            if (await app.api.apps.get("shop/web")).spec.branch == "release":
                break
            await pilot.pause(0.05)
        after = (await app.api.apps.get("shop/web")).spec
        assert (after.branch, after.restart) == ("release", "on-failure:5")


async def test_an_invalid_setting_is_shown_next_to_the_field_it_names():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot, tab="settings")
        screen = app.screen
        screen.query_one("#set-branch").value = "my branch"
        screen.query_one("SettingsPane").action_save()
        error = screen.query_one("#err-branch")
        await until(pilot, lambda: "contains a space" in str(error.render()))
        assert error.has_class("-shown")


async def test_keymap_from_config_remaps_a_binding_by_id():
    app = make_app(config=Config(keymap={"dashboard.filter": "f"}))
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await pilot.press("f")
        await pilot.pause()
        assert app.screen.has_class("-filtering")
        assert app.focused is app.screen.query_one("#filter")


async def test_an_api_error_appears_as_a_notification_with_its_message():
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await on_dashboard(pilot)
        app.open_deployment(404)
        await until(pilot, lambda: len(app._notifications))
        messages = [n.message for n in app._notifications]
        assert messages == ["there is no deployment 404"]


async def test_an_expired_token_leads_to_the_login_screen_saying_so():
    world = new_world()
    app = make_app(world, target=Target("daemon", "unix:///run/mist/mist.sock", world.tokens["ada-laptop"]))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "LoginScreen")
        assert "expired" in str(app.screen.query_one("#card-error").render())


async def test_logging_in_saves_the_token_for_the_host_and_opens_the_dashboard():
    app = make_app(user=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "LoginScreen")
        await pilot.press(*"ada", "enter", *PASSWORD, "enter")
        await on_dashboard(pilot)
        saved = json.loads(app.credentials.path.read_text())
        assert list(saved) == ["unix:///run/mist/mist.sock"]
        entry = saved["unix:///run/mist/mist.sock"]
        assert (entry["token"], entry["username"]) == (app.api.token, "ada")
        assert entry["refresh_token"].startswith("mist_r_")
        assert app.credentials.path.stat().st_mode & 0o777 == 0o600


async def test_setup_creates_the_owner_when_both_passwords_match():
    app = make_app(empty_world(), user=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "SetupScreen")
        await pilot.press(*"ada", "tab", *PASSWORD, "tab", *PASSWORD, "enter")
        await until(pilot, lambda: type(app.screen).__name__ == "DashboardScreen")
        assert [(u.username, u.role) for u in await app.api.users.list()] == [("ada", "owner")]


async def test_connect_failure_says_how_to_start_the_daemon():
    app = make_app(fail_connect=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query_one("#card-error").has_class("-shown"))
        assert "mist daemon" in str(app.screen.query_one("#card-error").render())


async def test_changing_theme_is_saved_to_the_config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('default_host = "unix:///x.sock"\n\n[keymap]\n"dashboard.filter" = "/"\n')
    app = make_app(config=Config.load(path))
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        app.theme = "nord"
        await pilot.pause()
    assert Config.load(path).theme == "nord"
    assert Config.load(path).default_host == "unix:///x.sock"


async def test_a_setting_refused_by_the_server_is_shown_in_place():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        app.action_goto("settings")
        await until(
            pilot, lambda: type(app.screen).__name__ == "SettingsScreen" and app.screen.table.row_count
        )
        table = app.screen.table
        table.move_cursor(row=table.get_row_index("proxy_backend"))
        await pilot.press("e")
        await until(pilot, lambda: type(app.screen).__name__ == "PromptDialog")
        app.screen.query_one("#field-value").value = "nginx"
        await pilot.press("enter")
        await until(pilot, lambda: "nginx" in str(app.screen.query_one("#error-value").render()))
        assert (await app.api.settings.get("proxy_backend")).value != "nginx"


async def test_cancel_asks_then_cancels_a_running_deployment():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        building = app.world.ids["building"]
        app.open_deployment(building)
        await until(pilot, lambda: type(app.screen).__name__ == "DeploymentScreen" and app.screen.deployment)
        await pilot.press("c")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog")
        assert f"#{building}" in app.screen.message
        await pilot.press("y")

        # No worker runs in this world, so the core records the request; the worker would stop the build.
        async def asked() -> bool:
            entries = (await app.api.audit.list(action="deployment.cancel")).items
            return any(e.detail.get("deployment") == building for e in entries)

        for _ in range(100):
            if await asked():
                break
            await pilot.pause(0.05)
        assert await asked()


async def test_deploy_asks_for_the_ref_defaulting_to_the_branch():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot)
        await pilot.press("D")
        await until(pilot, lambda: type(app.screen).__name__ == "FormDialog")
        assert app.screen.query_one("#field-ref").value == "main"
        await pilot.press("enter")
        await until(pilot, lambda: type(app.screen).__name__ == "DeploymentScreen")
        newest = (await app.api.deployments.list("shop/web")).items[0]
        assert (newest.state.value, newest.ref, newest.triggered_by) == ("queued", "main", "ada")


async def test_command_palette_offers_the_current_screens_actions():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        from mist_tui.commands import ScreenCommands

        provider = ScreenCommands(app.screen)
        names = [text for text, _, _ in provider._commands()]
        assert {"Filter", "Sort", "Deploy", "Go to metrics"} <= set(names)


class LogHost(App):
    def compose(self) -> ComposeResult:
        yield LogView(cap=50_000)


async def test_log_buffer_holds_its_cap_under_a_hundred_thousand_lines():
    app = LogHost()
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(LogView)
        for i in range(100_000):
            view.write(LogEntry(ts=NOW + timedelta(milliseconds=i), text=f"line {i}"))
        await until(pilot, lambda: view.buffer.end == 100_000, timeout=10)
        assert len(view.buffer) == 50_000
        assert view.row_count == 50_000
        assert view.buffer[view.buffer.end - 1].text == "line 99999"
        assert view.following


async def test_scrolling_up_pauses_and_counts_new_lines_and_f_resumes():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot, tab="logs")
        panel = app.screen.query_one("#app-logs")
        view = panel.view
        await until(pilot, lambda: app.world.followers("shop/web"))
        for i in range(60):
            app.world.push_log("shop/web", _line(i))
        await until(pilot, lambda: view.row_count == 72)
        await pilot.press("pageup")
        await until(pilot, lambda: not view.following)
        for i in range(60, 65):
            app.world.push_log("shop/web", _line(i))
        await until(pilot, lambda: view.new_lines == 5)
        assert "5 new lines" in str(panel.query_one(".log-status").render())
        await pilot.press("f")
        assert view.following and view.new_lines == 0


async def test_search_counts_matches_and_filter_keeps_only_matching_lines():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot, tab="logs")
        view = app.screen.query_one("#app-logs").view
        await until(pilot, lambda: view.row_count == 12)
        await pilot.press("slash", *"healthz", "enter")
        assert view.match_count == 3
        await pilot.press("F")
        assert view.row_count == 3


def _line(i: int):
    from mist_core.models import LogLine

    return LogLine(ts=NOW + timedelta(seconds=i), source="mist-shop-web", text=f"GET /item/{i} 200")


def test_target_label_hides_the_unix_scheme():
    assert Target("daemon", "unix:///run/mist/mist.sock").label == "/run/mist/mist.sock"


async def test_escape_in_the_log_search_clears_it_and_stays_on_the_screen():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot, tab="logs")
        view = app.screen.query_one("#app-logs").view
        await until(pilot, lambda: view.row_count == 12)
        await pilot.press("slash", *"cart")
        assert view.search is not None
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "AppScreen"
        assert view.search is None and app.focused is view


class TableHost(App):
    """A table of ``count`` numbered rows in groups of 50, noting which rows it was asked to draw."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.data = {f"row{i:05d}": (f"group{i // 50}", f"row{i:05d}", str(i)) for i in range(count)}
        self.drawn: set[str] = set()

    def compose(self) -> ComposeResult:
        columns = [Column("group", "Group", 8), Column("name", "Name", 10), Column("n", "N", 6, "right")]
        yield LineTable(columns, self.cells)

    def cells(self, key: str) -> tuple[Cell, ...]:
        self.drawn.add(key)
        return self.data[key]


async def test_a_table_of_ten_thousand_rows_builds_cells_only_for_the_rows_on_screen():
    app = TableHost(10_000)
    async with app.run_test(size=(40, 20)) as pilot:
        table = app.query_one(LineTable)
        table.show(list(app.data))
        await pilot.pause()
        assert table.row_count == 10_000
        assert 0 < len(app.drawn) <= 20
        app.drawn.clear()
        table.show([key for key in app.data if key.endswith("7")])  # a filter keeping 1,000 rows
        await pilot.pause()
        assert table.row_count == 1_000
        assert table.render_line(1).text.split() == ["group0", "row00007", "7"]
        assert 0 < len(app.drawn) <= 20


async def test_table_page_keys_move_the_cursor_a_screen_at_a_time_and_keep_it_in_view():
    app = TableHost(1_000)
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(LineTable)
        table.show(list(app.data))
        table.focus()
        await pilot.pause()
        visible = table.scrollable_content_region.height - 1  # less the header

        def cursor_on_screen() -> bool:
            top = table.scroll_offset.y
            return top <= table.cursor_row < top + visible

        await pilot.press("pagedown")
        assert table.cursor_row == visible and cursor_on_screen()
        await pilot.press("pagedown", "pageup")
        assert table.cursor_row == visible and cursor_on_screen()
        await pilot.press("G")
        assert table.selected_key == "row00999" and cursor_on_screen()
        assert "row00999" in table.render_line(visible).text
        await pilot.press("ctrl+home")
        assert table.cursor_row == 0 and table.scroll_offset.y == 0


async def test_a_grouped_column_names_its_group_once_and_again_at_the_top_when_scrolled_into_it():
    app = TableHost(200)
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(LineTable)
        table.group_by = "group"
        table.show(list(app.data))
        await pilot.pause()
        assert table.render_line(1).text.split()[0] == "group0"
        assert table.render_line(2).text.split()[0] == "row00001"
        table.scroll_to(y=20, animate=False)
        await pilot.pause()
        assert table.render_line(1).text.split()[:2] == ["group0", "row00020"]
        assert table.render_line(2).text.split()[0] == "row00021"
