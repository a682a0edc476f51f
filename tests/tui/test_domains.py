"""The Domains tab, the rollback action and the dashboard's proxy line, driven through Pilot on the fake API."""

from __future__ import annotations

from mist_core.models import Event
from mist_tui.screens.domains import parse_headers

from .fake_api import NOW
from .scenarios import make_fake_app as make_app
from .scenarios import on_dashboard, open_app, screen_name, until


def test_headers_are_read_one_per_line_and_a_line_without_colon_is_named():
    assert parse_headers("X-Robots-Tag: noindex\n\nCache-Control: no-store") == {
        "X-Robots-Tag": "noindex",
        "Cache-Control": "no-store",
    }
    try:
        parse_headers("X-Robots-Tag noindex")
    except Exception as error:  # noqa: BLE001
        assert error.field == "headers" and "line 1" in error.message  # type: ignore[attr-defined]
    else:
        raise AssertionError("a header line without ':' was accepted")


async def test_domains_tab_shows_each_certificate_state_and_the_failure_reason():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_app(pilot, tab="domains")
        table = app.screen.query_one("#domains-table")
        await until(pilot, lambda: table.row_count == 4)
        cells = {str(table.get_row(name)[0]): str(table.get_row(name)[5]) for name in table.rows}  # type: ignore[attr-defined]
        assert cells["shop.example.com"].startswith("issued expires in 2mo")
        assert cells["checkout.example.com"] == "pending"
        assert cells["shop.example.org"].startswith("failed next try in 5m")
        await pilot.press("down", "down")
        detail = str(app.screen.query_one("#domain-detail").render())
        assert "resolves to 203.0.113.9, not this server" in detail


async def test_adding_a_domain_used_by_another_app_shows_the_error_next_to_the_name():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_app(pilot, tab="domains")
        await pilot.press("a")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        await pilot.press(*"blog.example.com", "enter")
        dialog = app.screen
        await until(pilot, lambda: str(dialog.query_one("#error-name").render()).strip())
        assert "already used by the app blog/site" in str(dialog.query_one("#error-name").render())


async def test_adding_a_domain_sends_its_settings_and_lists_it_with_a_pending_certificate():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_app(pilot, tab="domains")
        await pilot.press("a")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        dialog = app.screen
        dialog.query_one("#field-name").value = "api.example.com"  # type: ignore[attr-defined]
        dialog.query_one("#field-path_prefix").value = "/v1"  # type: ignore[attr-defined]
        dialog.query_one("#field-headers").text = "X-Robots-Tag: noindex"  # type: ignore[attr-defined]
        dialog._submitted()  # type: ignore[attr-defined]
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        table = app.screen.query_one("#domains-table")
        await until(pilot, lambda: table.row_count == 5)
        added = app.fake.domain_table["shop/web"][-1]  # type: ignore[attr-defined]
        assert (added.name, added.path_prefix, added.headers) == (
            "api.example.com",
            "/v1",
            {"X-Robots-Tag": "noindex"},
        )
        assert str(table.get_row("api.example.com")[5]) == "pending"  # type: ignore[attr-defined]


async def test_removing_a_domain_asks_first_naming_it():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_app(pilot, tab="domains")
        await pilot.press("d")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        assert "shop.example.com" in str(app.screen.query_one(".dialog-message").render())
        await pilot.press("y")
        await until(pilot, lambda: ("domains.remove", "shop/web", "shop.example.com") in app.fake.calls)  # type: ignore[attr-defined]


async def test_rollback_confirms_with_deployment_and_commit_then_queues_it():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_app(pilot, tab="deployments")
        await pilot.press("down", "down", "down", "down")
        await pilot.press("b")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        message = str(app.screen.query_one(".dialog-message").render())
        assert "Roll back shop/web to deployment 16 (commit 5f2c1ab)?" in message
        await pilot.press("y")
        await until(pilot, lambda: ("apps.rollback", "shop/web", 16) in app.fake.calls)  # type: ignore[attr-defined]


async def test_rollback_deployments_are_marked_with_what_they_went_back_to():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_app(pilot, tab="deployments")
        table = app.screen.query_one("#deployments-table")
        assert str(table.get_row("18")[3]).startswith("↩ rollback to #16")  # type: ignore[attr-defined]


async def test_dashboard_proxy_line_follows_domain_events():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await on_dashboard(pilot)
        line = app.screen.query_one("#proxy-line")
        await until(pilot, lambda: "5 domains" in str(line.render()))
        assert "traefik" in str(line.render()) and "reachable" in str(line.render())
        app.fake.domain_table["shop/web"].pop()  # type: ignore[attr-defined]
        app.fake.push_event(Event(kind="app", action="domains", project="shop", app="web", ts=NOW))  # type: ignore[attr-defined]
        await until(pilot, lambda: "4 domains" in str(line.render()))
