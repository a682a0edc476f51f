"""Accounts in the TUI, driven with Pilot on the seeded real core: two-factor login and lockout, the saved
session pair, users, invitations, sessions, API tokens, the audit log's filters and export, one's own account,
and a project's members. What the user sees, and what the core then holds (or, where nothing should reach
it, the calls it was asked)."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import timedelta

import pytest
from rich.console import Console
from textual.binding import Binding
from textual.pilot import Pilot

from mist_core.auth import lockout
from mist_core.auth.totp import totp_now
from mist_core.errors import TooManyAttempts, Unauthenticated
from mist_core.models import Session
from mist_tui.__main__ import choose_target
from mist_tui.config import Config, Credentials
from mist_tui.screens.account import AccountScreen
from mist_tui.screens.audit import AuditScreen
from mist_tui.screens.dialogs import SecretDialog
from mist_tui.screens.members import MembersDialog
from mist_tui.screens.sessions import SessionsScreen, TokensScreen
from mist_tui.screens.users import UsersScreen
from tests.tui.scenarios import SIZE, make_app, on_dashboard, screen_name, until
from tests.tui.world import NOW, PASSWORD, World, new_world, record_calls


def rows(table) -> list[str]:
    return [str(key.value) for key in table.rows]


def cells(table, key) -> list[str]:
    return [str(c) for c in table.get_row(key)]


def keyed(table, column: int, value: str) -> str:
    """The key of the row whose ``column`` shows ``value``."""
    return next(k for k in rows(table) if cells(table, k)[column].strip() == value)


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


def text_of(widget) -> str:
    """What a Static shows, as plain text (its content may be a Rich table)."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def error_of(dialog, field: str) -> str:
    return str(dialog.query_one(f"#error-{field}").render()).strip()


def world_of(app) -> World:
    return app.world


async def goto(pilot: Pilot, name: str, rows_at_least: int = 1) -> None:
    await on_dashboard(pilot)
    pilot.app.action_goto(name)  # type: ignore[attr-defined]
    await until(pilot, lambda: screen_name(pilot) != "DashboardScreen")
    await until(pilot, lambda: pilot.app.screen.table.row_count >= rows_at_least)  # type: ignore[attr-defined]


async def form(pilot: Pilot, *keys: str, name: str = "FormDialog"):
    await pilot.press(*keys)
    await until(pilot, lambda: screen_name(pilot) == name)
    return pilot.app.screen


async def log_in(pilot: Pilot, username: str = "ada") -> None:
    await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
    await pilot.press(*username, "enter", *PASSWORD, "enter")
    await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")


# ---------------------------------------------------------------------------------------------- login


