"""The daemon's listening sockets, hardened against clients that connect and then do little or nothing: each
listener runs its own accept loop with a bound on its open connections (one beyond it is closed at once,
unread), and every connection has deadlines on reading its request head, on idling between requests and on a
body that stops moving, in either direction. Also the log filter that keeps a flood of such clients from
flooding the log."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("mist.listeners")

# How long an accept loop waits before trying again when the process is out of file descriptors or memory:
# the connections already open have to finish first, and trying at once would only spin.
ACCEPT_RETRY_SECONDS = 1.0
# Errors of accept() that say the process or the system has run out of something, not that the client did
# anything wrong.
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# uvicorn wakes ten times a second to refresh its Date header and look for a stop request; once a second is
# the header's resolution, and a stop request wakes the loop at once.
SERVER_TICK = 1.0


@dataclass(frozen=True)
class ClientTimeouts:
    """How long a client may keep a connection without making progress, in seconds.

    ``header``: from connecting (or from the first byte of the next request) to a complete request head; a
    TLS handshake is held to the same deadline before that. It is a deadline, not an idle timer: a client that
    sends its head a byte at a time is closed all the same. ``idle``: between the end of a response and the
    start of the next request. ``body``: a request body that receives no byte, or a response the client reads
    none of, for this long. A request whose response is being worked on or streamed (Server-Sent Events) has
    no deadline."""

    header: float = 15.0
    idle: float = 15.0
    body: float = 15.0


# ---------------------------------------------------------------------------------------------- protocol


class TimedHTTPProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the deadlines of ``ClientTimeouts``.

    uvicorn arms a timer only once a response is complete (keep-alive), and cancels it on the first byte that
    comes after: a client that connects and sends nothing, sends part of a head, starts a body and stops, or
    stops reading what it asked for, would hold its connection forever. One timer per connection here, armed
    for whatever the connection is waiting for; ``on_lost`` is called once the connection is gone."""

    def __init__(
        self,
        *args: Any,
        timeouts: ClientTimeouts,
        on_lost: Callable[[], None],
        where: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts = timeouts
        self.where = where
        self._on_lost = on_lost
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_for: str | None = None  # "head", "idle", "body" or "reader": what the timer is for

    # ------------------------------------------------------------------------------ asyncio protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head", self.timeouts.header)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        try:
            super().connection_lost(exc)
        finally:
            self._on_lost()

    def pause_writing(self) -> None:
        super().pause_writing()
        # The client reads nothing of what it asked for: its socket buffer and ours are full.
        self._arm("reader", self.timeouts.body)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._waiting_for == "reader":
            self._disarm()
            self._follow_request()

    # ------------------------------------------------------------------------------ uvicorn hooks

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn's own keep-alive timer is cancelled by any byte, even one that starts a head that never ends;
        # the idle deadline replaces it.
        self._unset_keepalive_if_required()
        self._follow_request()

    # ------------------------------------------------------------------------------ deadlines

    def _follow_request(self) -> None:
        """Arm the timer for what the connection now waits for from the client, if anything."""
        if self.transport is None or self.transport.is_closing() or self._waiting_for == "reader":
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            # Between requests until a byte of the next one is in; from then on (and from connecting), the head
            # deadline runs, and the bytes that follow do not push it back.
            between = (
                self.cycle is not None and self.cycle.response_complete and not self.conn.trailing_data[0]
            )
            if between and self._waiting_for != "idle":
                self._arm("idle", self.timeouts.idle)
            elif not between and self._waiting_for != "head":
                self._arm("head", self.timeouts.header)
        elif state is h11.SEND_BODY:
            self._arm("body", self.timeouts.body)  # again on every chunk: a body may be slow, not stopped
        else:
            # The request is in: the application's turn, for as long as its response takes or streams.
            self._disarm()

    def _arm(self, waiting_for: str, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._waiting_for = waiting_for
        self._timer = self.loop.call_later(seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._waiting_for = None

    def _deadline_passed(self) -> None:
        waiting_for, self._timer = self._waiting_for, None
        if self.transport is None or self.transport.is_closing():
            return
        if waiting_for == "body" and self.flow.read_paused:
            # Reading is paused because the application has not asked for more yet: not the client's fault.
            self._arm("body", self.timeouts.body)
            return
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "a local client"
        if waiting_for == "head":
            log.info(
                "closed a connection from %s to %s: no complete request head within %g s",
                peer,
                self.where,
                self.timeouts.header,
            )
        elif waiting_for == "idle":
            log.debug("closed an idle connection from %s to %s", peer, self.where)
        elif waiting_for == "body":
            log.info(
                "closed a connection from %s to %s: its request body stalled for %g s",
                peer,
                self.where,
                self.timeouts.body,
            )
        else:
            log.info(
                "closed a connection from %s to %s: it read nothing of its response for %g s",
                peer,
                self.where,
                self.timeouts.body,
            )
        self._waiting_for = None
        if waiting_for in ("head", "idle") and not self.transport.get_write_buffer_size():
            self.transport.close()
        else:
            # What is queued for this client will not be read: drop it with the connection (a plain close
            # would wait for the queue to drain, and the kernel would keep retrying it after that).
            reset_on_close(self.transport.get_extra_info("socket"))
            self.transport.abort()


def reset_on_close(sock: Any) -> None:
    """Make closing a TCP socket drop whatever is queued on it and reset the connection, at once."""
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# ---------------------------------------------------------------------------------------------- server


class ListenerServer(uvicorn.Server):
    """One listening socket served by uvicorn, with an accept loop of its own instead of asyncio's.

    asyncio's accept loop takes every connection the kernel has queued, logs a traceback for each accept that
    fails for want of file descriptors, and hands TLS connections a 60 s handshake: one flooded listener used
    up the process's descriptors and the others (the Unix socket, the store) could not open any. Here a
    connection beyond ``max_connections`` is closed as soon as it is accepted, before any byte of it is read or
    any handshake starts, and the handshake is held to the header deadline.

    uvicorn's signal handling is off (the daemon owns SIGTERM/SIGINT and stops every listener together), and
    its idle loop ticks once a second instead of ten times."""

    def __init__(
        self, config: uvicorn.Config, *, where: str, max_connections: int, timeouts: ClientTimeouts
    ) -> None:
        super().__init__(config)
        self.where = where
        self.max_connections = max_connections
        self.timeouts = timeouts
        self.open_connections = 0
        self._wake = asyncio.Event()
        self._accepting: list[asyncio.Task[None]] = []
        self._handshakes: set[asyncio.Task[None]] = set()

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

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        loop = asyncio.get_running_loop()
        self.servers = []
        for sock in sockets or []:
            self._accepting.append(loop.create_task(self._accept(sock), name=f"mist-accept {self.where}"))
        self.started = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for task in self._accepting:
            task.cancel()
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._accepting, *self._handshakes, return_exceptions=True)
        self._accepting = []
        await super().shutdown(sockets)

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:
                    log.error(
                        "cannot accept connections to %s: %s; waiting for open connections to finish (raise "
                        "the open-file limit, or lower --max-connections)",
                        self.where,
                        exc.strerror,
                    )
                else:
                    log.warning("accepting a connection to %s failed: %s", self.where, exc)
                await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            if self.open_connections >= self.max_connections:
                # Closed unread: nothing a client sends costs more than the accept itself.
                reset_on_close(conn)
                conn.close()
                log.warning(
                    "refused a connection to %s: %d connections are open, its bound",
                    self.where,
                    self.open_connections,
                )
                continue
            self.open_connections += 1
            task = loop.create_task(self._hand_over(conn))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _hand_over(self, conn: socket.socket) -> None:
        """Hand an accepted connection to a new protocol (after the TLS handshake, if any); its slot is given
        back once, when the connection goes away or the handshake fails."""
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open_connections -= 1

        loop = asyncio.get_running_loop()
        protocol = TimedHTTPProtocol(
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
            _loop=loop,
            timeouts=self.timeouts,
            on_lost=release,
            where=self.where,
        )
        ssl = self.config.ssl
        try:
            await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=ssl,
                # A TLS client that never finishes its handshake, or never answers the close, holds its slot
                # no longer than one that never sends its head.
                ssl_handshake_timeout=self.timeouts.header if ssl is not None else None,
                ssl_shutdown_timeout=self.timeouts.header if ssl is not None else None,
            )
        except asyncio.CancelledError:
            release()
            conn.close()
            raise
        except Exception as exc:
            release()
            conn.close()
            # A TLS handshake that failed or timed out, or a client already gone.
            log.info("a connection to %s ended before it could be served: %s", self.where, exc)


# ---------------------------------------------------------------------------------------------- log flood


# The loggers a network client can make speak: uvicorn's errors ("Invalid HTTP request received.", upgrade
# warnings), asyncio's transport errors, the listeners' refusals and timeouts, and the API's internal errors.
CLIENT_DRIVEN_LOGGERS = frozenset({"uvicorn.error", "asyncio", "mist.listeners", "mist.server"})
# At most this many lines of one kind per interval; the rest are counted, and summed up in one line.
LOG_BURST = 5
LOG_INTERVAL = 10.0
KIND_LENGTH = 120


@dataclass
class _Kind:
    started: float
    lines: int = 0
    left_out: int = 0


class LogFloodFilter(logging.Filter):
    """Lets through at most ``burst`` lines of each kind (logger and message template) per ``interval`` from
    the loggers a client can make speak; the lines left out are counted and reported in one line per kind
    when its interval ends (on its next line, or on ``flush()``, which the daemon calls now and then).

    Installed on a handler (``install``); the summary goes to that handler alone."""

    SUMMARY = "mist_log_summary"

    def __init__(
        self,
        handler: logging.Handler,
        *,
        burst: int = LOG_BURST,
        interval: float = LOG_INTERVAL,
        loggers: Iterable[str] = CLIENT_DRIVEN_LOGGERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.burst = burst
        self.interval = interval
        self.loggers = frozenset(loggers)
        self._clock = clock
        self._kinds: dict[tuple[str, str], _Kind] = {}
        self._lock = threading.Lock()  # handlers are called from the executor's threads too

    @classmethod
    def install(cls, handlers: Iterable[logging.Handler], **kwargs: Any) -> list[LogFloodFilter]:
        filters = []
        for handler in handlers:
            flood = cls(handler, **kwargs)
            handler.addFilter(flood)
            filters.append(flood)
        return filters

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, self.SUMMARY, False) or record.name not in self.loggers:
            return True
        # The template, not the formatted line; its first line only, as asyncio puts object reprs after it.
        key = (record.name, str(record.msg).partition("\n")[0][:KIND_LENGTH])
        now = self._clock()
        with self._lock:
            kind = self._kinds.get(key)
            due: list[tuple[tuple[str, str], int]] = []
            if kind is None or now - kind.started >= self.interval:
                if kind is not None and kind.left_out:
                    due.append((key, kind.left_out))
                kind = self._kinds[key] = _Kind(started=now)
            kind.lines += 1
            allowed = kind.lines <= self.burst
            if not allowed:
                kind.left_out += 1
        self._report(due)
        return allowed

    def flush(self, *, all_kinds: bool = False) -> None:
        """Report the kinds whose interval has ended (every kind, with ``all_kinds``: the daemon is stopping)
        with lines left out, and forget them."""
        now = self._clock()
        due = []
        with self._lock:
            for key, kind in list(self._kinds.items()):
                if all_kinds or now - kind.started >= self.interval:
                    if kind.left_out:
                        due.append((key, kind.left_out))
                    del self._kinds[key]
        self._report(due)

    def _report(self, due: list[tuple[tuple[str, str], int]]) -> None:
        for (name, template), count in due:
            record = logging.LogRecord(
                name,
                logging.WARNING,
                __file__,
                0,
                "%d more lines like %r were left out of the log (at most %d of a kind every %g s)",
                (count, template, self.burst, self.interval),
                None,
            )
            setattr(record, self.SUMMARY, True)
            self.handler.handle(record)
