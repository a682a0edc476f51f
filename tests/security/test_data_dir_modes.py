"""The data directory is private to the user Mist runs as: a directory made before Mist started is made so
at start, what Mist creates is private from the start, and a directory of another user is refused."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import Daemon, describe

pytestmark = pytest.mark.docker

# Contents that are not Mist's own and keep their modes (inside a private directory): build checkouts and
# local git repositories.
FOREIGN = {"work", "repos"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def open_to_others(data: Path) -> list[str]:
    """Every directory or file in the data directory that is not private, with its mode."""
    found = []
    if mode(data) != 0o700:
        found.append(f"{data} {mode(data):o}")
    for root, dirs, files in os.walk(data):
        here = Path(root)
        if here == data:
            dirs[:] = [d for d in dirs if d not in FOREIGN]
        for name in dirs + files:
            path = here / name
            kind = path.lstat().st_mode
            if stat.S_ISDIR(kind) and mode(path) != 0o700:
                found.append(f"{path} {mode(path):o} (a directory)")
            elif stat.S_ISREG(kind) and mode(path) & 0o077:
                found.append(f"{path} {mode(path):o}")
    return found


def test_a_data_directory_made_before_mist_started_is_made_private_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dynamic = data / "proxy" / "traefik" / "dynamic"
    dynamic.mkdir(parents=True)
    for directory in (data, data / "proxy", data / "proxy" / "traefik", dynamic):
        directory.chmod(0o755)
    (data / "instance-id").write_text("0123456789abcdef\n")
    (data / "instance-id").chmod(0o644)
    (dynamic / "shop--web.yml").write_text("{}\n")
    (dynamic / "shop--web.yml").chmod(0o644)

    d = Daemon(tmp_path)
    try:
        assert not open_to_others(data), "after start:\n" + "\n".join(open_to_others(data))
        assert mode(data) == 0o700
        assert mode(data / "instance-id") == 0o600
        assert mode(dynamic / "shop--web.yml") == 0o600
        # The same instance, files and all: only the modes changed.
        assert (data / "instance-id").read_text() == "0123456789abcdef\n"
    finally:
        d.stop()


def test_what_mist_creates_in_its_data_directory_is_private(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    try:
        d.setup_owner()
        owner = d.owner_token
        d.ok("POST", "/projects", token=owner, json={"name": "modes"})
        d.ok(
            "POST", "/projects/modes/apps", token=owner, json={"name": "web", "git_url": str(d.repos / "web")}
        )
        # A domain makes Mist write the proxy's route files.
        d.ok("POST", "/projects/modes/apps/web/domains", token=owner, json={"name": "modes.example.com"})
        written = list((d.data / "proxy" / "traefik" / "dynamic").glob("*.yml"))
        assert written, "the daemon wrote no proxy configuration: nothing was checked"
        assert (d.data / "instance-id").exists() and (d.data / "mist.db").exists()

        problems = open_to_others(d.data)

        assert not problems, "readable by others:\n" + "\n".join(problems)
    finally:
        d.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory of another user needs root")
def test_a_data_directory_of_another_user_is_refused_with_the_command_that_fixes_it(tmp_path: Path) -> None:
    data, sock = tmp_path / "data", tmp_path / "mist.sock"
    data.mkdir(mode=0o755)
    os.chown(data, 4242, 4242)
    process = subprocess.Popen(
        [sys.executable, "-m", "mist_core.daemon", "--data", str(data), "--socket", str(sock)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("MIST_")},
    )
    client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://mist")
    try:
        # It either exits or serves; serving is the failure.
        while process.poll() is None:
            try:
                response = client.get("/v1/setup")
            except (httpx.HTTPError, OSError):
                time.sleep(0.1)
                continue
            raise AssertionError(f"the daemon serves on a directory of another user: {describe(response)}")
        output = process.stdout.read().decode() if process.stdout else ""
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()

    assert process.returncode == 1, output
    assert "belongs to the user 4242" in output, output
    assert f"chown -R root {data}" in output, output
    assert "Traceback" not in output, output
    assert list(data.iterdir()) == [], "the daemon wrote into a directory it refused"
