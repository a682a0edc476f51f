"""Helpers for tests of the whole core: apps to deploy, waiting for deployments, reaching containers, and
removing what a test's core left in Docker."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import docker
import httpx

from mist_core.api import MistAPI
from mist_core.models import AppSpec, Deployment, HealthCheck

PASSWORD = "correct horse battery staple"

BUSYBOX_DOCKERFILE = (
    "FROM mist-test/busybox:1\n"
    "COPY index.html /www/index.html\n"
    'CMD ["sh", "-c", "trap \'exit 0\' TERM; httpd -f -p 8080 -h /www & wait"]\n'
)


# busybox httpd as PID 1: it ignores SIGTERM, so stopping it takes the whole grace period. Only for the tests
# of that path; every other app exits on SIGTERM (BUSYBOX_DOCKERFILE).
IGNORES_SIGTERM_DOCKERFILE = (
    "FROM mist-test/busybox:1\n"
    "COPY index.html /www/index.html\n"
    'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
)


def busybox_site(text: str, dockerfile: str = BUSYBOX_DOCKERFILE) -> dict[str, str]:
    """The files of a tiny app that serves ``text`` on port 8080."""
    return {"Dockerfile": dockerfile, "index.html": text}


def busybox_spec(repo: Path, **overrides: object) -> AppSpec:
    fields: dict[str, object] = {
        "git_url": str(repo),
        "port": 8080,
        "health": HealthCheck(type="http", path="/", interval=0.2, retries=25),
    }
    fields.update(overrides)
    return AppSpec(**fields)  # type: ignore[arg-type]


def remove_everything_of(project: str) -> None:
    """Remove the containers, images, volumes and networks Mist made for ``project`` (test project names are
    unique)."""
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        label = {"label": f"dev.mist.project={project}"}
        for c in client.containers.list(all=True, filters=label):
            with contextlib.suppress(docker.errors.NotFound):  # retired by the core meanwhile
                c.remove(force=True)
        for image in client.images.list(filters=label):
            client.images.remove(image.id, force=True)
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)
        remove_networks(client, label)
    finally:
        client.close()


def remove_networks(client: docker.DockerClient, filters: dict[str, str]) -> None:
    """Remove the networks that match ``filters``, detaching whatever is still on them first (a project's
    network is a scarce thing: Docker's default address pools hold about 30)."""
    for network in client.networks.list(filters=filters):
        network.reload()
        for container in network.containers:
            try:
                network.disconnect(container, force=True)
            except docker.errors.APIError:
                pass
        try:
            network.remove()
        except docker.errors.NotFound:
            pass


async def wait_final(mist: MistAPI, deployment_id: int, timeout: float = 180) -> Deployment:
    async with asyncio.timeout(timeout):
        while True:
            dep = await mist.deployments.get(deployment_id)
            if dep.state.is_final:
                return dep
            await asyncio.sleep(0.2)


async def deploy_and_wait(mist: MistAPI, app_ref: str, ref: str | None = None) -> Deployment:
    dep = await mist.apps.deploy(app_ref, ref=ref)
    return await wait_final(mist, dep.id)


async def wait_retired(mist: MistAPI, deployment_id: int, timeout: float = 60) -> Deployment:
    """The deployment once the previous container it replaced is retired (stopped and removed): a deployment
    is live as soon as traffic switched, and the old container goes in the background."""
    async with asyncio.timeout(timeout):
        while True:
            dep = await mist.deployments.get(deployment_id)
            if dep.retiring is None:
                return dep
            await asyncio.sleep(0.1)


async def log_text(mist: MistAPI, deployment_id: int) -> str:
    return "\n".join([line.text async for line in mist.deployments.log(deployment_id)])


def container_network(attrs: dict[str, Any]) -> str:
    """The network Mist put an app container on: its project's (named from the project's uid), or ``mist``
    for one deployed before projects had their own."""
    uid = (attrs["Config"]["Labels"] or {}).get("dev.mist.project-uid")
    return f"mist_{uid}" if uid else "mist"


def container_ip(name: str) -> str:
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        attrs = client.containers.get(name).attrs
        return str(attrs["NetworkSettings"]["Networks"][container_network(attrs)]["IPAddress"])
    finally:
        client.close()


async def fetch(name: str, port: int = 8080, path: str = "/") -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://{container_ip(name)}:{port}{path}")
        response.raise_for_status()
        return response.text
