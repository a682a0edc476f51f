"""Every screen state worth a picture, on the seeded real core of ``world``: used by the snapshot tests and by
``scripts/screenshots.py`` so both show exactly the same thing."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

from textual.css.query import NoMatches
from textual.pilot import Pilot

from mist_core.api import MistAPI
from mist_core.auth import lockout, totp
from mist_core.errors import DaemonUnavailable, TooManyAttempts, Unauthenticated
from mist_core.models import LogLine
from mist_tui.app import MistApp
from mist_tui.config import Config, Credentials, Target

from .world import NOW, PASSWORD, World, database_world, empty_world, fixed_clock, new_world

SIZE = (120, 36)
SOCKET = "unix:///run/mist/mist.sock"


def make_app(
    world: World | None = None,
    *,
    user: str | None = "ada",
    target: Target | None | bool = True,
    config: Config | None = None,
    fail_connect: bool = False,
) -> MistApp:
    """The TUI on a fresh copy of the seeded world, signed in as ``user`` (None: asks to log in)."""
    world = world or new_world()

    async def connect(t: Target) -> MistAPI:
        if fail_connect:
            raise DaemonUnavailable(f"Cannot reach the Mist daemon at {t.address}.")
        return await world.open(t.token)

    if target is True:
        target = Target("daemon", SOCKET, world.token(user))
    app = MistApp(
        connect,
        config or Config(theme="textual-dark"),
        target=target or None,
        clock=fixed_clock,
        # Written only when a test logs in; the directory is made then.
        credentials=Credentials(
            Path(tempfile.gettempdir()) / f"mist-tui-{uuid4().hex[:8]}" / "credentials.json"
        ),
        cursor_blink=False,
    )
    app.world = world  # type: ignore[attr-defined]
    return app


def git_app() -> MistApp:
    """The TUI on the world whose team set up git hosting (providers on the forge stand-in, webhooks)."""
    return make_app(new_world(git=True))


async def until(pilot: Pilot, predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Let the app run until ``predicate`` holds (workers finished, rows drawn...). The timeout is only a
    ceiling for a state that never comes: a loaded two-core machine can take seconds to draw a screen."""

    def holds() -> bool:
        try:
            return bool(predicate())
        except NoMatches:  # the screen is not composed yet
            return False

    waited = 0.0
    while not holds():
        if waited > timeout:
            raise AssertionError("the app did not reach the expected state")
        await pilot.pause(0.02)
        waited += 0.02
    await pilot.pause()


def screen_name(pilot: Pilot) -> str:
    return type(pilot.app.screen).__name__


async def on_dashboard(pilot: Pilot) -> None:
    await until(pilot, lambda: screen_name(pilot) == "DashboardScreen")
    screen = pilot.app.screen
    await until(pilot, lambda: screen.table.row_count > 0 and screen.usage)  # type: ignore[attr-defined]


async def open_app(pilot: Pilot, ref: str = "shop/web", tab: str | None = None) -> None:
    await on_dashboard(pilot)
    pilot.app.open_app(ref)  # type: ignore[attr-defined]
    await until(pilot, lambda: screen_name(pilot) == "AppScreen" and pilot.app.screen.current is not None)  # type: ignore[attr-defined]
    await until(pilot, lambda: pilot.app.screen.sample is not None)  # type: ignore[attr-defined]
    if tab:
        pilot.app.screen.action_tab(tab)  # type: ignore[attr-defined]
    await pilot.pause(0.2)


async def logs_tab(pilot: Pilot) -> None:
    await open_app(pilot, tab="logs")
    view = pilot.app.screen.query_one("#app-logs").view  # type: ignore[attr-defined]
    await until(pilot, lambda: view.row_count >= 12)


@dataclass
class Scenario:
    name: str
    make: Callable[[], MistApp]
    run: Callable[[Pilot], Awaitable[None]]


