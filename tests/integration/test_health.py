"""Health checks against real containers: an app that answers passes, one that does not (or dies) fails with
what went wrong."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest
from images import BUSYBOX, DOCKER, busybox_image

from mist_core.engine import LABEL_APP, LABEL_MANAGED, LABEL_PROJECT, ContainerSpec, Engine, RunningContainer
from mist_core.engine.health import HealthCheckCancelled, HealthCheckFailed, backoff, wait_healthy
from mist_core.errors import InvalidInput
from mist_core.models import HealthCheck

pytestmark = pytest.mark.docker

SOCKET = "unix:///var/run/docker.sock"
HTTPD = ["sh", "-c", "echo ok > /www/health; exec httpd -f -p 8080 -h /www"]


@pytest.fixture(scope="module")
def image() -> str:
    return busybox_image()


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"mist-h-{uuid.uuid4().hex[:8]}"
    yield prefix
    api = docker.APIClient(base_url=SOCKET, version="1.41")
    for row in api.containers(all=True, filters={"name": prefix}):
        api.remove_container(row["Id"], force=True)
    for row in api.images(name=f"{prefix}/*"):
        for tag in row.get("RepoTags") or []:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(tag, force=True)
    for network in api.networks(names=[f"{prefix}-net"]):
        api.remove_network(network["Id"])
    api.close()


@pytest.fixture
async def engine(prefix: str) -> AsyncIterator[Engine]:
    engine = Engine(SOCKET)
    await engine.ensure_network(f"{prefix}-net")
    yield engine
    engine.close()


async def run(
    engine: Engine, prefix: str, image: str, command: list[str], name: str = "app", restart: str = "no"
) -> RunningContainer:
    return await engine.run(
        ContainerSpec(
            name=f"{prefix}-{name}",
            image=image,
            env={},
            labels={LABEL_PROJECT: "shop", LABEL_APP: "web"},
            command=command,
            network=f"{prefix}-net",
            restart=restart,
        )
    )


def quick(type: str, **kwargs: object) -> HealthCheck:
    values: dict[str, object] = {"type": type, "interval": 0.2, "timeout": 1.0, "retries": 25}
    values.update(kwargs)
    return HealthCheck.model_validate(values)


async def test_http_check_passes_once_the_path_answers_200(engine: Engine, image: str, prefix: str) -> None:
    container = await run(engine, prefix, image, ["sh", "-c", "sleep 1; " + HTTPD[2]])
    lines: list[str] = []
    await wait_healthy(engine, container, quick("http", path="/health"), 8080, lines.append)
    assert lines[-1].endswith(": GET /health -> 200")
    assert lines[-1].startswith(f"health check {len(lines)}/{25 + len(backoff(0.2))}")


async def test_http_check_fails_on_a_404_path_with_the_last_answer(
    engine: Engine, image: str, prefix: str
) -> None:
    container = await run(engine, prefix, image, HTTPD)
    lines: list[str] = []

    async def on_line(line: str) -> None:  # an async sink works as well as a plain one
        lines.append(line)

    with pytest.raises(HealthCheckFailed) as caught:
        await wait_healthy(engine, container, quick("http", path="/missing", retries=3), 8080, on_line)
    # Three at the interval, after the quick probes of 0.05 and 0.1 s.
    assert lines[-1] == "health check 5/5: GET /missing -> 404"
    assert "after 5 attempts: GET /missing -> 404" in caught.value.message
    assert caught.value.code == "health_check_failed"


async def test_tcp_check_passes_when_the_port_accepts(engine: Engine, image: str, prefix: str) -> None:
    container = await run(engine, prefix, image, HTTPD)
    lines: list[str] = []
    await wait_healthy(engine, container, quick("tcp"), 8080, lines.append)
    assert lines[-1].endswith(f"TCP {container.ip}:8080 -> connected")


async def test_tcp_check_fails_when_nothing_listens(engine: Engine, image: str, prefix: str) -> None:
    container = await run(engine, prefix, image, HTTPD)
    lines: list[str] = []
    with pytest.raises(HealthCheckFailed, match="connection refused"):
        await wait_healthy(engine, container, quick("tcp", retries=2), 9090, lines.append)
    assert len(lines) == 2 + len(backoff(0.2))


async def test_container_exiting_during_the_check_fails_at_once_with_its_code_and_output(
    engine: Engine, image: str, prefix: str
) -> None:
    container = await run(
        engine, prefix, image, ["sh", "-c", "echo booting; echo 'fatal: DATABASE_URL is not set' >&2; exit 4"]
    )
    lines: list[str] = []
    with pytest.raises(HealthCheckFailed) as caught:
        await wait_healthy(
            engine, container, quick("http", retries=100, start_period=0.5), 8080, lines.append
        )
    message = caught.value.message
    assert "exited with code 4" in message
    assert "booting" in message and "fatal: DATABASE_URL is not set" in message
    assert not any(line.startswith("health check 100/") for line in lines)


async def test_container_restarting_after_a_crash_fails_the_check(
    engine: Engine, image: str, prefix: str
) -> None:
    container = await run(engine, prefix, image, ["sh", "-c", "echo crash; exit 2"], restart="always")
    with pytest.raises(HealthCheckFailed, match="crash"):
        await wait_healthy(engine, container, quick("tcp", retries=100), 8080, lambda line: None)


async def test_none_check_passes_a_container_that_stays_up(engine: Engine, image: str, prefix: str) -> None:
    container = await run(engine, prefix, image, ["sleep", "300"])
    lines: list[str] = []
    await wait_healthy(engine, container, quick("none"), None, lines.append)
    assert lines == ["health check: container is running"]


async def test_none_check_fails_a_container_that_exits(engine: Engine, image: str, prefix: str) -> None:
    container = await run(engine, prefix, image, ["sh", "-c", "sleep 0.3; exit 1"])
    with pytest.raises(HealthCheckFailed, match="exited with code 1"):
        await wait_healthy(engine, container, quick("none"), None, lambda line: None)


async def test_docker_check_without_an_image_healthcheck_fails_clearly(
    engine: Engine, image: str, prefix: str
) -> None:
    container = await run(engine, prefix, image, ["sleep", "300"])
    with pytest.raises(HealthCheckFailed, match="has no HEALTHCHECK"):
        await wait_healthy(engine, container, quick("docker"), None, lambda line: None)


async def test_docker_check_follows_the_image_healthcheck(engine: Engine, prefix: str) -> None:
    busybox_image()
    tag = f"{prefix}/checked:1"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Dockerfile").write_text(
            f"FROM {BUSYBOX}\n"
            f"LABEL {LABEL_MANAGED}=true\n"
            'HEALTHCHECK --interval=1s --timeout=1s --retries=3 CMD ["test", "-f", "/tmp/ready"]\n'
        )
        subprocess.run(
            [DOCKER, "build", "-q", "-t", tag, tmp],
            check=True,
            capture_output=True,
            env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin"},
        )
    ready = await run(engine, prefix, tag, ["sh", "-c", "sleep 1; touch /tmp/ready; sleep 300"], name="ready")
    never = await run(engine, prefix, tag, ["sleep", "300"], name="never")
    lines: list[str] = []
    await wait_healthy(engine, ready, quick("docker", retries=2), None, lines.append)
    assert lines[-1].endswith("docker HEALTHCHECK -> healthy")
    with pytest.raises(HealthCheckFailed, match="unhealthy"):
        await wait_healthy(engine, never, quick("docker", retries=2), None, lambda line: None)


async def test_http_check_without_a_port_is_invalid_input(engine: Engine, image: str, prefix: str) -> None:
    container = await run(engine, prefix, image, ["sleep", "300"])
    with pytest.raises(InvalidInput, match="needs the port"):
        await wait_healthy(engine, container, quick("http"), None, lambda line: None)


async def test_cancelling_stops_the_wait(engine: Engine, image: str, prefix: str) -> None:
    container = await run(engine, prefix, image, ["sleep", "300"])
    cancel = asyncio.Event()
    waiting = asyncio.create_task(
        wait_healthy(engine, container, quick("tcp", start_period=600), 8080, lambda line: None, cancel)
    )
    await asyncio.sleep(0.3)
    cancel.set()
    with pytest.raises(HealthCheckCancelled):
        await waiting


async def test_a_failed_first_probe_is_followed_at_once_not_after_the_interval(
    engine: Engine, image: str, prefix: str
) -> None:
    """With an interval of ten minutes, an app that starts listening just after the first probe still passes
    within a minute: the next probes come 50 ms, 100 ms... later."""
    name = f"{prefix}-app"
    container = await run(
        engine, prefix, image, ["sh", "-c", "while [ ! -f /tmp/go ]; do sleep 0.05; done; " + HTTPD[2]]
    )
    lines: list[str] = []

    async def on_line(line: str) -> None:
        lines.append(line)
        if len(lines) == 1:  # the first probe failed: now the app may start
            assert (await engine.exec(name, ["touch", "/tmp/go"])).exit_code == 0

    async with asyncio.timeout(60):
        await wait_healthy(
            engine, container, quick("http", path="/health", interval=600, retries=3), 8080, on_line
        )
    assert "connection refused" in lines[0]
    assert lines[-1].endswith("GET /health -> 200")


def test_quick_probes_double_up_to_the_interval() -> None:
    assert backoff(2.0) == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6]
    assert backoff(0.05) == []
