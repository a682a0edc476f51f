"""A managed database's container: its image (pulled when missing), its volume and place on the project's
network, made from its engine's spec, and its state as Docker's health check tells it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..engine import (
    LABEL_DATABASE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    ContainerSpec,
    Engine,
    project_network,
)
from ..models import DatabaseSpec, DatabaseStatus, Volume
from .databases import Credentials, DatabaseEngine

# How often Mist looks at a starting database's health, and how long it waits for it by default.
HEALTH_POLL = 0.5
HEALTH_WAIT = 120.0


def container_name(project_uid: str, name: str) -> str:
    """The database's container, also its host name on the project's network (from the project's uid, which
    a rename does not change, so linked apps keep reaching it)."""
    return f"mist-db-{project_uid}-{name}"


def volume_name(project_uid: str, name: str) -> str:
    """The Docker volume of the database's data (apart from the apps' ``mist_<uid>_<volume>``)."""
    return f"mistdb_{project_uid}_{name}"


@dataclass(frozen=True)
class DatabaseRun:
    """Everything that makes one database's container."""

    project: str
    project_uid: str
    name: str
    engine: DatabaseEngine
    version: str
    creds: Credentials
    spec: DatabaseSpec

    @property
    def container(self) -> str:
        return container_name(self.project_uid, self.name)

    @property
    def volume(self) -> str:
        return volume_name(self.project_uid, self.name)

    @property
    def image(self) -> str:
        return self.engine.image(self.version)

    @property
    def owner(self) -> dict[str, str]:
        """The labels that say a volume is this database's."""
        return {LABEL_PROJECT_UID: self.project_uid, LABEL_DATABASE: self.name}


async def ensure_image(engine: Engine, image: str, auth: dict[str, str] | None = None) -> bool:
    """Pull ``image`` unless the engine has it; True when it was pulled. A registry that cannot be reached, or
    refuses, is a clear error naming the image."""
    if await engine.image_exists(image):
        return False
    await engine.pull(image, auth)
    return True


async def run_container(engine: Engine, run: DatabaseRun) -> None:
    """Create and start the database's container on its project's network, with its volume (made, labelled as
    this database's, on first use; an existing one must be)."""
    network = project_network(run.project_uid)
    await engine.ensure_network(
        network,
        labels={LABEL_PROJECT: run.project, LABEL_PROJECT_UID: run.project_uid},
        owner={LABEL_PROJECT_UID: run.project_uid},
    )
    await engine.ensure_volume(run.volume, labels={LABEL_PROJECT: run.project, **run.owner}, owner=run.owner)
    spec = run.spec
    await engine.run(
        ContainerSpec(
            name=run.container,
            image=run.image,
            env=run.engine.container_env(run.creds),
            labels={LABEL_PROJECT: run.project, LABEL_PROJECT_UID: run.project_uid, LABEL_DATABASE: run.name},
            command=run.engine.command(run.creds, spec.persistence),
            publish=[f"{spec.public_port}:{run.engine.port}"] if spec.public_port else [],
            memory=int(spec.memory) if spec.memory is not None else None,
            cpus=spec.cpus,
            restart=spec.restart,
            volumes=[Volume(name=run.volume, path=run.engine.data_dir)],
            network=network,
            healthcheck=run.engine.health_command(run.creds),
        )
    )


def status_of(info: dict[str, Any] | None) -> DatabaseStatus:
    """The database's state from Docker's inspect data of its container."""
    if info is None:
        return "missing"
    state = info.get("State") or {}
    if not state.get("Running"):
        return "stopped"
    health = (state.get("Health") or {}).get("Status")
    if health == "healthy" or health is None:
        return "running"
    return "unhealthy" if health == "unhealthy" else "starting"


def health_output(info: dict[str, Any] | None) -> str:
    """The last health check's output (what a failing check said)."""
    log = (((info or {}).get("State") or {}).get("Health") or {}).get("Log") or []
    return str(log[-1].get("Output") or "").strip() if log else ""


async def wait_healthy(engine: Engine, name: str, timeout: float = HEALTH_WAIT) -> DatabaseStatus:
    """Wait until the container's health check passes, it fails, or the container stops; its state then (still
    ``starting`` after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        status = status_of(await engine.inspect(name))
        if status != "starting" or time.monotonic() >= deadline:
            return status
        await asyncio.sleep(HEALTH_POLL)


async def remove(engine: Engine, run: DatabaseRun, *, keep_volume: bool) -> None:
    """Remove the database's container, and its volume with the data unless ``keep_volume``."""
    await engine.remove(run.container)
    if not keep_volume:
        await engine.remove_volume(run.volume, run.owner)