async def test_login_with_two_factor_asks_for_the_code_in_place_and_sends_it_with_the_password():
    world = new_world()
    logins = record_calls(world, "auth.login")
    app = make_app(world, user=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
        screen = app.screen
        assert not screen.query_one("#totp-box").display
        await pilot.press(*"grace", "enter", *PASSWORD, "enter")
        await until(pilot, lambda: screen.has_class("-totp"))
        assert screen.query_one("#totp-box").display
        assert app.focused is screen.query_one("#totp")
        # The next step's code: the seeding used the current one (a code is never accepted twice).
        code = totp_now(world.tokens["totp:grace"], at=time.time() + 30)
        await pilot.press(*code, "enter")
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
        assert app.user is not None and app.user.username == "grace"
        assert logins == [
            ("auth.login", "grace", PASSWORD, None),
            ("auth.login", "grace", PASSWORD, code),
        ]


async def test_a_recovery_code_is_accepted_in_the_code_field():
    world = new_world()
    app = make_app(world, user=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
        await pilot.press(*"grace", "enter", *PASSWORD, "enter")
        await until(pilot, lambda: app.screen.has_class("-totp"))
        await pilot.press(*world.tokens["recovery:grace"], "enter")
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
        assert app.user is not None and app.user.username == "grace"


async def test_a_wrong_code_says_so_and_keeps_the_code_field_for_another_try():
    world = new_world()
    app = make_app(world, user=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
        screen = app.screen
        await pilot.press(*"grace", "enter", *PASSWORD, "enter")
        await until(pilot, lambda: screen.has_class("-totp"))
        wrong = "999999" if totp_now(world.tokens["totp:grace"]) != "999999" else "999998"
        await pilot.press(*wrong, "enter")
        await until(pilot, lambda: screen.query_one("#card-error").has_class("-shown"))
        text = str(screen.query_one("#card-error").render())
        assert (
            "code is wrong, expired or was used already" in text and "codes change every 30 seconds" in text
        )
        assert screen.has_class("-totp") and screen.query_one("#totp").value == ""
        assert screen_name(pilot) == "LoginScreen"


async def test_too_many_attempts_shows_the_wait_and_holds_the_button():
    app = make_app(user=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
        for _ in range(lockout.ACCOUNT_THRESHOLD):  # someone else tried linus's account
            with pytest.raises((Unauthenticated, TooManyAttempts)):
                await app.api.auth.login("linus", "not the password")
        screen = app.screen
        await pilot.press(*"linus", "enter", *PASSWORD, "enter")
        await until(pilot, lambda: screen.query_one("#card-error").has_class("-shown"))
        assert re.search(r"paused for \d+ (seconds|minutes?)", str(screen.query_one("#card-error").render()))
        assert screen.query_one("#card-submit").disabled


async def test_login_saves_the_refresh_token_and_a_renewed_pair_replaces_it():
    app = make_app(user=None)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        entry = app.credentials.entry(app.target.address)
        assert entry is not None and entry["username"] == "ada"
        assert entry["token"] == app.target.token and entry["refresh_token"].startswith("mist_r_")
        assert app.target.refresh_token == entry["refresh_token"]
        # What the connection calls when it renewed an expired access token by itself.
        assert app.target.on_session == app.session_renewed
        assert app.user is not None
        app.session_renewed(
            Session(
                token="tok-new",
                refresh_token="mist_r_new",
                user=app.user,
                expires_at=NOW + timedelta(minutes=15),
            )
        )
        assert app.credentials.get(app.target.address) == ("tok-new", "ada")
        assert app.credentials.refresh_token(app.target.address) == "mist_r_new"
        assert app.target.token == "tok-new"


def test_credentials_keep_keys_they_do_not_know_and_logout_keeps_the_pinned_certificate(tmp_path):
    creds = Credentials(tmp_path / "credentials.json")
    creds.path.write_text(json.dumps({"https://m:7070": {"token": "old", "certificate": "PEM", "x": 1}}))
    creds.save("https://m:7070", "tok", "ada", "mist_r_1")
    assert json.loads(creds.path.read_text())["https://m:7070"] == {
        "token": "tok",
        "username": "ada",
        "refresh_token": "mist_r_1",
        "certificate": "PEM",
        "x": 1,
    }
    assert creds.path.stat().st_mode & 0o777 == 0o600
    creds.save("https://m:7070", "tok2", "ada")  # a session without a refresh token drops the old one
    assert creds.refresh_token("https://m:7070") is None
    creds.forget("https://m:7070")
    assert json.loads(creds.path.read_text()) == {"https://m:7070": {"certificate": "PEM", "x": 1}}


def test_the_saved_refresh_token_goes_with_the_saved_access_token_but_not_with_mist_token(
    tmp_path, monkeypatch
):
    import argparse

    creds = Credentials(tmp_path / "credentials.json")
    creds.save("unix:///s.sock", "tok", "ada", "mist_r_1")
    args = argparse.Namespace(embedded=False, host="unix:///s.sock", data_dir=None)
    monkeypatch.delenv("MIST_TOKEN", raising=False)
    target = choose_target(args, Config(), creds)
    assert (target.token, target.refresh_token) == ("tok", "mist_r_1")
    monkeypatch.setenv("MIST_TOKEN", "mist_t_abc")
    target = choose_target(args, Config(), creds)
    assert (target.token, target.refresh_token) == ("mist_t_abc", None)


# ---------------------------------------------------------------------------------------------- users


async def test_users_list_shows_role_email_two_factor_and_last_login():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "users", 4)
        table = app.screen.table
        assert rows(table) == ["ada", "grace", "ken", "linus"]
        assert cells(table, "grace")[2:6] == ["admin", "grace@example.com", "✓ on", "3h"]
        assert cells(table, "ken")[3:6] == ["—", "off", "never"]


async def test_creating_a_user_sends_the_role_and_email_and_lists_them():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "users", 4)
        dialog = await form(pilot, "n")
        dialog.query_one("#field-role").value = "viewer"
        await pilot.press(*"dave", "tab", *"a long password", "tab", "tab", *"dave@example.com", "enter")
        await until(pilot, lambda: screen_name(pilot) == "UsersScreen")
        await until(pilot, lambda: "dave" in rows(app.screen.table))
        dave = next(u for u in await app.api.users.list() if u.username == "dave")
        assert (dave.role, dave.email) == ("viewer", "dave@example.com")


async def test_a_refused_user_stays_in_the_dialog_with_the_reason_under_the_field():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "users", 4)
        dialog = await form(pilot, "n")
        await pilot.press(*"dave", "tab", *"short", "enter")
        await until(pilot, lambda: error_of(dialog, "password"))
        assert "at least 12 characters" in error_of(dialog, "password")
        assert screen_name(pilot) == "FormDialog"
        assert "dave" not in [u.username for u in await app.api.users.list()]


async def test_changing_a_role():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "users", 4)
        users = app.screen
        await pilot.press("down", "down", "down")  # linus
        dialog = await form(pilot, "r")
        assert dialog.query_one("#field-role").value == "developer"
        dialog.query_one("#field-role").value = "admin"
        dialog._submitted()
        await until(pilot, lambda: str(users.table.get_row("linus")[2]) == "admin")
        assert next(u for u in await app.api.users.list() if u.username == "linus").role == "admin"


