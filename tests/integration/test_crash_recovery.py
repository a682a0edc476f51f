"""kill -9 of the daemon in the middle of a deployment, then a restart: the deployment ends failed with the
reason, nothing it half-made is left, and the live container of the app was never touched."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest
from gitutil import commit
from mistkit import PASSWORD, busybox_site, busybox_spec, deploy_and_wait, fetch, remove_everything_of

from mist_core.local import open_embedded
from mist_core.models import AppChanges, DeploymentState, HealthCheck

pytestmark = pytest.mark.docker


def deployment_row(db: Path, deployment_id: int) -> tuple[str, str | None]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT state, error FROM deployments WHERE id = ?", (deployment_id,)).fetchone()
    finally:
        conn.close()


def deployment_state(db: Path, deployment_id: int) -> str | None:
    return deployment_row(db, deployment_id)[0]


def start_daemon(data: Path, roots: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MIST_GIT_ROOTS": str(roots)}
    return subprocess.Popen(
        [sys.executable, "-m", "mist_core.daemon", "--data", str(data), "--socket", str(data / "mist.sock")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_state(db: Path, deployment_id: int, state: str, daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current = deployment_state(db, deployment_id)
        if current == state:
            return
        assert current not in ("failed", "live", "cancelled"), (
            f"deployment ended {current} before {state}: {deployment_row(db, deployment_id)[1]}"
        )
        assert daemon.poll() is None, "the daemon exited on its own"
        time.sleep(0.1)
    raise AssertionError(f"deployment never reached {state}")


@pytest.mark.parametrize("kill_during", ["building", "checking"])
async def test_kill_9_during_a_deployment_then_restart_leaves_a_consistent_state(
    tmp_path, git_repo, project_name, busybox, kill_during
):
    data = tmp_path / "data"
    repo = git_repo(busybox_site("stable"))
    ref = f"{project_name}/web"

    mist = await open_embedded(data, git_roots=[tmp_path])
    try:
        await mist.auth.setup("admin", PASSWORD)
        await mist.projects.create(project_name)
        await mist.apps.create(ref, busybox_spec(repo))
        live = await deploy_and_wait(mist, ref)
        assert live.state == DeploymentState.live
    finally:
        await mist.close()

    # Queue the doomed deployment with no worker running, so the daemon is the one that starts it.
    mist = await open_embedded(data, git_roots=[tmp_path], run_workers=False)
    try:
        await mist.auth.login("admin", PASSWORD)
        if kill_during == "building":
            # The echo makes the step unique, so no build cache can skip the sleep.
            slow = f"FROM mist-test/busybox:1\nRUN echo {uuid.uuid4().hex} && sleep 60\n"
            commit(repo, {"Dockerfile": slow}, "slow build")
        else:
            commit(
                repo,
                busybox_site("never healthy", 'FROM mist-test/busybox:1\nCMD ["sleep", "300"]\n'),
                "hang",
            )
            await mist.apps.update(ref, AppChanges(health=HealthCheck(type="http", interval=1, retries=300)))
        doomed = await mist.apps.deploy(ref)
    finally:
        await mist.close()  # the queued deployment waits in the store for the daemon

    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    started_at = client.containers.get(live.container_name).attrs["State"]["StartedAt"]

    daemon = start_daemon(data, tmp_path)
    try:
        wait_for_state(data / "mist.db", doomed.id, kill_during, daemon)
        await asyncio.sleep(1.5)  # well inside the step: the build runs, or the new container is up
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=10)
    finally:
        if daemon.poll() is None:
            daemon.kill()

    assert deployment_row(data / "mist.db", doomed.id) == (kill_during, None)  # nobody finished it

    mist = await open_embedded(data, git_roots=[tmp_path])  # starting the core runs the recovery
    try:
        await mist.auth.login("admin", PASSWORD)
        dep = await mist.deployments.get(doomed.id)
        assert dep.state == DeploymentState.failed
        assert "interrupted" in (dep.error or "") and kill_during in (dep.error or "")
        log = "\n".join([line.text async for line in mist.deployments.log(doomed.id)])
        assert "the daemon stopped" in log

        leftovers = client.containers.list(all=True, filters={"label": f"dev.mist.deployment={doomed.id}"})
        assert [c.name for c in leftovers if c.labels.get("dev.mist.project") == project_name] == []
        await asyncio.sleep(2)  # a build the dead daemon had started must not tag an image later
        images = client.images.list(filters={"label": f"dev.mist.project={project_name}"})
        assert all(f":{doomed.id}" not in tag for image in images for tag in image.tags)

        app = await mist.apps.get(ref)
        assert app.live_deployment_id == live.id and app.status == "live"
        assert client.containers.get(live.container_name).attrs["State"]["StartedAt"] == started_at
        assert await fetch(live.container_name) == "stable"

        # And the app can be deployed again afterwards.
        commit(repo, busybox_site("after the crash"), "recovered")
        await mist.apps.update(ref, AppChanges(health=HealthCheck(type="http", interval=0.2, retries=25)))
        again = await deploy_and_wait(mist, ref)
        assert again.state == DeploymentState.live
        assert await fetch(again.container_name) == "after the crash"
    finally:
        await mist.close()
        client.close()
        await asyncio.to_thread(remove_everything_of, project_name)


async def test_a_container_being_retired_when_the_daemon_stops_is_retired_when_it_starts_again(
    tmp_path, git_repo, project_name, busybox
):
    """The old container ignores SIGTERM and has a long grace period: the core stops while Docker is still
    waiting it out. The next start finds the retirement in the deployment's snapshot and finishes it."""
    from mistkit import IGNORES_SIGTERM_DOCKERFILE, log_text, wait_retired

    data = tmp_path / "data"
    repo = git_repo(busybox_site("one", IGNORES_SIGTERM_DOCKERFILE))
    ref = f"{project_name}/web"
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    mist = await open_embedded(data, git_roots=[tmp_path])
    try:
        await mist.auth.setup("admin", PASSWORD)
        await mist.projects.create(project_name)
        await mist.apps.create(ref, busybox_spec(repo))
        first = await deploy_and_wait(mist, ref)
        await mist.settings.set("stop_grace_period", "600")
        commit(repo, {"index.html": "two"}, "two")
        second = await deploy_and_wait(mist, ref)
        assert second.state == DeploymentState.live and second.retiring == first.container_name
    finally:
        await mist.close()
    try:
        assert client.containers.get(first.container_name).status == "running"  # Docker still waits

        mist = await open_embedded(data, git_roots=[tmp_path], run_workers=False)
        try:
            await mist.auth.login("admin", PASSWORD)
            await mist.settings.set("stop_grace_period", "1")
        finally:
            await mist.close()

        mist = await open_embedded(data, git_roots=[tmp_path])  # starting the core resumes the retirement
        try:
            await mist.auth.login("admin", PASSWORD)
            await wait_retired(mist, second.id)
            assert not client.containers.list(all=True, filters={"name": f"^/{first.container_name}$"})
            log = await log_text(mist, second.id)
            assert f"the daemon stopped while retiring {first.container_name}" in log
            assert f"removed the previous container {first.container_name}" in log
            assert (await mist.apps.get(ref)).status == "live"
            assert await fetch(second.container_name) == "two"
        finally:
            await mist.close()
    finally:
        client.close()
        await asyncio.to_thread(remove_everything_of, project_name)
