"""The ``Core``: the process-wide part of Mist, under the API parts.

A ``Core`` owns one data directory (it holds an exclusive lock on it): the store, the master key, the Docker
engine client, the deploy queue and its workers, the deployment pipeline and orders, the git side, the Docker
events watcher, the metrics sampler, the certificate scheduler and the routes. It hands each of these the
collaborators it needs; none of them reaches back up to the core. A caller sees it through a view
(``LocalMist``, in ``mist_core.local``, the layer above): ``core.api(token)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from . import containers as live_containers
from . import datadir
from . import settings as settings_defs
from .api import MistAPI
from .auth.access import AccessTokens
from .backups.keys import KEY_FILE as BACKUP_KEY_FILE
from .backups.service import BackupService
from .calls import Caller, audit
from .config import CoreConfig
from .deploys.logs import DeploymentLogs
from .deploys.orders import DeploymentOrders
from .deploys.pipeline import Pipeline, container_name_of
from .deploys.queue import JobQueue
from .engine import LABEL_DEPLOYMENT, LABEL_PROJECT_UID, NETWORK, Engine, project_network
from .errors import Conflict, MistError, NotFound
from .events import EventBus
from .gitops import GitOps
from .metrics import MetricsSampler
from .models import Certificate, DeploymentState, Session
from .proxy.publish import RoutePublisher
from .secrets import SEALED, SecretBox
from .sources.credentials import SourceCredentials
from .store import Store, now, parse_ts, ts
from .tls.acme_client import IssuedCertificate
from .tls.challenges import ChallengeResponder
from .tls.renewal import CertificateScheduler, CertificateSettings, acme_issuer
from .tls.store import CertificateStore

log = logging.getLogger("mist.core")

CERT_PASS_INTERVAL = 300.0  # the certificate scheduler's pass; adding a domain wakes it at once
IDLE_WAIT = 30.0  # a worker with nothing to do looks at the queue this often, in case a wake-up was missed


class Core:
    """The process-wide part of Mist. ``await Core.open(config)``; ``core.api(token)`` for a caller's view."""

    # How views are made: ``mist_core.local`` sets it to ``LocalMist`` (the view is above the core, which does
    # not import it).
    view: ClassVar[Callable[..., MistAPI] | None] = None

    def __init__(
        self, config: CoreConfig, store: Store, secrets: SecretBox, lock_fd: int, engine: Engine | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.secrets = secrets
        self._lock_fd = lock_fd
        self.log = log
        self.instance_id = _instance_id(config.data_dir)
        self.engine = engine or Engine(config.docker_host, instance=self.instance_id)
        self.events = EventBus()
        self.logs = DeploymentLogs(store)
        self.queue = JobQueue(store, owner=uuid.uuid4().hex)
        self.credentials = SourceCredentials(store, secrets)
        self.pipeline = Pipeline(
            store=store,
            engine=self.engine,
            events=self.events,
            logs=self.logs,
            queue=self.queue,
            secrets=secrets,
            setting=self.setting,
            publish_routes=self.publish_routes,
            sources=self.credentials,
            work_dir=config.work_dir,
            git_roots=config.git_roots,
            docker_bin=config.docker_bin,
            instance_id=self.instance_id,
        )
        self.sampler = MetricsSampler(self.engine, interval=config.metrics_interval)
        self.certs = CertificateStore(store, secrets)
        self.orders = DeploymentOrders(
            store=store,
            engine=self.engine,
            events=self.events,
            pipeline=self.pipeline,
            certs=self.certs,
            publish_routes=self.publish_routes,
            wake_workers=self.wake_workers,
        )
        self.gitops = GitOps(
            store=store,
            secrets=secrets,
            events=self.events,
            credentials=self.credentials,
            orders=self.orders,
            setting=self.setting,
            publish_routes=self.publish_routes,
            git_roots=config.git_roots,
        )
        self.access = AccessTokens.from_file(
            config.signing_key_path, timedelta(seconds=config.access_token_seconds)
        )
        self.token_last_used: dict[int, float] = {}  # API token id -> when its last_used_at was written
        self.responder: ChallengeResponder | None = None
        self.cert_scheduler: CertificateScheduler | None = None
        self.routes = RoutePublisher(
            store,
            setting=self.setting,
            certificates=self._certificate_pems,
            container_address=self._container_address,
            traefik_dir=config.data_dir / "proxy" / "traefik",
        )
        self.backups = BackupService(
            store,
            self.engine,
            secrets,
            key_path=config.data_dir / BACKUP_KEY_FILE,
            setting=self.setting,
            instance_id=self.instance_id,
            tell=self.pipeline.note_after_end,
        )
        self._settings: dict[str, str] = {}
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    @classmethod
    async def open(cls, config: CoreConfig, *, engine: Engine | None = None) -> Core:
        """Open the core on ``config.data_dir``: made private first (or refused, saying why, when it cannot
        be), then locked against a second core, then the store and the master key. ``engine`` replaces the
        engine of ``config.docker_host`` (every part that talks to the engine gets this one)."""
        datadir.prepare(config.data_dir)
        lock_fd = os.open(config.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise Conflict(
                f"another Mist core (a running daemon?) is using {config.data_dir}: "
                "connect to it with --host, or stop it first"
            ) from None
        try:
            # SQLite would create the database with the default mode (and its WAL and shared-memory files
            # after it): an empty file made private first is a new database to SQLite.
            datadir.create_private_file(config.db_path)
            store = await Store.open(config.db_path)
            secrets = SecretBox.from_file(config.master_key_path)
        except BaseException:
            os.close(lock_fd)
            raise
        core = cls(config, store, secrets, lock_fd, engine)
        for row in await store.all("SELECT key, value FROM settings"):
            core._settings[row["key"]] = row["value"]
        return core

    def api(
        self,
        token: str | None,
        *,
        source: str = "local",
        user_agent: str | None = None,
        refresh_token: str | None = None,
        on_session: Callable[[Session], None] | None = None,
        one_request: bool = False,
    ) -> MistAPI:
        """A view of the core for one caller. ``source`` is where the call comes from (an address, "unix");
        with ``refresh_token``, an expired access token is renewed by itself and ``on_session`` gets the new
        pair to keep. A view made for ``one_request`` (the daemon makes one per HTTP request) checks its
        token once and keeps the caller it found for the rest of that request."""
        if self.view is None:
            raise RuntimeError("no view of the core is known: import mist_core.local first")
        return self.view(
            self,
            token,
            source=source,
            user_agent=user_agent,
            refresh_token=refresh_token,
            on_session=on_session,
            one_request=one_request,
        )

    async def rotate_master_key(self, caller: Caller) -> tuple[str, int]:
        """Re-seal every stored secret, wherever ``SEALED`` says one is kept (copies inside deployments'
        config snapshots too), under a new master key; returns the new key id and the count.

        The new key is written to the key file before anything is re-sealed, with the old one still after
        it, so every value opens at every moment, even after a crash halfway. Everything is re-sealed in one
        transaction: a value written meanwhile waits for it, so none is left under the retired key."""
        path = self.config.master_key_path
        key_id = self.secrets.begin_rotation(path)
        count = 0
        async with self.store.write() as w:
            for place in SEALED:
                rows = await w.all(
                    f"SELECT {', '.join(place.keys)}, {place.column} AS sealed FROM {place.table} "
                    f"WHERE {place.where}"
                )
                for row in rows:
                    keys = {k: row[k] for k in place.keys}
                    sealed, resealed = place.reseal(self.secrets, row["sealed"], keys)
                    if not resealed:
                        continue
                    where = " AND ".join(f"{k} = ?" for k in place.keys)
                    await w.execute(
                        f"UPDATE {place.table} SET {place.column} = ? WHERE {where}", (sealed, *keys.values())
                    )
                    count += resealed
            await audit(w, caller, "secrets.rotate_key", key_id=key_id, resealed=count)
        self.secrets.finish_rotation(path)
        return key_id, count

    async def setting(self, key: str) -> str:
        return self._settings.get(key, settings_defs.DEFINITIONS[key].default)

    def remember_setting(self, key: str, value: str) -> None:
        """Keep the value of a setting just stored (``setting`` answers from memory)."""
        self._settings[key] = value

    # ------------------------------------------------------------------------------------------ background

    async def start_background(self) -> None:
        """Recover from a crash, then start the deploy workers, the Docker events watcher and the sampler."""
        await self.recover()
        for n in range(max(1, self.config.workers)):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"mist-worker-{n}"))
        self._tasks.append(asyncio.create_task(self._watch_docker(), name="mist-docker-events"))
        self._tasks.append(asyncio.create_task(self.gitops.follow_deployments(), name="mist-git-statuses"))
        await self.sampler.start()
        await self.backups.recover()
        self._tasks.append(asyncio.create_task(self.backups.run_schedules(), name="mist-backups"))
        await self._start_certificates()
        hooks_routed = await self.setting("public_url") and await self.setting("hooks_upstream")
        if hooks_routed or await self.store.scalar("SELECT COUNT(*) FROM domains"):
            await self.publish_routes()

    # ------------------------------------------------------------------------------------------ proxy and TLS

    async def _start_certificates(self) -> None:
        """Run the certificate scheduler (issue, retry, renew). The challenge responder binds its address only
        when an order needs it, so a core that has no certificate to get (a CLI command, a test) binds nothing."""
        self.responder = ChallengeResponder()
        issue_one = acme_issuer(self.certs, self.responder)

        async def issue(domain: str, settings: CertificateSettings) -> IssuedCertificate:
            if not self.responder or not self.responder.running:
                await self._listen_for_challenges()
            return await issue_one(domain, settings)

        self.cert_scheduler = CertificateScheduler(
            self.certs, issue, self._certificate_settings, on_change=self._certificate_changed
        )
        self._tasks.append(
            asyncio.create_task(self.cert_scheduler.run(CERT_PASS_INTERVAL), name="mist-certs")
        )

    async def _listen_for_challenges(self) -> None:
        """(Re)bind the challenge responder to the ``acme_challenge_address`` setting."""
        if self.responder is None:
            return
        await self.responder.stop()
        host, _, port = (await self.setting("acme_challenge_address")).rpartition(":")
        self.responder.host, self.responder.port = host.strip("[]") or "0.0.0.0", int(port)
        try:
            await self.responder.start()
        except OSError as err:
            raise MistError(
                f"cannot answer ACME challenges on {host}:{port} ({err.strerror}): free that address or change "
                "the setting acme_challenge_address"
            ) from None

    async def setting_changed(self, key: str) -> None:
        """Apply a setting that takes effect at once."""
        if key == "acme_challenge_address" and self.responder is not None and self.responder.running:
            try:
                await self._listen_for_challenges()
            except MistError as err:
                # The next certificate order binds it again, and fails with this reason if it still cannot.
                log.warning("the ACME challenge responder stopped: %s", err.message)
        elif key in (
            "proxy_backend",
            "caddy_admin_url",
            "proxy_http_address",
            "proxy_https_address",
            "public_url",
            "hooks_upstream",
        ):
            await self._republish(f"the setting {key} changed")

    async def _certificate_settings(self) -> CertificateSettings:
        return CertificateSettings(
            directory_url=await self.setting("acme_directory_url"),
            email=await self.setting("acme_email"),
            ca_bundle=await self.setting("acme_ca_bundle"),
            renewal_days=int(await self.setting("cert_renewal_days")),
        )

    async def _certificate_changed(self, certificate: Certificate) -> None:
        if certificate.has_certificate:
            await self._republish(f"the certificate of {certificate.domain} changed")

    async def _republish(self, why: str) -> None:
        """Publish the routes after a change that is kept either way: a refusal is logged, and the proxy's
        status says it (``RoutePublisher.last_error``) until the next change or `mist proxy reload`."""
        try:
            await self.publish_routes()
        except MistError as err:
            log.warning("the proxy refused the routes after %s: %s", why, err.message)

    async def _certificate_pems(self) -> dict[str, tuple[str, str]]:
        pems = {}
        for cert in await self.certs.list():
            key = await self.certs.key_pem(cert.domain) if cert.has_certificate else None
            if key:
                pems[cert.domain] = (cert.fullchain_pem, key)
        return pems

    async def _container_address(self, name: str) -> str:
        """Where a proxy on the host dials an app container: its address on its project's network (or on the
        shared ``mist`` network, for a container deployed before projects had their own)."""
        info = await self.engine.inspect(name)
        labels = ((info or {}).get("Config") or {}).get("Labels") or {}
        network = project_network(labels[LABEL_PROJECT_UID]) if labels.get(LABEL_PROJECT_UID) else NETWORK
        networks = ((info or {}).get("NetworkSettings") or {}).get("Networks") or {}
        address = (networks.get(network) or {}).get("IPAddress")
        if not address:
            raise MistError(f"container {name} has no address on the {network} network")
        return str(address)

    async def publish_routes(self, pending: dict[int, int] | None = None) -> None:
        """Load the routes into the proxy, and ask for a certificate for every HTTPS name that has none."""
        table = await self.routes.publish(pending)
        known = {c.domain for c in await self.certs.list()}
        missing = [name for name in table.host_names() if name not in known]
        for name in missing:
            await self.certs.mark_pending(name)
        if missing and self.cert_scheduler is not None:
            self.cert_scheduler.wake()

    def wake_workers(self) -> None:
        self._wakeup.set()

    async def _worker(self) -> None:
        while True:
            # Clear before claiming: a deploy queued after this point sets the event and is not missed.
            self._wakeup.clear()
            try:
                job = await self.queue.claim()
            except Exception:
                log.exception("claiming a job failed")
                job = None
            if job is None:
                # Sleep until a deploy (or a finished job, which may unblock its app's next one) wakes us, or
                # until the earliest delayed retry is due: an idle daemon does not poll the store.
                timeout = await self._idle_wait()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)
                continue
            try:
                await self.pipeline.run(job)
            except Exception:
                # The pipeline records its own failures; this is a bug in it. Keep the worker alive for the next
                # job; the job's lease runs out and recovery takes it back.
                log.exception("running deployment job %s failed", job.id)
            self.wake_workers()

    async def _idle_wait(self) -> float:
        due = await self.queue.next_run_after()
        if due is None:
            return IDLE_WAIT
        seconds = ((parse_ts(due) or now()) - now()).total_seconds()
        return min(IDLE_WAIT, max(0.05, seconds))

    async def _watch_docker(self) -> None:
        """Follow Docker's container events, which keep apps' statuses (crashed, live) true. While the stream
        is broken, statuses are not updated: that is logged once when it breaks and once when it is back."""
        broken = False
        while True:
            try:
                async for event in self.engine.events():
                    if broken:
                        log.info("following Docker's events again")
                        broken = False
                    await self._on_container_event(event)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - retried below; the engine may be restarting
                reason = err.message if isinstance(err, MistError) else f"{type(err).__name__}: {err}"
                if not broken:
                    log.warning("lost Docker's events (apps' statuses wait until they are back): %s", reason)
                else:
                    log.debug("docker events: %s", reason)
                broken = True
            await asyncio.sleep(5)

    async def _on_container_event(self, event: dict[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        name = attrs.get("name")
        deployment_id = attrs.get(LABEL_DEPLOYMENT)
        if not name or not deployment_id:
            return
        row = await self.store.one(
            "SELECT a.id, a.status, a.name, p.name AS project FROM apps a JOIN projects p ON p.id = a.project_id "
            "WHERE a.live_deployment_id = ?",
            (int(deployment_id),),
        )
        self.events.announce(
            "container",
            action,
            project=attrs.get("dev.mist.project"),
            app=attrs.get("dev.mist.app"),
            deployment_id=int(deployment_id),
        )
        if row is None:
            return
        if action == "start":
            await live_containers.record_restart_count(
                self.engine, self.store, self.events, name, int(deployment_id), row["project"], row["name"]
            )
        status = row["status"]
        if action in ("die", "oom", "kill") and status == "live":
            status = "crashed"
        elif action in ("start", "restart") and status in ("crashed", "stopped"):
            status = "live"
        else:
            return
        async with self.store.write() as w:
            await w.execute(
                "UPDATE apps SET status = ?, updated_at = ? WHERE id = ?", (status, ts(), row["id"])
            )
            if status == "live":  # running again: whatever kept it down is over
                await w.execute(
                    "UPDATE deployments SET config = json_remove(config, '$.down_reason') WHERE id = ?",
                    (int(deployment_id),),
                )
        self.events.announce("app", "status", project=row["project"], app=row["name"], state=status)

    async def recover(self) -> None:
        """Bring every deployment a dead core left unfinished to a consistent state.

        A deployment that was switching when the core died is finished if its new container is up; any other
        unfinished one is failed, and what it made (container, image) is removed. The live container of its
        app is never touched, except to start it again when a stop-then-start deployment had stopped it.
        """
        for job in await self.queue.orphaned():
            run = await self.pipeline.load(job)
            row = await self.store.one("SELECT state FROM deployments WHERE id = ?", (run.deployment_id,))
            state = row["state"] if row else None
            if state == DeploymentState.queued.value:
                await self.queue.retry_later(job, 0)
                continue
            await self.logs.open(run.deployment_id)
            self.pipeline.log(run, f"the daemon stopped while this deployment was {state}")
            if state == DeploymentState.switching.value:
                try:
                    info = await self.engine.inspect(container_name_of(run))
                    if info and info.get("State", {}).get("Running"):
                        old = await self.pipeline.live_container(run)
                        self.pipeline.log(
                            run, "the new container passed its health check: finishing the switch"
                        )
                        await self.pipeline.switch(run, old)
                        continue
                except MistError as err:
                    self.pipeline.log(run, f"could not finish the switch: {err.message}")
            try:
                await self.engine.remove_deployment_leftovers(run.deployment_id)
            except Exception as err:  # noqa: BLE001 - reported; the sweep below and the next start try again
                log.warning("deployment %s: could not remove what it made: %s", run.deployment_id, err)
                self.pipeline.log(run, f"could not remove what this deployment made: {err}")
            await self.pipeline.finish(
                run,
                DeploymentState.failed,
                f"interrupted: the daemon stopped while this deployment was {state}; what it had made was removed "
                "and the live version was left as it was",
            )
            await self._restart_stopped_live(run.app_id, run.deployment_id)
        await self.pipeline.resume_retirements()
        await self._sweep_containers()

    async def _restart_stopped_live(self, app_id: int, interrupted: int) -> None:
        """Start the app's live container again if a stop-then-start deployment had stopped it; when that
        fails, the app is marked down with the reason (in the interrupted deployment's log too)."""
        row = await self.store.one(
            "SELECT a.status, a.name, p.name AS project, d.container_name FROM apps a "
            "JOIN projects p ON p.id = a.project_id JOIN deployments d ON d.id = a.live_deployment_id "
            "WHERE a.id = ?",
            (app_id,),
        )
        if row is None or row["status"] == "stopped" or not row["container_name"]:
            return
        name = row["container_name"]
        try:
            info = await self.engine.inspect(name)
            if info is None:
                raise NotFound(f"container {name} does not exist")
            if not info.get("State", {}).get("Running"):
                await self.engine.start(name)
        except MistError as err:
            reason = f"the live container {name} is not running and could not be started: {err.message}; deploy the app again"
            log.warning("app %s/%s: %s", row["project"], row["name"], reason)
            await self.pipeline.note_after_end(interrupted, reason)
            await self.pipeline.mark_down(app_id, row["project"], row["name"], reason)

    async def _sweep_containers(self) -> None:
        """Remove Mist containers whose deployment is neither live nor in progress (left by a crash)."""
        try:
            containers = await self.engine.list_containers(all=True)
        except MistError:
            return
        for c in containers:
            if c.deployment_id is None:
                continue
            row = await self.store.one("SELECT state FROM deployments WHERE id = ?", (c.deployment_id,))
            if c.name in self.pipeline.retirements:
                continue  # being retired with its grace period
            if row is None or DeploymentState(row["state"]) in (
                DeploymentState.failed,
                DeploymentState.cancelled,
                DeploymentState.superseded,
            ):
                try:
                    await self.engine.remove(c.name)
                except MistError as err:
                    log.warning("could not remove the leftover container %s: %s", c.name, err.message)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - shutting down: the rest must still close
                log.warning("the background task %s failed", task.get_name(), exc_info=True)
        self._tasks.clear()
        await self.backups.close()
        await self.pipeline.close()
        await self.gitops.close()
        await self.credentials.close()
        try:
            await self.sampler.stop()
        except Exception:  # noqa: BLE001 - shutting down: the rest must still close
            log.warning("stopping the metrics sampler failed", exc_info=True)
        if self.responder is not None:
            try:
                await self.responder.stop()
            except Exception:  # noqa: BLE001 - shutting down: the rest must still close
                log.warning("stopping the ACME challenge responder failed", exc_info=True)
        await self.logs.shutdown()
        self.engine.close()
        await self.store.close()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)


def _instance_id(data_dir: Path) -> str:
    """This data directory's identity, put on every container and image it makes (created on first use)."""
    path = data_dir / "instance-id"
    value = uuid.uuid4().hex[:16]
    if datadir.create_private_file(path, value + "\n"):
        return value
    return path.read_text().strip()
