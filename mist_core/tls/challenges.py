"""The HTTP-01 challenge responder: a small asyncio HTTP server that answers
``GET /.well-known/acme-challenge/<token>`` with the key authorization the ACME client registered for that
token, so the proxy (or the ACME server directly) can reach it while an order is being validated."""

from __future__ import annotations

import asyncio
import contextlib
import re

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
# A token is base64url (RFC 8555 section 8.3); anything else cannot be one of ours.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# The request line and headers of a validation request are small; a client sending more is not an ACME server.
MAX_REQUEST_BYTES = 8192
_READ_TIMEOUT = 10.0


class ChallengeResponder:
    """Holds token → key authorization and serves them over plain HTTP on ``host:port``.

    ``port=0`` binds a free port (read it back from ``port`` after ``start()``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._answers: dict[str, str] = {}
        self._server: asyncio.Server | None = None

    # ------------------------------------------------------------------------------------------- answers

    def add(self, token: str, key_authorization: str) -> None:
        if not _TOKEN.match(token):
            raise ValueError(f"{token!r} is not an ACME challenge token")
        self._answers[token] = key_authorization

    def remove(self, token: str) -> None:
        self._answers.pop(token, None)

    def answer(self, path: str) -> str | None:
        """The key authorization served at ``path``, or None (a 404)."""
        if not path.startswith(CHALLENGE_PREFIX):
            return None
        return self._answers.get(path[len(CHALLENGE_PREFIX) :])

    @property
    def tokens(self) -> list[str]:
        return list(self._answers)

    # -------------------------------------------------------------------------------------------- server

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> ChallengeResponder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(self._read_head(reader), _READ_TIMEOUT)
            if head is None:
                await self._respond(writer, 431, "request too large\n")
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                await self._respond(writer, 400, "bad request\n")
                return
            method, target, _version = parts
            if method not in ("GET", "HEAD"):
                await self._respond(writer, 405, "only GET\n")
                return
            path = target.split("?", 1)[0]
            answer = self.answer(path)
            if answer is None:
                await self._respond(writer, 404, "no such challenge\n", head_only=method == "HEAD")
            else:
                await self._respond(writer, 200, answer, head_only=method == "HEAD")
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
        """The request up to the blank line, or None when it is longer than MAX_REQUEST_BYTES."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await reader.read(MAX_REQUEST_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_REQUEST_BYTES:
                return None
        return data

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter, status: int, body: str, *, head_only: bool = False
    ) -> None:
        reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
        payload = body.encode()
        headers = (
            f"HTTP/1.1 {status} {reasons.get(status, 'Request Header Fields Too Large')}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(headers.encode() + (b"" if head_only else payload))
        await writer.drain()
