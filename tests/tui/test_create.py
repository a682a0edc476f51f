"""Creating, renaming and deleting projects and apps from the dashboard, on the seeded real core: what the
screens show is what the core stored, and its refusals are shown in its own words."""

from __future__ import annotations

from mist_core.models import AppSpec
from tests.tui.scenarios import SIZE, make_app, on_dashboard, screen_name, until


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
        project = await app.api.projects.get("docs")
        assert (project.description, project.tags) == ("Handbook", ["team", "web"])
        assert "no apps yet" in str(table.get_row("docs/")[1])

        table.move_cursor(row=table.get_row_index("docs/"))
        await pilot.press("c")
        await until(pilot, lambda: screen_name(pilot) == "AppForm")
        assert app.screen.query_one("#field-project").value == "docs"
        # No git provider is set up: the form goes from the name straight to the git URL.
        await pilot.press("tab", *"site", "tab", *"https://git.example.com/docs.git", "tab", "tab", *"8080")
        await pilot.press("tab", *"/health", "enter")
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
        await until(pilot, lambda: "docs/site" in rows(table))
        assert "docs/" not in rows(table)
        created = await app.api.apps.get("docs/site")
        assert created.spec.git_url == "https://git.example.com/docs.git"
        assert created.spec.port == 8080 and created.spec.health.path == "/health"


async def test_new_app_shows_the_cores_error_next_to_the_field_it_names():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await pilot.press("c")
        await until(pilot, lambda: screen_name(pilot) == "AppForm")
        assert app.screen.query_one("#field-project").value == "blog"
        await pilot.press("tab", *"api", "tab", *"ftp://nope", "tab", "tab", *"8080", "enter")
        await until(pilot, lambda: error_text(pilot, "git_url"))
        assert "uses the scheme 'ftp': use https://, ssh:// or user@host:path" in error_text(pilot, "git_url")
        assert error_text(pilot, "port") == ""

        git_url = app.screen.query_one("#field-git_url")
        git_url.value = "https://git.example.com/api.git"
        app.screen.query_one("#field-port").value = "80a"
        await pilot.press("enter")
        await until(pilot, lambda: error_text(pilot, "port"))
        assert "is not a number" in error_text(pilot, "port")
        assert screen_name(pilot) == "AppForm"
        assert [a.name for a in (await app.api.apps.list(project="blog")).items] == ["site"]


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
        assert any("project 'blog' still has 1 app(s) (site): delete them first" in m for m in messages)
        assert (await app.api.projects.get("blog")).name == "blog"


async def test_an_empty_project_can_be_deleted_and_its_row_goes():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await app.api.projects.create("empty")
        app.screen.reload_projects()
        table = app.screen.table
        await until(pilot, lambda: "empty/" in rows(table))
        table.move_cursor(row=table.get_row_index("empty/"))
        await pilot.press("X", "y")
        await until(pilot, lambda: "empty/" not in rows(table))
        assert "empty" not in [p.name for p in (await app.api.projects.list()).items]


async def test_renaming_a_project_renames_its_rows():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await app.api.projects.create("drafts")
        await app.api.apps.create("drafts/notes", AppSpec(git_url="https://git.example.com/notes.git"))
        app.screen.reload_projects()
        table = app.screen.table
        await until(pilot, lambda: "drafts/notes" in rows(table))
        table.move_cursor(row=table.get_row_index("drafts/notes"))
        await pilot.press("r")
        await until(pilot, lambda: screen_name(pilot) == "PromptDialog")
        app.screen.query_one("#field-value").value = "journal"
        await pilot.press("enter")
        await until(pilot, lambda: "journal/notes" in rows(table))
        assert "drafts/notes" not in rows(table)
        assert (await app.api.apps.get("journal/notes")).project == "journal"


async def test_renaming_a_project_with_deployed_apps_shows_why_the_core_refused():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await pilot.press("r")
        await until(pilot, lambda: screen_name(pilot) == "PromptDialog")
        dialog = app.screen
        dialog.query_one("#field-value").value = "journal"
        await pilot.press("enter")
        shown = lambda: " ".join(str(w.render()) for w in dialog.query("Static"))  # noqa: E731
        await until(pilot, lambda: "has deployed apps" in shown())
        assert "project 'blog' has deployed apps, whose containers and images carry its name" in shown()
        assert screen_name(pilot) == "PromptDialog"
        assert (await app.api.apps.get("blog/site")).project == "blog"


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
