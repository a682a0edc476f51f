"""The strips under the dashboard's header: the server's CPU, memory, disk and load from the latest metrics
sample, and the proxy's state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from mist_core.models import ProxyStatus, SystemSample

from ..format import human_bytes


def bar(fraction: float, width: int = 8) -> Text:
    """A small gauge: ``▕████▍     ▏``, coloured by how full it is."""
    fraction = max(0.0, min(1.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    blocks = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")
    style = "red" if fraction >= 0.9 else "yellow" if fraction >= 0.7 else "green"
    text = Text("▕", style="dim")
    text.append(blocks, style=f"{style} on grey23")
    text.append(" " * (width - len(blocks)), style="on grey23")
    text.append("▏", style="dim")
    return text


class ServerStrip(Static):
    def show(self, system: SystemSample, summary: Text | None = None) -> None:
        text = Text()
        text.append(" CPU ", style="bold")
        text.append_text(bar(system.cpu_percent / 100))
        text.append(f" {system.cpu_percent:4.1f}%   ")
        text.append("MEM ", style="bold")
        text.append_text(bar(system.memory_used / max(1, system.memory_total)))
        text.append(f" {human_bytes(system.memory_used)} / {human_bytes(system.memory_total)}   ")
        text.append("DISK ", style="bold")
        text.append_text(bar(system.disk_used / max(1, system.disk_total)))
        text.append(f" {human_bytes(system.disk_used)} / {human_bytes(system.disk_total)}   ")
        text.append("LOAD ", style="bold")
        text.append(" ".join(f"{v:.2f}" for v in system.load))
        if summary is not None:
            text.append("   ")
            text.append_text(summary)
        self.update(text)


def proxy_text(status: ProxyStatus | None, error: str | None = None) -> Text:
    """The proxy line: which proxy, whether it serves (as the core checked it; else what is wrong and the
    command that fixes it), what it routes."""
    text = Text(" PROXY ", style="bold")
    if status is None:
        text.append(error or "checking…", style="red" if error else "dim")
        return text
    text.append(status.backend)
    if status.reachable:
        text.append("  ● reachable", style="green")
    else:
        text.append("  ✕ ", style="bold red")
        text.append(status.detail or "not reachable", style="red")
    # Routes are only served when the proxy is: otherwise they wait for it, and the line says so.
    apps = f"{status.routes} app{'s' if status.routes != 1 else ''}"
    text.append(
        f"   {apps} {'routed' if status.reachable else 'waiting for the proxy'} · "
        f"{status.domains} domain{'s' if status.domains != 1 else ''}",
    )
    text.append(f"   http {status.http_address} · https {status.https_address}", style="dim")
    return text


class ProxyLine(Static):
    def show(self, status: ProxyStatus | None, error: str | None = None) -> None:
        self.update(proxy_text(status, error))
