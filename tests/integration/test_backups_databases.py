"""Backups of managed databases on the real engine, with the postgres:15, mariadb:10.11 and redis:7 stand-ins:
an app linked to a database writes rows, the database is backed up, deleted with its volume and restored into
a new database, and the app, linked to that one, reads the same rows; a restore over the database itself
stops and starts its apps and tells them; a dump that fails is a failed backup; a corrupted backup fails its
verification."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from images import database_standins
from mistkit import log_text, wait_final

from mist_core.errors import Conflict, InvalidInput, NotFound
from mist_core.local import LocalMist
from mist_core.models import AppSpec, BackupDestinationSpec, DatabaseSpec

pytestmark = pytest.mark.xdist_group("databases")

# An app that only waits (its client tools come with its image): the test writes and reads through it, with
# the variables its link gave it.
APP_SCRIPT = "trap 'exit 0' TERM\nwhile :; do sleep 1 & wait $!; done\n"


@dataclass(frozen=True)
class Engine:
    image: str
    prefix: str
    write: str  # a shell command run in the app's container (it reads the link's variables)
    read: str
    expected: str  # what ``read`` prints


ENGINES = {
    "postgres": Engine(
        image="postgres:15",
        prefix="DATABASE",
        write='psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c "CREATE TABLE notes (n int, body text); '
        "INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 250) g; "
        "CREATE TABLE tags (t text); INSERT INTO tags VALUES ('a'), ('b')\"",
        read='psql "$DATABASE_URL" -At -c "SELECT count(*), sum(n), max(body) FROM notes; SELECT count(*) FROM tags"',
        expected="250|31375|note 99\n2",
    ),
    "mariadb": Engine(
        image="mariadb:10.11",
        prefix="DATABASE",
        write='MYSQL_PWD="$DATABASE_PASSWORD" mariadb -h "$DATABASE_HOST" -u "$DATABASE_USER" "$DATABASE_NAME" '
        "-e \"CREATE TABLE notes (n int, body text); INSERT INTO notes SELECT seq, CONCAT('note ', seq) "
        "FROM seq_1_to_250; CREATE TABLE tags (t text); INSERT INTO tags VALUES ('a'), ('b')\"",
        read='MYSQL_PWD="$DATABASE_PASSWORD" mariadb -h "$DATABASE_HOST" -u "$DATABASE_USER" "$DATABASE_NAME" '
        '-N -B -e "SELECT count(*), sum(n), max(body) FROM notes; SELECT count(*) FROM tags"',
        expected="250\t31375\tnote 99\n2",
    ),
    "redis": Engine(
        image="redis:7",
        prefix="REDIS",
        write='for i in $(seq 1 250); do echo "SET note:$i body-$i"; done | '
        'redis-cli --no-auth-warning -u "$REDIS_URL" >/dev/null && '
        'redis-cli --no-auth-warning -u "$REDIS_URL" save >/dev/null',
        read='redis-cli --no-auth-warning -u "$REDIS_URL" dbsize && '
        'redis-cli --no-auth-warning -u "$REDIS_URL" get note:99',
        expected="250\nbody-99",
    ),
}


@pytest.fixture(scope="module")
def db_images(docker_client: docker.DockerClient) -> dict[str, str]:
    return database_standins()


async def wait_done(mist: LocalMist, backup_id: int) -> None:
    await asyncio.wait_for(mist.core.backups.wait(backup_id), 300)


async def in_app(mist: LocalMist, app_ref: str, script: str) -> str:
    app = await mist.apps.get(app_ref)
    assert app.container_name is not None
    result = await mist.core.engine.exec(app.container_name, ["sh", "-c", script])
    assert result.exit_code == 0, result.output
    return result.output.strip()


async def linked_app(
    mist: LocalMist, project: str, git_repo: Callable[..., Path], engine: Engine, db: str
) -> str:
    """An app of ``engine``'s image, deployed and linked to database ``db`` (deployed again with the link)."""
    app_ref = f"{project}/web"
    if (await mist.apps.list(project=project)).total == 0:
        repo = git_repo(
            {
                "Dockerfile": f'FROM {engine.image}\nCOPY app.sh /app.sh\nCMD ["sh", "/app.sh"]\n',
                "app.sh": APP_SCRIPT,
            }
        )
        await mist.apps.create(app_ref, AppSpec(git_url=str(repo)))
        first = await wait_final(mist, (await mist.apps.deploy(app_ref)).id)
        assert first.state == "live", first.error
    prefix = None if engine.prefix == "DATABASE" else engine.prefix
    link = await mist.databases.link(f"{project}/{db}", "web", prefix=prefix)
    assert link.deployment_id is not None
    deployed = await wait_final(mist, link.deployment_id)
    assert deployed.state == "live", deployed.error
    return app_ref


