"""The backup service: makes, verifies, restores and deletes backups, keeps destinations and schedules, and
runs the schedules.

A backup is a dump streamed out of a short-lived container (``subjects``), packed on the way (``archive``:
gzip, optional encryption, sha256) and written to a destination (``destinations``), one bounded chunk at a
time in a worker thread. A restore streams the other way into a container's stdin. A backup counts as proven
once a verification restored it into a throw-away volume and found there what the dump held (a database's:
into a throw-away database of the same engine and version, with the row counts of the database it was taken
of).

Runs, verifications and restores take as long as the data: they start here and go on in the background; the
backup's record says how each one is going and how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import validate
from ..engine import LABEL_INSTANCE, LABEL_MANAGED, LABEL_PROJECT, LABEL_PROJECT_UID, LABEL_VOLUME, Engine
from ..engine.oneoff import OneOff
from ..errors import Conflict, InvalidInput, MistError, NotFound
from ..models import (
    Backup,
    BackupDestination,
    BackupDestinationSpec,
    BackupRetention,
    BackupSchedule,
    BackupScheduleSpec,
)
from ..secrets import SecretBox
from ..store import Store, now, parse_ts, ts
from . import retention
from .archive import CorruptBackup, Packer, TarManifest, Unpacker, compare_manifests, decode_manifest
from .destinations import Destination, LocalDirectory, ObjectWriter, S3Bucket
from .keys import BackupKeys
from .subjects import (
    DUMP_MAGIC,
    DUMP_SUFFIX,
    LABEL_BACKUP,
    DatabaseSubject,
    DatabaseTarget,
    ProjectRef,
    VolumeSubject,
    blocking,
    compare_counts,
)

log = logging.getLogger("mist.backups")

SCHEDULE_POLL = 30.0  # how often due schedules are looked for (a new schedule wakes the loop at once)
LEASE = timedelta(minutes=5)  # a claimed schedule's lease, renewed while its backup runs
HEARTBEAT = 60.0

BACKUP_COLUMNS = (
    "b.id, p.name AS project, b.subject_kind, b.subject_name, d.name AS destination, b.state, b.started_at, "
    "b.finished_at, b.size, b.raw_size, b.checksum, b.key_id, b.exit_status, b.error, b.schedule_id, "
    "b.verified, b.verified_at, b.verify_detail, b.restore_state, b.restore_target, b.restored_at, "
    "b.restore_detail"
)
BACKUP_SELECT = (
    f"SELECT {BACKUP_COLUMNS} FROM backups b JOIN projects p ON p.id = b.project_id "
    "LEFT JOIN backup_destinations d ON d.id = b.destination_id"
)


def backup_from_row(row: Any) -> Backup:
    return Backup(
        id=row["id"],
        project=row["project"],
        kind=row["subject_kind"],
        name=row["subject_name"],
        destination=row["destination"],
        state=row["state"],
        started_at=_at(row["started_at"]),
        finished_at=parse_ts(row["finished_at"]),
        size=row["size"],
        raw_size=row["raw_size"],
        checksum=row["checksum"],
        encrypted=row["key_id"] is not None,
        exit_status=row["exit_status"],
        error=row["error"],
        schedule_id=row["schedule_id"],
        verified=row["verified"],
        verified_at=parse_ts(row["verified_at"]),
        verify_detail=row["verify_detail"],
        restore_state=row["restore_state"],
        restore_target=row["restore_target"],
        restored_at=parse_ts(row["restored_at"]),
        restore_detail=row["restore_detail"],
    )


def destination_from_row(row: Any) -> BackupDestination:
    config = json.loads(row["config"])
    return BackupDestination(
        name=row["name"],
        kind=row["kind"],
        path=config.get("path"),
        endpoint=config.get("endpoint"),
        bucket=config.get("bucket"),
        region=config.get("region"),
        prefix=config.get("prefix") or "",
        encrypt=bool(row["encrypt"]),
        has_credentials=row["credentials"] is not None,
        created_at=_at(row["created_at"]),
    )


def _at(value: str) -> datetime:
    moment = parse_ts(value)
    assert moment is not None
    return moment


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time of ``cron`` (read in ``timezone``) after ``after``, in UTC."""
    from croniter import croniter

    zone = ZoneInfo(timezone)
    nxt: datetime = croniter(cron, after.astimezone(zone)).get_next(datetime)
    return nxt.astimezone(after.tzinfo)


def _check_schedule(spec: BackupScheduleSpec) -> None:
    from croniter import croniter

    if not croniter.is_valid(spec.cron) or len(spec.cron.split()) != 5:
        raise InvalidInput(
            f"{spec.cron!r} is not a cron expression: write five fields, minute hour day month weekday "
            "(for example '0 3 * * *' for every day at 03:00)",
            field="cron",
        )
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{spec.timezone!r} is not a timezone: use a name such as UTC or Europe/Paris", field="timezone"
        ) from None
    for rule, value in spec.retention.model_dump().items():
        if value is not None and not 0 < value <= 100_000:
            raise InvalidInput(f"retention {rule} must be a whole number from 1 to 100000", field="retention")


