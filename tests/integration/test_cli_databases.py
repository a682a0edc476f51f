"""``mist db`` as a user runs it, on an embedded core with the postgres:15 stand-in: create, list, show, url
(which connects), link and unlink, the refusals, and delete."""

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
    env = {
        **os.environ,
        "MIST_CONFIG_DIR": str(tmp_path / "cfg"),
        "MIST_GIT_ROOTS": str(tmp_path),
        "MIST_METRICS_INTERVAL": "1",
    }
    env.pop("MIST_TOKEN", None)
    env.pop("MIST_HOST", None)

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["--embedded", "--data", str(tmp_path / "data"), *args]
        stdout, stderr = io.StringIO(), io.StringIO()
        code = run_mist(argv, stdin=io.StringIO(input or ""), stdout=stdout, stderr=stderr, env=env)
        return subprocess.CompletedProcess(["mist", *argv], code, stdout.getvalue(), stderr.getvalue())

    assert run("setup", "--username", "admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0
    return run


def test_mist_db_creates_reveals_links_and_deletes_a_postgres_database(
    owner: Run, project: str, git_repo: Callable[..., Path], docker_client: docker.DockerClient
) -> None:
    postgres_image()
    assert owner("project", "create", project).returncode == 0
    repo = git_repo(busybox_site("hello"))
    assert owner("app", "create", f"{project}/web", "--git", str(repo), "--port", "8080").returncode == 0

    created = owner("db", "create", f"{project}/main", "--engine", "postgres")
    assert created.returncode == 0, created.stderr
    assert f"Created postgres 15 database {project}/main: running" in created.stdout
    assert f"mist db link {project}/main {project}/APP" in created.stdout + created.stderr

    listed = json.loads(owner("db", "list", "--json").stdout)
    assert [(d["name"], d["engine"], d["status"]) for d in listed] == [("main", "postgres", "running")]
    shown = owner("db", "show", f"{project}/main")
    assert "postgres 15" in shown.stdout and "mist db url" in shown.stdout

    url = owner("db", "url", f"{project}/main").stdout.strip()
    assert url.startswith("postgresql://main:") and url.endswith(f"@{listed[0]['host']}:5432/main")
    password = url.split(":")[2].split("@")[0]
    assert password not in shown.stdout and password not in owner("db", "list").stdout
    container = docker_client.containers.get(listed[0]["container_name"])
    code, output = container.exec_run(["psql", url, "-At", "-c", "SELECT current_user"])
    assert code == 0 and output.decode().strip() == "main", output

    other = owner("db", "link", f"{project}/main", f"other-{project}/web")
    assert other.returncode != 0 and "not in project" in other.stderr
    linked = owner("db", "link", f"{project}/main", f"{project}/web")
    assert linked.returncode == 0, linked.stderr
    assert "DATABASE_URL" in linked.stdout and "first deployment" in linked.stdout + linked.stderr
    env = owner("env", "list", f"{project}/web", "--reveal", "--json")
    assert {v["key"]: v["value"] for v in json.loads(env.stdout)}["DATABASE_URL"] == url

    refused = owner("db", "delete", f"{project}/main", "--yes")
    assert refused.returncode != 0 and f"linked to {project}/web" in refused.stderr
    assert owner("db", "unlink", f"{project}/main", f"{project}/web").returncode == 0
    assert "DATABASE_URL" not in owner("env", "list", f"{project}/web").stdout

    deleted = owner("db", "delete", f"{project}/main", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(owner("db", "list", "--json").stdout) == []
    audit = owner("audit", "--json").stdout
    assert "database.url.reveal" in audit and password not in audit


def test_mist_db_explains_wrong_input(owner: Run, project: str) -> None:
    assert owner("project", "create", project).returncode == 0
    for args, words in [
        (["db", "create", "nodb", "--engine", "postgres"], "does not name a database"),
        (["db", "create", f"{project}/x", "--engine", "oracle"], "invalid choice"),
        (["db", "create", f"{project}/x", "--engine", "redis", "--version", "5"], "use one of 7"),
        (["db", "create", f"{project}/x", "--engine", "postgres", "--memory", "lots"], "not a size"),
        (["db", "link", f"{project}/x", f"{project}/web", "--as", "db"], "lowercase"),
        (["db", "show", f"{project}/nothing"], "no database"),
    ]:
        result = owner(*args)
        assert result.returncode != 0 and words in result.stderr, (args, result.stderr)
