"""Login sessions and API tokens: one's own (or everyone's, for an admin), with the current session
marked; end a session or revoke a token after saying what stops working; create a token and see its
secret once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.binding import Binding

from mist_core.errors import InvalidInput
from mist_core.models import ApiToken, ApiTokenCreated, SessionInfo

from ..format import human_age, human_until, right
from ..widgets.table import MistTable
from ..workers import api_work
from .admin import _ListScreen
from .dialogs import ConfirmDialog, FormDialog, FormField, SecretDialog
from .users import project_names

SCOPE_CHOICES = [
    ("read · look only", "read"),
    ("deploy · also deploy, roll back, start, stop, restart", "deploy"),
    ("admin · everything you may do", "admin"),
]
EXPIRY_CHOICES = [("30 days", "30"), ("90 days", "90"), ("1 year", "365"), ("never", "")]


class SessionsScreen(_ListScreen):
    """The caller's sessions; ``username`` (an admin's choice on the users screen) or ``a`` for everyone's."""

    TITLE_TEXT = "Sessions"
    BINDINGS = [
        Binding("X", "revoke", "End session", id="sessions.revoke"),
        Binding("a", "toggle_all", "Everyone's / mine", id="sessions.all"),
    ]

    def __init__(self, username: str | None = None) -> None:
        super().__init__()
        self.username = username
        self.sessions: dict[str, SessionInfo] = {}

    def setup_columns(self, table: MistTable) -> None:
        table.add_column("", key="mark", width=1)
        table.add_column("User", key="user", width=24)
        table.add_column(Text("Opened", justify="right"), key="opened", width=7)
        table.add_column(Text("Last used", justify="right"), key="used", width=9)
        table.add_column(Text("Expires", justify="right"), key="expires", width=9)
        table.add_column("From", key="source", width=16)
        table.add_column("Client", key="client", width=28)

    async def fill(self, table: MistTable) -> None:
        assert self.mist.api is not None
        sessions = await self.mist.api.sessions.list(username=self.username)
        self.sessions = {str(s.id): s for s in sessions}
        now = self.mist.clock()
        table.clear()
        for info in sessions:
            user = Text(info.username, style="bold")
            if info.current:
                user.append("  this session", style="green")
            table.add_row(
                Text("●", style="green") if info.current else "",
                user,
                right(human_age(info.created_at, now)),
                right(human_age(info.last_used_at, now) if info.last_used_at else "—", "dim"),
                right(human_until(info.expires_at, now), "dim"),
                info.source or Text("—", style="dim"),
                Text(info.user_agent or "—", style="dim"),
                key=str(info.id),
            )
        me = self.mist.user.username if self.mist.user else None
        whose = (
            "everyone's"
            if self.username == "*"
            else "yours"
            if self.username in (None, me)
            else self.username
        )
        table.border_title = f"Sessions · {whose} · {len(sessions)}"

    def action_toggle_all(self) -> None:
        self._show_whose(None if self.username == "*" else "*")

    @api_work(exclusive=True, group="admin-load")
    async def _show_whose(self, username: str | None) -> None:
        # Only a list the daemon gave changes the view: a refusal leaves the screen as it was.
        previous, self.username = self.username, username
        try:
            await self.fill(self.table)
        except Exception:
            self.username = previous
            raise

    def action_revoke(self) -> None:
        key = self.table.selected_key
        info = self.sessions.get(key) if key else None
        if info is None:
            return
        now = self.mist.clock()
        where = f" from {info.source}" if info.source else ""
        client = f" ({info.user_agent})" if info.user_agent else ""
        if info.current:
            message = (
                f"This is the session you are using now{where}: ending it logs you out here, and you will "
                "have to log in again."
            )
        else:
            message = (
                f"{info.username}'s session opened {human_age(info.created_at, now)} ago{where}{client} stops "
                "working at once: that app will have to log in again."
            )

        def answered(yes: bool | None) -> None:
            if yes:
                self._revoke(info)

        self.app.push_screen(
            ConfirmDialog(f"End session {info.id} of {info.username}?", message, confirm_label="End session"),
            answered,
        )

    @api_work(group="sessions-revoke")
    async def _revoke(self, info: SessionInfo) -> None:
        assert self.mist.api is not None
        await self.mist.api.sessions.revoke(info.id)
        if info.current:
            self.mist.forget_session("You ended this session: log in again.")
            return
        self.mist.notify(f"Ended session {info.id} of {info.username}.")
        self.load()


