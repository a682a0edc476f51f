"""Managed databases: the list of every database the user sees (engine, version, state, usage, links, the last
backup and whether it was verified), the form that creates one, and one database's screen: how apps reach it
(the URL hidden until revealed, which the server records), its life cycle, its links to apps, its logs, its CPU
and memory, and its backups."""

from __future__ import annotations

from collections import deque
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Label, Select, Static, TabbedContent, TabPane

from mist_core.errors import InvalidInput
from mist_core.models import MASK, Backup, Database, DatabaseSpec, MetricsSample
from mist_core.services import ENGINES

from ..format import counted, cpu_text, human_age, human_bytes, memory_text, parse_size, shown
from ..widgets.clipboard import copy
from ..widgets.footer import MistFooter
from ..widgets.log_panel import LogPanel
from ..widgets.log_view import LogEntry
from ..widgets.table import MistTable
from ..workers import api_work
from .backups import BackupsPane, verified_text
from .dialogs import ConfirmDialog, FormDialog, FormField
from .metrics import HISTORY, Graph

if TYPE_CHECKING:
    from ..app import MistApp

# The subject kind a database's backups are listed under (a server that backs up volumes only refuses it).
BACKUP_KIND = "database"
POLL = 5.0  # seconds between reloads of a list of databases (they announce no events)
DB_STATUS_STYLES = {
    "running": "bold green",
    "starting": "bold yellow",
    "unhealthy": "bold red",
    "stopped": "dim",
    "missing": "bold red",
}
DB_STATUS_ICONS = {"running": "●", "starting": "◐", "unhealthy": "✕", "stopped": "○", "missing": "?"}


def db_status_text(status: str) -> Text:
    """A database's state in its colour: running green, starting yellow, unhealthy and missing red."""
    return Text(f"{DB_STATUS_ICONS.get(status, '●')} {status}", style=DB_STATUS_STYLES.get(status, ""))


def engine_label(db: Database) -> str:
    return f"{db.engine} {db.version}"


def usage_by_container(sample: MetricsSample | None) -> dict[str, tuple[float, int, int | None]]:
    if sample is None:
        return {}
    return {c.name: (c.cpu_percent, c.memory_bytes, c.memory_limit) for c in sample.containers}


async def last_backups(mist: MistApp, databases: list[Database]) -> tuple[dict[str, Backup], str | None]:
    """The newest backup of each database (by ``project/name``), one call per project; when the server does
    not back up databases, no backups and its reason."""
    assert mist.api is not None
    found: dict[str, Backup] = {}
    for project in sorted({db.project for db in databases}):
        try:
            page = await mist.api.backups.list(project, kind=BACKUP_KIND, limit=100)
        except InvalidInput as error:
            if error.field == "kind":
                return {}, error.message
            raise
        for backup in page.items:  # newest first
            found.setdefault(f"{backup.project}/{backup.name}", backup)
    return found, None


def backup_cells(backup: Backup | None, refusal: str | None, now: Any) -> tuple[Text, Text]:
    if refusal is not None:
        return Text("—", style="dim"), Text("—", style="dim")
    if backup is None:
        return Text("none yet", style="dim italic"), Text("—", style="dim")
    taken = Text(human_age(backup.started_at, now))
    if backup.state != "success":
        taken.append(f" {backup.state}", style="bold red" if backup.state == "failed" else "yellow")
    return taken, verified_text(backup, now)


# ---------------------------------------------------------------------------------------------- creating


class DatabaseForm(FormDialog):
    """The new-database form: the versions offered follow the engine chosen, and Redis's persistence choice
    shows only for Redis."""

    def on_mount(self) -> None:
        self._engine_changed()

    @on(Select.Changed, "#field-engine")
    def _engine_changed(self) -> None:
        engine = ENGINES.get(str(self.query_one("#field-engine", Select).value))
        if engine is None:
            return
        versions = self.query_one("#field-version", Select)
        versions.set_options(
            [(f"{v} (default)" if v == engine.default_version else v, v) for v in engine.versions]
        )
        versions.value = engine.default_version
        redis = engine.name == "redis"
        for selector in ("#label-persistence", "#field-persistence"):
            self.query_one(selector).display = redis