async def _connect(pilot: Pilot) -> None:
    await until(pilot, lambda: screen_name(pilot) == "ConnectScreen")


async def _connect_error(pilot: Pilot) -> None:
    await until(pilot, lambda: pilot.app.screen.query_one("#card-error").has_class("-shown"))


async def _setup(pilot: Pilot) -> None:
    await until(pilot, lambda: screen_name(pilot) == "SetupScreen")
    await pilot.press(*"ada")
    await pilot.press("tab", *"correct horse", "tab", *"correct hose", "enter")
    await until(pilot, lambda: pilot.app.screen.query_one("#card-error").has_class("-shown"))


async def _login_error(pilot: Pilot) -> None:
    await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
    await pilot.press(*"ada", "enter", *"wrong", "enter")
    await until(pilot, lambda: pilot.app.screen.query_one("#card-error").has_class("-shown"))


async def _dashboard_filtered(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    await pilot.press("slash", *"shop")
    await pilot.pause(0.1)


async def _dashboard_sorted_cpu(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    await pilot.press("s", "s", "s", "s", "s")
    await pilot.pause(0.1)


async def _app_describe(pilot: Pilot) -> None:
    await open_app(pilot)
    await pilot.press("d")
    await until(pilot, lambda: getattr(pilot.app.screen, "described", None) is not None)
    await pilot.pause(0.1)


async def _app_settings_error(pilot: Pilot) -> None:
    await open_app(pilot, tab="settings")
    screen = pilot.app.screen
    port = screen.query_one("#set-port")
    port.value = "70000"  # type: ignore[attr-defined]
    screen.query_one("SettingsPane").action_save()  # type: ignore[attr-defined]
    await until(pilot, lambda: str(screen.query_one("#err-port").render()).strip())


async def git_tab(pilot: Pilot, ref: str = "shop/web") -> None:
    await open_app(pilot, ref=ref, tab="git")
    pane = pilot.app.screen.query_one("GitPane")
    await until(pilot, lambda: pane.loaded)  # type: ignore[attr-defined]
    await pilot.pause(0.1)


async def _git_refused_selected(pilot: Pilot) -> None:
    await git_tab(pilot)
    await pilot.press("down", "down", "down")
    await pilot.pause(0.1)


async def _git_first_deploy_key(pilot: Pilot) -> None:
    await git_tab(pilot, ref="blog/site")
    await pilot.press("K")
    await until(pilot, lambda: screen_name(pilot) == "CopyDialog")
    await pilot.pause(0.2)


async def _providers(pilot: Pilot) -> None:
    await _goto(pilot, "providers")


async def _provider_add(pilot: Pilot, kind: str = "gitea") -> None:
    await _dialog(pilot, "providers", "n", name="AddProviderDialog")
    dialog = pilot.app.screen
    if kind != "gitea":
        dialog.query_one("#field-kind").value = kind  # type: ignore[attr-defined]
        await pilot.pause(0.1)


async def _provider_add_refused(pilot: Pilot) -> None:
    await _provider_add(pilot)
    dialog = pilot.app.screen
    dialog.query_one("#field-name").value = "forgejo"  # type: ignore[attr-defined]
    dialog.query_one("#field-url").value = "https://code.example.org"  # type: ignore[attr-defined]
    dialog.query_one("#field-token").value = "expired-token"  # type: ignore[attr-defined]
    dialog._submitted()  # type: ignore[attr-defined]
    # The host's refusal is the whole form's error: it names no field.
    await until(pilot, lambda: str(dialog.query_one("#error-form").render()).strip())
    await pilot.pause(0.1)


async def _provider_repos(pilot: Pilot) -> None:
    await _goto(pilot, "providers")
    await pilot.press("down", "enter")
    await until(pilot, lambda: screen_name(pilot) == "RepositoriesScreen")
    screen = pilot.app.screen
    await until(pilot, lambda: screen.table.row_count == 5)  # type: ignore[attr-defined]
    await pilot.press("enter")
    await until(pilot, lambda: screen.query_one("#branches").row_count == 3)
    await pilot.pause(0.1)


async def _new_app_from_provider(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    await pilot.press("c")
    await until(pilot, lambda: screen_name(pilot) == "AppForm")
    dialog = pilot.app.screen
    provider = dialog.query_one("#field-provider")
    await until(pilot, lambda: provider.display)
    dialog.query_one("#field-name").value = "site"  # type: ignore[attr-defined]
    provider.value = "gitea"  # type: ignore[attr-defined]
    repo = dialog.query_one("#field-repo")
    await until(pilot, lambda: len(repo._options) > 1)  # type: ignore[attr-defined]
    repo.value = "blog/site"  # type: ignore[attr-defined]
    await pilot.pause(0.1)


async def _logs_search(pilot: Pilot) -> None:
    await logs_tab(pilot)
    await pilot.press("slash", *"checkout", "enter")
    await pilot.press("n")
    await pilot.pause(0.2)


async def _logs_paused(pilot: Pilot) -> None:
    await logs_tab(pilot)
    world: World = pilot.app.world  # type: ignore[attr-defined]
    await until(pilot, lambda: world.followers("shop/web"))
    for i in range(40):
        world.push_log(
            "shop/web",
            LogLine(
                ts=NOW + timedelta(seconds=i),
                source="mist-shop-web",
                text=f"GET /products/{1000 + i} 200 {i % 7 + 3}.2ms",
            ),
        )
    view = pilot.app.screen.query_one("#app-logs").view  # type: ignore[attr-defined]
    await until(pilot, lambda: view.row_count >= 52)
    await pilot.press("pageup", "pageup")
    await until(pilot, lambda: not view.following)
    for i in range(40, 77):
        world.push_log(
            "shop/web",
            LogLine(
                ts=NOW + timedelta(seconds=i),
                source="mist-shop-web",
                stream="stderr" if i % 9 == 0 else "stdout",
                text=f"POST /checkout 201 {i}.0ms",
            ),
        )
    await until(pilot, lambda: view.new_lines == 37)


async def _multi_logs(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    pilot.app.open_logs(["shop/web", "blog/site"])  # type: ignore[attr-defined]
    await until(pilot, lambda: screen_name(pilot) == "LogsScreen")
    await pilot.press("p")
    view = pilot.app.screen.query_one("#multi-logs").view  # type: ignore[attr-defined]
    await until(pilot, lambda: view.row_count >= 16)


async def _deployment(pilot: Pilot, which: str) -> None:
    await on_dashboard(pilot)
    pilot.app.open_deployment(pilot.app.world.ids[which])  # type: ignore[attr-defined]
    await until(
        pilot, lambda: screen_name(pilot) == "DeploymentScreen" and pilot.app.screen.deployment is not None
    )  # type: ignore[attr-defined]
    view = pilot.app.screen.query_one("#build-log").view  # type: ignore[attr-defined]
    await until(pilot, lambda: view.row_count >= 9)


async def _goto(pilot: Pilot, name: str) -> None:
    await on_dashboard(pilot)
    pilot.app.action_goto(name)  # type: ignore[attr-defined]
    await until(pilot, lambda: screen_name(pilot) != "DashboardScreen")
    if name == "metrics":
        await until(pilot, lambda: pilot.app.screen.query_one("#containers").row_count > 0)
    else:
        await until(pilot, lambda: pilot.app.screen.query_one("#list").row_count > 0)
    await pilot.pause(0.1)


async def _login_totp(pilot: Pilot) -> None:
    await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
    await pilot.press(*"grace", "enter", *PASSWORD, "enter")
    await until(pilot, lambda: pilot.app.screen.has_class("-totp"))
    await pilot.pause(0.1)


async def _login_locked(pilot: Pilot) -> None:
    await until(pilot, lambda: screen_name(pilot) == "LoginScreen")
    mist = pilot.app.api  # type: ignore[attr-defined]
    for _ in range(lockout.ACCOUNT_THRESHOLD):
        with contextlib.suppress(Unauthenticated, TooManyAttempts):
            await mist.auth.login("linus", "not the password")
    await pilot.press(*"linus", "enter", *PASSWORD, "enter")
    await until(pilot, lambda: pilot.app.screen.query_one("#card-error").has_class("-shown"))


async def _dialog(pilot: Pilot, screen: str, *keys: str, name: str = "FormDialog") -> None:
    """Go to ``screen``, press ``keys`` on its list and wait for the dialog ``name``."""
    await _goto(pilot, screen)
    await pilot.press(*keys)
    await until(pilot, lambda: screen_name(pilot) == name)
    await pilot.pause(0.2)


async def _user_delete(pilot: Pilot) -> None:
    await _dialog(pilot, "users", "down", "down", "X")


async def _invite_secret(pilot: Pilot) -> None:
    await _dialog(pilot, "users", "i")
    dialog = pilot.app.screen
    dialog.query_one("#field-email").value = "barbara@example.com"  # type: ignore[attr-defined]
    dialog.query_one("#field-project").value = "shop"  # type: ignore[attr-defined]
    dialog._submitted()  # type: ignore[attr-defined]
    await until(pilot, lambda: screen_name(pilot) == "SecretDialog")
    await pilot.pause(0.2)


async def _sessions_everyone(pilot: Pilot) -> None:
    await _goto(pilot, "sessions")
    await pilot.press("a")
    await until(pilot, lambda: pilot.app.screen.table.row_count == 4)  # type: ignore[attr-defined]
    await pilot.pause(0.1)


async def _token_secret(pilot: Pilot) -> None:
    await _dialog(pilot, "tokens", "n")
    dialog = pilot.app.screen
    dialog.query_one("#field-name").value = "release"  # type: ignore[attr-defined]
    dialog.query_one("#field-scope").value = "deploy"  # type: ignore[attr-defined]
    dialog.query_one("#field-project").value = "shop"  # type: ignore[attr-defined]
    dialog._submitted()  # type: ignore[attr-defined]
    await until(pilot, lambda: screen_name(pilot) == "SecretDialog")
    await pilot.pause(0.2)


async def _audit_filtered(pilot: Pilot) -> None:
    await _goto(pilot, "audit")
    await pilot.press("slash", *"ada", "tab", "tab", *"user.", "tab", *"7d", "enter")
    await until(pilot, lambda: pilot.app.screen.table.row_count == 1)  # type: ignore[attr-defined]
    await pilot.pause(0.1)


async def _account(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    pilot.app.action_goto("account")  # type: ignore[attr-defined]
    await until(pilot, lambda: screen_name(pilot) == "AccountScreen" and pilot.app.screen.user is not None)  # type: ignore[attr-defined]
    await pilot.pause(0.1)


async def _totp_setup(pilot: Pilot) -> None:
    await _account(pilot)
    await pilot.press("t")
    await until(pilot, lambda: screen_name(pilot) == "FormDialog")
    await pilot.pause(0.2)


async def _recovery_codes(pilot: Pilot) -> None:
    await _totp_setup(pilot)
    shown = " ".join(str(w.render()) for w in pilot.app.screen.query("Static"))
    secret = re.search(r"secret=([A-Z2-7]+)", shown)
    assert secret, shown
    await pilot.press(*totp.totp_now(secret.group(1)), "enter")
    await until(pilot, lambda: screen_name(pilot) == "SecretDialog")
    await pilot.pause(0.2)


async def _members(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    pilot.app.open_members("shop")  # type: ignore[attr-defined]
    await until(
        pilot,
        lambda: screen_name(pilot) == "MembersDialog" and pilot.app.screen.table.row_count >= 3,  # type: ignore[attr-defined]
    )
    await pilot.pause(0.1)


async def _confirm_delete(pilot: Pilot) -> None:
    await open_app(pilot)
    await pilot.press("X")
    await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")


async def _env_add(pilot: Pilot) -> None:
    await open_app(pilot, tab="environment")
    await pilot.press("a")
    await until(pilot, lambda: screen_name(pilot) == "FormDialog")
    await pilot.press(*"1BAD", "tab", *"x", "enter")
    await until(pilot, lambda: str(pilot.app.screen.query_one("#error-key").render()).strip())


async def _domains(pilot: Pilot) -> None:
    await open_app(pilot, tab="domains")
    await until(pilot, lambda: pilot.app.screen.query_one("#domains-table").row_count >= 4)
    await pilot.pause(0.1)


async def _domains_failed_selected(pilot: Pilot) -> None:
    await _domains(pilot)
    await pilot.press("down", "down")
    await pilot.pause(0.1)


async def _domain_add_error(pilot: Pilot) -> None:
    await _domains(pilot)
    await pilot.press("a")
    await until(pilot, lambda: screen_name(pilot) == "FormDialog")
    dialog = pilot.app.screen
    dialog.query_one("#field-name").value = "shop.example.com"  # type: ignore[attr-defined]
    dialog.query_one("#field-hsts_max_age").value = "31536000"  # type: ignore[attr-defined]
    dialog.query_one("#field-headers").text = "X-Robots-Tag: noindex"  # type: ignore[attr-defined]
    dialog._submitted()  # type: ignore[attr-defined]
    await until(pilot, lambda: str(dialog.query_one("#error-name").render()).strip())
    await pilot.pause(0.1)


async def _rollback_confirm(pilot: Pilot) -> None:
    await open_app(pilot, tab="deployments")
    await pilot.press("down", "down", "down", "down")
    await pilot.press("b")
    await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")


async def _help(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    await pilot.press("question_mark")
    await pilot.pause(0.2)


async def _palette(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    await pilot.press("colon")
    await until(pilot, lambda: screen_name(pilot) == "CommandPalette")
    await pilot.press(*"go")
    await pilot.pause(0.5)


async def _error_notification(pilot: Pilot) -> None:
    await open_app(pilot, ref="shop/web")
    pilot.app.open_deployment(404)  # type: ignore[attr-defined]
    await until(pilot, lambda: len(pilot.app._notifications))  # type: ignore[attr-defined]
    await pilot.pause(0.2)


SCENARIOS: list[Scenario] = [
    Scenario("connect", lambda: make_app(target=None), _connect),
    Scenario("connect_daemon_down", lambda: make_app(fail_connect=True), _connect_error),
    Scenario("setup", lambda: make_app(empty_world(), user=None), _setup),
    Scenario("login_error", lambda: make_app(user=None), _login_error),
    Scenario("login_totp", lambda: make_app(user=None), _login_totp),
    Scenario("login_locked", lambda: make_app(user=None), _login_locked),
    Scenario("dashboard", make_app, on_dashboard),
    Scenario("dashboard_filtered", make_app, _dashboard_filtered),
    Scenario("dashboard_sorted_by_cpu", make_app, _dashboard_sorted_cpu),
    Scenario("app_overview", make_app, open_app),
    Scenario("app_describe", make_app, _app_describe),
    Scenario("app_deployments", make_app, lambda p: open_app(p, tab="deployments")),
    Scenario("app_logs", make_app, logs_tab),
    Scenario("app_environment", make_app, lambda p: open_app(p, tab="environment")),
    Scenario("app_env_add_error", make_app, _env_add),
    Scenario("app_domains", make_app, _domains_failed_selected),
    Scenario("app_domain_add_error", make_app, _domain_add_error),
    Scenario("rollback_confirm", make_app, _rollback_confirm),
    Scenario("app_git", git_app, git_tab),
    Scenario("app_git_refused_delivery", git_app, _git_refused_selected),
    Scenario("app_git_deploy_key_made", git_app, _git_first_deploy_key),
    Scenario("app_settings", make_app, lambda p: open_app(p, tab="settings")),
    Scenario("app_settings_error", make_app, _app_settings_error),
    Scenario("deployment_running", make_app, lambda p: _deployment(p, "building")),
    Scenario("deployment_failed", make_app, lambda p: _deployment(p, "metabase")),
    Scenario("logs_search", make_app, _logs_search),
    Scenario("logs_paused", make_app, _logs_paused),
    Scenario("multi_logs", make_app, _multi_logs),
    Scenario("metrics", make_app, lambda p: _goto(p, "metrics")),
    Scenario("users", make_app, lambda p: _goto(p, "users")),
    Scenario("user_create", make_app, lambda p: _dialog(p, "users", "n")),
    Scenario("user_delete_confirm", make_app, _user_delete),
    Scenario("invite_token_shown_once", make_app, _invite_secret),
    Scenario("sessions", make_app, _sessions_everyone),
    Scenario("session_end_confirm", make_app, lambda p: _dialog(p, "sessions", "X", name="ConfirmDialog")),
    Scenario("tokens", make_app, lambda p: _goto(p, "tokens")),
    Scenario("token_create", make_app, lambda p: _dialog(p, "tokens", "n")),
    Scenario("token_shown_once", make_app, _token_secret),
    Scenario("token_revoke_confirm", make_app, lambda p: _dialog(p, "tokens", "X", name="ConfirmDialog")),
    Scenario("audit", make_app, lambda p: _goto(p, "audit")),
    Scenario("audit_filtered", make_app, _audit_filtered),
    Scenario("account", make_app, _account),
    Scenario("account_totp_setup", make_app, _totp_setup),
    Scenario("account_recovery_codes", make_app, _recovery_codes),
    Scenario("project_members", make_app, _members),
    Scenario("settings", make_app, lambda p: _goto(p, "settings")),
    Scenario("git_providers", git_app, _providers),
    Scenario("git_provider_add", git_app, _provider_add),
    Scenario("git_provider_add_github", git_app, lambda p: _provider_add(p, "github")),
    Scenario("git_provider_add_refused", git_app, _provider_add_refused),
    Scenario("git_repositories", git_app, _provider_repos),
    Scenario("new_app_from_provider", git_app, _new_app_from_provider),
    Scenario("confirm_delete", make_app, _confirm_delete),
    Scenario("help", make_app, _help),
    Scenario("command_palette", make_app, _palette),
    Scenario("error_notification", make_app, _error_notification),
]


# ---------------------------------------------------------------------------------------------- databases
# On ``database_world``: the seeded world with databases, a backup destination and backups of a volume.


def make_db_app() -> MistApp:
    return make_app(database_world())


async def databases_list(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    await pilot.press("b")
    await until(pilot, lambda: screen_name(pilot) == "DatabasesScreen" and pilot.app.screen.loaded)  # type: ignore[attr-defined]
    await until(pilot, lambda: pilot.app.screen.sample is not None)  # type: ignore[attr-defined]
    await pilot.pause(0.1)


async def open_database(pilot: Pilot, ref: str = "shop/main", tab: str | None = None) -> None:
    await on_dashboard(pilot)
    pilot.app.open_database(ref)  # type: ignore[attr-defined]
    await until(
        pilot, lambda: screen_name(pilot) == "DatabaseScreen" and pilot.app.screen.current is not None
    )  # type: ignore[attr-defined]
    await until(pilot, lambda: pilot.app.screen.samples)  # type: ignore[attr-defined]
    if tab:
        pilot.app.screen.action_tab(tab)  # type: ignore[attr-defined]
        if tab == "backups":
            pane = pilot.app.screen.query_one("BackupsPane")
            await until(pilot, lambda: pane.loaded)  # type: ignore[attr-defined]
        if tab == "logs":
            view = pilot.app.screen.query_one("#db-logs").view  # type: ignore[attr-defined]
            await until(pilot, lambda: view.row_count >= 4)
    await pilot.pause(0.2)


async def _dashboard_databases(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    screen = pilot.app.screen
    await until(pilot, lambda: screen.databases and screen.table.has_row("shop/db:main"))  # type: ignore[attr-defined]
    await until(pilot, lambda: "shop/db:main" in screen.usage)  # type: ignore[attr-defined]
    screen.table.select("shop/db:main")  # type: ignore[attr-defined]
    await pilot.pause(0.1)


async def _database_url_revealed(pilot: Pilot) -> None:
    await open_database(pilot)
    await pilot.press("r")
    await until(pilot, lambda: pilot.app.screen.url is not None)  # type: ignore[attr-defined]
    await pilot.pause(0.1)


async def _database_create_refused(pilot: Pilot) -> None:
    await databases_list(pilot)
    await pilot.press("n")
    await until(pilot, lambda: screen_name(pilot) == "DatabaseForm")
    dialog = pilot.app.screen
    dialog.query_one("#field-project").value = "shop"  # type: ignore[attr-defined]
    dialog.query_one("#field-name").value = "template1"  # type: ignore[attr-defined]
    dialog._submitted()  # type: ignore[attr-defined]
    await until(pilot, lambda: str(dialog.query_one("#error-name").render()).strip())
    await pilot.pause(0.1)


async def _database_delete_refused(pilot: Pilot) -> None:
    await open_database(pilot, "labs/scratch")
    await pilot.press("X")
    await until(pilot, lambda: screen_name(pilot) == "FormDialog")
    dialog = pilot.app.screen
    dialog.query_one("#field-name").value = "labs/scratch"  # type: ignore[attr-defined]
    dialog._submitted()  # type: ignore[attr-defined]
    await until(pilot, lambda: str(dialog.query_one("#error-form").render()).strip())
    await pilot.pause(0.1)


async def project_backups(pilot: Pilot) -> None:
    await on_dashboard(pilot)
    pilot.app.open_backups("shop")  # type: ignore[attr-defined]
    await until(pilot, lambda: screen_name(pilot) == "BackupsScreen")
    pane = pilot.app.screen.query_one("BackupsPane")
    await until(pilot, lambda: pane.loaded and pane.backups)  # type: ignore[attr-defined]
    await pilot.pause(0.1)


async def _project_backups_verify_failed(pilot: Pilot) -> None:
    await project_backups(pilot)
    await pilot.press("down", "down")
    await pilot.pause(0.1)


async def _backup_restore_confirm(pilot: Pilot) -> None:
    await project_backups(pilot)
    await pilot.press("t")
    await until(pilot, lambda: screen_name(pilot) == "FormDialog")
    await pilot.press("enter")
    await until(pilot, lambda: screen_name(pilot) == "ConfirmDialog")
    await pilot.pause(0.1)


DATABASE_SCENARIOS: list[Scenario] = [
    Scenario("dashboard_databases", make_db_app, _dashboard_databases),
    Scenario("databases", make_db_app, databases_list),
    Scenario("database_create_refused", make_db_app, _database_create_refused),
    Scenario("database_overview", make_db_app, open_database),
    Scenario("database_url_revealed", make_db_app, _database_url_revealed),
    Scenario("database_delete_refused", make_db_app, _database_delete_refused),
    Scenario("database_logs", make_db_app, lambda p: open_database(p, tab="logs")),
    Scenario("database_metrics", make_db_app, lambda p: open_database(p, tab="metrics")),
    Scenario("database_backups", make_db_app, lambda p: open_database(p, tab="backups")),
    Scenario("project_backups", make_db_app, _project_backups_verify_failed),
    Scenario("backup_restore_confirm", make_db_app, _backup_restore_confirm),
]
SCENARIOS += DATABASE_SCENARIOS
