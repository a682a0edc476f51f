"""The audit log: who did what, as which role, from where, newest first; filtered by user, project,
action prefix and time, and exported (everything the filters match) as JSON lines."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Header, Input, Label, Static

from mist_core.errors import Conflict, InvalidInput
from mist_core.models import AuditEntry

from ..format import parse_since, printable_text, role_text, shown, utc_time
from ..widgets.footer import MistFooter
from ..widgets.table import MistTable
from .admin import _ListScreen
from .dialogs import PromptDialog

SHOWN = 300  # entries drawn; the export writes every match
EXPORT_PAGE = 500


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    project: str | None = None
    action: str | None = None
    since: datetime | None = None

    def query(self) -> dict[str, Any]:
        return {"actor": self.actor, "project": self.project, "action": self.action, "since": self.since}

    def describe(self) -> str:
        parts = [f"{k} {v}" for k, v in (("user", self.actor), ("project", self.project)) if v]
        if self.action:
            parts.append(f"action {self.action}*")
        if self.since:
            parts.append(f"since {utc_time(self.since)}")
        return ", ".join(parts)


def action_style(action: str) -> str:
    verb = action.rsplit(".", 1)[-1]
    if verb in ("delete", "cancel", "stop", "revoke", "remove", "login_failed", "totp_disable"):
        return "red"
    if verb in ("create", "add", "enable", "totp_enable"):
        return "green"
    return ""


def detail_text(detail: dict[str, object]) -> str:
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in detail.items())


class AuditScreen(_ListScreen):
    TITLE_TEXT = "Audit log"
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="audit.filter"),
        Binding("c", "clear_filters", "Clear filters", id="audit.clear_filters"),
        Binding("ctrl+s", "export", "Export", id="audit.export"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = AuditFilter()
        self.total = 0
        self.entries: dict[str, AuditEntry] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="audit-filters"):
            yield Label("User", classes="filter-label")
            yield Input(placeholder="anyone", id="f-actor", compact=True)
            yield Label("Project", classes="filter-label")
            yield Input(placeholder="any", id="f-project", compact=True)
            yield Label("Action", classes="filter-label")
            yield Input(placeholder="prefix: app. user.", id="f-action", compact=True)
            yield Label("Since", classes="filter-label")
            yield Input(placeholder="2h, 7d, 2026-01-10", id="f-since", compact=True)
        yield Static("", id="audit-filter-error")
        yield MistTable(id="list")
        yield Static("", id="audit-detail", markup=False)
        yield MistFooter()

    def setup_columns(self, table: MistTable) -> None:
        table.add_column("Time (UTC)", key="time", width=16)
        table.add_column("Who", key="who", width=12)
        table.add_column("As", key="role", width=13)
        table.add_column("From", key="source", width=15)
        table.add_column("Action", key="action", width=22)
        table.add_column("Project/app", key="target", width=24)

    def read_filter(self) -> AuditFilter | None:
        """The filter the fields say, or None after showing what is wrong with them."""

        def text(field: str) -> str | None:
            return self.query_one(f"#f-{field}", Input).value.strip() or None

        error = self.query_one("#audit-filter-error", Static)
        try:
            since = parse_since(self.query_one("#f-since", Input).value, self.mist.clock())
        except ValueError as exc:
            error.update(Text(f"✕ Since: {exc}", style="bold red"))
            error.add_class("-shown")
            return None
        error.update("")
        error.remove_class("-shown")
        return AuditFilter(actor=text("actor"), project=text("project"), action=text("action"), since=since)

    async def fill(self, table: MistTable) -> None:
        assert self.mist.api is not None
        page = await self.mist.api.audit.list(**self.filter.query(), limit=SHOWN)
        self.total = page.total
        self.entries = {str(e.id): e for e in page.items}
        table.clear()
        for entry in page.items:
            table.add_row(*self.cells(entry), key=str(entry.id))
        self.show_detail(page.items[0] if page.items else None)
        count = f"{len(page.items)} of {page.total}" if page.total > len(page.items) else f"{page.total}"
        title = f"Audit log · newest first · {count} {'entry' if page.total == 1 else 'entries'}"
        if described := self.filter.describe():
            title += f" · {described}"
        table.border_title = shown(title)  # the filter is what the user typed: never markup

    @staticmethod
    def cells(entry: AuditEntry) -> list[object]:
        target = "/".join(p for p in (entry.project, entry.app) if p)
        return [
            Text(utc_time(entry.ts), style="dim"),
            Text(entry.actor or "system", style="bold" if entry.actor else "italic dim"),
            role_text(entry.actor_role),
            Text(entry.source or "—", style="dim"),
            Text(entry.action, style=action_style(entry.action)),
            shown(target) if target else Text("—", style="dim"),
        ]

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key is not None else None
        self.show_detail(self.entries.get(key) if key else None)

    def show_detail(self, entry: AuditEntry | None) -> None:
        """The highlighted entry in full under the table: its before/after and other details."""
        panel = self.query_one("#audit-detail", Static)
        if entry is None:
            panel.update(Text("No entries match.", style="dim"))
            return
        who = entry.actor or "the system"
        if entry.actor_role:
            who += f" as {entry.actor_role}"
        if entry.source:
            who += f" from {entry.source}"
        target = "/".join(p for p in (entry.project, entry.app) if p)
        head = Text.assemble(
            (f"#{entry.id}  ", "dim"),
            (f"{utc_time(entry.ts)} UTC  ", "dim"),
            (entry.action, f"bold {action_style(entry.action)}"),
            f" on {target}" if target else "",
            f"  by {who}",
        )
        body = Text(detail_text(entry.detail) or "no details", style="" if entry.detail else "dim")
        # Details hold what users gave (names, messages, values): shown as text, control characters neutralised.
        panel.update(printable_text(Text("\n").join([head, body])))

    # ------------------------------------------------------------------------------------------ filters

    def action_filter(self) -> None:
        self.query_one("#f-actor", Input).focus()

    @on(Input.Submitted)
    def _apply(self) -> None:
        chosen = self.read_filter()
        if chosen is None:
            return
        self.filter = chosen
        self.table.focus()
        self.load()

    def action_clear_filters(self) -> None:
        for field in ("actor", "project", "action", "since"):
            self.query_one(f"#f-{field}", Input).value = ""
        self._apply()

    # ------------------------------------------------------------------------------------------ export

    def action_export(self) -> None:
        chosen = self.filter
        now = self.mist.clock()

        async def export(path_text: str) -> None:
            await self.export(chosen, path_text)

        def done(path: str | None) -> None:
            if path is not None:
                self.mist.notify(f"Wrote the audit log to {path}.")

        described = chosen.describe()
        self.app.push_screen(
            PromptDialog(
                "Export the audit log",
                label="File to write (JSON lines: one entry per line)",
                value=f"mist-audit-{now:%Y%m%d-%H%M%S}.jsonl",
                submit=export,
                submit_label="Export",
                note=(
                    f"Writes the {self.total} entries matching {described}"
                    if described
                    else f"Writes all {self.total} entries"
                )
                + f", newest first. A relative name is written in {Path.cwd()}.",
            ),
            done,
        )

    async def export(self, chosen: AuditFilter, path_text: str) -> int:
        """Write every entry ``chosen`` matches to ``path_text`` (newest first); refuses to overwrite."""
        assert self.mist.api is not None
        if not path_text.strip():
            raise InvalidInput("Give a file name, like audit.jsonl.", field="value")
        path = Path(path_text.strip()).expanduser()
        if path.exists():
            raise Conflict(f"{path} already exists: choose another name.", field="value")
        lines: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = await self.mist.api.audit.list(**chosen.query(), limit=EXPORT_PAGE, offset=offset)
            lines.extend(entry.model_dump_json() + "\n" for entry in page.items)
            offset = page.next_offset if page.items else None
        try:
            await asyncio.to_thread(_write_new, path, "".join(lines))
        except OSError as exc:
            raise InvalidInput(f"Cannot write {path}: {exc.strerror or exc}.", field="value") from exc
        return len(lines)


def _write_new(path: Path, text: str) -> None:
    with path.open("x", encoding="utf-8") as fh:
        fh.write(text)
