"""What a backup is taken of, and how: the containers that dump it and restore it.

A subject says which short-lived container writes its dump to stdout, which one reads a dump from stdin to
restore it, and how to check a restore. A project's volume is dumped by ``tar`` from a container that mounts
it read-only (no network), restored by ``tar`` into it, and checked by dumping the restored copy again and
comparing the two tar manifests. A project's managed database is dumped and restored by its engine's own
tools (``pg_dump -Fc``, ``mariadb-dump``, ``redis-cli --rdb``, ``mongodump``) in a container of its image on
the project's network, and checked by restoring into a throw-away database and counting the rows of every
table (Redis: its keys) against the counts taken when the backup was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets as secrets_module
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..engine import (
    LABEL_DATABASE,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    LABEL_VOLUME,
    ContainerSpec,
    Engine,
    project_network,
    project_volume,
)
from ..engine.oneoff import OneOff, OneOffSpec
from ..errors import Conflict, MistError, NotFound
from ..models import DatabaseSpec, Volume
from ..secrets import SecretBox
from ..services import Command, Credentials, DatabaseEngine, engine_spec
from ..services import runtime as db_runtime
from ..store import Store
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


# What each engine's dump is stored as, and the bytes a whole dump starts with (a dump that does not is not
# one: an error page, a refusal printed to stdout). MySQL's text dump has no fixed first bytes.
DUMP_SUFFIX = {
    "postgres": ".pgdump.gz",
    "mysql": ".sql.gz",
    "mariadb": ".sql.gz",
    "redis": ".rdb.gz",
    "mongo": ".archive.gz",
}
DUMP_MAGIC = {"postgres": b"PGDMP", "redis": b"REDIS", "mongo": b"\x6d\xe2\x99\x81"}
# A database restored over gets this long to stop before it is killed (as ``mist db stop`` gives it).
STOP_GRACE = 30.0


@dataclass(frozen=True)
class DatabaseTarget:
    """A database as a backup sees it: where it runs, what it runs, and how to log in to it."""

    id: int | None  # None for a throw-away one
    project: ProjectRef
    name: str
    engine: DatabaseEngine
    version: str
    spec: DatabaseSpec
    creds: Credentials
    container: str
    volume: str

    @property
    def image(self) -> str:
        return self.engine.image(self.version)

    @property
    def network(self) -> str:
        return project_network(self.project.uid)

    def describe(self) -> dict[str, Any]:
        """What a backup records of the database it was taken of (nothing secret): enough to make another
        one like it."""
        return {
            "engine": self.engine.name,
            "version": self.version,
            "user": self.creds.user,
            "database": self.creds.database,
            "spec": self.spec.model_dump(mode="json", exclude={"public_port"}),
        }


def parse_counts(output: str) -> dict[str, int]:
    """An engine check's output (``check_command``: one ``table|count`` or ``table<TAB>count`` a line, or a
    lone number, Redis' key count) as ``{table: count}``."""
    counts: dict[str, int] = {}
    for line in output.splitlines():
        line = line.strip()
        if not line:
            continue
        for separator in ("\t", "|"):
            if separator in line:
                table, _, number = line.rpartition(separator)
                break
        else:
            table, number = "(keys)", line
        try:
            counts[table] = int(number)
        except ValueError:
            raise MistError(f"the database's check printed {line[:200]!r}, not a count") from None
    return counts