@pytest.mark.parametrize("engine_name", ["postgres", "mariadb", "redis"])
async def test_a_database_backup_restores_into_a_new_database_that_the_relinked_app_reads(
    mist: LocalMist,
    project_name: str,
    tmp_path: Path,
    git_repo: Callable[..., Path],
    db_images: dict[str, str],
    docker_client: docker.DockerClient,
    engine_name: str,
) -> None:
    engine = ENGINES[engine_name]
    p = project_name
    await mist.projects.create(p)
    await mist.backups.add_destination(
        BackupDestinationSpec(name="here", kind="local", path=str(tmp_path / "b"))
    )
    original = await mist.databases.create(f"{p}/main", DatabaseSpec(engine=engine_name))  # type: ignore[arg-type]
    app_ref = await linked_app(mist, p, git_repo, engine, "main")
    await in_app(mist, app_ref, engine.write)
    assert await in_app(mist, app_ref, engine.read) == engine.expected

    backup = await mist.backups.run(p, "main", "here", kind="database")
    await wait_done(mist, backup.id)
    backup = await mist.backups.get(backup.id)
    assert (backup.state, backup.kind, backup.name) == ("success", "database", "main"), backup.error
    assert backup.size and backup.raw_size and backup.verified == "never"

    await mist.backups.verify(backup.id)
    await wait_done(mist, backup.id)
    backup = await mist.backups.get(backup.id)
    assert backup.verified == "passed", backup.verify_detail
    assert ("250 keys" if engine_name == "redis" else "2 tables, 252 rows") in (backup.verify_detail or "")
    # The throw-away database is gone, with its volume.
    assert not docker_client.containers.list(
        all=True,
        filters={"label": [f"dev.mist.backup={backup.id}", f"dev.mist.instance={mist.core.instance_id}"]},
    )
    assert not docker_client.volumes.list(
        filters={"label": [f"dev.mist.backup={backup.id}", f"dev.mist.instance={mist.core.instance_id}"]}
    )

    # The database and its data are lost.
    await mist.databases.unlink(f"{p}/main", "web")
    await mist.databases.delete(f"{p}/main")
    assert await mist.core.engine.volume_labels(original.volume) is None

    with pytest.raises(InvalidInput, match="--confirm main"):
        await mist.backups.restore(backup.id)
    with pytest.raises(NotFound, match="no database 'main' any more: restore into a new database"):
        await mist.backups.restore(backup.id, confirm="main")
    await mist.backups.restore(backup.id, "copy")
    await wait_done(mist, backup.id)
    backup = await mist.backups.get(backup.id)
    assert backup.restore_state == "success", backup.restore_detail
    copy = await mist.databases.get(f"{p}/copy")
    assert (copy.engine, copy.version, copy.status) == (original.engine, original.version, "running")

    await linked_app(mist, p, git_repo, engine, "copy")
    assert await in_app(mist, app_ref, engine.read) == engine.expected


@pytest.mark.parametrize("engine_name", ["postgres", "redis"])
async def test_restoring_over_a_database_stops_its_apps_brings_the_data_back_and_tells_them(
    mist: LocalMist,
    project_name: str,
    tmp_path: Path,
    git_repo: Callable[..., Path],
    db_images: dict[str, str],
    engine_name: str,
) -> None:
    engine = ENGINES[engine_name]
    p = project_name
    await mist.projects.create(p)
    await mist.backups.add_destination(
        BackupDestinationSpec(name="here", kind="local", path=str(tmp_path / "b"))
    )
    await mist.databases.create(f"{p}/main", DatabaseSpec(engine=engine_name))  # type: ignore[arg-type]
    app_ref = await linked_app(mist, p, git_repo, engine, "main")
    await in_app(mist, app_ref, engine.write)
    backup = await mist.backups.run(p, "main", "here", kind="database")
    await wait_done(mist, backup.id)
    assert (await mist.backups.get(backup.id)).state == "success"

    # Changed after the backup: the restore brings back what the backup held.
    if engine_name == "redis":
        await in_app(mist, app_ref, 'redis-cli --no-auth-warning -u "$REDIS_URL" flushall')
    else:
        await in_app(mist, app_ref, 'psql "$DATABASE_URL" -c "DELETE FROM notes WHERE n > 10; TRUNCATE tags"')
    assert await in_app(mist, app_ref, engine.read) != engine.expected

    with pytest.raises(InvalidInput, match="--confirm main"):
        await mist.backups.restore(backup.id, confirm="mian")
    await mist.backups.restore(backup.id, confirm="main")
    await wait_done(mist, backup.id)
    done = await mist.backups.get(backup.id)
    assert done.restore_state == "success", done.restore_detail
    assert "stopped and started again: web" in (done.restore_detail or "")
    assert (await mist.databases.get(f"{p}/main")).status == "running"
    app = await mist.apps.get(app_ref)
    assert app.container_name is not None
    assert ((await mist.core.engine.inspect(app.container_name)) or {})["State"]["Running"]
    assert await in_app(mist, app_ref, engine.read) == engine.expected
    assert app.live_deployment_id is not None
    told = await log_text(mist, app.live_deployment_id)
    assert f"database main restored from backup {backup.id}" in told


