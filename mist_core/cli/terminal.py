"""This terminal attached to an exec session (``mist exec``, ``mist db shell``, and the TUI, which suspends
itself and hands the terminal over for the length of a session)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from typing import Any

from ..execs import ExecChannel

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