async def test_deleting_a_user_names_their_projects_and_the_account_they_pass_to():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "users", 4)
        users = app.screen
        await pilot.press("down", "down", "down")  # linus
        dialog = await form(pilot, "X")
        note = str(dialog.query_one(".dialog-message").render())
        assert "linus owns 2 projects (blog, labs)" in note and "cannot be undone" in note
        assert dialog.query_one("#field-reassign_to").value == "ada"
        assert str(dialog.query_one("#submit").label) == "Delete linus"
        dialog.query_one("#field-reassign_to").value = "grace"
        await pilot.click("#submit")
        await until(pilot, lambda: "linus" not in rows(users.table))
        assert any("now belong to grace" in m for m in notifications(app))
        owners = {p.name: p.owner for p in (await app.api.projects.list()).items}
        assert owners["blog"] == owners["labs"] == "grace"


async def test_an_invitation_shows_its_token_once_and_c_copies_it():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "users", 4)
        dialog = await form(pilot, "i")
        dialog.query_one("#field-username").value = "dave"
        dialog.query_one("#field-role").value = "viewer"
        dialog.query_one("#field-project").value = "shop"
        dialog.query_one("#field-project_role").value = "viewer"
        dialog.query_one("#field-expires_hours").value = "24"
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "SecretDialog")
        secret = app.screen
        assert isinstance(secret, SecretDialog) and secret.secret.startswith("mist_i_")
        assert "joins shop as viewer" in str(secret.query_one(".dialog-message").render())
        await pilot.press("c")
        assert app.clipboard == secret.secret
        await pilot.press("escape")
        await until(pilot, lambda: screen_name(pilot) == "UsersScreen")
        invite = next(i for i in await app.api.invites.list() if i.username == "dave")
        assert (invite.role, invite.project, invite.project_role) == ("viewer", "shop", "viewer")
        assert invite.expires_at == NOW + timedelta(hours=24)


