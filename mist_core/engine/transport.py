"""HTTP/1.1 to the Docker Engine API on asyncio streams, over its Unix socket or TCP, with no client library:
one connection per request, JSON in and out, bodies read whole or streamed (chunked, sized or to the end).

The daemon talks to Docker all the time; a library (docker-py with requests and urllib3) cost it about 8 MB
of memory and a thread per call. The engine needs a handful of endpoints, so this is the whole client.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ..errors import EngineUnavailable, InvalidInput, MistError

# The oldest API Mist needs (one-shot stats); newer engines still serve it, and naming it avoids a version
# round trip before the first request.
API_VERSION = "1.41"
# Per request, connection included; stop and restart add their grace period. A stream's timeout covers only
# the connection and the status line: after that it lasts as long as its reader wants.
DEFAULT_TIMEOUT = 60.0
# Longest accepted status line plus headers, and the largest piece a streamed body is handed out in.
MAX_HEAD = 64 * 1024
READ_SIZE = 64 * 1024
# How Docker words a missing image (docker-py's list): a 404 from create means the image, or the network.
_IMAGE_MISSING = (
    "no such image",
    "not found: does not exist or no pull access",
    "repository does not exist",
    "was found but does not match the specified platform",
)


class DockerAPIError(Exception):
    """The engine answered with a 4xx or 5xx status; ``explanation`` is its message."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status}: {explanation}")
        self.status = status
        self.explanation = explanation

    @property
    def image_missing(self) -> bool:
        return self.status == 404 and any(part in self.explanation.lower() for part in _IMAGE_MISSING)


class ProtocolError(Exception):
    """The engine's answer is not HTTP/1.x as Mist understands it."""


@dataclass(frozen=True)
class EngineAddress:
    """Where the engine listens: a Unix socket path, or a TCP host and port (with TLS for ``https://``)."""

    path: str | None = None
    host: str | None = None
    port: int | None = None
    tls: bool = False

    @property
    def host_header(self) -> str:
        # Docker ignores it on a socket; HTTP/1.1 still requires one.
        return "docker" if self.path is not None else f"{self.host}:{self.port}"


def parse_engine_address(url: str) -> EngineAddress:
    """``unix:///path``, ``tcp://host:port`` or ``http(s)://host:port`` (what docker-py accepted, less ssh
    and Windows pipes). Raises ``ValueError`` saying what is wrong."""
    if url.startswith("unix://"):
        path = url[len("unix://") :]
        if not path.startswith("/"):
            raise ValueError(
                "a Unix socket address needs an absolute path, as in unix:///var/run/docker.sock"
            )
        return EngineAddress(path=path)
    parts = urlsplit(url)
    if parts.scheme not in ("tcp", "http", "https"):
        raise ValueError(
            f"the scheme {parts.scheme or '(none)'!r} is not one Mist speaks (unix, tcp, http, https)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("a TCP address is only host:port, with no path")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number between 0 and 65535") from None
    if not parts.hostname:
        raise ValueError("the address names no host")
    tls = parts.scheme == "https"
    return EngineAddress(host=parts.hostname, port=port or (2376 if tls else 2375), tls=tls)


def encode_query(params: dict[str, Any] | None) -> str:
    """A query string the way Docker reads it: booleans as 1/0, lists and dicts (filters) as JSON, None
    left out."""
    if not params:
        return ""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, dict | list):
            value = json.dumps(value, separators=(",", ":"))
        pairs.append((key, str(value)))
    return urlencode(pairs)


def path_part(value: str) -> str:
    """A name or id inside a URL path; image references keep their ``/`` and ``:``."""
    return quote(value, safe="/:@")


def build_request(method: str, target: str, host: str, body: bytes | None = None) -> bytes:
    head = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    elif method in ("POST", "PUT"):
        head.append("Content-Length: 0")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and headers (names lower-cased) of ``HTTP/1.x NNN reason\\r\\nName: value...``."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line: {line[:80]!r}")
        name = name.strip().lower()
        value = value.strip()
        # Repeated headers fold into one, comma-separated (RFC 9110 5.3).
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(parts[1]), headers


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Read one response head; 1xx interim answers are skipped."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise ProtocolError(f"the response head is longer than {MAX_HEAD} bytes") from None
        status, headers = parse_head(head[:-4])
        if status >= 200:
            return status, headers


async def iter_body(
    reader: asyncio.StreamReader, status: int, headers: dict[str, str], method: str
) -> AsyncIterator[bytes]:
    """The response body in pieces of at most ``READ_SIZE`` bytes: chunked transfer coding decoded, a
    ``Content-Length`` read exactly, anything else read to the end of the connection."""
    if method == "HEAD" or status in (204, 304):
        return
    if "chunked" in headers.get("transfer-encoding", "").lower():
        async for piece in _chunked(reader):
            yield piece
        return
    length_text = headers.get("content-length")
    if length_text is not None:
        try:
            remaining = int(length_text)
        except ValueError:
            raise ProtocolError(f"Content-Length is not a number: {length_text!r}") from None
        while remaining > 0:
            piece = await reader.read(min(remaining, READ_SIZE))
            if not piece:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(piece)
            yield piece
        return
    while piece := await reader.read(READ_SIZE):
        yield piece


