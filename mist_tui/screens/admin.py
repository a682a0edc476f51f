"""The base of the admin lists (users, sessions, tokens, audit) and the server settings screen (editable,
with errors in place)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input

from mist_core.models import Setting

from ..widgets.footer import MistFooter
from ..widgets.table import MistTable
from ..workers import api_work
from .dialogs import PromptDialog

if TYPE_CHECKING:
    from ..app import MistApp


class _ListScreen(Screen):
    """A table of things loaded by one worker; ``Esc`` leaves a field for the table, then goes back."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="admin.back"),
        Binding("ctrl+r", "reload", "Reload", id="admin.reload"),
    ]
    TITLE_TEXT = ""

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield MistTable(id="list")
        yield MistFooter()

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

    def reconnected(self) -> None:
        self.load()

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.table.focus()
        else:
            self.app.pop_screen()

    @api_work(exclusive=True, group="admin-load")
    async def load(self) -> None:
        await self.fill(self.table)

    async def fill(self, table: MistTable) -> None:
        raise NotImplementedError


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