def new_database(mist: MistApp, project: str | None, done: Any = None) -> None:
    """A new database in ``project`` (the field can be changed) → ``databases.create``; the core's objections
    appear under the field they name."""

    async def submit(values: dict[str, Any]) -> Database:
        assert mist.api is not None
        project_name = values["project"].strip()
        name = values["name"].strip()
        if not project_name:
            raise InvalidInput("Name the project the database belongs to, e.g. shop.", field="project")
        if not name:
            raise InvalidInput("Give the database a name, e.g. main.", field="name")
        engine = str(values["engine"])
        public = values["public_port"].strip()
        if public and not public.isdigit():
            raise InvalidInput(
                f"public port {public!r} is not a number: give a port between 1024 and 65535, or leave it empty",
                field="public_port",
            )
        spec = DatabaseSpec(
            engine=engine,  # type: ignore[arg-type]
            version=str(values["version"]) if isinstance(values["version"], str) else None,
            persistence=str(values["persistence"]) if engine == "redis" else None,  # type: ignore[arg-type]
            memory=parse_size(values["memory"]),
            public_port=int(public) if public else None,
        )
        return await mist.api.databases.create(f"{project_name}/{name}", spec)

    def created(db: Database | None) -> None:
        if isinstance(db, Database):
            mist.notify(f"Created {db.ref} ({engine_label(db)}): {db.status}. L links it to an app.")
            if done is not None:
                done(db)

    first = next(iter(ENGINES.values()))
    mist.push_screen(
        DatabaseForm(
            "New database",
            [
                FormField("project", "Project", project or "", placeholder="an existing project"),
                FormField("name", "Name", placeholder="lowercase letters, digits and '-', e.g. main"),
                FormField(
                    "engine", "Engine", first.name, choices=[(e.title, e.name) for e in ENGINES.values()]
                ),
                FormField(
                    "version", "Version", first.default_version, choices=[(v, v) for v in first.versions]
                ),
                FormField(
                    "persistence",
                    "Persistence",
                    "rdb",
                    choices=[
                        ("rdb: snapshots", "rdb"),
                        ("aof: an append-only file", "aof"),
                        ("none: memory only", "none"),
                    ],
                ),
                FormField("memory", "Memory limit (optional)", placeholder="512m, 1g; empty: none"),
                FormField(
                    "public_port",
                    "Public port (optional; off: only the project's apps reach it)",
                    placeholder="empty",
                ),
            ],
            submit=submit,
            submit_label="Create database",
            aliases={"database": "name"},
            compact=True,
        ),
        created,
    )


# ---------------------------------------------------------------------------------------------- the list


