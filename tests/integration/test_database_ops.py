"""Managing a database after it exists, end to end on the real engine with the postgres:15, mariadb:10.11 and
redis:7 stand-ins: a client session in it, its users (made, used to log in, removed; hostile names refused),
its container made again with new settings or a minor release (the data kept, health-gated, rolled back when
the new container never gets healthy), and ``mist ps`` naming it."""

from __future__ import annotations

import asyncio
import socket

import docker
import pytest
from images import POSTGRES_BROKEN, database_standins, postgres_broken_image, postgres_minor_image

from mist_core.errors import Conflict, InvalidInput, MistError, NotFound
from mist_core.execs import ExecChannel
from mist_core.local import LocalMist
from mist_core.models import DatabaseChanges, DatabaseSpec

pytestmark = pytest.mark.xdist_group("databases")


@pytest.fixture(scope="module")
def db_images(docker_client: docker.DockerClient) -> dict[str, str]:
    return database_standins()


async def _session(channel: ExecChannel, stdin: bytes = b"") -> tuple[int, str]:
    """Feed ``stdin`` to a session, then read it to its end: its exit status and its output."""
    async with channel:
        if stdin:
            await channel.write(stdin)
        await channel.close_input()
        out = bytearray()
        while (item := await channel.read()) is not None:
            out += item[1]
        return await channel.exit_code(), out.decode(errors="replace")


QUIET = {"postgres": ["-At"], "mariadb": ["-N", "-B"]}


async def _sql(mist: LocalMist, db_ref: str, sql: str, engine: str = "postgres") -> str:
    """What the database's client prints for ``sql`` (values only)."""
    code, out = await _session(await mist.databases.shell(db_ref, QUIET[engine]), sql.encode())
    assert code == 0, out
    return out


# ---------------------------------------------------------------------------------------------- shell


CLIENT_ROUND_TRIP = {
    "postgres": (["-At"], "CREATE TABLE t (n int); INSERT INTO t VALUES (42); SELECT n FROM t;\n", "42"),
    "mariadb": (["-N", "-B"], "CREATE TABLE t (n int); INSERT INTO t VALUES (42); SELECT n FROM t;\n", "42"),
    "redis": ([], "SET n 42\nGET n\n", "42"),
}


@pytest.mark.parametrize("engine", ["postgres", "mariadb", "redis"])
async def test_the_shell_is_the_engines_client_logged_in_without_a_password_in_any_argument(
    mist: LocalMist, project_name: str, db_images: dict[str, str], engine: str
) -> None:
    await mist.projects.create(project_name)
    ref = f"{project_name}/data"
    db = await mist.databases.create(ref, DatabaseSpec(engine=engine))  # type: ignore[arg-type]
    args, script, answer = CLIENT_ROUND_TRIP[engine]
    code, out = await _session(await mist.databases.shell(ref, args), script.encode())
    assert code == 0, out
    assert answer in out.split()
    password = (await mist.databases.url(ref)).split(":")[2].split("@")[0]

    # With a TTY, as a person at a terminal gets it: the client's prompt, then what they type (a client may
    # flush what came before its prompt, as a terminal does).
    channel = await mist.databases.shell(ref, tty=True, height=30, width=100)
    prompt, quit_line = {
        "postgres": (b"data=# ", b"\\q\r"),
        "mariadb": (b"[data]> ", b"exit\r"),
        "redis": (b"6379> ", b"exit\r"),
    }[engine]
    async with channel:
        out_tty = bytearray()
        while prompt not in out_tty:
            item = await asyncio.wait_for(channel.read(), 60)
            assert item is not None, out_tty
            out_tty += item[1]
        await channel.write(quit_line)
        while (item := await asyncio.wait_for(channel.read(), 60)) is not None:
            out_tty += item[1]
        assert await channel.exit_code() == 0, out_tty

    # Docker knows every exec's command line: none holds the password.
    info = await asyncio.to_thread(docker.from_env().api.inspect_container, db.container_name)
    for exec_id in info.get("ExecIDs") or []:
        inspected = await asyncio.to_thread(docker.from_env().api.exec_inspect, exec_id)
        config = inspected["ProcessConfig"]
        assert password not in " ".join([config["entrypoint"], *config["arguments"]])
    entries = (await mist.audit.list(project=project_name, action="database.shell")).items
    assert [(e.detail["args"], e.detail["tty"]) for e in entries] == [([], True), (args, False)]
    assert password not in str([e.model_dump() for e in entries])


