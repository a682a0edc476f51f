"""Backups of a project's volumes and databases, their schedules, and the instance's backup destinations."""

from __future__ import annotations

import builtins

from .. import validate
from ..api import BackupsAPI
from ..backups.service import ProjectRef
from ..calls import Caller, audit, page, page_args
from ..errors import InvalidInput, NotFound
from ..models import (
    Backup,
    BackupDestination,
    BackupDestinationSpec,
    BackupSchedule,
    BackupScheduleSpec,
    DatabaseSpec,
    Page,
)
from .part import Part

KINDS = ("volume", "database")


class Backups(Part, BackupsAPI):
    @property
    def service(self):  # type: ignore[no-untyped-def]
        return self.core.backups

    async def _project(self, operation: str, project: str) -> tuple[Caller, ProjectRef]:
        caller = await self.m.allow(operation, project=project)
        row = await self.store.one(
            "SELECT id, name, uid, unscoped_volumes FROM projects WHERE name = ?", (project,)
        )
        if row is None:
            raise NotFound(f"there is no project {project!r}", field="project")
        return caller, ProjectRef(row["id"], row["name"], row["uid"], bool(row["unscoped_volumes"]))

    async def _allow(self, operation: str, backup_id: int) -> tuple[Caller, str]:
        """Check ``operation`` on the backup's project; one the caller cannot see is not found."""
        row = await self.store.one(
            "SELECT p.name FROM backups b JOIN projects p ON p.id = b.project_id WHERE b.id = ?", (backup_id,)
        )
        missing = NotFound(f"there is no backup {backup_id}", field="backup")
        if row is None:
            await self.m.caller()
            raise missing
        try:
            return await self.m.allow(operation, project=row["name"]), str(row["name"])
        except NotFound:
            raise missing from None

    @staticmethod
    def _kind(kind: str) -> str:
        if kind not in KINDS:
            raise InvalidInput(
                f"{kind!r} is not something Mist backs up: use {', '.join(KINDS)}", field="kind"
            )
        return kind

    async def list(
        self,
        project: str,
        *,
        kind: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Backup]:
        _, ref = await self._project("backups.list", project)
        limit, offset = page_args(limit, offset)
        items, total = await self.service.backups(
            ref.id, kind=self._kind(kind) if kind else None, name=name, limit=limit, offset=offset
        )
        return page(items, total, limit, offset)

    async def get(self, backup_id: int) -> Backup:
        await self._allow("backups.get", backup_id)
        return await self.service.get(backup_id)

    async def run(self, project: str, name: str, destination: str, kind: str = "volume") -> Backup:
        caller, ref = await self._project("backups.run", project)
        kind = self._kind(kind)
        if kind == "database":
            validate.name(name, "database name")
        else:
            validate.volume(name, "/data")
        backup_id = await self.service.start(ref, kind, name, destination)
        async with self.store.write() as w:
            await audit(
                w,
                caller,
                "backup.run",
                project=project,
                **{kind: name},
                destination=destination,
                backup=backup_id,
            )
        return await self.service.get(backup_id)

    async def verify(self, backup_id: int) -> Backup:
        caller, project = await self._allow("backups.verify", backup_id)
        await self.service.start_verify(backup_id)
        async with self.store.write() as w:
            await audit(w, caller, "backup.verify", project=project, backup=backup_id)
        return await self.service.get(backup_id)

    async def restore(self, backup_id: int, target: str | None = None, confirm: str | None = None) -> Backup:
        caller, project = await self._allow("backups.restore", backup_id)
        recorded = await self.service.recorded_database(backup_id)
        backup = await self.service.get(backup_id)
        made = False
        if recorded is not None and target is not None and target != backup.name:
            # A new database of the same engine and version, made (and allowed) as `mist db create` makes one;
            # removed again when the restore fails.
            spec = DatabaseSpec.model_validate(
                {**recorded.get("spec", {}), "engine": recorded["engine"], "version": recorded["version"]}
            )
            if spec.persistence == "aof":
                spec = spec.model_copy(update={"persistence": "rdb"})
            await self.m.databases.create(f"{project}/{target}", spec)
            made = True
        try:
            await self.service.start_restore(backup_id, target, confirm, made=made)
        except BaseException:
            if made:
                await self.m.databases.delete(f"{project}/{target}")
            raise
        async with self.store.write() as w:
            await audit(w, caller, "backup.restore", project=project, backup=backup_id, target=target)
        return await self.service.get(backup_id)

    async def delete(self, backup_id: int) -> None:
        caller, project = await self._allow("backups.delete", backup_id)
        await self.service.delete(backup_id)
        async with self.store.write() as w:
            await audit(w, caller, "backup.delete", project=project, backup=backup_id)

    async def schedules(self, project: str) -> builtins.list[BackupSchedule]:
        _, ref = await self._project("backups.schedules", project)
        return await self.service.schedules(ref.id)

    async def schedule(self, project: str, spec: BackupScheduleSpec) -> BackupSchedule:
        caller, ref = await self._project("backups.schedule", project)
        scheduled = await self.service.add_schedule(ref, spec)
        async with self.store.write() as w:
            await audit(
                w,
                caller,
                "backup.schedule",
                project=project,
                **{spec.kind: spec.name},
                cron=spec.cron,
                schedule=scheduled.id,
            )
        return scheduled

    async def unschedule(self, project: str, schedule_id: int) -> None:
        caller, ref = await self._project("backups.unschedule", project)
        await self.service.remove_schedule(ref.id, schedule_id)
        async with self.store.write() as w:
            await audit(w, caller, "backup.unschedule", project=project, schedule=schedule_id)

    async def destinations(self) -> builtins.list[BackupDestination]:
        await self.m.allow("backups.destinations")
        return await self.service.destinations()

    async def add_destination(self, spec: BackupDestinationSpec) -> BackupDestination:
        caller = await self.m.allow("backups.add_destination")
        added = await self.service.add_destination(spec)
        async with self.store.write() as w:
            await audit(w, caller, "backup.destination_add", destination=added.name, kind=added.kind)
        return added

    async def remove_destination(self, name: str) -> None:
        caller = await self.m.allow("backups.remove_destination")
        await self.service.remove_destination(name)
        async with self.store.write() as w:
            await audit(w, caller, "backup.destination_remove", destination=name)