async def test_a_database_dump_that_fails_is_a_failed_backup_that_says_why(
    mist: LocalMist,
    project_name: str,
    tmp_path: Path,
    db_images: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = project_name
    await mist.projects.create(p)
    await mist.backups.add_destination(
        BackupDestinationSpec(name="here", kind="local", path=str(tmp_path / "b"))
    )
    await mist.databases.create(f"{p}/main", DatabaseSpec(engine="postgres"))
    from mist_core.services.databases import Command, Postgres

    async def failed_with(words: str) -> None:
        backup = await mist.backups.run(p, "main", "here", kind="database")
        await wait_done(mist, backup.id)
        backup = await mist.backups.get(backup.id)
        assert backup.state == "failed" and words in (backup.error or ""), backup.error
        assert backup.size is None and backup.checksum is None
        assert not list((tmp_path / "b").rglob("*.gz*"))  # nothing half-written is left

    # pg_dump of a database that is not there: it exits non-zero.
    real = Postgres.dump_command
    monkeypatch.setattr(
        Postgres,
        "dump_command",
        lambda self, creds, host="127.0.0.1": Command(
            [*real(self, creds, host).argv[:-3], "-d", "nosuchdb", "-Fc"], real(self, creds, host).env
        ),
    )
    await failed_with('database "nosuchdb" does not exist')
    # A command that exits 0 but prints something other than a dump.
    monkeypatch.setattr(
        Postgres, "dump_command", lambda self, creds, host="127.0.0.1": Command(["echo", "hi"])
    )
    await failed_with("not a PostgreSQL dump")
    # Nothing at all.
    monkeypatch.setattr(Postgres, "dump_command", lambda self, creds, host="127.0.0.1": Command(["true"]))
    await failed_with("the dump was empty")
    monkeypatch.undo()
    # The database is stopped: nothing answers.
    await mist.databases.stop(f"{p}/main")
    await failed_with("counting the rows of database main failed")
    listed = (await mist.backups.list(p, kind="database", name="main")).items
    assert [b.state for b in listed] == ["failed"] * 4


async def test_a_corrupted_database_backup_fails_verification_and_leaves_nothing_behind(
    mist: LocalMist,
    project_name: str,
    tmp_path: Path,
    db_images: dict[str, str],
    docker_client: docker.DockerClient,
) -> None:
    p = project_name
    await mist.projects.create(p)
    await mist.backups.add_destination(
        BackupDestinationSpec(name="here", kind="local", path=str(tmp_path / "b"))
    )
    db = await mist.databases.create(f"{p}/main", DatabaseSpec(engine="postgres"))
    url = await mist.databases.url(f"{p}/main")
    made = await mist.core.engine.exec(
        db.container_name, ["psql", url, "-c", "CREATE TABLE t AS SELECT g FROM generate_series(1, 5000) g"]
    )
    assert made.exit_code == 0, made.output
    backup = await mist.backups.run(p, "main", "here", kind="database")
    await wait_done(mist, backup.id)
    assert (await mist.backups.get(backup.id)).state == "success"
    (stored,) = (tmp_path / "b").rglob("*.pgdump.gz")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    await mist.backups.verify(backup.id)
    await wait_done(mist, backup.id)
    checked = await mist.backups.get(backup.id)
    assert checked.verified == "failed"
    assert "corrupted" in (checked.verify_detail or "") or "gzip" in (checked.verify_detail or ""), checked
    assert not docker_client.containers.list(
        all=True,
        filters={"label": [f"dev.mist.backup={backup.id}", f"dev.mist.instance={mist.core.instance_id}"]},
    )
    assert not docker_client.volumes.list(
        filters={"label": [f"dev.mist.backup={backup.id}", f"dev.mist.instance={mist.core.instance_id}"]}
    )
    # Restoring it over the database is refused before anything is touched: the data stays.
    await mist.backups.restore(backup.id, confirm="main")
    await wait_done(mist, backup.id)
    assert (await mist.backups.get(backup.id)).restore_state == "failed"
    count = await mist.core.engine.exec(
        db.container_name, ["psql", url, "-At", "-c", "SELECT count(*) FROM t"]
    )
    assert count.output.strip() == "5000"


async def test_wrong_database_backup_input_is_refused_with_what_to_do(
    mist: LocalMist, project_name: str, tmp_path: Path, db_images: dict[str, str]
) -> None:
    p = project_name
    await mist.projects.create(p)
    await mist.backups.add_destination(
        BackupDestinationSpec(name="here", kind="local", path=str(tmp_path / "b"))
    )
    with pytest.raises(NotFound, match="no database 'main'"):
        await mist.backups.run(p, "main", "here", kind="database")
    with pytest.raises(InvalidInput, match="not something Mist backs up"):
        await mist.backups.run(p, "main", "here", kind="table")
    await mist.databases.create(f"{p}/main", DatabaseSpec(engine="redis", persistence="aof"))
    with pytest.raises(NotFound, match="but a database: .*--database"):
        await mist.backups.run(p, "main", "here")
    backup = await mist.backups.run(p, "main", "here", kind="database")
    await wait_done(mist, backup.id)
    assert (await mist.backups.get(backup.id)).state == "success"
    with pytest.raises(Conflict, match="append-only file"):
        await mist.backups.restore(backup.id, confirm="main")
    # Into a new database: refused when the name is taken, made with snapshots (its data in dump.rdb) when
    # it is not.
    await mist.databases.create(f"{p}/other", DatabaseSpec(engine="redis"))
    with pytest.raises(Conflict, match="already has a database named 'other'"):
        await mist.backups.restore(backup.id, "other")
    with pytest.raises(InvalidInput, match="uppercase"):
        await mist.backups.restore(backup.id, "Copy")
    await mist.backups.restore(backup.id, "copy")
    await wait_done(mist, backup.id)
    assert (await mist.backups.get(backup.id)).restore_state == "success"
    assert (await mist.databases.get(f"{p}/copy")).persistence == "rdb"
    assert [d.name for d in (await mist.databases.list(project=p)).items] == ["copy", "main", "other"]


async def test_a_database_schedule_tick_backs_it_up_verifies_it_and_keeps_what_retention_says(
    mist: LocalMist, project_name: str, tmp_path: Path, db_images: dict[str, str]
) -> None:
    from mist_core import clock
    from mist_core.models import BackupRetention, BackupScheduleSpec

    p = project_name
    await mist.projects.create(p)
    await mist.backups.add_destination(
        BackupDestinationSpec(name="here", kind="local", path=str(tmp_path / "b"))
    )
    db = await mist.databases.create(f"{p}/cache", DatabaseSpec(engine="redis"))
    wrote = await mist.core.engine.exec(db.container_name, ["redis-cli", "set", "k", "v"])
    assert wrote.exit_code == 0, wrote.output
    first = await mist.backups.run(p, "cache", "here", kind="database")
    await wait_done(mist, first.id)
    spec = BackupScheduleSpec(
        name="cache", kind="database", destination="here", cron="0 3 * * *", retention=BackupRetention(last=1)
    )
    schedule = await mist.backups.schedule(p, spec)
    assert (schedule.kind, schedule.name) == ("database", "cache")
    service = mist.core.backups
    clock.advance(schedule.next_run_at - clock.now())
    (made,) = await service.tick()
    backup = await mist.backups.get(made)
    assert (backup.kind, backup.state, backup.verified) == ("database", "success", "passed"), backup
    assert "1 key," in (backup.verify_detail or "")
    assert [b.id for b in (await mist.backups.list(p)).items] == [made]  # keep last 1


async def test_a_corrupted_backup_restored_into_a_new_database_fails_and_removes_it(
    mist: LocalMist, project_name: str, tmp_path: Path, db_images: dict[str, str]
) -> None:
    p = project_name
    await mist.projects.create(p)
    await mist.backups.add_destination(
        BackupDestinationSpec(name="here", kind="local", path=str(tmp_path / "b"))
    )
    db = await mist.databases.create(f"{p}/main", DatabaseSpec(engine="postgres"))
    url = await mist.databases.url(f"{p}/main")
    made = await mist.core.engine.exec(
        db.container_name, ["psql", url, "-c", "CREATE TABLE t AS SELECT g FROM generate_series(1, 50000) g"]
    )
    assert made.exit_code == 0, made.output
    backup = await mist.backups.run(p, "main", "here", kind="database")
    await wait_done(mist, backup.id)
    (stored,) = (tmp_path / "b").rglob("*.pgdump.gz")
    data = bytearray(stored.read_bytes())
    data[len(data) * 3 // 4] ^= 0xFF
    stored.write_bytes(bytes(data))

    await mist.backups.restore(backup.id, "copy")
    await wait_done(mist, backup.id)
    done = await mist.backups.get(backup.id)
    assert done.restore_state == "failed", done
    assert "the new database copy was removed" in (done.restore_detail or "")
    assert [d.name for d in (await mist.databases.list(project=p)).items] == ["main"]
    assert await mist.core.engine.inspect(f"mist-db-{db.container_name.split('-')[2]}-copy") is None
