"""The one table class every list uses: a row-cursor ``DataTable`` with vim keys, whose cells show stored
text as it is: never read as markup, control characters neutralised."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual._types import SegmentLines
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets._data_table import ColumnKey, Row, RowKey, RowRenderables

from ..format import printable_text, shown


def _cell(value: object) -> object:
    """A cell as the table keeps it: DataTable reads a ``str`` cell as markup, so a name with brackets in it
    would restyle the row or bind a click to an action; as a ``Text`` it is shown as it is."""
    return shown(value) if isinstance(value, str) else value


class FastRowKey(str, RowKey):
    """A ``RowKey`` that is also its own string, so dicts and sets hash and compare it in C.

    ``RowKey`` hashes and compares in Python: a redraw of 10,000 rows called its ``__hash__`` over
    100,000 times. It hashes and compares equal to its string, exactly as a ``RowKey`` of that string
    does, so lookups by either still find it."""

    __hash__ = str.__hash__
    __eq__ = str.__eq__  # type: ignore[assignment]
    __ne__ = str.__ne__  # type: ignore[assignment]

    def __new__(cls, value: str) -> FastRowKey:
        return str.__new__(cls, value)

    def __init__(self, value: str) -> None:
        self.value = value


class FastColumnKey(str, ColumnKey):
    """The same for the column keys a row's cells are stored under (seven hashes a row)."""

    __hash__ = str.__hash__
    __eq__ = str.__eq__  # type: ignore[assignment]
    __ne__ = str.__ne__  # type: ignore[assignment]

    def __new__(cls, value: str) -> FastColumnKey:
        return str.__new__(cls, value)

    def __init__(self, value: str) -> None:
        self.value = value


