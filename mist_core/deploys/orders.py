"""What people (and webhooks) ask of deployments: queue one, roll back to an earlier one, cancel one, and
remove an app (or a preview) with everything it runs.

The API parts check who may ask and then hand over here; so does the webhook receiver, which asks as Mist
itself (``actor`` None). Each order is written in one transaction with its audit entry, then announced and
handed to the workers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from .. import domains, validate
from ..calls import Caller, audit
from ..engine import Engine
from ..errors import Conflict, EngineUnavailable, MistError, NotFound
from ..events import EventBus
from ..models import App, Deployment
from ..store import Store, Writer, ts
from ..store import records as rec
from ..tls.store import CertificateStore
from .pipeline import Pipeline
from .queue import JobQueue

log = logging.getLogger("mist.core")


CANCEL_WAIT = 15.0  # seconds a cancel waits for a running deployment to stop


class DeploymentOrders:
    def __init__(
        self,
        *,
        store: Store,
        engine: Engine,
        events: EventBus,
        pipeline: Pipeline,
        certs: CertificateStore,
        publish_routes: Callable[[], Awaitable[None]],
        wake_workers: Callable[[], None],
    ) -> None:
        self.store = store
        self.engine = engine
        self.events = events
        self.pipeline = pipeline
        self.certs = certs
        self.publish_routes = publish_routes
        self.wake_workers = wake_workers

    async def deployment(self, deployment_id: int) -> Deployment:
        row = await self.store.one(rec.DEPLOYMENT_SELECT + " WHERE d.id = ?", (deployment_id,))
        if row is None:
            raise NotFound(f"there is no deployment {deployment_id}", field="deployment")
        return rec.deployment(row)

    # ------------------------------------------------------------------------------------------ deploy

    async def queue(
        self, app: App, ref: str | None, actor: Caller | None, *, triggered_by: str | None = None
    ) -> Deployment:
        """Queue a deployment of ``ref`` (default: the app's branch) for ``actor``, or for Mist itself
        (``triggered_by`` says what: "webhook")."""
        git_ref = validate.git_ref(ref or app.spec.branch)
        async with self.store.write() as w:
            # Read in the transaction that writes the copy, so a key rotation cannot re-seal the originals in
            # between and leave the copy under the retired key.
            env_rows = await w.all(
                "SELECT key, value, secret, build FROM env_vars WHERE app_id = ? ORDER BY key", (app.id,)
            )
            # The snapshot a deployment runs with (and a rollback repeats); secret values stay sealed in it.
            config = {
                "spec": app.spec.model_dump(mode="json"),
                "env": [
                    {
                        "key": r["key"],
                        "value": r["value"],
                        "secret": bool(r["secret"]),
                        "build": bool(r["build"]),
                    }
                    for r in env_rows
                ],
            }
            dep_id = await w.execute(
                "INSERT INTO deployments (app_id, state, ref, config, triggered_by, created_at) "
                "VALUES (?, 'queued', ?, ?, ?, ?)",
                (app.id, git_ref, json.dumps(config), actor.username if actor else triggered_by, ts()),
            )
            replaced = await self._enqueue(w, app, dep_id)
            await audit(
                w,
                actor,
                "app.deploy",
                project=app.project,
                app=app.name,
                actor=None if actor else triggered_by,
                ref=git_ref,
                deployment=dep_id,
            )
        return await self._queued(app, dep_id, replaced)

    async def _enqueue(self, w: Writer, app: App, dep_id: int) -> list[int]:
        """Queue a new deployment, replacing any of the same app still waiting; returns the replaced ids."""
        rows = await w.all("SELECT deployment_id FROM jobs WHERE app_id = ? AND status = 'queued'", (app.id,))
        replaced = [int(r["deployment_id"]) for r in rows]
        for old in replaced:
            await w.execute(
                "UPDATE deployments SET state = 'cancelled', error = ?, finished_at = ? WHERE id = ?",
                (f"replaced by deployment {dep_id}", ts(), old),
            )
        await w.execute("DELETE FROM jobs WHERE app_id = ? AND status = 'queued'", (app.id,))
        await JobQueue.enqueue(w, dep_id, app.id)
        await w.execute("UPDATE apps SET status = 'deploying', updated_at = ? WHERE id = ?", (ts(), app.id))
        return replaced

    async def _queued(self, app: App, dep_id: int, replaced: list[int]) -> Deployment:
        """Tell subscribers and workers about a deployment just queued by ``_enqueue``."""
        for old in replaced:
            self.events.announce(
                "deployment", "state", project=app.project, app=app.name, deployment_id=old, state="cancelled"
            )
        self.events.announce(
            "deployment", "state", project=app.project, app=app.name, deployment_id=dep_id, state="queued"
        )
        self.events.announce("app", "status", project=app.project, app=app.name, state="deploying")
        self.wake_workers()
        return await self.deployment(dep_id)

    # ------------------------------------------------------------------------------------------ roll back

    async def rollback(self, app: App, to: int | None, actor: Caller) -> Deployment:
        """Queue a deployment that runs the image and snapshot of deployment ``to`` (default: the last one
        that was live before the current one)."""
        app_ref = app.ref
        if to is None:
            row = await self.store.one(
                "SELECT id FROM deployments WHERE app_id = ? AND image IS NOT NULL AND state IN "
                "('superseded', 'rolled_back') AND id != COALESCE(?, 0) ORDER BY id DESC LIMIT 1",
                (app.id, app.live_deployment_id),
            )
            if row is None:
                raise Conflict(f"{app_ref} has no earlier deployment to roll back to")
            to = int(row["id"])
        target = await self.store.one("SELECT * FROM deployments WHERE id = ? AND app_id = ?", (to, app.id))
        if target is None:
            raise NotFound(f"{app_ref} has no deployment {to}", field="to")
        if target["id"] == app.live_deployment_id:
            raise Conflict(f"deployment {to} is the live one already")
        if target["state"] not in ("live", "superseded", "rolled_back") or not target["image"]:
            raise Conflict(
                f"deployment {to} never went live ({target['state']}): only a deployment that was live can be "
                "rolled back to"
            )
        if not await self.engine.image_exists(target["image"]):
            raise Conflict(
                f"the image of deployment {to} ({target['image']}) was pruned, so it cannot be rolled back to; "
                "keep more images with `mist settings set images_per_app N`, or deploy its commit "
                f"({(target['commit_sha'] or target['ref'])[:12]}) again"
            )
        async with self.store.write() as w:
            # The snapshot is read again in the transaction that copies it: a key rotation may have re-sealed
            # it since the checks above.
            snapshot = await w.one("SELECT config FROM deployments WHERE id = ?", (to,))
            if snapshot is None:
                raise NotFound(f"{app_ref} has no deployment {to}", field="to")
            config = json.loads(snapshot["config"])
            config["image"] = target["image"]
            dep_id = await w.execute(
                "INSERT INTO deployments (app_id, state, ref, commit_sha, commit_message, commit_author, source, "
                "rollback_of, config, triggered_by, created_at) VALUES (?, 'queued', ?, ?, ?, ?, 'rollback', ?, ?, ?, ?)",
                (
                    app.id,
                    target["ref"],
                    target["commit_sha"],
                    target["commit_message"],
                    target["commit_author"],
                    to,
                    json.dumps(config),
                    actor.username,
                    ts(),
                ),
            )
            replaced = await self._enqueue(w, app, dep_id)
            await audit(w, actor, "app.rollback", project=app.project, app=app.name, to=to, deployment=dep_id)
        return await self._queued(app, dep_id, replaced)

    # ------------------------------------------------------------------------------------------ cancel

    async def cancel(self, dep: Deployment, actor: Caller) -> Deployment:
        """Cancel a deployment: one still queued leaves the queue; one running is stopped at its next step."""
        deployment_id = dep.id
        if dep.state.is_final:
            raise Conflict(
                f"deployment {deployment_id} is already {dep.state.value}: there is nothing to cancel"
            )
        async with self.store.write() as w:
            removed = await w.execute(
                "DELETE FROM jobs WHERE deployment_id = ? AND status = 'queued'", (deployment_id,)
            )
            if removed:
                await w.execute(
                    "UPDATE deployments SET state = 'cancelled', error = 'cancelled by the user', finished_at = ? WHERE id = ?",
                    (ts(), deployment_id),
                )
            await audit(
                w, actor, "deployment.cancel", project=dep.project, app=dep.app, deployment=deployment_id
            )
        if removed:
            self.events.announce(
                "deployment",
                "state",
                project=dep.project,
                app=dep.app,
                deployment_id=deployment_id,
                state="cancelled",
            )
            await self.pipeline.restore_app_status(dep.app_id, dep.project, dep.app, never_live="new")
        elif self.pipeline.cancel(deployment_id):
            # Wait a while for the running step to stop, well inside a client's 30 s wait for an answer; a
            # step slower to stop than that is answered with the state it is in (it ends as cancelled).
            for _ in range(int(CANCEL_WAIT / 0.1)):
                dep = await self.deployment(deployment_id)
                if dep.state.is_final:
                    break
                await asyncio.sleep(0.1)
        return await self.deployment(deployment_id)

    # ------------------------------------------------------------------------------------------ remove

    async def remove_app(self, app: App, actor: Caller | None) -> None:
        """Delete an app (``actor`` None: Mist itself, closing a preview): what runs first, then the rows.
        Its previews go first, each like an app of its own (their rows would otherwise vanish with it and
        leave their containers running)."""
        for row in await self.store.all(rec.APP_SELECT + " WHERE a.preview_of = ?", (app.id,)):
            await self.remove_preview(rec.app(row))
        app_ref = app.ref
        # Stop what is in flight for this app first, so no worker starts a container after we cleaned up.
        async with self.store.write() as w:
            queued = await w.all(
                "SELECT deployment_id FROM jobs WHERE app_id = ? AND status = 'queued'", (app.id,)
            )
            await w.execute("DELETE FROM jobs WHERE app_id = ? AND status = 'queued'", (app.id,))
            for r in queued:
                await w.execute(
                    "UPDATE deployments SET state = 'cancelled', error = 'the app was deleted' WHERE id = ?",
                    (r["deployment_id"],),
                )
        for dep_id, run in list(self.pipeline.runs.items()):
            if run.app_id == app.id:
                self.pipeline.cancel(dep_id)
        for _ in range(100):
            if not any(r.app_id == app.id for r in self.pipeline.runs.values()):
                break
            await asyncio.sleep(0.1)
        try:
            for c in await self.engine.list_containers(all=True, project=app.project, app=app.name):
                await self.engine.remove(c.name)
            await self.engine.prune_app_images(app.project, app.name, 0, set())
        except EngineUnavailable as err:
            raise EngineUnavailable(
                f"cannot delete {app_ref} while the Docker Engine is down: {err.message}"
            ) from None
        async with self.store.write() as w:
            await w.execute("UPDATE apps SET live_deployment_id = NULL WHERE id = ?", (app.id,))
            await w.execute("DELETE FROM apps WHERE id = ?", (app.id,))
            await audit(
                w, actor, "app.delete", project=app.project, app=app.name, actor=None if actor else "mist"
            )
        self.events.announce("app", "delete", project=app.project, app=app.name)

    async def remove_preview(self, preview: App) -> None:
        """Remove a preview app with its certificates and routes."""
        for d in await domains.list_domains(self.store, preview.id):
            for host in (d.name, d.redirect_from):
                if host:
                    await self.certs.remove(host)
        await self.remove_app(preview, None)
        try:
            await self.publish_routes()
        except MistError as err:
            # The preview is gone either way; the proxy status says what went wrong, and the next change or
            # `mist proxy reload` tries again.
            log.warning("the proxy refused the routes after removing %s: %s", preview.ref, err.message)
