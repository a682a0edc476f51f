"""Managed databases end to end on the real engine, with the postgres:15, mariadb:10.11 and redis:7 stand-ins:
create, link to a deployed app (the app's container gets the variables, and they connect), stop and start with
the data kept, delete refused while linked, unlink, delete with the volume."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from images import database_standins
from mistkit import busybox_site, busybox_spec, wait_final

from mist_core.errors import Conflict, InvalidInput, NotFound
from mist_core.local import LocalMist
from mist_core.models import DatabaseSpec

pytestmark = pytest.mark.xdist_group("databases")


@pytest.fixture(scope="module")
def db_images(docker_client: docker.DockerClient) -> dict[str, str]:
    return database_standins()


@dataclass(frozen=True)
class Client:
    """How a test writes a value into a database and reads it back, from the variables a linked app has."""

    write: Callable[[dict[str, str]], list[str]]
    read: Callable[[dict[str, str]], list[str]]
    prefix: str


CLIENTS = {
    "postgres": Client(
        write=lambda v: ["psql", v["DATABASE_URL"], "-v", "ON_ERROR_STOP=1", "-c",
                         "CREATE TABLE t (n int); INSERT INTO t VALUES (42)"],
        read=lambda v: ["psql", v["DATABASE_URL"], "-At", "-c", "SELECT n FROM t"],
        prefix="DATABASE",
    ),
    "mariadb": Client(
        write=lambda v: ["mariadb", "-h", v["DATABASE_HOST"], "-P", v["DATABASE_PORT"], "-u", v["DATABASE_USER"],
                         f"-p{v['DATABASE_PASSWORD']}", v["DATABASE_NAME"], "-e",
                         "CREATE TABLE t (n int); INSERT INTO t VALUES (42)"],
        read=lambda v: ["mariadb", "-h", v["DATABASE_HOST"], "-u", v["DATABASE_USER"],
                        f"-p{v['DATABASE_PASSWORD']}", v["DATABASE_NAME"], "-N", "-B", "-e", "SELECT n FROM t"],
        prefix="DATABASE",
    ),
    "redis": Client(
        write=lambda v: ["redis-cli", "--no-auth-warning", "-u", v["CACHE_URL"], "set", "n", "42"],
        read=lambda v: ["redis-cli", "--no-auth-warning", "-u", v["CACHE_URL"], "get", "n"],
        prefix="CACHE",
    ),
}  # fmt: skip


async def _env_of(mist: LocalMist, container: str) -> dict[str, str]:
    result = await mist.core.engine.exec(container, ["env"])
    assert result.exit_code == 0, result.output
    return dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)


async def _deploy(mist: LocalMist, app_ref: str, deployment_id: int | None) -> None:
    assert deployment_id is not None
    final = await wait_final(mist, deployment_id)
    assert final.state == "live", final.error


@pytest.mark.parametrize("engine", ["postgres", "mariadb", "redis"])
async def test_a_database_linked_to_an_app_keeps_its_data_and_goes_only_once_unlinked(
    mist: LocalMist,
    project_name: str,
    git_repo: Callable[..., Path],
    db_images: dict[str, str],
    engine: str,
) -> None:
    client = CLIENTS[engine]
    await mist.projects.create(project_name)
    db_ref, app_ref = f"{project_name}/data", f"{project_name}/web"

    db = await mist.databases.create(db_ref, DatabaseSpec(engine=engine))  # type: ignore[arg-type]
    assert db.status == "running"
    assert db.image == db_images[engine]
    assert (await mist.databases.list(project=project_name)).items[0].status == "running"

    await mist.apps.create(app_ref, busybox_spec(git_repo(busybox_site("hello"))))
    await _deploy(mist, app_ref, (await mist.apps.deploy(app_ref)).id)

    link = await mist.databases.link(
        db_ref, "web", prefix=None if client.prefix == "DATABASE" else client.prefix
    )
    assert f"{client.prefix}_URL" in link.variables and f"{client.prefix}_PASSWORD" in link.variables
    await _deploy(mist, app_ref, link.deployment_id)
    app = await mist.apps.get(app_ref)
    assert app.container_name is not None
    variables = await _env_of(mist, app.container_name)
    assert variables[f"{client.prefix}_URL"] == await mist.databases.url(db_ref)
    assert variables[f"{client.prefix}_HOST"] == db.host
    # The app reaches the database by that host name on the project's network.
    reach = await mist.core.engine.exec(
        app.container_name, ["sh", "-c", 'nc -w 5 "$0" "$1" </dev/null', db.host, str(db.port)]
    )
    assert reach.exit_code == 0, reach.output
    # The variables connect (the server's own client, in its container, over the project's network).
    wrote = await mist.core.engine.exec(db.container_name, client.write(variables))
    assert wrote.exit_code == 0, wrote.output
    # Secrets stay out of what every viewer sees.
    password = variables[f"{client.prefix}_PASSWORD"]
    assert password not in (await mist.databases.get(db_ref)).model_dump_json()
    assert all(v.value is None for v in await mist.env.list(app_ref) if v.key.startswith(client.prefix))

    stopped = await mist.databases.stop(db_ref)
    assert stopped.status == "stopped"
    started = await mist.databases.start(db_ref)
    assert started.status == "running"
    read = await mist.core.engine.exec(db.container_name, client.read(variables))
    assert read.exit_code == 0 and read.output.strip() == "42", read.output

    with pytest.raises(Conflict, match=f"linked to {app_ref}"):
        await mist.databases.delete(db_ref)

    await mist.databases.unlink(db_ref, "web")
    assert not [v for v in await mist.env.list(app_ref) if v.key.startswith(client.prefix)]

    await mist.databases.delete(db_ref)
    with pytest.raises(NotFound):
        await mist.databases.get(db_ref)
    assert await mist.core.engine.inspect(db.container_name) is None
    assert await mist.core.engine.volume_labels(db.volume) is None
    entries = (await mist.audit.list(project=project_name, action="database.")).items
    assert {"database.create", "database.link", "database.url.reveal", "database.delete"} <= {
        e.action for e in entries
    }
    assert password not in str([e.model_dump() for e in entries])


async def test_a_database_made_again_from_its_volume_when_its_container_is_gone(
    mist: LocalMist, project_name: str, db_images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    await mist.projects.create(project_name)
    db_ref = f"{project_name}/pg"
    db = await mist.databases.create(db_ref, DatabaseSpec(engine="postgres"))
    url = await mist.databases.url(db_ref)
    wrote = await mist.core.engine.exec(db.container_name, ["psql", url, "-c", "CREATE TABLE kept (n int)"])
    assert wrote.exit_code == 0, wrote.output
    await asyncio.to_thread(lambda: docker_client.containers.get(db.container_name).remove(force=True))
    assert (await mist.databases.get(db_ref)).status == "missing"

    assert (await mist.databases.start(db_ref)).status == "running"
    read = await mist.core.engine.exec(
        db.container_name, ["psql", url, "-At", "-c", "SELECT count(*) FROM kept"]
    )
    assert read.exit_code == 0 and read.output.strip() == "0", read.output


async def test_wrong_database_input_is_refused_before_anything_runs(
    mist: LocalMist, project_name: str, db_images: dict[str, str], git_repo: Callable[..., Path]
) -> None:
    await mist.projects.create(project_name)
    await mist.apps.create(f"{project_name}/web", busybox_spec(git_repo(busybox_site("hello"))))
    cases: list[tuple[str, DatabaseSpec, str]] = [
        (f"{project_name}/Data", DatabaseSpec(engine="postgres"), "uppercase"),
        (f"{project_name}/data", DatabaseSpec(engine="postgres", version="9.6"), "13, 14, 15, 16, 17"),
        (f"{project_name}/data", DatabaseSpec(engine="mariadb", version="8.0"), "10.11, 11.4"),
        (f"{project_name}/data", DatabaseSpec(engine="postgres", persistence="aof"), "Redis setting"),
        (f"{project_name}/data", DatabaseSpec(engine="postgres", public_port=80), "privileged"),
        (f"{project_name}/data", DatabaseSpec(engine="postgres", memory="lots"), "not a size"),
        (f"{project_name}/root", DatabaseSpec(engine="mariadb"), "keeps the name"),
        (f"{project_name}/template1", DatabaseSpec(engine="postgres"), "keeps the name"),
        ("no-slash", DatabaseSpec(engine="redis"), "project/name"),
    ]
    for ref, spec, words in cases:
        with pytest.raises(InvalidInput, match=words):
            await mist.databases.create(ref, spec)
    with pytest.raises(Conflict, match="has an app named 'web'"):
        await mist.databases.create(f"{project_name}/web", DatabaseSpec(engine="redis"))
    with pytest.raises(NotFound, match="no project"):
        await mist.databases.create("nosuchproject/db", DatabaseSpec(engine="redis"))
    assert (await mist.databases.list()).total == 0

    db = await mist.databases.create(
        f"{project_name}/cache", DatabaseSpec(engine="redis", persistence="none")
    )
    assert db.persistence == "none"
    for prefix, words in [("cache", "lowercase"), ("CACHE_URL", "part before _URL"), ("1X", "not valid")]:
        with pytest.raises(InvalidInput, match=words):
            await mist.databases.link(f"{project_name}/cache", "web", prefix=prefix)
    with pytest.raises(NotFound, match="no app"):
        await mist.databases.link(f"{project_name}/cache", "nope")
    link = await mist.databases.link(f"{project_name}/cache", "web")
    assert link.deployment_id is None  # never deployed: the variables wait for its first deployment
    with pytest.raises(Conflict, match="linked to .* already"):
        await mist.databases.link(f"{project_name}/cache", "web")
    # A second Redis under the same prefix would overwrite the first one's variables.
    await mist.databases.create(f"{project_name}/queue", DatabaseSpec(engine="redis"))
    with pytest.raises(Conflict, match=f"REDIS_HOST, REDIS_NAME.*link to {project_name}/cache.*--as REDIS2"):
        await mist.databases.link(f"{project_name}/queue", "web")
    await mist.env.set(f"{project_name}/web", "QUEUE_URL", "mine")
    with pytest.raises(Conflict, match="QUEUE_URL already .from its environment"):
        await mist.databases.link(f"{project_name}/queue", "web", prefix="QUEUE")
    assert (await mist.databases.link(f"{project_name}/queue", "web", prefix="JOBS")).prefix == "JOBS"
    with pytest.raises(Conflict, match="project"):
        await mist.projects.delete(project_name)


async def test_a_database_whose_image_cannot_be_pulled_is_refused_and_leaves_nothing(
    mist: LocalMist, project_name: str, docker_client: docker.DockerClient
) -> None:
    # No registry is reachable here, and no stand-in is tagged postgres:16.
    assert not docker_client.images.list(name="postgres:16")
    await mist.projects.create(project_name)
    with pytest.raises(NotFound, match="cannot pull image postgres:16"):
        await mist.databases.create(f"{project_name}/pg", DatabaseSpec(engine="postgres", version="16"))
    assert (await mist.databases.list()).total == 0
    assert not docker_client.volumes.list(filters={"label": f"dev.mist.project={project_name}"})
