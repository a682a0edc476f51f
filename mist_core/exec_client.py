"""The client side of an exec session with a daemon: one HTTP/1.1 request on its own connection (Unix socket,
or TLS with the caller's context), whose chunked body carries the input frames while the response carries the
output frames (``mist_core.execs``). ``RemoteMist.containers.exec`` opens it after the token is known good."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

import h11

from .errors import DaemonUnavailable, MistError, error_from_problem
from .execs import (
    ERROR,
    EXIT,
    INPUT,
    INPUT_END,
    MEDIA_TYPE,
    PING,
    PING_SECONDS,
    SERVER_KINDS,
    START,
    STDERR,
    ExecChannel,
    FrameError,
    FrameReader,
    frame,
    frames,
    size_frame,
)

READ_SIZE = 64 * 1024
# Reading an error answer before the session started: problem documents are small.
MAX_PROBLEM = 64 * 1024


async def _connect(
    host: str, context: ssl.SSLContext | None, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A connection to the daemon and the Host header for it."""
    try:
        if host.startswith("unix://"):
            opened = asyncio.open_unix_connection(host[len("unix://") :])
            reader, writer = await asyncio.wait_for(opened, timeout)
            return reader, writer, "mist"
        parts = urlsplit(host)
        hostname = parts.hostname or ""
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        opened = asyncio.open_connection(
            hostname,
            port,
            ssl=(context or ssl.create_default_context()) if secure else None,
            server_hostname=hostname if secure else None,
        )
        reader, writer = await asyncio.wait_for(opened, timeout)
        return reader, writer, parts.netloc
    except (OSError, TimeoutError) as exc:
        raise DaemonUnavailable(
            f"cannot reach the Mist daemon at {host} for an exec session ({type(exc).__name__}: {exc})"
        ) from exc


def _error(problem: Any, status: int) -> MistError:
    if isinstance(problem, dict) and "code" in problem:
        error = error_from_problem(problem)
        if isinstance(problem.get("extra"), dict) and not error.extra:
            error.extra = dict(problem["extra"])
        return error
    return MistError(f"the Mist daemon refused the exec session ({status})")


class RemoteExecChannel(ExecChannel):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: h11.Connection,
        *,
        tty: bool,
    ) -> None:
        self.tty = tty
        self._reader = reader
        self._writer = writer
        self._conn = conn
        self._frames = FrameReader(SERVER_KINDS)
        self._ready: list[tuple[bytes, bytes]] = []
        self._sending = asyncio.Lock()
        self._exit_code: int | None = None
        self._ended = False
        self._pinging = asyncio.create_task(self._ping())

    # ------------------------------------------------------------------------------ sending

    async def _send(self, *pieces: bytes) -> None:
        async with self._sending:
            if self._conn.our_state is not h11.SEND_BODY:
                return
            for piece in pieces:
                self._writer.write(self._conn.send(h11.Data(data=piece)))
            try:
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                raise DaemonUnavailable(
                    "the connection to the Mist daemon was lost during the exec session"
                ) from exc

    async def _ping(self) -> None:
        with contextlib.suppress(MistError, asyncio.CancelledError):
            while True:
                await asyncio.sleep(PING_SECONDS)
                await self._send(frame(PING))

    async def write(self, data: bytes) -> None:
        if data:
            await self._send(*frames(INPUT, data))

    async def close_input(self) -> None:
        await self._send(frame(INPUT_END))

    async def resize(self, height: int, width: int) -> None:
        try:
            piece = size_frame(height, width)
        except FrameError:
            return  # a window too small or too large to say: keep the last size
        await self._send(piece)

    # ------------------------------------------------------------------------------ receiving

    async def read(self) -> tuple[int, bytes] | None:
        while True:
            while self._ready:
                kind, payload = self._ready.pop(0)
                if kind == EXIT:
                    self._exit_code = int(json.loads(payload)["exit_code"])
                    self._ended = True
                    return None
                if kind == ERROR:
                    self._ended = True
                    raise _error(json.loads(payload), 0)
                return (2 if kind == STDERR else 1), payload
            if self._ended:
                return None
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self._reader.read(READ_SIZE)
                except (ConnectionError, OSError):
                    data = b""
                self._conn.receive_data(data)
                if not data and self._conn.their_state is not h11.DONE:
                    self._ended = True
                    raise DaemonUnavailable(
                        "the Mist daemon closed the exec session before the command ended"
                    )
                continue
            if isinstance(event, h11.Data):
                try:
                    self._ready += self._frames.feed(bytes(event.data))
                except FrameError as exc:
                    self._ended = True
                    raise MistError(
                        f"the Mist daemon sent something that is not an exec frame: {exc}"
                    ) from exc
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self._ended = True
                raise DaemonUnavailable("the Mist daemon ended the exec session without an exit status")

    async def exit_code(self) -> int:
        if self._exit_code is None:
            raise MistError("the command has not ended yet: read its output to the end first")
        return self._exit_code

    async def close(self) -> None:
        self._pinging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pinging
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


async def open_exec(
    host: str,
    path: str,
    token: str | None,
    start: dict[str, Any],
    *,
    context: ssl.SSLContext | None = None,
    timeout: float = 30,
) -> RemoteExecChannel:
    """Start an exec session: ``start`` is the start frame (command, tty, height, width)."""
    reader, writer, host_header = await _connect(host, context, timeout)
    conn = h11.Connection(h11.CLIENT)
    headers = [
        ("Host", host_header),
        ("User-Agent", "mist-client"),
        ("Content-Type", MEDIA_TYPE),
        ("Accept", MEDIA_TYPE),
        ("Transfer-Encoding", "chunked"),
    ]
    if token:
        headers.append(("Authorization", f"Bearer {token}"))
    try:
        writer.write(conn.send(h11.Request(method="POST", target=path, headers=headers)))
        writer.write(conn.send(h11.Data(data=frame(START, json.dumps(start).encode()))))
        await writer.drain()
        response = await asyncio.wait_for(_response(conn, reader), timeout)
    except BaseException:
        writer.close()
        raise
    if response.status_code != 200:
        try:
            body = await asyncio.wait_for(_body(conn, reader), timeout)
        finally:
            writer.close()
        try:
            problem = json.loads(body)
        except ValueError:
            problem = None
        raise _error(problem, response.status_code)
    return RemoteExecChannel(reader, writer, conn, tty=bool(start.get("tty")))


async def _response(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Response:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = await reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                raise DaemonUnavailable(
                    "the Mist daemon closed the connection before answering the exec request"
                )
            conn.receive_data(data)
        elif isinstance(event, h11.Response):
            return event
        elif isinstance(event, h11.ConnectionClosed):
            raise DaemonUnavailable("the Mist daemon closed the connection before answering the exec request")


async def _body(conn: h11.Connection, reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while len(body) <= MAX_PROBLEM:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(READ_SIZE)
            conn.receive_data(data)
            if not data:
                break
        elif isinstance(event, h11.Data):
            body += event.data
        else:
            break
    return bytes(body)
