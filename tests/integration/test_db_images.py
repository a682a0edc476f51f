"""The database stand-ins (``postgres:15``, ``mariadb:10.11``, ``redis:7``) honour the official images'
contracts that Mist relies on: the documented environment, the data directory, the port, the client tools,
and data kept when the container is made again on the same volume."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from images import database_standins

pytestmark = pytest.mark.xdist_group("db-images")

Run = Callable[..., docker.models.containers.Container]


@pytest.fixture(scope="module")
def db_images(docker_client: docker.DockerClient) -> dict[str, str]:
    return database_standins()


@pytest.fixture
def run_db(docker_client: docker.DockerClient, mist_cleanup: Any) -> Iterator[Run]:
    """Start a container of a stand-in (labelled for clean-up) and remove it at the end."""
    made: list[docker.models.containers.Container] = []
    volumes: list[str] = []

    def run(image: str, *, volume: str, path: str, **kwargs: object) -> docker.models.containers.Container:
        if volume not in volumes:
            docker_client.volumes.create(volume, labels=mist_cleanup.labels)
            volumes.append(volume)
        container = docker_client.containers.run(
            image,
            detach=True,
            labels=mist_cleanup.labels,
            volumes={volume: {"bind": path, "mode": "rw"}},
            **kwargs,
        )
        made.append(container)
        return container

    yield run
    for container in made:
        container.remove(force=True)
    for volume in volumes:
        docker_client.volumes.get(volume).remove(force=True)


def _exec(container: docker.models.containers.Container, *command: str, **env: str) -> tuple[int, str]:
    code, output = container.exec_run(list(command), environment=env or None)
    return code, output.decode(errors="replace")


def _wait_for(container: docker.models.containers.Container, *command: str, **env: str) -> str:
    """Run ``command`` until it succeeds (the server is starting); fail with its last output after 60 s."""
    deadline = time.monotonic() + 60
    while True:
        code, output = _exec(container, *command, **env)
        if code == 0:
            return output
        container.reload()
        if container.status != "running" or time.monotonic() > deadline:
            logs = container.logs().decode(errors="replace")[-2000:]
            pytest.fail(f"{' '.join(command)} kept failing ({code}): {output}\ncontainer log:\n{logs}")
        time.sleep(0.5)


def _volume() -> str:
    return "mist-test-db-" + uuid.uuid4().hex[:10]


def test_postgres_standin_makes_the_documented_user_and_database_and_keeps_them(
    db_images: dict[str, str], run_db: Run
) -> None:
    volume = _volume()
    env = {"POSTGRES_USER": "shop", "POSTGRES_PASSWORD": "pw-1", "POSTGRES_DB": "orders"}
    first = run_db(db_images["postgres"], volume=volume, path="/var/lib/postgresql/data", environment=env)
    _wait_for(first, "pg_isready", "-h", "127.0.0.1", "-U", "shop", "-d", "orders")
    # Password authentication over the network, as any other container connects.
    sql = "CREATE TABLE t (n int); INSERT INTO t VALUES (7); SELECT current_user, current_database();"
    output = _wait_for(
        first, "psql", "-h", "127.0.0.1", "-U", "shop", "-d", "orders", "-At", "-c", sql, PGPASSWORD="pw-1"
    )
    assert "shop|orders" in output
    code, output = _exec(first, "psql", "-h", "127.0.0.1", "-U", "shop", "-d", "orders", "-c", "SELECT 1",
                         PGPASSWORD="wrong")  # fmt: skip
    assert code != 0 and "password authentication failed" in output
    for tool in ("pg_dump", "pg_restore", "psql", "pg_isready"):
        assert _exec(first, "sh", "-c", f"command -v {tool}")[0] == 0, tool
    assert _exec(first, "id", "-un")[1].strip() == "root"  # the entrypoint drops to postgres itself
    code, owner = _exec(first, "stat", "-c", "%U", "/var/lib/postgresql/data/PG_VERSION")
    assert owner.strip() == "postgres"
    first.stop(timeout=20)  # SIGINT/SIGTERM: a clean shutdown
    first.reload()
    assert first.attrs["State"]["ExitCode"] == 0

    # A new container on the same volume, with other settings: no second initdb, the data is there.
    env2 = {"POSTGRES_USER": "other", "POSTGRES_PASSWORD": "pw-2", "POSTGRES_DB": "other"}
    second = run_db(db_images["postgres"], volume=volume, path="/var/lib/postgresql/data", environment=env2)
    output = _wait_for(
        second, "psql", "-h", "127.0.0.1", "-U", "shop", "-d", "orders", "-At", "-c", "SELECT n FROM t",
        PGPASSWORD="pw-1",
    )  # fmt: skip
    assert output.strip() == "7"
    assert "init process complete" not in second.logs().decode()


def test_postgres_standin_refuses_to_start_without_a_password(db_images: dict[str, str], run_db: Run) -> None:
    container = run_db(db_images["postgres"], volume=_volume(), path="/var/lib/postgresql/data")
    assert container.wait(timeout=60)["StatusCode"] != 0
    assert "POSTGRES_PASSWORD" in container.logs().decode()


def test_mariadb_standin_honours_mariadb_and_mysql_variables_and_keeps_data(
    db_images: dict[str, str], run_db: Run
) -> None:
    volume = _volume()
    env = {
        "MARIADB_ROOT_PASSWORD": "root-pw",
        "MYSQL_USER": "shop",  # the MYSQL_* aliases work as well
        "MYSQL_PASSWORD": "it's a pw",
        "MARIADB_DATABASE": "orders",
    }
    first = run_db(db_images["mariadb"], volume=volume, path="/var/lib/mysql", environment=env)
    _wait_for(first, "healthcheck.sh", "--connect", "--innodb_initialized")
    sql = "CREATE TABLE t (n int); INSERT INTO t VALUES (7); SELECT CURRENT_USER(), DATABASE();"
    output = _wait_for(
        first,
        "mariadb",
        "-h",
        "127.0.0.1",
        "-u",
        "shop",
        "-N",
        "-B",
        "orders",
        "-e",
        sql,
        MYSQL_PWD="it's a pw",
    )
    assert "shop@%\torders" in output
    output = _wait_for(
        first, "mariadb", "-h", "127.0.0.1", "-u", "root", "-N", "-e", "SELECT 1", MYSQL_PWD="root-pw"
    )
    assert output.strip() == "1"
    code, _ = _exec(first, "mariadb", "-h", "127.0.0.1", "-u", "root", "-e", "SELECT 1", MYSQL_PWD="wrong")
    assert code != 0
    for tool in ("mariadb", "mariadb-dump", "mysqldump", "mysqladmin", "healthcheck.sh"):
        assert _exec(first, "sh", "-c", f"command -v {tool}")[0] == 0, tool
    first.stop(timeout=20)
    first.reload()
    assert first.attrs["State"]["ExitCode"] == 0

    second = run_db(
        db_images["mariadb"], volume=volume, path="/var/lib/mysql", environment={"MARIADB_ROOT_PASSWORD": "x"}
    )
    output = _wait_for(
        second, "mariadb", "-h", "127.0.0.1", "-u", "shop", "-N", "-B", "orders", "-e", "SELECT n FROM t",
        MYSQL_PWD="it's a pw",
    )  # fmt: skip
    assert output.strip() == "7"


def test_redis_standin_takes_redis_server_arguments_and_keeps_data_in_data(
    db_images: dict[str, str], run_db: Run
) -> None:
    volume = _volume()
    command = ["redis-server", "--requirepass", "pw-1", "--appendonly", "yes"]
    first = run_db(db_images["redis"], volume=volume, path="/data", command=command)
    _wait_for(first, "redis-cli", "-a", "pw-1", "--no-auth-warning", "ping")
    assert "OK" in _exec(first, "redis-cli", "set", "greeting", "hello", REDISCLI_AUTH="pw-1")[1]
    assert "NOAUTH" in _exec(first, "redis-cli", "get", "greeting")[1]
    assert _exec(first, "pwd")[1].strip() == "/data"
    assert "appendonlydir" in _exec(first, "ls", "/data")[1]
    first.stop(timeout=20)
    first.reload()
    assert first.attrs["State"]["ExitCode"] == 0

    second = run_db(db_images["redis"], volume=volume, path="/data", command=command)
    output = _wait_for(second, "redis-cli", "get", "greeting", REDISCLI_AUTH="pw-1")
    assert output.strip() == "hello"
