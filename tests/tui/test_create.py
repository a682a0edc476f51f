"""Creating, renaming and deleting projects and apps from the dashboard, on the fake API."""

from __future__ import annotations

from tests.tui.scenarios import SIZE, on_dashboard, screen_name, until
from tests.tui.scenarios import make_fake_app as make_app


def rows(table) -> list[str]:
    return [str(key.value) for key in table.rows]


def error_text(pilot, field: str) -> str:
    return str(pilot.app.screen.query_one(f"#error-{field}").render()).strip()


async def test_new_project_appears_as_an_empty_row_and_new_app_fills_it():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await pilot.press("n")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        await pilot.press(*"docs", "tab", *"Handbook", "tab", *"team, web", "enter")
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
        table = app.screen.table
        await until(pilot, lambda: "docs/" in rows(table))
        assert ("projects.create", "docs", "Handbook", ["team", "web"]) in app.fake.calls
        assert "no apps yet" in str(table.get_row("docs/")[1])

        table.move_cursor(row=table.get_row_index("docs/"))
        await pilot.press("c")
        await until(pilot, lambda: screen_name(pilot) == "AppForm")
        assert app.screen.query_one("#field-project").value == "docs"
        await until(pilot, lambda: app.screen.query_one("#field-provider").display)
        # The git provider choice (the fake knows some) sits between the name and the git URL.
        await pilot.press(
            "tab", *"site", "tab", "tab", *"https://git.example.com/docs.git", "tab", "tab", *"8080"
        )
        await pilot.press("tab", *"/health", "enter")
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
        await until(pilot, lambda: "docs/site" in rows(table))
        assert "docs/" not in rows(table)
        created = [c for c in app.fake.calls if c[0] == "apps.create"]
        assert created[0][1] == "docs/site"
        assert created[0][2]["port"] == 8080 and created[0][2]["health"]["path"] == "/health"


async def test_new_app_shows_the_cores_error_next_to_the_field_it_names():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await pilot.press("c")
        await until(pilot, lambda: screen_name(pilot) == "AppForm")
        assert app.screen.query_one("#field-project").value == "blog"
        await until(pilot, lambda: app.screen.query_one("#field-provider").display)
        await pilot.press("tab", *"api", "tab", "tab", *"ftp://nope", "tab", "tab", *"8080", "enter")
        await until(pilot, lambda: error_text(pilot, "git_url"))
        assert "is not https://" in error_text(pilot, "git_url")
        assert error_text(pilot, "port") == ""

        git_url = app.screen.query_one("#field-git_url")
        git_url.value = "https://git.example.com/api.git"
        app.screen.query_one("#field-port").value = "80a"
        await pilot.press("enter")
        await until(pilot, lambda: error_text(pilot, "port"))
        assert "is not a number" in error_text(pilot, "port")
        assert screen_name(pilot) == "AppForm"


async def test_deleting_a_project_with_apps_shows_why_the_core_refused():
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await on_dashboard(pilot)
        await pilot.press("X")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        assert "blog" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("y")
        await until(pilot, lambda: app._notifications)
        messages = [n.message for n in app._notifications]
        assert any("still has 1 apps: delete them first" in m for m in messages)
        assert "blog" in app.fake.data.projects


async def test_an_empty_project_can_be_deleted_and_its_row_goes():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await app.fake.projects.create("empty")
        app.screen.reload_projects()
        table = app.screen.table
        await until(pilot, lambda: "empty/" in rows(table))
        table.move_cursor(row=table.get_row_index("empty/"))
        await pilot.press("X", "y")
        await until(pilot, lambda: "empty/" not in rows(table))
        assert ("projects.delete", "empty") in app.fake.calls


async def test_renaming_a_project_renames_its_rows():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await pilot.press("r")
        await until(pilot, lambda: screen_name(pilot) == "PromptDialog")
        app.screen.query_one("#field-value").value = "journal"
        await pilot.press("enter")
        table = app.screen.table
        await until(pilot, lambda: "journal/site" in rows(table))
        assert "blog/site" not in rows(table)


async def test_create_and_delete_commands_are_in_the_palette():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await pilot.press("colon")
        await until(pilot, lambda: screen_name(pilot) == "CommandPalette")
        await pilot.press(*"new app")
        await until(
            pilot,
            lambda: "New app" in str(app.screen.query("CommandList").first().get_option_at_index(0).prompt),
        )
        await pilot.press("enter")
        await until(pilot, lambda: screen_name(pilot) == "AppForm")
