"""``mistd`` (also ``mist daemon``): owns one data directory's core (store, deploy workers, samplers) and serves
the API on a Unix socket it binds itself, and optionally on TCP, always with TLS (a certificate given, or a
self-signed one it makes and prints the fingerprint of). With ``--hooks-listen``, it also serves the public
``/hooks/`` routes alone (webhook deliveries, the GitHub App manifest pages) over plain HTTP, for the proxy.
Each listener has its own bound on open connections, within what the open-file limit leaves after the core's
own needs, and every connection its deadlines (``mist_core.server.listeners``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import grp
import ipaddress
import logging
import os
import resource
import signal
import socket
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from . import auth, validate
from .config import CoreConfig, default_data_dir, default_socket_path
from .errors import Conflict, InvalidInput, MistError
from .server.listeners import ClientTimeouts, ListenerServer, LogFloodFilter
from .server.security import MAX_BODY_BYTES, Rate

log = logging.getLogger("mist.daemon")

SOCKET_GROUP = "mist"
GRACEFUL_SHUTDOWN_SECONDS = 5
# Open connections at once: the Unix socket (the TUI, the CLI, scripts on this machine) and each TCP listener,
# which anyone who can reach it may open connections to (so a modest bound).
DEFAULT_SOCKET_CONNECTIONS = 256
DEFAULT_PUBLIC_CONNECTIONS = 128
# File descriptors kept out of the listeners' reach: the store (SQLite, its WAL and shared memory), the engine's
# connections, the deploy workers' git and docker processes and their pipes, log and lock files.
RESERVED_FILES = 256
# A connection may hold a second descriptor: a log, event or metrics stream reads the engine's socket for it.
FILES_PER_CONNECTION = 2
MIN_CONNECTIONS = 8
# Where the soft open-file limit is raised to when the hard limit is unlimited (Linux refuses "unlimited").
OPEN_FILES_CEILING = 1 << 20
# glibc's malloc: arenas for all threads together (its default is 8 per core, each holding on to freed
# memory), and how often free heap pages go back to the system.
MALLOC_ARENAS = 2
MALLOC_TRIM_EVERY = 60.0
# Blocks this large or larger are mmapped, so they go back to the system as soon as they are freed. glibc's
# default threshold follows the largest block freed so far: after one login (scrypt's 16 MB work area) the
# next logins took their 16 MB from the heap and kept it resident until the next trim.
MALLOC_MMAP_THRESHOLD = 1024 * 1024
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


class DaemonError(Exception):
    """Something stops the daemon from starting; the message says what and what to do."""


@dataclass
class DaemonOptions:
    data_dir: Path
    socket_path: Path | None
    listen: str | None = None  # "HOST:PORT"
    # "HOST:PORT" of the plain HTTP listener that serves only /hooks/ (the proxy routes public_url/hooks/ to it).
    hooks_listen: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    workers: int | None = None
    log_level: str = "info"
    # The group that may use the socket (mode 0660); ignored when no such group exists.
    socket_group: str = field(default_factory=lambda: os.environ.get("MIST_SOCKET_GROUP") or SOCKET_GROUP)
    # The per-address limit on login, refresh, setup, invitation and token endpoints (None: MIST_AUTH_RATE,
    # else 30 at once and one a second).
    auth_rate: Rate | None = None
    max_body: int = MAX_BODY_BYTES
    # Bounds on open connections: each TCP listener's, and the Unix socket's (None: the defaults, lowered to
    # fit a low open-file limit).
    max_connections: int | None = None
    max_socket_connections: int | None = None
    timeouts: ClientTimeouts = field(default_factory=ClientTimeouts)


# ---------------------------------------------------------------------------------------------- pieces


def parse_listen(listen: str, flag: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8443`` for IPv6) -> (host, port)."""
    try:
        return validate.listen_address(listen, flag, host_required=True)
    except InvalidInput as err:
        raise DaemonError(err.message) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_hooks_options(options: DaemonOptions) -> tuple[str, int] | None:
    """The address of the plain HTTP hooks listener, if any. It carries no token and no secret (deliveries
    prove themselves by their signature), so plain HTTP is acceptable, but only the proxy should reach it: a
    non-loopback address is served because it was given explicitly, with a warning."""
    if options.hooks_listen is None:
        return None
    host, port = parse_listen(options.hooks_listen, "--hooks-listen")
    if options.listen is not None and parse_listen(options.listen) == (host, port):
        raise DaemonError(
            "--hooks-listen and --listen name the same address: give the hooks listener its own"
        )
    return host, port


