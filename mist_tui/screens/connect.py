"""Connecting and signing in: pick a daemon (local socket or URL + token), create the owner account on a
fresh instance, or log in (with a two-factor code when the account has one). Every failure is said in
place, with what to do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Static

from mist_core.errors import (
    DaemonUnavailable,
    MistError,
    TooManyAttempts,
    TotpRequired,
    Unauthenticated,
)

from ..config import Target
from ..format import human_wait
from ..widgets.footer import MistFooter
from ..workers import api_work

if TYPE_CHECKING:
    from ..app import MistApp

LOGO = "☁  m i s t"


def _error_text(error: BaseException) -> str:
    from ..app import DAEMON_HINT

    if isinstance(error, DaemonUnavailable):
        return f"{error.message}\n{DAEMON_HINT}"
    if isinstance(error, TooManyAttempts):
        wait = error.extra.get("retry_after")
        if isinstance(wait, (int, float)) and wait > 0:
            return f"{error.message}\nLogging in is paused for {human_wait(wait)}."
        return error.message
    if isinstance(error, MistError):
        return error.message
    if isinstance(error, OSError):
        return f"Could not connect: {error.strerror or error}.\n{DAEMON_HINT}"
    return f"{type(error).__name__}: {error}"


class _Card(Screen):
    """A centred card with a title, fields, an error line and a primary button."""

    BINDINGS = [Binding("escape", "app.quit", "Quit", show=False, id="connect.quit")]

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def show_error(self, message: str) -> None:
        label = self.query_one("#card-error", Static)
        label.update(Text(message, style="bold red") if message else "")
        label.set_class(bool(message), "-shown")

    def busy(self, on_: bool, text: str = "") -> None:
        self.query_one("#card-submit", Button).disabled = on_
        self.query_one("#card-status", Label).update(Text(text, style="dim"))


class ConnectScreen(_Card):
    """Where Mist is: a socket path or URL, and an optional token."""

    def __init__(self, target: Target | None = None, *, auto: bool = False, error: str = "") -> None:
        super().__init__()
        self.initial = target
        self.auto = auto
        self.initial_error = error

    def compose(self) -> ComposeResult:
        address = self.initial.address if self.initial else ""
        with Center(classes="card-outer"):
            with Vertical(classes="card"):
                yield Label(LOGO, classes="card-logo")
                yield Label("Connect to a Mist server", classes="card-title")
                yield Label("Daemon (unix:///run/mist/mist.sock or https://host:7070)", classes="field-label")
                yield Input(address, placeholder="unix:///run/mist/mist.sock", id="address")
                yield Label("Token (optional: leave empty to log in)", classes="field-label")
                yield Input(
                    (self.initial.token or "") if self.initial else "",
                    password=True,
                    placeholder="paste an API token",
                    id="token",
                )
                yield Static("", id="card-error")
                with Horizontal(classes="card-buttons"):
                    yield Label("", id="card-status")
                    yield Button("Connect", id="card-submit", variant="primary")
        yield MistFooter()

    def on_mount(self) -> None:
        self.show_error(self.initial_error)
        self.query_one("#address", Input).focus()
        if self.auto and self.initial is not None:
            self.attempt(self.initial)

    @on(Input.Submitted)
    @on(Button.Pressed, "#card-submit")
    def _submit(self) -> None:
        address = self.query_one("#address", Input).value.strip()
        token = self.query_one("#token", Input).value.strip() or None
        if not address:
            self.show_error("Enter the daemon's address, e.g. unix:///run/mist/mist.sock.")
            return
        kind = (
            "embedded"
            if address == "embedded"
            or (self.initial and self.initial.kind == "embedded" and address == self.initial.address)
            else "daemon"
        )
        refresh_token = None
        if token is None and kind == "daemon":
            # A saved login: its refresh token renews the access token when that has expired.
            token, _ = self.mist.credentials.get(address)
            refresh_token = self.mist.credentials.refresh_token(address) if token else None
        self.attempt(Target(kind, address, token, refresh_token))  # type: ignore[arg-type]

    @api_work(exclusive=True, group="connect")
    async def attempt(self, target: Target) -> None:
        self.show_error("")
        self.busy(True, f"connecting to {target.label}…")
        try:
            api = await self.mist.use(target)
            status = await api.auth.status()
            if status.needs_setup:
                self.app.switch_screen(SetupScreen(version=status.version))
                return
            if target.token:
                try:
                    user = await api.auth.whoami()
                except Unauthenticated:
                    self.app.switch_screen(
                        LoginScreen(message="Your saved session has expired: log in again.")
                    )
                    return
                self.mist.enter(user)
                return
            self.app.switch_screen(LoginScreen())
        except Exception as error:  # noqa: BLE001 - every failure is reported in place
            self.show_error(_error_text(error))
        finally:
            if self.is_attached:
                self.busy(False)


class SetupScreen(_Card):
    """A fresh instance: create the owner account (password twice)."""

    def __init__(self, version: str = "") -> None:
        super().__init__()
        self.version = version

    def compose(self) -> ComposeResult:
        with Center(classes="card-outer"):
            with Vertical(classes="card"):
                yield Label(LOGO, classes="card-logo")
                yield Label("Welcome: create the owner account", classes="card-title")
                yield Static(
                    "This Mist server has no accounts yet. The first one owns everything; add others later.",
                    classes="card-note",
                )
                yield Label("Username", classes="field-label")
                yield Input(placeholder="ada", id="username")
                yield Label("Password (at least 12 characters)", classes="field-label")
                yield Input(password=True, id="password")
                yield Label("Password again", classes="field-label")
                yield Input(password=True, id="password2")
                yield Static("", id="card-error")
                with Horizontal(classes="card-buttons"):
                    yield Label(f"Mist {self.version}" if self.version else "", id="card-status")
                    yield Button("Create account", id="card-submit", variant="primary")
        yield MistFooter()

    def on_mount(self) -> None:
        self.query_one("#username", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#card-submit")
    def _submit(self) -> None:
        username = self.query_one("#username", Input).value.strip()
        password = self.query_one("#password", Input).value
        again = self.query_one("#password2", Input).value
        if not username:
            self.show_error("Choose a username.")
        elif password != again:
            self.show_error("The two passwords differ: type the same password twice.")
        else:
            self.create(username, password)

    @api_work(exclusive=True, group="setup")
    async def create(self, username: str, password: str) -> None:
        assert self.mist.api is not None
        self.busy(True, "creating account…")
        try:
            session = await self.mist.api.auth.setup(username, password)
            await self.mist.logged_in(session)
        except Exception as error:  # noqa: BLE001
            self.show_error(_error_text(error))
            if self.is_attached:
                self.busy(False)


class LoginScreen(_Card):
    """Username and password; when the account has two-factor authentication, a code field appears in
    place and the same form is sent again with the code."""

    def __init__(self, message: str = "") -> None:
        super().__init__()
        self.message = message
        self.asking_code = False

    def compose(self) -> ComposeResult:
        target = self.mist.target
        with Center(classes="card-outer"):
            with Vertical(classes="card"):
                yield Label(LOGO, classes="card-logo")
                yield Label(f"Log in to {target.label if target else 'Mist'}", classes="card-title")
                yield Label("Username", classes="field-label")
                yield Input(id="username")
                yield Label("Password", classes="field-label")
                yield Input(password=True, id="password")
                with Vertical(id="totp-box"):
                    yield Label(
                        "Code from your authenticator app (or a recovery code)",
                        classes="field-label",
                    )
                    yield Input(placeholder="123456", id="totp", max_length=32)
                yield Static("", id="card-error")
                with Horizontal(classes="card-buttons"):
                    yield Button("Other server", id="card-switch")
                    yield Label("", id="card-status")
                    yield Button("Log in", id="card-submit", variant="primary")
        yield MistFooter()

    def on_mount(self) -> None:
        if self.message:
            self.show_error(self.message)
        self.query_one("#username", Input).focus()

    def ask_code(self) -> None:
        """Show the code field (the password was right) and move there."""
        self.asking_code = True
        self.add_class("-totp")
        code = self.query_one("#totp", Input)
        code.value = ""
        code.focus()

    @on(Input.Submitted, "#username")
    def _next(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    @on(Input.Submitted, "#totp")
    @on(Button.Pressed, "#card-submit")
    def _submit(self) -> None:
        username = self.query_one("#username", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not username or not password:
            self.show_error("Enter your username and password.")
            return
        code: str | None = None
        if self.asking_code:
            code = self.query_one("#totp", Input).value.strip()
            if not code:
                self.show_error("Enter the code your authenticator app shows now, or a recovery code.")
                self.query_one("#totp", Input).focus()
                return
        self.login(username, password, code)

    @on(Button.Pressed, "#card-switch")
    def _switch(self) -> None:
        self.app.switch_screen(ConnectScreen(self.mist.target))

    @api_work(exclusive=True, group="login")
    async def login(self, username: str, password: str, totp: str | None = None) -> None:
        assert self.mist.api is not None
        self.busy(True, "logging in…")
        try:
            session = await self.mist.api.auth.login(username, password, totp=totp)
            await self.mist.logged_in(session)
        except TotpRequired:
            self.show_error("")
            self.ask_code()
            self.busy(False, "2FA: enter the code")
        except TooManyAttempts as error:
            self.show_error(_error_text(error))
            self.busy(False)
            self.pause_for(error.extra.get("retry_after"))
        except Exception as error:  # noqa: BLE001
            text = _error_text(error)
            if isinstance(error, Unauthenticated):
                if totp is not None:
                    text += "\nType the code your app shows now (codes change every 30 seconds)."
                else:
                    text += "\nCheck the username and password and try again."
            self.show_error(text)
            if self.is_attached:
                if totp is not None:
                    self.query_one("#totp", Input).value = ""
                    self.query_one("#totp", Input).focus()
                else:
                    self.query_one("#password", Input).value = ""
                self.busy(False)

    def pause_for(self, seconds: object) -> None:
        """Keep the button off while the server refuses logins anyway."""
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            return
        button = self.query_one("#card-submit", Button)
        button.disabled = True

        def resume() -> None:
            if self.is_attached:
                button.disabled = False
                self.query_one("#card-status", Label).update(Text("you can try again", style="dim"))

        self.set_timer(float(seconds), resume)
