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


async def _backed_up(
    mist: LocalMist,
    project_name: str,
    tmp_path: Path,
    busybox: str,
    client: docker.DockerClient,
    **dest: object,
) -> tuple[ProjectRef, str, int]:
    await mist.projects.create(project_name)
    project = await project_ref(mist, project_name)
    volume = await make_volume(mist, project, "data")
    await asyncio.to_thread(fill, client, busybox, volume, FILES)
    await mist.backups.add_destination(
        BackupDestinationSpec(name="here", kind="local", path=str(tmp_path / "b"), **dest)  # type: ignore[arg-type]
    )
    backup = await mist.backups.run(project_name, "data", "here")
    await wait_done(mist, backup.id)
    assert (await mist.backups.get(backup.id)).state == "success"
    return project, volume, backup.id


async def test_a_corrupted_backup_fails_verification_and_says_why(
    mist: LocalMist, project_name: str, tmp_path: Path, busybox: str, client: docker.DockerClient
) -> None:
    _, _, backup_id = await _backed_up(mist, project_name, tmp_path, busybox, client)
    (stored,) = (tmp_path / "b").rglob("*.tar.gz")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    await mist.backups.verify(backup_id)
    await wait_done(mist, backup_id)
    backup = await mist.backups.get(backup_id)
    assert backup.verified == "failed"
    assert "corrupted" in (backup.verify_detail or "")
    assert not client.volumes.list(
        filters={"label": [f"dev.mist.backup={backup_id}", f"dev.mist.instance={mist.core.instance_id}"]}
    )  # scratch volume gone


async def test_an_encrypted_backup_is_unreadable_without_the_key_and_verifies_with_it(
    mist: LocalMist, project_name: str, tmp_path: Path, busybox: str, client: docker.DockerClient
) -> None:
    _, _, backup_id = await _backed_up(mist, project_name, tmp_path, busybox, client, encrypt=True)
    (stored,) = (tmp_path / "b").rglob("*.enc")
    assert b"hello" not in stored.read_bytes() and stored.read_bytes().startswith(b"MISTBK1\n")
    assert (await mist.backups.get(backup_id)).encrypted
    await mist.backups.verify(backup_id)
    await wait_done(mist, backup_id)
    backup = await mist.backups.get(backup_id)
    assert backup.verified == "passed", backup.verify_detail


async def test_a_dump_that_fails_is_a_failed_backup_with_the_reason(
    mist: LocalMist, project_name: str, tmp_path: Path, busybox: str, client: docker.DockerClient
) -> None:
    await mist.projects.create(project_name)
    project = await project_ref(mist, project_name)
    await make_volume(mist, project, "data")
    await mist.backups.add_destination(
        BackupDestinationSpec(name="here", kind="local", path=str(tmp_path / "b"))
    )
    # An image whose tar cannot read the volume: the stand-in busybox, told to dump a path that is not there.
    await mist.settings.set("backup_volume_image", busybox)
    from mist_core.backups import subjects

    original = subjects.DUMP
    subjects.DUMP = ["tar", "-c", "-f", "-", "-C", "/data", "no-such-file"]
    try:
        backup = await mist.backups.run(project_name, "data", "here")
        await wait_done(mist, backup.id)
    finally:
        subjects.DUMP = original
    backup = await mist.backups.get(backup.id)
    assert backup.state == "failed"
    assert "no-such-file" in (backup.error or "")
    assert not list((tmp_path / "b").rglob("*.tar.gz*"))  # nothing half-written is left


async def test_restoring_over_the_volume_stops_its_container_replaces_the_data_and_starts_it_again(
    mist: LocalMist, project_name: str, tmp_path: Path, busybox: str, client: docker.DockerClient
) -> None:
    _, volume, backup_id = await _backed_up(mist, project_name, tmp_path, busybox, client)
    await asyncio.to_thread(fill, client, busybox, volume, {"hello.txt": b"changed\n", "later.txt": b"new\n"})
    user = client.containers.run(
        busybox,
        ["sleep", "3600"],
        detach=True,
        volumes={volume: {"bind": "/data", "mode": "rw"}},
        labels={"dev.mist.managed": "true", "dev.mist.project": project_name},
    )
    try:
        from mist_core.errors import InvalidInput

        with pytest.raises(InvalidInput, match="confirm"):
            await mist.backups.restore(backup_id, confirm="wrong")
        await mist.backups.restore(backup_id, confirm="data")
        await wait_done(mist, backup_id)
        backup = await mist.backups.get(backup_id)
        assert backup.restore_state == "success", backup.restore_detail
        assert user.name in (backup.restore_detail or "")
        user.reload()
        assert user.status == "running"
        assert await asyncio.to_thread(read_all, client, busybox, volume) == FILES  # later.txt is gone
    finally:
        user.remove(force=True)


async def test_a_schedule_tick_runs_once_verifies_and_keeps_what_retention_says(
    mist: LocalMist, project_name: str, tmp_path: Path, busybox: str, client: docker.DockerClient
) -> None:
    from mist_core import clock
    from mist_core.models import BackupRetention, BackupScheduleSpec

    _, _, first = await _backed_up(mist, project_name, tmp_path, busybox, client)
    schedule = await mist.backups.schedule(
        project_name,
        BackupScheduleSpec(
            name="data", destination="here", cron="0 3 * * *", retention=BackupRetention(last=1)
        ),
    )
    service = mist.core.backups
    assert await service.tick() == []  # not due yet
    clock.advance(schedule.next_run_at - clock.now())
    made = await service.tick()
    assert len(made) == 1
    assert await service.tick() == []  # the same tick never runs twice
    backup = await mist.backups.get(made[0])
    assert backup.state == "success" and backup.verified == "passed" and backup.schedule_id == schedule.id
    ids = [b.id for b in (await mist.backups.list(project_name)).items]
    assert ids == [made[0]]  # keep last 1: the manual one before it was deleted
    assert first not in ids
    (after,) = await mist.backups.schedules(project_name)
    assert after.next_run_at > schedule.next_run_at and after.last_backup_id == made[0]
