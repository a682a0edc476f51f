"""Fixtures shared by every test area: the Docker client, locally built images, git repositories and
unique names. Fixtures that belong to one area live in that area's conftest."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

# Test modules import the helpers beside this file (`from images import ...`, `from gitutil import ...`)
# whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent))

from gitutil import Files, init_repo  # noqa: E402
from images import all_standins, busybox_image  # noqa: E402

from mist_core import clock  # noqa: E402

DOCKER_SOCKET = "unix:///var/run/docker.sock"


@pytest.fixture(autouse=True)
def _system_clock() -> Iterator[None]:
    """Every test starts on the system's time, whatever an earlier test did with ``clock.advance``."""
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A docker-py client on the local engine; fails (not skips) the test when no engine answers."""
    try:
        client = docker.DockerClient(base_url=DOCKER_SOCKET)
        client.ping()
    except Exception as exc:  # the engine is absent, stopped or refuses us: all mean the same to a test
        pytest.fail(f"Docker Engine does not answer at {DOCKER_SOCKET} ({exc}); start Docker: make docker")
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox(docker_client: docker.DockerClient) -> str:
    """Tag of the scratch + static busybox image (also tagged ``busybox:1.36``)."""
    return busybox_image()


@pytest.fixture(scope="session")
def standin_images(docker_client: docker.DockerClient) -> dict[str, str]:
    """Tags of every stand-in image by short name: busybox, debian, python, node, golang (built if missing)."""
    return all_standins()


@pytest.fixture
def unique() -> str:
    """A short string, unique per test, to put in the names of containers, networks, apps..."""
    return "t" + uuid.uuid4().hex[:8]


@pytest.fixture
def git_repo(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_repo(files, *, branch="main") -> Path``, a real git repository with one commit.

    Add commits with ``gitutil.commit(repo, files, message) -> sha``.
    """
    count = 0

    def make_repo(files: Files, *, branch: str = "main") -> Path:
        nonlocal count
        count += 1
        return init_repo(tmp_path / f"repo{count}", files, branch=branch)

    return make_repo


@dataclass
class TestRun:
    """Labels to put on Docker resources a test creates, so they are removed at the end of the session."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    __test__ = False  # not a test class, whatever its name

    @property
    def label(self) -> str:
        return "dev.mist.test.run"

    @property
    def labels(self) -> dict[str, str]:
        return {"dev.mist.test": "1", self.label: self.id}

    @property
    def filter(self) -> dict[str, str]:
        return {"label": f"{self.label}={self.id}"}


@pytest.fixture(scope="session", autouse=True)
def mist_project_networks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each Mist project has its own Docker network, and Docker's default address pools hold about 30: when
    the session ends, remove the networks of every Mist instance it ran (their data directories, with the
    ``instance-id`` file, are under the session's temporary directory), whichever test left them."""
    yield
    instances = {path.read_text().strip() for path in tmp_path_factory.getbasetemp().rglob("instance-id")}
    if not instances:
        return
    client = docker.DockerClient(base_url=DOCKER_SOCKET)
    try:
        for instance in sorted(instances):
            for network in client.networks.list(filters={"label": f"dev.mist.instance={instance}"}):
                network.reload()
                for container in network.containers:
                    network.disconnect(container, force=True)
                network.remove()
    except docker.errors.DockerException:
        pass  # the engine is gone: nothing to clean up there
    finally:
        client.close()


@pytest.fixture(scope="session")
def mist_cleanup(docker_client: docker.DockerClient) -> Iterator[TestRun]:
    """Give resources ``labels=mist_cleanup.labels``; containers, networks, volumes and images carrying them
    are removed when the session ends, even if a test failed halfway."""
    run = TestRun()
    yield run
    for container in docker_client.containers.list(all=True, filters=run.filter):
        container.remove(force=True, v=True)
    for network in docker_client.networks.list(filters=run.filter):
        network.remove()
    for volume in docker_client.volumes.list(filters=run.filter):
        volume.remove(force=True)
    for image in docker_client.images.list(filters=run.filter):
        docker_client.images.remove(image.id, force=True)
