"""The Docker engine layer against a real Docker Engine: what Mist asks for is what Docker runs, and Mist
never touches what it did not make."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest
from images import DOCKER, busybox_image

from mist_core.engine import (
    LABEL_APP,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED,
    LABEL_PROJECT,
    ContainerSpec,
    Engine,
)
from mist_core.errors import Conflict, EngineUnavailable, NotFound
from mist_core.models import LogLine, Volume

SOCKET = "unix:///var/run/docker.sock"


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def image() -> str:
    return busybox_image()


@pytest.fixture
def docker_api() -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url=SOCKET, version="1.41")
    yield api
    api.close()


@pytest.fixture
def prefix(docker_api: docker.APIClient) -> Iterator[str]:
    """A unique name prefix; every container, image, volume and network starting with it is removed after."""
    prefix = f"mist-t-{uuid.uuid4().hex[:8]}"
    yield prefix
    for row in docker_api.containers(all=True, filters={"name": prefix}):
        docker_api.remove_container(row["Id"], force=True)
    for row in docker_api.images(name=f"{prefix}/*"):
        for tag in row.get("RepoTags") or []:
            with contextlib.suppress(docker.errors.APIError):
                docker_api.remove_image(tag, force=True)
    for volume in (docker_api.volumes(filters={"name": prefix}) or {}).get("Volumes") or []:
        docker_api.remove_volume(volume["Name"], force=True)
    for network in docker_api.networks(names=[f"{prefix}-net"]):
        docker_api.remove_network(network["Id"])


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    engine = Engine(SOCKET)
    yield engine
    engine.close()


@pytest.fixture
async def network(engine: Engine, prefix: str) -> str:
    name = f"{prefix}-net"
    await engine.ensure_network(name)
    return name


def foreign_container(api: docker.APIClient, image: str, name: str, network: str, command: list[str]) -> str:
    """A container made with docker directly, without Mist's labels."""
    created = api.create_container(
        image, command=command, name=name, host_config=api.create_host_config(network_mode=network)
    )
    api.start(created["Id"])
    return created["Id"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_image(base: str, tag: str, labels: dict[str, str], extra: str = "") -> str:
    """``tag`` built on ``base``, which the caller gets from the ``image`` fixture: a test run on its own
    must not rely on an earlier test having built the base image on this engine."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Dockerfile").write_text(f"FROM {base}\n{extra}")
        command = [DOCKER, "build", "-q", "-t", tag]
        for key, value in labels.items():
            command += ["--label", f"{key}={value}"]
        subprocess.run(
            [*command, tmp],
            check=True,
            capture_output=True,
            env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin"},
        )
    return tag


def spec(name: str, image: str, network: str, command: list[str], **kwargs: object) -> ContainerSpec:
    labels = kwargs.pop("labels", {LABEL_PROJECT: "shop", LABEL_APP: "web"})
    return ContainerSpec(
        name=name, image=image, env={}, labels=labels, command=command, network=network, **kwargs
    )  # type: ignore[arg-type]


async def collect(lines: AsyncIterator[LogLine], count: int | None = None) -> list[LogLine]:
    found: list[LogLine] = []
    async with contextlib.aclosing(lines):  # type: ignore[type-var]
        async for line in lines:
            found.append(line)
            if count is not None and len(found) == count:
                break
    return found


async def wait_for_state(engine: Engine, name: str, status: str) -> dict:
    for _ in range(200):
        info = await engine.inspect(name)
        if info and info["State"]["Status"] == status:
            return info
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never reached {status}")


# ---------------------------------------------------------------------------------------------- pure


async def test_engine_down_says_where_it_looked_and_what_to_do(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/docker.sock"
    engine = Engine(url)
    with pytest.raises(EngineUnavailable) as caught:
        await engine.ping()
    assert caught.value.message == (
        f"the Docker Engine does not answer at {url}: start it (make docker) or set MIST_DOCKER_HOST"
    )
    with pytest.raises(EngineUnavailable):
        await engine.list_containers()
    with pytest.raises(EngineUnavailable):
        await collect(engine.logs("anything", follow=False))


def test_engine_address_comes_from_mist_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIST_DOCKER_HOST", "unix:///run/other.sock")
    assert Engine().base_url == "unix:///run/other.sock"
    assert Engine("tcp://127.0.0.1:2375").base_url == "tcp://127.0.0.1:2375"


# ---------------------------------------------------------------------------------------------- containers


@pytest.mark.docker
async def test_ping_answers(engine: Engine) -> None:
    await engine.ping()


@pytest.mark.docker
async def test_ensure_network_makes_one_labelled_bridge(engine: Engine, prefix: str, docker_api) -> None:
    name = f"{prefix}-net"
    await engine.ensure_network(name)
    await engine.ensure_network(name)
    networks = docker_api.networks(names=[name])
    assert len(networks) == 1
    assert networks[0]["Driver"] == "bridge"
    assert networks[0]["Labels"][LABEL_MANAGED] == "true"


@pytest.mark.docker
async def test_run_applies_env_labels_limits_restart_volumes_ports_and_network(
    engine: Engine, image: str, prefix: str, network: str, docker_api
) -> None:
    port = free_port()
    running = await engine.run(
        ContainerSpec(
            name=f"{prefix}-web",
            image=image,
            env={"GREETING": "hello world", "EMPTY": ""},
            labels={LABEL_PROJECT: "shop", LABEL_APP: "web", LABEL_DEPLOYMENT: "7"},
            command=["sh", "-c", "sleep 300"],
            publish=[f"127.0.0.1:{port}:8080"],
            memory=64 * 1024 * 1024,
            cpus=0.5,
            restart="on-failure:3",
            volumes=[Volume(name=f"{prefix}-data", path="/data")],
            network=network,
            aliases=["web.shop"],
        )
    )
    info = docker_api.inspect_container(running.id)
    assert running.name == f"{prefix}-web"
    assert info["State"]["Running"]
    assert "GREETING=hello world" in info["Config"]["Env"]
    assert "EMPTY=" in info["Config"]["Env"]
    assert info["Config"]["Cmd"] == ["sh", "-c", "sleep 300"]
    # Every label Mist put is there with its value, and nothing else is beyond the image's own labels
    # (which depend on how the engine's copy of the image was built, not on Mist).
    put_by_mist = {LABEL_PROJECT: "shop", LABEL_APP: "web", LABEL_DEPLOYMENT: "7", LABEL_MANAGED: "true"}
    labels = info["Config"]["Labels"]
    image_labels = docker_api.inspect_image(info["Image"])["Config"].get("Labels") or {}
    assert {key: labels.get(key) for key in put_by_mist} == put_by_mist
    assert {k: v for k, v in labels.items() if k not in put_by_mist} == {
        k: v for k, v in image_labels.items() if k not in put_by_mist
    }
    host = info["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["MemorySwap"] == 64 * 1024 * 1024
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert [(m["Type"], m["Name"], m["Destination"]) for m in info["Mounts"]] == [
        ("volume", f"{prefix}-data", "/data")
    ]
    assert docker_api.inspect_volume(f"{prefix}-data")["Labels"][LABEL_MANAGED] == "true"
    endpoint = info["NetworkSettings"]["Networks"][network]
    assert running.ip == endpoint["IPAddress"]
    assert "web.shop" in endpoint["Aliases"]


@pytest.mark.docker
async def test_run_without_optional_limits_leaves_docker_defaults(
    engine: Engine, image: str, prefix: str, network: str, docker_api
) -> None:
    running = await engine.run(spec(f"{prefix}-plain", image, network, ["sleep", "300"]))
    host = docker_api.inspect_container(running.id)["HostConfig"]
    assert host["NanoCpus"] == 0
    assert host["Memory"] == 0
    assert host["RestartPolicy"]["Name"] == "unless-stopped"


@pytest.mark.docker
async def test_taken_host_port_is_a_clear_conflict_and_leaves_no_container(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    port = free_port()
    await engine.run(
        spec(f"{prefix}-first", image, network, ["sleep", "300"], publish=[f"127.0.0.1:{port}:8080"])
    )
    with pytest.raises(Conflict) as caught:
        await engine.run(
            spec(f"{prefix}-second", image, network, ["sleep", "300"], publish=[f"127.0.0.1:{port}:8080"])
        )
    assert f"host port 127.0.0.1:{port} is already in use" in caught.value.message
    assert await engine.inspect(f"{prefix}-second") is None


@pytest.mark.docker
async def test_port_held_by_a_host_process_is_a_clear_conflict(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(Conflict, match=f"host port 127.0.0.1:{port} is already in use"):
            await engine.run(
                spec(
                    f"{prefix}-blocked", image, network, ["sleep", "300"], publish=[f"127.0.0.1:{port}:8080"]
                )
            )
    assert await engine.inspect(f"{prefix}-blocked") is None


@pytest.mark.docker
async def test_run_with_a_missing_image_says_to_build_again(
    engine: Engine, prefix: str, network: str
) -> None:
    with pytest.raises(NotFound, match="build the app again"):
        await engine.run(spec(f"{prefix}-ghost", f"{prefix}/nothing:1", network, ["true"]))


@pytest.mark.docker
async def test_running_a_taken_name_is_a_conflict(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    await engine.run(spec(f"{prefix}-twin", image, network, ["sleep", "300"]))
    with pytest.raises(Conflict, match="already exists"):
        await engine.run(spec(f"{prefix}-twin", image, network, ["sleep", "300"]))


@pytest.mark.docker
async def test_stop_sends_sigterm_then_sigkill_after_the_grace_period(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    # A shell as PID 1 ignores SIGTERM unless it traps it: the first exits cleanly, the second is killed.
    await engine.run(
        spec(f"{prefix}-polite", image, network, ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"])
    )
    await engine.run(spec(f"{prefix}-stubborn", image, network, ["sh", "-c", "sleep 300 & wait"]))
    await asyncio.gather(
        engine.stop(f"{prefix}-polite", grace=30), engine.stop(f"{prefix}-stubborn", grace=1)
    )
    polite = await engine.inspect(f"{prefix}-polite")
    stubborn = await engine.inspect(f"{prefix}-stubborn")
    assert polite is not None and stubborn is not None
    assert (polite["State"]["Status"], polite["State"]["ExitCode"]) == ("exited", 0)
    assert (stubborn["State"]["Status"], stubborn["State"]["ExitCode"]) == ("exited", 137)


@pytest.mark.docker
async def test_start_and_restart_bring_a_stopped_container_back(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    name = f"{prefix}-cycle"
    await engine.run(spec(name, image, network, ["sleep", "300"]))
    await engine.stop(name, grace=0)
    await wait_for_state(engine, name, "exited")
    await engine.start(name)
    first = await wait_for_state(engine, name, "running")
    await engine.restart(name, grace=0)
    second = await wait_for_state(engine, name, "running")
    assert second["State"]["StartedAt"] != first["State"]["StartedAt"]


@pytest.mark.docker
async def test_missing_containers_are_no_error_to_stop_or_remove(engine: Engine, prefix: str) -> None:
    await engine.stop(f"{prefix}-never")
    await engine.remove(f"{prefix}-never")
    assert await engine.inspect(f"{prefix}-never") is None
    with pytest.raises(NotFound):
        await engine.start(f"{prefix}-never")


@pytest.mark.docker
async def test_remove_deletes_a_mist_container(engine: Engine, image: str, prefix: str, network: str) -> None:
    await engine.run(spec(f"{prefix}-gone", image, network, ["sleep", "300"]))
    await engine.remove(f"{prefix}-gone")
    assert await engine.inspect(f"{prefix}-gone") is None


@pytest.mark.docker
async def test_mist_refuses_to_touch_a_container_it_did_not_make(
    engine: Engine, image: str, prefix: str, network: str, docker_api
) -> None:
    name = f"{prefix}-foreign"
    foreign_container(docker_api, image, name, network, ["sleep", "300"])
    for action in (engine.remove(name), engine.stop(name), engine.restart(name)):
        with pytest.raises(Conflict, match="not managed by Mist"):
            await action
    assert docker_api.inspect_container(name)["State"]["Running"]
    assert name not in [c.name for c in await engine.list_containers(all=True)]


@pytest.mark.docker
async def test_list_containers_shows_only_mist_ones_filtered_by_project_app_and_deployment(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    project = prefix
    await engine.run(
        spec(
            f"{prefix}-a1",
            image,
            network,
            ["sleep", "300"],
            labels={LABEL_PROJECT: project, LABEL_APP: "a", LABEL_DEPLOYMENT: "1"},
            publish=["127.0.0.1::8080"],
        )
    )
    await engine.run(
        spec(
            f"{prefix}-b2",
            image,
            network,
            ["true"],
            labels={LABEL_PROJECT: project, LABEL_APP: "b"},
            restart="no",
        )
    )
    await wait_for_state(engine, f"{prefix}-b2", "exited")

    running = await engine.list_containers(project=project)
    assert [c.name for c in running] == [f"{prefix}-a1"]
    only = running[0]
    assert (only.project, only.app, only.deployment_id, only.image, only.state) == (
        project,
        "a",
        1,
        image,
        "running",
    )
    assert only.status.startswith("Up")
    assert (
        len(only.ports) == 1
        and only.ports[0].startswith("127.0.0.1:")
        and only.ports[0].endswith("->8080/tcp")
    )
    assert only.created_at.tzinfo is not None

    everything = await engine.list_containers(all=True, project=project)
    assert sorted(c.name for c in everything) == [f"{prefix}-a1", f"{prefix}-b2"]
    assert [c.name for c in await engine.list_containers(all=True, project=project, app="b")] == [
        f"{prefix}-b2"
    ]
    assert [c.name for c in await engine.list_containers(all=True, deployment=1, project=project)] == [
        f"{prefix}-a1"
    ]


# ---------------------------------------------------------------------------------------------- logs


@pytest.mark.docker
async def test_logs_keep_stdout_and_stderr_apart_with_docker_timestamps(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    name = f"{prefix}-talk"
    before = datetime.now(UTC) - timedelta(seconds=5)
    await engine.run(
        spec(
            name, image, network, ["sh", "-c", "echo to-out; echo to-err >&2; echo 'two words'"], restart="no"
        )
    )
    await wait_for_state(engine, name, "exited")
    lines = await collect(engine.logs(name, follow=False, tail=None, since=None))
    assert sorted((line.stream, line.text) for line in lines) == [
        ("stderr", "to-err"),
        ("stdout", "to-out"),
        ("stdout", "two words"),
    ]
    assert all(line.source == name for line in lines)
    assert all(before < line.ts < datetime.now(UTC) for line in lines)


@pytest.mark.docker
async def test_logs_tail_returns_the_last_lines(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    name = f"{prefix}-count"
    await engine.run(
        spec(name, image, network, ["sh", "-c", "for i in 1 2 3 4 5 6; do echo line $i; done"], restart="no")
    )
    await wait_for_state(engine, name, "exited")
    lines = await collect(engine.logs(name, follow=False, tail=2, since=None))
    assert [line.text for line in lines] == ["line 5", "line 6"]
    assert await collect(engine.logs(name, follow=False, tail=0, since=None)) == []


@pytest.mark.docker
async def test_logs_since_skips_earlier_lines(engine: Engine, image: str, prefix: str, network: str) -> None:
    name = f"{prefix}-since"
    await engine.run(spec(name, image, network, ["sh", "-c", "echo early; sleep 2; echo late"], restart="no"))
    await wait_for_state(engine, name, "exited")
    lines = await collect(engine.logs(name, follow=False, tail=None, since=None))
    late = next(line for line in lines if line.text == "late")
    since = await collect(
        engine.logs(name, follow=False, tail=None, since=late.ts - timedelta(milliseconds=500))
    )
    assert [line.text for line in since] == ["late"]


@pytest.mark.docker
async def test_following_logs_streams_new_lines_and_stops_when_the_reader_stops(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    name = f"{prefix}-ticker"
    await engine.run(
        spec(
            name,
            image,
            network,
            ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"],
        )
    )
    lines = await collect(engine.logs(name, follow=True, tail=0, since=None), count=5)
    numbers = [int(line.text.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], numbers[0] + 5))
    # The engine stream's reader thread ends once its only follower is gone.
    for _ in range(100):
        if not any(t.name == f"mist-stream-{name}" and t.is_alive() for t in threading.enumerate()):
            break
        await asyncio.sleep(0.05)
    assert not any(t.name == f"mist-stream-{name}" and t.is_alive() for t in threading.enumerate())


@pytest.mark.docker
async def test_following_logs_ends_when_the_container_exits(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    name = f"{prefix}-brief"
    await engine.run(spec(name, image, network, ["sh", "-c", "echo first; sleep 1; echo last"], restart="no"))
    lines = await collect(engine.logs(name, follow=True, tail=None, since=None))
    assert [line.text for line in lines] == ["first", "last"]


@pytest.mark.docker
async def test_logs_of_a_missing_container_are_not_found(engine: Engine, prefix: str) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        await collect(engine.logs(f"{prefix}-nobody", follow=True, tail=10, since=None))


# ---------------------------------------------------------------------------------------------- events, stats


@pytest.mark.docker
async def test_events_report_a_mist_container_dying_with_its_exit_code(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    name = f"{prefix}-doomed"
    started = datetime.now(UTC) - timedelta(seconds=1)
    await engine.run(spec(name, image, network, ["sh", "-c", "exit 3"], restart="no"))
    seen: list[dict] = []
    events = engine.events(since=started)
    async with contextlib.aclosing(events):
        async with asyncio.timeout(60):
            async for event in events:
                if event.get("Actor", {}).get("Attributes", {}).get("name") != name:
                    continue
                seen.append(event)
                if event["Action"] == "die":
                    break
    assert [e["Action"] for e in seen][-1] == "die"
    assert "start" in [e["Action"] for e in seen]
    assert seen[-1]["Actor"]["Attributes"]["exitCode"] == "3"


@pytest.mark.docker
async def test_events_leave_out_containers_mist_did_not_make(
    engine: Engine, image: str, prefix: str, network: str, docker_api
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    docker_api.wait(foreign_container(docker_api, image, f"{prefix}-foreign", network, ["true"]))
    await engine.run(spec(f"{prefix}-ours", image, network, ["true"], restart="no"))
    names = []
    events = engine.events(since=started)
    async with contextlib.aclosing(events):
        async with asyncio.timeout(60):
            async for event in events:
                names.append(event["Actor"]["Attributes"].get("name"))
                if names[-1] == f"{prefix}-ours" and event["Action"] == "die":
                    break
    assert f"{prefix}-foreign" not in names


@pytest.mark.docker
async def test_stats_report_memory_and_cpu_of_running_mist_containers(
    engine: Engine, image: str, prefix: str, network: str, docker_api
) -> None:
    await engine.run(spec(f"{prefix}-idle", image, network, ["sleep", "300"], memory=32 * 1024 * 1024))
    await engine.run(spec(f"{prefix}-busy", image, network, ["sh", "-c", "while :; do :; done"], cpus=0.5))
    foreign_container(docker_api, image, f"{prefix}-foreign", network, ["sleep", "300"])

    for _ in range(2):  # the first sweep reads new containers twice; later ones compare with the last sweep
        stats = {s.name: s for s in await engine.stats()}
        idle, busy = stats[f"{prefix}-idle"], stats[f"{prefix}-busy"]
        assert f"{prefix}-foreign" not in stats
        assert (idle.project, idle.app) == ("shop", "web")
        assert idle.memory_bytes > 0
        assert idle.memory_limit == 32 * 1024 * 1024
        assert busy.memory_limit is None
        assert idle.cpu_percent < busy.cpu_percent
        assert 5 < busy.cpu_percent < 80  # limited to half a core
        assert idle.net_rx_bytes >= 0


# ---------------------------------------------------------------------------------------------- images


@pytest.mark.docker
async def test_image_exists_and_remove_image_only_for_mist_images(
    engine: Engine, image: str, prefix: str
) -> None:
    ours = build_image(image, f"{prefix}/ours:1", {LABEL_MANAGED: "true"})
    theirs = build_image(image, f"{prefix}/theirs:1", {"maintainer": "someone"})
    assert await engine.image_exists(ours)
    assert not await engine.image_exists(f"{prefix}/missing:1")
    with pytest.raises(Conflict, match="not built by Mist"):
        await engine.remove_image(theirs)
    assert await engine.image_exists(theirs)
    await engine.remove_image(ours)
    assert not await engine.image_exists(ours)
    await engine.remove_image(ours)  # already gone: no error


@pytest.mark.docker
async def test_prune_keeps_the_newest_the_protected_and_the_used_images(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    project, app = prefix, "web"

    def app_image(deployment: int, managed: bool = True) -> str:
        labels = {LABEL_PROJECT: project, LABEL_APP: app, LABEL_DEPLOYMENT: str(deployment)}
        if managed:
            labels[LABEL_MANAGED] = "true"
        return build_image(image, f"{prefix}/web:{deployment}", labels)

    tags = {n: app_image(n) for n in (1, 2, 3, 4, 5, 6)}
    foreign = app_image(0, managed=False)
    # Deployment 2's image still backs a (stopped) container.
    await engine.run(
        spec(
            f"{prefix}-old",
            tags[2],
            network,
            ["true"],
            labels={LABEL_PROJECT: project, LABEL_APP: app},
            restart="no",
        )
    )

    removed = await engine.prune_app_images(project, app, keep=2, protect={tags[1]})

    assert sorted(removed) == [tags[3], tags[4]]
    for n in (1, 2, 5, 6):
        assert await engine.image_exists(tags[n])
    assert await engine.image_exists(foreign)
    assert await engine.prune_app_images(project, app, keep=2, protect={tags[1]}) == []


@pytest.mark.docker
async def test_remove_deployment_leftovers_removes_its_containers_and_image_only(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    # Deployment ids are global: pick ones no other test on this engine uses.
    doomed, kept = (int(uuid.uuid4().hex[:7], 16) + 10**9 for _ in range(2))
    failed = build_image(
        image, f"{prefix}/web:{doomed}", {LABEL_MANAGED: "true", LABEL_DEPLOYMENT: str(doomed)}
    )
    live = build_image(image, f"{prefix}/web:{kept}", {LABEL_MANAGED: "true", LABEL_DEPLOYMENT: str(kept)})
    labels = {LABEL_PROJECT: prefix, LABEL_APP: "web"}
    await engine.run(
        spec(
            f"{prefix}-new",
            failed,
            network,
            ["sleep", "300"],
            labels={**labels, LABEL_DEPLOYMENT: str(doomed)},
        )
    )
    await engine.run(
        spec(
            f"{prefix}-live", live, network, ["sleep", "300"], labels={**labels, LABEL_DEPLOYMENT: str(kept)}
        )
    )

    await engine.remove_deployment_leftovers(doomed)

    assert await engine.inspect(f"{prefix}-new") is None
    assert not await engine.image_exists(failed)
    assert (await engine.inspect(f"{prefix}-live") or {})["State"]["Running"]
    assert await engine.image_exists(live)


@pytest.mark.docker
async def test_a_line_longer_than_dockers_16k_chunks_comes_back_whole(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    name = f"{prefix}-long"
    await engine.run(
        spec(
            name,
            image,
            network,
            ["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo; echo after"],
            restart="no",
        )
    )
    await wait_for_state(engine, name, "exited")
    lines = await collect(engine.logs(name, follow=False, tail=None, since=None))
    assert [len(line.text) for line in lines] == [40000, 5]
    assert set(lines[0].text) == {"x"}


@pytest.mark.docker
async def test_a_silent_follow_ends_its_reader_thread_when_the_reader_gives_up(
    engine: Engine, image: str, prefix: str, network: str
) -> None:
    name = f"{prefix}-quiet"
    await engine.run(spec(name, image, network, ["sleep", "300"]))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await collect(engine.logs(name, follow=True, tail=None, since=None))
    for _ in range(100):
        if not any(t.name == f"mist-stream-{name}" and t.is_alive() for t in threading.enumerate()):
            break
        await asyncio.sleep(0.05)
    assert not any(t.name == f"mist-stream-{name}" and t.is_alive() for t in threading.enumerate())


# ---------------------------------------------------------------------------------------------- project isolation


@pytest.mark.docker
async def test_concurrent_ensures_of_a_project_network_make_one_network(prefix: str, docker_api) -> None:
    engine = Engine(SOCKET, instance=prefix)
    name = f"{prefix}-net"
    created = await asyncio.gather(
        *(engine.ensure_network(name, labels={"dev.mist.project-uid": "u1"}, owner={}) for _ in range(6))
    )
    assert sorted(created) == [False] * 5 + [True]
    networks = docker_api.networks(names=[name])
    assert len(networks) == 1
    assert networks[0]["Labels"] == {
        LABEL_MANAGED: "true",
        "dev.mist.instance": prefix,
        "dev.mist.project-uid": "u1",
    }


@pytest.mark.docker
async def test_a_network_of_that_name_made_by_someone_else_is_refused_and_left_alone(
    prefix: str, docker_api
) -> None:
    engine = Engine(SOCKET, instance=prefix)
    name = f"{prefix}-net"
    docker_api.create_network(name, driver="bridge")
    with pytest.raises(Conflict, match="did not make it"):
        await engine.ensure_network(
            name, labels={"dev.mist.project-uid": "u1"}, owner={"dev.mist.project-uid": "u1"}
        )
    with pytest.raises(Conflict, match="not made by Mist"):
        await engine.remove_network(name, owner={"dev.mist.project-uid": "u1"})
    assert len(docker_api.networks(names=[name])) == 1


@pytest.mark.docker
async def test_a_project_network_with_a_container_attached_is_not_removed_and_the_message_names_it(
    prefix: str, image: str, docker_api
) -> None:
    engine = Engine(SOCKET, instance=prefix)
    name = f"{prefix}-net"
    owner = {"dev.mist.project-uid": "u1"}
    await engine.ensure_network(name, labels=owner, owner=owner)
    foreign_container(docker_api, image, f"{prefix}-guest", name, ["sleep", "300"])
    with pytest.raises(Conflict, match=f"{prefix}-guest"):
        await engine.remove_network(name, owner=owner)
    docker_api.remove_container(f"{prefix}-guest", force=True)
    await engine.remove_network(name, owner=owner)
    assert docker_api.networks(names=[name]) == []


@pytest.mark.docker
async def test_a_volume_without_mists_labels_for_the_owner_is_refused(prefix: str, docker_api) -> None:
    engine = Engine(SOCKET, instance=prefix)
    owner = {"dev.mist.project-uid": "u1"}
    docker_api.create_volume(f"{prefix}-planted")
    with pytest.raises(Conflict, match="did not make it"):
        await engine.ensure_volume(f"{prefix}-planted", labels=owner, owner=owner)
    assert await engine.ensure_volume(f"{prefix}-own", labels=owner, owner=owner) is True
    assert await engine.ensure_volume(f"{prefix}-own", labels=owner, owner=owner) is False
    with pytest.raises(Conflict, match="did not make it"):
        await engine.ensure_volume(f"{prefix}-own", labels=owner, owner={"dev.mist.project-uid": "u2"})
