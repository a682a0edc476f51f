"""The command line's entry point: run the daemon or a command; open the Mist API (remote or embedded) with
the stored session (renewed silently when its access token expires, and saved again); hand the command to
the module that implements it; turn errors into a message and an exit code. ``mist`` without a command (the
terminal UI) is the business of ``mist_tui.launch``: this package never imports the TUI."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
import traceback
from argparse import Namespace
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from .. import config
from ..api import MistAPI
from ..credentials import CredentialStore
from ..errors import InvalidInput, MistError, Unauthenticated
from ..models import Session
from .context import CommandKey, Context, Handler, command_key, invalid_from_validation, is_anonymous
from .output import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, Output
from .parser import UsageError, build_parser, first_command, parse_args
from .trust import certificate_verifies, fingerprints_match

# The modules that implement each command word. A command imports only its own module(s): a process runs
# one command, and loading the other modules (and what they import) costs it about 50 ms.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "project": ("projects",),
    "app": ("apps", "sources"),
    "env": ("env",),
    "db": ("databases",),
    **dict.fromkeys(("deploy", "rollback", "deployments", "deployment", "cancel"), ("deployments",)),
    **dict.fromkeys(("ps", "logs", "start", "stop", "restart", "metrics"), ("runtime",)),
    **dict.fromkeys(("exec", "describe"), ("exec",)),
    **dict.fromkeys(("domain", "cert"), ("domains",)),
    "proxy": ("proxy",),
    "backup": ("backups",),
    "settings": ("settings",),
    **dict.fromkeys(
        (
            "setup",
            "login",
            "logout",
            "whoami",
            "passwd",
            "2fa",
            "user",
            "users",
            "member",
            "invite",
            "token",
            "session",
            "secrets",
            "audit",
        ),
        ("accounts",),
    ),
    **dict.fromkeys(("git", "webhooks", "previews"), ("sources",)),
}


def _tables(names: Iterable[str]) -> dict[CommandKey, Handler]:
    handlers: dict[CommandKey, Handler] = {}
    for name in names:
        module = importlib.import_module(f"{__package__}.{name}")
        for key, handler in module.command.handlers.items():
            if key in handlers:
                raise ValueError(f"mist {' '.join(w for w in key if w)} is registered twice")
            handlers[key] = handler
    return handlers


def all_handlers() -> dict[CommandKey, Handler]:
    """Every command, by the words that name it: ``("project", "create")``, ``("git", "provider add")``
    (this imports every command module)."""
    return _tables(dict.fromkeys(m for names in COMMAND_MODULES.values() for m in names))


def handler_for(key: CommandKey) -> Handler:
    """The handler of one command, importing only the module(s) of its first word."""
    return _tables(COMMAND_MODULES[key[0]])[key]


@dataclass
class Connection:
    """What a command opens the API with: the access token (stored, or ``MIST_TOKEN``); for a stored session
    its refresh token and ``on_session``, which saves the pair the API renews by itself; and the PEM of a
    self-signed daemon certificate the user chose to trust."""

    token: str | None = None
    refresh_token: str | None = None
    on_session: Callable[[Session], None] | None = None
    certificate: str | None = None


# (args, connection) -> MistAPI, or an awaitable of one. Tests pass their own; the default imports lazily.
ApiFactory = Callable[[Namespace, Connection], "MistAPI | Awaitable[MistAPI]"]

COMPLETIONS_DIR = Path(__file__).resolve().parent.parent / "completions"
COMPLETION_FILES = {"bash": "mist.bash", "zsh": "_mist"}


def data_dir(args: Namespace) -> Path:
    return Path(args.data).expanduser().resolve() if args.data else config.default_data_dir().resolve()


def host_key(args: Namespace) -> str:
    """The name the token is stored under: the daemon URL, or ``embedded:<data dir>``."""
    if args.embedded:
        return f"embedded:{data_dir(args)}"
    return str(args.host or config.default_host())


def default_api_factory(args: Namespace, conn: Connection) -> MistAPI | Awaitable[MistAPI]:
    renew = conn.on_session if conn.refresh_token else None
    if args.embedded:
        from ..local import open_embedded

        return open_embedded(data_dir(args), conn.token, refresh_token=conn.refresh_token, on_session=renew)
    from ..client import RemoteMist

    return RemoteMist(
        host_key(args),
        conn.token,
        refresh_token=conn.refresh_token,
        on_session=renew,
        certificate=conn.certificate,
    )


def completion_script(shell: str) -> str:
    return (COMPLETIONS_DIR / COMPLETION_FILES[shell]).read_text()


def main(
    argv: list[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """``mist [options] command ...``; returns the exit code. See ``run`` for the keyword arguments."""
    return run(
        sys.argv[1:] if argv is None else list(argv), stdin=stdin, stdout=stdout, stderr=stderr, env=env
    )


def run(
    argv: list[str],
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    api_factory: ApiFactory | None = None,
) -> int:
    """Run one command in this process, reading ``stdin`` and writing ``stdout``/``stderr`` (default: the
    process's own). ``env``, when given, is the whole environment the command runs with, as if it were
    started with it (the command and an embedded core read their settings from there); the process's own
    is back afterwards. ``api_factory`` opens the API instead of the default (a daemon, or ``--embedded``)."""
    with _environment(env):
        return _run(argv, stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr, api_factory)


@contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    if env is None:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(
    argv: list[str], stdin: TextIO, stdout: TextIO, stderr: TextIO, api_factory: ApiFactory | None
) -> int:
    index = first_command(argv)
    if index is not None and argv[index] == "daemon":
        from ..daemon import main as daemon_main

        return int(daemon_main(argv[index + 1 :]) or 0)

    try:
        args = parse_args(argv)
    except UsageError as err:
        out = Output(json_mode="--json" in argv, stdout=stdout, stderr=stderr)
        return out.usage_error(err.message, err.field, err.usage)
    out = Output(json_mode=args.json, stdout=stdout, stderr=stderr)
    if args.command is None:
        return out.usage_error(
            "mist: give a command (mist --help lists them); `mist` alone opens the terminal UI",
            "command",
            build_parser().format_usage(),
        )
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
    anonymous = is_anonymous(args)
    token = None if anonymous else credentials.token(host)
    refresh_token = None if anonymous else credentials.refresh_token(host)

    def on_session(session: Session) -> None:
        credentials.update_tokens(host, session.token, session.refresh_token)

    try:
        certificate, trusted_now = await _certificate(args, out, stdin, host, credentials)
        if refresh_token and not args.embedded:
            token, refresh_token = await _renew_if_expiring(args, host, credentials, certificate, api_factory)
        conn = Connection(token, refresh_token, on_session if refresh_token else None, certificate)
        opened = api_factory(args, conn)
        api = await opened if inspect.isawaitable(opened) else opened
        async with api:
            ctx = Context(
                args=args,
                out=out,
                api=api,
                host=host,
                credentials=credentials,
                stdin=stdin,
                certificate=trusted_now,
            )
            return await _call_handler(ctx)
    except Unauthenticated as err:
        if not anonymous and "mist login" not in err.message:
            if token is None:
                hint = f"not logged in to {host}: run `mist login` first"
            elif os.environ.get("MIST_TOKEN"):
                hint = "the token in MIST_TOKEN was refused: it may have expired or been revoked (mist token list)"
            else:
                hint = f"the session for {host} is no longer valid: run `mist login` again"
            err = type(err)(f"{err.message} ({hint})", field=err.field, **err.extra)
        return out.mist_error(err)
    except MistError as err:
        return out.mist_error(err)
    except (KeyboardInterrupt, asyncio.CancelledError, BrokenPipeError):
        raise
    except Exception as err:  # a bug, not a user error: keep the traceback for the report
        out.error("internal_error", f"unexpected error: {type(err).__name__}: {err}")
        traceback.print_exc(file=out.stderr)
        return EXIT_FAILURE


async def _call_handler(ctx: Context) -> int:
    """Run the handler the parsed command names."""
    handler = handler_for(command_key(ctx.args))
    try:
        return await handler(ctx)
    except ValidationError as err:
        raise invalid_from_validation(err) from None


async def _renew_if_expiring(
    args: Namespace,
    host: str,
    credentials: CredentialStore,
    certificate: str | None,
    api_factory: ApiFactory,
) -> tuple[str | None, str | None]:
    """The stored session, renewed first when its access token is (nearly) expired. The API would renew it by
    itself too, but only within this process: two ``mist`` commands (or a command and the TUI) started
    together would both spend the one-use refresh token, and the second would end the session. The store's
    lock makes the second wait, then find the pair the first one saved."""

    async def refresh(refresh_token: str) -> Session:
        opened = api_factory(args, Connection(certificate=certificate))
        api = await opened if inspect.isawaitable(opened) else opened
        async with api:
            return await api.auth.refresh(refresh_token)

    try:
        return await credentials.renew(host, refresh)
    except Unauthenticated:
        return credentials.token(host), None  # the session is over: the command says to log in again


async def _certificate(
    args: Namespace, out: Output, stdin: TextIO, host: str, credentials: CredentialStore
) -> tuple[str | None, str | None]:
    """The certificate to connect to an ``https://`` daemon with (the pinned one, if any), and the one the
    user chose to trust while logging in (saved with the session once the login succeeds). Only the commands
    that start a session (``setup``, ``login``, ``invite accept``) offer to trust a certificate."""
    pinned = credentials.certificate(host)
    if args.embedded or not host.startswith("https://") or not is_anonymous(args):
        return pinned, None
    if pinned is not None:
        if await certificate_verifies(host, pinned):
            return pinned, None
        out.note(
            f"WARNING: the certificate of {host} is not the one trusted earlier. If the daemon's certificate was "
            "not replaced on purpose, someone may be intercepting the connection: answer no."
        )
    elif await certificate_verifies(host):
        return None, None  # a certificate the system trusts: nothing to pin
    pem = await _trust(args, out, stdin, host)
    return pem, pem


async def _trust(args: Namespace, out: Output, stdin: TextIO, host: str) -> str:
    """Show the daemon's certificate fingerprint and ask whether to trust it (or check ``--fingerprint``)."""
    from ..client import fetch_certificate

    pem, fingerprint = await asyncio.to_thread(fetch_certificate, host)
    if args.fingerprint:
        if fingerprints_match(args.fingerprint, fingerprint):
            return pem
        raise InvalidInput(
            f"the certificate of {host} has the fingerprint {fingerprint}, not {args.fingerprint}: "
            "not connecting (check the fingerprint the daemon printed when it started)",
            field="fingerprint",
        )
    if not stdin.isatty():
        raise InvalidInput(
            f"the certificate of {host} is not signed by an authority this system trusts; its fingerprint is "
            f"{fingerprint}. If the daemon printed the same one, trust it with --fingerprint {fingerprint}",
            field="fingerprint",
        )
    out.note(f"The certificate of {host} is not signed by an authority this system trusts.")
    out.note(f"Its fingerprint is {fingerprint}")
    out.note("Compare it with the one the daemon printed when it started (mistd --listen ...).")
    out.stderr.write("Trust this certificate for this host from now on? [y/N] ")
    out.stderr.flush()
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise InvalidInput("certificate not trusted: nothing was sent to the daemon", field="fingerprint")
    return pem


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