async def test_a_stopped_database_has_no_shell_and_an_argument_is_data(
    mist: LocalMist, project_name: str, db_images: dict[str, str]
) -> None:
    await mist.projects.create(project_name)
    ref = f"{project_name}/pg"
    await mist.databases.create(ref, DatabaseSpec(engine="postgres"))
    # A shell word in an argument reaches psql as one argument, never a shell.
    code, out = await _session(await mist.databases.shell(ref, ["-c", "SELECT 'x'; $(touch /tmp/owned)"]))
    assert code != 0 and "syntax error" in out
    code, out = await _session(await mist.databases.shell(ref, ["-At", "-c", "SELECT 7"]))
    assert code == 0 and out.strip() == "7"
    with pytest.raises(InvalidInput, match="NUL"):
        await mist.databases.shell(ref, ["-c", "a\x00b"])
    await mist.databases.stop(ref)
    with pytest.raises(Conflict, match=f"{ref} is stopped: start it first"):
        await mist.databases.shell(ref)


# ---------------------------------------------------------------------------------------------- users


LOGIN = {
    "postgres": lambda user, db, sql: (
        ["psql", "-h", "127.0.0.1", "-U", user, "-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        "PGPASSWORD",
    ),
    "mariadb": lambda user, db, sql: (
        ["mariadb", "-h", "127.0.0.1", "-u", user, db, "-N", "-B", "-e", sql],
        "MYSQL_PWD",
    ),
}


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
async def test_a_user_made_by_mist_logs_in_reads_the_apps_rows_and_goes_when_dropped(
    mist: LocalMist, project_name: str, db_images: dict[str, str], engine: str
) -> None:
    await mist.projects.create(project_name)
    ref = f"{project_name}/main"
    db = await mist.databases.create(ref, DatabaseSpec(engine=engine))  # type: ignore[arg-type]
    await _sql(mist, ref, "CREATE TABLE orders (n int); INSERT INTO orders VALUES (1), (2);\n", engine)
    assert [(u.name, u.kind) for u in await mist.databases.users(ref) if u.kind == "app"] == [("main", "app")]

    made = await mist.databases.create_user(ref, "reporter")
    assert made.generated and len(made.password) >= 32 and made.user == "reporter"
    given = 'it\'s a "quoted" \\ pass; DROP TABLE orders; --'
    other = await mist.databases.create_user(ref, "writer", password=given)
    assert not other.generated and other.password == given
    assert {"reporter", "writer"} <= {u.name for u in await mist.databases.users(ref)}

    for user, password in (("reporter", made.password), ("writer", given)):
        argv, variable = LOGIN[engine](user, db.database, "SELECT count(*) FROM orders")
        read = await mist.core.engine.exec(db.container_name, argv, env={variable: password})
        assert read.exit_code == 0 and read.output.strip() == "2", read.output
    # The rows of tables made later by the database's own user too.
    await _sql(mist, ref, "CREATE TABLE later (n int); INSERT INTO later VALUES (3);\n", engine)
    argv, variable = LOGIN[engine](
        "writer", db.database, "INSERT INTO later VALUES (4); SELECT count(*) FROM later"
    )
    wrote = await mist.core.engine.exec(db.container_name, argv, env={variable: given})
    assert wrote.exit_code == 0 and wrote.output.strip().endswith("2"), wrote.output

    with pytest.raises(Conflict, match="has a user named 'reporter' already"):
        await mist.databases.create_user(ref, "reporter")
    await mist.databases.drop_user(ref, "reporter")
    assert "reporter" not in {u.name for u in await mist.databases.users(ref)}
    argv, variable = LOGIN[engine]("reporter", db.database, "SELECT 1")
    refused = await mist.core.engine.exec(db.container_name, argv, env={variable: made.password})
    assert refused.exit_code != 0
    with pytest.raises(NotFound, match="has no user named 'reporter'"):
        await mist.databases.drop_user(ref, "reporter")
    assert (await _sql(mist, ref, "SELECT count(*) FROM orders;\n", engine)).split()[-1] == "2"

    entries = (await mist.audit.list(project=project_name, action="database.user.")).items
    assert sorted(e.action for e in entries) == [
        "database.user.create",
        "database.user.create",
        "database.user.drop",
    ]
    assert made.password not in str([e.model_dump() for e in entries])
    assert "quoted" not in str([e.model_dump() for e in entries])


async def test_user_names_and_passwords_that_are_not_plain_are_refused_before_anything_runs(
    mist: LocalMist, project_name: str, db_images: dict[str, str]
) -> None:
    await mist.projects.create(project_name)
    ref = f"{project_name}/pg"
    await mist.databases.create(ref, DatabaseSpec(engine="postgres"))
    before = {u.name for u in await mist.databases.users(ref)}
    hostile = [
        'x"; DROP TABLE orders; --',
        "x' OR '1'='1",
        "Robert",
        "a b",
        "x`y",
        "",
        "1abc",
        "é",
        "a" * 33,
    ]
    for name in hostile:
        with pytest.raises(InvalidInput, match="is not allowed: use lowercase letters"):
            await mist.databases.create_user(ref, name)
        with pytest.raises(InvalidInput):
            await mist.databases.drop_user(ref, name)
    for name, words in [
        ("pg", "the database's own user"),
        ("postgres", "keeps the user name"),
        ("pg_monitor", "keeps"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            await mist.databases.create_user(ref, name)
    with pytest.raises(InvalidInput, match="12 to 128 characters"):
        await mist.databases.create_user(ref, "short", password="short")
    with pytest.raises(InvalidInput, match="printable ASCII"):
        await mist.databases.create_user(ref, "tabbed", password="tab\there-and-long-enough")
    assert {u.name for u in await mist.databases.users(ref)} == before

    cache = f"{project_name}/cache"
    await mist.databases.create(cache, DatabaseSpec(engine="redis"))
    for call in (
        mist.databases.users(cache),
        mist.databases.create_user(cache, "reporter"),
        mist.databases.drop_user(cache, "reporter"),
    ):
        with pytest.raises(InvalidInput, match="Mist does not manage Redis ACL users"):
            await call


# ---------------------------------------------------------------------------------------------- update, upgrade


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_update_makes_the_container_again_with_the_data_and_rolls_back_when_it_cannot_start(
    mist: LocalMist, project_name: str, db_images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    await mist.projects.create(project_name)
    ref = f"{project_name}/pg"
    db = await mist.databases.create(ref, DatabaseSpec(engine="postgres"))
    await _sql(mist, ref, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (5);\n")
    first = docker_client.containers.get(db.container_name).id

    port = _free_port()
    updated = await mist.databases.update(
        ref, DatabaseChanges(memory="256m", cpus=0.5, restart="always", public_port=port)
    )
    assert (updated.status, updated.memory, updated.cpus, updated.restart, updated.public_port) == (
        "running",
        256 << 20,
        0.5,
        "always",
        port,
    )
    container = docker_client.containers.get(db.container_name)
    assert container.id != first
    host = container.attrs["HostConfig"]
    assert host["Memory"] == 256 << 20 and host["RestartPolicy"]["Name"] == "always"
    assert host["PortBindings"]["5432/tcp"][0]["HostPort"] == str(port)
    assert (await _sql(mist, ref, "SELECT n FROM kept;\n")).split()[-1] == "5"

    # A port something else holds: the new container cannot start, the previous one comes back.
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(Conflict, match=f"did not get healthy.*runs {db.image} again as before"):
            await mist.databases.update(ref, DatabaseChanges(public_port=busy))
    back = await mist.databases.get(ref)
    assert (back.status, back.public_port) == ("running", port)
    assert docker_client.containers.get(db.container_name).attrs["HostConfig"]["PortBindings"]["5432/tcp"][0][
        "HostPort"
    ] == str(port)

    unpublished = await mist.databases.update(ref, DatabaseChanges(public_port=None))
    assert unpublished.public_port is None
    assert not docker_client.containers.get(db.container_name).attrs["HostConfig"]["PortBindings"]
    with pytest.raises(InvalidInput, match="nothing to change"):
        await mist.databases.update(ref, DatabaseChanges())
    with pytest.raises(InvalidInput, match="privileged"):
        await mist.databases.update(ref, DatabaseChanges(public_port=80))
    assert (await _sql(mist, ref, "SELECT n FROM kept;\n")).split()[-1] == "5"
    actions = [
        e.action for e in (await mist.audit.list(project=project_name, action="database.update")).items
    ]
    assert actions == ["database.update", "database.update"]


async def test_a_minor_upgrade_keeps_the_data_a_broken_release_rolls_back_and_a_major_one_is_refused(
    mist: LocalMist, project_name: str, db_images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    minor, broken = await asyncio.gather(
        asyncio.to_thread(postgres_minor_image), asyncio.to_thread(postgres_broken_image)
    )
    await mist.projects.create(project_name)
    ref = f"{project_name}/pg"
    db = await mist.databases.create(ref, DatabaseSpec(engine="postgres"))
    await _sql(mist, ref, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7);\n")

    with pytest.raises(InvalidInput, match=r"15 to 16 is a major upgrade.*--version 16.*dump"):
        await mist.databases.upgrade(ref, "16")
    with pytest.raises(InvalidInput, match="no version line"):
        await mist.databases.upgrade(ref, "12.4")
    with pytest.raises(InvalidInput, match="is not a PostgreSQL version"):
        await mist.databases.upgrade(ref, "15; rm -rf /")
    with pytest.raises(InvalidInput, match="runs PostgreSQL 15 already"):
        await mist.databases.upgrade(ref, "15")
    # A release the engine does not have and no registry serves: nothing changes.
    with pytest.raises(MistError, match="postgres:15.97"):
        await mist.databases.upgrade(ref, "15.97")
    assert (await mist.databases.get(ref)).version == "15"

    with pytest.raises(
        Conflict, match=rf"did not get healthy with {POSTGRES_BROKEN}.*runs postgres:15 again"
    ):
        await mist.databases.upgrade(ref, "15.98")
    back = await mist.databases.get(ref)
    assert (back.version, back.image, back.status) == ("15", "postgres:15", "running")
    assert docker_client.containers.get(db.container_name).attrs["Config"]["Image"] == "postgres:15"
    assert broken == POSTGRES_BROKEN

    upgraded = await mist.databases.upgrade(ref, "15.99")
    assert (upgraded.version, upgraded.image, upgraded.status) == ("15.99", minor, "running")
    container = docker_client.containers.get(db.container_name)
    assert container.attrs["Image"] == docker_client.images.get(minor).id
    assert (await _sql(mist, ref, "SELECT n FROM kept;\n")).split()[-1] == "7"
    # The URL and the host stay: linked apps keep reaching it.
    assert (await mist.databases.get(ref)).host == db.host
    entries = (await mist.audit.list(project=project_name, action="database.upgrade")).items
    assert [(e.detail["previous"], e.detail["version"]) for e in entries] == [("15", "15.99")]


async def test_ps_names_the_database_a_container_runs(
    mist: LocalMist, project_name: str, db_images: dict[str, str]
) -> None:
    await mist.projects.create(project_name)
    db = await mist.databases.create(f"{project_name}/cache", DatabaseSpec(engine="redis"))
    found = [c for c in await mist.containers.list() if c.name == db.container_name]
    assert [(c.project, c.app, c.database) for c in found] == [(project_name, None, "cache")]