async def _chunked(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"malformed chunk size: {size_text[:20]!r}") from None
        if size < 0:
            raise ProtocolError(f"malformed chunk size: {size_text[:20]!r}")
        if size == 0:
            # Trailers (Docker sends none) up to the empty line that ends the message.
            while (line := await reader.readline()) not in (b"\r\n", b"\n"):
                if not line:
                    return
            return
        while size > 0:
            piece = await reader.readexactly(min(size, READ_SIZE))
            size -= len(piece)
            yield piece
        if await reader.readline() not in (b"\r\n", b"\n"):
            raise ProtocolError("a chunk is not followed by CRLF")


def _explanation(body: bytes) -> str:
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else body.decode(errors="replace").strip()


class DockerTransport:
    """Requests to one engine. Connections are not pooled: one per request on the socket costs less than a
    pool's bookkeeping, and a stream (logs, events) holds its own connection anyway."""

    def __init__(
        self, base_url: str, *, version: str = API_VERSION, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.base_url = base_url
        self.version = version
        self.timeout = timeout
        self._address: EngineAddress | None = None
        self._ssl: ssl.SSLContext | None = None

    @property
    def address(self) -> EngineAddress:
        if self._address is None:
            try:
                self._address = parse_engine_address(self.base_url)
            except ValueError as error:
                raise InvalidInput(
                    f"{self.base_url!r} is not a Docker Engine address ({error}): set MIST_DOCKER_HOST to "
                    "unix:///path/docker.sock or tcp://host:port",
                    field="MIST_DOCKER_HOST",
                ) from error
        return self._address

    def unavailable(self) -> EngineUnavailable:
        return EngineUnavailable(
            f"the Docker Engine does not answer at {self.base_url}: start it (make docker) or set MIST_DOCKER_HOST"
        )

    def _malformed(self, error: Exception) -> MistError:
        return MistError(f"the Docker Engine at {self.base_url} sent an answer Mist cannot read: {error}")

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        address = self.address
        if address.path is not None:
            return await asyncio.open_unix_connection(address.path, limit=MAX_HEAD)
        if address.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        return await asyncio.open_connection(
            address.host, address.port, ssl=self._ssl if address.tls else None, limit=MAX_HEAD
        )

    def _target(self, path: str, params: dict[str, Any] | None) -> str:
        query = encode_query(params)
        return f"/v{self.version}{path}" + (f"?{query}" if query else "")

    async def _send(
        self, method: str, path: str, params: dict[str, Any] | None, body: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[str, str]]:
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        request = build_request(method, self._target(path, params), self.address.host_header, payload)
        reader, writer = await self._open()
        try:
            writer.write(request)
            await writer.drain()
            status, headers = await read_head(reader)
        except BaseException:
            writer.close()
            raise
        return reader, writer, status, headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """One request; the answer's JSON (None when it has no body; text when it is not JSON). A 4xx or
        5xx answer raises ``DockerAPIError``; no answer at all raises ``EngineUnavailable``."""
        writer = None
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                reader, writer, status, headers = await self._send(method, path, params, body)
                data = b"".join([piece async for piece in iter_body(reader, status, headers, method)])
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            raise self.unavailable() from error
        except (ProtocolError, UnicodeDecodeError) as error:
            raise self._malformed(error) from error
        finally:
            if writer is not None:
                writer.close()
        if status >= 400:
            raise DockerAPIError(status, _explanation(data))
        if not data:
            return None
        if "json" in headers.get("content-type", ""):
            try:
                return json.loads(data)
            except ValueError as error:
                raise self._malformed(error) from error
        return data.decode(errors="replace")

    async def stream(
        self, method: str, path: str, *, params: dict[str, Any] | None = None
    ) -> AsyncGenerator[bytes, None]:
        """A streamed answer's body, piece by piece, until the engine ends it or the caller stops
        iterating (which closes the connection). Errors come as for ``request``, on the first iteration."""
        writer = None
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    reader, writer, status, headers = await self._send(method, path, params, None)
                    if status >= 400:
                        error = b"".join([p async for p in iter_body(reader, status, headers, method)])
                        raise DockerAPIError(status, _explanation(error))
                async for piece in iter_body(reader, status, headers, method):
                    yield piece
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
                raise self.unavailable() from error
            except (ProtocolError, UnicodeDecodeError) as error:
                raise self._malformed(error) from error
        finally:
            if writer is not None:
                writer.close()
