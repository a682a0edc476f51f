"""The server's CPU, memory, disk, network and load over the last minutes, one app's CPU and memory, and
every container sortable by CPU or memory."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.renderables._blend_colors import blend_colors
from textual.screen import Screen
from textual.widgets import DataTable, Header, Label, Select, Sparkline

from mist_core.models import MetricsSample, SystemSample

from ..format import cpu_text, human_bytes, human_duration, human_rate, memory_text, right
from ..widgets.footer import MistFooter
from ..widgets.table import MistTable
from ..workers import api_work

if TYPE_CHECKING:
    from ..app import MistApp

HISTORY = 120  # samples kept per graph
# What each graph's full height stands for; network and load have no natural top and scale to their range.
SCALES = {"g-cpu": "0–100%", "g-mem": "0–{memory}", "g-disk": "0–{disk}"}


class LevelBars:
    """Bars scaled to ``[0, ceiling]`` when the series has a total (memory of its limit, disk of its size),
    else to the series' own range. Textual's sparkline always scales min..max, so a constant series (disk
    barely moves) drew as a flat line at the bottom whatever its level."""

    BARS = "▁▂▃▄▅▆▇█"

    def __init__(
        self, data: list[float], *, ceiling: float | None, width: int, height: int, low: Color, high: Color
    ) -> None:
        self.data, self.ceiling = data, ceiling
        self.width, self.height = max(1, width), max(1, height)
        self.low, self.high = low, high

    def scale(self) -> tuple[float, float]:
        if self.ceiling:
            return 0.0, float(self.ceiling)
        lo, hi = min(self.data), max(self.data)
        if hi > lo:
            return lo, hi
        # A constant series with no known total: zero at the bottom, anything else at half height.
        return 0.0, (hi * 2 if hi > 0 else 1.0)

    def ratios(self) -> list[float]:
        """One value in ``[0, 1]`` per column, newest on the right (each column the max of its bucket)."""
        if not self.data:
            return []
        lo, hi = self.scale()
        data, width = self.data, self.width
        if len(data) > width:
            step = len(data) / width
            data = [
                max(data[int(i * step) : max(int(i * step) + 1, int((i + 1) * step))]) for i in range(width)
            ]
        return [min(1.0, max(0.0, (v - lo) / (hi - lo))) for v in data]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        ratios = self.ratios()
        pad = self.width - len(ratios)
        steps = len(self.BARS) * self.height
        for row in reversed(range(self.height)):
            segments = [Segment(" " * pad)] if pad > 0 else []
            for ratio in ratios:
                filled = ratio * steps - row * len(self.BARS)
                if filled <= 0 and not (row == 0 and ratio > 0):
                    segments.append(Segment(" "))
                    continue
                bar = "█" if filled >= len(self.BARS) else self.BARS[max(0, int(filled) - 1)]
                color = blend_colors(self.low, self.high, ratio)
                segments.append(Segment(bar, Style(color=color)))
            yield from segments
            if row:
                yield Segment.line()


class LevelSparkline(Sparkline):
    """Textual's sparkline widget (colours, CSS) drawing ``LevelBars``."""

    def __init__(self, *, ceiling: float | None = None) -> None:
        super().__init__([])
        self.ceiling = ceiling

    def render(self) -> LevelBars:
        _, base = self.background_colors
        low = base + self.get_component_styles("sparkline--min-color").color
        high = base + self.get_component_styles("sparkline--max-color").color
        return LevelBars(
            list(self.data or []),
            ceiling=self.ceiling,
            width=self.size.width,
            height=self.size.height,
            low=low.rich_color,
            high=high.rich_color,
        )


class Graph(Vertical):
    """A titled sparkline with the latest value on the right of its title."""

    def __init__(self, title: str, id: str) -> None:
        super().__init__(id=id, classes="graph")
        self.graph_title = title
        self.values: deque[float] = deque(maxlen=HISTORY)
        self.ceiling: float | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="graph-head"):
            yield Label(self.graph_title, classes="graph-title")
            yield Label("", classes="graph-value")
        yield LevelSparkline()

    def push(self, value: float, shown: str, *, refresh: bool = True, ceiling: float | None = None) -> None:
        self.values.append(value)
        self.ceiling = ceiling
        if refresh:
            self.redraw(shown)

    def redraw(self, shown: str, scale: str = "") -> None:
        """Draw the values; ``scale`` says what the full height stands for (the graph's top border)."""
        self.border_title = scale or None
        line = self.query_one(LevelSparkline)
        line.ceiling = self.ceiling
        line.data = list(self.values)
        line.refresh()
        self.query_one(".graph-value", Label).update(shown)

    def reset(self) -> None:
        self.values.clear()

    def show_span(self, seconds: float) -> None:
        """The time axis, on the bottom border: how far back the leftmost bar is; the newest is on the right."""
        self.border_subtitle = f"{human_duration(seconds)} ago ··· now" if seconds > 0 else "now"


class MetricsScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="metrics.back"),
        Binding("c", "sort('cpu')", "Sort by CPU", id="metrics.sort_cpu"),
        Binding("m", "sort('memory')", "Sort by memory", id="metrics.sort_memory"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.samples: deque[MetricsSample] = deque(maxlen=HISTORY)
        self.sort_by = "cpu"
        self.chosen_app: str | None = None

    @property
    def mist(self) -> MistApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="graphs"):
            yield Graph("CPU", id="g-cpu")
            yield Graph("Memory", id="g-mem")
            yield Graph("Load (1 min)", id="g-load")
            yield Graph("Network in", id="g-rx")
            yield Graph("Network out", id="g-tx")
            yield Graph("Disk", id="g-disk")
        with Horizontal(id="app-metrics"):
            yield Select([], prompt="choose an app", id="metrics-app", compact=True)
            yield Graph("App CPU", id="g-app-cpu")
            yield Graph("App memory", id="g-app-mem")
        yield MistTable(id="containers")
        yield MistFooter()

    def on_mount(self) -> None:
        table = self.query_one("#containers", MistTable)
        table.add_column("Container", key="name", width=26)
        table.add_column("App", key="app", width=20)
        table.add_column(Text("CPU", justify="right"), key="cpu", width=8)
        table.add_column(Text("Memory", justify="right"), key="memory", width=11)
        table.add_column(Text("Limit", justify="right"), key="limit", width=11)
        table.add_column(Text("Net in", justify="right"), key="rx", width=11)
        table.add_column(Text("Net out", justify="right"), key="tx", width=11)
        self.follow()

    @api_work(exclusive=True, group="metrics")
    async def follow(self) -> None:
        assert self.mist.api is not None
        history = await self.mist.api.metrics.history(seconds=HISTORY * 5)
        for sample in history[:-1]:
            self.add(sample, draw=False)
        if history:
            self.add(history[-1])
        async for sample in self.mist.api.metrics.stream():
            if self.samples and sample.system.ts <= self.samples[-1].system.ts:
                continue
            self.add(sample)
        self.mist.stream_ended()

    def reconnected(self) -> None:
        self.follow()  # samples older than the newest held are skipped, so the gap fills from history

    def add(self, sample: MetricsSample, *, draw: bool = True) -> None:
        previous = self.samples[-1] if self.samples else None
        self.samples.append(sample)
        s = sample.system
        graphs: dict[str, tuple[float, str, float | None]] = {
            "g-cpu": (s.cpu_percent, f"{s.cpu_percent:.1f}% of {s.cpu_count} cores", 100.0),
            "g-mem": (
                s.memory_used,
                f"{human_bytes(s.memory_used)} / {human_bytes(s.memory_total)}",
                s.memory_total,
            ),
            "g-load": (s.load[0], " ".join(f"{v:.2f}" for v in s.load), None),
            "g-disk": (
                s.disk_used,
                f"{human_bytes(s.disk_used)} / {human_bytes(s.disk_total)}",
                s.disk_total,
            ),
        }
        if previous is not None:
            seconds = max(1e-6, (s.ts - previous.system.ts).total_seconds())
            rx = max(0.0, (s.net_rx_bytes - previous.system.net_rx_bytes) / seconds)
            tx = max(0.0, (s.net_tx_bytes - previous.system.net_tx_bytes) / seconds)
            graphs["g-rx"] = (rx, human_rate(rx), None)
            graphs["g-tx"] = (tx, human_rate(tx), None)
        span = (s.ts - self.samples[0].system.ts).total_seconds()
        for graph_id, (value, shown, ceiling) in graphs.items():
            graph = self.query_one(f"#{graph_id}", Graph)
            graph.push(value, shown, refresh=False, ceiling=ceiling)
            if draw:
                graph.redraw(shown, SCALES.get(graph_id, "").format(**self._scale_names(s)))
                graph.show_span(span)
        apps = sorted({f"{c.project}/{c.app}" for c in sample.containers if c.project and c.app})
        select = self.query_one("#metrics-app", Select)
        if draw and apps and set(apps) != {str(v) for _, v in getattr(select, "_options", [])[1:]}:
            select.set_options([(a, a) for a in apps])
            if self.chosen_app in apps:
                select.value = self.chosen_app
            elif self.chosen_app is None:
                select.value = apps[0]
        if draw:
            self._draw_app()
            self._draw_containers(sample)

    @staticmethod
    def _scale_names(s: SystemSample) -> dict[str, str]:
        return {"memory": human_bytes(s.memory_total), "disk": human_bytes(s.disk_total)}

    def _draw_app(self) -> None:
        cpu_graph = self.query_one("#g-app-cpu", Graph)
        mem_graph = self.query_one("#g-app-mem", Graph)
        cpu_graph.reset()
        mem_graph.reset()
        if self.chosen_app is None or not self.samples:
            return
        cpu = mem = 0.0
        limit: float | None = None
        host = self.samples[-1].system
        # Fixed scales: all the host's cores, and the app's memory limit (else the host's memory), so the
        # height of a bar means the same from one moment, and one app, to the next.
        cpu_ceiling = 100.0 * max(1, host.cpu_count)
        for sample in self.samples:
            mine = [c for c in sample.containers if f"{c.project}/{c.app}" == self.chosen_app]
            cpu, mem = sum(c.cpu_percent for c in mine), float(sum(c.memory_bytes for c in mine))
            limits = [c.memory_limit for c in mine if c.memory_limit]
            limit = float(sum(limits)) if limits and len(limits) == len(mine) else None
            cpu_graph.push(cpu, "", refresh=False, ceiling=cpu_ceiling)
            mem_graph.push(mem, "", refresh=False, ceiling=limit or float(host.memory_total))
        cpu_graph.redraw(f"{cpu:.1f}%", f"0–{cpu_ceiling:.0f}% ({host.cpu_count} cores)")
        mem_graph.redraw(
            f"{human_bytes(mem)} of {human_bytes(limit)}" if limit else human_bytes(mem),
            f"0–{human_bytes(limit)} limit" if limit else f"0–{human_bytes(host.memory_total)} host",
        )
        span = (host.ts - self.samples[0].system.ts).total_seconds()
        cpu_graph.show_span(span)
        mem_graph.show_span(span)

    def _draw_containers(self, sample: MetricsSample) -> None:
        table = self.query_one("#containers", MistTable)
        stats = sorted(
            sample.containers,
            key=lambda c: (-(c.cpu_percent if self.sort_by == "cpu" else c.memory_bytes), c.name),
        )
        selected = table.selected_key
        with self.app.batch_update():
            table.clear()
            for c in stats:
                table.add_row(
                    c.name,
                    # A project's container that is no app's (a database) is named by its project alone.
                    (f"{c.project}/{c.app}" if c.app else c.project) if c.project else Text("—", style="dim"),
                    cpu_text(c.cpu_percent),
                    memory_text(c.memory_bytes, c.memory_limit),
                    right(human_bytes(c.memory_limit) if c.memory_limit else "—", "dim"),
                    right(human_bytes(c.net_rx_bytes)),
                    right(human_bytes(c.net_tx_bytes)),
                    key=c.name,
                )
            if selected is not None and selected in table.rows:
                table.move_cursor(row=table.get_row_index(selected), animate=False)
        table.border_title = f"Containers · by {'CPU' if self.sort_by == 'cpu' else 'memory'} (c / m)"

    @on(Select.Changed, "#metrics-app")
    def _app_chosen(self, event: Select.Changed) -> None:
        self.chosen_app = None if event.value is Select.BLANK else str(event.value)
        self._draw_app()

    @on(DataTable.RowSelected, "#containers")
    def _open_app(self, event: DataTable.RowSelected) -> None:
        """Enter on a container opens its app."""
        sample = self.samples[-1] if self.samples else None
        name = event.row_key.value
        for c in sample.containers if sample else []:
            if c.name == name and c.project and c.app:
                self.mist.open_app(f"{c.project}/{c.app}")
                return

    def action_sort(self, by: str) -> None:
        self.sort_by = by
        if self.samples:
            self._draw_containers(self.samples[-1])
