"""``mist exec PROJECT/APP [-- CMD...]`` (a shell or a command in the app's live container, with this terminal
attached when it is one, through ``terminal.attach``, which the TUI shares) and ``mist describe PROJECT/APP``."""

from __future__ import annotations

import sys

from ..models import ContainerDescription
from .context import CommandTable, Context, app_ref
from .format import human_time
from .terminal import attach, terminal_size

__all__ = ["attach", "terminal_size"]

command = CommandTable()


@command("exec")
async def cmd_exec(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    argv = list(a.argv or [])
    if argv and argv[0] == "--":
        argv = argv[1:]
    tty = a.tty if a.tty is not None else (sys.stdin.isatty() and sys.stdout.isatty())
    height, width = terminal_size() if tty else (None, None)
    channel = await ctx.api.containers.exec(ref, argv or None, tty=tty, height=height, width=width)
    return await attach(channel, stdin_fd=sys.stdin.fileno(), stdout_fd=sys.stdout.fileno())


def describe_pairs(d: ContainerDescription) -> list[tuple[str, object]]:
    env = ", ".join(f"{e.key}={'******' if e.secret else e.value}" for e in d.env)
    mounts = ", ".join(
        f"{m.name or m.source or m.type}:{m.destination}{':ro' if m.read_only else ''}" for m in d.mounts
    )
    return [
        ("app", d.app),
        ("container", d.name),
        ("deployment", d.deployment_id),
        ("image", d.image),
        ("command", " ".join(d.command)),
        ("state", d.state + (f" (exit {d.exit_code})" if d.exit_code is not None else "")),
        ("health", d.health or "no health check"),
        ("restarts", d.restart_count),
        ("restart policy", d.restart_policy),
        ("started", human_time(d.started_at) if d.started_at else None),
        ("ports", ", ".join(d.ports) or None),
        ("networks", ", ".join(d.networks) or None),
        ("mounts", mounts or None),
        ("working dir", d.working_dir),
        ("user", d.user),
        ("env", env or None),
    ]


@command("describe")
async def cmd_describe(ctx: Context) -> int:
    described = await ctx.api.containers.describe(app_ref(ctx.args.app))
    ctx.out.pairs(described, lambda: describe_pairs(described))
    return 0