def check_tcp_options(options: DaemonOptions) -> tuple[str, int] | None:
    """The TCP address to serve on, if any. TCP is always TLS: with no certificate given, the daemon makes a
    self-signed one (``tls_files``)."""
    if (options.tls_cert is None) != (options.tls_key is None):
        raise DaemonError("--tls-cert and --tls-key go together: give both files, or neither")
    if options.listen is None:
        if options.tls_cert is not None:
            raise DaemonError("--tls-cert/--tls-key need --listen HOST:PORT to serve TLS on")
        return None
    host, port = parse_listen(options.listen)
    for path in (options.tls_cert, options.tls_key):
        if path is not None and not Path(path).is_file():
            raise DaemonError(f"TLS file {path} does not exist: give the path of a PEM file")
    return host, port


def tls_files(options: DaemonOptions, host: str) -> tuple[Path, Path, str]:
    """The certificate and key of the TCP listener, and the certificate's SHA-256 fingerprint: the operator's
    files, or a self-signed pair kept in the data directory (made on first use, then reused)."""
    from .server.certificate import ensure_self_signed, fingerprint_of_file

    if options.tls_cert is not None and options.tls_key is not None:
        cert, key = Path(options.tls_cert), Path(options.tls_key)
    else:
        cert, key, made = ensure_self_signed(options.data_dir / "tls", [host])
        if made:
            log.info("made a self-signed TLS certificate for the API: %s", cert)
    try:
        fingerprint = fingerprint_of_file(cert)
    except Exception:
        raise DaemonError(f"{cert} holds no PEM certificate: give a PEM file to --tls-cert") from None
    return cert, key, fingerprint


