"""The describe modal: what an app's live container is right now (image, command, environment with secret
values hidden by the core, mounts, ports, health, restarts, start time), read once when it opens."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from mist_core.models import ContainerDescription

from ..format import shown
from ..workers import api_work

SECRET = "•••••• (secret)"


def description_table(d: ContainerDescription) -> Table:
    """The container's facts, one per row; every value came from a user or an image: never markup."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()

    def row(name: str, value: object) -> None:
        table.add_row(name, shown(value) if value not in (None, "") else Text("—", style="dim"))

    row("container", d.name)
    row("deployment", f"#{d.deployment_id}" if d.deployment_id else None)
    row("image", d.image)
    row("command", " ".join(d.command))
    row("state", d.state + (f" (exit {d.exit_code})" if d.exit_code is not None else ""))
    row("health", d.health or "no health check")
    row("restarts", d.restart_count)
    row("restart policy", d.restart_policy)
    row("started at", d.started_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if d.started_at else None)
    row("ports", ", ".join(d.ports))
    row("networks", ", ".join(d.networks))
    mounts = [
        f"{m.name or m.source or m.type} → {m.destination}{' (read-only)' if m.read_only else ''}"
        for m in d.mounts
    ]
    row("mounts", "\n".join(mounts))
    row("working dir", d.working_dir)
    row("user", d.user)
    env = Text()
    for i, e in enumerate(d.env):
        if i:
            env.append("\n")
        env.append_text(shown(e.key, style="bold"))
        env.append("=")
        env.append_text(Text(SECRET, style="dim") if e.secret else shown(e.value or ""))
    table.add_row("env", env if d.env else Text("—", style="dim"))
    if any(e.secret for e in d.env):
        table.add_row("", Text("secret values hidden", style="italic dim"))
    return table


class DescribeScreen(ModalScreen[None]):
    """``d`` on an app: its live container described; Esc closes."""

    DEFAULT_CSS = """
    DescribeScreen #describe { width: 90%; max-width: 110; max-height: 90%; }
    """
    BINDINGS = [Binding("escape", "dismiss_describe", "Close", id="describe.close")]

    def __init__(self, app_ref: str) -> None:
        super().__init__()
        self.app_ref = app_ref
        self.described: ContainerDescription | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -safe", id="describe"):
            yield Label(shown(f"{self.app_ref}: live container"), classes="dialog-title")
            with VerticalScroll():
                yield Static("Reading the container…", id="describe-body")

    def on_mount(self) -> None:
        self._load()

    @api_work(exclusive=True, group="describe")
    async def _load(self) -> None:
        api = self.app.api  # type: ignore[attr-defined]
        body = self.query_one("#describe-body", Static)
        try:
            self.described = await api.containers.describe(self.app_ref)
        except Exception as error:
            body.update(shown(error, style="red"))
            raise
        body.update(description_table(self.described))

    def action_dismiss_describe(self) -> None:
        self.dismiss(None)
