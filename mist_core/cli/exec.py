"""``mist exec PROJECT/APP [-- CMD...]`` (a shell or a command in the app's live container, with this terminal
attached when it is one) and ``mist describe PROJECT/APP``. ``attach`` is shared with the TUI, which suspends
itself and hands the terminal over for the length of a session."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from typing import Any

from ..execs import ExecChannel
from ..models import ContainerDescription
from .context import CommandTable, Context, app_ref
from .format import human_time

command = CommandTable()

READ_SIZE = 64 * 1024


def terminal_size() -> tuple[int, int]:
    size = shutil.get_terminal_size()
    return size.lines, size.columns


async def attach(channel: ExecChannel, *, stdin_fd: int = 0, stdout_fd: int = 1, stderr_fd: int = 2) -> int:
    """Relay this process's standard input and output to ``channel`` until the command ends; with a TTY the
    terminal is in raw mode meanwhile (restored after) and follows window size changes. Returns the command's
    exit status."""
    import termios
    import tty as tty_mode

    loop = asyncio.get_running_loop()
    raw = channel.tty and os.isatty(stdin_fd)
    saved: Any = termios.tcgetattr(stdin_fd) if raw else None
    stdin_done = asyncio.Event()
    pending: set[asyncio.Task[Any]] = set()

    def keep(task: asyncio.Task[Any]) -> None:
        pending.add(task)
        task.add_done_callback(pending.discard)

    def readable() -> None:
        try:
            data = os.read(stdin_fd, READ_SIZE)
        except OSError:
            data = b""
        if data:
            keep(loop.create_task(channel.write(data)))
        else:
            loop.remove_reader(stdin_fd)
            stdin_done.set()
            keep(loop.create_task(channel.close_input()))

    async def pump_file() -> None:
        # A regular file cannot be watched for readiness; reading it never blocks for long.
        while data := await asyncio.to_thread(os.read, stdin_fd, READ_SIZE):
            await channel.write(data)
        await channel.close_input()

    watching = False
    if raw:
        tty_mode.setraw(stdin_fd)
    try:
        try:
            loop.add_reader(stdin_fd, readable)
            watching = True
        except (PermissionError, ValueError, OSError):
            keep(loop.create_task(pump_file()))
        resizing = raw and hasattr(signal, "SIGWINCH")
        if resizing:
            loop.add_signal_handler(
                signal.SIGWINCH, lambda: keep(loop.create_task(channel.resize(*terminal_size())))
            )
        try:
            while (item := await channel.read()) is not None:
                stream, data = item
                os.write(stderr_fd if stream == 2 else stdout_fd, data)
        finally:
            if resizing:
                loop.remove_signal_handler(signal.SIGWINCH)
        return await channel.exit_code()
    finally:
        if watching and not stdin_done.is_set():
            loop.remove_reader(stdin_fd)
        for task in list(pending):
            task.cancel()
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        with contextlib.suppress(Exception):
            await channel.close()


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