class TokensScreen(_ListScreen):
    """API tokens for scripts and CI: the caller's, or everyone's (admins, ``a``)."""

    TITLE_TEXT = "API tokens"
    BINDINGS = [
        Binding("n", "create", "New token", id="tokens.create"),
        Binding("X", "revoke", "Revoke", id="tokens.revoke"),
        Binding("a", "toggle_all", "Everyone's / mine", id="tokens.all"),
    ]

    def __init__(self, *, everyone: bool = False) -> None:
        super().__init__()
        self.everyone = everyone
        self.tokens: dict[str, ApiToken] = {}

    def setup_columns(self, table: MistTable) -> None:
        table.add_column("Name", key="name", width=20)
        table.add_column("User", key="user", width=10)
        table.add_column("Scope", key="scope", width=7)
        table.add_column("Project", key="project", width=14)
        table.add_column(Text("Created", justify="right"), key="created", width=7)
        table.add_column(Text("Expires", justify="right"), key="expires", width=9)
        table.add_column(Text("Last used", justify="right"), key="used", width=9)
        table.add_column("State", key="state", width=9)

    async def fill(self, table: MistTable) -> None:
        assert self.mist.api is not None
        tokens = await self.mist.api.tokens.list(all=self.everyone)
        self.tokens = {str(t.id): t for t in tokens}
        now = self.mist.clock()
        selected = table.selected_key
        table.clear()
        for token in tokens:
            state = token_state(token, now)
            table.add_row(
                Text(token.name, style="bold" if state == "active" else "dim"),
                token.username,
                Text(token.scope, style=SCOPE_STYLES[token.scope]),
                token.project or Text("all projects", style="dim"),
                right(human_age(token.created_at, now)),
                right(human_until(token.expires_at, now) if state == "active" else "—", "dim"),
                right(human_age(token.last_used_at, now) if token.last_used_at else "never", "dim"),
                Text(state, style=STATE_STYLES[state]),
                key=str(token.id),
            )
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        active = sum(1 for t in tokens if token_state(t, now) == "active")
        whose = "everyone's" if self.everyone else "yours"
        table.border_title = f"API tokens · {whose} · {active} active of {len(tokens)}"
        table.border_subtitle = "" if tokens else "no tokens yet: n creates one"

    def action_toggle_all(self) -> None:
        self._show_everyones(not self.everyone)

    @api_work(exclusive=True, group="admin-load")
    async def _show_everyones(self, everyone: bool) -> None:
        previous, self.everyone = self.everyone, everyone
        try:
            await self.fill(self.table)
        except Exception:
            self.everyone = previous
            raise

    def action_create(self) -> None:
        self._create()

    @api_work(group="tokens-create")
    async def _create(self) -> None:
        projects = await project_names(self)

        async def create(values: dict[str, Any]) -> ApiTokenCreated:
            assert self.mist.api is not None
            name = values["name"].strip()
            if not name:
                raise InvalidInput("Name the token after what uses it, like ci-deploy.", field="name")
            days = values["expires_days"]
            return await self.mist.api.tokens.create(
                name,
                scope=values["scope"],
                project=values["project"] or None,
                expires_days=int(days) if days else None,
            )

        def done(created: ApiTokenCreated | None) -> None:
            if created is None:
                return
            self.load()
            info = created.info
            reach = f"project {info.project}" if info.project else "every project you can reach"
            until = f"expires {info.expires_at:%Y-%m-%d}" if info.expires_at else "never expires"
            self.app.push_screen(
                SecretDialog(
                    f"API token {info.name}",
                    f"Scope {info.scope}, {reach}; {until}. It acts as {info.username}.",
                    created.token,
                    hint="Use it as MIST_TOKEN=… in scripts and CI, or as `Authorization: Bearer …`.",
                )
            )

        self.app.push_screen(
            FormDialog(
                "New API token",
                [
                    FormField("name", "Name (what uses it)", placeholder="ci-deploy"),
                    FormField("scope", "Scope", "read", choices=SCOPE_CHOICES),
                    FormField(
                        "project",
                        "Project",
                        "",
                        choices=[("every project I can reach", "")] + [(p, p) for p in projects],
                    ),
                    FormField("expires_days", "Expires after", "90", choices=EXPIRY_CHOICES),
                ],
                submit=create,
                submit_label="Create token",
                note="The token acts as you, limited to its scope and project. Its secret is shown once.",
            ),
            done,
        )

    def action_revoke(self) -> None:
        key = self.table.selected_key
        token = self.tokens.get(key) if key else None
        if token is None:
            return
        if token.revoked_at is not None:
            self.mist.notify(f"The token {token.name} is already revoked.")
            return
        reach = f" on {token.project}" if token.project else ""
        message = (
            f"Whatever uses {token.name} ({token.username}, {token.scope}{reach}) is refused from now on. "
            "This cannot be undone: make a new token if it is still needed."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._revoke(token)

        self.app.push_screen(
            ConfirmDialog(f"Revoke the token {token.name}?", message, confirm_label="Revoke"), answered
        )

    @api_work(group="tokens-revoke")
    async def _revoke(self, token: ApiToken) -> None:
        assert self.mist.api is not None
        await self.mist.api.tokens.revoke(token.id)
        self.mist.notify(f"Revoked the token {token.name}.")
        self.load()


SCOPE_STYLES = {"read": "dim", "deploy": "yellow", "admin": "bold cyan"}
STATE_STYLES = {"active": "green", "expired": "yellow", "revoked": "red"}


def token_state(token: ApiToken, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"