def _socket_answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def bind_unix_socket(path: Path, group: str = SOCKET_GROUP) -> socket.socket:
    """Bind the API socket: parent dirs 0750, the socket 0660 and ``group`` (``mist``) when that group exists.

    A leftover socket file (the daemon was killed) is replaced, but only when nobody answers on it.
    """
    made_dir = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise DaemonError(f"{path} exists and is not a socket: remove it or give another --socket path")
        if _socket_answers(path):
            raise DaemonError(
                f"a Mist daemon already answers on {path}: stop it first, or give another --socket path"
            )
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The mode is set before anyone can connect: umask covers bind(), chmod makes it exact.
    old_umask = os.umask(0o117)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise DaemonError(f"cannot bind the API socket {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o660)
    # Before listen(): nobody can connect yet, so the group is right from the first connection on.
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        log.debug("no group %r: the socket keeps the daemon's group", group)
    else:
        try:
            os.chown(path, -1, gid)
            # A directory made for the socket (/run/mist) must let the group through too, or the socket's
            # mode is moot. One that already existed (it may be the data dir) keeps its group.
            if made_dir:
                os.chown(path.parent, -1, gid)
        except OSError as exc:
            log.warning("cannot give the socket %s to group %s: %s", path, group, exc.strerror)
    sock.listen(256)
    sock.setblocking(False)
    return sock


def bind_tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DaemonError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(256)
    sock.setblocking(False)
    return sock


@dataclass(frozen=True)
class ConnectionBounds:
    """How many connections may be open at once on the Unix socket, and on each TCP listener."""

    socket: int
    public: int


def connection_bounds(
    open_files: int, *, socket_listener: bool, public_listeners: int, options: DaemonOptions
) -> ConnectionBounds:
    """The listeners' bounds, so that together (a stream may hold a second descriptor for each connection)
    they leave ``RESERVED_FILES`` for the core even when every listener is full. Bounds given by the operator
    are kept or refused; default ones are lowered to fit what remains."""
    budget = (open_files - RESERVED_FILES) // FILES_PER_CONNECTION
    listeners = {"socket": 1 if socket_listener else 0, "public": public_listeners}
    given = {"socket": options.max_socket_connections, "public": options.max_connections}
    defaults = {"socket": DEFAULT_SOCKET_CONNECTIONS, "public": DEFAULT_PUBLIC_CONNECTIONS}
    fixed = sum(listeners[k] * (given[k] or 0) for k in listeners)
    flexible = sum(listeners[k] * defaults[k] for k in listeners if not given[k])
    remaining = budget - fixed
    if 0 <= remaining and flexible <= remaining:
        return ConnectionBounds(given["socket"] or defaults["socket"], given["public"] or defaults["public"])
    scale = max(remaining, 0) / flexible if flexible else 0.0
    bounds = ConnectionBounds(
        given["socket"] or int(defaults["socket"] * scale), given["public"] or int(defaults["public"] * scale)
    )
    in_use = [
        bound for kind, bound in (("socket", bounds.socket), ("public", bounds.public)) if listeners[kind]
    ]
    if remaining < 0 or min(in_use, default=MIN_CONNECTIONS) < MIN_CONNECTIONS:
        raise DaemonError(
            f"the open-file limit is {open_files}: after {RESERVED_FILES} kept for the core, it leaves room for "
            f"{max(budget, 0)} connections at once, too few for these listeners' bounds; raise the limit "
            "(ulimit -n, or LimitNOFILE= in the service unit) or lower --max-connections / "
            "--max-socket-connections"
        )
    log.warning(
        "the open-file limit is %d: open connections are bounded to %s; raise the limit (ulimit -n, or "
        "LimitNOFILE= in the service unit) to allow more",
        open_files,
        " and ".join(
            f"{bound} {what}"
            for what, bound, used in (
                ("on the socket", bounds.socket, listeners["socket"]),
                ("on each TCP listener", bounds.public, listeners["public"]),
            )
            if used
        ),
    )
    return bounds


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard one (the usual soft 1024 is what a connection flood
    exhausts first); the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        log.info("open-file limit: %d", soft)
        return soft if soft != resource.RLIM_INFINITY else OPEN_FILES_CEILING
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        return soft
    log.info("raised the open-file limit from %d to %d (its hard limit)", soft, target)
    return target


def open_file_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return OPEN_FILES_CEILING if soft == resource.RLIM_INFINITY else soft


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: its allocator needs none of this
        return None


def limit_malloc_arenas(libc: Any) -> None:
    """Fewer malloc arenas: the daemon's threads (SQLite, system readings, password hashing) are few and
    mostly idle, and each arena of its own keeps megabytes of freed memory resident. Large blocks are always
    mmapped (``MALLOC_MMAP_THRESHOLD``)."""
    with contextlib.suppress(AttributeError):
        libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
        libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)


async def trim_malloc(libc: Any, every: float = MALLOC_TRIM_EVERY) -> None:
    """Give free heap memory back to the system now and then: a burst of deploys or a long list leaves
    freed pages that glibc keeps resident otherwise. Costs well under a millisecond when there is little to do."""
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(AttributeError):
            libc.malloc_trim(0)


# ---------------------------------------------------------------------------------------------- daemon


