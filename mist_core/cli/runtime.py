"""The commands about what runs: Mist's containers, an app's output, starting, stopping and restarting an
app, and the usage of the server and its containers."""

from __future__ import annotations

from ..errors import InvalidInput
from ..models import ContainerInfo, ContainerStats, MetricsSample
from .context import CommandTable, Context, app_ref
from .format import format_pairs, format_table, human_size, human_time, parse_since
from .output import EXIT_OK

command = CommandTable()


def _owner(c: ContainerInfo) -> str | None:
    """What a container runs: its app, or the managed database it is (``db project/name``)."""
    if c.project and c.app:
        return f"{c.project}/{c.app}"
    if c.project and c.database:
        return f"db {c.project}/{c.database}"
    return None


@command("ps")
async def cmd_ps(ctx: Context) -> int:
    containers = await ctx.api.containers.list(all=ctx.args.all)
    ctx.out.table(
        containers,
        ["NAME", "APP", "DEPLOYMENT", "STATE", "STATUS", "PORTS", "IMAGE"],
        lambda c: (
            c.name,
            _owner(c),
            c.deployment_id,
            c.state,
            c.status,
            ", ".join(c.ports) or None,
            c.image,
        ),
    )
    return EXIT_OK


@command("logs")
async def cmd_logs(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    if a.tail is not None and a.tail < 0:
        raise InvalidInput("--tail must be 0 or more", field="tail")
    since = parse_since(a.since) if a.since else None
    stream = ctx.api.apps.logs(ref, follow=a.follow, tail=a.tail, since=since)
    await ctx.out.stream(
        stream,
        (lambda line: f"{line.ts.isoformat()} {line.text}") if a.timestamps else (lambda line: line.text),
        follow=a.follow,
        app_output=True,
    )
    return EXIT_OK


async def _lifecycle(ctx: Context, action: str) -> int:
    ref = app_ref(ctx.args.app)
    app = await getattr(ctx.api.apps, action)(ref)
    ctx.out.result(app, f"{app.ref}: {app.status}")
    return EXIT_OK


@command("start")
async def cmd_start(ctx: Context) -> int:
    return await _lifecycle(ctx, "start")


@command("stop")
async def cmd_stop(ctx: Context) -> int:
    return await _lifecycle(ctx, "stop")


@command("restart")
async def cmd_restart(ctx: Context) -> int:
    return await _lifecycle(ctx, "restart")


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def metrics_text(sample: MetricsSample) -> str:
    s = sample.system
    system = format_pairs(
        [
            ("Time", human_time(s.ts)),
            (
                "CPU",
                f"{s.cpu_percent:.1f}% of {s.cpu_count} cores, load {s.load[0]:.2f} {s.load[1]:.2f} {s.load[2]:.2f}",
            ),
            (
                "Memory",
                f"{human_size(s.memory_used)} / {human_size(s.memory_total)} ({_percent(s.memory_used, s.memory_total)})",
            ),
            (
                "Disk",
                f"{human_size(s.disk_used)} / {human_size(s.disk_total)} ({_percent(s.disk_used, s.disk_total)})",
            ),
            ("Network", f"rx {human_size(s.net_rx_bytes)}, tx {human_size(s.net_tx_bytes)}"),
        ]
    )
    if not sample.containers:
        return system
    return system + "\n\n" + containers_table(sample.containers)


def containers_table(stats: list[ContainerStats]) -> str:
    rows = [
        (
            c.name,
            f"{c.project}/{c.app}" if c.project and c.app else None,
            f"{c.cpu_percent:.1f}%",
            human_size(c.memory_bytes),
            human_size(c.memory_limit) if c.memory_limit else None,
            human_size(c.net_rx_bytes),
            human_size(c.net_tx_bytes),
        )
        for c in stats
    ]
    return format_table(["CONTAINER", "APP", "CPU", "MEMORY", "LIMIT", "NET RX", "NET TX"], rows)


@command("metrics")
async def cmd_metrics(ctx: Context) -> int:
    if not ctx.args.follow:
        sample = await ctx.api.metrics.current()
        ctx.out.result(sample, lambda: metrics_text(sample))
        return EXIT_OK
    first = True
    async for sample in ctx.api.metrics.stream():
        # A blank line between samples, so each reads as one block.
        ctx.out.item(sample, metrics_text(sample) if first else "\n" + metrics_text(sample))
        first = False
    return EXIT_OK
