"""The log view with its controls: a status line (following / paused with new lines, matches), a search
bar, optional tail/since choices, and the keys that drive them. Used by the app's Logs tab, the
deployment screen and the multi-logs screen."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from ..format import counted, shown
from .clipboard import copy
from .log_view import LogView

TAIL_CHOICES = [
    ("last 100", 100),
    ("last 200", 200),
    ("last 1000", 1000),
    ("last 10000", 10000),
    ("everything", 0),
]
SINCE_CHOICES = [("any time", 0), ("last 5 min", 300), ("last hour", 3600), ("last day", 86400)]


class LogPanel(Vertical):
    """A ``LogView`` plus search, filter, follow and save controls."""

    BINDINGS = [
        Binding("slash", "search", "Search", id="logs.search"),
        Binding("n", "next_match", "Next", id="logs.next_match"),
        Binding("N", "previous_match", "Prev", id="logs.previous_match"),
        Binding("F", "toggle_filter", "Filter", id="logs.filter"),
        Binding("x", "toggle_regex", "Regex", show=False, id="logs.regex"),
        Binding("C", "toggle_case", "Case", show=False, id="logs.case"),
        Binding("f", "follow", "Follow", id="logs.follow"),
        Binding("end", "follow", "Follow", show=False, id="logs.follow_end"),
        Binding("t", "toggle_timestamps", "Times", id="logs.timestamps"),
        Binding("w", "toggle_wrap", "Wrap", id="logs.wrap"),
        Binding("ctrl+s", "save", "Save", id="logs.save"),
        Binding("y", "copy", "Copy line", show=False, id="logs.copy"),
        Binding("j", "scroll_down", "Down", show=False, id="logs.down"),
        Binding("k", "scroll_up", "Up", show=False, id="logs.up"),
        Binding("g", "top", "Top", show=False, id="logs.top"),
        Binding("G", "follow", "Bottom", show=False, id="logs.bottom"),
    ]

    class RangeChanged(Message):
        """The reader chose another tail/since: the owner restarts its stream."""

        def __init__(self, panel: LogPanel, tail: int | None, since: timedelta | None) -> None:
            super().__init__()
            self.panel = panel
            self.tail = tail
            self.since = since

        @property
        def control(self) -> LogPanel:
            return self.panel

    def __init__(
        self,
        *,
        cap: int = 50_000,
        show_source: bool = False,
        range_choices: bool = False,
        title: str = "",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.cap = cap
        self.show_source = show_source
        self.range_choices = range_choices
        self.title = title
        self.regex = False
        self.case = False
        self._search_error: str | None = None
        self._status_shown: Text | None = None
        self._range: tuple[int | None, timedelta | None] = (200, None)

    def compose(self) -> ComposeResult:
        if self.range_choices or self.title:
            with Horizontal(classes="log-bar"):
                yield Label(shown(self.title), classes="log-title")
                if self.range_choices:
                    yield Select(TAIL_CHOICES, value=200, allow_blank=False, id="log-tail", compact=True)
                    yield Select(SINCE_CHOICES, value=0, allow_blank=False, id="log-since", compact=True)
        yield LogView(cap=self.cap, show_source=self.show_source)
        with Horizontal(classes="log-search"):
            yield Label(" / ", classes="log-search-prompt")
            yield Input(
                placeholder="search (Enter keeps it, Esc clears)", id="log-search-input", compact=True
            )
        yield Static(classes="log-status")

    def set_title(self, title: str) -> None:
        self.title = title
        for label in self.query(".log-title").results(Label):
            label.update(shown(title))

    def on_log_view_flushed(self) -> None:
        self._refresh_status()

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def on_mount(self) -> None:
        self.watch(self.view, "following", self._refresh_status, init=False)
        self.watch(self.view, "new_lines", self._refresh_status, init=False)
        self.watch(self.view, "match_count", self._refresh_status, init=False)
        self._refresh_status()

    def tail_and_since(self) -> tuple[int | None, timedelta | None]:
        if not self.range_choices:
            return 200, None
        tail = self.query_one("#log-tail", Select).value
        since = self.query_one("#log-since", Select).value
        return (int(tail) or None), (timedelta(seconds=int(since)) if since else None)  # type: ignore[arg-type]

    @on(Select.Changed)
    def _range_changed(self, event: Select.Changed) -> None:
        event.stop()
        tail, since = self.tail_and_since()
        if (tail, since) == self._range:
            return
        self._range = (tail, since)
        self.view.clear()
        self.post_message(self.RangeChanged(self, tail, since))

    def _refresh_status(self, *_: object) -> None:
        view = self.view
        status = Text()
        if view.following:
            status.append(" ● following ", style="bold green")
        else:
            status.append(" ❚❚ paused ", style="bold yellow")
            if view.new_lines:
                status.append(f" {view.new_lines:,} new lines ", style="black on yellow")
                status.append("  f to follow", style="dim")
        if view.search is not None:
            status.append(f"   /{view.search.pattern if self.regex else self._pattern()}/ ", style="bold")
            status.append(f"{view.match_count:,} matching lines", style="")
            flags = [
                name
                for name, on_ in (
                    ("regex", self.regex),
                    ("case", self.case),
                    ("filtered", view.filter_matches),
                )
                if on_
            ]
            if flags:
                status.append("  [" + ", ".join(flags) + "]", style="dim")
        if self._search_error:
            status.append(f"   {self._search_error}", style="bold red")
        status.append(f"   {counted(view.buffer.end - view.buffer.first, 'line')}", style="dim")
        if status == self._status_shown:
            return
        self._status_shown = status
        # One line of fixed height and full width: its size never changes, so no layout is needed. A
        # layout here re-rendered the whole screen at every flush of a log flood.
        self.query_one(".log-status", Static).update(status, layout=False)

    def _pattern(self) -> str:
        return self.query_one("#log-search-input", Input).value

    def _apply_search(self) -> None:
        try:
            self.view.set_search(self._pattern(), regex=self.regex, case=self.case)
            self._search_error = None
        except re.error as exc:
            self._search_error = f"not a valid regex: {exc}"
        self._refresh_status()

    # ------------------------------------------------------------------------------------------ actions

    def action_search(self) -> None:
        self.add_class("-searching")
        self.query_one("#log-search-input", Input).focus()

    @on(Input.Changed, "#log-search-input")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._apply_search()

    @on(Input.Submitted, "#log-search-input")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.view.jump_to_match(forward=False)
        self.view.focus()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.has_class("-searching"):
            event.stop()
            self.query_one("#log-search-input", Input).value = ""
            self.remove_class("-searching")
            self._apply_search()
            self.view.focus()

    def action_next_match(self) -> None:
        self.view.jump_to_match(forward=True)

    def action_previous_match(self) -> None:
        self.view.jump_to_match(forward=False)

    def action_toggle_filter(self) -> None:
        self.view.set_filter(not self.view.filter_matches)
        self._refresh_status()

    def action_toggle_regex(self) -> None:
        self.regex = not self.regex
        self._apply_search()

    def action_toggle_case(self) -> None:
        self.case = not self.case
        self._apply_search()

    def action_follow(self) -> None:
        self.view.follow()

    def action_toggle_timestamps(self) -> None:
        self.view.set_timestamps(not self.view.timestamps)

    def action_toggle_wrap(self) -> None:
        self.view.set_wrap(not self.view.wrap)

    def action_scroll_down(self) -> None:
        self.view.scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.view.scroll_up(animate=False)

    def action_top(self) -> None:
        self.view.scroll_home(animate=False)

    def action_copy(self) -> None:
        line = self.view.line_to_copy()
        if line is not None:
            copy(self, line, "the line")

    def action_save(self) -> None:
        from ..screens.dialogs import PromptDialog

        def chosen(path: str | None) -> None:
            if path:
                self._save(Path(path).expanduser())

        self.app.push_screen(
            PromptDialog("Save the log to a file", label="Path", value="mist.log", submit_label="Save"),
            chosen,
        )

    @work(thread=True, exit_on_error=False, group="log-save")
    def _save(self, path: Path) -> None:
        lines = list(self.view.visible_text())
        try:
            path.write_text("\n".join(lines) + "\n")
        except OSError as exc:
            self.app.call_from_thread(
                self.app.notify,
                f"Could not write {path}: {exc.strerror}. Choose another path.",
                severity="error",
            )
            return
        self.app.call_from_thread(self.app.notify, f"Saved {counted(len(lines), 'line')} to {path}")
