"""``mist backup`` as a user runs it, on an embedded core: a local destination, a PostgreSQL database (the
postgres:15 stand-in) backed up, listed, shown, verified, restored into a new database and over itself,
scheduled, refused where the input is wrong, and a failed backup reported; a volume of a deployed app backed
up and restored the same way."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from images import postgres_image
from mistkit import PASSWORD, busybox_site, remove_everything_of

from mist_core.cli import run as run_mist

Run = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.xdist_group("databases")


@pytest.fixture
def project() -> Iterator[str]:
    name = "p" + uuid.uuid4().hex[:10]
    yield name
    asyncio.run(asyncio.to_thread(remove_everything_of, name))


@pytest.fixture
def owner(tmp_path: Path, busybox: str) -> Run:
    env = {**os.environ, "MIST_CONFIG_DIR": str(tmp_path / "cfg"), "MIST_GIT_ROOTS": str(tmp_path)}
    env.pop("MIST_TOKEN", None)
    env.pop("MIST_HOST", None)

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["--embedded", "--data", str(tmp_path / "data"), *args]
        stdout, stderr = io.StringIO(), io.StringIO()
        code = run_mist(argv, stdin=io.StringIO(input or ""), stdout=stdout, stderr=stderr, env=env)
        return subprocess.CompletedProcess(["mist", *argv], code, stdout.getvalue(), stderr.getvalue())

    assert run("setup", "--username", "admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0
    return run


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return result


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What the command printed (the outcome on stdout, its notes on stderr)."""
    return result.stdout + result.stderr


def psql(client: docker.DockerClient, container: str, url: str, sql: str) -> str:
    code, output = client.containers.get(container).exec_run(
        ["psql", url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]
    )
    assert code == 0, output
    return str(output.decode().strip())