class BackupService:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        secrets: SecretBox,
        *,
        key_path: Path,
        setting: Callable[[str], Awaitable[str]],
        instance_id: str,
        tell: Callable[[int, str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.secrets = secrets
        self.key_path = key_path
        self.setting = setting
        self.instance_id = instance_id
        # A line for a deployment's log: how an app linked to a restored database hears of it.
        self.tell = tell
        self.databases = DatabaseSubject(store, engine, secrets, instance_id)
        self.owner = uuid.uuid4().hex
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._busy: set[int] = set()  # backups being verified or restored

    # ------------------------------------------------------------------------------------------ destinations

    async def add_destination(self, spec: BackupDestinationSpec) -> BackupDestination:
        name = validate.name(spec.name, "destination name")
        config: dict[str, Any]
        credentials: str | None = None
        if spec.kind == "local":
            if not spec.path or not spec.path.startswith("/") or "\x00" in spec.path:
                raise InvalidInput("a local destination needs path: an absolute directory path", field="path")
            config = {"path": spec.path}
        else:
            if not spec.bucket or not validate_bucket(spec.bucket):
                raise InvalidInput(
                    "an S3 destination needs bucket: 3 to 63 lowercase letters, digits, dots and dashes",
                    field="bucket",
                )
            if not spec.access_key or not spec.secret_key:
                raise InvalidInput("an S3 destination needs access_key and secret_key", field="access_key")
            if spec.endpoint and not spec.endpoint.startswith(("http://", "https://")):
                raise InvalidInput(
                    f"{spec.endpoint!r} is not an endpoint URL: write http(s)://host[:port]", field="endpoint"
                )
            config = {
                "endpoint": spec.endpoint or None,
                "bucket": spec.bucket,
                "region": spec.region or "us-east-1",
                "prefix": spec.prefix.strip("/"),
            }
        destination = self._open(spec.kind, config, spec.access_key, spec.secret_key)
        await asyncio.to_thread(destination.check)
        if spec.encrypt:
            BackupKeys.load(self.key_path)  # made now, so its owner can copy it away before the first backup
        async with self.store.write() as w:
            if await w.one("SELECT 1 FROM backup_destinations WHERE name = ?", (name,)):
                raise Conflict(f"a backup destination named {name!r} exists already", field="name")
            new_id = await w.execute(
                "INSERT INTO backup_destinations (name, kind, config, encrypt, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, spec.kind, json.dumps(config), int(spec.encrypt), ts()),
            )
            if spec.kind == "s3":
                credentials = self.secrets.seal(
                    json.dumps({"access_key": spec.access_key, "secret_key": spec.secret_key}),
                    bound_to=f"backup-destination:{new_id}",
                )
                await w.execute(
                    "UPDATE backup_destinations SET credentials = ? WHERE id = ?", (credentials, new_id)
                )
            row = await w.one("SELECT * FROM backup_destinations WHERE id = ?", (new_id,))
        return destination_from_row(row)

    async def destinations(self) -> list[BackupDestination]:
        rows = await self.store.all("SELECT * FROM backup_destinations ORDER BY name")
        return [destination_from_row(r) for r in rows]

    async def remove_destination(self, name: str) -> None:
        async with self.store.write() as w:
            row = await w.one("SELECT id FROM backup_destinations WHERE name = ?", (name,))
            if row is None:
                raise NotFound(f"there is no backup destination {name!r}", field="name")
            count = len(await w.all("SELECT id FROM backups WHERE destination_id = ?", (row["id"],)))
            schedules = len(
                await w.all("SELECT id FROM backup_schedules WHERE destination_id = ?", (row["id"],))
            )
            if count or schedules:
                raise Conflict(
                    f"backup destination {name!r} still holds {count} backup(s) and {schedules} schedule(s) "
                    "use it: delete those first (mist backup delete, mist backup schedule remove)"
                )
            await w.execute("DELETE FROM backup_destinations WHERE id = ?", (row["id"],))

    def _open(
        self, kind: str, config: dict[str, Any], access_key: str | None, secret_key: str | None
    ) -> Destination:
        if kind == "local":
            return LocalDirectory(Path(config["path"]))
        return S3Bucket(
            endpoint=config.get("endpoint"),
            bucket=config["bucket"],
            region=config.get("region") or "us-east-1",
            prefix=config.get("prefix") or "",
            access_key=access_key or "",
            secret_key=secret_key or "",
        )

    async def _destination(self, destination_id: int | None) -> tuple[Any, Destination]:
        row = await self.store.one("SELECT * FROM backup_destinations WHERE id = ?", (destination_id,))
        if row is None:
            raise NotFound("the backup's destination was removed: its data cannot be reached")
        keys: dict[str, str] = {}
        if row["credentials"]:
            keys = json.loads(
                self.secrets.open(row["credentials"], bound_to=f"backup-destination:{row['id']}")
            )
        return row, self._open(
            row["kind"], json.loads(row["config"]), keys.get("access_key"), keys.get("secret_key")
        )

    async def destination_id(self, name: str) -> int:
        row = await self.store.one("SELECT id FROM backup_destinations WHERE name = ?", (name,))
        if row is None:
            raise NotFound(
                f"there is no backup destination {name!r}: add one with `mist backup destination add`",
                field="destination",
            )
        return int(row["id"])

    # ------------------------------------------------------------------------------------------ records

    async def get(self, backup_id: int) -> Backup:
        row = await self.store.one(BACKUP_SELECT + " WHERE b.id = ?", (backup_id,))
        if row is None:
            raise NotFound(f"there is no backup {backup_id}", field="backup")
        return backup_from_row(row)

    async def backups(
        self, project_id: int, *, kind: str | None, name: str | None, limit: int, offset: int
    ) -> tuple[list[Backup], int]:
        where, params = "b.project_id = ?", [str(project_id)]
        if kind:
            where, params = where + " AND b.subject_kind = ?", [*params, kind]
        if name:
            where, params = where + " AND b.subject_name = ?", [*params, name]
        total = await self.store.scalar(f"SELECT COUNT(*) FROM backups b WHERE {where}", params)
        rows = await self.store.all(
            f"{BACKUP_SELECT} WHERE {where} ORDER BY b.id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [backup_from_row(r) for r in rows], int(total or 0)

    async def _set(self, backup_id: int, **columns: Any) -> None:
        assignments = ", ".join(f"{column} = ?" for column in columns)
        async with self.store.write() as w:
            await w.execute(f"UPDATE backups SET {assignments} WHERE id = ?", (*columns.values(), backup_id))

    # ------------------------------------------------------------------------------------------ backing up

    async def start(
        self, project: ProjectRef, kind: str, name: str, destination: str, *, schedule_id: int | None = None
    ) -> int:
        """Check what can be checked at once (the subject, the destination), record the backup as running and
        start it; returns its id."""
        subject_id: int | None = None
        if kind == "database":
            db = await self.databases.find(project, name)
            subject_id, suffix = db.id, DUMP_SUFFIX[db.engine.name]
        else:
            await self._volume_subject(project, name)
            suffix = ".tar.gz"
        destination_id = await self.destination_id(destination)
        encrypt = bool(
            await self.store.scalar("SELECT encrypt FROM backup_destinations WHERE id = ?", (destination_id,))
        )
        started = now()
        async with self.store.write() as w:
            backup_id = await w.execute(
                "INSERT INTO backups (project_id, subject_kind, subject_id, subject_name, destination_id, "
                "schedule_id, object_key, state, started_at) VALUES (?, ?, ?, ?, ?, ?, '', 'running', ?)",
                (project.id, kind, subject_id, name, destination_id, schedule_id, ts(started)),
            )
            stamp = started.strftime("%Y%m%dT%H%M%SZ")
            key = f"mist-{self.instance_id[:8]}/{project.name}/{kind}-{name}/{stamp}-{backup_id}{suffix}"
            await w.execute(
                "UPDATE backups SET object_key = ? WHERE id = ?",
                (key + (".enc" if encrypt else ""), backup_id),
            )
        self._spawn(self._backup(backup_id, project, kind, name), f"mist-backup-{backup_id}")
        return backup_id

    async def _volume_subject(self, project: ProjectRef, name: str) -> VolumeSubject:
        """The volume subject, once the volume is known to exist (a database of that name is pointed at)."""
        subject = VolumeSubject(self.engine, await self.setting("backup_volume_image"), self.instance_id)
        try:
            await subject.docker_volume(project, name)
        except NotFound as error:
            if await self.store.one(
                "SELECT 1 FROM databases WHERE project_id = ? AND name = ?", (project.id, name)
            ):
                raise NotFound(
                    f"project {project.name!r} has no volume {name!r}, but a database: back it up as one "
                    f"(mist backup run {project.name}/{name} --database)",
                    field="name",
                ) from error
            raise
        return subject

    def _spawn(self, work: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait(self, backup_id: int) -> None:
        """Wait until nothing runs on the backup (its run, verification or restore)."""
        wanted = {f"mist-backup-{backup_id}", f"mist-verify-{backup_id}", f"mist-restore-{backup_id}"}
        for task in [t for t in self._tasks if t.get_name() in wanted]:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(task)

    async def _backup(self, backup_id: int, project: ProjectRef, kind: str, name: str) -> None:
        try:
            if kind == "database":
                await self._make_database(backup_id, project, name)
            else:
                await self._make_volume(backup_id, project, name)
        except asyncio.CancelledError:
            await asyncio.shield(
                self._set(backup_id, state="failed", finished_at=ts(), error="Mist stopped during the backup")
            )
            raise
        except Exception as error:  # noqa: BLE001 - every failure is the backup's outcome, recorded
            message = error.message if isinstance(error, MistError) else f"{type(error).__name__}: {error}"
            if not isinstance(error, MistError):
                log.exception("backup %s failed", backup_id)
            await self._set(backup_id, state="failed", finished_at=ts(), error=message)

    async def _make_volume(self, backup_id: int, project: ProjectRef, name: str) -> None:
        subject = await self._volume_subject(project, name)
        volume = await subject.docker_volume(project, name)
        manifest = TarManifest()

        async def whole() -> None:
            if not manifest.ended:
                raise MistError("the dump is not a whole tar archive (it ends early)")

        one = await subject.dump(volume, backup_id)
        stored = await self._store(backup_id, one, manifest.feed, whole)
        await self._set(backup_id, **stored, manifest=manifest.encode())

    async def _make_database(self, backup_id: int, project: ProjectRef, name: str) -> None:
        db = await self.databases.find(project, name)
        # Counted before and after the dump: a database written to meanwhile holds, restored, a count between
        # the two for each table.
        before = await self.databases.counts(db, backup_id)
        head = bytearray()
        magic = DUMP_MAGIC.get(db.engine.name, b"")

        def look(chunk: bytes) -> None:
            if len(head) < len(magic):
                head.extend(chunk[: len(magic) - len(head)])

        after: dict[str, int] = {}

        async def whole() -> None:
            if bytes(head) != magic:
                raise MistError(
                    f"the dump is not a {db.engine.title} dump (it starts with {bytes(head)!r}, not {magic!r})"
                )
            after.update(await self.databases.counts(db, backup_id))

        one = await self.databases.dump(db, backup_id)
        stored = await self._store(backup_id, one, look, whole)
        counts = {t: sorted((before[t], after[t])) for t in before.keys() & after.keys()}
        recorded = {
            "database": db.describe(),
            "counts": counts,
            "optional": sorted(before.keys() ^ after.keys()),
        }
        await self._set(
            backup_id, **stored, manifest=gzip.compress(json.dumps(recorded, sort_keys=True).encode(), 6)
        )

    async def _store(
        self,
        backup_id: int,
        one: OneOff,
        observe: Callable[[bytes], None],
        whole: Callable[[], Awaitable[None]],
    ) -> dict[str, Any]:
        """Stream the dump of ``one`` to the backup's destination (``observe`` sees each chunk as it passes;
        ``whole`` raises when the dump, ended, is not a whole one); the columns of the successful backup.
        Nothing is left at the destination of a dump that failed."""
        row = await self.store.one(
            "SELECT destination_id, object_key FROM backups WHERE id = ?", (backup_id,)
        )
        assert row is not None
        writer: ObjectWriter | None = None
        try:
            dest_row, destination = await self._destination(row["destination_id"])
            keys = BackupKeys.load(self.key_path) if dest_row["encrypt"] else None
            sink: ObjectWriter = await asyncio.to_thread(destination.writer, row["object_key"])
            writer = sink
            packer = Packer(sink.write, keys)
            await one.start()

            def pump() -> None:
                while chunk := one.read():
                    observe(chunk)
                    packer.feed(chunk)

            await blocking(pump, one.close)
            code = await one.wait()
            if code != 0:
                raise MistError(f"the dump exited with status {code}: {one.stderr or 'it said nothing'}")
            if packer.raw_size == 0:
                raise MistError("the dump was empty: nothing was backed up")
            await whole()
            size, checksum = await blocking(packer.finish, lambda: None)
            await blocking(sink.commit, lambda: None)
        except BaseException:
            if writer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(asyncio.to_thread(writer.abort))
            raise
        finally:
            await one.remove()
        return {
            "state": "success",
            "finished_at": ts(),
            "size": size,
            "raw_size": packer.raw_size,
            "checksum": checksum,
            "key_id": packer.key_id,
            "exit_status": code,
        }

    # ------------------------------------------------------------------------------------------ restoring

    async def _claim(self, backup_id: int, what: str) -> Any:
        row = await self.store.one(
            "SELECT b.*, p.name AS project, p.uid, p.unscoped_volumes FROM backups b "
            "JOIN projects p ON p.id = b.project_id WHERE b.id = ?",
            (backup_id,),
        )
        if row is None:
            raise NotFound(f"there is no backup {backup_id}", field="backup")
        if row["state"] != "success":
            raise Conflict(f"backup {backup_id} is {row['state']}: only a successful backup can be {what}")
        if backup_id in self._busy:
            raise Conflict(f"backup {backup_id} is being verified or restored: wait until that ends")
        self._busy.add(backup_id)
        return row

    def _project(self, row: Any) -> ProjectRef:
        return ProjectRef(row["project_id"], row["project"], row["uid"], bool(row["unscoped_volumes"]))

    def _stored(self, row: Any, destination: Destination) -> Iterator[bytes]:
        return destination.reader(row["object_key"])

    async def _stream_in(self, row: Any, destination: Destination, one: OneOff | None) -> None:
        """Read the stored backup, check it as it goes (tags, gzip, then the checksum) and feed it to ``one``
        (or only check it, without one). Raises ``CorruptBackup`` when the bytes are not the backup's."""
        keys = BackupKeys.load(self.key_path) if row["key_id"] else None
        unpacker = Unpacker(keys, encrypted=row["key_id"] is not None)

        def pump() -> str:
            for chunk in self._stored(row, destination):
                for data in unpacker.feed(chunk):
                    if one is not None:
                        one.write(data)
            return unpacker.finish()

        drain: asyncio.Future[None] | None = None
        if one is not None:
            await one.start()
            drain = asyncio.ensure_future(blocking(one.drain, one.close))
        try:
            try:
                checksum = await blocking(pump, one.close if one is not None else lambda: None)
            finally:
                if one is not None:
                    one.close_stdin()
            if checksum != row["checksum"]:
                raise CorruptBackup(
                    f"the backup is corrupted: its sha256 is {checksum[:16]}…, it was {row['checksum'][:16]}… "
                    "when written"
                )
        finally:
            if drain is not None:
                await drain

    async def start_verify(self, backup_id: int) -> None:
        row = await self._claim(backup_id, "verified")
        await self._set(backup_id, verified="running")
        self._spawn(self._verify(row), f"mist-verify-{backup_id}")

    async def _verify(self, row: Any) -> None:
        backup_id = int(row["id"])
        detail, passed = "", False
        try:
            if row["subject_kind"] == "database":
                detail = await self._check_database(row)
                passed = not detail.startswith("!")
                detail = detail.lstrip("!")
            else:
                detail = await self._check(row)
                passed = not detail
                if passed:
                    entries = len(decode_manifest(row["manifest"])) if row["manifest"] else 0
                    detail = (
                        f"restored into a throw-away volume: {entries} entries match the backup's manifest"
                    )
        except asyncio.CancelledError:
            detail = "Mist stopped during the verification"
            raise
        except Exception as error:  # noqa: BLE001 - every failure is the verification's outcome
            detail = error.message if isinstance(error, MistError) else f"{type(error).__name__}: {error}"
            if not isinstance(error, MistError):
                log.exception("verifying backup %s failed", backup_id)
        finally:
            self._busy.discard(backup_id)
            await asyncio.shield(
                self._set(
                    backup_id,
                    verified="passed" if passed else "failed",
                    verified_at=ts(),
                    verify_detail=detail,
                )
            )

    async def _check(self, row: Any) -> str:
        """Restore the backup into a throw-away volume and compare what it holds with the manifest; '' when
        they match, else what is wrong."""
        _, destination = await self._destination(row["destination_id"])
        subject = VolumeSubject(self.engine, await self.setting("backup_volume_image"), self.instance_id)
        scratch = await subject.scratch_volume(int(row["id"]))
        try:
            one = await subject.restore(scratch, int(row["id"]), wipe=False)
            try:
                await self._stream_in(row, destination, one)
                code = await one.wait()
                if code != 0:
                    return f"the restore exited with status {code}: {one.stderr or 'it said nothing'}"
            finally:
                await one.remove()
            found = await subject.manifest(scratch, int(row["id"]))
            recorded = decode_manifest(row["manifest"]) if row["manifest"] else {}
            difference = compare_manifests(recorded, found)
            return f"the restored files differ from the backup: {difference}" if difference else ""
        finally:
            await subject.remove_scratch(scratch, int(row["id"]))

    async def _check_database(self, row: Any) -> str:
        """Restore the backup into a throw-away database of the same engine and version and count its rows
        against the counts taken at backup time. What was found; a failure starts with '!'."""
        backup_id = int(row["id"])
        recorded = database_record(row)
        _, destination = await self._destination(row["destination_id"])
        wait = await self._health_wait()
        dbs = self.databases
        scratch = await dbs.scratch(backup_id, self._project(row), recorded["database"])
        try:
            source = str(recorded["database"]["database"])
            if scratch.engine.restore_needs_stop:
                # Its files are written before it first starts, and loaded then.
                one = await dbs.restore(scratch, backup_id, source)
                await self._restore_stream(row, destination, one)
                await dbs.start_scratch(scratch, backup_id, wait)
            else:
                await dbs.start_scratch(scratch, backup_id, wait)
                one = await dbs.restore(scratch, backup_id, source)
                await self._restore_stream(row, destination, one)
            found = await dbs.counts(scratch, backup_id)
            difference = compare_counts(recorded["counts"], found, recorded.get("optional", ()))
            if difference:
                return f"!the restored database differs from the backup: {difference}"
            what = scratch.engine.title + " " + scratch.version
            if scratch.engine.name == "redis":
                keys = _count(found.get("(keys)", 0), "key")
                return f"restored into a throw-away {what} database: {keys}, as at backup time"
            tables, rows = _count(len(found), "table"), _count(sum(found.values()), "row")
            return f"restored into a throw-away {what} database: {tables}, {rows}, as counted at backup time"
        finally:
            await dbs.remove_scratch(scratch, backup_id)

    async def _restore_stream(self, row: Any, destination: Destination, one: OneOff) -> None:
        """Feed the stored backup to the restoring container ``one``; an error when it does not take it."""
        try:
            await self._stream_in(row, destination, one)
            code = await one.wait()
            if code != 0:
                raise MistError(f"the restore exited with status {code}: {one.stderr or 'it said nothing'}")
        finally:
            await one.remove()

    async def _health_wait(self) -> float:
        return float(await self.setting("database_health_wait"))

    async def recorded_database(self, backup_id: int) -> dict[str, Any] | None:
        """What a database backup recorded of its database (engine, version, how it ran); None for a
        volume's backup. Only a successful backup can be restored."""
        row = await self.store.one("SELECT * FROM backups WHERE id = ?", (backup_id,))
        if row is None:
            raise NotFound(f"there is no backup {backup_id}", field="backup")
        if row["state"] != "success":
            raise Conflict(f"backup {backup_id} is {row['state']}: only a successful backup can be restored")
        if row["subject_kind"] != "database":
            return None
        return dict(database_record(row)["database"])

    async def start_restore(
        self, backup_id: int, target: str | None, confirm: str | None, *, made: bool = False
    ) -> None:
        """Start restoring: over the subject itself (``confirm`` names it) or into ``target``, a new volume,
        or a database made for it by the caller just before (``made``: removed again if the restore fails)."""
        row = await self._claim(backup_id, "restored")
        try:
            if row["subject_kind"] == "database":
                work = await self._plan_database_restore(row, target, confirm, made=made)
            else:
                work = await self._plan_volume_restore(row, target, confirm)
        except BaseException:
            self._busy.discard(backup_id)
            raise
        await self._set(backup_id, restore_state="running", restore_target=target or row["subject_name"],
                        restore_detail=None)  # fmt: skip
        self._spawn(work, f"mist-restore-{backup_id}")

    def _confirmed(self, row: Any, confirm: str | None, what: str) -> None:
        if confirm != row["subject_name"]:
            raise InvalidInput(
                f"restoring backup {row['id']} replaces everything in {what} {row['subject_name']!r}: "
                f"confirm with its name (--confirm {row['subject_name']})",
                field="confirm",
            )

    async def _plan_volume_restore(
        self, row: Any, target: str | None, confirm: str | None
    ) -> Awaitable[None]:
        project = self._project(row)
        subject = VolumeSubject(self.engine, await self.setting("backup_volume_image"), self.instance_id)
        if target is None or target == row["subject_name"]:
            self._confirmed(row, confirm, "volume")
            volume = await subject.docker_volume(project, row["subject_name"])
            await subject.refuse_foreign_users(volume)
            return self._restore(row, subject, volume, row["subject_name"], new=False)
        validate.volume(target, "/data")
        volume = await subject.new_volume(project, target)
        return self._restore(row, subject, volume, target, new=True)

    async def _plan_database_restore(
        self, row: Any, target: str | None, confirm: str | None, *, made: bool
    ) -> Awaitable[None]:
        project = self._project(row)
        recorded = database_record(row)["database"]
        over = target is None or target == row["subject_name"]
        if over:
            self._confirmed(row, confirm, "database")
        try:
            db = await self.databases.find(project, row["subject_name"] if over else str(target))
        except NotFound:
            if not over:
                raise
            raise NotFound(
                f"project {project.name!r} has no database {row['subject_name']!r} any more: restore into a new "
                "database (--into NAME)",
                field="confirm",
            ) from None
        if db.engine.name != recorded["engine"]:
            raise Conflict(
                f"backup {row['id']} is of a {recorded['engine']} database; {db.name} is {db.engine.name}: "
                "restore into a new database (--into NAME)",
                field="target",
            )
        if db.engine.restore_needs_stop and db.spec.persistence == "aof":
            raise Conflict(
                f"database {db.name} keeps its data in an append-only file, which a restore of a snapshot "
                "does not replace: restore into a new database (--into NAME)",
                field="target",
            )
        return self._restore_database(row, db, new=not over and made)

    async def _restore_database(self, row: Any, db: DatabaseTarget, *, new: bool) -> None:
        backup_id = int(row["id"])
        state, detail = "failed", ""
        dbs = self.databases
        stopped_apps: list[tuple[str, int, str]] = []
        stopped_db = False
        try:
            _, destination = await self._destination(row["destination_id"])
            wait = await self._health_wait()
            if not new:
                # Nothing is touched before the stored bytes are known to be the backup's (a new database
                # that a damaged backup half filled is removed instead).
                await self._stream_in(row, destination, None)
            # The apps that use the database are stopped meanwhile: they would read or write half a restore.
            for app in await dbs.linked_apps(db):
                await self.engine.stop(app[2], grace=float(await self.setting("stop_grace_period")))
                stopped_apps.append(app)
            source = str(database_record(row)["database"]["database"])
            if db.engine.restore_needs_stop:
                if await dbs.is_running(db):
                    await dbs.stop(db)
                stopped_db = True
                await self._restore_stream(row, destination, await dbs.restore(db, backup_id, source))
                stopped_db = False
                await dbs.start(db, wait)
            else:
                if not await dbs.is_running(db):
                    await dbs.start(db, wait)
                else:
                    await dbs.healthy(db, wait)
                await self._restore_stream(row, destination, await dbs.restore(db, backup_id, source))
            state = "success"
            detail = f"restored into database {db.name}"
            if stopped_apps:
                detail += f"; stopped and started again: {', '.join(a[0] for a in stopped_apps)}"
        except asyncio.CancelledError:
            detail = "Mist stopped during the restore"
            raise
        except Exception as error:  # noqa: BLE001 - every failure is the restore's outcome
            detail = error.message if isinstance(error, MistError) else f"{type(error).__name__}: {error}"
            if not isinstance(error, MistError):
                log.exception("restoring backup %s failed", backup_id)
        finally:
            await asyncio.shield(self._after_database_restore(row, db, state, detail, stopped_apps,
                                                              stopped_db=stopped_db, new=new))  # fmt: skip

    async def _after_database_restore(
        self,
        row: Any,
        db: DatabaseTarget,
        state: str,
        detail: str,
        apps: list[tuple[str, int, str]],
        *,
        stopped_db: bool,
        new: bool,
    ) -> None:
        backup_id = int(row["id"])
        problems = []
        if stopped_db:
            try:
                await self.databases.start(db, await self._health_wait())
            except MistError as error:
                problems.append(f"database {db.name}: {error.message}")
        if new and state != "success":
            try:
                await self.databases.remove(db)
                detail += f"; the new database {db.name} was removed"
            except Exception as error:  # noqa: BLE001 - said in the restore's outcome
                problems.append(f"removing the new database {db.name}: {error}")
        for name, deployment_id, container in apps:
            try:
                await self.engine.start(container)
            except MistError as error:
                problems.append(f"{name}: {error.message}")
            if self.tell is not None:
                outcome = "restored" if state == "success" else "not restored (the restore failed)"
                await self.tell(
                    deployment_id,
                    f"database {db.name} {outcome} from backup {backup_id}: the app was stopped meanwhile "
                    "and started again",
                )
        if problems:
            detail += f" (could not start again: {'; '.join(problems)})"
        self._busy.discard(backup_id)
        await self._set(backup_id, restore_state=state, restored_at=ts(), restore_detail=detail)

    async def _restore(self, row: Any, subject: VolumeSubject, volume: str, label: str, *, new: bool) -> None:
        backup_id = int(row["id"])
        state, detail = "failed", ""
        stopped: list[str] = []
        try:
            _, destination = await self._destination(row["destination_id"])
            if not new:
                # Nothing is touched before the stored bytes are known to be the backup's.
                await self._stream_in(row, destination, None)
                stopped = await subject.stop_users(volume)
            one = await subject.restore(volume, backup_id, wipe=not new)
            try:
                await self._stream_in(row, destination, one)
                code = await one.wait()
                if code != 0:
                    raise MistError(
                        f"the restore exited with status {code}: {one.stderr or 'it said nothing'}"
                    )
            finally:
                await one.remove()
            state = "success"
            detail = f"restored into volume {label}" + (
                f"; started again: {', '.join(stopped)}" if stopped else ""
            )
        except asyncio.CancelledError:
            detail = "Mist stopped during the restore"
            raise
        except Exception as error:  # noqa: BLE001 - every failure is the restore's outcome
            detail = error.message if isinstance(error, MistError) else f"{type(error).__name__}: {error}"
            if not isinstance(error, MistError):
                log.exception("restoring backup %s failed", backup_id)
            if new:
                with contextlib.suppress(Exception):
                    await self.engine.remove_volume(volume, owner={LABEL_PROJECT_UID: row["uid"]})
        finally:
            restarted = await asyncio.shield(subject.start_again(stopped))
            if restarted:
                detail += f" (could not start again: {restarted})"
            self._busy.discard(backup_id)
            await asyncio.shield(
                self._set(backup_id, restore_state=state, restored_at=ts(), restore_detail=detail)
            )

    # ------------------------------------------------------------------------------------------ deleting

    async def delete(self, backup_id: int) -> None:
        row = await self.store.one("SELECT * FROM backups WHERE id = ?", (backup_id,))
        if row is None:
            raise NotFound(f"there is no backup {backup_id}", field="backup")
        if row["state"] == "running" or backup_id in self._busy:
            raise Conflict(f"backup {backup_id} is in use (running, being verified or restored): wait for it")
        if row["object_key"] and row["destination_id"] is not None:
            with contextlib.suppress(NotFound):
                _, destination = await self._destination(row["destination_id"])
                await asyncio.to_thread(destination.delete, row["object_key"])
        async with self.store.write() as w:
            await w.execute(
                "UPDATE backup_schedules SET last_backup_id = NULL WHERE last_backup_id = ?", (backup_id,)
            )
            await w.execute("DELETE FROM backups WHERE id = ?", (backup_id,))

    # ------------------------------------------------------------------------------------------ schedules

    async def add_schedule(self, project: ProjectRef, spec: BackupScheduleSpec) -> BackupSchedule:
        if spec.kind == "database":
            await self.databases.find(project, spec.name)
        else:
            validate.volume(spec.name, "/data")
        _check_schedule(spec)
        destination_id = await self.destination_id(spec.destination)
        first = next_run(spec.cron, spec.timezone, now())
        async with self.store.write() as w:
            found = await w.one(
                "SELECT id FROM backup_schedules WHERE project_id = ? AND subject_kind = ? AND subject_name = ? "
                "AND destination_id = ?",
                (project.id, spec.kind, spec.name, destination_id),
            )
            values = (spec.cron, spec.timezone, int(spec.verify), spec.retention.model_dump_json(), ts(first))
            if found:
                schedule_id = int(found["id"])
                await w.execute(
                    "UPDATE backup_schedules SET cron = ?, timezone = ?, verify = ?, retention = ?, "
                    "next_run_at = ? WHERE id = ?",
                    (*values, schedule_id),
                )
            else:
                schedule_id = await w.execute(
                    "INSERT INTO backup_schedules (project_id, subject_kind, subject_name, destination_id, cron, "
                    "timezone, verify, retention, next_run_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (project.id, spec.kind, spec.name, destination_id, *values, ts()),
                )
        self._wake.set()
        return (await self.schedules(project.id, schedule_id))[0]

    async def schedules(self, project_id: int, schedule_id: int | None = None) -> list[BackupSchedule]:
        rows = await self.store.all(
            "SELECT s.*, p.name AS project, d.name AS destination FROM backup_schedules s "
            "JOIN projects p ON p.id = s.project_id JOIN backup_destinations d ON d.id = s.destination_id "
            "WHERE s.project_id = ? AND (? IS NULL OR s.id = ?) ORDER BY s.id",
            (project_id, schedule_id, schedule_id),
        )
        return [
            BackupSchedule(
                id=r["id"],
                project=r["project"],
                kind=r["subject_kind"],
                name=r["subject_name"],
                destination=r["destination"],
                cron=r["cron"],
                timezone=r["timezone"],
                verify=bool(r["verify"]),
                retention=BackupRetention.model_validate_json(r["retention"]),
                next_run_at=_at(r["next_run_at"]),
                last_run_at=parse_ts(r["last_run_at"]),
                last_backup_id=r["last_backup_id"],
                created_at=_at(r["created_at"]),
            )
            for r in rows
        ]

    async def remove_schedule(self, project_id: int, schedule_id: int) -> None:
        async with self.store.write() as w:
            changed = await w.execute(
                "DELETE FROM backup_schedules WHERE id = ? AND project_id = ?", (schedule_id, project_id)
            )
        if not changed:
            raise NotFound(f"there is no backup schedule {schedule_id} in this project", field="schedule")

    async def tick(self) -> list[int]:
        """Run every schedule that is due, once: each is claimed with a lease and moved to its next time in
        one transaction, so a restart (or a second look) never runs the same tick again. Returns the ids of
        the backups made."""
        moment = now()
        async with self.store.write() as w:
            rows = await w.all(
                "SELECT s.*, p.name AS project, p.uid, p.unscoped_volumes, d.name AS destination "
                "FROM backup_schedules s JOIN projects p ON p.id = s.project_id "
                "JOIN backup_destinations d ON d.id = s.destination_id "
                "WHERE s.next_run_at <= ? AND (s.lease_owner IS NULL OR s.lease_expires_at <= ?) "
                "ORDER BY s.next_run_at LIMIT 20",
                (ts(moment), ts(moment)),
            )
            for r in rows:
                await w.execute(
                    "UPDATE backup_schedules SET next_run_at = ?, lease_owner = ?, lease_expires_at = ?, "
                    "last_run_at = ? WHERE id = ?",
                    (
                        ts(next_run(r["cron"], r["timezone"], moment)),
                        self.owner,
                        ts(moment + LEASE),
                        ts(moment),
                        r["id"],
                    ),
                )
        made = []
        for r in rows:
            heartbeat = asyncio.ensure_future(self._keep_lease(int(r["id"])))
            try:
                made.append(await self._scheduled(r))
            except Exception as error:  # noqa: BLE001 - one schedule's failure does not stop the others
                log.warning(
                    "scheduled backup of %s/%s failed to start: %s", r["project"], r["subject_name"], error
                )
            finally:
                heartbeat.cancel()
                async with self.store.write() as w:
                    await w.execute(
                        "UPDATE backup_schedules SET lease_owner = NULL, lease_expires_at = NULL "
                        "WHERE id = ? AND lease_owner = ?",
                        (r["id"], self.owner),
                    )
        return made

    async def _keep_lease(self, schedule_id: int) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            async with self.store.write() as w:
                await w.execute(
                    "UPDATE backup_schedules SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?",
                    (ts(now() + LEASE), schedule_id, self.owner),
                )

    async def _scheduled(self, r: Any) -> int:
        project = ProjectRef(r["project_id"], r["project"], r["uid"], bool(r["unscoped_volumes"]))
        backup_id = await self.start(
            project, r["subject_kind"], r["subject_name"], r["destination"], schedule_id=r["id"]
        )
        async with self.store.write() as w:
            await w.execute(
                "UPDATE backup_schedules SET last_backup_id = ? WHERE id = ?", (backup_id, r["id"])
            )
        await self.wait(backup_id)
        state = await self.store.scalar("SELECT state FROM backups WHERE id = ?", (backup_id,))
        if state != "success":
            return backup_id
        if r["verify"]:
            with contextlib.suppress(MistError):
                await self.start_verify(backup_id)
                await self.wait(backup_id)
        await self.prune(r, keep=backup_id)
        return backup_id

    async def prune(self, schedule: Any, *, keep: int) -> list[int]:
        """Delete the schedule's successful backups that its retention rules no longer keep (never ``keep``,
        the one just made)."""
        rules = BackupRetention.model_validate_json(schedule["retention"])
        rows = await self.store.all(
            "SELECT id, started_at FROM backups WHERE project_id = ? AND subject_kind = ? AND subject_name = ? "
            "AND destination_id = ? AND state = 'success'",
            (
                schedule["project_id"],
                schedule["subject_kind"],
                schedule["subject_name"],
                schedule["destination_id"],
            ),
        )
        doomed = retention.to_prune(
            [(int(x["id"]), parse_ts(x["started_at"]) or now()) for x in rows],
            rules,
            now(),
            schedule["timezone"],
        )
        deleted = []
        for backup_id in doomed:
            if backup_id == keep:
                continue
            try:
                await self.delete(backup_id)
                deleted.append(backup_id)
            except MistError as error:
                log.warning("retention kept backup %s: %s", backup_id, error.message)
        return deleted

    async def run_schedules(self, poll: float = SCHEDULE_POLL) -> None:
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("running the backup schedules failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll)

    # ------------------------------------------------------------------------------------------ life cycle

    async def recover(self) -> None:
        """What a stopped daemon left running is failed (its containers and scratch volumes removed)."""
        async with self.store.write() as w:
            await w.execute(
                "UPDATE backups SET state = 'failed', finished_at = ?, error = 'Mist stopped during the backup' "
                "WHERE state = 'running'",
                (ts(),),
            )
            await w.execute(
                "UPDATE backups SET verified = 'failed', verified_at = ?, "
                "verify_detail = 'Mist stopped during the verification' WHERE verified = 'running'",
                (ts(),),
            )
            await w.execute(
                "UPDATE backups SET restore_state = 'failed', restored_at = ?, "
                "restore_detail = 'Mist stopped during the restore' WHERE restore_state = 'running'",
                (ts(),),
            )
        subject = VolumeSubject(self.engine, "", self.instance_id)
        with contextlib.suppress(MistError):
            await subject.remove_leftovers()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def database_record(row: Any) -> dict[str, Any]:
    """What a database backup recorded when it was made: the database (``DatabaseTarget.describe``) and the
    row counts of its tables."""
    if not row["manifest"]:
        raise MistError(f"backup {row['id']} has no record of its database: make a new backup")
    return dict(json.loads(gzip.decompress(row["manifest"])))


def validate_bucket(bucket: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket))


__all__ = [
    "LABEL_BACKUP",
    "LABEL_INSTANCE",
    "LABEL_MANAGED",
    "LABEL_PROJECT",
    "LABEL_VOLUME",
    "BackupService",
    "ProjectRef",
]
