"""``mistd`` (also ``mist daemon``): owns one data directory's core (store, deploy workers, samplers) and serves
the API on a Unix socket it binds itself, and optionally on TCP, always with TLS (a certificate given, or a
self-signed one it makes and prints the fingerprint of). With ``--hooks-listen``, it also serves the public
``/hooks/`` routes alone (webhook deliveries, the GitHub App manifest pages) over plain HTTP, for the proxy."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import grp
import ipaddress
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from .config import CoreConfig, default_data_dir, default_socket_path
from .errors import Conflict, MistError
from .server.security import MAX_BODY_BYTES, Rate

log = logging.getLogger("mist.daemon")

SOCKET_GROUP = "mist"
GRACEFUL_SHUTDOWN_SECONDS = 5
# uvicorn wakes ten times a second to refresh its Date header and look for a stop request; once a second is
# the header's resolution, and a stop request wakes the loop at once.
SERVER_TICK = 1.0
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


# ---------------------------------------------------------------------------------------------- pieces


def parse_listen(listen: str, flag: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8443`` for IPv6) -> (host, port)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host:
        raise DaemonError(f"{flag} {listen!r}: give HOST:PORT, e.g. 127.0.0.1:8443 or 0.0.0.0:8443")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise DaemonError(f"{flag} {listen!r}: the port must be a number") from None
    if not 0 < port < 65536:
        raise DaemonError(f"{flag} {listen!r}: the port must be between 1 and 65535")
    return host, port


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


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: the daemon owns SIGTERM/SIGINT and stops every
    listener together (uvicorn would re-raise the signal after shutdown and kill the process mid-cleanup).
    Its idle loop ticks once a second instead of ten times."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        self.should_exit = True
        self._wake.set()

    async def main_loop(self) -> None:
        # uvicorn's own loop, with a longer sleep: on_tick refreshes the Date header when the counter is a
        # multiple of 10, so each tick advances it by 10.
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SERVER_TICK)
            counter = (counter + 10) % 864000
            should_exit = await self.on_tick(counter)


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
        self.servers: list[_Server] = []
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
        }
        listeners: list[tuple[uvicorn.Config, socket.socket]] = []
        if self.options.socket_path is not None:
            sock = bind_unix_socket(self.options.socket_path, self.options.socket_group)
            self._socket_path = self.options.socket_path
            listeners.append((uvicorn.Config(app, **common), sock))
        if tcp is not None:
            cert, key, self.tls_fingerprint = tls_files(self.options, tcp[0])
            sock = bind_tcp_socket(*tcp)
            config = uvicorn.Config(app, **common, ssl_certfile=str(cert), ssl_keyfile=str(key))
            listeners.append((config, sock))
        if hooks is not None:
            if not is_loopback(hooks[0]):
                log.warning(
                    "serving /hooks/ over plain HTTP on %s:%s, which is not a loopback address: let only the "
                    "proxy reach it (it terminates TLS for public_url)",
                    *hooks,
                )
            sock = bind_tcp_socket(*hooks)
            listeners.append((uvicorn.Config(create_hooks_app(self.core), **common), sock))
        for config, sock in listeners:
            server = _Server(config)
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


async def serve(options: DaemonOptions, *, handle_signals: bool = True) -> None:
    """Run a daemon until SIGTERM/SIGINT (or until the task is cancelled)."""
    daemon = Daemon(options)
    loop = asyncio.get_running_loop()
    if handle_signals:
        # Before the socket answers: a SIGTERM that comes right after must stop the daemon cleanly, not
        # kill it with the default handler.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.request_stop)
    trimmer = None
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
        if trimmer is not None:
            trimmer.cancel()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        await daemon.stop()


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
    )


def main(argv: list[str] | None = None, *, prog: str = "mistd") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # aiosqlite logs every statement with its parameters at debug level: secrets (sealed or not) stay out.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLogger().level))
    try:
        options = options_from_args(args)
        check_tcp_options(options)
        check_hooks_options(options)
        libc = _libc()
        if libc is not None:
            limit_malloc_arenas(libc)  # before any thread starts: arenas are made on a thread's first malloc
        asyncio.run(serve(options))
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