class DatabaseSubject:
    """A project's managed database: dumped by the engine's own tool (``dump_command``) in a short-lived
    container of the database's image on the project's network, restored the same way (or, for an engine
    whose restore replaces files, into its volume while it is stopped), checked by the engine's row counts.
    The credentials go into those containers' environment only."""

    def __init__(self, store: Store, engine: Engine, secrets: SecretBox, instance_id: str) -> None:
        self.store = store
        self.engine = engine
        self.secrets = secrets
        self.instance_id = instance_id

    async def find(self, project: ProjectRef, name: str) -> DatabaseTarget:
        row = await self.store.one(
            "SELECT * FROM databases WHERE project_id = ? AND name = ?", (project.id, name)
        )
        if row is None:
            raise NotFound(
                f"project {project.name!r} has no database {name!r} (mist db list {project.name})",
                field="name",
            )
        admin = row["admin_password_sealed"]
        creds = Credentials(
            user=row["username"],
            password=self.secrets.open(row["password_sealed"], bound_to=f"database:{row['id']}:password"),
            database=row["database_name"],
            admin_password=(
                self.secrets.open(admin, bound_to=f"database:{row['id']}:admin-password") if admin else None
            ),
        )
        return DatabaseTarget(
            id=int(row["id"]),
            project=project,
            name=row["name"],
            engine=engine_spec(row["engine"]),
            version=row["version"],
            spec=DatabaseSpec.model_validate_json(row["spec"]),
            creds=creds,
            container=row["container_name"],
            volume=row["volume"],
        )

    def _over_network(
        self, db: DatabaseTarget, backup_id: int, command: Command, *, stdin: bool
    ) -> OneOffSpec:
        return OneOffSpec(
            name=f"mist-backup-{backup_id}-{uuid.uuid4().hex[:8]}",
            image=db.image,
            command=list(command.argv),
            labels={LABEL_BACKUP: str(backup_id)},
            network=db.network,
            env=dict(command.env),
            stdin=stdin,
        )

    async def dump(self, db: DatabaseTarget, backup_id: int) -> OneOff:
        command = db.engine.dump_command(db.creds, db.container)
        return await self.engine.one_off(self._over_network(db, backup_id, command, stdin=False))

    def restore_command(self, db: DatabaseTarget, source_database: str) -> Command:
        command = db.engine.restore_command(db.creds, db.container)
        if db.engine.name == "mongo" and source_database != db.creds.database:
            # A Mongo archive names its database: moved into this one's.
            argv = [*command.argv, f"--nsFrom={source_database}.*", f"--nsTo={db.creds.database}.*"]
            return Command(argv, command.env)
        return command

    async def restore(self, db: DatabaseTarget, backup_id: int, source_database: str) -> OneOff:
        """A container that reads a dump on its stdin into the database: over the network, or, for an engine
        that restores files (``restore_needs_stop``), into its volume, which nothing else may use then."""
        command = self.restore_command(db, source_database)
        spec = self._over_network(db, backup_id, command, stdin=True)
        if db.engine.restore_needs_stop:
            spec.network = "none"
            spec.env = {}
            spec.mounts = [(db.volume, db.engine.data_dir, False)]
        return await self.engine.one_off(spec)

    async def counts(self, db: DatabaseTarget, backup_id: int) -> dict[str, int]:
        """What the database holds, by the engine's check (rows of every table; Redis: its key count)."""
        command = db.engine.check_command(db.creds, db.container)
        one = await self.engine.one_off(self._over_network(db, backup_id, command, stdin=False))
        try:
            out = bytearray()
            await one.start()

            def pump() -> None:
                while chunk := one.read():
                    out.extend(chunk)
                    if len(out) > 16 << 20:
                        raise MistError("the database's check printed more than 16 MiB")

            await blocking(pump, one.close)
            code = await one.wait()
            if code != 0:
                raise MistError(
                    f"counting the rows of database {db.name} failed (status {code}): "
                    f"{one.stderr or 'it said nothing'}"
                )
            return parse_counts(out.decode(errors="replace"))
        finally:
            await one.remove()

    async def is_running(self, db: DatabaseTarget) -> bool:
        state = ((await self.engine.inspect(db.container)) or {}).get("State") or {}
        return bool(state.get("Running"))

    async def stop(self, db: DatabaseTarget) -> None:
        await self.engine.stop(db.container, grace=STOP_GRACE)

    async def start(self, db: DatabaseTarget, wait: float) -> None:
        """Start the database and wait for its health check; an error when it does not pass."""
        await self.engine.start(db.container)
        await self.healthy(db, wait)

    async def healthy(self, db: DatabaseTarget, wait: float) -> None:
        status = await db_runtime.wait_healthy(self.engine, db.container, wait)
        if status != "running":
            info = await self.engine.inspect(db.container)
            raise MistError(
                f"database {db.name} is {status} after the restore: {db_runtime.health_output(info) or 'no output'}"
            )

    async def scratch(self, backup_id: int, project: ProjectRef, recorded: dict[str, Any]) -> DatabaseTarget:
        """A throw-away database like the one of ``recorded`` (``DatabaseTarget.describe``), with its own
        volume and new passwords, on the project's network; not started yet (``start_scratch``)."""
        engine = engine_spec(str(recorded["engine"]))
        tag = f"{backup_id}-{uuid.uuid4().hex[:8]}"
        password = secrets_module.token_urlsafe(24)
        admin = secrets_module.token_urlsafe(24) if engine.needs_admin_password() else None
        creds = Credentials(str(recorded["user"]), password, str(recorded["database"]), admin)
        spec = DatabaseSpec.model_validate({**recorded.get("spec", {}), "engine": engine.name})
        db = DatabaseTarget(
            id=None,
            project=project,
            name=f"verify-{tag}",
            engine=engine,
            version=str(recorded["version"]),
            spec=spec.model_copy(update={"persistence": "none" if engine.name == "redis" else None}),
            creds=creds,
            container=f"mist-verify-{tag}",
            volume=f"mist-verify-{tag}",
        )
        await self.engine.ensure_volume(
            db.volume, {LABEL_BACKUP: str(backup_id)}, owner={LABEL_BACKUP: str(backup_id)}
        )
        return db

    async def start_scratch(self, db: DatabaseTarget, backup_id: int, wait: float) -> None:
        await self.engine.ensure_network(
            db.network,
            labels={LABEL_PROJECT: db.project.name, LABEL_PROJECT_UID: db.project.uid},
            owner={LABEL_PROJECT_UID: db.project.uid},
        )
        await self.engine.run(
            ContainerSpec(
                name=db.container,
                image=db.image,
                env=db.engine.container_env(db.creds),
                labels={LABEL_BACKUP: str(backup_id)},
                command=db.engine.command(db.creds, db.spec.persistence),
                restart="no",
                volumes=[Volume(name=db.volume, path=db.engine.data_dir)],
                network=db.network,
                healthcheck=db.engine.health_command(db.creds),
            )
        )
        await self.healthy(db, wait)

    async def remove_scratch(self, db: DatabaseTarget, backup_id: int) -> None:
        with contextlib.suppress(MistError):
            await self.engine.remove(db.container)
        await self.engine.remove_volume(db.volume, owner={LABEL_BACKUP: str(backup_id)})

    async def remove(self, db: DatabaseTarget) -> None:
        """Remove a database made for a restore that failed: its container, volume and row."""
        await self.engine.remove(db.container)
        await self.engine.remove_volume(
            db.volume, owner={LABEL_PROJECT_UID: db.project.uid, LABEL_DATABASE: db.name}
        )
        async with self.store.write() as w:
            await w.execute("DELETE FROM databases WHERE id = ?", (db.id,))

    async def linked_apps(self, db: DatabaseTarget) -> list[tuple[str, int, str]]:
        """The apps linked to the database that run now: (name, live deployment, container)."""
        rows = await self.store.all(
            "SELECT a.name, d.id AS deployment_id, d.container_name FROM database_links l "
            "JOIN apps a ON a.id = l.app_id JOIN deployments d ON d.id = a.live_deployment_id "
            "WHERE l.database_id = ? AND d.container_name IS NOT NULL ORDER BY a.name",
            (db.id,),
        )
        running = []
        for r in rows:
            state = ((await self.engine.inspect(r["container_name"])) or {}).get("State") or {}
            if state.get("Running"):
                running.append((str(r["name"]), int(r["deployment_id"]), str(r["container_name"])))
        return running


def compare_counts(
    recorded: dict[str, list[int]], found: dict[str, int], optional: Iterable[str] = (), *, shown: int = 5
) -> str:
    """'' when every table of the backup holds as many rows as it did when the backup was made (between the
    counts taken before and after the dump, when the database was written to meanwhile); else what differs.
    ``optional`` tables (made or dropped during the dump) may be there or not."""
    problems = []
    for table in sorted(recorded):
        low, high = recorded[table]
        if table not in found:
            problems.append(f"{table} is missing")
        elif not low <= found[table] <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            problems.append(f"{table} has {found[table]} rows, the backup {expected}")
    extra = sorted(found.keys() - recorded.keys() - set(optional))
    if extra:
        problems.append(f"not in the backup: {', '.join(extra[:shown])}")
    more = f" and {len(problems) - shown} more" if len(problems) > shown else ""
    return "; ".join(problems[:shown]) + more
