"""The ``mist`` entry point: choose between the TUI, the daemon and a command; open the Mist API (remote or
embedded) with the stored token; run the command; turn errors into a message and an exit code."""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import traceback
from argparse import Namespace
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from .. import config
from ..api import MistAPI
from ..errors import MistError, Unauthenticated
from .commands import ANONYMOUS_COMMANDS, Context, call_handler
from .credentials import CredentialStore
from .output import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USER_ERROR, Output
from .parser import UsageError, first_command, parse_args

# (args, token) -> MistAPI, or an awaitable of one. Tests pass their own; the default imports lazily.
ApiFactory = Callable[[Namespace, str | None], "MistAPI | Awaitable[MistAPI]"]

COMPLETIONS_DIR = Path(__file__).resolve().parent.parent / "completions"
COMPLETION_FILES = {"bash": "mist.bash", "zsh": "_mist"}


def data_dir(args: Namespace) -> Path:
    return Path(args.data).expanduser().resolve() if args.data else config.default_data_dir().resolve()


def host_key(args: Namespace) -> str:
    """The name the token is stored under: the daemon URL, or ``embedded:<data dir>``."""
    if args.embedded:
        return f"embedded:{data_dir(args)}"
    return str(args.host or config.default_host())


def default_api_factory(args: Namespace, token: str | None) -> MistAPI | Awaitable[MistAPI]:
    if args.embedded:
        from ..local import open_embedded

        return open_embedded(data_dir(args), token)  # type: ignore[no-any-return]
    from ..client import RemoteMist

    return RemoteMist(host_key(args), token)  # type: ignore[no-any-return]


def open_tui(argv: list[str]) -> int:
    """``mist`` without a command: the terminal UI, given the same connection options."""
    import importlib

    tui = importlib.import_module("mist_tui.app")
    if not hasattr(tui, "main"):
        tui = importlib.import_module("mist_tui.__main__")
    # The TUI names the data directory --data-dir and has no JSON output.
    translated: list[str] = []
    for arg in argv:
        if arg == "--json":
            continue
        if arg == "--data" or arg.startswith("--data="):
            arg = "--data-dir" + arg[len("--data") :]
        translated.append(arg)
    return int(tui.main(translated) or 0)


def completion_script(shell: str) -> str:
    return (COMPLETIONS_DIR / COMPLETION_FILES[shell]).read_text()


def main(argv: list[str] | None = None) -> int:
    """``mist [options] [command ...]``; returns the exit code."""
    return run(sys.argv[1:] if argv is None else list(argv))


def run(
    argv: list[str],
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    api_factory: ApiFactory | None = None,
) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr

    index = first_command(argv)
    if index is None and "-h" not in argv and "--help" not in argv:
        return open_tui(argv)
    if index is not None and argv[index] == "daemon":
        from ..daemon import main as daemon_main

        return int(daemon_main(argv[index + 1 :]) or 0)

    try:
        args = parse_args(argv)
    except UsageError as err:
        if "--json" in argv:
            Output(json_mode=True, stdout=stdout, stderr=stderr).error(
                "invalid_input", err.message, err.field
            )
        else:
            stderr.write(err.usage + err.message + "\n")
        return EXIT_USER_ERROR
    if args.command is None:
        return open_tui(argv)

    out = Output(json_mode=args.json, stdout=stdout, stderr=stderr)
    if args.command == "completion":
        stdout.write(completion_script(args.shell))
        return EXIT_OK
    try:
        return asyncio.run(_run_command(args, out, stdin, api_factory or default_api_factory))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``mist logs -f | head``): nothing left to say to anyone.
        _silence_stdout()
        return EXIT_OK
    except MistError as err:
        return out.mist_error(err)


async def _run_command(args: Namespace, out: Output, stdin: TextIO, api_factory: ApiFactory) -> int:
    credentials = CredentialStore()
    host = host_key(args)
    token = None if args.command in ANONYMOUS_COMMANDS else credentials.token(host)
    try:
        opened = api_factory(args, token)
        api = await opened if inspect.isawaitable(opened) else opened
        async with api:
            ctx = Context(args=args, out=out, api=api, host=host, credentials=credentials, stdin=stdin)
            return await call_handler(ctx)
    except Unauthenticated as err:
        if token is None and args.command not in ANONYMOUS_COMMANDS:
            err = Unauthenticated(f"{err.message} (not logged in to {host}: run `mist login` first)")
        return out.mist_error(err)
    except MistError as err:
        return out.mist_error(err)
    except (KeyboardInterrupt, asyncio.CancelledError, BrokenPipeError):
        raise
    except Exception as err:  # a bug, not a user error: keep the traceback for the report
        out.error("internal_error", f"unexpected error: {type(err).__name__}: {err}")
        traceback.print_exc(file=out.stderr)
        return EXIT_FAILURE


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
