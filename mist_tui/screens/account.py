"""The caller's own account: profile, password, two-factor authentication (the secret to scan, a code to
confirm, then the recovery codes, each shown once), and the way to one's sessions and API tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Header, Static

from mist_core.errors import InvalidInput
from mist_core.models import RecoveryCodes, TotpSetup, User, UserChanges

from ..format import human_age, role_text, shown, utc_time
from ..widgets.footer import MistFooter
from ..workers import api_work
from .dialogs import FormDialog, FormField, SecretDialog

if TYPE_CHECKING:
    from ..app import MistApp


def grouped(secret: str, size: int = 4) -> str:
    """``JBSW Y3DP EHPK``: a base32 secret in groups, easier to type into a phone."""
    return " ".join(secret[i : i + size] for i in range(0, len(secret), size))


def recovery_columns(codes: list[str]) -> str:
    half = (len(codes) + 1) // 2
    left, right = codes[:half], codes[half:]
    return "\n".join(
        f"{a}    {b}" if b else a for a, b in zip(left, right + [""] * (half - len(right)), strict=True)
    )


class AccountScreen(Screen):
    """``enrol``: the server requires two-factor authentication and this account has none yet, so the
    screen says so and starts turning it on."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="account.back"),
        Binding("p", "password", "Password", id="account.password"),
        Binding("e", "profile", "Profile", id="account.profile"),
        Binding("t", "totp_on", "Turn on 2FA", id="account.totp_enable"),
        Binding("T", "totp_off", "Turn off 2FA", id="account.totp_disable"),
        Binding("s", "sessions", "Sessions", id="account.sessions"),
        Binding("k", "tokens", "API tokens", id="account.tokens"),
    ]

    def __init__(self, *, enrol: bool = False) -> None:
        super().__init__()
        self.enrol = enrol
        self.user: User | None = None

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Only the two-factor switch that applies is offered.
        if action in ("totp_on", "totp_off") and self.user is not None:
            return self.user.totp_enabled == (action == "totp_off")
        return True

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="account-banner")
        yield Static("loading…", id="account-facts")
        yield MistFooter()

    def on_mount(self) -> None:
        self.query_one("#account-facts", Static).border_title = "Your account"
        if self.enrol:
            banner = self.query_one("#account-banner", Static)
            banner.update(
                Text(
                    "This server requires two-factor authentication: turn it on (t) before doing anything else.",
                    style="bold",
                )
            )
            banner.add_class("-shown")
        self.load(start_totp=self.enrol)

    @api_work(exclusive=True, group="account-load")
    async def load(self, start_totp: bool = False) -> None:
        assert self.mist.api is not None
        self.user = await self.mist.api.auth.whoami()
        self.mist.user = self.user
        self.show(self.user)
        self.refresh_bindings()
        if start_totp and not self.user.totp_enabled:
            await self._totp_on()

    def show(self, user: User) -> None:
        now = self.mist.clock()
        facts = Table.grid(padding=(0, 3))
        facts.add_column(style="dim", justify="right")
        facts.add_column()
        two_factor = (
            Text("on", style="bold green")
            if user.totp_enabled
            else Text.assemble(("off", "bold yellow"), ("   t turns it on", "dim"))
        )
        for label, value in (
            ("Username", Text(user.username, style="bold")),
            ("Name", shown(user.full_name) if user.full_name else Text("—", style="dim")),
            ("Email", shown(user.email) if user.email else Text("—", style="dim")),
            ("Role on this server", role_text(user.role)),
            ("Two-factor", two_factor),
            ("Member since", f"{utc_time(user.created_at)} UTC ({human_age(user.created_at, now)} ago)"),
            (
                "Last login",
                f"{utc_time(user.last_login_at)} UTC" if user.last_login_at else Text("—", style="dim"),
            ),
        ):
            facts.add_row(label, value)
        self.query_one("#account-facts", Static).update(facts)

    # ------------------------------------------------------------------------------------------ actions

    def action_password(self) -> None:
        async def change(values: dict[str, Any]) -> dict[str, Any]:
            assert self.mist.api is not None
            if values["new"] != values["again"]:
                raise InvalidInput("The two new passwords differ: type the same one twice.", field="again")
            revoke_tokens = bool(values["revoke_tokens"])
            await self.mist.api.auth.change_password(
                values["current"], values["new"], revoke_tokens=revoke_tokens
            )
            return {"revoke_tokens": revoke_tokens}

        def done(changed: dict[str, Any] | None) -> None:
            if changed is None:
                return
            if changed["revoke_tokens"]:
                self.mist.notify(
                    "Password changed. Your other sessions were logged out and your API tokens revoked."
                )
            else:
                self.mist.notify("Password changed. Your other sessions were logged out.")

        self.app.push_screen(
            FormDialog(
                "Change your password",
                [
                    FormField("current", "Current password", password=True),
                    FormField("new", "New password (at least 12 characters)", password=True),
                    FormField("again", "New password again", password=True),
                    FormField("revoke_tokens", "Also revoke all my API tokens", checkbox=True),
                ],
                submit=change,
                submit_label="Change password",
                note="Your other sessions end; this one stays logged in. API tokens keep working unless you "
                "revoke them here.",
            ),
            done,
        )

    def action_profile(self) -> None:
        user = self.user
        if user is None:
            return

        async def save(values: dict[str, Any]) -> User:
            assert self.mist.api is not None
            changes = UserChanges(full_name=values["full_name"].strip(), email=values["email"].strip())
            return await self.mist.api.users.update(user.username, changes)

        def done(changed: User | None) -> None:
            if changed is not None:
                self.user = changed
                self.show(changed)
                self.refresh_bindings()
                self.mist.notify("Profile saved.")

        self.app.push_screen(
            FormDialog(
                "Your profile",
                [
                    FormField("full_name", "Name", user.full_name),
                    FormField(
                        "email", "Email (empty: none)", user.email or "", placeholder="name@example.com"
                    ),
                ],
                submit=save,
            ),
            done,
        )

    def action_totp_on(self) -> None:
        if self.user is not None and self.user.totp_enabled:
            self.mist.notify("Two-factor authentication is already on. T turns it off.")
            return
        self.start_totp()

    @api_work(group="account-totp")
    async def start_totp(self) -> None:
        await self._totp_on()

    async def _totp_on(self) -> None:
        assert self.mist.api is not None
        setup = await self.mist.api.auth.totp_setup()

        async def enable(values: dict[str, Any]) -> RecoveryCodes:
            assert self.mist.api is not None
            code = values["code"].replace(" ", "")
            if not code:
                raise InvalidInput("Type the 6-digit code the app shows now.", field="code")
            return await self.mist.api.auth.totp_enable(code)

        def done(codes: RecoveryCodes | None) -> None:
            if codes is None:
                return
            self.load()
            self.app.push_screen(
                SecretDialog(
                    "Two-factor authentication is on: your recovery codes",
                    "Each code works once in place of a code from the app, if the phone is lost. Keep them "
                    "somewhere safe, away from this computer.",
                    recovery_columns(codes.codes),
                )
            )

        self.app.push_screen(
            FormDialog(
                "Turn on two-factor authentication",
                [FormField("code", "2. The 6-digit code the app shows now", placeholder="123456")],
                submit=enable,
                submit_label="Turn on",
                note=totp_note(setup),
            ),
            done,
        )

    def action_totp_off(self) -> None:
        if self.user is not None and not self.user.totp_enabled:
            self.mist.notify("Two-factor authentication is already off. t turns it on.")
            return

        async def disable(values: dict[str, Any]) -> bool:
            assert self.mist.api is not None
            await self.mist.api.auth.totp_disable(values["password"])
            return True

        def done(off: bool | None) -> None:
            if off:
                self.mist.notify("Two-factor authentication is off.")
                self.load()

        self.app.push_screen(
            FormDialog(
                "Turn off two-factor authentication?",
                [FormField("password", "Your password confirms it", password=True)],
                submit=disable,
                submit_label="Turn off",
                note="Logging in will need only your password, and the recovery codes stop working.",
                danger=True,
            ),
            done,
        )

    def action_sessions(self) -> None:
        from .sessions import SessionsScreen

        self.app.push_screen(SessionsScreen())

    def action_tokens(self) -> None:
        from .sessions import TokensScreen

        self.app.push_screen(TokensScreen())


def totp_note(setup: TotpSetup) -> Text:
    return Text.assemble(
        "1. Add this secret to an authenticator app (Aegis, FreeOTP, 1Password…):\n\n",
        ("   " + grouped(setup.secret), "bold"),
        "\n\n   or open this link on the phone:\n",
        (setup.uri, "dim"),
    )
