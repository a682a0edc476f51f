"""The one table class every list uses: a row-cursor ``DataTable`` with vim keys."""

from __future__ import annotations

from textual.binding import Binding
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets._data_table import Row, RowKey


class MistTable(DataTable):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("g", "scroll_top", "Top", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="table.bottom"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None, zebra: bool = True) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=zebra)

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

    def set_rows(self, rows: list[tuple[str, list[object]]]) -> None:
        """Replace every row at once. ``add_row`` per row costs a reactive update and a cursor check each:
        for the dashboard's 10,000 apps that was most of a redraw (about 1 s per filter keystroke). This
        fills the same structures in one pass, for one-line rows without labels."""
        self.clear()
        columns = [column.key for column in self.ordered_columns]
        data, table_rows, locations = self._data, self.rows, self._row_locations
        for index, (key, cells) in enumerate(rows):
            row_key = RowKey(key)
            locations[row_key] = index
            data[row_key] = dict(zip(columns, cells, strict=False))
            table_rows[row_key] = Row(row_key, 1, None, False)
        self._new_rows.update(table_rows)
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if rows and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()
        self._update_count += 1
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
