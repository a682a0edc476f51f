"""A stand-in Docker Engine of another version, in front of the real one: it answers ``/_ping`` and ``/version``
as that version does, refuses API versions outside its range with Docker's own 400 message, and forwards
every other request to the real engine with the version prefix rewritten to what the real engine speaks.

``EngineStandIn(api_version="1.52", min_api_version="1.44")`` behaves like Docker Engine 29 (which refuses
clients below 1.44); ``EngineStandIn(api_version="1.30", ...)`` like Docker 17.06. Each connection carries one
request (the forwarded request asks for ``Connection: close``), then the bytes flow both ways untouched, so
streams (logs, events) and hijacked connections (exec) work. Every request head is recorded.

    with EngineStandIn() as engine:
        Engine(engine.url)...
        engine.requests  # [(method, path as sent, headers), ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

REAL_ENGINE = "/var/run/docker.sock"
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class EngineStandIn:
    api_version: str = "1.52"
    min_api_version: str = "1.44"
    release: str = "29.0.0"
    real_api_version: str = "1.41"  # what the real engine behind speaks; forwarded paths are rewritten to it
    real_engine: str = REAL_ENGINE
    requests: list[Recorded] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # paths refused for their version

    def __post_init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="mist-engine-standin-")
        self.path = Path(self._dir.name) / "docker.sock"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    # ------------------------------------------------------------------------------------------ life

    def __enter__(self) -> EngineStandIn:
        self._thread = threading.Thread(target=self._serve, name="engine-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the engine stand-in did not start")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._dir.cleanup()

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_unix_server(self._client, path=str(self.path))
        self._ready.set()
        async with server:
            await self._stop.wait()

    # ------------------------------------------------------------------------------------------ answers

    def version_answer(self) -> dict[str, object]:
        return {
            "Platform": {"Name": "Docker Engine - Community"},
            "Version": self.release,
            "ApiVersion": self.api_version,
            "MinAPIVersion": self.min_api_version,
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": "6.1.0",
            "GoVersion": "go1.24",
            "GitCommit": "0000000",
        }

    def _headers(self, extra: dict[str, str]) -> str:
        base = {
            "Api-Version": self.api_version,
            "Server": f"Docker/{self.release} (linux)",
            "Connection": "close",
        }
        return "".join(f"{k}: {v}\r\n" for k, v in {**base, **extra}.items())

    async def _answer(self, writer: asyncio.StreamWriter, status: str, body: bytes, kind: str) -> None:
        writer.write(
            f"HTTP/1.1 {status}\r\n".encode()
            + self._headers({"Content-Type": kind, "Content-Length": str(len(body))}).encode()
            + b"\r\n"
            + body
        )
        await writer.drain()

    def _out_of_range(self, major: int, minor: int) -> str | None:
        """Docker's words for a client version it does not serve, or None."""
        asked = (major, minor)
        low = tuple(int(p) for p in self.min_api_version.split("."))
        high = tuple(int(p) for p in self.api_version.split("."))
        if asked < low:
            return (
                f"client version {major}.{minor} is too old. Minimum supported API version is "
                f"{self.min_api_version}, please upgrade your client to a newer version"
            )
        if asked > high:
            return f"client version {major}.{minor} is too new. Maximum supported API version is {self.api_version}"
        return None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, protocol = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
        self.requests.append(Recorded(method, target, headers))
        path, query = target.partition("?")[0], target.partition("?")[2]
        match = _VERSIONED.match(path)
        rest = match.group(3) if match else path
        try:
            if match and (why := self._out_of_range(int(match.group(1)), int(match.group(2)))):
                self.refused.append(target)
                await self._answer(
                    writer, "400 Bad Request", json.dumps({"message": why}).encode(), "application/json"
                )
                return
            if rest == "/_ping":
                await self._answer(writer, "200 OK", b"OK", "text/plain; charset=utf-8")
                return
            if rest == "/version":
                body = json.dumps(self.version_answer()).encode()
                await self._answer(writer, "200 OK", body, "application/json")
                return
            forwarded = f"/v{self.real_api_version}{rest}" if match else path
            if query:
                forwarded += "?" + query
            await self._forward(reader, writer, method, forwarded, protocol, headers)
        finally:
            writer.close()

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        protocol: str,
        headers: dict[str, str],
    ) -> None:
        upgrade = headers.get("Connection", "").lower() == "upgrade"
        sent = {k: v for k, v in headers.items() if k.lower() != "connection"}
        sent["Connection"] = "Upgrade" if upgrade else "close"
        head = (
            f"{method} {target} {protocol}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items()) + "\r\n"
        )
        engine_reader, engine_writer = await asyncio.open_unix_connection(self.real_engine)
        engine_writer.write(head.encode("latin-1"))
        await engine_writer.drain()

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(OSError):
                if sink.can_write_eof():
                    sink.write_eof()

        to_engine = asyncio.create_task(pipe(reader, engine_writer))
        to_client = asyncio.create_task(pipe(engine_reader, writer))
        try:
            # A client that hangs up ends the request (for a hijacked exec, only once both sides are done).
            await asyncio.wait(
                {to_engine, to_client},
                return_when=asyncio.ALL_COMPLETED if upgrade else asyncio.FIRST_COMPLETED,
            )
        finally:
            for task in (to_engine, to_client):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            engine_writer.close()
