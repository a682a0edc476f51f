"""The Domains tab, the rollback action and the dashboard's proxy line, driven through Pilot on the seeded real
core."""

from __future__ import annotations

from mist_tui.screens.domains import parse_headers

from .scenarios import make_app, on_dashboard, open_app, screen_name, until


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
        cells = {str(table.get_row(name)[0]).strip(): str(table.get_row(name)[5]) for name in table.rows}  # type: ignore[attr-defined]
        assert cells["shop.example.com"].startswith("issued expires in 2mo")
        assert cells["checkout.example.com"].strip() == "pending"
        assert cells["shop.example.org"].startswith("failed next try in 5m")
        table.move_cursor(
            row=[str(table.get_row(k)[0]).strip() for k in table.rows].index("shop.example.org")
        )  # type: ignore[attr-defined]
        await pilot.pause(0.1)
        detail = str(app.screen.query_one("#domain-detail").render())
        assert "203.0.113.9: Timeout during connect" in detail


async def test_adding_a_domain_used_by_another_app_shows_the_error_next_to_the_name():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_app(pilot, tab="domains")
        await pilot.press("a")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        await pilot.press(*"blog.example.com", "enter")
        dialog = app.screen
        await until(pilot, lambda: str(dialog.query_one("#error-name").render()).strip())
        assert "blog.example.com is already used by the app blog/site: remove it there first" in str(
            dialog.query_one("#error-name").render()
        )


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
        added = {d.name: d for d in await app.api.domains.list("shop/web")}["api.example.com"]
        assert (added.path_prefix, added.headers) == ("/v1", {"X-Robots-Tag": "noindex"})
        assert str(table.get_row("api.example.com")[5]).strip() == "pending"  # type: ignore[attr-defined]


async def test_removing_a_domain_asks_first_naming_it():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_app(pilot, tab="domains")
        table = app.screen.query_one("#domains-table")
        await until(pilot, lambda: table.row_count == 4)
        first = str(table.get_row_at(0)[0]).strip()  # type: ignore[attr-defined]
        await pilot.press("d")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        assert first in str(app.screen.query_one(".dialog-message").render())
        await pilot.press("y")
        await until(pilot, lambda: table.row_count == 3)
        assert first not in [d.name for d in await app.api.domains.list("shop/web")]


async def test_rollback_confirms_with_deployment_and_commit_then_queues_it():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_app(pilot, tab="deployments")
        initial = next(
            d
            for d in (await app.api.deployments.list("shop/web")).items
            if d.commit_message == "Initial import"
        )
        await pilot.press("down", "down", "down", "down")
        await pilot.press("b")
        await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
        message = str(app.screen.query_one(".dialog-message").render())
        assert f"Roll back shop/web to deployment {initial.id} (commit 5f2c1ab)?" in message
        await pilot.press("y")

        async def queued() -> bool:
            newest = (await app.api.deployments.list("shop/web")).items[0]
            return newest.source == "rollback" and newest.rollback_of == initial.id

        for _ in range(100):
            if await queued():
                break
            await pilot.pause(0.05)
        assert await queued()


async def test_rollback_deployments_are_marked_with_what_they_went_back_to():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await open_app(pilot, tab="deployments")
        table = app.screen.query_one("#deployments-table")
        rollback = next(
            d for d in (await app.api.deployments.list("shop/web")).items if d.source == "rollback"
        )
        await until(pilot, lambda: table.row_count == 6)
        assert str(table.get_row(str(rollback.id))[3]).startswith(f"↩ rollback to #{rollback.rollback_of}")  # type: ignore[attr-defined]


async def test_dashboard_proxy_line_follows_domain_events():
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await on_dashboard(pilot)
        line = app.screen.query_one("#proxy-line")
        await until(pilot, lambda: "5 domains" in str(line.render()))
        assert "traefik" in str(line.render()) and "Traefik is not running" in str(line.render())
        await app.api.domains.remove("shop/web", "checkout.example.com")  # the core announces it
        await until(pilot, lambda: "4 domains" in str(line.render()))