async def test_an_invitation_validity_that_is_not_hours_is_refused_in_place():
    world = new_world()
    calls = record_calls(world, "invites.create")
    app = make_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "users", 4)
        dialog = await form(pilot, "i")
        dialog.query_one("#field-username").value = "dave"
        dialog.query_one("#field-expires_hours").value = "soon"
        dialog._submitted()
        await until(pilot, lambda: error_of(dialog, "expires_hours"))
        assert calls == []


async def test_a_viewer_is_told_by_the_daemon_when_an_action_is_not_theirs():
    app = make_app(user=None)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await log_in(pilot, "ken")
        await goto(pilot, "users", 1)
        assert rows(app.screen.table) == ["ken"]  # a viewer sees only themself
        app.screen.action_sessions()
        await until(pilot, lambda: screen_name(pilot) == "SessionsScreen")
        await pilot.press("a")  # everyone's sessions: an admin's view
        await until(pilot, lambda: "only admins see other people's sessions" in notifications(app))
        assert any(n.title == "Permission denied" for n in app._notifications)
        # The refusal leaves the view as it was: still ken's own sessions.
        assert app.screen.username == "ken"


# ---------------------------------------------------------------------------------------------- sessions


async def test_sessions_mark_the_current_one_and_admins_see_everyones():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "sessions", 2)
        screen = app.screen
        assert isinstance(screen, SessionsScreen)
        current, laptop = rows(screen.table)
        assert "this session" in cells(screen.table, current)[1]
        assert cells(screen.table, laptop)[0] == "" and "203.0.113.7" in cells(screen.table, laptop)
        await pilot.press("a")
        await until(pilot, lambda: screen.table.row_count == 4)
        assert "everyone's" in str(screen.table.border_title)


async def test_ending_another_session_asks_first_then_revokes_it():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "sessions", 2)
        sessions = app.screen
        current, laptop = rows(sessions.table)
        await pilot.press("down")
        confirm = await form(pilot, "X", name="ConfirmDialog")
        message = str(confirm.query_one(".dialog-message").render())
        assert "from 203.0.113.7" in message and "mist-cli/0.1 (Linux)" in message
        await pilot.press("y")
        await until(pilot, lambda: rows(sessions.table) == [current])
        assert [str(s.id) for s in await app.api.sessions.list()] == [current]


async def test_ending_the_current_session_logs_out_and_forgets_the_saved_tokens():
    app = make_app(user=None)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        token = app.target.token
        await goto(pilot, "sessions", 2)
        assert "this session" in cells(app.screen.table, rows(app.screen.table)[0])[1]
        confirm = await form(pilot, "X", name="ConfirmDialog")
        assert "logs you out" in str(confirm.query_one(".dialog-message").render())
        await pilot.press("y")
        await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
        assert app.credentials.get(app.target.address) == (None, None)
        assert app.target.token is None
        with pytest.raises(Unauthenticated):  # the core ended it
            await (await app.world.open(token)).auth.whoami()


# ---------------------------------------------------------------------------------------------- tokens


async def test_a_new_token_is_shown_once_then_listed_without_its_secret():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "tokens", 3)
        dialog = await form(pilot, "n")
        dialog.query_one("#field-scope").value = "deploy"
        dialog.query_one("#field-project").value = "shop"
        dialog.query_one("#field-expires_days").value = ""
        await pilot.press(*"release", "enter")
        await until(pilot, lambda: screen_name(pilot) == "SecretDialog")
        secret = app.screen
        assert secret.secret.startswith("mist_t_")
        assert "never expires" in str(secret.query_one(".dialog-message").render())
        await pilot.press("enter")
        await until(pilot, lambda: screen_name(pilot) == "TokensScreen")
        table = app.screen.table
        await until(pilot, lambda: table.row_count == 4)
        row = cells(table, keyed(table, 0, "release"))
        assert row[2:4] == ["deploy", "shop"] and row[-1] == "active"
        assert not any("mist_t_" in c for c in row)
        made = next(t for t in await app.api.tokens.list() if t.name == "release")
        assert (made.scope, made.project, made.expires_at) == ("deploy", "shop", None)


