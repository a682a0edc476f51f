"""``MistApp``: the Textual application. It holds the connection (a ``MistAPI``), the config and the clock,
routes between screens, and is the one place where errors from workers are shown to the user."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ClassVar

from textual import events, work
from textual.app import App, ScreenStackError
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Input, Static

from mist_core.api import MistAPI
from mist_core.errors import DaemonUnavailable, MistError, Unauthenticated
from mist_core.models import Session, User
from mist_core.printable import printable

from . import heap
from .commands import ScreenCommands
from .config import Config, Credentials, Target
from .workers import ApiFailed, api_work

DAEMON_HINT = "Is the daemon running? Start it with `mist daemon` (or `make run`), or use --embedded."
# Waits between attempts to reach a daemon that went away: quick at first (a restart takes a second or two),
# never longer than a few seconds, so the screen is live again soon after the daemon is.
RECONNECT_DELAYS = (0.25, 0.5, 1.0, 2.0)

Connect = Callable[[Target], Awaitable[MistAPI]]


class StaleBanner(Static):
    """One line under the header while the daemon cannot be reached: what the screen shows is old."""


def reload_screen(screen: Screen) -> None:
    """Have ``screen`` fetch again what it shows and re-open its streams, if it knows how."""
    reload = getattr(screen, "reconnected", None)
    if callable(reload):
        reload()


def utc_now() -> datetime:
    return datetime.now(UTC)


class MistApp(App[None]):
    """The Mist terminal app. ``connect`` turns a ``Target`` into a ``MistAPI``; ``clock`` is what "now" is
    for ages and durations (tests pass a fixed one)."""

    CSS_PATH = "mist.tcss"
    TITLE = "Mist"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        # ``:`` as in k9s, and Ctrl+P as in every Textual app: naming one command_palette binding takes away
        # Textual's own Ctrl+P, so it is given back here (with priority, so a focused input cannot eat it).
        Binding("colon", "command_palette", "Commands", show=False, id="app.commands"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, priority=True, id="app.palette"),
        Binding("question_mark", "toggle_help", "Help", id="app.help"),
        # Esc closes the help panel first; only with no panel open does it go back (the screen's Esc).
        Binding("escape", "hide_help", "Close help", show=False, priority=True, id="app.close_help"),
    ]

    def __init__(
        self,
        connect: Connect,
        config: Config | None = None,
        *,
        target: Target | None = None,
        clock: Callable[[], datetime] = utc_now,
        credentials: Credentials | None = None,
        cursor_blink: bool = True,
    ) -> None:
        super().__init__()
        self.connect_to = connect
        self.config = config or Config()
        self.target = target
        self.clock = clock
        self.credentials = credentials or Credentials()
        self.cursor_blink = cursor_blink
        self.api: MistAPI | None = None
        self.user: User | None = None
        self._errors_shown: set[str] = set()
        # When the daemon stopped answering (None while connected); wall time, for the banner.
        self.disconnected_since: datetime | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        if self.config.theme in self.available_themes:
            self.theme = self.config.theme
        self.theme_changed_signal.subscribe(self, lambda theme: self.config.save_theme(theme.name))
        if self.config.keymap:
            self.set_keymap(self.config.keymap)
        from .screens.connect import ConnectScreen

        self.push_screen(ConnectScreen(self.target, auto=self.target is not None))
        # One tick for the whole app: the active screen redraws its relative times ("45s", "live for 3m")
        # and the stale banner keeps up with screens opened while disconnected.
        self.set_interval(1, self.tick)

    async def on_unmount(self) -> None:
        heap.release()
        if self.api is not None:
            try:
                await self.api.close()
            except Exception:  # noqa: BLE001 - closing a dead connection must not mask the exit
                pass

    def format_title(self, title: str, sub_title: str) -> Content:
        # A middle dot reads as a separator in every font; Textual's em dash looked like a stray hyphen.
        title, sub_title = printable(title), printable(sub_title)
        if not sub_title:
            return Content(title)
        return Content.assemble(Content(title).stylize("bold"), (" · ", "dim"), Content(sub_title))

    def notify(  # type: ignore[override]
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A notification, plain text unless ``markup``: messages name what users typed and quote errors
        servers sent, which must neither be read as markup nor reach the terminal as control characters."""
        super().notify(
            printable(message), title=printable(title), severity=severity, timeout=timeout, markup=markup
        )

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # Snapshot tests need a still cursor; Input has no app-wide switch.
        if not self.cursor_blink and isinstance(event.widget, Input):
            event.widget.cursor_blink = False

    async def use(self, target: Target) -> MistAPI:
        """Connect to ``target``, replacing (and closing) any previous connection."""
        # The old connection goes first: an embedded core holds its data directory's lock until closed.
        old, self.api = self.api, None
        if old is not None:
            try:
                await old.close()
            except Exception:  # noqa: BLE001 - a dead connection cannot refuse to die
                pass
        if target.on_session is None:
            target.on_session = self.session_renewed
        if target.kind == "daemon" and target.refresh_token:
            await self._renew_saved_session(target)
        self.target = target
        self.api = await self.connect_to(target)
        return self.api

    async def _renew_saved_session(self, target: Target) -> None:
        """Take the saved session of ``target``'s host, renewed first if its access token is (nearly) expired,
        under the lock of the credentials store, as the CLI does. Without it, a ``mist`` command renewing the
        same session at the same moment would spend the refresh token this connection is about to present,
        and presenting a spent one ends the session for both."""

        async def refresh(refresh_token: str) -> Session:
            api = await self.connect_to(Target("daemon", target.address))
            try:
                return await api.auth.refresh(refresh_token)
            finally:
                await api.close()

        try:
            token, refresh_token = await self.credentials.renew(target.address, refresh)
        except Unauthenticated:
            return  # the session is over: the first call says so and the login screen opens
        if token and refresh_token:
            target.token, target.refresh_token = token, refresh_token

    def session_renewed(self, session: Session) -> None:
        """The connection renewed an expired access token: keep the new pair (the old refresh token is
        used up, so a restart needs the new one)."""
        if self.target is None:
            return
        self.target.token = session.token
        self.target.refresh_token = session.refresh_token
        if self.target.kind == "daemon":
            self.credentials.save(
                self.target.address, session.token, session.user.username, session.refresh_token
            )

    async def logged_in(self, session: Session) -> None:
        """A login or setup succeeded: remember the tokens, reconnect with them, and open the dashboard (and
        the account screen when the instance requires two-factor authentication this user lacks)."""
        assert self.target is not None
        target = Target(self.target.kind, self.target.address, session.token, session.refresh_token)
        if target.kind == "daemon":
            self.credentials.save(target.address, session.token, session.user.username, session.refresh_token)
        await self.use(target)
        self.enter(session.user)
        if session.totp_enrollment_required:
            from .screens.account import AccountScreen

            self.push_screen(AccountScreen(enrol=True))

    def enter(self, user: User) -> None:
        from .screens.dashboard import DashboardScreen

        self.user = user
        assert self.target is not None
        self.sub_title = f"{user.username} @ {self.target.label}"
        self.switch_screen(DashboardScreen())

    # ------------------------------------------------------------------------------------------ errors

    def on_api_failed(self, message: ApiFailed) -> None:
        self.show_error(message.error)

    def show_error(self, error: BaseException) -> None:
        """The one place an error reaches the user: a notification with the API's message, never a
        traceback. An expired session goes back to the login screen."""
        message = getattr(error, "message", str(error))
        if message in self._errors_shown:
            return  # two workers tripping over the same cause say it once
        self._errors_shown.add(message)
        self.set_timer(6, lambda: self._errors_shown.discard(message))
        if isinstance(error, Unauthenticated):
            self.notify(error.message, title="Logged out", severity="error")
            self._back_to_login(error.message)
        elif isinstance(error, DaemonUnavailable) and self.connection_lost():
            return  # the banner says it, and the app reconnects by itself
        elif isinstance(error, DaemonUnavailable):
            self.notify(f"{error.message}\n{DAEMON_HINT}", title="No daemon", severity="error", timeout=10)
        elif isinstance(error, MistError):
            self.notify(error.message, title=error.code.replace("_", " ").capitalize(), severity="error")
        elif isinstance(error, (ConnectionError, OSError)):
            self.notify(f"Connection failed: {error}. {DAEMON_HINT}", title="No connection", severity="error")
        else:
            self.notify(f"{type(error).__name__}: {error}", title="Unexpected error", severity="error")

    # ------------------------------------------------------------------------------------------ connection

    def tick(self) -> None:
        try:
            screen = self.screen
        except ScreenStackError:
            return  # starting or shutting down: no screen to update
        if self.disconnected_since is not None:
            self._mark_stale(screen)
        tick = getattr(screen, "tick", None)
        if callable(tick):
            try:
                tick()
            except NoMatches:
                pass  # the screen is being composed or taken down: the next tick finds it whole

    def connection_lost(self) -> bool:
        """A call found the daemon gone: say so once, grey out what the screens show, and reconnect in the
        background. False when there is nothing to reconnect to (no session yet, or the in-process core)."""
        if self.api is None or self.user is None or self.target is None or self.target.kind != "daemon":
            return False
        if self.disconnected_since is None:
            self.disconnected_since = datetime.now().astimezone()
            for screen in self.screen_stack:
                self._mark_stale(screen)
            self.reconnect()
        return True

    def stream_ended(self) -> None:
        """A stream that should run as long as its screen ended: the daemon may have stopped. Check."""
        if self.disconnected_since is None:
            self.check_connection()

    @work(exclusive=True, group="connection-check", exit_on_error=False)
    async def check_connection(self) -> None:
        if self.api is None:
            return
        try:
            await self.api.auth.whoami()
        except DaemonUnavailable:
            self.connection_lost()
        except Exception:  # noqa: BLE001 - any answer means the daemon is there; the screen reports errors
            return

    @work(exclusive=True, group="reconnect", exit_on_error=False)
    async def reconnect(self) -> None:
        attempt = 0
        while self.api is not None:
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1
            try:
                await self.api.auth.whoami()
            except DaemonUnavailable:
                continue
            except MistError as error:
                self.disconnected_since = None
                self._clear_stale()
                self.show_error(error)  # it answers, but no longer to this session
                return
            break
        self.disconnected_since = None
        self._clear_stale()
        for screen in self.screen_stack:
            reload_screen(screen)

    def stale_text(self) -> str:
        since = self.disconnected_since.strftime("%H:%M:%S") if self.disconnected_since else "now"
        return f" disconnected since {since} — data is stale; retrying"

    def _mark_stale(self, screen: Screen) -> None:
        if not screen.is_attached or screen.is_modal or screen.id == "_default":
            return
        screen.add_class("-stale")
        if not screen.query(StaleBanner):
            banner = StaleBanner(self.stale_text(), classes="stale-banner")
            children = list(screen.children)
            if children:
                screen.mount(banner, before=children[0])
            else:
                screen.mount(banner)

    def _clear_stale(self) -> None:
        for screen in self.screen_stack:
            screen.remove_class("-stale")
            screen.query(StaleBanner).remove()

    def _back_to_login(self, message: str) -> None:
        from .screens.connect import LoginScreen

        if isinstance(self.screen, LoginScreen):
            return
        while len(self.screen_stack) > 2:
            self.pop_screen()
        self.switch_screen(LoginScreen(message=message))

    # ------------------------------------------------------------------------------------------ navigation

    def open_app(self, app_ref: str) -> None:
        from .screens.app_screen import AppScreen

        self.push_screen(AppScreen(app_ref))

    def open_deployment(self, deployment_id: int) -> None:
        from .screens.deployment import DeploymentScreen

        self.push_screen(DeploymentScreen(deployment_id))

    def open_logs(self, app_refs: list[str] | None = None) -> None:
        from .screens.logs import LogsScreen

        self.push_screen(LogsScreen(app_refs or []))

    def open_members(self, project: str) -> None:
        from .screens.members import MembersDialog

        self.push_screen(MembersDialog(project))

    def open_database(self, db_ref: str, *, tab: str = "overview") -> None:
        from .screens.databases import DatabaseScreen

        self.push_screen(DatabaseScreen(db_ref, tab=tab))

    def open_backups(self, project: str) -> None:
        from .screens.backups import BackupsScreen

        self.push_screen(BackupsScreen(project))

    def action_goto(self, name: str) -> None:
        from .screens.account import AccountScreen
        from .screens.admin import SettingsScreen
        from .screens.audit import AuditScreen
        from .screens.dashboard import DashboardScreen
        from .screens.databases import DatabasesScreen
        from .screens.metrics import MetricsScreen
        from .screens.providers import GitProvidersScreen
        from .screens.sessions import SessionsScreen, TokensScreen
        from .screens.users import UsersScreen

        if name == "dashboard":
            while not isinstance(self.screen, DashboardScreen) and len(self.screen_stack) > 2:
                self.pop_screen()
            return
        if name == "logs":
            self.open_logs()
            return
        screens = {
            "metrics": MetricsScreen,
            "users": UsersScreen,
            "sessions": SessionsScreen,
            "tokens": TokensScreen,
            "audit": AuditScreen,
            "account": AccountScreen,
            "settings": SettingsScreen,
            "providers": GitProvidersScreen,
            "databases": DatabasesScreen,
        }
        self.push_screen(screens[name]())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "hide_help":
            return bool(self.screen.query("HelpPanel"))
        return True

    def action_hide_help(self) -> None:
        self.action_hide_help_panel()

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    @api_work(group="logout")
    async def action_logout(self) -> None:
        if self.api is not None:
            try:
                await self.api.auth.logout()
            except MistError:
                pass
        self.forget_session("Logged out.")

    def forget_session(self, message: str) -> None:
        """This session is over (logged out, or ended from the sessions screen): drop its saved tokens and
        go back to the login screen saying ``message``."""
        if self.target is not None:
            if self.target.kind == "daemon":
                self.credentials.forget(self.target.address)
            self.target = Target(self.target.kind, self.target.address, None)
        self.user = None
        self._back_to_login(message)