class Daemon:
    """One running daemon: lock, core, listeners. ``start()`` returns once it accepts requests."""

    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.core: Any = None
        self.servers: list[ListenerServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._socket_path: Path | None = None
        self._stopped = asyncio.Event()
        self.tls_fingerprint: str | None = None  # of the TCP listener's certificate, once listening

    async def start(self) -> None:
        from .local import Core  # the core is heavy; imported only once the options are known good

        tcp = check_tcp_options(self.options)
        hooks = check_hooks_options(self.options)
        if self.options.socket_path is None and tcp is None:
            raise DaemonError("nothing to serve on: give --socket PATH and/or --listen HOST:PORT")
        config_kw: dict[str, Any] = {"data_dir": self.options.data_dir}
        if self.options.workers is not None:
            config_kw["workers"] = self.options.workers
        try:
            # Core.open takes the exclusive flock on the data dir's lock file, so two daemons (or a daemon
            # and an embedded core) never run workers against the same store.
            self.core = await Core.open(CoreConfig(**config_kw))
        except Conflict as exc:
            raise DaemonError(
                f"another Mist daemon is already running on {self.options.data_dir}: stop it first, "
                f"or give this one another --data directory ({exc.message})"
            ) from None
        # Made before the first request, so the first login of an unknown name takes as long as any other.
        auth.dummy_hash()
        try:
            await self._listen(tcp, hooks)
            await self.core.start_background()
        except BaseException:
            await self.stop()
            raise

    async def _listen(self, tcp: tuple[str, int] | None, hooks: tuple[str, int] | None = None) -> None:
        from .server.app import create_app, create_hooks_app

        app = create_app(self.core, max_body=self.options.max_body, auth_rate=self.options.auth_rate)
        level = self.options.log_level.lower()
        common: dict[str, Any] = {
            "log_config": None,
            "log_level": level,
            # One line per request, and only when debugging: paths can name projects, never secrets.
            "access_log": level == "debug",
            "lifespan": "off",
            "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
            "server_header": False,
            # The client address is the peer's: a forwarded-for header would let anyone pick the address the
            # rate limit and the lockout count.
            "proxy_headers": False,
            # The parser the listeners' protocol is built on; and no WebSocket upgrades (the API has none, and a
            # connection handed to another protocol would leave its listener's count).
            "http": "h11",
            "ws": "none",
        }
        bounds = connection_bounds(
            open_file_limit(),
            socket_listener=self.options.socket_path is not None,
            public_listeners=(tcp is not None) + (hooks is not None),
            options=self.options,
        )
        # (config, socket, what to call it in the log, its bound on open connections)
        listeners: list[tuple[uvicorn.Config, socket.socket, str, int]] = []
        if self.options.socket_path is not None:
            sock = bind_unix_socket(self.options.socket_path, self.options.socket_group)
            self._socket_path = self.options.socket_path
            label = f"the socket {self.options.socket_path}"
            listeners.append((uvicorn.Config(app, **common), sock, label, bounds.socket))
        if tcp is not None:
            cert, key, self.tls_fingerprint = tls_files(self.options, tcp[0])
            sock = bind_tcp_socket(*tcp)
            config = uvicorn.Config(app, **common, ssl_certfile=str(cert), ssl_keyfile=str(key))
            listeners.append((config, sock, f"https://{tcp[0]}:{tcp[1]}", bounds.public))
        if hooks is not None:
            if not is_loopback(hooks[0]):
                log.warning(
                    "serving /hooks/ over plain HTTP on %s:%s, which is not a loopback address: let only the "
                    "proxy reach it (it terminates TLS for public_url)",
                    *hooks,
                )
            sock = bind_tcp_socket(*hooks)
            config = uvicorn.Config(create_hooks_app(self.core), **common)
            listeners.append((config, sock, f"http://{hooks[0]}:{hooks[1]}/hooks/", bounds.public))
        for config, sock, label, bound in listeners:
            server = ListenerServer(
                config, where=label, max_connections=bound, timeouts=self.options.timeouts
            )
            self.servers.append(server)
            self._tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
        while not all(s.started for s in self.servers):
            if any(t.done() for t in self._tasks):
                failed = next(t for t in self._tasks if t.done())
                failed.result()
                raise DaemonError("a listener stopped while starting")
            await asyncio.sleep(0.01)
        where = [str(self.options.socket_path)] if self.options.socket_path else []
        if tcp is not None:
            where.append(f"https://{tcp[0]}:{tcp[1]}")
        if hooks is not None:
            where.append(f"http://{hooks[0]}:{hooks[1]}/hooks/ (webhooks only)")
        log.info("Mist daemon serving %s (data in %s)", " and ".join(where), self.options.data_dir)
        log.info(
            "open connections bounded to %s; a request head is due within %g s, a connection may idle %g s "
            "between requests, a body may stall %g s",
            ", ".join(f"{s.max_connections} on {s.where}" for s in self.servers),
            self.options.timeouts.header,
            self.options.timeouts.idle,
            self.options.timeouts.body,
        )

    def request_stop(self) -> None:
        for server in self.servers:
            server.stop()
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()
        await self.stop()

    async def stop(self) -> None:
        """Stop accepting, let requests finish (streams get a grace period), then close the core."""
        for server in self.servers:
            server.stop()
        if self._tasks:
            results = await asyncio.gather(*self._tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                    log.error("listener failed while stopping", exc_info=result)
            self._tasks = []
        if self.core is not None:
            core, self.core = self.core, None
            try:
                await core.close()
            except Exception:
                log.exception("closing the core failed")
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket_path.unlink()
            self._socket_path = None
        self._stopped.set()


async def report_left_out_log_lines(filters: list[LogFloodFilter]) -> None:
    """Say how many lines the log filters left out once a flood is over, not only when the next one starts."""
    while True:
        await asyncio.sleep(min((f.interval for f in filters), default=10.0))
        for flood in filters:
            flood.flush()


async def serve(
    options: DaemonOptions, *, handle_signals: bool = True, log_filters: list[LogFloodFilter] | None = None
) -> None:
    """Run a daemon until SIGTERM/SIGINT (or until the task is cancelled)."""
    daemon = Daemon(options)
    loop = asyncio.get_running_loop()
    if handle_signals:
        # Before the socket answers: a SIGTERM that comes right after must stop the daemon cleanly, not
        # kill it with the default handler.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.request_stop)
    trimmer = None
    reporter = None
    if log_filters:
        reporter = asyncio.create_task(report_left_out_log_lines(log_filters), name="mist-log-flood")
    try:
        await daemon.start()
        if daemon.tls_fingerprint is not None:
            # Printed whatever the log level: users compare it with what `mist login --host` shows them.
            print(f"mistd: TLS certificate fingerprint {daemon.tls_fingerprint}", file=sys.stderr, flush=True)
        libc = _libc()
        if libc is not None:
            trimmer = asyncio.create_task(trim_malloc(libc), name="mist-malloc-trim")
        await daemon.wait()
    finally:
        for task in (trimmer, reporter):
            if task is not None:
                task.cancel()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        try:
            await daemon.stop()
        finally:
            for flood in log_filters or []:
                flood.flush(all_kinds=True)


# ---------------------------------------------------------------------------------------------- CLI


def build_parser(prog: str = "mistd") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the Mist daemon: the core, its workers, and the API."
    )
    parser.add_argument(
        "--data", type=Path, default=None, help=f"data directory (default: {default_data_dir()})"
    )
    parser.add_argument(
        "--socket", type=Path, default=None, help=f"API Unix socket (default: {default_socket_path()})"
    )
    parser.add_argument(
        "--no-socket", action="store_true", help="serve only on --listen, not on a Unix socket"
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="also serve the API on TCP, with TLS (a self-signed certificate unless --tls-cert is given)",
    )
    parser.add_argument(
        "--hooks-listen",
        default=os.environ.get("MIST_HOOKS_LISTEN") or None,
        metavar="HOST:PORT",
        help="also serve only the public /hooks/ routes (git webhooks, GitHub App creation) over plain HTTP, "
        "for the proxy to route <public_url>/hooks/ to; keep it on loopback (env MIST_HOOKS_LISTEN)",
    )
    parser.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM certificate for --listen")
    parser.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM private key for --listen")
    parser.add_argument(
        "--socket-group",
        default=os.environ.get("MIST_SOCKET_GROUP") or SOCKET_GROUP,
        metavar="GROUP",
        help=f"group allowed to use the socket, when it exists (default: {SOCKET_GROUP})",
    )
    parser.add_argument(
        "--auth-rate",
        default=os.environ.get("MIST_AUTH_RATE"),
        metavar="BURST/PER_SECOND",
        help="per-address limit on login, refresh, setup, invitation and token requests (default 30/1)",
    )
    parser.add_argument("--workers", type=int, metavar="N", help="deploys run in parallel (default 2)")
    parser.add_argument(
        "--max-connections",
        default=os.environ.get("MIST_MAX_CONNECTIONS"),
        metavar="N",
        help="open connections at once on each TCP listener (--listen, --hooks-listen); more are closed "
        f"unread (default {DEFAULT_PUBLIC_CONNECTIONS}, lower if the open-file limit is low; env "
        "MIST_MAX_CONNECTIONS)",
    )
    parser.add_argument(
        "--max-socket-connections",
        default=os.environ.get("MIST_MAX_SOCKET_CONNECTIONS"),
        metavar="N",
        help=f"open connections at once on the Unix socket (default {DEFAULT_SOCKET_CONNECTIONS}; env "
        "MIST_MAX_SOCKET_CONNECTIONS)",
    )
    defaults = ClientTimeouts()
    parser.add_argument(
        "--header-timeout",
        default=os.environ.get("MIST_HEADER_TIMEOUT"),
        metavar="SECONDS",
        help="a client must send a complete request head (and finish a TLS handshake) within this long of "
        f"connecting or of starting a request (default {defaults.header:g}; env MIST_HEADER_TIMEOUT)",
    )
    parser.add_argument(
        "--idle-timeout",
        default=os.environ.get("MIST_IDLE_TIMEOUT"),
        metavar="SECONDS",
        help="a connection idle this long between requests is closed (default "
        f"{defaults.idle:g}; env MIST_IDLE_TIMEOUT)",
    )
    parser.add_argument(
        "--body-timeout",
        default=os.environ.get("MIST_BODY_TIMEOUT"),
        metavar="SECONDS",
        help="a connection whose request body stops arriving, or whose client stops reading the response, "
        f"for this long is closed; streams that are quiet stay open (default {defaults.body:g}; env "
        "MIST_BODY_TIMEOUT)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("MIST_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="stderr log level (debug adds one line per request)",
    )
    return parser


def options_from_args(args: argparse.Namespace) -> DaemonOptions:
    if args.workers is not None and args.workers < 1:
        raise DaemonError("--workers must be 1 or more")
    try:
        auth_rate = Rate.parse(args.auth_rate) if args.auth_rate else None
    except ValueError as exc:
        raise DaemonError(f"--auth-rate: {exc}") from None
    max_connections = _count(args.max_connections, "--max-connections", "MIST_MAX_CONNECTIONS")
    max_socket = _count(
        args.max_socket_connections, "--max-socket-connections", "MIST_MAX_SOCKET_CONNECTIONS"
    )
    defaults = ClientTimeouts()
    timeouts = ClientTimeouts(
        header=_seconds(args.header_timeout, defaults.header, "--header-timeout", "MIST_HEADER_TIMEOUT"),
        idle=_seconds(args.idle_timeout, defaults.idle, "--idle-timeout", "MIST_IDLE_TIMEOUT"),
        body=_seconds(args.body_timeout, defaults.body, "--body-timeout", "MIST_BODY_TIMEOUT"),
    )
    data_dir = args.data if args.data is not None else default_data_dir()
    socket_path = (
        None if args.no_socket else (args.socket if args.socket is not None else default_socket_path())
    )
    return DaemonOptions(
        data_dir=Path(data_dir),
        socket_path=socket_path,
        listen=args.listen,
        hooks_listen=args.hooks_listen,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        workers=args.workers,
        log_level=args.log_level,
        socket_group=args.socket_group,
        auth_rate=auth_rate,
        max_connections=max_connections,
        max_socket_connections=max_socket,
        timeouts=timeouts,
    )


def _count(text: str | None, flag: str, env: str) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DaemonError(f"{flag} (or {env}) {text!r}: give a whole number of connections, 1 or more")
    return value


def _seconds(text: str | None, default: float, flag: str, env: str) -> float:
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 86400:
        raise DaemonError(f"{flag} (or {env}) {text!r}: give a number of seconds above 0, e.g. 15")
    return value


def main(argv: list[str] | None = None, *, prog: str = "mistd") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # aiosqlite logs every statement with its parameters at debug level: secrets (sealed or not) stay out.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLogger().level))
    # A flood of clients must not become a flood of log lines (the disk is shared with the store).
    log_filters = LogFloodFilter.install(logging.getLogger().handlers)
    try:
        options = options_from_args(args)
        check_tcp_options(options)
        check_hooks_options(options)
        raise_open_file_limit()
        libc = _libc()
        if libc is not None:
            limit_malloc_arenas(libc)  # before any thread starts: arenas are made on a thread's first malloc
        asyncio.run(serve(options, log_filters=log_filters))
    except DaemonError as exc:
        print(f"mistd: {exc}", file=sys.stderr)
        return 1
    except MistError as exc:  # the core refused to open (an unsafe data directory, an unreadable key...)
        print(f"mistd: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
