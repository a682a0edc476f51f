"""One deployment: its steps (fetching → switching) with state and duration, and the build log, live."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Header, Static

from mist_core.errors import NotFound
from mist_core.models import PIPELINE_STEPS, Deployment, DeploymentState

from ..format import human_age, human_duration, printable_text, right, short_sha, status_text
from ..widgets.footer import MistFooter
from ..widgets.log_panel import LogPanel
from ..widgets.log_view import LogEntry
from ..widgets.table import MistTable
from ..workers import api_work
from .dialogs import ConfirmDialog

if TYPE_CHECKING:
    from ..app import MistApp

POLL_SECONDS = 1.0
ROLLBACK_SKIPS = (DeploymentState.fetching, DeploymentState.building)


# A line of build output that says what went wrong (BuildKit's "ERROR: failed to solve: ...", a parse error).
CAUSE = re.compile(r"\berror\b|failed|unknown instruction|not found|denied", re.IGNORECASE)
# BuildKit's progress lines (layer digests, timings, transfers): never the reason, so not shown beside it.
NOISE = re.compile(r"sha256:[0-9a-f]{12,}|^#\d+ (DONE|CACHED)\b|transferring|^#\d+ \[internal\]")
LINES_BEFORE = 3


def failure_excerpt(error: str) -> tuple[str, list[str], str | None]:
    """What a failure panel shows first: the headline of ``error``, then the line that gives the cause with
    the few lines before it (not the start of the output, which is mostly digests), and that cause line
    (to find it in the log) when there is one."""
    headline, *rest = error.splitlines() or [""]
    lines = [line for line in rest if line.strip() and not NOISE.search(line)]
    for at in range(len(lines) - 1, -1, -1):
        if CAUSE.search(lines[at]):
            return headline, lines[max(0, at - LINES_BEFORE) : at + 1], lines[at].strip()
    return headline, lines[-LINES_BEFORE - 1 :], None


def step_rows(deployment: Deployment, now) -> list[tuple[str, Text, Text]]:
    """``(step, state, duration)`` for each pipeline step, as the user should read it."""
    timings = {t.step: t for t in deployment.steps}
    last = deployment.steps[-1].step if deployment.steps else None
    # A rollback runs an earlier image: it never fetches or builds, and can say so from the start.
    never = ROLLBACK_SKIPS if deployment.source == "rollback" else ()
    rows = []
    for step in PIPELINE_STEPS:
        timing = timings.get(step)
        if timing is not None and step == last and deployment.state == DeploymentState.failed:
            end = timing.finished_at or deployment.finished_at or now
            took = human_duration((end - timing.started_at).total_seconds())
            rows.append((step.value, Text("✕ failed", style="bold red"), right(took, "red")))
            continue
        if timing is not None and step == last and deployment.state == DeploymentState.cancelled:
            # The step the cancel stopped: its end is when it was stopped, not when it was done.
            end = timing.finished_at or deployment.finished_at or now
            took = human_duration((end - timing.started_at).total_seconds())
            rows.append((step.value, Text("■ cancelled", style="bold"), right(took)))
            continue
        if timing is None:
            state = (
                Text("· pending", style="dim")
                if not deployment.state.is_final and step not in never
                else Text("· skipped", style="dim")
            )
            rows.append((step.value, state, right("", "dim")))
            continue
        if timing.finished_at is not None:
            rows.append((step.value, Text("✓ done", style="green"), right(human_duration(timing.seconds))))
            continue
        end = deployment.finished_at or now
        elapsed = human_duration((end - timing.started_at).total_seconds())
        if deployment.state == DeploymentState.failed:
            rows.append((step.value, Text("✕ failed", style="bold red"), right(elapsed, "red")))
        elif deployment.state == DeploymentState.cancelled:
            rows.append((step.value, Text("■ cancelled", style="dim"), right(elapsed)))
        else:
            rows.append((step.value, Text("◐ running", style="bold yellow"), right(elapsed, "yellow")))
    return rows


class DeploymentScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="deployment.back"),
        Binding("c", "cancel", "Cancel deployment", id="deployment.cancel"),
    ]

    def __init__(self, deployment_id: int) -> None:
        super().__init__()
        self.deployment_id = deployment_id
        self.deployment: Deployment | None = None
        self._cause_pending = True  # a failed deployment's log still has to be moved to its cause
        self._error_shown = ""  # the failure panel's text, redrawn only when it changes

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="deployment-summary")
        with Horizontal(id="deployment-body"):
            with Vertical(id="deployment-side"):
                yield MistTable(id="steps", zebra=False)
                yield Static(id="deployment-error")
            yield LogPanel(cap=self.mist.config.log_buffer_lines, title="Build log", id="build-log")
        yield MistFooter()

    def on_mount(self) -> None:
        steps = self.query_one("#steps", MistTable)
        steps.add_column("Step", key="step", width=10)
        steps.add_column("State", key="state", width=12)
        steps.add_column(Text("Took", justify="right"), key="took", width=7)
        steps.border_title = "Steps"
        steps.cursor_type = "none"
        self.query_one("#deployment-error", Static).display = False
        self.poll()
        self.stream_log()
        self.query_one("#build-log", LogPanel).view.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.deployment is not None and not self.deployment.state.is_final
        return True

    @api_work(exclusive=True, group="deployment-poll")
    async def poll(self) -> None:
        assert self.mist.api is not None
        try:
            self.deployment = await self.mist.api.deployments.get(self.deployment_id)
        except NotFound:
            self.query_one("#deployment-summary", Static).update(
                Text(f" Deployment #{self.deployment_id} was not found. Esc goes back.", style="bold red")
            )
            raise
        self.show()
        if not self.deployment.state.is_final:
            # The next poll is scheduled when this one is done, so slow answers never pile up.
            self.set_timer(POLL_SECONDS, self.poll)

    @api_work(exclusive=True, group="deployment-log")
    async def stream_log(self) -> None:
        assert self.mist.api is not None
        view = self.query_one("#build-log", LogPanel).view
        view.clear()  # a stream opened again after a reconnect starts from the first line
        async for line in self.mist.api.deployments.log(self.deployment_id, follow=True):
            view.write(LogEntry(ts=line.ts, text=line.text, source=line.source, stream=line.stream))
        self.poll()

    def tick(self) -> None:
        """A second passed: the running step's time and "started … ago" move on."""
        if self.deployment is not None:
            self.show()

    def reconnected(self) -> None:
        self.poll()
        if self.deployment is None or not self.deployment.state.is_final:
            self.stream_log()

    def show(self) -> None:
        d = self.deployment
        assert d is not None
        now = self.mist.clock()
        text = Text()
        text.append(f" Deployment #{d.id} ", style="bold")
        text.append(f"of {d.project}/{d.app}   ")
        text.append_text(status_text(d.state.value, icon=False))
        text.append("\n ")
        text.append(short_sha(d.commit_sha), style="bold")
        text.append(f" {d.commit_message or ''}".rstrip())
        text.append(f"   ref {d.ref}", style="dim")
        if d.commit_author:
            text.append(f" · by {d.commit_author}", style="dim")
        text.append(f" · started {human_age(d.created_at, now)} ago", style="dim")
        if d.duration is not None:
            text.append(f" · took {human_duration(d.duration)}", style="dim")
        # The commit's message and author, the ref: stored text, shown with its control characters neutralised.
        self.query_one("#deployment-summary", Static).update(printable_text(text), layout=False)
        table = self.query_one("#steps", MistTable)
        table.clear()
        for step, state, took in step_rows(d, now):
            table.add_row(Text(step), state, took, key=step)
        error = self.query_one("#deployment-error", Static)
        if d.error:
            headline, excerpt, cause = failure_excerpt(d.error)
            panel = Text.assemble(("Failed: ", "bold red"), (headline, "red"))
            for line in excerpt:
                panel.append("\n")
                panel.append(line.strip(), style="bold red" if line.strip() == cause else "dim")
            if panel.plain != self._error_shown:
                self._error_shown = panel.plain
                error.update(printable_text(panel))
            error.display = True
            if self._cause_pending and d.state.is_final:
                self._open_log_at(cause)
        else:
            error.display = False
        self.refresh_bindings()

    def _open_log_at(self, cause: str | None) -> None:
        """The build log of a failed deployment opens at the cause, wrapped so none of it is off the edge."""
        view = self.query_one("#build-log", LogPanel).view
        if not view.wrap:
            view.set_wrap(True)
        if cause is None:
            self._cause_pending = False
        elif view.show_last(lambda text: cause in text):
            self._cause_pending = False

    def action_cancel(self) -> None:
        d = self.deployment
        if d is None or d.state.is_final:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._cancel()

        self.app.push_screen(
            ConfirmDialog(
                f"Cancel deployment #{d.id}",
                f"Cancel deployment #{d.id} of {d.project}/{d.app} ({d.state.value})? "
                "Its new container is removed; the live one keeps serving.",
                confirm_label="Cancel deployment",
            ),
            confirmed,
        )

    @api_work(exclusive=True, group="deployment-cancel")
    async def _cancel(self) -> None:
        assert self.mist.api is not None
        self.deployment = await self.mist.api.deployments.cancel(self.deployment_id)
        self.mist.notify(f"Deployment #{self.deployment_id} cancelled.")
        self.show()
