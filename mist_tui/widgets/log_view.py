"""A line-based log view that stays fast under a firehose.

Producers call ``LogView.write`` (cheap: it only appends to a pending list). A timer moves pending lines
into a capped ring buffer about ten times a second and extends the row index; ``render_line`` draws only
the rows on screen and caches what it drew. Scrolling up pauses following and counts new lines;
scrolling back to the bottom (or ``follow()``) resumes.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import NamedTuple

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from mist_core.printable import printable

from .. import heap

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|[\x00-\x08\x0a-\x1f\x7f]")

SOURCE_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta")
STREAM_STYLES = {"stderr": Style(color="red"), "system": Style(color="cyan", italic=True)}
MATCH_STYLE = Style(color="black", bgcolor="yellow")
CURRENT_MATCH_STYLE = Style(color="black", bgcolor="dark_orange", bold=True)


class LogEntry(NamedTuple):
    """One line."""

    ts: datetime
    text: str
    source: str = ""
    stream: str = "stdout"

    def plain(self, *, timestamps: bool = True, source: bool = False) -> str:
        parts = []
        if timestamps:
            parts.append(self.ts.strftime("%Y-%m-%dT%H:%M:%S"))
        if source and self.source:
            parts.append(self.source)
        parts.append(self.text)
        return " ".join(parts)


def clean(text: str) -> str:
    """Container output may carry colour codes and control characters: they would corrupt the screen and
    break column maths, so the sequences are removed, tabs expanded, and any control or bidi character left
    replaced (``mist_core.printable``)."""
    return printable(ANSI_ESCAPE.sub("", text.rstrip("\n")).expandtabs(4))


class LogBuffer:
    """The newest ``cap`` entries, addressed by an absolute index that keeps counting as old ones fall off."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        # Kept as plain tuples of strings and a datetime, which the garbage collector stops tracking:
        # full collections over 50,000 kept entries as objects held the event loop for about 100 ms.
        self._entries: deque[tuple[datetime, str, str, str]] = deque(maxlen=cap)
        self.first = 0  # absolute index of the oldest entry kept

    def extend(self, entries: list[LogEntry]) -> None:
        overflow = len(self._entries) + len(entries) - self.cap
        if overflow > 0:
            self.first += overflow
        self._entries.extend(map(tuple, entries))  # type: ignore[arg-type]

    def clear(self) -> None:
        self.first += len(self._entries)
        self._entries.clear()

    def skip(self, count: int) -> None:
        """``count`` lines arrived that nobody will see (older than what the buffer can hold): they
        push everything kept out and still count."""
        self.clear()
        self.first += count

    @property
    def end(self) -> int:
        """One past the absolute index of the newest entry."""
        return self.first + len(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> LogEntry:
        return LogEntry._make(self._entries[index - self.first])

    def items(self, start: int | None = None) -> Iterator[tuple[int, LogEntry]]:
        start = self.first if start is None else max(start, self.first)
        make = LogEntry._make
        for offset in range(start - self.first, len(self._entries)):
            yield self.first + offset, make(self._entries[offset])


class LogView(ScrollView, can_focus=True):
    """Draws a ``LogBuffer``: one row per entry, or several when wrapping."""

    class Flushed(Message):
        """New lines reached the screen (at most one per flush interval)."""

    DEFAULT_CSS = """
    LogView { background: $surface; }
    """

    following: reactive[bool] = reactive(True, repaint=False)
    new_lines: reactive[int] = reactive(0, repaint=False)
    match_count: reactive[int] = reactive(0, repaint=False)

    def __init__(
        self,
        *,
        cap: int = 50_000,
        show_source: bool = False,
        timestamps: bool = True,
        flush_interval: float = 0.1,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.buffer = LogBuffer(cap)
        self.show_source = show_source
        self.timestamps = timestamps
        self.wrap = False
        self.filter_matches = False
        self.search: re.Pattern[str] | None = None
        self.flush_interval = flush_interval
        self._pending: list[LogEntry] = []
        self._skipped = 0  # lines dropped before they reached the buffer
        self._rows: list[tuple[int, int]] = []  # (absolute entry index, first character of the row)
        self._max_width = 0
        self._source_width = 0
        self._source_colours: dict[str, str] = {}
        self._cache: LRUCache[tuple[int, int], Strip] = LRUCache(2048)
        self._current_match: int | None = None  # a row index
        self._settling = False

    def on_mount(self) -> None:
        self.set_interval(self.flush_interval, self.flush)
        # A log view may be flooded for as long as it is open: once the screen around it is built, keep
        # it out of the full collections the flood will set off.
        self.call_after_refresh(heap.settle)

    # ------------------------------------------------------------------------------------------ producers

    def write(self, entry: LogEntry) -> None:
        """Queue one line; it appears at the next flush."""
        text = clean(entry.text)
        self._pending.append(entry if text == entry.text else entry._replace(text=text))
        if len(self._pending) > 2 * self.buffer.cap:
            # A producer far ahead of the screen: keep only what the buffer could hold anyway.
            excess = len(self._pending) - self.buffer.cap
            del self._pending[:excess]
            self._skipped += excess

    def clear(self) -> None:
        self._pending.clear()
        self._skipped = 0
        self.buffer.clear()
        self._rows.clear()
        self._cache.clear()
        self._max_width = 0
        self._current_match = None
        self.new_lines = 0
        self.match_count = 0
        self._update_size()
        self.refresh()
        self.post_message(self.Flushed())

    def flush(self) -> None:
        """Move pending lines into the buffer and the row index; keep the view where the reader left it."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if self.show_source:
            # Several sources deliver their backlog in bursts: within a flush, put them in time order.
            pending.sort(key=lambda e: (e.ts, e.source))
            if len(self.buffer) and pending[0].ts < self.buffer[self.buffer.end - 1].ts:
                self._merge_late(pending)
                return
        skipped, self._skipped = self._skipped, 0
        if len(pending) > self.buffer.cap:
            skipped += len(pending) - self.buffer.cap
            pending = pending[-self.buffer.cap :]
        if skipped:
            self.buffer.skip(skipped)
        start = self.buffer.end
        self.buffer.extend(pending)
        trimmed = 0
        if self._rows and self._rows[0][0] < self.buffer.first:
            trimmed = bisect_left(self._rows, (self.buffer.first, -1))
            del self._rows[:trimmed]
            if self._current_match is not None:
                self._current_match = (
                    self._current_match - trimmed if self._current_match >= trimmed else None
                )
        added = 0
        for index, entry in self.buffer.items(start):
            if self.show_source and entry.source and entry.source not in self._source_colours:
                self._remember_source(entry.source)
            if self.search is not None and self.search.search(entry.text):
                self.match_count += 1
            elif self.filter_matches and self.search is not None:
                continue
            self._max_width = max(self._max_width, len(entry.text))
            added += 1
            self._rows.extend(self._rows_for(index, entry))
        self._update_size()
        if self.following:
            self._scroll_to_row(len(self._rows))
        else:
            self.new_lines += added
            if trimmed:
                self._settle(
                    lambda: self.scroll_to(
                        y=max(0, self.scroll_y - trimmed), animate=False, immediate=True, force=True
                    )
                )
        self.refresh()
        self.post_message(self.Flushed())

    def _merge_late(self, pending: list[LogEntry]) -> None:
        """Lines older than what is shown arrived (another source's backlog): merge them in by time and
        rebuild the index. Rare after the first second of a multi-source view, so a full pass is fine."""
        merged = sorted([*(e for _, e in self.buffer.items()), *pending], key=lambda e: (e.ts, e.source))
        first = self.buffer.first
        self.buffer = LogBuffer(self.buffer.cap)
        self.buffer.first = first
        self.buffer.extend(merged)
        self._source_colours.clear()
        self._source_width = 0
        if not self.following:
            self.new_lines += len(pending)
        self._reindex()
        self.post_message(self.Flushed())

    # ------------------------------------------------------------------------------------------ options

    def set_timestamps(self, on: bool) -> None:
        self.timestamps = on
        self._reindex()

    def set_wrap(self, on: bool) -> None:
        self.wrap = on
        self._reindex()

    def set_search(self, pattern: str, *, regex: bool = False, case: bool = False) -> None:
        """Highlight ``pattern``; raises ``re.error`` for a broken regex so the caller can say so."""
        if not pattern:
            self.search = None
        else:
            flags = 0 if case else re.IGNORECASE
            self.search = re.compile(pattern if regex else re.escape(pattern), flags)
        self._current_match = None
        self._reindex()

    def set_filter(self, on: bool) -> None:
        self.filter_matches = on
        self._reindex()

    def follow(self) -> None:
        self.following = True
        self.new_lines = 0
        self._scroll_to_row(len(self._rows))

    def jump_to_match(self, forward: bool = True) -> bool:
        """Move to the next (or previous) row with a match; False when there is none."""
        if self.search is None or not self._rows:
            return False
        # From the match last jumped to while it is on screen; once the reader has scrolled away from it,
        # from what they are looking at.
        here = self._current_match
        top, height = int(self.scroll_y), self.size.height
        if here is None or not top <= here < top + height:
            here = top - 1 if forward else top + height
        order = range(here + 1, len(self._rows)) if forward else range(min(here, len(self._rows)) - 1, -1, -1)
        for row in order:
            index, offset = self._rows[row]
            if offset == 0 and self.search.search(self.buffer[index].text):
                self._current_match = row
                self.following = False
                self._settle(
                    lambda row=row: self.scroll_to(
                        y=max(0, row - self.size.height // 2), animate=False, immediate=True, force=True
                    )
                )
                self._cache.clear()
                self.refresh()
                return True
        return False

    def show_last(self, predicate: Callable[[str], bool]) -> bool:
        """Scroll to the last line ``predicate`` accepts, with the lines before it above (the reader looks
        at a failure and what led to it); False when no line on hand matches."""
        for row in range(len(self._rows) - 1, -1, -1):
            index, offset = self._rows[row]
            if offset == 0 and predicate(self.buffer[index].text):
                self.following = False
                top = max(0, row - self.size.height * 2 // 3)
                self._settle(lambda top=top: self.scroll_to(y=top, animate=False, immediate=True, force=True))
                self.refresh()
                return True
        return False

    def line_to_copy(self) -> str | None:
        """The line a reader means by "this line": the search match last jumped to, else the last line on
        screen."""
        if not self._rows:
            return None
        row = self._current_match
        top, height = int(self.scroll_y), self.size.height
        if row is None or not top <= row < top + height:
            row = min(len(self._rows), top + height) - 1
        index, _ = self._rows[max(0, row)]
        return self.buffer[index].text

    def visible_text(self) -> Iterator[str]:
        """What the view shows (the filter applies), as plain lines for saving to a file."""
        for _, entry in self.buffer.items():
            if self.filter_matches and self.search is not None and not self.search.search(entry.text):
                continue
            yield entry.plain(timestamps=self.timestamps, source=self.show_source)

    @property
    def row_count(self) -> int:
        return len(self._rows)

    # ------------------------------------------------------------------------------------------ internals

    def _remember_source(self, source: str) -> None:
        colour = SOURCE_COLOURS[len(self._source_colours) % len(SOURCE_COLOURS)]
        self._source_colours[source] = colour
        width = min(24, max(self._source_width, len(source)))
        if width != self._source_width:
            self._source_width = width
            self._cache.clear()

    @property
    def _prefix_width(self) -> int:
        width = 9 if self.timestamps else 0
        if self.show_source:
            width += self._source_width + 1
        return width

    def _text_width(self) -> int:
        # Wrapped rows leave the vertical scrollbar's column free whether or not it shows yet: a log that
        # grows gains one, and rows cut for the wider area would lose their last character under it.
        width = self.content_region.width - self.styles.scrollbar_size_vertical
        return max(10, width - self._prefix_width)

    def _rows_for(self, index: int, entry: LogEntry) -> list[tuple[int, int]]:
        if not self.wrap or not entry.text:
            return [(index, 0)]
        width = self._text_width()
        return [(index, offset) for offset in range(0, len(entry.text), width)]

    def _reindex(self) -> None:
        self._cache.clear()
        self._rows = []
        self._max_width = 0
        matches = 0
        for index, entry in self.buffer.items():
            if self.show_source and entry.source and entry.source not in self._source_colours:
                self._remember_source(entry.source)
            if self.search is not None and self.search.search(entry.text):
                matches += 1
            elif self.filter_matches and self.search is not None:
                continue
            self._max_width = max(self._max_width, len(entry.text))
            self._rows.extend(self._rows_for(index, entry))
        self.match_count = matches
        self._update_size()
        if self.following:
            self._scroll_to_row(len(self._rows))
        self.refresh()

    def _update_size(self) -> None:
        width = self.scrollable_content_region.width if self.wrap else self._prefix_width + self._max_width
        size = Size(width, len(self._rows))
        if size == self.virtual_size:
            return
        if not self.is_mounted or not self.size:
            self.virtual_size = size
            return
        # ``virtual_size`` asks for a layout of the whole screen, and a flood grows it at every flush:
        # that re-rendered every widget ten times a second. Only the scrollbars depend on it here, so
        # update them in place (a scrollbar appearing still asks for its own layout).
        self.set_reactive(Widget.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    def _settle(self, move) -> None:
        """Scroll without the move being taken as the reader scrolling away."""
        self._settling = True
        try:
            move()
        finally:
            self._settling = False

    def _scroll_to_row(self, row: int) -> None:
        self._settle(lambda: self.scroll_to(y=row, animate=False, immediate=True, force=True))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._settling:
            return
        at_bottom = new_value >= self.max_scroll_y
        if at_bottom and not self.following:
            self.following = True
            self.new_lines = 0
        elif not at_bottom and new_value < old_value and self.following:
            self.following = False

    def on_resize(self) -> None:
        if self.wrap:
            self._reindex()
        else:
            self._update_size()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        if row >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        key = self._rows[row]
        strip = self._cache.get(key) if row != self._current_match else None
        if strip is None:
            strip = self._render_row(key, current=row == self._current_match)
            if row != self._current_match:
                self._cache[key] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _render_row(self, key: tuple[int, int], *, current: bool) -> Strip:
        index, offset = key
        entry = self.buffer[index]
        line = Text(no_wrap=True, end="")
        if self.timestamps:
            line.append(entry.ts.strftime("%H:%M:%S ") if offset == 0 else " " * 9, style="dim")
        if self.show_source:
            label = entry.source[: self._source_width].ljust(self._source_width) if offset == 0 else ""
            line.append(
                label.ljust(self._source_width) + " ", style=self._source_colours.get(entry.source, "")
            )
        text = entry.text
        end = offset + self._text_width() if self.wrap else len(text)
        body = Text(text[offset:end], style=STREAM_STYLES.get(entry.stream, ""), no_wrap=True, end="")
        if self.search is not None:
            style = CURRENT_MATCH_STYLE if current else MATCH_STYLE
            for match in self.search.finditer(text):
                start, stop = max(match.start(), offset), min(match.end(), end)
                if start < stop:
                    body.stylize(style, start - offset, stop - offset)
        line.append_text(body)
        segments = [
            Segment(s.text, self.rich_style + s.style if s.style else self.rich_style)
            for s in line.render(self.app.console)
        ]
        return Strip(segments, line.cell_len)
