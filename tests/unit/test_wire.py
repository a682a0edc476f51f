"""The HTTP/1.1 client under RemoteMist, against small servers on a real Unix socket: fixed-length and chunked
answers, a stream read as it arrives, a kept-alive connection reused and replaced once the server closed it,
and the errors a caller maps to "the daemon is unavailable"."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mist_core import wire
from mist_core.wire import Client, ConnectFailed, ProtocolFailed, TimedOut

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(tmp_path: Path, handler: Handler) -> AsyncIterator[tuple[Client, list[int]]]:
    """A server on ``tmp_path/s.sock`` running ``handler`` per connection; yields a client and the list of
    connections accepted so far (by number)."""
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(len(accepted) + 1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    path = str(tmp_path / "s.sock")
    server = await asyncio.start_unix_server(on_connect, path)
    client = Client(uds=path, authority="mist", timeout=2, connect_timeout=2)
    try:
        yield client, accepted
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


def answer(status: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


async def test_a_json_request_gets_its_answer_and_the_connection_is_reused(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            seen.append(request)
            writer.write(answer("201 Created", json.dumps({"got": request[2].decode()}).encode()))
            await writer.drain()

    async with serving(tmp_path, echo) as (client, accepted):
        first = await client.send(
            "POST", "/v1/projects", params={"q": "a b/c"}, json_body={"name": "shop"}, headers={"X-A": "1"}
        )
        second = await client.send("GET", "/v1/projects/shop")
    assert (first.status_code, first.reason_phrase) == (201, "Created")
    assert first.json() == {"got": '{"name":"shop"}'}
    assert second.status_code == 201
    assert seen[0][0] == "POST /v1/projects?q=a%20b%2Fc HTTP/1.1"
    assert seen[0][1]["host"] == "mist" and seen[0][1]["x-a"] == "1"
    assert seen[0][1]["content-type"] == "application/json"
    assert accepted == [1]  # both requests on one connection


async def test_a_chunked_stream_is_handed_on_piece_by_piece(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def sse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        frame = 'data: {"text": "h\u00e9llo"}\n\n'.encode()
        # The first frame is cut inside the two bytes of "é": the client must hold the half back.
        cut = frame.index("\u00e9".encode()) + 1
        for part in (frame[:cut], frame[cut:]):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        await writer.drain()
        await release.wait()  # the client has the first frame before the second one exists
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(b"data: 2\n\n"), b"data: 2\n\n"))
        await writer.drain()

    async with serving(tmp_path, sse) as (client, _):
        response = await client.send("GET", "/v1/stream", stream=True)
        text = ""
        async for piece in response.aiter_text():
            text += piece
            if text.endswith("\n\n") and not release.is_set():
                assert text == 'data: {"text": "h\u00e9llo"}\n\n'
                release.set()
        await response.aclose()
    assert text.endswith("data: 2\n\n")


async def test_a_stream_cut_before_its_last_chunk_is_a_protocol_failure(tmp_path: Path) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()

    async with serving(tmp_path, cut) as (client, _):
        response = await client.send("GET", "/v1/stream", stream=True)
        with pytest.raises(ProtocolFailed):
            async for _ in response.aiter_text():
                pass
        await response.aclose()


async def test_a_kept_alive_connection_the_server_closed_is_replaced(tmp_path: Path) -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer("200 OK", b"{}"))
        await writer.drain()
        # then close, as a daemon does with an idle kept-alive connection

    async with serving(tmp_path, once) as (client, accepted):
        assert (await client.send("GET", "/a")).status_code == 200
        await asyncio.sleep(0.05)  # the close reaches the client while the connection waits in its pool
        assert (await client.send("POST", "/b", json_body={})).status_code == 200
    assert accepted == [1, 2]


async def test_a_connection_idle_for_longer_than_the_daemon_keeps_it_is_not_reused_for_a_post(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon closes a kept-alive connection after 5 s; a POST written to it just as it closes would be
    lost (it cannot be sent twice), so a connection that waited that long is not used again."""
    seen: list[str] = []

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line, _, _ = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            seen.append(line)
            writer.write(answer("200 OK", b"{}"))
            await writer.drain()

    clock = [1000.0]
    monkeypatch.setattr(wire.time, "monotonic", lambda: clock[0])
    async with serving(tmp_path, keep) as (client, accepted):
        assert (await client.send("GET", "/a")).status_code == 200
        clock[0] += 1
        assert (await client.send("POST", "/b", json_body={})).status_code == 200
        assert accepted == [1]  # a second later: the same connection
        clock[0] += 10
        assert (await client.send("POST", "/c", json_body={})).status_code == 200
    assert accepted == [1, 2]
    assert seen == ["GET /a HTTP/1.1", "POST /b HTTP/1.1", "POST /c HTTP/1.1"]


async def test_no_server_no_answer_and_no_http_are_errors_of_their_own(tmp_path: Path) -> None:
    missing = Client(uds=str(tmp_path / "none.sock"), authority="mist", timeout=1, connect_timeout=1)
    with pytest.raises(ConnectFailed) as refused:
        await missing.send("GET", "/v1/setup")
    assert isinstance(refused.value.__cause__, FileNotFoundError)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with serving(tmp_path, silent) as (client, _):
        client.timeout = 0.2
        with pytest.raises(TimedOut):
            await client.send("GET", "/v1/setup")

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    (tmp_path / "s.sock").unlink()
    async with serving(tmp_path, garbage) as (client, _):
        with pytest.raises(ProtocolFailed):
            await client.send("GET", "/v1/setup")


async def test_a_header_value_with_a_line_break_is_refused_before_sending(tmp_path: Path) -> None:
    client = Client(uds=str(tmp_path / "none.sock"), authority="mist", timeout=1, connect_timeout=1)
    with pytest.raises(ValueError):
        await client.send("GET", "/v1/setup", headers={"Authorization": "Bearer x\r\nX-Evil: 1"})


def test_the_command_line_client_loads_no_httpx() -> None:
    code = (
        "import sys\n"
        "from mist_core.cli.entry import handler_for\n"
        "from mist_core.client import RemoteMist\n"
        "handler_for(('deploy', None))\n"
        "RemoteMist('unix:///nonexistent/mist.sock')\n"
        "print(sorted(m for m in ('httpx', 'httpcore', 'rich', 'click') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
