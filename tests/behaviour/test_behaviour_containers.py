"""The live container through both implementations: describe (secrets masked), exec with and without a TTY,
the ``restarting`` status, the latest deployment and Docker's restart count on the app."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest

from mist_core.api import MistAPI
from mist_core.errors import Conflict, InvalidInput
from mist_core.execs import ExecChannel
from mist_core.models import AppSpec, DeploymentState, HealthCheck
from tests.behaviour.test_behaviour_deploy import _git, free_port, wait_final
from tests.images import busybox_image

pytestmark = pytest.mark.docker


def make_repo(root: Path) -> Path:
    repo = root / f"web-{uuid.uuid4().hex[:8]}"
    repo.mkdir(parents=True)
    # sh stays the parent of httpd, so killing httpd makes the container exit (and Docker restart it).
    (repo / "Dockerfile").write_text(
        "FROM mist-test/busybox:1\nCOPY index.html /www/\n"
        'CMD ["sh", "-c", "httpd -f -p 8080 -h /www; exit 3"]\n'
    )
    (repo / "index.html").write_text("hello\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first page")
    return repo


@pytest.fixture
async def live_app(mist: MistAPI, tmp_path: Path):
    busybox_image()
    project = f"t{uuid.uuid4().hex[:8]}"
    repo = make_repo(tmp_path / "repos")
    await mist.projects.create(project)
    app_ref = f"{project}/web"
    await mist.apps.create(
        app_ref,
        AppSpec(
            git_url=str(repo),
            port=8080,
            publish=[f"127.0.0.1:{free_port()}:8080"],
            health=HealthCheck(type="http", path="/index.html", interval=0.5),
        ),
    )
    await mist.env.set(app_ref, "GREETING", "hello")
    await mist.env.set(app_ref, "API_KEY", "s3cr3t-value-xyz", secret=True)
    deployment = await mist.apps.deploy(app_ref)
    assert await wait_final(mist, deployment.id) == DeploymentState.live
    try:
        yield app_ref, deployment.id
    finally:
        await mist.apps.delete(app_ref)


async def _drain(channel: ExecChannel) -> tuple[bytes, bytes]:
    out, err = bytearray(), bytearray()
    while (item := await channel.read()) is not None:
        (err if item[0] == 2 else out).extend(item[1])
    return bytes(out), bytes(err)


async def test_describe_shows_the_container_with_secrets_masked(mist: MistAPI, live_app) -> None:
    app_ref, deployment_id = live_app
    described = await mist.containers.describe(app_ref)
    assert described.app == app_ref
    assert described.deployment_id == deployment_id
    assert described.state == "running"
    assert described.command == ["sh", "-c", "httpd -f -p 8080 -h /www; exit 3"]
    env = {e.key: e for e in described.env}
    assert env["GREETING"].value == "hello" and not env["GREETING"].secret
    assert env["API_KEY"].secret and env["API_KEY"].value is None
    assert "s3cr3t-value-xyz" not in described.model_dump_json()
    assert any(p.endswith("->8080/tcp") for p in described.ports)
    assert described.restart_count == 0
    assert described.started_at is not None


async def test_exec_runs_a_command_and_returns_its_exit_status(mist: MistAPI, live_app) -> None:
    app_ref, _ = live_app
    channel = await mist.containers.exec(
        app_ref, ["sh", "-c", 'echo out; echo "$1" >&2; exit 7', "sh", "a b;c"]
    )
    async with channel:
        out, err = await _drain(channel)
        assert (out, err) == (b"out\n", b"a b;c\n")
        assert await channel.exit_code() == 7


async def test_exec_feeds_standard_input_until_its_end(mist: MistAPI, live_app) -> None:
    app_ref, _ = live_app
    async with await mist.containers.exec(app_ref, ["wc", "-c"]) as channel:
        await channel.write(b"x" * 100_000)
        await channel.close_input()
        out, _ = await _drain(channel)
        assert out.strip() == b"100000"
        assert await channel.exit_code() == 0


async def test_exec_with_a_tty_is_a_shell_of_the_given_size(mist: MistAPI, live_app) -> None:
    app_ref, _ = live_app
    async with await mist.containers.exec(app_ref, tty=True, height=33, width=101) as channel:
        await channel.write(b"stty size; exit 5\n")
        out, _ = await _drain(channel)
        assert b"33 101" in out
        assert await channel.exit_code() == 5


async def test_exec_refuses_a_bad_command_and_writes_an_audit_entry(mist: MistAPI, live_app) -> None:
    app_ref, _ = live_app
    with pytest.raises(InvalidInput, match="program is empty"):
        await mist.containers.exec(app_ref, ["", "x"])
    async with await mist.containers.exec(app_ref, ["true"]) as channel:
        await _drain(channel)
    entries = (await mist.audit.list(action="container.exec")).items
    assert entries[0].app == "web" and entries[0].detail["command"] == ["true"]


async def test_exec_into_an_app_never_deployed_says_to_deploy(mist: MistAPI) -> None:
    project = f"t{uuid.uuid4().hex[:8]}"
    await mist.projects.create(project)
    await mist.apps.create(f"{project}/new", AppSpec(git_url="https://example.invalid/x.git"))
    with pytest.raises(Conflict, match="deploy it first"):
        await mist.containers.exec(f"{project}/new", ["true"])


async def test_restart_shows_restarting_then_live(mist: MistAPI, live_app) -> None:
    app_ref, deployment_id = live_app
    seen: list[str | None] = []

    async def watch() -> None:
        async for event in mist.events.stream():
            if event.kind == "app" and event.action == "status" and event.app == "web":
                seen.append(event.state)
                if event.state != "restarting":
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.3)
    app = await mist.apps.restart(app_ref)
    await asyncio.wait_for(watcher, 30)
    assert seen[0] == "restarting"
    assert app.status == "live"
    assert app.latest_deployment_id == deployment_id
    assert app.latest_deployment_state == DeploymentState.live


async def test_the_app_carries_docker_restart_count(mist: MistAPI, live_app) -> None:
    app_ref, _ = live_app
    name = (await mist.apps.get(app_ref)).container_name
    assert name
    subprocess.run(["docker", "exec", name, "killall", "httpd"], check=True, capture_output=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while (await mist.apps.get(app_ref)).restart_count < 1:
        assert loop.time() < deadline, "the restart count never reached the app"
        await asyncio.sleep(0.2)
    assert (await mist.containers.describe(app_ref)).restart_count >= 1