class DatabasesScreen(Screen):
    """Every database the user sees, by project."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="databases.back"),
        Binding("n", "new", "New database", id="databases.new"),
        Binding("b", "backups", "Project backups", show=False, id="databases.backups"),
        Binding("y", "copy", "Copy name", show=False, id="databases.copy"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="databases.reload"),
    ]

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project  # the project to create in first (the dashboard's selected one)
        self.databases: dict[str, Database] = {}
        self.backups: dict[str, Backup] = {}
        self.backup_refusal: str | None = None
        self.sample: MetricsSample | None = None
        self.loaded = False

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield MistTable(id="databases-table")
        yield MistFooter()

    @property
    def table(self) -> MistTable:
        return self.query_one("#databases-table", MistTable)

    def on_mount(self) -> None:
        table = self.table
        # At 80 columns the usage and the links give way; the state and the backups stay.
        narrow = self.app.size.width < 104
        table.add_column("Project", key="project", width=10)
        table.add_column("Database", key="name", width=12)
        table.add_column("Engine", key="engine", width=13)
        table.add_column("Status", key="status", width=11)
        if not narrow:
            table.add_column(Text("CPU", justify="right"), key="cpu", width=6)
            table.add_column(Text("Memory", justify="right"), key="memory", width=10)
            table.add_column("Linked to", key="links", width=12)
        table.add_column("Last backup", key="backup", width=11)
        table.add_column("Verified", key="verified", width=10)
        table.border_title = "Databases"
        table.focus()
        self.load()
        self.follow_metrics()
        self.set_interval(POLL, self.load)

    @api_work(exclusive=True, group="databases-load")
    async def load(self) -> None:
        assert self.mist.api is not None
        databases: list[Database] = []
        offset: int | None = 0
        while offset is not None:
            page = await self.mist.api.databases.list(limit=100, offset=offset)
            databases += page.items
            offset = page.next_offset
        self.backups, self.backup_refusal = await last_backups(self.mist, databases)
        self.databases = {db.ref: db for db in databases}
        self.loaded = True
        self.show()

    @api_work(exclusive=True, group="databases-metrics")
    async def follow_metrics(self) -> None:
        assert self.mist.api is not None
        async for sample in self.mist.api.metrics.stream():
            self.sample = sample
            if self.loaded:
                self.show()
        self.mist.stream_ended()

    def reconnected(self) -> None:
        self.load()
        self.follow_metrics()

    def show(self) -> None:
        table = self.table
        now = self.mist.clock()
        usage = usage_by_container(self.sample)
        keys = [c.key.value for c in table.columns.values()]
        selected = table.selected_key
        with self.app.batch_update():
            table.clear()
            for db in self.databases.values():
                cpu, mem, limit = usage.get(db.container_name, (None, None, None))
                backup, verified = backup_cells(self.backups.get(db.ref), self.backup_refusal, now)
                cells: dict[str, object] = {
                    "project": Text(db.project, style="bold"),
                    "name": shown(db.name),
                    "engine": Text(engine_label(db)),
                    "status": db_status_text(db.status),
                    "cpu": cpu_text(cpu),
                    "memory": memory_text(mem, limit),
                    "links": shown(
                        ", ".join(a.split("/", 1)[1] for a in db.linked_apps) or "—",
                        "" if db.linked_apps else "dim",
                    ),  # fmt: skip
                    "backup": backup,
                    "verified": verified,
                }
                table.add_row(*(cells[str(k)] for k in keys), key=db.ref)
            if selected is not None and selected in table.rows:
                table.move_cursor(row=table.get_row_index(selected), animate=False)
        if not self.databases:
            table.border_subtitle = "no databases yet: n creates one"
        else:
            parts = [counted(len(self.databases), "database")]
            running = sum(1 for db in self.databases.values() if db.status == "running")
            parts.append(f"{running} running")
            if self.backup_refusal is not None:
                parts.append("this server backs up volumes only")
            table.border_subtitle = " · ".join(parts)

    def selected_project(self) -> str | None:
        key = self.table.selected_key
        return key.split("/", 1)[0] if key else self.project

    @on(DataTable.RowSelected, "#databases-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value in self.databases:
            self.app.push_screen(DatabaseScreen(str(event.row_key.value)))

    def action_new(self) -> None:
        def created(db: Database) -> None:
            self.databases[db.ref] = db
            self.show()
            self.table.move_cursor(row=self.table.get_row_index(db.ref), animate=False)
            self.load()

        new_database(self.mist, self.selected_project(), created)

    def action_backups(self) -> None:
        from .backups import BackupsScreen

        project = self.selected_project()
        if project:
            self.app.push_screen(BackupsScreen(project))

    def action_copy(self) -> None:
        key = self.table.selected_key
        if key in self.databases:
            copy(self, str(key), "the database's name")

    def action_reload(self) -> None:
        self.load()


# ---------------------------------------------------------------------------------------------- one database


class DatabaseScreen(Screen):
    """One database: Overview (connection, links), Logs, Metrics, Backups."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="database.back"),
        Binding("r", "reveal", "Reveal URL", id="database.reveal"),
        Binding("y", "copy", "Copy URL", id="database.copy"),
        Binding("S", "stop_start", "Stop/Start", id="database.stop_start"),
        Binding("R", "restart", "Restart", id="database.restart"),
        Binding("L", "link", "Link app", id="database.link"),
        Binding("U", "unlink", "Unlink app", id="database.unlink"),
        Binding("X", "delete", "Delete", id="database.delete"),
        Binding("1", "tab('overview')", "Overview", show=False, id="database.tab_overview"),
        Binding("2", "tab('logs')", "Logs", show=False, id="database.tab_logs"),
        Binding("3", "tab('metrics')", "Metrics", show=False, id="database.tab_metrics"),
        Binding("4", "tab('backups')", "Backups", show=False, id="database.tab_backups"),
    ]

    def __init__(self, db_ref: str, *, tab: str = "overview") -> None:
        super().__init__()
        self.db_ref = db_ref
        self.project, _, self.db_name = db_ref.partition("/")
        self.initial_tab = tab
        self.current: Database | None = None
        self.url: str | None = None  # the connection URL once revealed
        self.samples: deque[MetricsSample] = deque(maxlen=HISTORY)
        self.busy = ""  # the life-cycle call under way ("stopping"...), shown in the title
        self._logs_started = False

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(self.db_ref, style="bold"), id="app-title")
        with TabbedContent(initial=self.initial_tab, id="app-tabs"):
            with TabPane("Overview", id="overview"):
                with VerticalScroll():
                    yield Static(id="db-facts")
                    yield Label("Linked apps", classes="section-title")
                    yield MistTable(id="db-links", zebra=False)
            with TabPane("Logs", id="logs"):
                yield LogPanel(
                    cap=self.mist.config.log_buffer_lines,
                    range_choices=True,
                    title=f"{self.db_ref} · server output",
                    id="db-logs",
                )
            with TabPane("Metrics", id="metrics"):
                with Horizontal(id="db-metrics"):
                    yield Graph("CPU", id="g-db-cpu")
                    yield Graph("Memory", id="g-db-mem")
            with TabPane("Backups", id="backups"):
                yield BackupsPane(self.project, BACKUP_KIND, self.db_name, id="db-backups")
        yield MistFooter()

    def on_mount(self) -> None:
        links = self.query_one("#db-links", MistTable)
        links.add_column("App", key="app", width=28)
        links.add_column("Variables", key="variables", width=40)
        self.load()
        self.follow_metrics()
        if self.initial_tab == "logs":
            self._start_logs()

    # ------------------------------------------------------------------------------------------ data

    @api_work(exclusive=True, group="database-load")
    async def load(self) -> None:
        assert self.mist.api is not None
        self.current = await self.mist.api.databases.get(self.db_ref)
        self._show()

    @api_work(exclusive=True, group="database-metrics")
    async def follow_metrics(self) -> None:
        assert self.mist.api is not None
        history = await self.mist.api.metrics.history(seconds=HISTORY * 5)
        self.samples.extend(history)
        self._draw_metrics()
        async for sample in self.mist.api.metrics.stream():
            if self.samples and sample.system.ts <= self.samples[-1].system.ts:
                continue
            self.samples.append(sample)
            self._draw_metrics()
            if self.current is not None:
                self._show_facts()
        self.mist.stream_ended()

    def reconnected(self) -> None:
        self.load()
        self.follow_metrics()
        self.query_one(BackupsPane).load()
        if self._logs_started:
            tail, since = self.query_one("#db-logs", LogPanel).tail_and_since()
            self.stream_logs(tail, since)

    def _usage(self) -> tuple[float | None, int | None, int | None]:
        if self.current is None or not self.samples:
            return None, None, None
        return usage_by_container(self.samples[-1]).get(self.current.container_name, (None, None, None))

    def _show(self) -> None:
        db = self.current
        assert db is not None
        title = Text()
        title.append(f" {db.project}/", style="dim")
        title.append(db.name, style="bold")
        title.append("   ")
        title.append_text(db_status_text(db.status))
        title.append(f"   {engine_label(db)}", style="bold")
        if self.busy:
            title.append(f"   {self.busy}…", style="yellow")
        self.query_one("#app-title", Static).update(title)
        self._show_facts()
        links = self.query_one("#db-links", MistTable)
        links.clear()
        prefix = {"redis": "REDIS", "mongo": "MONGO"}.get(db.engine, "DATABASE")
        for app in db.linked_apps:
            links.add_row(shown(app), Text(f"{prefix}_URL, _HOST, _PORT, _USER, _PASSWORD, _NAME", style="dim"),
                          key=app)  # fmt: skip
        links.border_title = (
            f"{counted(len(db.linked_apps), 'app')} · L links one, U unlinks the selected one"
            if db.linked_apps
            else "no app linked: L links one"
        )

    def _show_facts(self) -> None:
        db = self.current
        assert db is not None
        cpu, mem, limit = self._usage()
        mem_cell = Text("—", style="dim") if mem is None else memory_text(mem, limit)
        mem_cell.justify = "left"
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="dim", justify="right")
        facts.add_column()
        facts.add_column(style="dim", justify="right")
        facts.add_column()
        url = (
            shown(self.url, style="yellow")
            if self.url is not None
            else Text.assemble((MASK, "dim"), ("  r reveals it", "dim italic"))
        )
        pairs: list[tuple[str, object]] = [
            ("host", shown(db.host)),
            ("engine", Text(engine_label(db))),
            ("port", str(db.port)),
            ("image", shown(db.image)),
            ("user", shown(db.user)),
            ("volume", shown(db.volume)),
            ("database", shown(db.database)),
            ("restart", shown(db.restart)),
            (
                "public",
                Text(f"0.0.0.0:{db.public_port}", style="bold yellow")
                if db.public_port
                else Text("no (the project's apps only)", style="dim"),
            ),
            (
                "limits",
                f"{human_bytes(db.memory) if db.memory else 'no memory limit'}, {db.cpus or 'no'} cpus",
            ),
            ("cpu", Text("—", style="dim") if cpu is None else Text(f"{cpu:.1f}%")),
            ("memory", mem_cell),
        ]
        if db.persistence:
            pairs.append(("persistence", db.persistence))
        # Two facts a line where they fit; at 80 columns one, so the host name is never cut.
        per_line = 2 if self.app.size.width >= 104 else 1
        if per_line == 1:
            facts = Table.grid(padding=(0, 2))
            facts.add_column(style="dim", justify="right")
            facts.add_column()
        for i in range(0, len(pairs), per_line):
            row: list[Any] = []
            for label, value in pairs[i : i + per_line]:
                row += [label, value]
            facts.add_row(*row, *([""] * (2 * per_line - len(row))))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", justify="right")
        grid.add_column()
        grid.add_row("url", url)
        self.query_one("#db-facts", Static).update(Group(facts, Text(""), grid))

    def _draw_metrics(self) -> None:
        if self.current is None or not self.samples:
            return
        cpu_graph = self.query_one("#g-db-cpu", Graph)
        mem_graph = self.query_one("#g-db-mem", Graph)
        cpu_graph.reset()
        mem_graph.reset()
        host = self.samples[-1].system
        cpu_ceiling = 100.0 * max(1, host.cpu_count)
        cpu = mem = 0.0
        limit: int | None = None
        for sample in self.samples:
            cpu, mem_bytes, limit = usage_by_container(sample).get(
                self.current.container_name, (0.0, 0, None)
            )
            mem = float(mem_bytes)
            cpu_graph.push(cpu, "", refresh=False, ceiling=cpu_ceiling)
            mem_graph.push(mem, "", refresh=False, ceiling=float(limit or host.memory_total))
        cpu_graph.redraw(f"{cpu:.1f}%", f"0–{cpu_ceiling:.0f}% ({host.cpu_count} cores)")
        mem_graph.redraw(
            f"{human_bytes(mem)} of {human_bytes(limit)}" if limit else human_bytes(mem),
            f"0–{human_bytes(limit)} limit" if limit else f"0–{human_bytes(host.memory_total)} host",
        )
        span = (host.ts - self.samples[0].system.ts).total_seconds()
        cpu_graph.show_span(span)
        mem_graph.show_span(span)

    def tick(self) -> None:
        if self.query_one(TabbedContent).active == "backups":
            self.query_one(BackupsPane).tick()

    # ------------------------------------------------------------------------------------------ logs

    def _start_logs(self) -> None:
        if not self._logs_started:
            self._logs_started = True
            tail, since = self.query_one("#db-logs", LogPanel).tail_and_since()
            self.stream_logs(tail, since)

    @api_work(exclusive=True, group="database-logs")
    async def stream_logs(self, tail: int | None, since: timedelta | None) -> None:
        assert self.mist.api is not None
        view = self.query_one("#db-logs", LogPanel).view
        view.clear()
        start = self.mist.clock() - since if since else None
        async for line in self.mist.api.databases.logs(self.db_ref, follow=True, tail=tail, since=start):
            view.write(LogEntry(ts=line.ts, text=line.text, source=line.source, stream=line.stream))

    @on(LogPanel.RangeChanged, "#db-logs")
    def _range_changed(self, event: LogPanel.RangeChanged) -> None:
        self.stream_logs(event.tail, event.since)

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id
        if pane == "overview":
            self.query_one("#db-links", MistTable).focus()
        elif pane == "logs":
            self._start_logs()
            self.query_one("#db-logs", LogPanel).view.focus()
        elif pane == "metrics":
            self._draw_metrics()
        elif pane == "backups":
            self.query_one("#backups-table", MistTable).focus()
        self.refresh_bindings()

    def action_tab(self, tab: str) -> None:
        self.set_focus(None)
        self.query_one(TabbedContent).active = tab

    # ------------------------------------------------------------------------------------------ the URL

    def action_reveal(self) -> None:
        if self.url is not None:
            self.url = None
            self._show_facts()
            return
        self._reveal()

    @api_work(exclusive=True, group="database-url")
    async def _reveal(self, then_copy: bool = False) -> None:
        assert self.mist.api is not None
        self.url = await self.mist.api.databases.url(self.db_ref)
        if self.current is not None:
            self._show_facts()
        if then_copy:
            self.action_copy()

    def action_copy(self) -> None:
        """The connection URL, once revealed (the notification names it, without the password)."""
        if self.url is None:
            self.mist.notify(
                "The URL holds the password: r reveals it, then y copies it.", severity="warning"
            )
            return
        self.app.copy_to_clipboard(self.url)
        self.mist.notify(f"Copied the connection URL of {self.db_ref}.", timeout=3)

    # ------------------------------------------------------------------------------------------ life cycle

    def action_stop_start(self) -> None:
        db = self.current
        if db is None:
            return
        if db.status in ("running", "starting", "unhealthy"):
            linked = (
                f" {', '.join(db.linked_apps)} lose their connection until it is started again."
                if db.linked_apps
                else ""
            )
            self.app.push_screen(
                ConfirmDialog(
                    f"Stop {db.ref}",
                    f"Stop the database {db.ref}? The server gets at least 30 seconds to write its data out; "
                    f"the data stays on its volume.{linked}",
                    confirm_label="Stop",
                ),
                lambda yes: self._lifecycle("stop") if yes else None,
            )
        else:
            self._lifecycle("start")

    def action_restart(self) -> None:
        if self.current is not None:
            self._lifecycle("restart")

    @api_work(exclusive=True, group="database-lifecycle")
    async def _lifecycle(self, verb: str) -> None:
        assert self.mist.api is not None
        self.busy = {"stop": "stopping", "start": "starting", "restart": "restarting"}[verb]
        if self.current is not None:
            self._show()
        try:
            self.current = await getattr(self.mist.api.databases, verb)(self.db_ref)
        finally:
            self.busy = ""
        self.mist.notify(f"{self.db_ref}: {verb} done ({self.current.status}).")
        self._show()

    def action_delete(self) -> None:
        db = self.current
        if db is None:
            return

        async def delete(values: dict[str, Any]) -> bool:
            assert self.mist.api is not None
            if values["name"].strip() != db.ref:
                raise InvalidInput(f"Type {db.ref} to delete it.", field="name")
            await self.mist.api.databases.delete(db.ref, keep_volume=bool(values["keep"]))
            return True

        def deleted(done: object) -> None:
            if done is True:
                self.mist.notify(f"Deleted the database {db.ref}.")
                self.app.pop_screen()

        self.app.push_screen(
            FormDialog(
                f"Delete {db.ref}",
                [
                    FormField("name", f"Type {db.ref} to confirm", placeholder=db.ref),
                    FormField("keep", "Keep its volume, with the data", checkbox=True),
                ],
                submit=delete,
                submit_label=f"Delete {db.ref}",
                note=f"Delete the database {db.ref}? Its container is removed and, unless kept, its volume "
                f"{db.volume} with all its data. This cannot be undone.",
                danger=True,
                aliases={"database": "name"},
            ),
            deleted,
        )

    # ------------------------------------------------------------------------------------------ links

    def action_link(self) -> None:
        self._ask_link()

    @api_work(exclusive=True, group="database-link-form")
    async def _ask_link(self) -> None:
        assert self.mist.api is not None
        db = self.current
        if db is None:
            return
        page = await self.mist.api.apps.list(project=db.project, limit=500)
        apps = [a.name for a in page.items if a.ref not in db.linked_apps]
        if not apps:
            self.mist.notify(
                f"Every app of {db.project} is linked to {db.ref} already, or it has none.",
                severity="warning",
            )
            return

        async def link(values: dict[str, Any]) -> Any:
            assert self.mist.api is not None
            prefix = values["prefix"].strip() or None
            return await self.mist.api.databases.link(db.ref, str(values["app"]), prefix=prefix)

        def linked(result: Any) -> None:
            if result is None or not hasattr(result, "variables"):
                return
            deployed = (
                f" Deployment #{result.deployment_id} gives them to it."
                if result.deployment_id
                else " Its first deployment gets them."
            )
            self.mist.notify(f"Linked {db.ref} to {result.app}: {', '.join(result.variables)}.{deployed}")
            self.load()

        default = {"redis": "REDIS", "mongo": "MONGO"}.get(db.engine, "DATABASE")
        self.app.push_screen(
            FormDialog(
                f"Link {db.ref} to an app",
                [
                    FormField("app", "App", apps[0], choices=[(f"{db.project}/{a}", a) for a in apps]),
                    FormField(
                        "prefix",
                        "Prefix of the variables (optional)",
                        placeholder=f"{default}: {default}_URL…",
                    ),
                ],
                submit=link,
                submit_label="Link",
                note="The app gets the connection as secret variables and is deployed again.",
            ),
            linked,
        )

    def action_unlink(self) -> None:
        db = self.current
        table = self.query_one("#db-links", MistTable)
        app = table.selected_key
        if db is None or app is None or app not in db.linked_apps:
            self.mist.notify("Select a linked app on the Overview tab to unlink it.", severity="warning")
            return
        self.app.push_screen(
            ConfirmDialog(
                f"Unlink {app}",
                f"Unlink {app} from {db.ref}? The variables the link set are removed from {app}, which is "
                "deployed again without them.",
                confirm_label="Unlink",
            ),
            lambda yes: self._unlink(app) if yes else None,
        )

    @api_work(group="database-unlink")
    async def _unlink(self, app: str) -> None:
        assert self.mist.api is not None
        await self.mist.api.databases.unlink(self.db_ref, app.split("/", 1)[1])
        self.mist.notify(f"Unlinked {app} from {self.db_ref}.")
        self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "unlink":
            return self.current is not None and bool(self.current.linked_apps)
        return True
