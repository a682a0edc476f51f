"""What a backup is taken of, and how: the containers that dump it and restore it.

A subject says which short-lived container writes its dump to stdout, which one reads a dump from stdin to
restore it, and how to check a restore. A project's volume is dumped by ``tar`` from a container that mounts
it read-only (no network), restored by ``tar`` into it, and checked by dumping the restored copy again and
comparing the two tar manifests. Another kind of subject (a database, with its dump and restore commands on
its network) plugs into the same service by giving the same three containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..engine import (
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    LABEL_VOLUME,
    Engine,
    project_volume,
)
from ..engine.oneoff import OneOff, OneOffSpec
from ..errors import Conflict, MistError, NotFound
from .archive import TarManifest

LABEL_BACKUP = "dev.mist.backup"  # the backup a one-off container or a scratch volume works on
MOUNT = "/data"
DUMP = ["tar", "-c", "-f", "-", "-C", MOUNT, "."]
EXTRACT = ["tar", "-x", "-f", "-", "-C", MOUNT]
# Restoring over a volume: what the backup does not hold must not stay. A fixed script: nothing in it comes
# from a user.
WIPE_AND_EXTRACT = [
    "sh",
    "-c",
    f"find {MOUNT} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} + && exec tar -x -f - -C {MOUNT}",
]

T = TypeVar("T")


@dataclass(frozen=True)
class ProjectRef:
    id: int
    name: str
    uid: str
    unscoped_volumes: bool = False


async def blocking(work: Callable[[], T], stop: Callable[[], None]) -> T:
    """Run blocking ``work`` in a thread; if the caller is cancelled, ``stop`` ends it, and it is waited for
    (so nothing it touches is used by two threads at once)."""
    future = asyncio.get_running_loop().run_in_executor(None, work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop()
        with contextlib.suppress(BaseException):
            await future
        raise


class VolumeSubject:
    def __init__(self, engine: Engine, image: str, instance_id: str) -> None:
        self.engine = engine
        self.image = image
        self.instance_id = instance_id

    async def docker_volume(self, project: ProjectRef, name: str) -> str:
        """The Docker volume behind volume ``name`` of the project; ``NotFound`` when it has none (yet)."""
        scoped = project_volume(project.uid, name)
        labels = await self.engine.volume_labels(scoped)
        if labels is not None and labels.get(LABEL_PROJECT_UID) == project.uid:
            return scoped
        if project.unscoped_volumes and labels is None:
            bare = await self.engine.volume_labels(name)
            if (
                bare is not None
                and bare.get(LABEL_MANAGED) == "true"
                and bare.get(LABEL_INSTANCE) == self.instance_id
                and bare.get(LABEL_PROJECT) == project.name
            ):
                return name
        raise NotFound(
            f"project {project.name!r} has no volume {name!r}: a volume exists once an app that mounts it has "
            "been deployed",
            field="name",
        )

    def _spec(self, volume: str, backup_id: int, command: list[str], *, ro: bool, stdin: bool) -> OneOffSpec:
        return OneOffSpec(
            name=f"mist-backup-{backup_id}-{uuid.uuid4().hex[:8]}",
            image=self.image,
            command=command,
            labels={LABEL_BACKUP: str(backup_id)},
            mounts=[(volume, MOUNT, ro)],
            stdin=stdin,
        )

    async def dump(self, volume: str, backup_id: int) -> OneOff:
        return await self.engine.one_off(self._spec(volume, backup_id, DUMP, ro=True, stdin=False))

    async def restore(self, volume: str, backup_id: int, *, wipe: bool) -> OneOff:
        command = WIPE_AND_EXTRACT if wipe else EXTRACT
        return await self.engine.one_off(self._spec(volume, backup_id, command, ro=False, stdin=True))

    async def manifest(self, volume: str, backup_id: int) -> dict[str, list[Any]]:
        """What ``volume`` holds, read the way a backup reads it."""
        one = await self.dump(volume, backup_id)
        try:
            manifest = TarManifest()
            await one.start()

            def pump() -> None:
                while chunk := one.read():
                    manifest.feed(chunk)

            await blocking(pump, one.close)
            code = await one.wait()
            if code != 0:
                raise MistError(f"reading the restored volume failed (status {code}): {one.stderr}")
            return manifest.entries
        finally:
            await one.remove()

    async def scratch_volume(self, backup_id: int) -> str:
        name = f"mist-verify-{backup_id}-{uuid.uuid4().hex[:8]}"
        await self.engine.ensure_volume(
            name, {LABEL_BACKUP: str(backup_id)}, owner={LABEL_BACKUP: str(backup_id)}
        )
        return name

    async def remove_scratch(self, name: str, backup_id: int) -> None:
        await self.engine.remove_volume(name, owner={LABEL_BACKUP: str(backup_id)})

    async def new_volume(self, project: ProjectRef, name: str) -> str:
        """A new, empty Docker volume for volume ``name`` of the project (refused when it exists)."""
        docker_name = project_volume(project.uid, name)
        if await self.engine.volume_labels(docker_name) is not None:
            raise Conflict(
                f"project {project.name!r} already has a volume {name!r}: restore into it (with --confirm "
                f"{name}), or name a new volume",
                field="target",
            )
        await self.engine.ensure_volume(
            docker_name,
            {LABEL_PROJECT: project.name, LABEL_PROJECT_UID: project.uid, LABEL_VOLUME: name},
            owner={LABEL_PROJECT_UID: project.uid},
        )
        return docker_name

    async def refuse_foreign_users(self, volume: str) -> None:
        """Mist stops the containers that use a volume it restores over; one it does not manage is refused."""
        for name in await self.engine.containers_using(volume):
            info = await self.engine.inspect(name) or {}
            if ((info.get("Config") or {}).get("Labels") or {}).get(LABEL_MANAGED) != "true":
                raise Conflict(
                    f"container {name} uses the volume and Mist does not manage it: stop or remove it first"
                )

    async def stop_users(self, volume: str) -> list[str]:
        """Stop the running containers that use ``volume``; their names, to start them again."""
        running = await self.engine.containers_using(volume, running=True)
        for name in running:
            await self.engine.stop(name)
        return running

    async def start_again(self, names: list[str]) -> str:
        """Start the containers again; '' or what could not be started."""
        failed = []
        for name in names:
            try:
                await self.engine.start(name)
            except MistError as error:
                failed.append(f"{name}: {error.message}")
        return "; ".join(failed)

    async def remove_leftovers(self) -> None:
        """One-off containers and scratch volumes a stopped daemon left behind (this instance's only)."""
        engine = self.engine
        for row in await engine._containers(all=True, labels=[*engine.scope, LABEL_BACKUP]):
            with contextlib.suppress(Exception):
                await engine.remove(str(row["Id"]))
        for name in await engine.volumes([LABEL_BACKUP]):
            labels = await engine.volume_labels(name) or {}
            with contextlib.suppress(MistError):
                await engine.remove_volume(name, owner={LABEL_BACKUP: labels.get(LABEL_BACKUP, "")})
