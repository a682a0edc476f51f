"""The Databases screens on the seeded real core with databases (``world.database_world``): the dashboard's
database rows, the list, creating one, its connection URL (revealed through the audited call), its life cycle,
deleting with a typed name, links, and backups."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from mist_tui.screens.databases import DatabaseScreen, DatabasesScreen

from .scenarios import (
    databases_list,
    make_db_app,
    on_dashboard,
    open_database,
    project_backups,
    screen_name,
    until,
)


def texts(screen) -> str:
    """What the screen's texts say, as plain text (rich tables included)."""
    console = Console(width=300, record=True, file=io.StringIO())
    for widget in screen.query("Static, Label"):
        content = widget.content
        console.print(content if not isinstance(content, str) else Text(content))
    return console.export_text()


async def test_the_dashboard_lists_databases_under_their_project_and_opens_one():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await on_dashboard(pilot)
        screen = app.screen
        await until(pilot, lambda: screen.table.has_row("shop/db:main"))
        keys = list(screen.table.keys)
        # Grouped with the project's apps: shop's apps, then shop's databases, before nothing of another project.
        shop = [k for k in keys if k.startswith("shop/")]
        assert shop == ["shop/api", "shop/web", "shop/worker", "shop/db:cache", "shop/db:main"]
        assert keys.index("shop/db:main") == keys.index("shop/worker") + 2
        assert "postgres 15" in " ".join(map(str, screen.table.get_row("shop/db:main")))
        assert "4 databases" in screen.table.border_subtitle
        screen.table.select("shop/db:main")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DatabaseScreen) and app.screen.current is not None)
        assert app.screen.current.ref == "shop/main"
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
        screen.table.select("blog/db:db")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, DatabaseScreen))
        assert app.screen.query_one("TabbedContent").active == "logs"


async def test_the_dashboard_filter_finds_databases_by_name_engine_and_state():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await on_dashboard(pilot)
        screen = app.screen
        await until(pilot, lambda: screen.table.has_row("shop/db:main"))
        await pilot.press("slash", *"redis")
        await until(pilot, lambda: list(screen.table.keys) == ["shop/db:cache"])
        await pilot.press("escape")
        await pilot.press("slash", *"stopped")
        await until(pilot, lambda: "blog/db:db" in screen.table.keys)
        assert "labs/experiment" in screen.table.keys and "shop/db:main" not in screen.table.keys


async def test_the_list_shows_engine_state_links_and_that_no_database_was_backed_up_yet():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await databases_list(pilot)
        screen = app.screen
        assert isinstance(screen, DatabasesScreen)
        assert list(screen.table.rows) == ["blog/db", "labs/scratch", "shop/cache", "shop/main"]
        row = " ".join(str(c) for c in screen.table.get_row("blog/db"))
        assert "postgres 16" in row and "stopped" in row
        assert "sandbox" in " ".join(str(c) for c in screen.table.get_row("labs/scratch"))
        assert "volumes only" not in screen.table.border_subtitle
        assert "none yet" in " ".join(str(c) for c in screen.table.get_row("shop/main"))


async def test_creating_a_database_shows_the_cores_objection_then_adds_it():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await databases_list(pilot)
        await pilot.press("n")
        await until(pilot, lambda: screen_name(pilot) == "DatabaseForm")
        dialog = app.screen
        dialog.query_one("#field-project").value = "shop"
        dialog.query_one("#field-engine").value = "redis"
        await pilot.pause(0.1)
        # The versions follow the engine; Redis's persistence choice appears for Redis only.
        assert dialog.query_one("#field-version").value == "7"
        assert dialog.query_one("#field-persistence").display
        dialog.query_one("#field-name").value = "Bad Name"
        dialog._submitted()
        await until(pilot, lambda: str(dialog.query_one("#error-name").render()).strip())
        assert screen_name(pilot) == "DatabaseForm"
        dialog.query_one("#field-name").value = "sessions"
        dialog.query_one("#field-persistence").value = "none"
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "DatabasesScreen")
        await until(pilot, lambda: "shop/sessions" in app.screen.databases)
        created = await app.api.databases.get("shop/sessions")
        assert (created.engine, created.version, created.persistence) == ("redis", "7", "none")


async def test_the_url_stays_hidden_until_revealed_and_revealing_is_audited():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_database(pilot)
        screen = app.screen
        assert "postgresql://" not in texts(screen)
        await pilot.press("y")  # nothing to copy yet: the URL holds the password
        await pilot.pause(0.1)
        assert app.clipboard == ""
        assert not [e for e in (await app.api.audit.list()).items if e.action == "database.url.reveal"]
        await pilot.press("r")
        await until(pilot, lambda: screen.url is not None)
        assert screen.url.startswith("postgresql://main:")
        assert screen.url in texts(screen)
        await pilot.press("y")
        await pilot.pause(0.1)
        assert app.clipboard == screen.url
        # The notification names the URL, never the password in it.
        assert all(screen.url.split(":")[2].split("@")[0] not in n.message for n in app._notifications)
        reveals = [e for e in (await app.api.audit.list()).items if e.action == "database.url.reveal"]
        assert len(reveals) == 1