async def test_revoking_a_token_asks_first_and_takes_it_off_the_list():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "tokens", 3)
        table = app.screen.table
        confirm = await form(pilot, "X", name="ConfirmDialog")
        assert "ci-deploy" in str(confirm.query_one(".dialog-title").render())
        assert "deploy on shop" in str(confirm.query_one(".dialog-message").render())
        await pilot.press("y")
        await until(
            pilot, lambda: [cells(table, k)[0].strip() for k in rows(table)] == ["grafana-read", "old-laptop"]
        )
        assert any("Revoked the token ci-deploy" in m for m in notifications(app))
        assert "ci-deploy" not in [t.name for t in await app.api.tokens.list()]


async def test_an_empty_token_name_is_refused_before_asking_the_daemon():
    world = new_world()
    calls = record_calls(world, "tokens.create")
    app = make_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "tokens", 3)
        dialog = await form(pilot, "n")
        dialog._submitted()
        await until(pilot, lambda: error_of(dialog, "name"))
        assert calls == []


async def test_admins_see_everyones_tokens_with_a():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "tokens", 3)
        await pilot.press("a")
        table = app.screen.table
        await until(pilot, lambda: table.row_count == 4)
        assert cells(table, keyed(table, 0, "release-bot"))[1] == "grace"


# ---------------------------------------------------------------------------------------------- audit


async def test_audit_filters_go_to_the_api_and_narrow_the_table():
    world = new_world()
    calls = record_calls(world, "audit.list")
    app = make_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "audit", 10)
        screen = app.screen
        everything = screen.table.row_count
        await pilot.press("slash", *"ada", "tab", *"shop", "tab", *"env.", "tab", *"7d", "enter")
        await until(pilot, lambda: screen.table.row_count == 3)
        assert ("audit.list", "ada", "shop", "env.", NOW - timedelta(days=7), 300) in calls
        assert "user ada, project shop, action env.*" in str(screen.table.border_title)
        shown = [cells(screen.table, k)[4].strip() for k in rows(screen.table)]
        assert shown == ["env.set", "env.set", "env.set"]  # STRIPE_KEY, WORKERS, DATABASE_URL
        assert app.focused is screen.table
        await pilot.press("c")
        await until(pilot, lambda: screen.table.row_count == everything)


async def test_an_audit_since_that_is_not_a_time_is_explained_and_not_sent():
    world = new_world()
    calls = record_calls(world, "audit.list")
    app = make_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "audit", 10)
        screen = app.screen
        asked = len(calls)
        await pilot.press("slash", "tab", "tab", "tab", *"yesterday", "enter")
        error = screen.query_one("#audit-filter-error")
        await until(pilot, lambda: error.has_class("-shown"))
        assert "use 30m, 2h, 7d" in str(error.render())
        assert len(calls) == asked


async def test_the_highlighted_audit_entry_is_shown_in_full_under_the_table():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "audit", 10)
        await pilot.press("down", "down")  # linus deployed blog/site
        detail = str(app.screen.query_one("#audit-detail").render())
        assert "app.deploy on blog/site" in detail and "by linus as developer" in detail
        assert "ref=main" in detail


async def test_audit_export_writes_every_match_as_json_lines_and_will_not_overwrite(tmp_path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "audit", 10)
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        await pilot.press("slash", "tab", "tab", *"token.", "enter")
        await until(pilot, lambda: screen.table.row_count == 4)
        dialog = await form(pilot, "ctrl+s", name="PromptDialog")
        assert "token" in str(dialog.query_one(".dialog-message").render())
        target = tmp_path / "audit.jsonl"
        dialog.query_one("#field-value").value = str(target)
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "AuditScreen")
        entries = [json.loads(line) for line in target.read_text().splitlines()]
        assert [e["action"] for e in entries] == ["token.create"] * 4
        assert [e["actor"] for e in entries] == ["grace", "ada", "ada", "ada"]
        assert entries[0]["actor_role"] == "admin" and entries[0]["source"] == "unix"
        dialog = await form(pilot, "ctrl+s", name="PromptDialog")
        dialog.query_one("#field-value").value = str(target)
        dialog._submitted()
        await until(pilot, lambda: error_of(dialog, "value"))
        assert "already exists" in error_of(dialog, "value")


