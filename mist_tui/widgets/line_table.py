"""A table for lists of thousands of rows, drawn line by line: only the rows on screen are rendered.

The table holds only the keys of the rows it shows, in order; it asks its owner for a row's cells (plain
strings, or ``(text, style)`` pairs) when the row comes into view. Filtering or sorting is a new list of
keys, so it costs no widgets, no Rich objects and no measuring for the rows nobody sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Literal, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets.data_table import RowKey

from mist_core.printable import printable

Cell = str | tuple[str, str | Style]
"""A cell: its text, or its text and a Rich style for it (``"bold red"``)."""

PADDING = 1  # blank cells either side of every column
SCROLL_STEP = 4  # cells a left/right key scrolls a table wider than its view


class Column(NamedTuple):
    key: str
    label: str
    width: int  # in terminal cells, without the padding; longer text is cut with an ellipsis
    justify: Literal["left", "right"] = "left"


def fit(text: str, width: int, justify: str = "left") -> str:
    """``text`` padded or cut (with an ellipsis) to exactly ``width`` cells."""
    ascii_only = text.isascii()
    length = len(text) if ascii_only else cell_len(text)
    if length > width:
        if width < 1:
            return ""
        # A wide character that does not fit is padded by ``set_cell_size``: the ellipsis goes after the
        # text, not after the padding.
        cut = text[: width - 1] if ascii_only else set_cell_size(text, width - 1)
        text = cut.rstrip(" ") + "…"
        length = cell_len(text)
    if justify == "right":
        return " " * (width - length) + text
    return text + " " * (width - length)


def cell_text(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


class LineTable(ScrollView, can_focus=True):
    """Rows under a fixed header row, a row cursor, zebra stripes; Enter or a click on the cursor's row
    selects it, a click on a header posts ``HeaderSelected`` (for sorting)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("right", "scroll_right", "Scroll right", show=False),
        Binding("left", "scroll_left", "Scroll left", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("ctrl+home", "scroll_top", "Top", show=False),
        Binding("ctrl+end", "scroll_bottom", "Bottom", show=False),
        Binding("home", "scroll_home", "Home", show=False),
        Binding("end", "scroll_end", "End", show=False),
        # The same ids as the other tables' vim keys, so one keymap entry remaps them everywhere.
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("g", "scroll_top", "Top", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="table.bottom"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "line-table--header",
        "line-table--cursor",
        "line-table--hover",
        "line-table--even-row",
        "line-table--odd-row",
    }

    # The look of Textual's DataTable, so this table sits among the others without standing out.
    DEFAULT_CSS = """
    LineTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .line-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .line-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .line-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .line-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .line-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .line-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .line-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .line-table--hover {
            background: $block-hover-background;
        }
    }
    """

    class RowSelected(Message):
        """Enter on a row, or a click on the row under the cursor."""

        def __init__(self, table: LineTable, row_key: str, cursor_row: int) -> None:
            super().__init__()
            self.table = table
            self.row_key = row_key
            self.cursor_row = cursor_row

        @property
        def control(self) -> LineTable:
            return self.table

    class HeaderSelected(Message):
        """A click on a column's header."""

        def __init__(self, table: LineTable, column_key: str) -> None:
            super().__init__()
            self.table = table
            self.column_key = column_key

        @property
        def control(self) -> LineTable:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        cells: Callable[[str], Sequence[Cell]],
        *,
        zebra: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """``cells(key)`` gives a row's cells, one per column; it is called only for rows being drawn,
        and again for a row only after ``refresh_row(key)`` (or ``refresh_rows()``)."""
        super().__init__(name=name, id=id, classes=classes)
        self.columns = list(columns)
        self._cells = cells
        self.zebra = zebra
        self._keys: list[str] = []
        self._positions: dict[str, int] | None = None  # key -> row index, built when first asked
        self.cursor_row = 0
        self._hover_row: int | None = None  # shown only while the mouse, not the keyboard, moved last
        self._group_by: int | None = None
        self._sort: tuple[str, bool] | None = None
        # Drawn rows by (key, its version, parity, cursor/hover, group-blanked): scrolling back over rows
        # costs nothing, and a changed row gets a new version instead of a search through the cache.
        self._strips: LRUCache[tuple, Strip] = LRUCache(1024)
        self._versions: dict[str, int] = {}
        self._header: Strip | None = None
        self._styles: dict[object, Style] = {}
        self._row_width = sum(column.width + 2 * PADDING for column in self.columns)

    # ------------------------------------------------------------------------------------------ rows

    @property
    def keys(self) -> Sequence[str]:
        """The keys of the rows shown, top to bottom (do not modify)."""
        return self._keys

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def rows(self) -> dict[RowKey, str]:
        """The rows shown as ``DataTable.rows`` has them (``RowKey`` to key, in order), for code that
        reads either kind of table. Built on each call: prefer ``keys``."""
        return {RowKey(key): key for key in self._keys}

    def has_row(self, key: str) -> bool:
        return key in self._index()

    def get_row_index(self, key: str) -> int:
        """Where ``key`` is shown; ``KeyError`` when it is not."""
        return self._index()[key]

    def get_row(self, key: str) -> list[str]:
        """The text of each cell of the row ``key``."""
        return [cell_text(cell) for cell in self._cells(key)]

    def get_cell(self, key: str, column_key: str) -> str:
        return cell_text(self._cells(key)[self._column_index(column_key)])

    def _column_index(self, column_key: str) -> int:
        for index, column in enumerate(self.columns):
            if column.key == column_key:
                return index
        raise KeyError(f"no column {column_key!r}")

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when no row is shown."""
        if not self._keys:
            return None
        return self._keys[min(self.cursor_row, len(self._keys) - 1)]

    def show(self, keys: list[str]) -> None:
        """Show these rows in this order (the list is kept, not copied). The cursor stays on the row it
        was on when that row is still shown, and goes to the top otherwise."""
        selected = self.selected_key
        self._keys = keys
        self._positions = None
        cursor = 0
        if selected is not None:
            try:
                cursor = keys.index(selected)
            except ValueError:
                cursor = 0
        self._hover_row = None
        self._update_size()
        if cursor == 0:
            self.scroll_to(y=0, animate=False, force=True)
        self.cursor_row = cursor
        self._scroll_cursor_into_view()
        self.refresh()

    def append(self, keys: Sequence[str]) -> None:
        """Add rows after the last one shown; keys already shown are skipped. The cursor stays put."""
        index = self._index()
        fresh = [key for key in keys if key not in index]
        if not fresh:
            return
        start = len(self._keys)
        self._keys.extend(fresh)
        index.update(zip(fresh, range(start, start + len(fresh)), strict=True))
        self._update_size()
        self.refresh()

    def remove_row(self, key: str) -> None:
        """Stop showing the row ``key`` (nothing happens when it is not shown)."""
        position = self._index().get(key)
        if position is None:
            return
        del self._keys[position]
        self._positions = None
        if self.cursor_row > position or self.cursor_row >= len(self._keys):
            self.cursor_row = max(0, self.cursor_row - 1)
        self._update_size()
        self.refresh()

    def refresh_row(self, key: str) -> None:
        """The cells of ``key`` changed: draw it again if it is on screen."""
        self._versions[key] = self._versions.get(key, 0) + 1
        row = self._index().get(key)
        top = self.scroll_offset.y
        if row is not None and top <= row < top + self._visible_rows():
            # The row below may have shown this one's group heading blank: redraw both.
            self.refresh_lines(row + 1, 2)

    def visible_keys(self) -> Sequence[str]:
        """The keys of the rows on screen now."""
        top = self.scroll_offset.y
        return self._keys[top : top + self._visible_rows()]

    def refresh_rows(self) -> None:
        """Every row's cells may have changed."""
        self._versions.clear()
        self._strips.clear()
        self.refresh()

    # ------------------------------------------------------------------------------------------ columns

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Show ``columns`` instead (the owner's ``cells`` must now give one cell per each): a table fits
        its width by dropping or narrowing columns."""
        group = self.group_by
        self.columns = list(columns)
        self._row_width = sum(column.width + 2 * PADDING for column in self.columns)
        keys = [column.key for column in self.columns]
        self._group_by = keys.index(group) if group in keys else None
        self.refresh_rows()
        self._header = None
        self._update_size()

    def set_sort(self, column_key: str | None, reverse: bool = False) -> None:
        """Mark the header of the column the rows are sorted by (the rows are the owner's to order)."""
        self._sort = (column_key, reverse) if column_key is not None else None
        self._header = None
        self.refresh()

    @property
    def group_by(self) -> str | None:
        """A column whose value, when it repeats the row above's, is left blank: each group's first
        row carries it like a heading. None repeats every value."""
        return None if self._group_by is None else self.columns[self._group_by].key

    @group_by.setter
    def group_by(self, column_key: str | None) -> None:
        index = None if column_key is None else self._column_index(column_key)
        if index != self._group_by:
            self._group_by = index
            self.refresh()

    # ------------------------------------------------------------------------------------------ cursor

    def move_cursor(self, *, row: int, animate: bool = False, scroll: bool = True) -> None:
        """Put the cursor on ``row`` (clamped to the rows shown) and, with ``scroll``, bring it into view."""
        del animate  # moves are instant: a list of thousands is crossed in one jump
        last = len(self._keys) - 1
        row = max(0, min(row, last)) if last >= 0 else 0
        previous, self.cursor_row = self.cursor_row, row
        if scroll:
            self._scroll_cursor_into_view()
        if previous != row:
            self._refresh_row_at(previous)
            self._refresh_row_at(row)

    def select(self, key: str) -> bool:
        """Put the cursor on the row ``key``; False when that row is not shown."""
        position = self._index().get(key)
        if position is None:
            return False
        self.move_cursor(row=position)
        return True

    def _visible_rows(self) -> int:
        return max(0, self.scrollable_content_region.height - 1)  # less the header

    def _scroll_cursor_into_view(self) -> None:
        visible = self._visible_rows()
        if not visible:
            return
        top = self.scroll_offset.y
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, force=True)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False, force=True)

    def _refresh_row_at(self, row: int) -> None:
        self.refresh_lines(row + 1)  # the header is the content's line 0

    # ------------------------------------------------------------------------------------------ actions

    def action_cursor_up(self) -> None:
        self._hide_hover()
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._hide_hover()
        self.move_cursor(row=self.cursor_row + 1)

    def action_page_up(self) -> None:
        self._hide_hover()
        page = max(1, self._visible_rows())
        self.scroll_to(y=self.scroll_y - page, animate=False, force=True)
        self.move_cursor(row=self.cursor_row - page)

    def action_page_down(self) -> None:
        self._hide_hover()
        page = max(1, self._visible_rows())
        self.scroll_to(y=self.scroll_y + page, animate=False, force=True)
        self.move_cursor(row=self.cursor_row + page)

    def action_scroll_top(self) -> None:
        self._hide_hover()
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self._hide_hover()
        self.move_cursor(row=len(self._keys) - 1)

    def action_scroll_left(self) -> None:
        self.scroll_to(x=self.scroll_x - SCROLL_STEP, animate=False, force=True)

    def action_scroll_right(self) -> None:
        self.scroll_to(x=self.scroll_x + SCROLL_STEP, animate=False, force=True)

    def action_scroll_home(self) -> None:
        self.scroll_to(x=0, animate=False, force=True)

    def action_scroll_end(self) -> None:
        self.scroll_to(x=self.max_scroll_x, animate=False, force=True)

    def action_select_cursor(self) -> None:
        key = self.selected_key
        if key is not None:
            self.post_message(self.RowSelected(self, key, self.cursor_row))

    # ------------------------------------------------------------------------------------------ mouse

    def _row_at(self, event: events.MouseEvent) -> int | None:
        """The row index under the mouse, -1 for the header, None for neither."""
        offset = event.get_content_offset(self)
        if offset is None:
            return None
        if offset.y == 0:
            return -1
        row = self.scroll_offset.y + offset.y - 1
        return row if row < len(self._keys) else None

    def _column_at(self, x: int) -> Column | None:
        x += self.scroll_offset.x
        for column in self.columns:
            x -= column.width + 2 * PADDING
            if x < 0:
                return column
        return None

    async def on_click(self, event: events.Click) -> None:
        row = self._row_at(event)
        if row is None:
            return
        event.stop()
        if row == -1:
            offset = event.get_content_offset(self)
            column = self._column_at(offset.x) if offset is not None else None
            if column is not None:
                self.post_message(self.HeaderSelected(self, column.key))
            return
        # As in DataTable: the first click puts the cursor on a row, a click on the cursor's row selects it.
        if row == self.cursor_row:
            self.action_select_cursor()
        else:
            self.move_cursor(row=row)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        row = self._row_at(event)
        hover = row if row is not None and row >= 0 else None
        if hover != self._hover_row:
            previous, self._hover_row = self._hover_row, hover
            for changed in (previous, hover):
                if changed is not None:
                    self._refresh_row_at(changed)

    def on_leave(self, event: events.Leave) -> None:
        self._hide_hover()

    def _hide_hover(self) -> None:
        if self._hover_row is not None:
            row, self._hover_row = self._hover_row, None
            self._refresh_row_at(row)

    # ------------------------------------------------------------------------------------------ drawing

    def notify_style_update(self) -> None:
        # Focus, theme and CSS changes all arrive here: what was drawn used the old styles.
        super().notify_style_update()
        self._strips.clear()
        self._styles.clear()
        self._header = None
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._scroll_cursor_into_view()

    def _index(self) -> dict[str, int]:
        if self._positions is None:
            self._positions = dict(zip(self._keys, range(len(self._keys)), strict=True))
        return self._positions

    def _update_size(self) -> None:
        size = Size(self._row_width, len(self._keys) + 1)
        if size == self.virtual_size:
            return
        if not self.is_mounted or not self.size:
            self.virtual_size = size
            return
        # Setting ``virtual_size`` lays out the whole screen again; only the scrollbars depend on it
        # (a scrollbar appearing still asks for its own layout).
        self.set_reactive(Widget.virtual_size, size)
        self._scroll_update(size)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        if y == 0:
            if self._header is None:
                self._header = self._render_header()
            return self._header.crop_extend(scroll_x, scroll_x + width, self._header_style())
        row = scroll_y + y - 1
        if row >= len(self._keys):
            blank = self._styles.get("blank")
            if blank is None:
                blank = self._styles["blank"] = self.rich_style
            return Strip.blank(width, blank)
        key = self._keys[row]
        state = 2 if row == self.cursor_row else 1 if row == self._hover_row else 0
        grouped = self._grouped(row, scroll_y)
        cache_key = (key, self._versions.get(key, 0), row % 2, state, grouped)
        strip = self._strips.get(cache_key)
        if strip is None:
            strip = self._strips[cache_key] = self._render_row(key, row, state, grouped)
        return strip.crop_extend(scroll_x, scroll_x + width, self._row_style(row, state))

    def _grouped(self, row: int, top: int) -> bool:
        # The top row on screen always names its group, so a reader scrolled into one sees which it is.
        index = self._group_by
        if index is None or row <= top:
            return False
        return cell_text(self._cells(self._keys[row - 1])[index]) == cell_text(
            self._cells(self._keys[row])[index]
        )

    def _header_style(self) -> Style:
        style = self._styles.get("header")
        if style is None:
            style = self._styles["header"] = self.rich_style + self.get_component_rich_style(
                "line-table--header"
            )
        return style

    def _row_style(self, row: int, state: int) -> Style:
        # Working out ``rich_style`` walks the ancestors' styles: keep the few combinations until the
        # styles change (focus, theme).
        key = (row % 2 if self.zebra else 0, state, self.has_focus)
        style = self._styles.get(key)
        if style is None:
            style = self.rich_style
            if self.zebra:
                style += self.get_component_rich_style(
                    "line-table--odd-row" if row % 2 else "line-table--even-row"
                )
            if state == 1:
                style += self.get_component_rich_style("line-table--hover")
            elif state == 2:
                style += self.get_component_rich_style("line-table--cursor")
            self._styles[key] = style
        return style

    def _render_header(self) -> Strip:
        style = self._header_style()
        segments = []
        for column in self.columns:
            label = column.label
            if self._sort is not None and self._sort[0] == column.key:
                label += " ▲" if self._sort[1] else " ▼"
            text = fit(label, column.width, column.justify)
            segments.append(Segment(" " * PADDING + text + " " * PADDING, style))
        return Strip(segments, self._row_width)

    def _render_row(self, key: str, row: int, state: int, grouped: bool) -> Strip:
        base = self._row_style(row, state)
        # The cursor's colours win over a cell's own (a green status on a blue cursor is hard to read).
        over = Style()
        if state == 2:
            cursor = self.get_component_rich_style("line-table--cursor")
            over = Style.from_color(cursor.color, cursor.bgcolor)
        pad = " " * PADDING
        segments = []
        for index, (column, cell) in enumerate(zip(self.columns, self._cells(key), strict=False)):
            if isinstance(cell, str):
                text, style = cell, base
            else:
                text, own = cell
                style = base + (Style.parse(own) if isinstance(own, str) else own) + over
            if grouped and index == self._group_by:
                text = ""
            # Segments go to the terminal as they are: a control character in a stored name would act on it.
            text = printable(text)
            segments.append(Segment(pad + fit(text, column.width, column.justify) + pad, style))
        return Strip(segments, self._row_width)
