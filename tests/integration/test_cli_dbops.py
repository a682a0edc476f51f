"""The ``mist db`` commands about a database after it exists, as a user runs them: the installed ``mist``
program (embedded core) on the postgres:15 stand-in, with pipes for standard input and output as a script has
them: a client session with arguments and with a script on stdin, users (a generated password printed once),
an update, a refused major upgrade, and ``mist ps`` naming the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from images import postgres_image
from mistkit import PASSWORD, remove_everything_of

MIST = Path(sys.executable).parent / "mist"

Run = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.xdist_group("databases")


@pytest.fixture
def project() -> Iterator[str]:
    name = "p" + uuid.uuid4().hex[:10]
    yield name
    remove_everything_of(name)


@pytest.fixture
def mist(tmp_path: Path, busybox: str) -> Run:
    env = {**os.environ, "MIST_CONFIG_DIR": str(tmp_path / "cfg"), "MIST_GIT_ROOTS": str(tmp_path)}
    env.pop("MIST_TOKEN", None)
    env.pop("MIST_HOST", None)

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(MIST), "--embedded", "--data", str(tmp_path / "data"), *args]
        return subprocess.run(argv, input=input or "", capture_output=True, text=True, env=env, timeout=300)

    assert run("setup", "--username", "admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0
    return run


def test_a_script_uses_the_database_client_its_users_and_its_settings(mist: Run, project: str) -> None:
    postgres_image()
    ref = f"{project}/main"
    assert mist("project", "create", project).returncode == 0
    assert mist("db", "create", ref, "--engine", "postgres").returncode == 0

    answer = mist("db", "shell", ref, "--", "-At", "-c", "SELECT 6 * 7")
    assert (answer.returncode, answer.stdout.strip()) == (0, "42"), answer.stderr
    failed = mist("db", "shell", ref, "-T", "--", "-v", "ON_ERROR_STOP=1", input="SELECT 1/0;\n")
    assert failed.returncode != 0 and "division by zero" in failed.stderr

    made = mist("db", "create-user", ref, "reporter")
    assert made.returncode == 0, made.stderr
    password = made.stdout.strip().splitlines()[-1]
    assert len(password) >= 32 and "cannot show it again" in made.stderr
    given = mist(
        "--json", "db", "create-user", ref, "writer", "--password-stdin", input="a-given-password!\n"
    )
    assert json.loads(given.stdout) == {
        "database": ref,
        "user": "writer",
        "password": "a-given-password!",
        "generated": False,
    }
    users = mist("db", "users", ref)
    assert [line.split()[0] for line in users.stdout.splitlines()[1:]] == ["main", "reporter", "writer"]
    assert "its apps use it" in users.stdout

    refused = mist("db", "drop-user", ref, "reporter")
    assert refused.returncode != 0 and "pass --yes" in refused.stderr
    assert mist("db", "drop-user", ref, "reporter", "--yes").returncode == 0
    bad = mist("db", "create-user", ref, "Robert'); DROP TABLE students;--")
    assert bad.returncode != 0 and "is not allowed: use lowercase letters" in bad.stderr

    updated = mist("db", "update", ref, "--restart", "always", "--memory", "300m")
    assert updated.returncode == 0 and f"Updated {ref}: running" in updated.stdout, updated.stderr
    shown = mist("db", "show", ref)
    assert "always" in shown.stdout and "300" in shown.stdout
    nothing = mist("db", "update", ref)
    assert nothing.returncode != 0 and "nothing to change" in nothing.stderr
    major = mist("db", "upgrade", ref, "--version", "16")
    assert major.returncode != 0 and "major upgrade" in major.stderr and "dump" in major.stderr

    ps = mist("ps")
    rows = [line.split() for line in ps.stdout.splitlines() if line.startswith("mist-db-")]
    assert [(r[0].endswith("-main"), r[1:3]) for r in rows] == [(True, ["db", ref])]