# ---------------------------------------------------------------------------------------------- account


async def open_account(pilot: Pilot) -> AccountScreen:
    await on_dashboard(pilot)
    pilot.app.action_goto("account")  # type: ignore[attr-defined]
    await until(pilot, lambda: screen_name(pilot) == "AccountScreen" and pilot.app.screen.user is not None)  # type: ignore[attr-defined]
    return pilot.app.screen  # type: ignore[return-value]


async def test_turning_on_two_factor_shows_the_secret_then_the_recovery_codes_once():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_account(pilot)
        assert "Two-factor   off" in text_of(screen.query_one("#account-facts"))
        dialog = await form(pilot, "t")
        note = text_of(dialog.query_one(".dialog-message"))
        secret = re.search(r"secret=([A-Z2-7]+)", note.replace("\n", ""))
        assert secret and "otpauth://totp/Mist:ada" in note.replace("\n", "")
        wrong = "000000" if totp_now(secret.group(1)) != "000000" else "000001"
        await pilot.press(*wrong, "enter")
        await until(pilot, lambda: error_of(dialog, "code"))
        assert "does not match" in error_of(dialog, "code")
        code = totp_now(secret.group(1))
        dialog.query_one("#field-code").value = f"{code[:3]} {code[3:]}"
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "SecretDialog")
        codes = app.screen.secret.split()
        assert len(codes) >= 8
        await pilot.press("escape")
        await until(pilot, lambda: screen.user is not None and screen.user.totp_enabled)
        assert "Two-factor   on" in text_of(screen.query_one("#account-facts"))
        # Now only turning it off is offered.
        keys = {b.binding.action for b in screen.active_bindings.values()}
        assert "totp_off" in keys and "totp_on" not in keys
        assert (await app.api.auth.whoami()).totp_enabled


async def test_turning_off_two_factor_needs_the_password():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        enrollment = await app.api.auth.totp_setup()
        await app.api.auth.totp_enable(totp_now(enrollment.secret))
        screen = await open_account(pilot)
        dialog = await form(pilot, "T")
        await pilot.press(*"wrong", "enter")
        await until(pilot, lambda: error_of(dialog, "password"))
        dialog.query_one("#field-password").value = PASSWORD
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "AccountScreen")
        await until(pilot, lambda: screen.user is not None and not screen.user.totp_enabled)
        assert not (await app.api.auth.whoami()).totp_enabled


async def test_changing_the_password_checks_the_two_new_ones_match_before_sending():
    world = new_world()
    calls = record_calls(world, "auth.change_password")
    app = make_app(world)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_account(pilot)
        dialog = await form(pilot, "p")
        await pilot.press(*PASSWORD, "tab", *"a new long password", "tab", *"a new long passwort", "enter")
        await until(pilot, lambda: error_of(dialog, "again"))
        assert calls == []
        dialog.query_one("#field-again").value = "a new long password"
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "AccountScreen")
        assert [c[:3] for c in calls] == [("auth.change_password", PASSWORD, "a new long password")]
        assert any("other sessions were logged out" in m for m in notifications(app))
        session = await app.api.auth.login("ada", "a new long password")
        assert session.user.username == "ada"


async def test_changing_the_password_can_also_revoke_the_api_tokens():
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_account(pilot)
        mine = [t for t in await app.api.tokens.list() if t.revoked_at is None]
        assert len(mine) == 3, "the seeded world has API tokens of ada's"
        dialog = await form(pilot, "p")
        for name, value in (
            ("current", PASSWORD),
            ("new", "a new long password"),
            ("again", "a new long password"),
        ):
            dialog.query_one(f"#field-{name}").value = value
        dialog.query_one("#field-revoke_tokens").value = True
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "AccountScreen")
        assert all(t.revoked_at is not None for t in await app.api.tokens.list())
        assert any("API tokens revoked" in m for m in notifications(app))


