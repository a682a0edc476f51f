"""The HTTP/1.1 client under ``RemoteMist``: requests to one daemon over its Unix socket or over TCP (with
TLS), on asyncio's streams. It knows what the daemon speaks and nothing more: JSON bodies, fixed-length and
chunked responses, server-sent event streams read as they arrive, one kept-alive connection reused.

It stands in for httpx on this path because a command such as ``mist deploy --wait`` is a process of its
own, and importing httpx (with the command-line tools it loads when rich and click are installed) and
building its default TLS context cost that process about 0.15 s, more than anything it waits for.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

MAX_HEAD_BYTES = 64 * 1024  # status line and headers of a response
MAX_LINE_BYTES = 8 * 1024  # one line of the head, or a chunk's size line
READ_BYTES = 64 * 1024
# How long a connection may wait in the pool and still be reused: under the daemon's keep-alive timeout.
REUSE_IDLE = 3.0
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class WireError(Exception):
    """A request that got no complete answer. The original error, if any, is the ``__cause__``."""


class ConnectFailed(WireError):
    """No connection: nothing listens there, the socket file is missing, or the TLS handshake failed."""


class ProtocolFailed(WireError):
    """The daemon closed the connection before the whole answer, or sent something that is not HTTP."""


class TimedOut(WireError):
    """Connecting, or waiting for the next bytes of an answer, took longer than allowed."""


class Response:
    """A status, its headers (names lower-cased) and a body: read whole (``content``) unless the request
    was sent with ``stream=True``, then read with ``aiter_text`` and released with ``aclose``."""

    def __init__(
        self, status_code: int, reason_phrase: str, headers: dict[str, str], body: _Body | None
    ) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers
        self.content = b""
        self._body = body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    async def aread(self) -> bytes:
        if self._body is not None:
            body, self._body = self._body, None
            parts = [chunk async for chunk in body.chunks()]
            self.content = b"".join(parts)
            await body.release()
        return self.content

    async def aiter_text(self) -> AsyncIterator[str]:
        """The body as text, a piece as soon as its bytes are in (a UTF-8 character cut between two pieces
        is held back until it is whole)."""
        if self._body is None:
            if self.content:
                yield self.text
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in self._body.chunks():
            text = decoder.decode(chunk)
            if text:
                yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    async def aclose(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            await body.discard()


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    @property
    def usable(self) -> bool:
        """Still open at both ends, and idle for less than the daemon lets a kept-alive connection wait
        (5 s): one it is about to close would take a request (a POST cannot be sent twice) into the void."""
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < REUSE_IDLE
        )

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class _Body:
    """The body of one response on its connection: by length, chunked, or until the connection closes."""

    def __init__(
        self,
        client: Client,
        conn: _Connection,
        length: int | None,
        chunked: bool,
        keep: bool,
        read_timeout: float,
    ) -> None:
        self.client = client
        self.conn = conn
        self.length = length
        self.chunked = chunked
        self.keep = keep  # the connection may carry the next request once this body is read
        self.read_timeout = read_timeout
        self.done = False

    async def _read(self, coro: Any) -> Any:
        try:
            return await asyncio.wait_for(coro, self.read_timeout)
        except TimeoutError as exc:
            raise TimedOut("no answer in time") from exc
        except asyncio.IncompleteReadError as exc:
            raise ProtocolFailed("the connection closed in the middle of the answer") from exc
        except asyncio.LimitOverrunError as exc:
            raise ProtocolFailed("a line of the answer is too long") from exc
        except (ConnectionError, ssl.SSLError) as exc:
            raise ProtocolFailed(f"the connection broke: {exc}") from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        reader = self.conn.reader
        if self.chunked:
            while True:
                line = await self._read(reader.readuntil(b"\r\n"))
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolFailed(f"a chunk size that is not a number: {line[:40]!r}") from None
                if size == 0:
                    while (await self._read(reader.readuntil(b"\r\n"))) != b"\r\n":  # trailers
                        pass
                    break
                data = await self._read(reader.readexactly(size))
                await self._read(reader.readexactly(2))
                yield data
        elif self.length is not None:
            left = self.length
            while left > 0:
                data = await self._read(reader.read(min(left, READ_BYTES)))
                if not data:
                    raise ProtocolFailed("the connection closed in the middle of the answer")
                left -= len(data)
                yield data
        else:
            while data := await self._read(reader.read(READ_BYTES)):
                yield data
            self.keep = False
        self.done = True

    async def release(self) -> None:
        """The body was read: the connection serves the next request, or is closed."""
        if self.done and self.keep:
            self.client._idle(self.conn)
        else:
            await self.conn.close()

    async def discard(self) -> None:
        """Give up on the rest of the body (a stream the caller stopped reading): close the connection."""
        await self.conn.close()


class Client:
    """Requests to one daemon: ``uds`` (a socket path) or ``host``/``port`` with an optional TLS context.
    ``timeout`` bounds each wait for the daemon's bytes; ``connect_timeout`` bounds connecting."""

    def __init__(
        self,
        *,
        uds: str | None = None,
        host: str | None = None,
        port: int | None = None,
        tls: ssl.SSLContext | None = None,
        authority: str,
        timeout: float,
        connect_timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.uds = uds
        self.host = host
        self.port = port
        self.tls = tls
        self.authority = authority
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.headers = dict(headers or {})
        self._pool: list[_Connection] = []
        self._closed = False

    async def _connect(self) -> _Connection:
        try:
            if self.uds is not None:
                opening = asyncio.open_unix_connection(self.uds, limit=MAX_HEAD_BYTES)
            else:
                opening = asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                    limit=MAX_HEAD_BYTES,
                )
            reader, writer = await asyncio.wait_for(opening, self.connect_timeout)
        except TimeoutError as exc:
            raise TimedOut("connecting took too long") from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(str(exc)) from exc
        return _Connection(reader, writer)

    def _idle(self, conn: _Connection) -> None:
        if self._closed or self._pool:
            conn.writer.close()
        else:
            conn.idle_since = time.monotonic()
            self._pool.append(conn)

    def _reused(self) -> _Connection | None:
        while self._pool:
            conn = self._pool.pop()
            if conn.usable:
                return conn
            conn.writer.close()
        return None

    def _head(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}", "Accept: */*"]
        lines += [f"{name}: {value}" for name, value in {**self.headers, **headers}.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError("a header holds a line break")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> Response:
        """Send one request and read the answer's head (and its body unless ``stream``)."""
        target = quote(path, safe="/%:@!$&'()*+,;=-._~")
        if params:
            target += "?" + urlencode(params, quote_via=quote)
        body = None
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        head = self._head(method, target, headers or {}, body)
        conn = self._reused()
        if conn is not None:
            try:
                return await self._exchange(conn, method, head, body, stream)
            except ProtocolFailed:
                # The daemon closed the kept-alive connection as the request went out: nothing of it was
                # answered, so a request that may be repeated goes once more on a new connection.
                if method not in IDEMPOTENT:
                    raise
        return await self._exchange(await self._connect(), method, head, body, stream)

    async def _exchange(
        self, conn: _Connection, method: str, head: bytes, body: bytes | None, stream: bool
    ) -> Response:
        try:
            try:
                conn.writer.write(head + (body or b""))
                await asyncio.wait_for(conn.writer.drain(), self.timeout)
                status, reason, headers = await self._read_head(conn)
            except TimeoutError as exc:
                raise TimedOut("no answer in time") from exc
            except asyncio.IncompleteReadError as exc:
                raise ProtocolFailed("the connection closed before an answer") from exc
            except asyncio.LimitOverrunError as exc:
                raise ProtocolFailed("the head of the answer is too long") from exc
            except (ConnectionError, ssl.SSLError) as exc:
                raise ProtocolFailed(f"the connection broke: {exc}") from exc
        except BaseException:
            await conn.close()
            raise
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length: int | None = None
        if not chunked and "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                await conn.close()
                raise ProtocolFailed("a Content-Length that is not a number") from None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            length, chunked = 0, False
        keep = headers.get("connection", "").lower() != "close"
        response = Response(status, reason, headers, _Body(self, conn, length, chunked, keep, self.timeout))
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response

    async def _read_head(self, conn: _Connection) -> tuple[int, str, dict[str, str]]:
        async def read() -> tuple[int, str, dict[str, str]]:
            raw = await conn.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise ProtocolFailed(f"not an HTTP answer: {lines[0][:60]!r}")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if not line:
                    continue
                name, sep, value = line.partition(":")
                if not sep:
                    raise ProtocolFailed(f"a header line without a colon: {line[:60]!r}")
                name = name.strip().lower()
                value = value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            return int(code), reason, headers

        return await asyncio.wait_for(read(), self.timeout)

    async def aclose(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, []
        for conn in pool:
            await conn.close()
