"""The dashboard: every app of every project in one table, with live status, CPU and memory.

Apps are paged in (500 at a time) by a worker; metrics samples and events redraw only the rows they
change; an event only refetches the app it names. Filtering and sorting work on the apps held in memory,
so they cost no round trip, and they hand the table a new list of keys: a row's cells are built only
when it comes into view.
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING, get_args

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Header, Input

from mist_core.errors import MistError, NotFound
from mist_core.models import App, AppStatus, Database, MetricsSample, Project

from .. import heap
from ..format import counted, cpu_text, human_age, memory_text, short_sha, status_with_latest
from ..widgets.clipboard import copy
from ..widgets.footer import MistFooter
from ..widgets.line_table import Cell, Column, LineTable
from ..widgets.server_strip import ProxyLine, ServerStrip
from ..workers import api_work

if TYPE_CHECKING:
    from ..app import MistApp

PAGE = 500
COLUMNS = [
    Column("project", "Project", 16),
    Column("app", "App", 24),
    Column("status", "Status", 16),
    Column("commit", "Commit", 8),
    Column("age", "Age", 6, "right"),
    Column("cpu", "CPU", 8, "right"),
    Column("memory", "Memory", 11, "right"),
]
# Narrower terminals keep status, CPU and memory and give up the commit first; wide ones get more facts.
NARROW = [
    Column("project", "Project", 12),
    Column("app", "App", 18),
    Column("status", "Status", 12),
    Column("age", "Age", 4, "right"),
    Column("cpu", "CPU", 7, "right"),
    Column("memory", "Memory", 10, "right"),
]
WIDE = [
    Column("project", "Project", 20),
    Column("app", "App", 30),
    *COLUMNS[2:],
    Column("restarts", "Restarts", 8, "right"),
    Column("domain", "Domain", 24),
    Column("branch", "Branch", 14),
    Column("container", "Container", 24),
]
WIDE_FROM = 200  # terminal columns
NARROW_BELOW = 104


def _domains(names: list[str]) -> Cell:
    """The first domain, and how many more: ``shop.example.com +2``."""
    if not names:
        return ("—", "dim")
    return names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "")


def layout_for(width: int) -> list[Column]:
    if width >= WIDE_FROM:
        return WIDE
    if width < NARROW_BELOW:
        return NARROW
    return COLUMNS


SORTS = ["project", "app", "status", "age", "cpu", "memory"]
STATUSES = frozenset(get_args(AppStatus))
STATUS_ORDER = {"failed": 0, "crashed": 1, "deploying": 2, "live": 3, "stopped": 4, "new": 5}

FLUSH_DELAY = 0.3  # seconds events about apps are gathered before their rows are fetched again
DATABASES_POLL = 10.0  # seconds between reloads of the databases (they announce no events)
DB_MARK = "/db:"  # a database's row key is ``project/db:name``: no app name holds a colon


def database_key(db: Database) -> str:
    return f"{db.project}{DB_MARK}{db.name}"


class DashboardScreen(Screen):
    # The hidden filter input comes first in the focus chain: the table is what the screen is for.
    AUTO_FOCUS = "#apps"
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="dashboard.filter"),
        Binding("escape", "clear_filter", "Clear filter", id="dashboard.clear_filter"),
        Binding("s", "cycle_sort", "Sort", id="dashboard.sort"),
        Binding("o", "reverse_sort", "Reverse", show=False, id="dashboard.reverse"),
        Binding("D", "deploy", "Deploy", id="dashboard.deploy"),
        Binding("l", "logs", "Logs", id="dashboard.logs"),
        Binding("e", "shell", "Shell", show=False, id="dashboard.shell"),
        Binding("d", "describe", "Describe", show=False, id="dashboard.describe"),
        Binding("m", "app.goto('metrics')", "Metrics", id="dashboard.metrics"),
        Binding("b", "app.goto('databases')", "Databases", show=False, id="dashboard.databases"),
        Binding("u", "app.goto('users')", "Users", show=False, id="dashboard.users"),
        Binding("a", "app.goto('audit')", "Audit", show=False, id="dashboard.audit"),
        Binding("comma", "app.goto('settings')", "Settings", show=False, id="dashboard.settings"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="dashboard.reload"),
        Binding("y", "copy", "Copy name", show=False, id="dashboard.copy"),
        Binding("n", "new_project", "New project", id="dashboard.new_project"),
        Binding("c", "new_app", "New app", id="dashboard.new_app"),
        Binding("r", "rename_project", "Rename project", show=False, id="dashboard.rename_project"),
        Binding("X", "delete_project", "Delete project", show=False, id="dashboard.delete_project"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.apps: dict[str, App] = {}
        # Projects are listed too, so one without apps still has a row (to add an app to, or delete).
        self.projects: dict[str, Project] = {}
        self.usage: dict[str, tuple[float, int, int | None]] = {}
        # Databases have rows of their own, under their project's apps, keyed ``project/db:name``.
        self.databases: dict[str, Database] = {}
        self._last_sample: MetricsSample | None = None
        self.filter_text = ""
        self.sort_key = "project"
        self.sort_reverse = False
        self._dirty: set[str] = set()
        self._flush_timer: Timer | None = None  # set while a coalesced refetch is pending
        # A row's cells, built when it is first drawn and again only when its app or its usage changed.
        self._cell_cache: dict[str, tuple[App, object, tuple[Cell, ...]]] = {}
        self._filter_timer: Timer | None = None
        self._populate_seconds = 0.0  # how long the last full redraw took
        # Every row's key in display order with its lowercase filter key (empty projects' rows included),
        # from the last full redraw: a filter keystroke only walks this list instead of sorting again.
        self._order: list[tuple[str, str]] | None = None
        self.shown_filter = ""  # the filter the table shows (the input may be ahead while typing)
        self._loading = False
        # Status counts and the projects that have apps, recomputed only when the apps change (a redraw
        # per keystroke would otherwise walk all 10,000 for them).
        self._apps_changes = 0
        self._census: tuple[tuple[int, int, int], dict[str, int], set[str]] | None = None

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield ServerStrip(" loading metrics…", id="server-strip")
        yield ProxyLine(" PROXY checking…", id="proxy-line")
        yield Input(placeholder="filter apps: type part of a name or a status", id="filter")
        yield LineTable(COLUMNS, self._row, id="apps")
        yield MistFooter()

    @property
    def table(self) -> LineTable:
        return self.query_one("#apps", LineTable)

    def on_mount(self) -> None:
        table = self.table
        self._label_columns()
        table.border_title = "Apps"
        table.focus()
        self.load()
        self.follow_metrics()
        self.follow_events()
        self.load_proxy()
        self.set_interval(DATABASES_POLL, self.reload_databases)
        # The proxy changes rarely and an event announces domain changes: a slow poll catches the rest.
        self.set_interval(30, self.load_proxy)

    # ------------------------------------------------------------------------------------------ data

    @api_work(exclusive=True, group="dashboard-load")
    async def load(self) -> None:
        assert self.mist.api is not None
        self._loading = True
        self.table.loading = not self.apps
        offset: int | None = 0
        first = True
        apps: dict[str, App] = {}
        try:
            while offset is not None:
                page = await self.mist.api.apps.list(limit=PAGE, offset=offset)
                new = [a for a in page.items if a.ref not in apps]
                apps.update((a.ref, a) for a in new)
                if first:
                    self.apps = dict(apps)
                    self.populate()
                    self.table.loading = False
                    first = False
                else:
                    self.apps.update((a.ref, a) for a in new)
                    self.table.append([app.ref for app in new if self._matches(app)])
                self.table.border_subtitle = f"loading {len(apps):,} of {page.total:,}"
                offset = page.next_offset
            self.apps = apps
            self.projects = await self._list_projects()
            self.populate()
        finally:
            self._loading = False
            self.table.loading = False
            self._summarise()
        self.reload_databases()
        # Every app is now held for as long as the screen lives: once they are drawn, keep them out of the
        # full collections a filter keystroke's redraw may set off.
        self.call_after_refresh(heap.settle)

    async def _list_projects(self) -> dict[str, Project]:
        assert self.mist.api is not None
        projects: dict[str, Project] = {}
        offset: int | None = 0
        while offset is not None:
            page = await self.mist.api.projects.list(limit=100, offset=offset)
            projects.update((p.name, p) for p in page.items)
            offset = page.next_offset
        return projects

    async def _list_databases(self) -> dict[str, Database]:
        assert self.mist.api is not None
        databases: dict[str, Database] = {}
        offset: int | None = 0
        while offset is not None:
            page = await self.mist.api.databases.list(limit=100, offset=offset)
            databases.update((database_key(d), d) for d in page.items)
            offset = page.next_offset
        return databases

    @work(exclusive=True, group="dashboard-databases", exit_on_error=False)
    async def reload_databases(self) -> None:
        if self._loading:
            return
        try:
            databases = await self._list_databases()
        except Exception:  # noqa: BLE001 - the apps are what the dashboard is for
            # A daemon from before databases, or one failing to list them: the rows stay as they are, and the
            # Databases screen says what is wrong.
            return
        if databases.keys() != self.databases.keys():
            self.databases = databases
            self._databases_usage()
            self.populate()
            return
        changed = [key for key, db in databases.items() if db != self.databases.get(key)]
        self.databases = databases
        for key in changed:
            self.table.refresh_row(key)

    @api_work(exclusive=True, group="dashboard-projects")
    async def reload_projects(self) -> None:
        self.projects = await self._list_projects()
        self.populate()

    @work(exclusive=True, group="dashboard-proxy", exit_on_error=False)
    async def load_proxy(self) -> None:
        assert self.mist.api is not None
        line = self.query_one(ProxyLine)
        try:
            status = await self.mist.api.proxy.status()
        except MistError as error:
            # The dashboard is still useful without the proxy: say what is wrong on its line, no popup.
            line.show(None, error.message)
            return
        line.show(status)

    @api_work(exclusive=True, group="dashboard-metrics")
    async def follow_metrics(self) -> None:
        assert self.mist.api is not None
        async for sample in self.mist.api.metrics.stream():
            self.apply_sample(sample)
        self.mist.stream_ended()

    @api_work(exclusive=True, group="dashboard-events")
    async def follow_events(self) -> None:
        assert self.mist.api is not None
        async for event in self.mist.api.events.stream():
            if event.kind == "app" and event.action == "domains":
                self.load_proxy()
            if event.project and event.app:
                self._dirty.add(f"{event.project}/{event.app}")
                self._schedule_flush()
            elif event.kind == "project" and event.project and event.action in ("deleted", "delete"):
                for ref in [r for r, a in self.apps.items() if a.project == event.project]:
                    self._remove(ref)
                self.reload_projects()
            elif event.kind == "project":
                self.reload_projects()
        self.mist.stream_ended()

    def reconnected(self) -> None:
        """The daemon is back: what it holds may have changed while it was away."""
        self.load()
        self.follow_metrics()
        self.follow_events()
        self.load_proxy()

    def _schedule_flush(self) -> None:
        # Events are coalesced: a burst about one app costs one apps.get, not one per event. The timer runs
        # only while something is pending, so an idle dashboard wakes for nothing.
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(FLUSH_DELAY, self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush_timer = None
        if self._loading:
            if self._dirty:
                self._schedule_flush()
            return
        if self._dirty:
            refs, self._dirty = self._dirty, set()
            self.refetch(sorted(refs))

    @api_work(group="dashboard-refetch")
    async def refetch(self, refs: list[str]) -> None:
        assert self.mist.api is not None
        for ref in refs:
            try:
                app = await self.mist.api.apps.get(ref)
            except NotFound:
                self._remove(ref)
                continue
            self.update_app(app)

    def update_app(self, app: App) -> None:
        """One app changed: redraw its row in place (or add it)."""
        known = app.ref in self.apps
        self.apps[app.ref] = app
        self._apps_changes += 1
        self._cell_cache.pop(app.ref, None)  # the app may be the same object, changed in place
        if not known:
            self.populate()
            return
        self.table.refresh_row(app.ref)

    def _remove(self, ref: str) -> None:
        app = self.apps.pop(ref, None)
        self._apps_changes += 1
        self._cell_cache.pop(ref, None)
        if self._order is not None:
            self._order = [entry for entry in self._order if entry[0] != ref]
        if self.table.has_row(ref):
            self.table.remove_row(ref)
            self._summarise()
        if app is not None and not any(a.project == app.project for a in self.apps.values()):
            self.populate()  # the project's last app went: its empty row appears

    def tick(self) -> None:
        """A second passed: redraw the rows on screen whose age now reads differently (only those)."""
        now = self.mist.clock()
        table = self.table
        keys = [column.key for column in table.columns]
        if "age" not in keys:
            return
        age = keys.index("age")
        for key in table.visible_keys():
            cached = self._cell_cache.get(key)
            if cached is not None and cached[2][age] != human_age(cached[0].live_since, now):
                del self._cell_cache[key]
                table.refresh_row(key)

    def _databases_usage(self) -> None:
        """The databases just loaded: their figures from the latest sample (the next one may be seconds away)."""
        if self._last_sample is not None:
            self.apply_sample(self._last_sample)

    def apply_sample(self, sample: MetricsSample) -> None:
        self._last_sample = sample
        self.query_one(ServerStrip).show(sample.system)
        usage: dict[str, tuple[float, int, int | None]] = {}
        by_container = {db.container_name: key for key, db in self.databases.items()}
        for stats in sample.containers:
            if stats.name in by_container:
                usage[by_container[stats.name]] = (stats.cpu_percent, stats.memory_bytes, stats.memory_limit)
            elif stats.project and stats.app:
                ref = f"{stats.project}/{stats.app}"
                cpu, mem, limit = usage.get(ref, (0.0, 0, None))
                usage[ref] = (cpu + stats.cpu_percent, mem + stats.memory_bytes, stats.memory_limit or limit)
        changed = {ref for ref in usage.keys() | self.usage.keys() if usage.get(ref) != self.usage.get(ref)}
        self.usage = usage
        table = self.table
        for ref in changed:
            table.refresh_row(ref)

    # ------------------------------------------------------------------------------------------ rows

    def _matches(self, app: App) -> bool:
        needle = self.filter_text.lower()
        return not needle or needle in app.ref.lower() or needle == app.status

    def _shown_keys(self, reuse_order: bool) -> list[str]:
        """The key of every row the filter keeps, in display order."""
        if not reuse_order or self._order is None:
            self._order = self._full_order()
        needle = self.filter_text.lower()
        if not needle:
            return [key for key, _ in self._order]
        if needle not in STATUSES:
            return [key for key, text in self._order if needle in text]
        apps = self.apps
        return [
            key
            for key, text in self._order
            if needle in text or ((app := apps.get(key)) is not None and app.status == needle)
        ]

    def _full_order(self) -> list[tuple[str, str]]:
        keys = [app.ref for app in self._sorted(list(self.apps.values()))]
        order = [(key, key.lower()) for key in keys]
        empty = self._empty_projects()
        databases = self._shown_databases()
        if empty or databases:
            extra = [(f"{name}/", name.lower()) for name in empty] + databases
            if self.sort_key == "project":
                # Stable: each app keeps its place within its project, an empty project lands in its own.
                order = sorted(
                    order + extra, key=lambda entry: entry[0].split("/", 1)[0], reverse=self.sort_reverse
                )
            else:
                order += extra
        return order

    def _shown_databases(self) -> list[tuple[str, str]]:
        """The databases' rows (key, filter text: the name, the engine and the state), by project and name."""
        return [
            (key, f"{db.project}/{db.name} {db.engine} {db.status}".lower())
            for key, db in sorted(self.databases.items(), key=lambda item: (item[1].project, item[1].name))
        ]

    def _sorted(self, apps: list[App]) -> list[App]:
        key = self.sort_key
        now = self.mist.clock()

        def sort_key(app: App) -> tuple:
            name = (app.project, app.name)
            if key == "app":
                return (app.name, app.project)
            if key == "status":
                return (STATUS_ORDER.get(app.status, 9), *name)
            if key == "age":
                age = (now - app.live_since).total_seconds() if app.live_since else float("inf")
                return (age, *name)
            if key in ("cpu", "memory"):
                cpu, mem, _ = self.usage.get(app.ref, (-1.0, -1, None))
                return (-(cpu if key == "cpu" else mem), *name)
            return name

        return sorted(apps, key=sort_key, reverse=self.sort_reverse)

    def _row(self, key: str) -> tuple[Cell, ...]:
        """The cells of the row ``key``: an app's (``project/app``) or an empty project's (``project/``)."""
        app = self.apps.get(key)
        if app is None and key in self.databases:
            return self._database_cells(self.databases[key])
        if app is None:
            name = key.split("/", 1)[0]
            empty = {"project": (name, "bold"), "app": ("no apps yet: c adds one", "dim italic")}
            return tuple(empty.get(column.key, "") for column in self.table.columns)
        usage = self.usage.get(key)
        cached = self._cell_cache.get(key)
        if cached is None or cached[0] is not app or cached[1] != usage:
            cached = (app, usage, self._build_cells(app))
            self._cell_cache[key] = cached
        return cached[2]

    def _database_cells(self, db: Database) -> tuple[Cell, ...]:
        """A database's row: its name and engine where an app's name is, its state, its CPU and memory."""
        from .databases import db_status_text

        cpu, mem, limit = self.usage.get(database_key(db), (None, None, None))
        cells: dict[str, Cell] = {
            "project": (db.project, "bold"),
            "app": (f"{db.name} · {db.engine} {db.version}", "cyan"),
            "status": _cell(db_status_text(db.status)),
            "cpu": _cell(cpu_text(cpu)),
            "memory": _cell(memory_text(mem, limit)),
            "container": db.container_name,
        }
        return tuple(cells.get(column.key, ("", "")) for column in self.table.columns)

    def _build_cells(self, app: App) -> tuple[Cell, ...]:
        cpu, mem, limit = self.usage.get(app.ref, (None, None, None))
        cells: dict[str, Cell] = {
            "project": (app.project, "bold"),
            "app": app.name,
            "status": _cell(
                status_with_latest(
                    app.status,
                    app.latest_deployment_state.value if app.latest_deployment_state else None,
                    app.latest_deployment_id,
                )
            ),
            "restarts": (str(app.restart_count), "" if app.restart_count else "dim"),
            "commit": (short_sha(app.live_commit), "dim") if not app.live_commit else app.live_commit[:7],
            "age": human_age(app.live_since, self.mist.clock()),
            "cpu": _cell(cpu_text(cpu)),
            "memory": _cell(memory_text(mem, limit)),
            "domain": _domains(app.domains),
            "branch": app.spec.branch,
            "container": (app.container_name, "") if app.container_name else ("—", "dim"),
        }
        return tuple(cells[column.key] for column in self.table.columns)

    def on_resize(self) -> None:
        columns = layout_for(self.size.width)
        if [c.key for c in columns] != [c.key for c in self.table.columns] or columns != self.table.columns:
            self._cell_cache.clear()
            self.table.set_columns(columns)

    def populate(self, *, reuse_order: bool = False) -> None:
        """Show the apps in memory, filtered and sorted, keeping the cursor on its row.
        ``reuse_order``: the apps and the sort are as at the last redraw, only the filter changed."""
        # A full redraw sorts 10,000 apps through key tuples: nothing here makes cycles, so collect
        # afterwards instead of in the middle.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            started = time.perf_counter()
            self.table.show(self._shown_keys(reuse_order))
            self.shown_filter = self.filter_text
            self._summarise()
            self._populate_seconds = time.perf_counter() - started
        finally:
            if gc_was_enabled:
                gc.enable()

    def _empty_projects(self) -> list[str]:
        if not self.projects:
            return []
        with_apps = self._take_census()[1]
        needle = self.filter_text.lower()
        return sorted(
            name for name in self.projects if name not in with_apps and (not needle or needle in name.lower())
        )

    def selected_project(self) -> str | None:
        """The project of the row under the cursor (an app's, or an empty project's row)."""
        key = self.table.selected_key
        return key.split("/", 1)[0] if key else None

    def _take_census(self) -> tuple[dict[str, int], set[str]]:
        """How many apps have each status, and which projects have apps."""
        key = (id(self.apps), len(self.apps), self._apps_changes)
        if self._census is None or self._census[0] != key:
            counts: dict[str, int] = {}
            for app in self.apps.values():
                counts[app.status] = counts.get(app.status, 0) + 1
            self._census = (key, counts, {a.project for a in self.apps.values()})
        return self._census[1], self._census[2]

    def _summarise(self) -> None:
        counts = self._take_census()[0]
        if not self.apps and not self._loading and self.projects:
            self.table.border_subtitle = (
                f"{counted(len(self.projects), 'project')}, no apps yet: c adds an app"
            )
            return
        if not self.apps and not self._loading:
            self.table.border_subtitle = "no projects yet: n creates one"
            return
        parts = [counted(len(self.apps), "app")]
        parts += [f"{counts[s]:,} {s}" for s in ("live", "deploying", "failed", "stopped") if counts.get(s)]
        if self.databases:
            parts.append(counted(len(self.databases), "database"))
        if self.filter_text:
            parts.insert(0, f"{self.table.row_count:,} shown")
        self.table.border_subtitle = " · ".join(parts)

    def _label_columns(self) -> None:
        self.table.set_sort(self.sort_key, self.sort_reverse)
        # Sorted by project, the project is named only where its group starts: it reads as a heading.
        self.table.group_by = "project" if self.sort_key == "project" else None

    # ------------------------------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return self.has_class("-filtering")
        return True

    def action_filter(self) -> None:
        self.add_class("-filtering")
        self.refresh_bindings()
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        filter_input = self.query_one("#filter", Input)
        filter_input.value = ""
        self.remove_class("-filtering")
        self.refresh_bindings()
        self.table.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        # Redraw at once while redraws are quick (10,000 apps take a few ms); when the last one was slow
        # (a much larger list, a slow machine), wait until typing pauses rather than redraw once per key.
        if self._filter_timer is not None:
            self._filter_timer.stop()
        if self._populate_seconds > 0.1:
            self._filter_timer = self.set_timer(0.1, lambda: self.populate(reuse_order=True))
        else:
            self.populate(reuse_order=True)

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.table.focus()

    def action_cycle_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.sort_reverse = False
        self._label_columns()
        self.populate()

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._label_columns()
        self.populate()

    @on(LineTable.HeaderSelected, "#apps")
    def _header_clicked(self, event: LineTable.HeaderSelected) -> None:
        key = event.column_key
        if key not in SORTS:
            return
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, False
        self._label_columns()
        self.populate()

    @on(LineTable.RowSelected, "#apps")
    def _open(self, event: LineTable.RowSelected) -> None:
        key = event.row_key
        if key in self.apps:
            self.mist.open_app(key)
        elif key in self.databases:
            self.mist.open_database(self.databases[key].ref)
        elif key.endswith("/"):
            self.action_new_app()

    def action_logs(self) -> None:
        ref = self.table.selected_key
        if ref in self.databases:
            self.mist.open_database(self.databases[ref].ref, tab="logs")
            return
        self.mist.open_logs([ref] if ref in self.apps else [])

    def action_reload(self) -> None:
        self.load()

    def action_copy(self) -> None:
        ref = self.table.selected_key
        if ref in self.apps:
            copy(self, ref, "the app's name")
        elif ref in self.databases:
            copy(self, self.databases[ref].ref, "the database's name")

    def action_describe(self) -> None:
        if (ref := self.table.selected_key) in self.apps:
            from .describe import DescribeScreen

            self.app.push_screen(DescribeScreen(str(ref)))

    def action_shell(self) -> None:
        if (ref := self.table.selected_key) in self.apps:
            from ..exec import open_shell

            open_shell(self, str(ref))

    def action_deploy(self) -> None:
        ref = self.table.selected_key
        if ref is None or ref not in self.apps:
            return
        from .app_screen import ask_deploy

        ask_deploy(self.mist, self.apps[ref])

    def action_new_project(self) -> None:
        from .create import new_project

        new_project(self.mist, lambda project: self.reload_projects())

    def action_new_app(self) -> None:
        from .create import new_app

        def created(app: App) -> None:
            self.update_app(app)
            self.table.select(app.ref)

        new_app(self.mist, self.selected_project(), created)

    def action_rename_project(self) -> None:
        from .create import rename_project

        project = self.selected_project()
        if project is not None:
            rename_project(self.mist, project, lambda new_name: self.load())

    def action_delete_project(self) -> None:
        from .create import delete_project

        project = self.selected_project()
        if project is not None:
            delete_project(self.mist, project, lambda name: self.reload_projects())


def _cell(text: Text) -> Cell:
    """A cell from one of ``format``'s styled texts (its justification is the column's)."""
    return (text.plain, text.style) if text.style else text.plain