class MistTable(DataTable):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("g", "scroll_top", "Top", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="table.bottom"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None, zebra: bool = True) -> None:
        # Keys and row records are kept across ``set_rows`` calls: a filter keystroke shows rows it showed
        # before, and rebuilding them was a third of its cost.
        self._fast_keys: dict[str, list] = {}  # key -> [row key, Row, cells given, cell dict]
        # The row order and line offsets ``set_rows`` laid out, while no other change to the rows has
        # invalidated them. DataTable keys its own copies on an update counter that every cell update
        # bumps, and rebuilding them walks all 10,000 rows (a metrics sample cost that much).
        self._fast_order: tuple[list[Row], list[tuple[RowKey, int]]] | None = None
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=zebra)

    @property
    def ordered_rows(self) -> list[Row]:
        if self._fast_order is not None:
            return self._fast_order[0]
        return super().ordered_rows

    @property
    def _y_offsets(self) -> list[tuple[RowKey, int]]:
        if self._fast_order is not None:
            return self._fast_order[1]
        return super()._y_offsets

    def update_cell(  # type: ignore[override]
        self, row_key: RowKey | str, column_key: ColumnKey | str, value, *, update_width: bool = False
    ) -> None:
        # The row's cell dict now differs from the cells it was built from: build it afresh next time.
        entry = self._fast_keys.get(row_key.value if isinstance(row_key, RowKey) else row_key)  # type: ignore[arg-type]
        if entry is not None:
            entry[2] = None
        super().update_cell(row_key, column_key, _cell(value), update_width=update_width)

    def _compute_row_renderables(self, row_index: int) -> RowRenderables:
        # Only for rows being drawn (and cached with them): a control character in a cell's text would reach
        # the terminal as it is, so each is replaced before it is drawn.
        computed = super()._compute_row_renderables(row_index)
        if row_index < 0:
            return computed
        cells = [printable_text(c) if isinstance(c, Text) else c for c in computed.cells]
        return RowRenderables(computed.label, cells)

    def add_column(self, *args, **kwargs) -> ColumnKey:  # type: ignore[override]
        self._fast_keys.clear()  # a column added to rows changes their cell dicts
        return super().add_column(*args, **kwargs)

    def remove_column(self, column_key: ColumnKey | str) -> None:
        self._fast_keys.clear()
        super().remove_column(column_key)

    def add_row(self, *cells, **kwargs) -> RowKey:  # type: ignore[override]
        self._fast_order = None
        return super().add_row(*map(_cell, cells), **kwargs)

    def remove_row(self, row_key: RowKey | str) -> None:
        self._fast_order = None
        super().remove_row(row_key)

    def sort(self, *args, **kwargs):  # type: ignore[override]
        self._fast_order = None
        return super().sort(*args, **kwargs)

    def clear(self, columns: bool = False):  # type: ignore[override]
        self._fast_order = None
        return super().clear(columns)

    def _update_dimensions(self, new_rows) -> None:  # type: ignore[override]
        # DataTable measures every cell of every new row to size auto-width columns: for the dashboard's
        # 10,000 apps that is 70,000 measurements per redraw. When every column has a fixed width and
        # no row has a label, nothing measured would be used, so skip straight to the relayout.
        if any(column.auto_width for column in self.columns.values()) or self._labelled_row_exists:
            super()._update_dimensions(new_rows)
            return
        if any(row.label is not None for key in new_rows if (row := self.rows.get(key)) is not None):
            super()._update_dimensions(new_rows)
            return
        # The virtual size is still needed: a table with ``height: auto`` (the deployment's steps) takes
        # its height from it, and the scrollbars their range.
        width = sum(column.get_render_width(self) for column in self.columns.values())
        header_height = self.header_height if self.show_header else 0
        self.virtual_size = Size(width + self._row_label_column_width, self._total_row_height + header_height)
        self.hover_coordinate = self.hover_coordinate
        self._update_count += 1
        self.refresh(layout=True)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        # DataTable renders every cell through Rich's console (Padding inside Styled, options copied at
        # each level): about 0.3 ms a cell, so a filter keystroke that brings 30 new rows into view spent
        # 70 ms drawing them. A one-line Text cell needs none of that: its segments, padded or cropped to
        # the column, styled the way DataTable's own path styles them.
        if (
            row_index < 0
            or column_index < 0
            or row_index < self.fixed_rows
            or column_index < self.fixed_columns
        ):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        row = self.rows.get(row_key) if row_key is not None else None
        if row is None or row.height != 1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        column_key = self._column_locations.get_key(column_index)
        cache_key = (
            row_key,
            column_key,
            base_style,
            cursor,
            hover,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        cached = self._cell_render_cache.get(cache_key)
        if cached is not None:
            return cached
        _label, cells = self._get_row_renderables(row_index)
        cell = cells[column_index]
        if not isinstance(cell, Text):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            False,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pad = self.cell_padding
        inner = max(0, width - 2 * pad)
        console = self.app.console
        if "\n" in cell.plain:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if cell.cell_len > inner:
            cell = cell.copy()
            cell.truncate(inner, overflow="crop" if cell.overflow != "ellipsis" else "ellipsis")
        spare = inner - cell.cell_len
        if cell.justify == "right":
            left, right = spare, 0
        elif cell.justify == "center":
            left, right = spare // 2, spare - spare // 2
        else:
            left, right = 0, spare
        # ``Text.render`` leaves the Text's own style to its caller (``__rich_console__`` applies it).
        own = (
            Segment.apply_style(cell.render(console), style=console.get_style(cell.style))
            if cell.style
            else cell.render(console)
        )
        segments = [Segment(" " * (pad + left)), *own, Segment(" " * (pad + right))]
        pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        lines = [list(Segment.apply_style(segments, style=pre_style, post_style=post_style))]
        self._cell_render_cache[cache_key] = lines
        return lines

    def set_rows(self, rows: list[tuple[str, list[object]]]) -> None:
        """Replace every row at once, for one-line rows without labels.

        ``add_row`` per row costs a reactive update and a cursor check each, and ``clear`` walks the old
        rows to build an offset table only to empty it: for the dashboard's 10,000 apps that was most of a
        filter keystroke. This fills the same structures in one pass, with the row order and line offsets
        DataTable would otherwise compute on the next paint."""
        self._clear_caches()
        self._data.clear()
        self.rows.clear()
        known = self._fast_keys
        keys: list[RowKey] = []
        ordered: list[Row] = []
        columns = [
            FastColumnKey(column.key.value) if column.key.value is not None else column.key
            for column in self.ordered_columns
        ]
        data, table_rows = self._data, self.rows
        for key, cells in rows:
            entry = known.get(key)
            if entry is None or entry[1].height != 1 or entry[1].label is not None:
                row_key = FastRowKey(key)
                entry = known[key] = [row_key, Row(row_key, 1, None, False), None, None]
            row_key, row, last_cells, row_data = entry
            if cells is not last_cells:
                row_data = entry[3] = dict(zip(columns, map(_cell, cells), strict=False))
                entry[2] = cells
            keys.append(row_key)
            ordered.append(row)
            data[row_key] = row_data
            table_rows[row_key] = row
        if len(table_rows) != len(keys):
            raise ValueError("set_rows was given the same row key twice")
        self._row_locations = TwoWayDict(dict(zip(keys, range(len(keys)), strict=True)))
        self._labelled_row_exists = False
        # Nothing to measure (no labels, one line each): ``_update_dimensions`` only needs to run.
        self._require_update_dimensions = True
        self._update_count += 1
        self._fast_order = (ordered, [(key, 0) for key in keys])
        self.cursor_coordinate = Coordinate(0, 0)
        self.hover_coordinate = Coordinate(0, 0)
        self.scroll_x = self.scroll_y = 0
        self.scroll_target_x = self.scroll_target_y = 0
        if rows and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()
        self.refresh()
        self.check_idle()

    @property
    def selected_key(self) -> str | None:
        """The row key under the cursor, or None for an empty table."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - a cursor past a just-removed row
            return None