def test_mist_backup_backs_up_verifies_and_restores_a_database(
    owner: Run, project: str, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    postgres_image()
    p = project
    ok(owner("project", "create", p))
    ok(owner("db", "create", f"{p}/main", "--engine", "postgres"))
    main = json.loads(ok(owner("db", "show", f"{p}/main", "--json")).stdout)
    url = ok(owner("db", "url", f"{p}/main")).stdout.strip()
    password = url.split(":")[2].split("@")[0]
    psql(
        docker_client, main["container_name"], url, "CREATE TABLE t AS SELECT g FROM generate_series(1, 42) g"
    )
    added = ok(owner("backup", "destination", "add", "here", "--path", str(tmp_path / "backups")))
    assert "Added backup destination here (local)" in said(added)

    ran = ok(owner("backup", "run", f"{p}/main", "--database", "--to", "here"))
    assert f"of {p}/main (database) to here: success" in said(ran)
    listed = json.loads(ok(owner("backup", "list", p, "--database", "--json")).stdout)
    assert [(b["kind"], b["name"], b["state"], b["verified"]) for b in listed] == [
        ("database", "main", "success", "never")
    ]
    backup_id = str(listed[0]["id"])
    table = ok(owner("backup", "list", f"{p}/main")).stdout
    assert "database/main" in table and "never" in table
    assert json.loads(ok(owner("backup", "list", p, "--json")).stdout) == listed  # volumes and databases

    verified = ok(owner("backup", "verify", backup_id))
    assert "verified: passed" in said(verified) and "1 table, 42 rows" in said(verified)

    nowhere = owner("backup", "restore", backup_id)
    assert nowhere.returncode != 0 and "say where to restore: --into NEW_NAME" in nowhere.stderr
    wrong = owner("backup", "restore", backup_id, "--confirm", "mian")
    assert wrong.returncode != 0 and "--confirm main" in wrong.stderr
    restored = ok(owner("backup", "restore", backup_id, "--into", "copy"))
    assert "last restore: success" in said(restored) and "restored into database copy" in said(restored)
    copy = json.loads(ok(owner("db", "show", f"{p}/copy", "--json")).stdout)
    assert (copy["engine"], copy["version"], copy["status"]) == ("postgres", "15", "running")
    copy_url = ok(owner("db", "url", f"{p}/copy")).stdout.strip()
    assert psql(docker_client, copy["container_name"], copy_url, "SELECT count(*) FROM t") == "42"

    psql(docker_client, main["container_name"], url, "DELETE FROM t")
    ok(owner("backup", "restore", backup_id, "--confirm", "main"))
    assert psql(docker_client, main["container_name"], url, "SELECT count(*) FROM t") == "42"

    scheduled = ok(owner("backup", "schedule", "add", f"{p}/main", "--database", "--to", "here",
                         "--cron", "0 3 * * *", "--keep-last", "3"))  # fmt: skip
    assert f"Scheduled backups of database {p}/main to here" in said(scheduled)
    (schedule,) = json.loads(ok(owner("backup", "schedule", "list", p, "--json")).stdout)
    assert (schedule["kind"], schedule["name"], schedule["retention"]["last"]) == ("database", "main", 3)
    ok(owner("backup", "schedule", "remove", p, str(schedule["id"])))

    # A backup that fails says so, with the reason, and exits non-zero.
    ok(owner("db", "stop", f"{p}/main"))
    failed = owner("backup", "run", f"{p}/main", "--database", "--to", "here")
    assert failed.returncode == 1 and ": failed" in said(failed)
    assert "counting the rows of database main failed" in said(failed)
    ok(owner("backup", "delete", backup_id, "--yes"))
    assert [b["state"] for b in json.loads(ok(owner("backup", "list", p, "--json")).stdout)] == ["failed"]

    for args, words in [
        (["backup", "run", p, "--database", "--to", "here"], "is not PROJECT/NAME"),
        (["backup", "run", f"{p}/nothing", "--database", "--to", "here"], "has no database 'nothing'"),
        (["backup", "run", f"{p}/main", "--to", "here"], "but a database"),
        (["backup", "run", f"{p}/main", "--database", "--to", "nowhere"], "no backup destination 'nowhere'"),
        (["backup", "schedule", "add", f"{p}/nothing", "--database", "--to", "here", "--cron", "0 3 * * *"],
         "has no database 'nothing'"),
        (["backup", "schedule", "add", f"{p}/main", "--database", "--to", "here", "--cron", "3am"],
         "not a cron expression"),
    ]:  # fmt: skip
        result = owner(*args)
        assert result.returncode != 0 and words in result.stderr, (args, result.stderr)
    everything = ok(owner("backup", "list", p, "--json")).stdout + ok(owner("audit", "--json")).stdout
    assert password not in everything
    assert "backup.run" in everything and '"database": "main"' in everything


def test_mist_backup_still_backs_up_and_restores_a_volume(
    owner: Run,
    project: str,
    git_repo: Callable[..., Path],
    tmp_path: Path,
    docker_client: docker.DockerClient,
) -> None:
    p = project
    ok(owner("project", "create", p))
    repo = git_repo(busybox_site("hello"))
    ok(owner("app", "create", f"{p}/web", "--git", str(repo), "--port", "8080", "--volume", "data:/data"))
    ok(owner("deploy", f"{p}/web", "--wait"))
    app = json.loads(ok(owner("app", "show", f"{p}/web", "--json")).stdout)
    container = docker_client.containers.get(app["container_name"])
    assert container.exec_run(["sh", "-c", "echo kept > /data/file"])[0] == 0
    ok(owner("backup", "destination", "add", "here", "--path", str(tmp_path / "backups")))

    ran = ok(owner("backup", "run", f"{p}/data", "--to", "here", "--json"))
    backup = json.loads(ran.stdout)
    assert (backup["kind"], backup["name"], backup["state"]) == ("volume", "data", "success")
    assert "passed" in said(ok(owner("backup", "verify", str(backup["id"]))))
    assert not json.loads(ok(owner("backup", "list", p, "--database", "--json")).stdout)
    restored = ok(owner("backup", "restore", str(backup["id"]), "--into", "data2"))
    assert "restored into volume data2" in said(restored)
    refused = owner("backup", "run", f"{p}/data", "--database", "--to", "here")
    assert refused.returncode != 0 and "has no database 'data'" in refused.stderr
