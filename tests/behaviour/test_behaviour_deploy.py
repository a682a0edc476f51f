"""Deploying for real, through both implementations: a local git repository with a busybox Dockerfile is built,
started, health-checked and served on a published loopback port."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from mist_core.api import MistAPI
from mist_core.models import AppSpec, DeploymentState, HealthCheck
from tests.images import busybox_image

pytestmark = pytest.mark.docker

DEPLOY_DEADLINE = 180.0


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Mist Tests", "-c", "user.email=tests@mist.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def make_repo(root: Path, page: str) -> Path:
    repo = root / f"web-{uuid.uuid4().hex[:8]}"
    repo.mkdir(parents=True)
    (repo / "Dockerfile").write_text(
        'FROM mist-test/busybox:1\nCOPY index.html /www/\nCMD ["sh", "-c", "trap \'exit 0\' TERM; httpd -f -p 8080 -h /www & wait"]\n'
    )
    (repo / "index.html").write_text(page)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first page")
    return repo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_final(mist: MistAPI, deployment_id: int) -> DeploymentState:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEPLOY_DEADLINE
    while loop.time() < deadline:
        deployment = await mist.deployments.get(deployment_id)
        if deployment.state.is_final:
            return deployment.state
        await asyncio.sleep(0.2)
    raise AssertionError(f"deployment {deployment_id} did not finish")


@pytest.fixture
def repos(tmp_path: Path) -> Path:
    busybox_image()
    return tmp_path / "repos"  # listed in MIST_GIT_ROOTS by the conftest


@pytest.fixture
async def deployed_app(mist: MistAPI, repos: Path):
    project = f"t{uuid.uuid4().hex[:8]}"
    repo = make_repo(repos, "hello from mist\n")
    port = free_port()
    await mist.projects.create(project)
    app_ref = f"{project}/web"
    await mist.apps.create(
        app_ref,
        AppSpec(
            git_url=str(repo),
            port=8080,
            publish=[f"127.0.0.1:{port}:8080"],
            health=HealthCheck(type="http", path="/index.html", interval=0.5),
        ),
    )
    try:
        yield app_ref, repo, port
    finally:
        await mist.apps.delete(app_ref)


async def test_deploy_builds_and_serves_the_repository(mist: MistAPI, deployed_app) -> None:
    app_ref, _, port = deployed_app
    deployment = await mist.apps.deploy(app_ref)
    assert deployment.state == DeploymentState.queued
    assert await wait_final(mist, deployment.id) == DeploymentState.live
    app = await mist.apps.get(app_ref)
    assert app.status == "live"
    assert app.live_deployment_id == deployment.id
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/index.html")
    assert response.text == "hello from mist\n"
    page = await mist.deployments.list(app_ref)
    assert [d.id for d in page.items] == [deployment.id]
    names = {c.name for c in await mist.containers.list()}
    assert app.container_name in names


async def test_deployment_log_follows_to_the_end(mist: MistAPI, deployed_app) -> None:
    app_ref, _, _ = deployed_app
    deployment = await mist.apps.deploy(app_ref)
    lines = [line async for line in mist.deployments.log(deployment.id, follow=True)]
    assert lines, "a deployment log has lines"
    assert [line.seq for line in lines] == sorted(line.seq for line in lines)
    assert (await mist.deployments.get(deployment.id)).state == DeploymentState.live
    # Resuming after the last line seen gives nothing new once the deployment is final.
    rest = [line async for line in mist.deployments.log(deployment.id, after=lines[-1].seq)]
    assert rest == []


async def test_redeploy_supersedes_the_previous_deployment(mist: MistAPI, deployed_app) -> None:
    app_ref, repo, port = deployed_app
    first = await mist.apps.deploy(app_ref)
    assert await wait_final(mist, first.id) == DeploymentState.live
    (repo / "index.html").write_text("second page\n")
    _git(repo, "commit", "-q", "-am", "second page")
    second = await mist.apps.deploy(app_ref)
    assert await wait_final(mist, second.id) == DeploymentState.live
    assert (await mist.deployments.get(first.id)).state == DeploymentState.superseded
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/index.html")).text == "second page\n"


async def test_app_logs_show_the_container_output(mist: MistAPI, deployed_app) -> None:
    app_ref, _, port = deployed_app
    deployment = await mist.apps.deploy(app_ref)
    assert await wait_final(mist, deployment.id) == DeploymentState.live
    lines = [line async for line in mist.apps.logs(app_ref, tail=50)]
    assert all(line.text is not None for line in lines)


async def test_stop_and_start_an_app(mist: MistAPI, deployed_app) -> None:
    app_ref, _, _ = deployed_app
    deployment = await mist.apps.deploy(app_ref)
    assert await wait_final(mist, deployment.id) == DeploymentState.live
    assert (await mist.apps.stop(app_ref)).status == "stopped"
    assert (await mist.apps.start(app_ref)).status == "live"
