"""Backups to S3-compatible storage: a real S3 server (moto's server mode) on 127.0.0.1, a backup of over
100 MB uploaded in parts, then verified by reading it back."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import docker
import pytest
from moto.server import ThreadedMotoServer

from mist_core.backups import destinations
from mist_core.local import LocalMist
from mist_core.models import BackupDestinationSpec

from .test_backups import make_volume, project_ref, wait_done

pytestmark = pytest.mark.docker

KEYS = {"access_key": "AKIAMISTTEST", "secret_key": "mist-test-secret-key-0123456789"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEYS["access_key"],
        aws_secret_access_key=KEYS["secret_key"],
    ).create_bucket(Bucket="mist-backups")
    try:
        yield endpoint
    finally:
        server.stop()


async def test_a_backup_over_100_mb_goes_to_s3_in_parts_and_verifies(
    mist: LocalMist, project_name: str, s3: str, busybox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts: list[int] = []
    original = destinations.S3Writer._send

    def counting(self: destinations.S3Writer, part: bytes) -> None:
        parts.append(len(part))
        original(self, part)

    monkeypatch.setattr(destinations.S3Writer, "_send", counting)
    await mist.projects.create(project_name)
    project = await project_ref(mist, project_name)
    volume = await make_volume(mist, project, "data")
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        # Random bytes do not compress: what is stored is as big as the volume.
        client.containers.run(
            busybox,
            ["dd", "if=/dev/urandom", "of=/data/big", "bs=1048576", "count=110"],
            volumes={volume: {"bind": "/data", "mode": "rw"}},
            remove=True,
        )
    finally:
        client.close()
    added = await mist.backups.add_destination(
        BackupDestinationSpec(
            name="bucket", kind="s3", endpoint=s3, bucket="mist-backups", prefix="nightly", **KEYS
        )
    )
    assert added.has_credentials and "secret" not in added.model_dump_json().lower().replace(
        "has_credentials", ""
    )
    backup = await mist.backups.run(project_name, "data", "bucket")
    await wait_done(mist, backup.id)
    backup = await mist.backups.get(backup.id)
    assert backup.state == "success", backup.error
    assert backup.size is not None and backup.size > 100 * 1024 * 1024
    assert len(parts) >= 13 and max(parts) <= destinations.PART_SIZE + (1 << 20)

    await mist.backups.verify(backup.id)
    await wait_done(mist, backup.id)
    backup = await mist.backups.get(backup.id)
    assert backup.verified == "passed", backup.verify_detail

    await mist.backups.delete(backup.id)
    listed = boto3.client(
        "s3",
        endpoint_url=s3,
        region_name="us-east-1",
        aws_access_key_id=KEYS["access_key"],
        aws_secret_access_key=KEYS["secret_key"],
    ).list_objects_v2(Bucket="mist-backups")
    assert listed.get("KeyCount", 0) == 0


async def test_an_s3_destination_that_cannot_be_reached_is_refused_saying_what_to_check(
    mist: LocalMist, s3: str, tmp_path: Path
) -> None:
    from mist_core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="cannot reach bucket 'no-such-bucket'"):
        await mist.backups.add_destination(
            BackupDestinationSpec(name="bucket", kind="s3", endpoint=s3, bucket="no-such-bucket", **KEYS)
        )
    assert await mist.backups.destinations() == []
