"""One app: tabs for its overview, deployments, logs, environment, domains, git source and settings, and the
actions that act on it (deploy, roll back, stop/start, restart, delete)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Group, JustifyMethod
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Button,
    DataTable,
    Header,
    Input,
    Label,
    Select,
    Static,
    TabbedContent,
    TabPane,
    Tabs,
)

from mist_core.errors import InvalidInput, MistError
from mist_core.models import MASK, App, AppChanges, Deployment, EnvVar, HealthCheck, MetricsSample

from ..format import (
    counted,
    human_age,
    human_bytes,
    human_duration,
    memory_text,
    parse_size,
    right,
    short_sha,
    shown,
    status_text,
    status_with_latest,
)
from ..widgets.clipboard import copy
from ..widgets.footer import MistFooter
from ..widgets.log_panel import LogPanel
from ..widgets.log_view import LogEntry
from ..widgets.table import MistTable
from ..workers import api_work
from .dialogs import PRINTABLE, ConfirmDialog, FormDialog, FormField
from .domains import DomainsPane
from .git import GitPane

if TYPE_CHECKING:
    from ..app import MistApp


def ask_deploy(mist: MistApp, app: App) -> None:
    """Ask which ref to deploy (default: the app's branch), queue it, and open the deployment."""

    async def deploy(values: dict[str, Any]) -> Deployment:
        assert mist.api is not None
        return await mist.api.apps.deploy(app.ref, ref=values["ref"].strip() or None)

    def done(deployment: Deployment | None) -> None:
        if isinstance(deployment, Deployment):
            mist.notify(f"Deployment #{deployment.id} of {app.ref} queued ({deployment.ref}).")
            mist.open_deployment(deployment.id)

    mist.push_screen(
        FormDialog(
            f"Deploy {app.ref}",
            [FormField("ref", "Branch, tag or commit", app.spec.branch)],
            submit=deploy,
            submit_label="Deploy",
        ),
        done,
    )


def rollback_origin(d: Deployment, history: list[Deployment]) -> Deployment | None:
    """The deployment a rollback repeated: the newest earlier git deployment of the same commit."""
    if d.source != "rollback":
        return None
    for earlier in history:
        if earlier.id < d.id and earlier.source == "git" and earlier.commit_sha == d.commit_sha:
            return earlier
    return None


def deployment_row(d: Deployment, now, history: list[Deployment] | None = None) -> list[object]:
    message = Text()
    if d.source == "rollback":
        origin = rollback_origin(d, history or [])
        message.append(f"↩ rollback to #{origin.id} " if origin else "↩ rollback ", style="bold magenta")
    message.append_text(shown((d.commit_message or d.ref).splitlines()[0][:60]))
    return [
        right(f"#{d.id}"),
        status_text(d.state.value, icon=False),
        Text(short_sha(d.commit_sha)),
        message,
        right(human_duration(d.duration)),
        right(human_age(d.created_at, now)),
    ]


DEPLOYMENT_COLUMNS = [
    ("id", "Id", 6),
    ("state", "State", 11),
    ("commit", "Commit", 8),
    ("message", "Message", 44),
    ("duration", "Took", 7),
    ("age", "Age", 5),
]


class EnvironmentPane(Vertical):
    """The app's variables. Secrets show as a mask until revealed."""

    BINDINGS = [
        Binding("a", "add", "Add", id="env.add"),
        Binding("e", "edit", "Edit", id="env.edit"),
        Binding("d", "delete", "Delete", id="env.delete"),
        Binding("i", "import", "Import .env", id="env.import"),
        Binding("r", "reveal", "Reveal", id="env.reveal"),
    ]

    def __init__(self, app_ref: str) -> None:
        super().__init__(id="env-pane")
        self.app_ref = app_ref
        self.reveal = False
        self.vars: dict[str, EnvVar] = {}

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield MistTable(id="env")

    def on_mount(self) -> None:
        table = self.query_one(MistTable)
        table.add_column("Key", key="key", width=24)
        table.add_column("Value", key="value", width=50)
        table.add_column("Flags", key="flags", width=14)
        table.add_column(Text("Updated", justify="right"), key="updated", width=8)
        self.refresh_vars()

    @api_work(exclusive=True, group="env-load")
    async def refresh_vars(self) -> None:
        assert self.mist.api is not None
        variables = await self.mist.api.env.list(self.app_ref, reveal=self.reveal)
        self.vars = {v.key: v for v in variables}
        table = self.query_one(MistTable)
        now = self.mist.clock()
        selected = table.selected_key
        table.clear()
        for var in variables:
            value = (
                Text(MASK, style="dim")
                if var.value is None
                else shown(var.value, style="yellow" if var.secret else "")
            )
            flags = " ".join(f for f, on_ in (("secret", var.secret), ("build", var.build)) if on_)
            table.add_row(
                Text(var.key, style="bold"),
                value,
                Text(flags, style="dim"),
                right(human_age(var.updated_at, now)),
                key=var.key,
            )
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        table.border_title = f"Environment · {counted(len(variables), 'variable')}" + (
            " · secrets shown" if self.reveal else ""
        )

    def _form(self, title: str, var: EnvVar | None) -> FormDialog:
        async def save(values: dict[str, Any]) -> EnvVar:
            assert self.mist.api is not None
            key = values["key"].strip()
            if not key:
                raise InvalidInput("Give the variable a name, like DATABASE_URL.", field="key")
            return await self.mist.api.env.set(
                self.app_ref, key, values["value"], secret=values["secret"], build=values["build"]
            )

        value = "" if var is None or var.value is None else var.value
        return FormDialog(
            title,
            [
                FormField("key", "Name", var.key if var else "", "DATABASE_URL"),
                FormField(
                    "value",
                    "Value",
                    value,
                    "leave empty for an empty value"
                    if not (var and var.secret)
                    else "type the new secret value",
                ),
                FormField(
                    "secret",
                    "Secret (encrypted, masked in lists)",
                    checkbox=True,
                    checked=bool(var and var.secret),
                ),
                FormField("build", "Available at build time", checkbox=True, checked=bool(var and var.build)),
            ],
            submit=save,
            note="Takes effect at the next deployment.",
        )

    def _after_change(self, result: object) -> None:
        if result:
            self.refresh_vars()

    def action_add(self) -> None:
        self.app.push_screen(self._form(f"Add a variable to {self.app_ref}", None), self._after_change)

    def action_edit(self) -> None:
        key = self.query_one(MistTable).selected_key
        if key and key in self.vars:
            self.app.push_screen(self._form(f"Edit {key}", self.vars[key]), self._after_change)

    def action_delete(self) -> None:
        key = self.query_one(MistTable).selected_key
        if not key:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._unset(key)

        self.app.push_screen(
            ConfirmDialog(
                "Delete variable",
                f"Delete {key} from {self.app_ref}? The next deployment runs without it.",
            ),
            confirmed,
        )

    @api_work(group="env-change")
    async def _unset(self, key: str) -> None:
        assert self.mist.api is not None
        await self.mist.api.env.unset(self.app_ref, key)
        self.mist.notify(f"Deleted {key} from {self.app_ref}.")
        self.refresh_vars()

    def action_import(self) -> None:
        from pathlib import Path

        async def load(values: dict[str, Any]) -> list[EnvVar]:
            assert self.mist.api is not None
            path = values["path"].strip()
            try:
                text = Path(path).expanduser().read_text()
            except OSError as exc:
                raise InvalidInput(
                    f"Cannot read {path}: {exc.strerror}. Give the path of a .env file.", field="path"
                ) from exc
            imported = await self.mist.api.env.import_dotenv(
                self.app_ref, text, secret=values["secret"], build=values["build"]
            )
            kind = "secret " if values["secret"] else ""
            self.mist.notify(f"Imported {counted(len(imported), kind + 'variable')} into {self.app_ref}.")
            return imported

        self.app.push_screen(
            FormDialog(
                f"Import a .env file into {self.app_ref}",
                [
                    FormField("path", "Path", ".env"),
                    FormField("secret", "Mark the values secret (encrypted, masked in lists)", checkbox=True),
                    FormField("build", "Available at build time", checkbox=True),
                ],
                submit=load,
                submit_label="Import",
                note="Every KEY=VALUE line is checked before anything is set.",
            ),
            self._after_change,
        )

    def action_reveal(self) -> None:
        self.reveal = not self.reveal
        self.refresh_vars()


SETTINGS_FIELDS = [
    ("git_url", "Git URL", "https://git.example.com/team/app.git"),
    ("branch", "Branch", "main"),
    ("dockerfile", "Dockerfile", "empty: the repo's Dockerfile, or a generated one"),
    ("context", "Build context", "."),
    ("port", "Port", "the port the app listens on, e.g. 8080"),
    ("publish", "Publish (comma separated)", "127.0.0.1:18080:8080"),
    ("start_command", "Start command", "empty: the image's CMD"),
    ("memory", "Memory limit", "512m, 1g or bytes; empty: none"),
    ("cpus", "CPUs", "1.5; empty: no limit"),
]
RESTART_CHOICES = ["no", "always", "unless-stopped", "on-failure"]
HEALTH_CHOICES = ["none", "http", "tcp", "docker"]


class SettingsPane(VerticalScroll):
    """The app's spec as a form. Save sends only what changed, as ``AppChanges``."""

    BINDINGS = [Binding("ctrl+s", "save", "Save", id="app_settings.save")]

    def __init__(self) -> None:
        super().__init__(id="settings-form")
        self.current: App | None = None

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        for name, label, placeholder in SETTINGS_FIELDS:
            with Horizontal(classes="form-row"):
                yield Label(label, classes="form-label")
                with Vertical(classes="form-field"):
                    yield Input(
                        placeholder=placeholder, id=f"set-{name}", compact=True, highlighter=PRINTABLE
                    )
                    yield Label("", id=f"err-{name}", classes="field-error")
        with Horizontal(classes="form-row"):
            yield Label("Restart policy", classes="form-label")
            with Vertical(classes="form-field"):
                yield Select(
                    [(c, c) for c in RESTART_CHOICES],
                    allow_blank=False,
                    value="unless-stopped",
                    id="set-restart",
                    compact=True,
                )
                yield Label("", id="err-restart", classes="field-error")
        with Horizontal(classes="form-row"):
            yield Label("Health check", classes="form-label")
            with Vertical(classes="form-field"):
                with Horizontal(classes="health-row"):
                    yield Select(
                        [(c, c) for c in HEALTH_CHOICES],
                        allow_blank=False,
                        value="none",
                        id="set-health",
                        compact=True,
                    )
                    yield Input(
                        placeholder="/healthz", id="set-health_path", compact=True, highlighter=PRINTABLE
                    )
                yield Label("", id="err-health", classes="field-error")
        with Horizontal(classes="form-row"):
            yield Label("Switching", classes="form-label")
            with Vertical(classes="form-field"):
                yield Static("", id="switch-note", classes="switch-note")
        with Horizontal(classes="form-row form-buttons"):
            yield Label("", classes="form-label")
            yield Button("Save", id="settings-save", variant="primary", compact=True)
            yield Label("Changes take effect at the next deployment.", classes="form-note")

    def show(self, app: App) -> None:
        self.current = app
        spec = app.spec
        reason = spec.stop_then_start_reason
        self.query_one("#switch-note", Static).update(
            shown(
                f"stop-then-start: {reason}, so a deployment stops the old container before starting the new one"
                if reason
                else "zero downtime: the new container starts beside the old one and takes over once healthy"
            )
        )
        values = {
            "git_url": spec.git_url,
            "branch": spec.branch,
            "dockerfile": spec.dockerfile or "",
            "context": spec.context,
            "port": str(spec.port or ""),
            "publish": ", ".join(spec.publish),
            "start_command": spec.start_command or "",
            "memory": str(spec.memory or ""),
            "cpus": str(spec.cpus or ""),
        }
        for name, value in values.items():
            self.query_one(f"#set-{name}", Input).value = value
        if spec.memory:
            self.query_one("#set-memory", Input).value = (
                human_bytes(spec.memory).replace(" MiB", "m").replace(" GiB", "g").replace(".0", "")
            )
        # A policy the list does not hold (on-failure:5) is offered as it is, so saving keeps it.
        restart = self.query_one("#set-restart", Select)
        choices = RESTART_CHOICES if spec.restart in RESTART_CHOICES else [*RESTART_CHOICES, spec.restart]
        restart.set_options([(c, c) for c in choices])
        restart.value = spec.restart
        self.query_one("#set-health", Select).value = spec.health.type
        self.query_one("#set-health_path", Input).value = spec.health.path

    def changes(self) -> AppChanges:
        """Compare the form with the app's spec; raise InvalidInput for what cannot even be parsed."""
        assert self.current is not None
        spec = self.current.spec
        read = {name: self.query_one(f"#set-{name}", Input).value.strip() for name, _, _ in SETTINGS_FIELDS}
        changes: dict[str, Any] = {}
        clear: list[str] = []
        for name in ("git_url", "branch", "context"):
            if read[name] != getattr(spec, name):
                changes[name] = read[name]
        for name in ("dockerfile", "start_command"):
            if read[name] != (getattr(spec, name) or ""):
                if read[name]:
                    changes[name] = read[name]
                else:
                    clear.append(name)
        if read["port"] != str(spec.port or ""):
            if not read["port"]:
                clear.append("port")
            elif not read["port"].isdigit():
                raise InvalidInput("The port must be a number between 1 and 65535.", field="port")
            else:
                changes["port"] = int(read["port"])
        publish = [p.strip() for p in read["publish"].split(",") if p.strip()]
        if publish != spec.publish:
            changes["publish"] = publish
        memory = parse_size(read["memory"])
        if memory != spec.memory and not (
            isinstance(memory, str) and spec.memory and self._same_size(memory, spec.memory)
        ):
            if memory is None:
                clear.append("memory")
            else:
                changes["memory"] = memory
        if read["cpus"] != str(spec.cpus or ""):
            if not read["cpus"]:
                clear.append("cpus")
            else:
                try:
                    changes["cpus"] = float(read["cpus"])
                except ValueError:
                    raise InvalidInput("CPUs must be a number, like 0.5 or 2.", field="cpus") from None
        restart = str(self.query_one("#set-restart", Select).value)
        if restart != spec.restart:
            changes["restart"] = restart
        health_type = str(self.query_one("#set-health", Select).value)
        health_path = self.query_one("#set-health_path", Input).value.strip() or "/"
        if health_type != spec.health.type or health_path != spec.health.path:
            changes["health"] = HealthCheck(
                **{**spec.health.model_dump(), "type": health_type, "path": health_path}
            )
        return AppChanges(**changes, clear=clear)

    @staticmethod
    def _same_size(text: str, size: int) -> bool:
        units = {"k": 1024, "m": 1024**2, "g": 1024**3}
        text = text.lower().rstrip("b").rstrip("i")
        try:
            return text[-1] in units and float(text[:-1]) * units[text[-1]] == size
        except (ValueError, IndexError):
            return False

    def clear_errors(self) -> None:
        for label in self.query(".field-error").results(Label):
            label.update("")
            label.remove_class("-shown")

    def show_error(self, error: MistError) -> None:
        self.clear_errors()
        field = (error.field or "").split(".")[-1]
        if field == "path" or (error.field or "").startswith("health"):
            field = "health"
        names = {n for n, _, _ in SETTINGS_FIELDS} | {"restart", "health"}
        if field in names:
            label = self.query_one(f"#err-{field}", Label)
            label.update(shown(f"✕ {error.message}"))
            label.add_class("-shown")
            widget = self.query_one(f"#set-{field}")
            widget.focus()
        self.mist.notify(error.message, title="Not saved", severity="error")

    @on(Button.Pressed, "#settings-save")
    def action_save(self) -> None:
        try:
            changes = self.changes()
        except InvalidInput as error:
            self.show_error(error)
            return
        if not changes.model_dump(exclude_none=True, exclude={"clear"}) and not changes.clear:
            self.mist.notify("Nothing changed.")
            return
        self._save(changes)

    @api_work(exclusive=True, group="app-settings-save")
    async def _save(self, changes: AppChanges) -> None:
        assert self.mist.api is not None and self.current is not None
        try:
            app = await self.mist.api.apps.update(self.current.ref, changes)
        except MistError as error:
            self.show_error(error)
            return
        self.clear_errors()
        self.show(app)
        self.mist.notify(f"Saved {app.ref}: changes apply at the next deployment.")


class AppScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="app_screen.back"),
        Binding("D", "deploy", "Deploy", id="app_screen.deploy"),
        Binding("S", "stop_start", "Stop/Start", id="app_screen.stop_start"),
        Binding("R", "restart", "Restart", id="app_screen.restart"),
        Binding("X", "delete", "Delete app", id="app_screen.delete"),
        Binding("b", "rollback", "Roll back", id="app.rollback"),
        Binding("y", "copy", "Copy", show=False, id="app_screen.copy"),
        Binding("s", "shell", "Shell", id="app_screen.shell"),
        Binding("d", "describe", "Describe", id="app_screen.describe"),
        Binding("1", "tab('overview')", "Overview", show=False, id="app_screen.tab_overview"),
        Binding("2", "tab('deployments')", "Deployments", show=False, id="app_screen.tab_deployments"),
        Binding("3", "tab('logs')", "Logs", show=False, id="app_screen.tab_logs"),
        Binding("4", "tab('environment')", "Environment", show=False, id="app_screen.tab_environment"),
        Binding("5", "tab('domains')", "Domains", show=False, id="app_screen.tab_domains"),
        Binding("6", "tab('git')", "Git", show=False, id="app_screen.tab_git"),
        Binding("7", "tab('settings')", "Settings", show=False, id="app_screen.tab_settings"),
    ]

    def __init__(self, app_ref: str, *, tab: str = "overview", rollback: bool = False) -> None:
        super().__init__()
        self.app_ref = app_ref
        self.initial_tab = tab
        # Opened to roll back (the palette's "rollback shop/web"): once loaded, offer the previous deployment.
        self._rollback_on_load = rollback
        self.current: App | None = None
        self.deployments: list[Deployment] = []
        self.sample: MetricsSample | None = None
        self._logs_started = False
        self._logs_container: str | None = None  # the container the Logs tab is following
        self._logs_stream: object | None = None  # set while a log stream is open
        self._changed: set[str] = set()

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(self.app_ref, style="bold"), id="app-title")
        with TabbedContent(initial=self.initial_tab, id="app-tabs"):
            with TabPane("Overview", id="overview"):
                with VerticalScroll():
                    yield Static(id="overview-facts")
                    yield Label("Recent deployments", classes="section-title")
                    yield MistTable(id="recent", zebra=False)
            with TabPane("Deployments", id="deployments"):
                yield MistTable(id="deployments-table")
            with TabPane("Logs", id="logs"):
                yield LogPanel(
                    cap=self.mist.config.log_buffer_lines,
                    range_choices=True,
                    title=f"{self.app_ref} · container output",
                    id="app-logs",
                )
            with TabPane("Environment", id="environment"):
                yield EnvironmentPane(self.app_ref)
            with TabPane("Domains", id="domains"):
                yield DomainsPane(self.app_ref)
            with TabPane("Git", id="git"):
                yield GitPane(self.app_ref)
            with TabPane("Settings", id="settings"):
                yield SettingsPane()
        yield MistFooter()

    def on_mount(self) -> None:
        # The message gives up room first, so "Took" and "Age" stay on screen at 80 columns.
        fixed = sum(width + 2 for key, _, width in DEPLOYMENT_COLUMNS if key != "message")
        message_width = max(12, min(44, self.app.size.width - fixed - 2 - 6))
        for table_id in ("#recent", "#deployments-table"):
            table = self.query_one(table_id, MistTable)
            for key, label, width in DEPLOYMENT_COLUMNS:
                justify: JustifyMethod = "right" if key in ("id", "duration", "age") else "left"
                if key == "message":
                    width = message_width
                table.add_column(Text(label, justify=justify), key=key, width=width)
        self.load()
        self.follow_metrics()
        self.follow_events()
        self.set_interval(0.5, self._reload_if_changed)
        if self.initial_tab == "logs":
            self._start_logs()
        elif self.initial_tab == "git":
            self.query_one(GitPane).load()

    # ------------------------------------------------------------------------------------------ data

    @api_work(exclusive=True, group="app-load")
    async def load(self) -> None:
        assert self.mist.api is not None
        app = await self.mist.api.apps.get(self.app_ref)
        page = await self.mist.api.deployments.list(self.app_ref, limit=50)
        self.current = app
        self.deployments = page.items
        self._show_app()
        if self._rollback_on_load:
            self._rollback_on_load = False
            self.rollback_to_previous()
        git = self.query_one(GitPane)
        if git.source is not None:
            git.show_source()  # it names the app's branch
        if self._logs_started and app.container_name and app.container_name != self._logs_container:
            if self._logs_stream is not None and self._logs_container is None:
                self._logs_container = app.container_name  # the open stream was already following it
            else:
                # A redeploy replaced the container (its stream has ended), or the first one started:
                # follow the new one below what is already on screen.
                self.stream_logs(None, None, clear=False)
        settings = self.query_one(SettingsPane)
        if settings.current is None:
            # Later reloads (events) must not overwrite what the user is typing in the form.
            settings.show(app)

    @api_work(exclusive=True, group="app-metrics")
    async def follow_metrics(self) -> None:
        assert self.mist.api is not None
        async for sample in self.mist.api.metrics.stream():
            self.sample = sample
            if self.current is not None:
                self._show_facts()
        self.mist.stream_ended()

    @api_work(exclusive=True, group="app-events")
    async def follow_events(self) -> None:
        assert self.mist.api is not None
        project, _, name = self.app_ref.partition("/")
        async for event in self.mist.api.events.stream():
            if event.project == project and event.app == name:
                if event.kind == "env":
                    self._changed.add("env")
                elif event.kind == "app" and event.action == "domains":
                    self._changed.add("domains")
                else:
                    self._changed.add("app")
        self.mist.stream_ended()

    def reconnected(self) -> None:
        """The daemon is back: reload the app and every tab that was loaded, and re-open the streams."""
        self._changed.update(("app", "env", "domains"))
        self.follow_metrics()
        self.follow_events()
        if self._logs_started:
            tail, since = self.query_one("#app-logs", LogPanel).tail_and_since()
            self.stream_logs(tail, since)

    def _reload_if_changed(self) -> None:
        # Events are coalesced: a burst of deployment state changes costs one reload.
        if not self._changed:
            return
        changed, self._changed = self._changed, set()
        if "app" in changed:
            self.load()
            git = self.query_one(GitPane)
            if git.loaded:
                git.load()
        if "env" in changed:
            self.query_one(EnvironmentPane).refresh_vars()
        if "domains" in changed:
            self.query_one(DomainsPane).refresh_domains()

    def _usage(self) -> tuple[float | None, int | None, int | None]:
        if self.sample is None or self.current is None:
            return None, None, None
        mine = [
            c
            for c in self.sample.containers
            if c.project == self.current.project and c.app == self.current.name
        ]
        if not mine:
            return None, None, None
        return sum(c.cpu_percent for c in mine), sum(c.memory_bytes for c in mine), mine[0].memory_limit

    def _show_app(self) -> None:
        app = self.current
        assert app is not None
        now = self.mist.clock()
        self._show_title()
        self._show_facts()
        recent = self.query_one("#recent", MistTable)
        table = self.query_one("#deployments-table", MistTable)
        for target, rows in ((recent, self.deployments[:5]), (table, self.deployments)):
            target.clear()
            for d in rows:
                target.add_row(*deployment_row(d, now, self.deployments), key=str(d.id))
        table.border_title = f"{counted(len(self.deployments), 'deployment')} · Enter opens one"

    def _show_title(self, *, layout: bool = True) -> None:
        app = self.current
        assert app is not None
        now = self.mist.clock()
        title = Text()
        title.append(f" {app.project}/", style="dim")
        title.append(app.name, style="bold")
        title.append("   ")
        title.append_text(status_text(app.status))
        if app.live_commit:
            title.append(f"   {short_sha(app.live_commit)}", style="bold")
            title.append(f" live for {human_age(app.live_since, now)}", style="dim")
        self.query_one("#app-title", Static).update(title, layout=layout)

    def tick(self) -> None:
        """A second passed: "live for" and the deployments' ages move on."""
        if self.current is None:
            return
        self._show_title(layout=False)  # one line, always: no need to lay the screen out again
        now = self.mist.clock()
        for table_id in ("#recent", "#deployments-table"):
            table = self.query_one(table_id, MistTable)
            for d in self.deployments:
                key = str(d.id)
                age = human_age(d.created_at, now)
                if key in table.rows and str(table.get_cell(key, "age")) != age:
                    table.update_cell(key, "age", right(age))

    def _show_facts(self) -> None:
        app = self.current
        assert app is not None
        spec = app.spec
        cpu, mem, limit = self._usage()
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="dim", justify="right")
        facts.add_column()
        facts.add_column(style="dim", justify="right")
        facts.add_column()
        ports = ", ".join(spec.publish) or "not published (reached through the proxy)"
        cpu_cell = Text("—", style="dim") if cpu is None else Text(f"{cpu:.1f}%")
        cpu_cell.justify = "left"
        mem_cell = Text("—", style="dim") if mem is None else memory_text(mem, limit)
        mem_cell.justify = "left"
        if mem is not None and limit:
            mem_cell.append(f" of {human_bytes(limit)}", style="dim")
        # Strings in a Rich table are read as markup: what the app's spec holds is given as plain Text.
        facts.add_row(
            "status",
            status_with_latest(
                app.status,
                app.latest_deployment_state.value if app.latest_deployment_state else None,
                app.latest_deployment_id,
            ),
            "source",
            shown(spec.git_url),
        )
        facts.add_row("container", shown(app.container_name or "—"), "branch", shown(spec.branch))
        facts.add_row("image", shown(app.image or "—"), "port", str(spec.port or "—"))
        facts.add_row("cpu", cpu_cell, "published", shown(ports))
        facts.add_row(
            "memory",
            mem_cell,
            "limits",
            f"{human_bytes(spec.memory) if spec.memory else 'no memory limit'}, {spec.cpus or 'no'} cpus",
        )
        facts.add_row(
            "health",
            shown(f"{spec.health.type} {spec.health.path if spec.health.type == 'http' else ''}"),
            "restart",
            spec.restart,
        )
        self.query_one("#overview-facts", Static).update(Group(facts))

    def _start_logs(self) -> None:
        if not self._logs_started:
            self._logs_started = True
            tail, since = self.query_one("#app-logs", LogPanel).tail_and_since()
            self.stream_logs(tail, since)

    @api_work(exclusive=True, group="app-logs")
    async def stream_logs(self, tail: int | None, since: timedelta | None, *, clear: bool = True) -> None:
        assert self.mist.api is not None
        view = self.query_one("#app-logs", LogPanel).view
        container = self.current.container_name if self.current is not None else None
        self._logs_container = container
        if clear:
            view.clear()
        elif container:
            view.write(LogEntry(ts=self.mist.clock(), text=f"── now following {container} ──", source="mist"))
        start = self.mist.clock() - since if since else None
        stream = self._logs_stream = object()
        try:
            async for line in self.mist.api.apps.logs(self.app_ref, follow=True, tail=tail, since=start):
                view.write(LogEntry(ts=line.ts, text=line.text, source=line.source, stream=line.stream))
        finally:
            if self._logs_stream is stream:
                self._logs_stream = None

    @on(LogPanel.RangeChanged, "#app-logs")
    def _range_changed(self, event: LogPanel.RangeChanged) -> None:
        self.stream_logs(event.tail, event.since)

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id
        if pane == "overview":
            self.query_one("#recent", MistTable).focus()
        elif pane == "settings":
            # The tab strip, not the first field: number keys still switch tabs, Tab walks into the form.
            self.query_one(TabbedContent).query_one(Tabs).focus()
        elif pane == "logs":
            self._start_logs()
            self.query_one("#app-logs", LogPanel).view.focus()
        elif pane == "environment":
            self.query_one("#env", MistTable).focus()
        elif pane == "deployments":
            self.query_one("#deployments-table", MistTable).focus()
        elif pane == "domains":
            self.query_one("#domains-table", MistTable).focus()
        elif pane == "git":
            # Deliveries arrive without events: each visit shows the latest.
            self.query_one(GitPane).load()
            self.query_one("#deliveries", MistTable).focus()
        self.refresh_bindings()

    @on(DataTable.RowSelected)
    def _open_deployment(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id in ("recent", "deployments-table") and event.row_key.value:
            self.mist.open_deployment(int(event.row_key.value))

    # ------------------------------------------------------------------------------------------ actions

    def action_tab(self, tab: str) -> None:
        # Focus left inside the pane being hidden would make TabbedContent switch straight back to it.
        self.set_focus(None)
        self.query_one(TabbedContent).active = tab

    def action_deploy(self) -> None:
        if self.current is not None:
            ask_deploy(self.mist, self.current)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "rollback":
            # Rolling back acts on the selected deployment: offered where deployments are listed.
            return self.query_one(TabbedContent).active in ("deployments", "overview")
        return True

    def action_copy(self) -> None:
        """The selected deployment's commit, or the selected variable's value (once revealed)."""
        focused = self.focused
        if isinstance(focused, MistTable) and focused.id in ("recent", "deployments-table"):
            key = focused.selected_key
            d = next((d for d in self.deployments if str(d.id) == key), None)
            if d is not None and d.commit_sha:
                copy(self, d.commit_sha, f"the commit of #{d.id}")
        elif isinstance(focused, MistTable) and focused.id == "env":
            env = self.query_one(EnvironmentPane)
            var = env.vars.get(focused.selected_key or "")
            if var is None:
                return
            if var.value is None:
                self.mist.notify(f"{var.key} is secret: r reveals it, then y copies it.", severity="warning")
            else:
                copy(self, var.value, var.key)

    def rollback_to_previous(self) -> None:
        """Select the deployment that was live before the live one and ask to roll back to it."""
        app = self.current
        assert app is not None
        live = app.live_deployment_id
        earlier = [
            d
            for d in self.deployments
            if live is not None and d.id < live and d.state.value in ("superseded", "rolled_back") and d.image
        ]
        if not earlier:
            self.mist.notify(f"{app.ref} has no earlier deployment to roll back to.", severity="warning")
            return
        previous = max(earlier, key=lambda d: d.id)
        table = self.query_one("#deployments-table", MistTable)
        table.move_cursor(row=table.get_row_index(str(previous.id)), animate=False)
        self.action_rollback()

    def action_rollback(self) -> None:
        app = self.current
        if app is None:
            return
        tabs = self.query_one(TabbedContent)
        table = self.query_one("#recent" if tabs.active == "overview" else "#deployments-table", MistTable)
        key = table.selected_key
        target = next((d for d in self.deployments if key and str(d.id) == key), None)
        if target is None:
            return
        if target.id == app.live_deployment_id:
            self.mist.notify(
                f"Deployment {target.id} is the live one: select an earlier deployment to roll back to.",
                severity="warning",
            )
            return
        commit = short_sha(target.commit_sha) if target.commit_sha else target.ref

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._rollback(target.id)

        self.app.push_screen(
            ConfirmDialog(
                f"Roll back {app.ref}",
                f"Roll back {app.ref} to deployment {target.id} (commit {commit})? A new deployment runs its "
                "image and configuration through the health check, then takes over the traffic.",
                confirm_label="Roll back",
                danger=False,
            ),
            confirmed,
        )

    @api_work(exclusive=True, group="app-rollback")
    async def _rollback(self, deployment_id: int) -> None:
        assert self.mist.api is not None
        deployment = await self.mist.api.apps.rollback(self.app_ref, to=deployment_id)
        self.mist.notify(
            f"Rollback of {self.app_ref} to #{deployment_id} queued as deployment #{deployment.id}."
        )
        self.mist.open_deployment(deployment.id)

    def action_describe(self) -> None:
        from .describe import DescribeScreen

        self.app.push_screen(DescribeScreen(self.app_ref))

    def action_shell(self) -> None:
        from ..exec import open_shell

        open_shell(self, self.app_ref)

    def action_stop_start(self) -> None:
        app = self.current
        if app is None:
            return
        if app.status in ("live", "deploying", "crashed"):
            self.app.push_screen(
                ConfirmDialog(
                    f"Stop {app.ref}",
                    f"Stop {app.ref}? Its container {app.container_name or ''} stops and the app stops answering until started again.",
                    confirm_label="Stop",
                ),
                self._confirmed_stop,
            )
        else:
            self._lifecycle("start")

    def _confirmed_stop(self, yes: bool | None) -> None:
        if yes:
            self._lifecycle("stop")

    def action_restart(self) -> None:
        self._lifecycle("restart")

    @api_work(exclusive=True, group="app-lifecycle")
    async def _lifecycle(self, verb: str) -> None:
        assert self.mist.api is not None
        call = getattr(self.mist.api.apps, verb)
        self.current = await call(self.app_ref)
        self.mist.notify(f"{self.app_ref}: {verb} done.")
        self._show_app()

    def action_delete(self) -> None:
        app = self.current
        if app is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._delete()

        self.app.push_screen(
            ConfirmDialog(
                f"Delete {app.ref}",
                f"Delete the app {app.ref}? Its containers, images, environment and deployment history are removed. This cannot be undone.",
                confirm_label=f"Delete {app.ref}",
            ),
            confirmed,
        )

    @api_work(exclusive=True, group="app-delete")
    async def _delete(self) -> None:
        assert self.mist.api is not None
        await self.mist.api.apps.delete(self.app_ref)
        self.mist.notify(f"Deleted {self.app_ref}.")
        self.app.pop_screen()
