"""The admin lists: users, the audit log, and the server settings (editable, with errors in place)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from mist_core.models import Setting

from ..format import human_age, right
from ..widgets.table import MistTable
from ..workers import api_work
from .dialogs import PromptDialog

if TYPE_CHECKING:
    from ..app import MistApp

ROLE_STYLES = {"owner": "bold magenta", "admin": "bold cyan", "developer": "green", "viewer": "dim"}


class _ListScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="admin.back"),
        Binding("ctrl+r", "reload", "Reload", id="admin.reload"),
    ]
    TITLE_TEXT = ""

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield MistTable(id="list")
        yield Footer()

    @property
    def table(self) -> MistTable:
        return self.query_one("#list", MistTable)

    def on_mount(self) -> None:
        self.table.border_title = self.TITLE_TEXT
        self.setup_columns(self.table)
        self.table.focus()
        self.action_reload()

    def setup_columns(self, table: MistTable) -> None:
        raise NotImplementedError

    def action_reload(self) -> None:
        self.load()

    @api_work(exclusive=True, group="admin-load")
    async def load(self) -> None:
        await self.fill(self.table)

    async def fill(self, table: MistTable) -> None:
        raise NotImplementedError


class UsersScreen(_ListScreen):
    TITLE_TEXT = "Users"

    def setup_columns(self, table: MistTable) -> None:
        table.add_column("User", key="user", width=24)
        table.add_column("Role", key="role", width=12)
        table.add_column(Text("Since", justify="right"), key="since", width=8)

    async def fill(self, table: MistTable) -> None:
        assert self.mist.api is not None
        users = await self.mist.api.users.list()
        now = self.mist.clock()
        table.clear()
        for user in users:
            me = self.mist.user is not None and user.username == self.mist.user.username
            name = Text(user.username, style="bold")
            if me:
                name.append("  (you)", style="dim")
            table.add_row(
                name,
                Text(user.role, style=ROLE_STYLES.get(user.role, "")),
                right(human_age(user.created_at, now)),
                key=user.username,
            )
        table.border_title = f"Users · {len(users)}"


class AuditScreen(_ListScreen):
    TITLE_TEXT = "Audit log"

    def setup_columns(self, table: MistTable) -> None:
        table.add_column(Text("When", justify="right"), key="when", width=6)
        table.add_column("Who", key="who", width=10)
        table.add_column("Action", key="action", width=20)
        table.add_column("Target", key="target", width=22)
        table.add_column("Detail", key="detail", width=50)

    async def fill(self, table: MistTable) -> None:
        assert self.mist.api is not None
        page = await self.mist.api.audit.list(limit=200)
        now = self.mist.clock()
        table.clear()
        for entry in page.items:
            target = "/".join(p for p in (entry.project, entry.app) if p)
            detail = " ".join(
                f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in entry.detail.items()
            )
            verb = entry.action.split(".")[-1]
            style = "red" if verb in ("delete", "cancel", "stop") else "green" if verb == "create" else ""
            table.add_row(
                right(human_age(entry.ts, now)),
                Text(entry.actor or "system", style="bold" if entry.actor else "italic dim"),
                Text(entry.action, style=style),
                target or Text("—", style="dim"),
                Text(detail, style="dim"),
                key=str(entry.id),
            )
        table.border_title = f"Audit log · newest first · {page.total} entries"


class SettingsScreen(_ListScreen):
    TITLE_TEXT = "Settings"
    BINDINGS = [Binding("e", "edit", "Edit", id="settings.edit")]

    def __init__(self) -> None:
        super().__init__()
        self.settings: dict[str, Setting] = {}

    def setup_columns(self, table: MistTable) -> None:
        table.add_column("Setting", key="key", width=24)
        table.add_column("Value", key="value", width=20)
        table.add_column("Default", key="default", width=12)
        table.add_column("What it does", key="description", width=44)

    async def fill(self, table: MistTable) -> None:
        assert self.mist.api is not None
        settings = await self.mist.api.settings.list()
        self.settings = {s.key: s for s in settings}
        selected = table.selected_key
        table.clear()
        for s in settings:
            changed = s.value != s.default
            table.add_row(
                Text(s.key, style="bold"),
                Text(s.value, style="yellow" if changed else ""),
                Text(s.default or "—", style="dim"),
                Text(s.description, style="dim"),
                key=s.key,
            )
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        table.border_title = "Settings · Enter or e edits"

    @on(DataTable.RowSelected)
    def action_edit(self) -> None:
        key = self.table.selected_key
        if key is None or key not in self.settings:
            return
        setting = self.settings[key]

        async def save(value: str) -> None:
            assert self.mist.api is not None
            await self.mist.api.settings.set(key, value)

        def done(value: str | None) -> None:
            if value is not None:
                self.mist.notify(f"{key} = {value}")
                self.load()

        self.app.push_screen(
            PromptDialog(
                f"Change {key}",
                label=setting.description,
                value=setting.value,
                submit=save,
                submit_label="Save",
                note=f"Default: {setting.default or '(empty)'}",
            ),
            done,
        )