async def test_a_session_that_must_enrol_in_two_factor_opens_the_setup_after_login():
    app = make_app(user=None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
        session = await app.api.auth.login("ada", PASSWORD)
        await app.logged_in(session.model_copy(update={"totp_enrollment_required": True}))
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        assert isinstance(app.screen_stack[-2], AccountScreen)
        assert "requires two-factor" in str(app.screen_stack[-2].query_one("#account-banner").render())


# ---------------------------------------------------------------------------------------------- members


async def open_members(pilot: Pilot, project: str = "shop") -> MembersDialog:
    await on_dashboard(pilot)
    pilot.app.open_members(project)  # type: ignore[attr-defined]
    await until(pilot, lambda: screen_name(pilot) == "MembersDialog" and pilot.app.screen.table.row_count > 0)  # type: ignore[attr-defined]
    return pilot.app.screen  # type: ignore[return-value]


async def test_the_palette_offers_the_selected_projects_members_and_every_account_screen():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        from mist_tui.commands import ScreenCommands

        provider = ScreenCommands(app.screen)
        names = [text for text, _, _ in provider._commands()]
        project = app.screen.selected_project()
        assert f"Members of {project}" in names
        for screen in ("users", "sessions", "tokens", "audit", "account"):
            assert f"Go to {screen}" in names


async def test_members_add_change_role_and_remove():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await app.api.users.create("dave", "a long password", role="viewer")
        dialog = await open_members(pilot)
        assert rows(dialog.table) == ["ada", "grace", "ken", "linus"]
        add = await form(pilot, "a")
        add.query_one("#field-role").value = "viewer"
        await pilot.press(*"dave", "enter")
        await until(pilot, lambda: "dave" in rows(dialog.table))

        await until(pilot, lambda: screen_name(pilot) == "MembersDialog")
        dialog.table.move_cursor(row=dialog.table.get_row_index("ken"))
        role = await form(pilot, "r")
        role.query_one("#field-role").value = "developer"
        role._submitted()
        await until(pilot, lambda: str(dialog.table.get_row("ken")[1]) == "developer")

        await until(pilot, lambda: screen_name(pilot) == "MembersDialog")
        dialog.table.move_cursor(row=dialog.table.get_row_index("linus"))
        confirm = await form(pilot, "d", name="ConfirmDialog")
        assert "no longer sees shop" in str(confirm.query_one(".dialog-message").render())
        await pilot.press("y")
        await until(pilot, lambda: "linus" not in rows(dialog.table))
        members = {m.username: m.role for m in await app.api.members.list("shop")}
        assert members == {"ada": "admin", "grace": "admin", "ken": "developer", "dave": "viewer"}


async def test_adding_someone_without_an_account_says_so_under_the_username():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_members(pilot)
        add = await form(pilot, "a")
        await pilot.press(*"nobody", "enter")
        await until(pilot, lambda: error_of(add, "username"))
        assert error_of(add, "username") == "✕ there is no user 'nobody'"


# ---------------------------------------------------------------------------------------------- keys


def test_every_binding_of_the_account_screens_has_an_id_for_the_keymap():
    for screen in (
        UsersScreen,
        SessionsScreen,
        TokensScreen,
        AuditScreen,
        AccountScreen,
        MembersDialog,
        SecretDialog,
    ):
        for binding in screen.BINDINGS:
            assert isinstance(binding, Binding) and binding.id, f"{screen.__name__}: {binding}"


# ---------------------------------------------------------------------------------------------- real core


@pytest.mark.docker
async def test_against_the_embedded_core_an_admin_creates_a_user_and_a_token_sees_it_listed_and_revokes_it(
    tmp_path,
):
    from mist_tui.__main__ import connect
    from mist_tui.app import MistApp
    from mist_tui.config import Target

    password = "correct horse battery"
    app = MistApp(
        connect,
        Config(),
        target=Target("embedded", str(tmp_path / "data")),
        credentials=Credentials(tmp_path / "credentials.json"),
        cursor_blink=False,
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "SetupScreen", timeout=30)
        await pilot.press(*"ada", "tab", *password, "tab", *password, "enter")
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)

        app.action_goto("users")
        await until(pilot, lambda: screen_name(pilot) == "UsersScreen" and app.screen.table.row_count == 1)
        users = app.screen
        dialog = await form(pilot, "n")
        await pilot.press(
            *"linus", "tab", *"another long password", "tab", "tab", *"linus@example.com", "enter"
        )
        await until(pilot, lambda: screen_name(pilot) == "UsersScreen", timeout=10)
        await until(pilot, lambda: "linus" in rows(users.table), timeout=10)
        assert [str(c) for c in users.table.get_row("linus")][2:4] == ["developer", "linus@example.com"]
        assert dialog.is_attached is False

        app.pop_screen()
        app.action_goto("tokens")
        await until(pilot, lambda: screen_name(pilot) == "TokensScreen")
        tokens = app.screen
        dialog = await form(pilot, "n")
        dialog.query_one("#field-scope").value = "deploy"
        await pilot.press(*"ci-deploy", "enter")
        await until(pilot, lambda: screen_name(pilot) == "SecretDialog", timeout=10)
        secret = app.screen.secret
        assert secret.startswith("mist_t_")
        await pilot.press("enter")
        await until(
            pilot, lambda: screen_name(pilot) == "TokensScreen" and tokens.table.row_count == 1, timeout=10
        )
        key = rows(tokens.table)[0]
        cells = [str(c) for c in tokens.table.get_row(key)]
        assert cells[0] == "ci-deploy" and cells[2] == "deploy" and cells[-1] == "active"
        assert secret not in " ".join(cells)

        await form(pilot, "X", name="ConfirmDialog")
        await pilot.press("y")
        await until(pilot, lambda: key not in rows(tokens.table), timeout=10)
        assert "0 active of 0" in str(tokens.table.border_title)


