"""The engine's connection (docker-py) against a real Docker Engine: the API version negotiated through
stand-ins of other engine versions, TCP as well as the socket, streams shared by their followers and ended
when the last one stops, TTY logs, pulls, exec, Swarm, Docker's refusals turned into Mist's errors, and a
CLI that loads no Docker client library until it uses an engine."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import psutil
import pytest
from images import busybox_image
from standins.engine import EngineStandIn

from mist_core.engine import LABEL_APP, LABEL_MANAGED, LABEL_PROJECT, ContainerSpec, Engine
from mist_core.errors import EngineUnavailable, MistError, NotFound

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


def stream_readers(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"mist-stream-{name}" and t.is_alive()]


async def readers_become(name: str, count: int) -> int:
    for _ in range(200):
        if len(stream_readers(name)) == count:
            break
        await asyncio.sleep(0.02)
    return len(stream_readers(name))


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
    await engine.ping()  # the calls' own pooled connection is open before counting
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
    await engine.inspect(name)
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


# ---------------------------------------------------------------------------------------------- versions


@pytest.mark.docker
async def test_mist_negotiates_with_an_engine_that_refuses_api_1_41_and_works_through_it(
    image: str, prefix: str
) -> None:
    """Docker Engine 29 refuses every client below API 1.44: Mist asks the engine's version and speaks one
    it accepts, so running a container, reading its logs and removing it work."""
    with EngineStandIn(api_version="1.52", min_api_version="1.44") as standin:
        engine = Engine(standin.url)
        try:
            await engine.ping()
            version = await engine.version()
            assert version["ApiVersion"] == "1.52"
            negotiated = tuple(int(part) for part in version["NegotiatedAPIVersion"].split("."))
            assert (1, 44) <= negotiated <= (1, 52)
            await engine.ensure_network(f"{prefix}-net")
            name = f"{prefix}-new"
            running = await engine.run(
                spec(name, image, f"{prefix}-net", ["sh", "-c", "echo hello 29"], restart="no")
            )
            await wait_exited(engine, name)
            info = await engine.inspect(name)
            assert info is not None and info["Id"] == running.id
            assert [line.text async for line in engine.logs(name)] == ["hello 29"]
            followed = [line.text async for line in engine.logs(name, follow=True)]
            assert followed == ["hello 29"]
            await engine.remove(name)
            assert await engine.inspect(name) is None
        finally:
            engine.close()
        assert standin.refused == []
        versioned = [r.path for r in standin.requests if r.path.startswith("/v1.")]
        assert versioned and all(p.startswith(f"/v{version['NegotiatedAPIVersion']}/") for p in versioned)


@pytest.mark.docker
async def test_an_engine_older_than_mists_minimum_is_refused_saying_its_version_and_what_to_do() -> None:
    with EngineStandIn(api_version="1.30", min_api_version="1.12", release="17.06.2-ce") as standin:
        engine = Engine(standin.url)
        try:
            with pytest.raises(EngineUnavailable) as caught:
                await engine.ping()
        finally:
            engine.close()
    message = caught.value.message
    assert "Docker 17.06.2-ce speaks API 1.30" in message
    assert "needs API 1.41 or newer" in message
    assert "upgrade Docker" in message
    assert standin.refused == []  # it was asked its version, nothing it would refuse


# ---------------------------------------------------------------------------------------------- sharing


@pytest.mark.docker
async def test_followers_of_one_containers_logs_share_one_engine_stream_until_the_last_leaves(
    image: str, prefix: str, network: str
) -> None:
    engine = Engine(SOCKET)
    name = f"{prefix}-shared"
    await engine.run(
        spec(
            name,
            image,
            network,
            ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.05; done"],
        )
    )
    first = engine.logs(name, follow=True, tail=0)
    second = engine.logs(name, follow=True, tail=0)
    try:
        a = [(await anext(first)).text for _ in range(3)]
        b = [(await anext(second)).text for _ in range(3)]
        assert len(stream_readers(name)) == 1
        # Both see the same lines from where they joined, in order.
        numbers_a = [int(t.split()[1]) for t in a]
        numbers_b = [int(t.split()[1]) for t in b]
        assert numbers_a == list(range(numbers_a[0], numbers_a[0] + 3))
        assert numbers_b == list(range(numbers_b[0], numbers_b[0] + 3))
        await first.aclose()
        assert await readers_become(name, 1) == 1  # the other follower still reads
        assert (await anext(second)).text.startswith("line ")
    finally:
        await first.aclose()
        await second.aclose()
    assert await readers_become(name, 0) == 0
    engine.close()


@pytest.mark.docker
async def test_a_follower_that_joins_late_gets_the_tail_then_new_lines_without_gaps_or_repeats(
    image: str, prefix: str, network: str
) -> None:
    engine = Engine(SOCKET)
    name = f"{prefix}-late"
    await engine.run(
        spec(
            name,
            image,
            network,
            ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.02; done"],
        )
    )
    early = engine.logs(name, follow=True, tail=0)
    late = engine.logs(name, follow=True, tail=5)
    try:
        await anext(early)
        await asyncio.sleep(0.3)
        lines = [int((await anext(late)).text.split()[1]) for _ in range(30)]
    finally:
        await early.aclose()
        await late.aclose()
        engine.close()
    assert lines == list(range(lines[0], lines[0] + 30))


@pytest.mark.docker
async def test_readers_of_the_events_share_one_engine_stream(image: str, prefix: str, network: str) -> None:
    engine = Engine(SOCKET)
    name = f"{prefix}-evt"
    first, second = engine.events(), engine.events()

    async def first_about_ours(stream) -> dict:
        # Other tests (and other runs) use the same engine: their events come through too.
        while True:
            event = await anext(stream)
            if event.get("Actor", {}).get("Attributes", {}).get("name") == name:
                return event

    try:
        got_first = asyncio.ensure_future(first_about_ours(first))
        got_second = asyncio.ensure_future(first_about_ours(second))
        assert await readers_become("events", 1) == 1
        await asyncio.sleep(0.2)
        await engine.run(spec(name, image, network, ["true"], restart="no"))
        async with asyncio.timeout(30):
            one, two = await asyncio.gather(got_first, got_second)
        assert one == two and one["Actor"]["Attributes"]["name"] == name
        assert len(stream_readers("events")) == 1
    finally:
        await first.aclose()
        await second.aclose()
    assert await readers_become("events", 0) == 0
    engine.close()


# ---------------------------------------------------------------------------------------------- pull, exec, swarm


@pytest.mark.docker
async def test_pulling_a_missing_image_offline_says_what_failed_and_what_to_check(prefix: str) -> None:
    engine = Engine(SOCKET)
    try:
        with pytest.raises(NotFound) as caught:
            await engine.pull(f"mist-test/{prefix}-absent:1")
    finally:
        engine.close()
    assert caught.value.message.startswith(f"cannot pull image mist-test/{prefix}-absent:1: ")
    assert "registry is reachable" in caught.value.message


@pytest.mark.docker
async def test_registry_credentials_go_to_the_engine_as_data_in_the_pull_request(prefix: str) -> None:
    with EngineStandIn() as standin:
        engine = Engine(standin.url)
        try:
            with pytest.raises(NotFound):
                await engine.pull(
                    f"registry.invalid/{prefix}/app:2",
                    auth={
                        "username": "deployer",
                        "password": "s3cret-pw",
                        "serveraddress": "registry.invalid",
                    },
                )
        finally:
            engine.close()
    pulls = [r for r in standin.requests if r.method == "POST" and "/images/create" in r.path]
    assert len(pulls) == 1
    assert "s3cret-pw" not in pulls[0].path
    header = pulls[0].headers["X-Registry-Auth"]
    sent = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    assert (sent["username"], sent["password"]) == ("deployer", "s3cret-pw")


@pytest.mark.docker
async def test_exec_returns_the_commands_exit_code_and_output(image: str, prefix: str, network: str) -> None:
    engine = Engine(SOCKET)
    name = f"{prefix}-exec"
    try:
        await engine.run(spec(name, image, network, ["sleep", "300"]))
        result = await engine.exec(name, ["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
        assert result.exit_code == 3
        assert sorted(result.output.split()) == ["to-err", "to-out"]
        assert (await engine.exec(name, ["true"])).exit_code == 0
        with pytest.raises(NotFound):
            await engine.exec(f"{prefix}-nobody", ["true"])
    finally:
        engine.close()


@pytest.mark.docker
async def test_an_interactive_exec_carries_a_terminal_both_ways(
    image: str, prefix: str, network: str
) -> None:
    engine = Engine(SOCKET)
    name = f"{prefix}-tty"
    try:
        await engine.run(spec(name, image, network, ["sleep", "300"]))
        session = await engine.exec_interactive(name, ["sh"])
        await session.resize(40, 100)

        def converse() -> bytes:
            session.socket.sendall(b"stty size; echo sum=$((40+2)); exit 5\n")
            seen = b""
            while chunk := session.socket.recv(4096):
                seen += chunk
            return seen

        async with asyncio.timeout(30):
            seen = await asyncio.to_thread(converse)
            while (code := await session.exit_code()) is None:
                await asyncio.sleep(0.05)
        session.close()
        assert b"sum=42" in seen
        assert b"40 100" in seen
        assert code == 5
    finally:
        engine.close()


@pytest.mark.docker
async def test_swarm_info_says_what_the_engine_says(docker_client) -> None:
    engine = Engine(SOCKET)
    try:
        swarm = await engine.swarm_info()
    finally:
        engine.close()
    expected = docker_client.info()["Swarm"]
    assert swarm.state == expected["LocalNodeState"]
    assert swarm.is_manager == bool(expected.get("ControlAvailable"))


# ---------------------------------------------------------------------------------------------- imports


def test_the_cli_loads_no_docker_client_library_until_it_uses_an_engine() -> None:
    code = (
        "import sys, mist_core.cli, mist_core.local, mist_core.client\n"
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


# ---------------------------------------------------------------------------------------------- ssh


@pytest.mark.docker
async def test_an_ssh_engine_address_runs_a_container_and_reads_its_logs(
    tmp_path: Path, image: str, prefix: str, network: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ssh://`` as the Docker CLI does it: the system's ssh runs ``docker system dial-stdio`` on the
    server (here an sshd of the test's own on 127.0.0.1), keys and host keys from the ssh configuration."""
    from gitserver import ssh_git_server, sshd_missing

    if why := sshd_missing():
        pytest.fail(why)
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with ssh_git_server(tmp_path / "sshd") as server:
        server.authorize(key.with_suffix(".pub").read_text())
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(server.known_hosts_line + "\n")
        config = tmp_path / "ssh_config"
        config.write_text(
            f"Host engine-over-ssh\n  HostName 127.0.0.1\n  Port {server.port}\n  User {server.user}\n"
            f"  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n"
            "  StrictHostKeyChecking yes\n"
        )
        monkeypatch.setenv("MIST_DOCKER_SSH_CONFIG", str(config))
        engine = Engine("ssh://engine-over-ssh")
        try:
            await engine.ping()
            name = f"{prefix}-ssh"
            await engine.run(spec(name, image, network, ["sh", "-c", "echo over ssh"], restart="no"))
            await wait_exited(engine, name)
            # The engine copies a container's output to its log a moment after the process ends: an
            # exited container can still show no lines for that moment.
            lines: list[str] = []
            async with asyncio.timeout(10):
                while not lines:
                    lines = [line.text async for line in engine.logs(name)]
                    await asyncio.sleep(0 if lines else 0.1)
            assert lines == ["over ssh"]
            await engine.remove(name)
            assert await engine.inspect(name) is None
        finally:
            engine.close()
