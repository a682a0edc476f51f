"""Backups of a project's volumes on the real Docker Engine: made, verified, restored, corrupted, scheduled."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import docker
import pytest

from mist_core.backups.service import ProjectRef
from mist_core.engine import LABEL_APP, LABEL_PROJECT, LABEL_PROJECT_UID, LABEL_VOLUME, project_volume
from mist_core.local import LocalMist
from mist_core.models import BackupDestinationSpec

pytestmark = pytest.mark.docker

FILES = {
    "hello.txt": b"hello\n",
    "nested/deep/data.bin": bytes(range(256)) * 4000,
    "empty": b"",
    "a name with spaces.txt": b"spaces\n",
    "x" * 120 + "/long-name-" + "y" * 80 + ".txt": b"long\n",
}


async def project_ref(mist: LocalMist, name: str) -> ProjectRef:
    row = await mist.core.store.one(
        "SELECT id, name, uid, unscoped_volumes FROM projects WHERE name = ?", (name,)
    )
    assert row is not None
    return ProjectRef(row["id"], row["name"], row["uid"], bool(row["unscoped_volumes"]))


async def make_volume(mist: LocalMist, project: ProjectRef, name: str) -> str:
    """The volume an app of the project mounting ``name`` gets at deploy time (same call, same labels)."""
    docker_name = project_volume(project.uid, name)
    await mist.core.engine.ensure_volume(
        docker_name,
        {LABEL_PROJECT: project.name, LABEL_PROJECT_UID: project.uid, LABEL_APP: "web", LABEL_VOLUME: name},
        owner={LABEL_PROJECT_UID: project.uid},
    )
    return docker_name


def fill(client: docker.DockerClient, busybox: str, volume: str, files: dict[str, bytes]) -> None:
    """Write ``files`` into the volume (through a container, as an app would)."""
    container = client.containers.create(busybox, ["true"], volumes={volume: {"bind": "/data", "mode": "rw"}})
    try:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path, data in files.items():
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = 0o640
                tar.addfile(info, io.BytesIO(data))
            link = tarfile.TarInfo("link-to-hello")
            link.type = tarfile.SYMTYPE
            link.linkname = "hello.txt"
            tar.addfile(link)
        container.put_archive("/data", buffer.getvalue())
    finally:
        container.remove(force=True)


def read_all(client: docker.DockerClient, busybox: str, volume: str) -> dict[str, bytes]:
    container = client.containers.create(busybox, ["true"], volumes={volume: {"bind": "/data", "mode": "ro"}})
    try:
        stream, _ = container.get_archive("/data/.")
        data = io.BytesIO(b"".join(stream))
    finally:
        container.remove(force=True)
    found = {}
    with tarfile.open(fileobj=data) as tar:
        for member in tar:
            if member.isfile():
                found[member.name.removeprefix("./").removeprefix("data/")] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return found


async def wait_done(mist: LocalMist, backup_id: int) -> None:
    await asyncio.wait_for(mist.core.backups.wait(backup_id), 300)


@pytest.fixture
def client() -> docker.DockerClient:
    c = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    yield c
    c.close()


async def test_a_volume_backup_restores_into_a_new_volume_with_the_same_files_and_verifies(
    mist: LocalMist, project_name: str, tmp_path: Path, busybox: str, client: docker.DockerClient
) -> None:
    await mist.projects.create(project_name)
    project = await project_ref(mist, project_name)
    volume = await make_volume(mist, project, "data")
    await asyncio.to_thread(fill, client, busybox, volume, FILES)
    service = mist.core.backups
    await service.add_destination(BackupDestinationSpec(name="here", kind="local", path=str(tmp_path / "b")))

    backup_id = await service.start(project, "volume", "data", "here")
    await wait_done(mist, backup_id)
    backup = await service.get(backup_id)
    assert backup.state == "success", backup.error
    assert backup.size and backup.raw_size and backup.checksum and backup.verified == "never"

    await service.start_verify(backup_id)
    await wait_done(mist, backup_id)
    backup = await service.get(backup_id)
    assert backup.verified == "passed", backup.verify_detail

    await service.start_restore(backup_id, "copy", None)
    await wait_done(mist, backup_id)
    backup = await service.get(backup_id)
    assert backup.restore_state == "success", backup.restore_detail
    restored = await asyncio.to_thread(read_all, client, busybox, project_volume(project.uid, "copy"))
    assert restored == FILES
