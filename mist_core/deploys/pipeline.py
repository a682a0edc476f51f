"""The deployment pipeline: ``queued → fetching → building → starting → checking → switching → live``.

Each step is persisted before it runs and writes to the deployment's log. The new container starts beside the
old one; the old one is retired only after the new one passed its health check and traffic moved to it. A
deployment is live as soon as traffic has switched: retiring the previous container (drain, SIGTERM, grace
period, removal) goes on in the background, written in the deployment's log and remembered in its snapshot
(``retiring``), so a daemon that stops meanwhile finishes it when it starts again. Whatever a failed,
cancelled or interrupted deployment made is removed, and the live container is left alone; when Mist cannot
bring back a previous container it had stopped, the app is marked down with the reason, never left silently
down.

A container joins only its project's network (named from the project's uid) and mounts only volumes made for
its project, so apps of different projects can neither reach each other nor share data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..builds import plan_build
from ..builds.runner import build_image
from ..engine import (
    LABEL_APP,
    LABEL_DEPLOYMENT,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    LABEL_VOLUME,
    ContainerSpec,
    RunningContainer,
    project_network,
    project_volume,
)
from ..engine.health import wait_healthy
from ..errors import EngineUnavailable, MistError
from ..models import AppSpec, DeploymentState, StepTiming, Volume
from ..proxy.install import connect_proxy
from ..secrets import SecretError
from ..sources import git
from ..store import now, ts
from ..store.records import DEPLOYMENT_SELECT
from ..store.records import deployment as deployment_from_row
from .queue import Job, JobQueue

if TYPE_CHECKING:
    from ..engine import Engine
    from ..events import EventBus
    from ..secrets import SecretBox
    from ..store import Store
    from .logs import DeploymentLogs

log = logging.getLogger("mist.core")


class SourceCredentials(Protocol):
    """Where the pipeline gets what a checkout needs (``sources.credentials.SourceCredentials``)."""

    async def fetch_options(self, app_id: int) -> dict[str, Any]: ...

    async def pin_known_hosts(self, app_id: int, known_hosts: str) -> None: ...


S = DeploymentState
HEARTBEAT = 10.0


class Cancelled(Exception):
    """The user cancelled the deployment."""


@dataclass
class Run:
    """One deployment being carried out."""

    job: Job
    deployment_id: int
    source: str
    app_id: int
    project: str
    app: str
    ref: str
    spec: AppSpec
    env: list[dict[str, Any]]
    project_uid: str  # names the project's network and volumes
    unscoped_volumes: bool  # the project existed before volumes were per project (migration 0006)
    steps: list[StepTiming] = field(default_factory=list)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    image: str | None = None
    container: RunningContainer | None = None
    stopped_old: str | None = None  # the old live container, when stop-then-start stopped it
    secret_values: list[str] = field(default_factory=list)  # scrubbed from every log line
    generated: bool = False  # the image was built from a generated Dockerfile (its CMD is the start command)
    port: int | None = None  # the port the app listens on, when the build found it (a rollback reuses it)
    routed: bool = False  # the proxy was pointed at this deployment's container
    task: asyncio.Task[Any] | None = None
    down_reason: str | None = None  # the app's live container could not be brought back, and why


def image_tag(project: str, app: str, deployment_id: int) -> str:
    return f"mist/{project}/{app}:{deployment_id}"


def container_name(project: str, app: str, deployment_id: int) -> str:
    return f"mist-{project}-{app}-{deployment_id}"


def labels(instance: str, project: str, app: str, deployment_id: int, project_uid: str) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_INSTANCE: instance,
        LABEL_PROJECT: project,
        LABEL_PROJECT_UID: project_uid,
        LABEL_APP: app,
        LABEL_DEPLOYMENT: str(deployment_id),
    }


class Pipeline:
    """Runs one deployment job at a time per call of ``run``; its collaborators are handed in by the core."""

    def __init__(
        self,
        *,
        store: Store,
        engine: Engine,
        events: EventBus,
        logs: DeploymentLogs,
        queue: JobQueue,
        secrets: SecretBox,
        setting: Callable[[str], Awaitable[str]],
        publish_routes: Callable[[dict[int, int] | None], Awaitable[None]],
        sources: SourceCredentials,
        work_dir: Path,
        git_roots: list[Path],
        docker_bin: str,
        instance_id: str,
    ) -> None:
        self.store = store
        self.engine = engine
        self.events = events
        self.logs = logs
        self.queue = queue
        self.secrets = secrets
        self.setting = setting
        self.publish_routes = publish_routes
        self.sources = sources
        self.work_dir = work_dir
        self.git_roots = git_roots
        self.docker_bin = docker_bin
        self.instance_id = instance_id
        self.runs: dict[int, Run] = {}
        # Previous containers being retired after their replacement went live, by container name.
        self.retirements: dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------------------------------------ bookkeeping

    def log(self, run: Run, text: str, stream: str = "system") -> None:
        for secret in run.secret_values:
            text = text.replace(secret, "******")
        self.logs.append(run.deployment_id, text, stream=stream)

    async def _enter(self, run: Run, state: DeploymentState) -> None:
        """Persist the new step before doing it."""
        if run.cancel.is_set():
            raise Cancelled()
        stamp = now()
        if run.steps and run.steps[-1].finished_at is None:
            run.steps[-1].finished_at = stamp
        run.steps.append(StepTiming(step=state, started_at=stamp))
        await self._update(run, state=state.value, steps=_steps_json(run.steps))
        self.log(run, f"==> {state.value}")
        self._publish(run, state.value)

    async def _remember(self, run: Run, key: str, value: object) -> None:
        """Record a fact learnt while building in the deployment's snapshot (whether the image's CMD is Mist's,
        the port the app listens on), so a rollback and the proxy's routes use it too."""
        async with self.store.write() as w:
            await w.execute(
                "UPDATE deployments SET config = json_set(config, '$.' || ?, json(?)) WHERE id = ?",
                (key, json.dumps(value), run.deployment_id),
            )

    async def _update(self, run: Run, **columns: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        async with self.store.write() as w:
            await w.execute(
                f"UPDATE deployments SET {assignments} WHERE id = ?", (*columns.values(), run.deployment_id)
            )

    def _publish(self, run: Run, state: str) -> None:
        self.events.announce(
            "deployment",
            "state",
            project=run.project,
            app=run.app,
            deployment_id=run.deployment_id,
            state=state,
        )

    async def _set_app_status(self, app_id: int, project: str, app: str, status: str) -> None:
        async with self.store.write() as w:
            await w.execute("UPDATE apps SET status = ?, updated_at = ? WHERE id = ?", (status, ts(), app_id))
        self.events.announce("app", "status", project=project, app=app, state=status)

    # ------------------------------------------------------------------------------------------ running a job

    async def load(self, job: Job) -> Run:
        row = await self.store.one(DEPLOYMENT_SELECT + " WHERE d.id = ?", (job.deployment_id,))
        if row is None:
            raise MistError(f"deployment {job.deployment_id} vanished")
        config = json.loads(row["config"])
        dep = deployment_from_row(row)
        project = await self.store.one(
            "SELECT p.uid, p.unscoped_volumes FROM projects p JOIN apps a ON a.project_id = p.id WHERE a.id = ?",
            (dep.app_id,),
        )
        if project is None:
            raise MistError(f"the project of deployment {job.deployment_id} vanished")
        return Run(
            job=job,
            deployment_id=dep.id,
            source=dep.source,
            app_id=dep.app_id,
            project=dep.project,
            app=dep.app,
            ref=dep.ref,
            spec=AppSpec.model_validate(config["spec"]),
            env=config.get("env", []),
            project_uid=project["uid"],
            unscoped_volumes=bool(project["unscoped_volumes"]),
            steps=dep.steps,
            image=config.get("image"),
            generated=bool(config.get("generated")),
            port=config.get("port"),
        )

    async def run(self, job: Job) -> None:
        """Carry out one claimed job to a final state (or back to the queue for a retry)."""
        run = await self.load(job)
        self.runs[run.deployment_id] = run
        await self.logs.open(run.deployment_id)
        heartbeat = asyncio.create_task(self._heartbeat(job))
        await self._set_app_status(run.app_id, run.project, run.app, "deploying")
        timeout = float(await self.setting("deploy_timeout"))
        try:
            run.task = asyncio.current_task()  # type: ignore[assignment]
            async with asyncio.timeout(timeout):
                await self._execute(run)
        except Cancelled:
            await self._discard(run)
            await self.finish(run, S.cancelled, "cancelled by the user")
        except asyncio.CancelledError:
            if not run.cancel.is_set():
                raise  # the core is shutting down: the job stays 'running' and the next start recovers it
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await self._discard(run)
            await self.finish(run, S.cancelled, "cancelled by the user")
        except TimeoutError:
            await self._discard(run)
            await self.finish(run, S.failed, f"timed out after {timeout:.0f} s (setting deploy_timeout)")
        except EngineUnavailable as err:
            await self._discard(run)
            attempts = int(await self.setting("deploy_attempts"))
            if job.attempts < attempts:
                delay = min(60.0, 2.0**job.attempts)
                self.log(
                    run,
                    f"{err.message}; retrying in {delay:.0f} s (attempt {job.attempts + 1} of {attempts})",
                )
                await self._update(run, state=S.queued.value)
                self._publish(run, S.queued.value)
                await self.logs.close(run.deployment_id)
                await self.queue.retry_later(job, delay)
                await self._restore_app_status(run)
                return
            await self.finish(run, S.failed, err.message)
        except MistError as err:
            await self._discard(run)
            if run.cancel.is_set():
                await self.finish(run, S.cancelled, "cancelled by the user")
            else:
                await self.finish(run, S.failed, err.message)
        except Exception as err:  # a bug: fail the deployment, keep the daemon
            await self._discard(run)
            await self.finish(run, S.failed, f"internal error: {type(err).__name__}: {err}")
            log.exception("deployment %s failed unexpectedly", run.deployment_id)
        finally:
            heartbeat.cancel()
            self.runs.pop(run.deployment_id, None)
            shutil.rmtree(self.work_dir / str(run.deployment_id), ignore_errors=True)

    async def _heartbeat(self, job: Job) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self.queue.heartbeat(job)
            except Exception as err:  # noqa: BLE001 - the next beat tries again; the lease outlives one miss
                log.warning("deployment %s: could not renew its lease: %s", job.deployment_id, err)

    async def _execute(self, run: Run) -> None:
        work = self.work_dir / str(run.deployment_id)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        opened = await self._open_env(run)
        run.secret_values = [e["value"] for e in opened if e["secret"] and e["value"]]
        build_env = {e["key"]: e["value"] for e in opened if e["build"]}
        build_secrets = {e["key"]: e["value"] for e in opened if e["build"] and e["secret"]}
        build_args = {k: v for k, v in build_env.items() if k not in build_secrets}

        def on_line(text: str) -> None:
            self.log(run, text, stream="stdout")

        port = run.spec.port or run.port
        if run.image is None:
            await self._enter(run, S.fetching)
            credentials = await self.sources.fetch_options(run.app_id)
            run.secret_values += [
                v for k, v in credentials.items() if k in ("token", "ssh_private_key") and v
            ]
            checkout = await git.fetch(
                run.spec.git_url,
                run.ref,
                work / "src",
                allowed_roots=self.git_roots,
                on_line=on_line,
                cancel=run.cancel,
                **credentials,
            )
            if checkout.known_hosts and not credentials.get("known_hosts"):
                await self.sources.pin_known_hosts(run.app_id, checkout.known_hosts)
                self.log(run, "pinned the git server's ssh host key:\n" + checkout.known_hosts.strip())
            await self._update(
                run,
                commit_sha=checkout.commit_sha,
                commit_message=checkout.message,
                commit_author=checkout.author,
            )
            self.log(run, f"commit {checkout.commit_sha[:12]} {checkout.message!r} by {checkout.author}")

            await self._enter(run, S.building)
            plan = plan_build(
                work / "src",
                run.spec,
                build_secret_names=sorted(build_secrets),
                build_arg_names=sorted(build_args),
                generated_path=work / "Dockerfile.mist",
            )
            plan.write()
            if plan.generated is not None:
                self.log(run, f"No Dockerfile found: generated one for a {plan.stack} app:")
                for line in plan.generated.splitlines():
                    self.log(run, f"    {line}")
                # The generated CMD already runs the start command (through sh, so $PORT expands).
                run.generated = True
                await self._remember(run, "generated", True)
            port = port or plan.port
            if port:
                await self._remember(run, "port", port)
            tag = image_tag(run.project, run.app, run.deployment_id)
            await build_image(
                context_dir=plan.context_dir,
                dockerfile=plan.dockerfile,
                tag=tag,
                labels=labels(self.instance_id, run.project, run.app, run.deployment_id, run.project_uid),
                build_args=build_args,
                secrets=build_secrets,
                on_line=on_line,
                docker_bin=self.docker_bin,
                docker_host=self.engine.base_url,  # the address the engine resolved (MIST_DOCKER_HOST, DOCKER_HOST)
                cancel=run.cancel,
            )
            run.image = tag
            await self._update(run, image=tag)
        else:
            # A rollback: the image exists already.
            self.log(run, f"rolling back to image {run.image}")
            if not await self.engine.image_exists(run.image):
                raise MistError(f"image {run.image} was pruned; this deployment cannot be repeated")
            await self._update(run, image=run.image)

        await self._enter(run, S.starting)
        # Opened again here, not kept from before the build: the master key may have been rotated meanwhile.
        opened = await self._open_env(run)
        run.secret_values = [e["value"] for e in opened if e["secret"] and e["value"]]
        runtime_env = {e["key"]: e["value"] for e in opened if not e["build"]}
        old = await self.live_container(run)
        why = run.spec.stop_then_start_reason
        if old and why:
            self.log(run, f"Zero-downtime switch is not possible because {why}: stopping {old} first.")
            await self.engine.stop(old, grace=float(await self.setting("stop_grace_period")))
            run.stopped_old = old
        network = await self._project_network(run)
        volumes = await self._volumes(run)
        name = container_name(run.project, run.app, run.deployment_id)
        command = (
            shlex.split(run.spec.start_command) if run.spec.start_command and not run.generated else None
        )
        if port and "PORT" not in runtime_env:
            runtime_env["PORT"] = str(port)
        run.container = await self.engine.run(
            ContainerSpec(
                name=name,
                image=run.image,
                env=runtime_env,
                labels=labels(self.instance_id, run.project, run.app, run.deployment_id, run.project_uid),
                command=command,
                publish=list(run.spec.publish),
                memory=run.spec.memory,
                cpus=run.spec.cpus,
                restart=run.spec.restart,
                volumes=volumes,
                network=network,
                aliases=[f"{run.app}.{run.project}"],
            )
        )
        await self._update(run, container_name=name)
        self.log(run, f"started container {name} ({run.container.ip or 'no address'})")

        await self._enter(run, S.checking)
        await wait_healthy(
            self.engine,
            run.container,
            run.spec.health,
            port,
            on_line=lambda t: self.log(run, t),
            cancel=run.cancel,
        )

        await self._enter(run, S.switching)
        await self.switch(run, old)

    async def _project_network(self, run: Run) -> str:
        """The project's network, made on its first deployment, with the proxy attached: Traefik dials the app
        by name there, so it must be on it before the switch publishes the route."""
        network = project_network(run.project_uid)
        created = await self.engine.ensure_network(
            network,
            labels={LABEL_PROJECT: run.project, LABEL_PROJECT_UID: run.project_uid},
            owner={LABEL_PROJECT_UID: run.project_uid},
        )
        if created:
            self.log(run, f"created network {network} for project {run.project}")
        if await connect_proxy(self.engine, [network]):
            self.log(run, f"attached the proxy to network {network}")
        return network

    async def _volumes(self, run: Run) -> list[Volume]:
        """The Docker volumes to mount, made for this project (checked, or created labelled as its own), and
        remembered in the deployment's snapshot so ``mist app show`` names them."""
        engine = self.engine
        mounts: list[Volume] = []
        docker_names: dict[str, str] = {}
        for volume in run.spec.volumes:
            name = project_volume(run.project_uid, volume.name)
            if run.unscoped_volumes and await self._unscoped_volume(run, volume.name, name):
                name = volume.name
                self.log(
                    run,
                    f"volume {volume.name}: mounting Docker volume {name}, made for this project before each "
                    "project had its own volumes",
                )
            elif await engine.ensure_volume(
                name,
                labels={
                    LABEL_PROJECT: run.project,
                    LABEL_PROJECT_UID: run.project_uid,
                    LABEL_APP: run.app,
                    LABEL_VOLUME: volume.name,
                },
                owner={LABEL_PROJECT_UID: run.project_uid},
            ):
                self.log(run, f"volume {volume.name}: created Docker volume {name}")
            mounts.append(Volume(name=name, path=volume.path))
            docker_names[volume.name] = name
        await self._remember(run, "docker_volumes", docker_names)
        return mounts

    async def _unscoped_volume(self, run: Run, bare: str, scoped: str) -> bool:
        """Whether to keep mounting ``bare``, the volume an app of this project made before volumes were per
        project: only while there is no per-project one yet, and only one that Mist's labels say it made for
        this project on this instance (never another project's, whatever its name)."""
        engine = self.engine
        if await engine.volume_labels(scoped) is not None:
            return False
        found = await engine.volume_labels(bare)
        return (
            found is not None
            and found.get(LABEL_MANAGED) == "true"
            and found.get(LABEL_INSTANCE) == self.instance_id
            and found.get(LABEL_PROJECT) == run.project
            and LABEL_PROJECT_UID not in found
        )

    async def _open_env(self, run: Run) -> list[dict[str, Any]]:
        """The snapshot's env vars with secrets opened. A master-key rotation re-seals the stored snapshot
        and then retires the old key: when the copy read earlier no longer opens, it is read again."""
        try:
            return self._env(run)
        except SecretError:
            row = await self.store.one(
                "SELECT json_extract(config, '$.env') AS env FROM deployments WHERE id = ?",
                (run.deployment_id,),
            )
            fresh = json.loads(row["env"]) if row and row["env"] else []
            if fresh == run.env:
                raise
            run.env = fresh
            self.log(
                run, "the master key was rotated while this deployment ran: read its config snapshot again"
            )
            return self._env(run)

    def _env(self, run: Run) -> list[dict[str, Any]]:
        """The snapshot's env vars with secrets opened."""
        out = []
        for e in run.env:
            value = e["value"]
            if e["secret"]:
                value = self.secrets.open(value, bound_to=f"env:{run.app_id}:{e['key']}")
            out.append({**e, "value": value})
        return out

    async def live_container(self, run: Run) -> str | None:
        row = await self.store.one(
            "SELECT d.container_name FROM apps a JOIN deployments d ON d.id = a.live_deployment_id WHERE a.id = ?",
            (run.app_id,),
        )
        return row["container_name"] if row else None

    async def switch(self, run: Run, old: str | None) -> None:
        """Move traffic to the new container and make the new deployment the live one; the old container is
        retired afterwards, in the background.

        Idempotent, so a core that died in the middle of it can run it again on restart.
        """
        drain = 0
        if await self.store.scalar("SELECT COUNT(*) FROM domains WHERE app_id = ?", (run.app_id,)):
            self.log(run, "pointing the proxy at the new container")
            run.routed = True
            await self.publish_routes({run.app_id: run.deployment_id})
            drain = int(await self.setting("drain_seconds"))
        new_name = run.container.name if run.container is not None else container_name_of(run)
        retiring = old if old and old != new_name else None
        stamp = now()
        run.steps[-1].finished_at = stamp
        async with self.store.write() as w:
            if retiring:
                # Remembered before it is live: a daemon that stops from here on still retires it.
                await w.execute(
                    "UPDATE deployments SET config = json_set(config, '$.retiring', ?) WHERE id = ?",
                    (retiring, run.deployment_id),
                )
            # The live deployment a rollback replaces was rolled back; one a new deployment replaces, superseded.
            await w.execute(
                "UPDATE deployments SET state = ? WHERE app_id = ? AND state = 'live' AND id != ?",
                ("rolled_back" if run.source == "rollback" else "superseded", run.app_id, run.deployment_id),
            )
            await w.execute(
                "UPDATE deployments SET state = 'live', finished_at = ?, steps = ? WHERE id = ?",
                (ts(stamp), _steps_json(run.steps), run.deployment_id),
            )
            await w.execute(
                "UPDATE apps SET live_deployment_id = ?, status = 'live', updated_at = ? WHERE id = ?",
                (run.deployment_id, ts(stamp), run.app_id),
            )
            await JobQueue.finish_in(w, run.job)
        self.log(run, f"deployment {run.deployment_id} is live")
        if retiring:
            self.log(run, f"retiring the previous container {retiring} in the background")
        self._publish(run, S.live.value)
        self.events.announce("app", "status", project=run.project, app=run.app, state="live")
        await self.logs.close(run.deployment_id)
        if retiring:
            self.retire(run.deployment_id, run.project, run.app, retiring, drain=drain)
        await self._prune_logs(run)
        await self._prune_images(run.deployment_id, run.project, run.app, run.image)

    async def _prune_images(self, deployment_id: int, project: str, app: str, image: str | None) -> None:
        """Remove the app's images beyond ``images_per_app`` (an image a container still uses is kept: the
        retired container's goes when it is gone)."""
        try:
            keep = int(await self.setting("images_per_app"))
            removed = await self.engine.prune_app_images(project, app, keep, {image or ""})
            for tag in removed:
                log.info("pruned image %s", tag)
        except MistError as err:
            await self.note_after_end(
                deployment_id,
                f"could not prune the app's old images (they stay until the next deployment): {err.message}",
            )

    # ------------------------------------------------------------------------------------------ retiring

    def retire(self, deployment_id: int, project: str, app: str, container: str, *, drain: int = 0) -> None:
        """Retire ``container``, replaced by deployment ``deployment_id``, in the background: let it finish
        the requests it has for ``drain`` seconds, stop it (SIGTERM, then SIGKILL after the stop grace
        period) and remove it."""
        if container in self.retirements:
            return
        task = asyncio.create_task(
            self._retire(deployment_id, project, app, container, drain), name=f"mist-retire-{container}"
        )
        self.retirements[container] = task
        task.add_done_callback(lambda _: self.retirements.pop(container, None))

    async def _retire(self, deployment_id: int, project: str, app: str, container: str, drain: int) -> None:
        self.events.announce(
            "deployment",
            "retiring",
            project=project,
            app=app,
            deployment_id=deployment_id,
            state="retiring previous container",
        )
        grace = float(await self.setting("stop_grace_period"))
        if drain:
            await self.note_after_end(
                deployment_id,
                f"the previous container {container} finishes the requests it has for {drain} s",
            )
            await asyncio.sleep(drain)
        await self.note_after_end(
            deployment_id,
            f"stopping the previous container {container} (SIGTERM, then SIGKILL after {grace:g} s)",
        )
        try:
            await self.engine.stop(container, grace=grace)
            await self.engine.remove(container)
        except MistError as err:
            await self.note_after_end(
                deployment_id,
                f"could not remove the previous container {container}: {err.message}; Mist tries again when "
                "the daemon starts next, or remove it with docker rm -f",
            )
            return
        async with self.store.write() as w:
            await w.execute(
                "UPDATE deployments SET config = json_remove(config, '$.retiring') WHERE id = ?",
                (deployment_id,),
            )
        await self.note_after_end(deployment_id, f"removed the previous container {container}")
        image = await self.store.scalar("SELECT image FROM deployments WHERE id = ?", (deployment_id,))
        await self._prune_images(deployment_id, project, app, image)
        self.events.announce(
            "deployment", "retired", project=project, app=app, deployment_id=deployment_id, state="live"
        )

    async def resume_retirements(self) -> None:
        """Retire again the previous containers a stopped daemon was retiring (never an app's live one)."""
        rows = await self.store.all(
            "SELECT d.id, json_extract(d.config, '$.retiring') AS retiring, a.name AS app, p.name AS project, "
            "(SELECT container_name FROM deployments WHERE id = a.live_deployment_id) AS live "
            "FROM deployments d JOIN apps a ON a.id = d.app_id JOIN projects p ON p.id = a.project_id "
            "WHERE json_extract(d.config, '$.retiring') IS NOT NULL"
        )
        for row in rows:
            if row["retiring"] == row["live"]:
                continue
            await self.note_after_end(
                row["id"], f"the daemon stopped while retiring {row['retiring']}: retiring it again"
            )
            self.retire(row["id"], row["project"], row["app"], row["retiring"])

    async def close(self) -> None:
        """Stop retiring (a daemon that starts again finishes what is left)."""
        tasks = list(self.retirements.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - shutting down: the next start finishes the retirement
                log.warning("retiring a previous container failed", exc_info=True)

    async def note_after_end(self, deployment_id: int, text: str) -> None:
        """A line for a deployment's log after it ended, and for the daemon's log."""
        log.info("deployment %s: %s", deployment_id, text)
        try:
            await self.logs.append_after_end(deployment_id, text)
        except Exception:  # noqa: BLE001 - the daemon's log has it
            log.warning("deployment %s: could not store a log line", deployment_id, exc_info=True)

    async def _prune_logs(self, run: Run) -> None:
        """Keep the logs of the app's last ``log_retention_deployments`` deployments."""
        keep = int(await self.setting("log_retention_deployments"))
        async with self.store.write() as w:
            await w.execute(
                "DELETE FROM deployment_logs WHERE deployment_id IN (SELECT id FROM deployments WHERE app_id = ? "
                "ORDER BY id DESC LIMIT -1 OFFSET ?)",
                (run.app_id, keep),
            )

    async def _discard(self, run: Run) -> None:
        """Remove what this deployment made, and bring back the old container if stop-then-start stopped it.

        Nothing here hides a failure: each is written in the deployment's log and the daemon's, and an old
        container that cannot be started again marks the app down with the reason."""
        if run.routed:  # the proxy was pointed at the new container: point it back at the live one
            try:
                await self.publish_routes(None)
            except Exception as err:  # noqa: BLE001 - reported; the failure being handled goes on
                self._trouble(run, f"could not point the proxy back at the live container: {_reason(err)}")
        try:
            await self.engine.remove_deployment_leftovers(run.deployment_id)
        except Exception as err:  # noqa: BLE001 - reported; the next daemon start sweeps what is left
            self._trouble(run, f"could not remove what this deployment made: {_reason(err)}")
        if run.stopped_old:
            try:
                await self.engine.start(run.stopped_old)
            except Exception as err:  # noqa: BLE001 - reported, and the app is marked down
                run.down_reason = (
                    f"the previous container {run.stopped_old} was stopped for this deployment and could not "
                    f"be started again: {_reason(err)}; deploy the app again"
                )
                self._trouble(run, run.down_reason)
            else:
                self.log(run, f"restarted the previous container {run.stopped_old}")

    def _trouble(self, run: Run, text: str) -> None:
        log.warning("deployment %s: %s", run.deployment_id, text)
        self.log(run, text)

    async def finish(self, run: Run, state: DeploymentState, error: str | None) -> None:
        stamp = now()
        if run.steps and run.steps[-1].finished_at is None:
            run.steps[-1].finished_at = stamp
        if error:
            self.log(run, f"{'cancelled' if state == S.cancelled else 'failed'}: {error}")
        async with self.store.write() as w:
            await w.execute(
                "UPDATE deployments SET state = ?, error = ?, finished_at = ?, steps = ? WHERE id = ?",
                (state.value, error, ts(stamp), _steps_json(run.steps), run.deployment_id),
            )
            await JobQueue.finish_in(w, run.job)
        self._publish(run, state.value)
        await self.logs.close(run.deployment_id)
        await self._restore_app_status(run)

    async def _restore_app_status(self, run: Run) -> None:
        if run.down_reason:
            await self.mark_down(run.app_id, run.project, run.app, run.down_reason)
            return
        await self.restore_app_status(run.app_id, run.project, run.app, never_live="failed")

    async def mark_down(self, app_id: int, project: str, app: str, reason: str) -> None:
        """The app's live container is not running and Mist could not bring it back: the app shows as
        crashed, with ``reason`` (kept with the live deployment, so the next one that goes live clears it)."""
        async with self.store.write() as w:
            await w.execute("UPDATE apps SET status = 'crashed', updated_at = ? WHERE id = ?", (ts(), app_id))
            await w.execute(
                "UPDATE deployments SET config = json_set(config, '$.down_reason', ?) "
                "WHERE id = (SELECT live_deployment_id FROM apps WHERE id = ?)",
                (reason, app_id),
            )
        self.events.announce("app", "status", project=project, app=app, state="crashed")

    async def restore_app_status(self, app_id: int, project: str, app: str, *, never_live: str) -> None:
        """After a deployment ended or left the queue: deploying while another waits, else live if a
        deployment is, else ``never_live`` (``failed`` after a failure, ``new`` after a cancelled first one)."""
        row = await self.store.one(
            "SELECT live_deployment_id, (SELECT COUNT(*) FROM jobs WHERE app_id = apps.id) AS pending, "
            "(SELECT json_extract(config, '$.down_reason') FROM deployments WHERE id = live_deployment_id) AS down "
            "FROM apps WHERE id = ?",
            (app_id,),
        )
        if row is None:
            return
        live = "crashed" if row["down"] else "live"  # a live container Mist could not bring back stays down
        status = "deploying" if row["pending"] else (live if row["live_deployment_id"] else never_live)
        await self._set_app_status(app_id, project, app, status)

    def cancel(self, deployment_id: int) -> bool:
        run = self.runs.get(deployment_id)
        if run is None:
            return False
        run.cancel.set()
        if run.task is not None:
            run.task.cancel(msg="mist:user-cancel")
        return True


def container_name_of(run: Run) -> str:
    return container_name(run.project, run.app, run.deployment_id)


def _reason(err: BaseException) -> str:
    return err.message if isinstance(err, MistError) else f"{type(err).__name__}: {err}"


def _steps_json(steps: list[StepTiming]) -> str:
    return json.dumps([s.model_dump(mode="json") for s in steps])
