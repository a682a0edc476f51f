"""The members of one project with their project roles: add someone, change a role, remove someone after
saying what they lose. Opened from the command palette for the dashboard's selected project."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from mist_core.errors import InvalidInput
from mist_core.models import Member

from ..format import human_age, right, role_text
from ..widgets.footer import MistFooter
from ..widgets.table import MistTable
from ..workers import api_work
from .dialogs import ConfirmDialog, FormDialog, FormField
from .users import PROJECT_ROLE_CHOICES

if TYPE_CHECKING:
    from ..app import MistApp


class MembersDialog(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="members.close"),
        Binding("a", "add", "Add member", id="members.add"),
        Binding("r", "role", "Change role", id="members.role"),
        Binding("d", "remove", "Remove", id="members.remove"),
    ]

    def __init__(self, project: str) -> None:
        super().__init__()
        self.project = project
        self.members: dict[str, Member] = {}

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -members"):
            yield Label(f"Members of {self.project}", classes="dialog-title")
            yield Static(
                "Instance owners and admins can do everything in every project; everyone else sees a project "
                "only as its member.",
                classes="dialog-message",
                markup=False,
            )
            yield MistTable(id="members")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Add member", id="add")
                yield Button("Close", id="close", variant="primary")
        yield MistFooter()

    @property
    def table(self) -> MistTable:
        return self.query_one("#members", MistTable)

    def on_mount(self) -> None:
        table = self.table
        table.add_column("Member", key="user", width=22)
        table.add_column("Role", key="role", width=10)
        table.add_column(Text("Added", justify="right"), key="added", width=6)
        table.focus()
        self.load()

    @api_work(exclusive=True, group="members-load")
    async def load(self) -> None:
        assert self.mist.api is not None
        members = await self.mist.api.members.list(self.project)
        self.members = {m.username: m for m in members}
        now = self.mist.clock()
        table = self.table
        selected = table.selected_key
        table.clear()
        for member in members:
            name = Text(member.username, style="bold")
            if self.mist.user is not None and member.username == self.mist.user.username:
                name.append("  (you)", style="dim")
            table.add_row(
                name,
                role_text(member.role),
                right(human_age(member.added_at, now)),
                key=member.username,
            )
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        table.border_title = f"{len(members)} member{'s' if len(members) != 1 else ''}"

    def selected(self) -> Member | None:
        key = self.table.selected_key
        return self.members.get(key) if key else None

    def action_add(self) -> None:
        async def add(values: dict[str, Any]) -> Member:
            assert self.mist.api is not None
            username = values["username"].strip()
            if not username:
                raise InvalidInput("Give the username of an existing account.", field="username")
            return await self.mist.api.members.add(self.project, username, values["role"])

        def done(member: Member | None) -> None:
            if member is not None:
                self.mist.notify(f"{member.username} is now {member.role} of {self.project}.")
                self.load()

        self.app.push_screen(
            FormDialog(
                f"Add a member to {self.project}",
                [
                    FormField("username", "Username", placeholder="an existing account"),
                    FormField("role", "Role in the project", "developer", choices=PROJECT_ROLE_CHOICES),
                ],
                submit=add,
                submit_label="Add",
                note="Someone without an account yet: invite them from the Users screen.",
            ),
            done,
        )

    def action_role(self) -> None:
        member = self.selected()
        if member is None:
            return

        async def change(values: dict[str, Any]) -> Member:
            assert self.mist.api is not None
            return await self.mist.api.members.add(self.project, member.username, values["role"])

        def done(changed: Member | None) -> None:
            if changed is not None:
                self.mist.notify(f"{changed.username} is now {changed.role} of {self.project}.")
                self.load()

        self.app.push_screen(
            FormDialog(
                f"Role of {member.username} in {self.project}",
                [FormField("role", "Role in the project", member.role, choices=PROJECT_ROLE_CHOICES)],
                submit=change,
                submit_label="Change role",
            ),
            done,
        )

    def action_remove(self) -> None:
        member = self.selected()
        if member is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._remove(member)

        self.app.push_screen(
            ConfirmDialog(
                f"Remove {member.username} from {self.project}?",
                f"{member.username} ({member.role}) no longer sees {self.project} or its apps, unless they are "
                "an instance admin. Their account stays.",
                confirm_label="Remove",
            ),
            answered,
        )

    @api_work(group="members-remove")
    async def _remove(self, member: Member) -> None:
        assert self.mist.api is not None
        await self.mist.api.members.remove(self.project, member.username)
        self.mist.notify(f"Removed {member.username} from {self.project}.")
        self.load()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self.action_add()
        elif event.button.id == "close":
            self.action_close()

    def action_close(self) -> None:
        self.dismiss(None)
