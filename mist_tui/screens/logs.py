"""Several apps' logs interleaved in one view, each with its own colour in a source column; the reader
picks the apps from a list beside it."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Header, SelectionList

from mist_core.errors import MistError

from ..widgets.footer import MistFooter
from ..widgets.log_panel import LogPanel
from ..widgets.log_view import LogEntry
from ..workers import ApiFailed, api_work

if TYPE_CHECKING:
    from ..app import MistApp


class AppPicker(SelectionList[str]):
    """The apps to follow: j and k move as in every other list, Space picks."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="multilogs.down"),
        Binding("k", "cursor_up", "Up", show=False, id="multilogs.up"),
    ]


class LogsScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="multilogs.back"),
        Binding("p", "toggle_picker", "Pick apps", id="multilogs.pick"),
    ]

    def __init__(self, app_refs: list[str]) -> None:
        super().__init__()
        self.initial = app_refs
        self.streaming: set[str] = set()

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield AppPicker(id="log-apps")
            yield LogPanel(
                cap=self.mist.config.log_buffer_lines, show_source=True, range_choices=True, id="multi-logs"
            )
        yield MistFooter()

    def on_mount(self) -> None:
        self.query_one("#log-apps", SelectionList).border_title = "Apps"
        self.load_apps()
        if self.initial:
            self.add_class("-picker-hidden")
            self.query_one("#multi-logs", LogPanel).view.focus()
        else:
            self.query_one("#log-apps", SelectionList).focus()

    @api_work(exclusive=True, group="multilogs-apps")
    async def load_apps(self) -> None:
        assert self.mist.api is not None
        refs: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = await self.mist.api.apps.list(limit=500, offset=offset)
            refs += [a.ref for a in page.items]
            offset = page.next_offset
        picker = self.query_one("#log-apps", SelectionList)
        picker.add_options([(ref, ref, ref in self.initial) for ref in sorted(refs)])
        if picker.highlighted is None and picker.option_count:
            picker.highlighted = 0  # the cursor is visible from the start, so Space picks at once
        self._sync()

    @on(SelectionList.SelectedChanged, "#log-apps")
    def _sync(self) -> None:
        wanted = set(self.query_one("#log-apps", SelectionList).selected)
        for ref in wanted - self.streaming:
            self.stream(ref)
        for ref in self.streaming - wanted:
            for worker in self.workers:
                if worker.group == f"logs:{ref}":
                    worker.cancel()
        self.streaming = wanted
        self.query_one("#multi-logs", LogPanel).set_title(
            ", ".join(sorted(wanted)) or "no apps chosen: p picks"
        )

    def stream(self, ref: str) -> None:
        panel = self.query_one("#multi-logs", LogPanel)
        tail, since = panel.tail_and_since()
        self.run_worker(
            partial(self._follow, ref, tail, since),  # type: ignore[arg-type]
            group=f"logs:{ref}",
            exit_on_error=False,
        )

    async def _follow(self, ref: str, tail, since) -> None:
        assert self.mist.api is not None
        view = self.query_one("#multi-logs", LogPanel).view
        start = self.mist.clock() - since if since else None
        try:
            async for line in self.mist.api.apps.logs(ref, follow=True, tail=tail, since=start):
                view.write(LogEntry(ts=line.ts, text=line.text, source=ref, stream=line.stream))
        except MistError as error:
            self.post_message(ApiFailed(error))

    def reconnected(self) -> None:
        if not self.query_one("#log-apps", SelectionList).option_count:
            self.load_apps()
        self._range_changed()

    @on(LogPanel.RangeChanged)
    def _range_changed(self) -> None:
        for worker in self.workers:
            if worker.group.startswith("logs:"):
                worker.cancel()
        self.streaming = set()
        self._sync()

    def action_toggle_picker(self) -> None:
        self.toggle_class("-picker-hidden")
        if not self.has_class("-picker-hidden"):
            self.query_one("#log-apps", SelectionList).focus()