async def test_stopping_asks_first_and_starting_does_not():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_database(pilot, "shop/cache")
        screen = app.screen
        await pilot.press("S")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        assert "shop/cache" in texts(app.screen)
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen)
        assert (await app.api.databases.get("shop/cache")).status == "running"
        await pilot.press("S")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        await pilot.press("y")
        await until(pilot, lambda: screen.current.status == "stopped")
        await pilot.press("S")
        await until(pilot, lambda: screen.current.status == "running")
        assert screen_name(pilot) == "DatabaseScreen"


async def test_deleting_needs_the_typed_name_and_a_linked_database_is_refused_naming_the_app():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_database(pilot, "labs/scratch")
        await pilot.press("X")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        dialog = app.screen
        dialog.query_one("#field-name").value = "scratch"
        dialog._submitted()
        await until(pilot, lambda: "Type labs/scratch" in str(dialog.query_one("#error-name").render()))
        dialog.query_one("#field-name").value = "labs/scratch"
        dialog._submitted()
        await until(pilot, lambda: "labs/sandbox" in str(dialog.query_one("#error-form").render()))
        assert (await app.api.databases.get("labs/scratch")).linked_apps == ["labs/sandbox"]
        await pilot.press("escape")
        # Unlink (after a confirmation naming both), then the deletion goes through.
        screen = app.screen
        assert isinstance(screen, DatabaseScreen)
        screen.query_one("#db-links").focus()
        await pilot.press("U")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        assert "labs/sandbox" in texts(app.screen) and "labs/scratch" in texts(app.screen)
        await pilot.press("y")
        await until(pilot, lambda: screen.current.linked_apps == [])
        await pilot.press("X")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        app.screen.query_one("#field-name").value = "labs/scratch"
        app.screen._submitted()
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
        refs = [db.ref for db in (await app.api.databases.list()).items]
        assert "labs/scratch" not in refs


async def test_linking_an_app_gives_it_the_variables():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_database(pilot, "shop/cache")
        await pilot.press("L")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        dialog = app.screen
        dialog.query_one("#field-app").value = "worker"
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "DatabaseScreen")
        screen = app.screen
        await until(pilot, lambda: screen.current.linked_apps == ["shop/worker"])
        keys = {v.key for v in await app.api.env.list("shop/worker")}
        assert {"REDIS_URL", "REDIS_PASSWORD"} <= keys


async def test_backups_list_their_verification_and_restore_names_the_target():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await project_backups(pilot)
        pane = app.screen.query_one("BackupsPane")
        table = pane.query_one("#backups-table")
        assert list(table.rows) == ["4", "3", "2", "1"]
        verified = {key: str(table.get_cell(key, "verified")) for key in table.rows}
        assert (
            verified["4"] == "never"
            and verified["2"].startswith("failed")
            and verified["1"].startswith("passed")
        )
        assert "1 never verified" in table.border_subtitle
        # A failed backup is neither verified nor restored.
        await pilot.press("down")
        await pilot.press("v")
        await pilot.pause(0.1)
        assert any("#3 is failed" in n.message for n in app._notifications)
        # Restoring over the volume asks, naming it.
        await pilot.press("up", "t")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        await pilot.press("enter")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        assert "shop/uploads" in texts(app.screen)
        await pilot.press("n")
        await until(pilot, lambda: screen_name(pilot) == "BackupsScreen")


async def test_backing_up_now_shows_the_cores_refusal_in_the_form():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await project_backups(pilot)
        await pilot.press("n")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        dialog = app.screen
        assert dialog.query_one("#field-destination").value == "nightly"
        dialog._submitted()
        await until(pilot, lambda: "Name the volume" in str(dialog.query_one("#error-name").render()))
        dialog.query_one("#field-name").value = "uploads"
        dialog._submitted()
        # The engine here has no such volume: the core says so, and the form stays open.
        await until(pilot, lambda: "has no volume 'uploads'" in str(dialog.query_one("#error-name").render()))


async def test_a_databases_backups_tab_lists_its_backups_without_a_refusal():
    app = make_db_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_database(pilot, tab="backups")
        pane = app.screen.query_one("BackupsPane")
        await pilot.pause(0.2)
        assert pane.refusal is None
        assert "does not back up databases" not in str(app.screen.query_one("#backup-detail").render())
