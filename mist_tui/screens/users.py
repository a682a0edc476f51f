"""The users screen: every account with its role, email, two-factor state and last login; create an
account, invite someone with a one-time token, change a role, delete an account (its projects pass to
someone named in the confirmation)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding

from mist_core.errors import InvalidInput
from mist_core.models import InviteCreated, User

from ..format import human_age, right, role_text, utc_time
from ..widgets.table import MistTable
from ..workers import api_work
from .admin import _ListScreen
from .dialogs import FormDialog, FormField, SecretDialog

ROLE_CHOICES = [
    ("owner · everything, other owners included", "owner"),
    ("admin · accounts, settings and every project", "admin"),
    ("developer · new projects; deploy where a member", "developer"),
    ("viewer · look only", "viewer"),
]
PROJECT_ROLE_CHOICES = [
    ("admin · members and settings of the project", "admin"),
    ("developer · deploy, change apps and variables", "developer"),
    ("viewer · look only, no secret values", "viewer"),
]


async def project_names(screen: Any) -> list[str]:
    """The projects the caller can see, for the project choices of a form."""
    api = screen.app.api
    names: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = await api.projects.list(limit=500, offset=offset)
        names.extend(p.name for p in page.items)
        offset = page.next_offset
    return names


def two_factor_text(on: bool) -> Text:
    return Text("✓ on", style="green") if on else Text("off", style="dim")


class UsersScreen(_ListScreen):
    TITLE_TEXT = "Users"
    BINDINGS = [
        Binding("n", "create", "New user", id="users.create"),
        Binding("i", "invite", "Invite", id="users.invite"),
        Binding("r", "role", "Change role", id="users.role"),
        Binding("X", "delete", "Delete", id="users.delete"),
        Binding("s", "sessions", "Sessions", id="users.sessions"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[str, User] = {}

    def setup_columns(self, table: MistTable) -> None:
        table.add_column("User", key="user", width=22)
        table.add_column("Name", key="name", width=18)
        table.add_column("Role", key="role", width=10)
        table.add_column("Email", key="email", width=24)
        table.add_column("2FA", key="totp", width=5)
        table.add_column(Text("Last login", justify="right"), key="login", width=10)
        table.add_column(Text("Since", justify="right"), key="since", width=6)

    async def fill(self, table: MistTable) -> None:
        assert self.mist.api is not None
        users = await self.mist.api.users.list()
        self.users = {u.username: u for u in users}
        now = self.mist.clock()
        selected = table.selected_key
        table.clear()
        for user in users:
            name = Text(user.username, style="bold")
            if self.is_me(user.username):
                name.append("  (you)", style="dim")
            table.add_row(
                name,
                Text(user.full_name, style="dim"),
                role_text(user.role),
                user.email or Text("—", style="dim"),
                two_factor_text(user.totp_enabled),
                right(human_age(user.last_login_at, now) if user.last_login_at else "never", "dim"),
                right(human_age(user.created_at, now)),
                key=user.username,
            )
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        table.border_title = f"Users · {len(users)}"

    def is_me(self, username: str) -> bool:
        return self.mist.user is not None and self.mist.user.username == username

    def selected_user(self) -> User | None:
        key = self.table.selected_key
        return self.users.get(key) if key else None

    # ------------------------------------------------------------------------------------------ actions

    def action_create(self) -> None:
        async def create(values: dict[str, Any]) -> User:
            assert self.mist.api is not None
            if not values["username"].strip():
                raise InvalidInput("Choose a username.", field="username")
            return await self.mist.api.users.create(
                values["username"].strip(),
                values["password"],
                role=values["role"],
                email=values["email"].strip() or None,
            )

        def done(user: User | None) -> None:
            if user is not None:
                self.mist.notify(f"Created the account {user.username} ({user.role}).")
                self.load()

        self.app.push_screen(
            FormDialog(
                "New user",
                [
                    FormField("username", "Username", placeholder="lowercase letters, digits and -"),
                    FormField("password", "Password (at least 12 characters)", password=True),
                    FormField("role", "Role on this server", "developer", choices=ROLE_CHOICES),
                    FormField("email", "Email (optional)", placeholder="name@example.com"),
                ],
                submit=create,
                submit_label="Create",
                note="They can change the password later (Account screen or `mist passwd`).",
            ),
            done,
        )

    def action_invite(self) -> None:
        self._invite()

    @api_work(group="users-invite")
    async def _invite(self) -> None:
        projects = await project_names(self)

        async def invite(values: dict[str, Any]) -> InviteCreated:
            assert self.mist.api is not None
            hours = values["expires_hours"].strip() or "72"
            if not hours.isdigit() or not 1 <= int(hours) <= 24 * 30:
                raise InvalidInput("Give the validity in hours, from 1 to 720.", field="expires_hours")
            project = values["project"] or None
            return await self.mist.api.invites.create(
                username=values["username"].strip() or None,
                email=values["email"].strip() or None,
                role=values["role"],
                project=project,
                project_role=values["project_role"] if project else None,
                expires_hours=int(hours),
            )

        def done(created: InviteCreated | None) -> None:
            if created is None:
                return
            invite = created.invite
            who = invite.username or invite.email or "them"
            joins = f", joins {invite.project} as {invite.project_role}" if invite.project else ""
            self.app.push_screen(
                SecretDialog(
                    f"Invitation for {who}",
                    f"Role {invite.role}{joins}. Valid once, until {utc_time(invite.expires_at)} UTC. "
                    f"Give {who} this token:",
                    created.token,
                    hint="They create their account with `mist invite accept` and this token.",
                )
            )

        self.app.push_screen(
            FormDialog(
                "Invite someone",
                [
                    FormField("username", "Their username (or leave empty and give an email)"),
                    FormField("email", "Their email", placeholder="name@example.com"),
                    FormField("role", "Role on this server", "developer", choices=ROLE_CHOICES),
                    FormField(
                        "project",
                        "Also join a project",
                        "",
                        choices=[("no project", "")] + [(p, p) for p in projects],
                    ),
                    FormField(
                        "project_role", "Role in that project", "developer", choices=PROJECT_ROLE_CHOICES
                    ),
                    FormField("expires_hours", "Valid for (hours)", "72"),
                ],
                submit=invite,
                submit_label="Create invitation",
                compact=True,
            ),
            done,
        )

    def action_role(self) -> None:
        user = self.selected_user()
        if user is None:
            return

        async def change(values: dict[str, Any]) -> User:
            assert self.mist.api is not None
            return await self.mist.api.users.set_role(user.username, values["role"])

        def done(changed: User | None) -> None:
            if changed is not None:
                self.mist.notify(f"{changed.username} is now {changed.role}.")
                self.load()

        self.app.push_screen(
            FormDialog(
                f"Change the role of {user.username}",
                [FormField("role", "Role on this server", user.role, choices=ROLE_CHOICES)],
                submit=change,
                submit_label="Change role",
                note=f"Now {user.role}. Project roles are set per project (Members, in the command palette).",
            ),
            done,
        )

    def action_delete(self) -> None:
        user = self.selected_user()
        if user is not None:
            self._delete(user)

    @api_work(group="users-delete")
    async def _delete(self, user: User) -> None:
        assert self.mist.api is not None
        page = await self.mist.api.projects.list(limit=500)
        owned = [p.name for p in page.items if p.owner == user.username]
        others = [u for u in self.users if u != user.username]
        me = self.mist.user.username if self.mist.user else None
        default = me if me in others else (others[0] if others else "")
        name = user.username

        async def delete(values: dict[str, Any]) -> str:
            assert self.mist.api is not None
            await self.mist.api.users.delete(name, reassign_to=values["reassign_to"] or None)
            return values["reassign_to"]

        def done(heir: str | None) -> None:
            if heir is not None:
                moved = f"; {_projects(owned)} now belong to {heir}" if owned else ""
                self.mist.notify(f"Deleted the account {name}{moved}.")
                self.load()

        self.app.push_screen(
            FormDialog(
                f"Delete the account {name}?",
                [
                    FormField(
                        "reassign_to",
                        f"{name}'s projects pass to",
                        default,
                        choices=[(u + ("  (you)" if u == me else ""), u) for u in others],
                    )
                ],
                submit=delete,
                submit_label=f"Delete {name}",
                note=_delete_note(name, owned),
                danger=True,
            ),
            done,
        )

    def action_sessions(self) -> None:
        from .sessions import SessionsScreen

        user = self.selected_user()
        self.app.push_screen(SessionsScreen(username=user.username if user else None))


def _projects(names: list[str]) -> str:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{len(names)} project{'s' if len(names) != 1 else ''} ({shown})"


def _delete_note(name: str, owned: list[str]) -> str:
    owns = (
        f"{name} owns {_projects(owned)}: they pass to the account chosen below."
        if owned
        else (f"{name} owns no projects.")
    )
    return (
        f"{name} can no longer log in; their sessions and API tokens stop working at once. "
        f"This cannot be undone.\n{owns}"
    )