@pytest.mark.docker
async def test_against_the_embedded_core_two_factor_turned_on_in_the_account_screen_is_asked_at_the_next_login(
    tmp_path,
):
    import re

    from mist_core.auth.totp import totp_now
    from mist_tui.__main__ import connect
    from mist_tui.app import MistApp
    from mist_tui.config import Target

    password = "correct horse battery"
    app = MistApp(
        connect,
        Config(),
        target=Target("embedded", str(tmp_path / "data")),
        credentials=Credentials(tmp_path / "credentials.json"),
        cursor_blink=False,
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "SetupScreen", timeout=30)
        await pilot.press(*"ada", "tab", *password, "tab", *password, "enter")
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)

        app.action_goto("account")
        await until(pilot, lambda: screen_name(pilot) == "AccountScreen" and app.screen.user is not None)
        dialog = await form(pilot, "t")
        note = text_of(dialog.query_one(".dialog-message"))
        secret = re.search(r"secret=([A-Z2-7]+)", note.replace("\n", ""))
        assert secret, note
        dialog.query_one("#field-code").value = totp_now(secret.group(1))
        dialog._submitted()
        await until(pilot, lambda: screen_name(pilot) == "SecretDialog", timeout=10)
        recovery = app.screen.secret.split()[0]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen.user is not None and app.screen.user.totp_enabled, timeout=10)

        app.action_logout()
        await until(pilot, lambda: screen_name(pilot) == "LoginScreen", timeout=10)
        login = app.screen
        await pilot.press(*"ada", "enter", *password, "enter")
        await until(pilot, lambda: login.has_class("-totp"), timeout=10)
        await pilot.press(*recovery, "enter")
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=10)
        assert app.user is not None and app.user.username == "ada" and app.user.totp_enabled
