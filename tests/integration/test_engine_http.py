"""The engine's own HTTP client against a real Docker Engine: over TCP as well as the socket, streams that
end when their reader stops, TTY logs, Docker's refusals turned into Mist's errors, and a daemon that loads
no Docker client library."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import psutil
import pytest
from images import busybox_image

from mist_core.engine import LABEL_APP, LABEL_MANAGED, LABEL_PROJECT, ContainerSpec, Engine
from mist_core.errors import EngineUnavailable, MistError

SOCKET_PATH = "/var/run/docker.sock"
SOCKET = f"unix://{SOCKET_PATH}"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def image() -> str:
    return busybox_image()


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"mist-th-{uuid.uuid4().hex[:8]}"
    yield prefix
    api = docker.APIClient(base_url=SOCKET, version="1.41")
    try:
        for row in api.containers(all=True, filters={"name": prefix}):
            api.remove_container(row["Id"], force=True)
        for network in api.networks(names=[f"{prefix}-net"]):
            api.remove_network(network["Id"])
    finally:
        api.close()


@pytest.fixture
async def network(prefix: str) -> str:
    await Engine(SOCKET).ensure_network(f"{prefix}-net")
    return f"{prefix}-net"


@pytest.fixture
async def tcp_engine_url() -> AsyncIterator[str]:
    """Docker's API on 127.0.0.1: a byte pipe from a loopback port to the engine's socket."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        engine_r, engine_w = await asyncio.open_unix_connection(SOCKET_PATH)
        try:
            await asyncio.gather(pipe(client_r, engine_w), pipe(engine_r, client_w))
        finally:
            engine_w.close()
            client_w.close()

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        server.close()


def spec(name: str, image: str, network: str, command: list[str], **kwargs: object) -> ContainerSpec:
    return ContainerSpec(
        name=name,
        image=image,
        labels={LABEL_PROJECT: "shop", LABEL_APP: "web"},
        command=command,
        network=network,
        **kwargs,  # type: ignore[arg-type]
    )


async def wait_exited(engine: Engine, name: str) -> None:
    for _ in range(200):
        info = await engine.inspect(name)
        if info and info["State"]["Status"] == "exited":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never exited")


def unix_connections() -> int:
    return len(psutil.Process().net_connections(kind="unix"))


async def connections_back_to(count: int) -> int:
    """The process's Unix connections once closing ones are gone (a close completes on the next loop turn)."""
    for _ in range(100):
        if unix_connections() == count:
            break
        await asyncio.sleep(0.02)
    return unix_connections()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------- TCP


@pytest.mark.docker
async def test_a_tcp_engine_address_runs_lists_and_reads_logs(
    tcp_engine_url: str, image: str, prefix: str, network: str
) -> None:
    engine = Engine(tcp_engine_url)
    await engine.ping()
    name = f"{prefix}-tcp"
    await engine.run(spec(name, image, network, ["sh", "-c", "echo over tcp"], restart="no"))
    await wait_exited(engine, name)
    assert name in [c.name for c in await engine.list_containers(all=True)]
    lines = [line.text async for line in engine.logs(name)]
    assert lines == ["over tcp"]


async def test_a_tcp_address_where_nothing_listens_is_engine_unavailable() -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(EngineUnavailable, match=f"does not answer at {url}"):
        await Engine(url).ping()


# ---------------------------------------------------------------------------------------------- streams


@pytest.mark.docker
async def test_cancelling_an_events_reader_closes_its_connection() -> None:
    engine = Engine(SOCKET)
    before = unix_connections()
    received: list[dict] = []

    async def read() -> None:
        async for event in engine.events():
            received.append(event)

    task = asyncio.create_task(read())
    for _ in range(100):
        if unix_connections() > before:
            break
        await asyncio.sleep(0.02)
    assert unix_connections() == before + 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await connections_back_to(before) == before


@pytest.mark.docker
async def test_events_since_a_moment_replay_and_then_wait(image: str, prefix: str, network: str) -> None:
    engine = Engine(SOCKET)
    name = f"{prefix}-replay"
    since = datetime.now(UTC) - timedelta(seconds=1)
    await engine.run(spec(name, image, network, ["true"], restart="no"))
    await wait_exited(engine, name)
    actions = []
    events = engine.events(since=since)
    async with contextlib.aclosing(events):
        async with asyncio.timeout(30):
            async for event in events:
                if event["Actor"]["Attributes"].get("name") == name:
                    actions.append(event["Action"])
                    if event["Action"] == "die":
                        break
    assert actions[0] == "create" and actions[-1] == "die"


@pytest.mark.docker
async def test_a_stopped_log_follower_leaves_no_connection_open(
    image: str, prefix: str, network: str
) -> None:
    engine = Engine(SOCKET)
    name = f"{prefix}-follow"
    await engine.run(spec(name, image, network, ["sh", "-c", "while true; do echo tick; sleep 0.05; done"]))
    before = unix_connections()
    lines = engine.logs(name, follow=True, tail=0)
    async with contextlib.aclosing(lines):
        async for _ in lines:
            break
    assert await connections_back_to(before) == before
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            async for _ in engine.logs(
                name, follow=True, tail=0, since=datetime.now(UTC) + timedelta(hours=1)
            ):
                pass
    assert await connections_back_to(before) == before


@pytest.mark.docker
async def test_logs_of_a_tty_container_are_plain_lines(image: str, prefix: str, network: str) -> None:
    api = docker.APIClient(base_url=SOCKET, version="1.41")
    name = f"{prefix}-tty"
    try:
        created = api.create_container(
            image,
            command=["sh", "-c", "echo one; echo two >&2"],
            name=name,
            tty=True,
            labels={LABEL_MANAGED: "true"},
            host_config=api.create_host_config(network_mode=network),
        )
        api.start(created["Id"])
        api.wait(created["Id"])
    finally:
        api.close()
    lines = [line async for line in Engine(SOCKET).logs(name)]
    assert [(line.stream, line.text) for line in lines] == [("stdout", "one"), ("stdout", "two")]


# ---------------------------------------------------------------------------------------------- refusals


@pytest.mark.docker
async def test_a_container_that_cannot_start_is_removed_and_the_error_says_why(
    image: str, prefix: str
) -> None:
    engine = Engine(SOCKET)
    name = f"{prefix}-lost"
    with pytest.raises(MistError, match=f"container {name} did not start: .*{prefix}-nonet not found"):
        await engine.run(spec(name, image, f"{prefix}-nonet", ["true"]))
    assert await engine.inspect(name) is None


@pytest.mark.docker
async def test_a_name_docker_refuses_is_a_mist_error_with_dockers_words(
    image: str, prefix: str, network: str
) -> None:
    with pytest.raises(MistError) as caught:
        await Engine(SOCKET).run(spec(f"{prefix} bad name!", image, network, ["true"]))
    assert caught.value.message.startswith(f"Docker refused to create container {prefix} bad name!: ")
    assert "Invalid container name" in caught.value.message


# ---------------------------------------------------------------------------------------------- imports


def test_the_daemon_loads_no_docker_client_library() -> None:
    code = (
        "import sys, mist_core.daemon, mist_core.local, mist_core.server.app\n"
        "print(sorted(m for m in ('docker', 'requests', 'urllib3') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=dict(os.environ),
    )
    assert result.stdout.strip() == "[]"
