"""``LocalMist``: the Mist API implemented in-process, and the ``Core`` it runs on.

A ``Core`` owns one data directory (it holds an exclusive lock on it): the store, the master key, the Docker
engine client, the deploy queue and its workers, the Docker events watcher and the metrics sampler. Each
``LocalMist`` is a view of the core bound to one caller's token; every call checks that token first.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import auth, datadir, domains, validate
from . import containers as live_containers
from . import settings as settings_defs
from .accounts import (
    USER_COLUMNS,
    Auth,
    Invites,
    Members,
    Secrets,
    Sessions,
    Tokens,
    Users,
    needs_setup,
    user_from_row,
)
from .api import (
    AppsAPI,
    AuditAPI,
    CertificatesAPI,
    ContainersAPI,
    DeploymentsAPI,
    DomainsAPI,
    EnvAPI,
    EventsAPI,
    MetricsAPI,
    MistAPI,
    ProjectsAPI,
    ProxyAPI,
    SettingsAPI,
)
from .auth import permissions
from .auth.access import AccessTokens, looks_like_jwt
from .calls import Caller, Part, audit, like, page, page_args
from .config import CoreConfig
from .deploys.logs import DeploymentLogs
from .deploys.pipeline import Pipeline
from .deploys.queue import JobQueue
from .domains import validate_domain
from .engine import LABEL_DEPLOYMENT, LABEL_PROJECT_UID, NETWORK, Engine, project_network
from .errors import (
    Conflict,
    EngineUnavailable,
    InvalidInput,
    MistError,
    NotFound,
    PermissionDenied,
    SetupRequired,
    TokenExpired,
    Unauthenticated,
)
from .events import EventBus
from .execs import ExecChannel
from .gitops import Git, GitOps, Previews, Webhooks
from .metrics import MetricsSampler
from .models import (
    App,
    AppChanges,
    AppSource,
    AppSpec,
    AuditEntry,
    Certificate,
    ContainerDescription,
    ContainerInfo,
    Deployment,
    DeploymentState,
    Domain,
    DomainSettings,
    EnvVar,
    Event,
    LogLine,
    MetricsSample,
    Page,
    Project,
    ProjectChanges,
    ProxyStatus,
    Session,
    Setting,
    SourceChanges,
    User,
)
from .proxy.install import PROXY_CONTAINER, TRAEFIK_IMAGE, connect_proxy, traefik_spec
from .proxy.publish import RoutePublisher
from .secrets import SecretBox
from .store import Store, Writer, now, parse_ts, ts
from .store import records as rec
from .tls.acme_client import IssuedCertificate
from .tls.challenges import ChallengeResponder
from .tls.renewal import CertificateScheduler, CertificateSettings, acme_issuer
from .tls.store import CertificateStore
from .tls.upload import validate_upload

log = logging.getLogger("mist.core")
CERT_PASS_INTERVAL = 300.0  # the certificate scheduler's pass; adding a domain wakes it at once
IDLE_WAIT = 30.0  # a worker with nothing to do looks at the queue this often, in case a wake-up was missed


class Core:
    """The process-wide part of Mist. ``await Core.open(config)``; ``core.api(token)`` for a caller's view."""

    def __init__(self, config: CoreConfig, store: Store, secrets: SecretBox, lock_fd: int) -> None:
        self.config = config
        self.store = store
        self.secrets = secrets
        self._lock_fd = lock_fd
        self.log = log
        self.instance_id = _instance_id(config.data_dir)
        self.engine = Engine(config.docker_host, instance=self.instance_id)
        self.events = EventBus()
        self.logs = DeploymentLogs(store)
        self.queue = JobQueue(store, owner=uuid.uuid4().hex)
        self.pipeline = Pipeline(self)
        self.sampler = MetricsSampler(self.engine, interval=config.metrics_interval)
        self.certs = CertificateStore(store, secrets)
        self.access = AccessTokens.from_file(
            config.signing_key_path, timedelta(seconds=config.access_token_seconds)
        )
        self.token_last_used: dict[int, float] = {}  # API token id -> when its last_used_at was written
        self.gitops = GitOps(self)
        self.responder: ChallengeResponder | None = None
        self.cert_scheduler: CertificateScheduler | None = None
        self.routes = RoutePublisher(
            store,
            setting=self.setting,
            certificates=self._certificate_pems,
            container_address=self._container_address,
            traefik_dir=config.data_dir / "proxy" / "traefik",
        )
        self._settings: dict[str, str] = {}
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    @classmethod
    async def open(cls, config: CoreConfig) -> Core:
        """Open the core on ``config.data_dir``: made private first (or refused, saying why, when it cannot
        be), then locked against a second core, then the store and the master key."""
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
        core = cls(config, store, secrets, lock_fd)
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
    ) -> LocalMist:
        """A view of the core for one caller. ``source`` is where the call comes from (an address, "unix");
        with ``refresh_token``, an expired access token is renewed by itself and ``on_session`` gets the new
        pair to keep. A view made for ``one_request`` (the daemon makes one per HTTP request) checks its
        token once and keeps the caller it found for the rest of that request."""
        return LocalMist(
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
        from .secrets import SEALED

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

    # ------------------------------------------------------------------------------------------ background

    async def start_background(self) -> None:
        """Recover from a crash, then start the deploy workers, the Docker events watcher and the sampler."""
        await self.recover()
        for n in range(max(1, self.config.workers)):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"mist-worker-{n}"))
        self._tasks.append(asyncio.create_task(self._watch_docker(), name="mist-docker-events"))
        self._tasks.append(asyncio.create_task(self.gitops.follow_deployments(), name="mist-git-statuses"))
        await self.sampler.start()
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
            with contextlib.suppress(MistError):
                await self._listen_for_challenges()
        elif key in (
            "proxy_backend",
            "caddy_admin_url",
            "proxy_http_address",
            "proxy_https_address",
            "public_url",
            "hooks_upstream",
        ):
            with contextlib.suppress(MistError):
                await self.publish_routes()

    async def _certificate_settings(self) -> CertificateSettings:
        return CertificateSettings(
            directory_url=await self.setting("acme_directory_url"),
            email=await self.setting("acme_email"),
            ca_bundle=await self.setting("acme_ca_bundle"),
            renewal_days=int(await self.setting("cert_renewal_days")),
        )

    async def _certificate_changed(self, certificate: Certificate) -> None:
        if certificate.has_certificate:
            with contextlib.suppress(MistError):
                await self.publish_routes()

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
        while True:
            try:
                async for event in self.engine.events():
                    await self._on_container_event(event)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.debug("docker events: %s", err)
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
                        old = await self.pipeline._live_container(run)
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
            await self.pipeline._finish(
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
            await self.pipeline._after_end(interrupted, reason)
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
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        await self.pipeline.close()
        await self.gitops.close()
        with contextlib.suppress(Exception):
            await self.sampler.stop()
        if self.responder is not None:
            with contextlib.suppress(Exception):
                await self.responder.stop()
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


def container_name_of(run: Any) -> str:
    from .deploys.pipeline import container_name

    return container_name(run.project, run.app, run.deployment_id)


async def open_embedded(
    data_dir: Path | str,
    token: str | None = None,
    *,
    refresh_token: str | None = None,
    on_session: Callable[[Session], None] | None = None,
    **config: Any,
) -> MistAPI:
    """The core in this process, with its workers running; ``close()`` shuts it down."""
    core = await Core.open(CoreConfig(data_dir=Path(data_dir), **config))
    if core.config.run_workers:
        await core.start_background()
    return LocalMist(core, token, owns_core=True, refresh_token=refresh_token, on_session=on_session)


# ============================================================================================== the API


class LocalMist(MistAPI):
    def __init__(
        self,
        core: Core,
        token: str | None,
        *,
        owns_core: bool = False,
        source: str = "local",
        user_agent: str | None = None,
        refresh_token: str | None = None,
        on_session: Callable[[Session], None] | None = None,
        one_request: bool = False,
    ) -> None:
        self.core = core
        self.token = token
        self._one_request = one_request
        self._caller: Caller | None = None  # the caller of this one request, once checked
        self.source = source
        self.user_agent = user_agent
        self.refresh_token = refresh_token
        self.on_session = on_session
        self._owns_core = owns_core
        self.auth = Auth(self)
        self.projects = _Projects(self)
        self.apps: _Apps = _Apps(self)
        self.env: _Env = _Env(self)
        self.deployments: _Deployments = _Deployments(self)
        self.containers = _Containers(self)
        self.metrics = _Metrics(self)
        self.events = _Events(self)
        self.users = Users(self)
        self.members = Members(self)
        self.invites = Invites(self)
        self.sessions = Sessions(self)
        self.tokens = Tokens(self)
        self.secrets = Secrets(self)
        self.git = Git(self)
        self.webhooks = Webhooks(self)
        self.previews = Previews(self)
        self.audit = _Audit(self)
        self.settings = _Settings(self)
        self.domains = _Domains(self)
        self.certificates = _Certificates(self)
        self.proxy = _Proxy(self)

    async def close(self) -> None:
        if self._owns_core:
            await self.core.close()

    def signed_in(self, session: Session) -> None:
        """A login, a refresh or an accepted invitation gave this view a new session."""
        self.token, self.refresh_token = session.token, session.refresh_token
        self._caller = None
        if self.on_session is not None:
            self.on_session(session)

    def signed_out(self) -> None:
        self.token, self.refresh_token = None, None
        self._caller = None

    async def actor(self) -> User:
        """The user behind the token."""
        return (await self.caller()).user

    async def caller(self) -> Caller:
        """Who is calling: the token is checked against its session (or API token) row on every call, so a
        revoked session or a changed role counts at once; an expired access token is renewed when a
        refresh token is at hand. A view of one request checks once: the same caller for the whole request."""
        if self._caller is not None:
            return self._caller
        if not self.token:
            if await needs_setup(self.core.store):
                raise SetupRequired("no account exists yet: create the first one with `mist setup`")
            raise Unauthenticated("not logged in: run `mist login`")
        try:
            caller = await self._resolve(self.token)
        except TokenExpired:
            if not self.refresh_token:
                raise
            await self.auth.refresh(self.refresh_token)
            caller = await self._resolve(self.token or "")
        if self._one_request:
            self._caller = caller
        return caller

    async def _resolve(self, token: str) -> Caller:
        store = self.core.store
        if token.startswith("mist_t_"):
            row = await store.one(
                f"SELECT {USER_COLUMNS}, t.id AS token_id, t.scope, t.project_id, t.expires_at AS token_expires, "
                "t.revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
                (auth.token_hash(token),),
            )
            if row is None or row["revoked_at"]:
                raise Unauthenticated("this API token is not valid or was revoked")
            if row["token_expires"] and (parse_ts(row["token_expires"]) or now()) <= now():
                raise Unauthenticated("this API token has expired: create a new one with `mist token create`")
            await self._touch_token(int(row["token_id"]))
            return Caller(
                user=user_from_row(row),
                source=self.source,
                token_id=int(row["token_id"]),
                scope=row["scope"],
                token_project_id=row["project_id"],
                enrollment_required=await self._enrollment_required(row),
            )
        if not looks_like_jwt(token):
            raise Unauthenticated("the token is not valid: log in again with `mist login`")
        claims = self.core.access.verify(token)
        row = await store.one(
            f"SELECT {USER_COLUMNS}, s.revoked_at, s.expires_at AS session_expires FROM sessions s "
            "JOIN users u ON u.id = s.user_id WHERE s.id = ? AND s.user_id = ?",
            (claims.session_id, claims.user_id),
        )
        if row is None or row["revoked_at"] or (parse_ts(row["session_expires"]) or now()) <= now():
            raise Unauthenticated("your session has ended or was revoked: log in again with `mist login`")
        return Caller(
            user=user_from_row(row),
            source=self.source,
            session_id=claims.session_id,
            enrollment_required=await self._enrollment_required(row),
        )

    async def _enrollment_required(self, row: Any) -> bool:
        return not row["totp_enabled"] and await self.core.setting("require_2fa") == "true"

    async def _touch_token(self, token_id: int) -> None:
        """Note when an API token was last used, at most once a minute per token (a write per call would
        cost more than the call)."""
        moment = asyncio.get_running_loop().time()
        if moment - self.core.token_last_used.get(token_id, -1e9) < 60:
            return
        self.core.token_last_used[token_id] = moment
        async with self.core.store.write() as w:
            await w.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (ts(), token_id))

    async def allow(self, operation: str, *, project: str | None = None) -> Caller:
        """Check that the caller may call ``operation`` (on ``project``, for project operations) by the
        permission table, and return them. A project the caller is not a member of is ``NotFound``."""
        rule = permissions.rule(operation)
        caller = await self.caller()
        if caller.enrollment_required and not operation.startswith("auth."):
            raise PermissionDenied(
                "this instance requires two-factor authentication: enable it first with `mist 2fa enable`"
            )
        if caller.token_project_id is not None and not rule.bound and rule.on != "public":
            bound_to = await self.bound_project_name(caller)
            raise PermissionDenied(
                f"this API token is bound to project {bound_to!r}: {operation} is not an operation on that "
                "project; use a token that is not bound to a project (or log in) for it"
            )
        if caller.scope and not permissions.token_allows(caller.scope, operation):
            raise PermissionDenied(
                f"this API token's scope ({caller.scope}) does not allow {operation}: use a token with a "
                "wider scope"
            )
        if rule.on == "instance" and not permissions.at_least(
            caller.role, rule.role, permissions.INSTANCE_RANK
        ):
            raise PermissionDenied(f"{operation} needs the instance role {rule.role}; you are {caller.role}")
        if rule.on == "project" and project is None:
            # Something of no project (a certificate no app uses): only those who administer every project.
            if caller.token_project_id is not None or not permissions.at_least(
                caller.role, "admin", permissions.INSTANCE_RANK
            ):
                raise PermissionDenied(f"{operation} on something of no project needs an instance admin")
        elif rule.on == "project" and project is not None:
            role = await self.project_role(caller, project)
            if not permissions.at_least(role, rule.role, permissions.PROJECT_RANK):
                raise PermissionDenied(
                    f"{operation} needs the role {rule.role} in project {project!r}; you are {role}"
                )
        return caller

    async def bound_project_name(self, caller: Caller) -> str:
        """The name of the project the caller's API token is bound to."""
        row = await self.core.store.one("SELECT name FROM projects WHERE id = ?", (caller.token_project_id,))
        return str(row["name"]) if row else f"#{caller.token_project_id}"

    async def project_role(self, caller: Caller, project: str) -> str:
        """The caller's role in ``project``; ``NotFound`` when it does not exist or they cannot see it."""
        row = await self.core.store.one(
            "SELECT p.id, m.role FROM projects p LEFT JOIN project_members m "
            "ON m.project_id = p.id AND m.user_id = ? WHERE p.name = ?",
            (caller.user.id, project),
        )
        role = None
        if row is not None and caller.token_project_id in (None, row["id"]):
            role = permissions.project_role(caller.role, row["role"])
        if role is None:
            raise NotFound(f"there is no project {project!r}", field="project")
        return role

    async def visible_projects(self, caller: Caller) -> set[int] | None:
        """The ids of the projects the caller sees, or None for all of them (owners and admins)."""
        if caller.token_project_id is not None:
            if permissions.at_least(caller.role, "admin", permissions.INSTANCE_RANK):
                return {caller.token_project_id}
            ids = await self._member_of(caller)
            return ids & {caller.token_project_id}
        if permissions.at_least(caller.role, "admin", permissions.INSTANCE_RANK):
            return None
        return await self._member_of(caller)

    async def _member_of(self, caller: Caller) -> set[int]:
        rows = await self.core.store.all(
            "SELECT project_id FROM project_members WHERE user_id = ?", (caller.user.id,)
        )
        return {int(r["project_id"]) for r in rows}

    async def visible_project_names(self, caller: Caller) -> set[str] | None:
        ids = await self.visible_projects(caller)
        if ids is None:
            return None
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = await self.core.store.all(f"SELECT name FROM projects WHERE id IN ({marks})", tuple(ids))
        return {r["name"] for r in rows}


def _visible_clause(ids: set[int] | None, column: str = "p.id") -> tuple[str, builtins.list[Any]]:
    """A WHERE clause limiting rows to the visible projects (``"1"`` when all are)."""
    if ids is None:
        return "1", []
    if not ids:
        return "0", []
    return f"{column} IN ({','.join('?' * len(ids))})", sorted(ids)


# ---------------------------------------------------------------------------------------------- projects


_APPS_OF_PROJECT = "SELECT name FROM apps WHERE project_id = ? ORDER BY name LIMIT 6"


class _Projects(Part, ProjectsAPI):
    async def _row(self, name: str) -> Any:
        row = await self.store.one(rec.PROJECT_SELECT + " WHERE p.name = ?", (name,))
        if row is None:
            raise NotFound(f"there is no project {name!r}", field="project")
        return row

    async def create(self, name: str, description: str = "", tags: list[str] | None = None) -> Project:
        actor = await self.m.allow("projects.create")
        name = validate.name(name, "project name")
        description = validate.description(description)
        tag_list = validate.tags(tags or [])
        async with self.store.write() as w:
            if await w.one("SELECT 1 FROM projects WHERE name = ?", (name,)):
                raise Conflict(f"a project named {name!r} already exists", field="name")
            # The uid names the project's Docker network and volumes; a later project of the same name gets
            # another, so it never finds this one's data.
            await w.execute(
                "INSERT INTO projects (name, uid, description, tags, owner_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, uuid.uuid4().hex[:16], description, json.dumps(tag_list), actor.user.id, ts(), ts()),
            )
            # Whoever creates a project administers it.
            await w.execute(
                "INSERT INTO project_members (project_id, user_id, role, added_at) "
                "SELECT id, ?, 'admin', ? FROM projects WHERE name = ?",
                (actor.user.id, ts(), name),
            )
            await audit(w, actor, "project.create", project=name)
        self.core.events.announce("project", "create", project=name)
        return rec.project(await self._row(name))

    async def list(self, *, query: str | None = None, limit: int = 100, offset: int = 0) -> Page[Project]:
        caller = await self.m.allow("projects.list")
        limit, offset = page_args(limit, offset)
        visible, params = _visible_clause(await self.m.visible_projects(caller))
        where = f" WHERE {visible}"
        if query:
            where += " AND p.name LIKE ? ESCAPE '\\'"
            params.append(f"%{like(query)}%")
        total = await self.store.scalar(f"SELECT COUNT(*) FROM projects p{where}", params)
        rows = await self.store.all(
            rec.PROJECT_SELECT + where + " ORDER BY p.name LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return page([rec.project(r) for r in rows], total, limit, offset)

    async def get(self, name: str) -> Project:
        await self.m.allow("projects.get", project=name)
        return rec.project(await self._row(name))

    async def update(self, name: str, changes: ProjectChanges) -> Project:
        actor = await self.m.allow("projects.update", project=name)
        current = rec.project(await self._row(name))
        new_name = validate.name(changes.name, "project name") if changes.name is not None else current.name
        description = (
            validate.description(changes.description)
            if changes.description is not None
            else current.description
        )
        tag_list = validate.tags(changes.tags) if changes.tags is not None else current.tags
        async with self.store.write() as w:
            if new_name != name and await w.one("SELECT 1 FROM projects WHERE name = ?", (new_name,)):
                raise Conflict(f"a project named {new_name!r} already exists", field="name")
            if new_name != name and await w.one(
                "SELECT 1 FROM apps WHERE project_id = ? AND live_deployment_id IS NOT NULL", (current.id,)
            ):
                raise Conflict(
                    f"project {name!r} has deployed apps, whose containers and images carry its name: "
                    "delete or move them before renaming",
                    field="name",
                )
            await w.execute(
                "UPDATE projects SET name = ?, description = ?, tags = ?, updated_at = ? WHERE id = ?",
                (new_name, description, json.dumps(tag_list), ts(), current.id),
            )
            await audit(
                w,
                actor,
                "project.update",
                project=new_name,
                before={"name": current.name, "description": current.description, "tags": current.tags},
                after={"name": new_name, "description": description, "tags": tag_list},
            )
        self.core.events.announce("project", "update", project=new_name)
        return rec.project(await self._row(new_name))

    async def delete(self, name: str) -> None:
        """Delete a project that has no apps, and its Docker network. Its volumes are kept (the audit entry
        names them): data is removed by an operator, never as a side effect."""
        actor = await self.m.allow("projects.delete", project=name)
        project = rec.project(await self._row(name))
        self._refuse_apps(name, project, await self.store.all(_APPS_OF_PROJECT, (project.id,)))
        uid = str(await self.store.scalar("SELECT uid FROM projects WHERE id = ?", (project.id,)))
        engine = self.core.engine
        network = project_network(uid)
        try:
            await engine.disconnect(PROXY_CONTAINER, network)
            await engine.remove_network(network, owner={LABEL_PROJECT_UID: uid})
            kept = await engine.volumes([f"{LABEL_PROJECT_UID}={uid}"])
        except EngineUnavailable as err:
            raise EngineUnavailable(
                f"cannot delete project {name!r} while the Docker Engine is down (its network must go "
                f"with it): {err.message}"
            ) from None
        async with self.store.write() as w:
            # An app created meanwhile keeps the project.
            self._refuse_apps(name, project, await w.all(_APPS_OF_PROJECT, (project.id,)))
            await w.execute("DELETE FROM projects WHERE id = ?", (project.id,))
            await audit(w, actor, "project.delete", project=name, uid=uid, kept_volumes=kept)
        self.core.events.announce("project", "delete", project=name)

    @staticmethod
    def _refuse_apps(name: str, project: Project, apps: builtins.list[Any]) -> None:
        if apps:
            names = ", ".join(r["name"] for r in apps[:5]) + (", ..." if len(apps) > 5 else "")
            raise Conflict(
                f"project {name!r} still has {max(project.app_count, len(apps))} app(s) ({names}): "
                "delete them first"
            )


# ---------------------------------------------------------------------------------------------- apps


class _Apps(Part, AppsAPI):
    async def _row(self, app_ref: str) -> Any:
        project, name = validate.app_ref(app_ref)
        row = await self.store.one(rec.APP_SELECT + " WHERE p.name = ? AND a.name = ?", (project, name))
        if row is None:
            raise NotFound(f"there is no app {app_ref!r}", field="app")
        return row

    async def _get(self, app_ref: str) -> App:
        return rec.app(await self._row(app_ref))

    async def _allow(self, operation: str, app_ref: str) -> Caller:
        """Check ``operation`` on the app's project; a project the caller cannot see hides the app too."""
        project, _ = validate.app_ref(app_ref)
        try:
            return await self.m.allow(operation, project=project)
        except NotFound:
            raise NotFound(f"there is no app {app_ref!r}", field="app") from None

    async def create(self, app_ref: str, spec: AppSpec) -> App:
        project, name = validate.app_ref(app_ref)
        actor = await self.m.allow("apps.create", project=project)
        spec = validate.app_spec(spec, allowed_roots=self.core.config.git_roots)
        async with self.store.write() as w:
            prow = await w.one("SELECT id FROM projects WHERE name = ?", (project,))
            if prow is None:
                raise NotFound(
                    f"there is no project {project!r}: create it first with `mist project create`",
                    field="project",
                )
            if await w.one("SELECT 1 FROM apps WHERE project_id = ? AND name = ?", (prow["id"], name)):
                raise Conflict(f"project {project!r} already has an app named {name!r}", field="name")
            await w.execute(
                "INSERT INTO apps (project_id, name, spec, status, created_at, updated_at) VALUES (?, ?, ?, 'new', ?, ?)",
                (prow["id"], name, spec.model_dump_json(), ts(), ts()),
            )
            await audit(w, actor, "app.create", project=project, app=name, after=_public_spec(spec))
        self.core.events.announce("app", "create", project=project, app=name)
        return await self._get(app_ref)

    async def list(
        self, *, project: str | None = None, query: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[App]:
        caller = await self.m.allow("apps.list")
        limit, offset = page_args(limit, offset)
        visible, params = _visible_clause(await self.m.visible_projects(caller))
        clauses = [visible] if visible != "1" else []
        if project:
            clauses.append("p.name = ?")
            params.append(project)
        if query:
            clauses.append("(p.name || '/' || a.name) LIKE ? ESCAPE '\\'")
            params.append(f"%{like(query)}%")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        count = f"SELECT COUNT(*) FROM apps a JOIN projects p ON p.id = a.project_id{where}"
        # The total rides along on every row of the page (SQLite runs the uncorrelated subquery once): one
        # statement per list instead of two. Only a page past the end, which has no rows, asks separately.
        rows = await self.store.all(
            f"SELECT ({count}) AS total, {rec.APP_JSON_COLUMNS} {rec.APP_FROM}{where} "
            "ORDER BY p.name, a.name LIMIT ? OFFSET ?",
            [*params, *params, limit, offset],
        )
        total = rows[0]["total"] if rows else await self.store.scalar(count, params)
        return page(rec.apps_from_json([r["app_json"] for r in rows]), total, limit, offset)

    async def get(self, app_ref: str) -> App:
        await self._allow("apps.get", app_ref)
        return await self._get(app_ref)

    async def update(self, app_ref: str, changes: AppChanges) -> App:
        actor = await self._allow("apps.update", app_ref)
        app = await self._get(app_ref)
        spec = validate.apply_changes(app.spec, changes, allowed_roots=self.core.config.git_roots)
        async with self.store.write() as w:
            await w.execute(
                "UPDATE apps SET spec = ?, updated_at = ? WHERE id = ?",
                (spec.model_dump_json(), ts(), app.id),
            )
            await audit(
                w,
                actor,
                "app.update",
                project=app.project,
                app=app.name,
                before=_public_spec(app.spec),
                after=_public_spec(spec),
            )
        self.core.events.announce("app", "update", project=app.project, app=app.name)
        return await self._get(app_ref)

    async def delete(self, app_ref: str) -> None:
        actor = await self._allow("apps.delete", app_ref)
        await self.remove(await self._get(app_ref), actor)

    async def remove(self, app: App, actor: Caller | None) -> None:
        """Delete an app (``actor`` None: Mist itself, closing a preview): what runs first, then the rows.
        Its previews go first, each like an app of its own (their rows would otherwise vanish with it and
        leave their containers running)."""
        for row in await self.store.all(rec.APP_SELECT + " WHERE a.preview_of = ?", (app.id,)):
            await self.core.gitops.remove_preview_now(rec.app(row))
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
        for dep_id, run in list(self.core.pipeline.runs.items()):
            if run.app_id == app.id:
                self.core.pipeline.cancel(dep_id)
        for _ in range(100):
            if not any(r.app_id == app.id for r in self.core.pipeline.runs.values()):
                break
            await asyncio.sleep(0.1)
        try:
            for c in await self.core.engine.list_containers(all=True, project=app.project, app=app.name):
                await self.core.engine.remove(c.name)
            await self.core.engine.prune_app_images(app.project, app.name, 0, set())
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
        self.core.events.announce("app", "delete", project=app.project, app=app.name)

    async def deploy(self, app_ref: str, *, ref: str | None = None) -> Deployment:
        actor = await self._allow("apps.deploy", app_ref)
        return await self.queue_deployment(await self._get(app_ref), ref, actor)

    async def queue_deployment(
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

    async def _enqueue(self, w: Writer, app: App, dep_id: int) -> builtins.list[int]:
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

    async def _queued(self, app: App, dep_id: int, replaced: builtins.list[int]) -> Deployment:
        """Tell subscribers and workers about a deployment just queued by ``_enqueue``."""
        events = self.core.events
        for old in replaced:
            events.announce(
                "deployment", "state", project=app.project, app=app.name, deployment_id=old, state="cancelled"
            )
        events.announce(
            "deployment", "state", project=app.project, app=app.name, deployment_id=dep_id, state="queued"
        )
        events.announce("app", "status", project=app.project, app=app.name, state="deploying")
        self.core.wake_workers()
        return await self.m.deployments._get(dep_id)

    async def rollback(self, app_ref: str, *, to: int | None = None) -> Deployment:
        actor = await self._allow("apps.rollback", app_ref)
        app = await self._get(app_ref)
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
        if not await self.core.engine.image_exists(target["image"]):
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

    async def _live_container(self, app_ref: str) -> tuple[App, str]:
        app = await self._get(app_ref)
        if not app.container_name:
            raise Conflict(
                f"{app_ref} has no live deployment yet: deploy it first with `mist deploy {app_ref}`"
            )
        return app, app.container_name

    async def _set_status(self, app: App, status: str, action: str, actor: Caller) -> App:
        async with self.store.write() as w:
            await w.execute("UPDATE apps SET status = ?, updated_at = ? WHERE id = ?", (status, ts(), app.id))
            await audit(w, actor, action, project=app.project, app=app.name)
        self.core.events.announce("app", "status", project=app.project, app=app.name, state=status)
        return await self._get(app.ref)

    async def source(self, app_ref: str, *, reveal: bool = False) -> AppSource:
        caller = await self._allow("apps.source", app_ref)
        if reveal:
            await self.m.env._may_reveal(caller, app_ref)
        return await self.core.gitops.source(await self._get(app_ref), reveal=reveal)

    async def set_source(self, app_ref: str, changes: SourceChanges) -> AppSource:
        caller = await self._allow("apps.set_source", app_ref)
        await self.core.gitops.set_source(await self._get(app_ref), changes, caller)
        self.core.events.announce("app", "update", project=app_ref.split("/")[0], app=app_ref.split("/")[1])
        return await self.core.gitops.source(await self._get(app_ref), reveal=False)

    async def deploy_key(self, app_ref: str, *, regenerate: bool = False) -> AppSource:
        caller = await self._allow("apps.deploy_key", app_ref)
        await self.core.gitops.deploy_key(await self._get(app_ref), caller, regenerate=regenerate)
        return await self.core.gitops.source(await self._get(app_ref), reveal=False)

    async def start(self, app_ref: str) -> App:
        actor = await self._allow("apps.start", app_ref)
        app, name = await self._live_container(app_ref)
        await self.core.engine.start(name)
        return await self._set_status(app, "live", "app.start", actor)

    async def stop(self, app_ref: str) -> App:
        actor = await self._allow("apps.stop", app_ref)
        app, name = await self._live_container(app_ref)
        app = await self._set_status(
            app, "stopped", "app.stop", actor
        )  # first, so the 'die' event is expected
        await self.core.engine.stop(name, grace=float(await self.core.setting("stop_grace_period")))
        return app

    async def restart(self, app_ref: str) -> App:
        actor = await self._allow("apps.restart", app_ref)
        app, name = await self._live_container(app_ref)
        grace = float(await self.core.setting("stop_grace_period"))
        status = await live_containers.restart(
            self.core.engine, self.store, self.core.events, app, name, grace
        )
        return await self._set_status(app, status, "app.restart", actor)

    async def logs(
        self, app_ref: str, *, follow: bool = False, tail: int | None = 200, since: datetime | None = None
    ) -> AsyncIterator[LogLine]:
        await self._allow("apps.logs", app_ref)
        if tail is not None and not 0 <= tail <= 100_000:
            raise InvalidInput("tail must be between 0 and 100000 lines", field="tail")
        _, name = await self._live_container(app_ref)
        async for line in self.core.engine.logs(name, follow=follow, tail=tail, since=since):
            yield line


def _public_spec(spec: AppSpec) -> dict[str, Any]:
    """The spec as the audit log keeps it: a git URL's credentials masked."""
    data = spec.model_dump(mode="json")
    data["git_url"] = validate.redact_url(spec.git_url)
    return data


# ---------------------------------------------------------------------------------------------- env


class _Env(Part, EnvAPI):
    async def _app(self, app_ref: str) -> App:
        return await self.m.apps._get(app_ref)

    async def _may_reveal(self, caller: Caller, app_ref: str) -> None:
        project, _ = validate.app_ref(app_ref)
        role = await self.m.project_role(caller, project)
        allowed = permissions.at_least(role, permissions.ENV_REVEAL_ROLE, permissions.PROJECT_RANK)
        if not allowed or caller.scope not in (None, "admin"):
            raise PermissionDenied(
                f"secret values are shown only to developers and admins of project {project!r}"
                + (" (and to admin-scoped API tokens, not read or deploy ones)" if caller.scope else "")
            )

    def _var(self, app_id: int, row: Any, reveal: bool) -> EnvVar:
        value: str | None = row["value"]
        if row["secret"]:
            value = (
                self.core.secrets.open(row["value"], bound_to=f"env:{app_id}:{row['key']}")
                if reveal
                else None
            )
        return EnvVar(
            key=row["key"],
            value=value,
            secret=bool(row["secret"]),
            build=bool(row["build"]),
            updated_at=row["updated_at"],
        )

    async def list(self, app_ref: str, *, reveal: bool = False) -> list[EnvVar]:
        caller = await self.m.apps._allow("env.list", app_ref)
        if reveal:
            await self._may_reveal(caller, app_ref)
        app = await self._app(app_ref)
        rows = await self.store.all(
            "SELECT key, value, secret, build, updated_at FROM env_vars WHERE app_id = ? ORDER BY key",
            (app.id,),
        )
        return [self._var(app.id, r, reveal) for r in rows]

    async def _put(self, w: Writer, app: App, key: str, value: str, secret: bool, build: bool) -> None:
        stored = self.core.secrets.seal(value, bound_to=f"env:{app.id}:{key}") if secret else value
        await w.execute(
            "INSERT INTO env_vars (app_id, key, value, secret, build, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value, secret = excluded.secret, "
            "build = excluded.build, updated_at = excluded.updated_at",
            (app.id, key, stored, int(secret), int(build), ts()),
        )

    async def set(
        self, app_ref: str, key: str, value: str, *, secret: bool = False, build: bool = False
    ) -> EnvVar:
        actor = await self.m.apps._allow("env.set", app_ref)
        app = await self._app(app_ref)
        key, value = validate.env_key(key), validate.env_value(value)
        async with self.store.write() as w:
            await self._put(w, app, key, value, secret, build)
            await audit(
                w, actor, "env.set", project=app.project, app=app.name, key=key, secret=secret, build=build
            )
        self.core.events.announce("env", "set", project=app.project, app=app.name)
        row = await self.store.one(
            "SELECT key, value, secret, build, updated_at FROM env_vars WHERE app_id = ? AND key = ?",
            (app.id, key),
        )
        return self._var(app.id, row, reveal=False)

    async def unset(self, app_ref: str, key: str) -> None:
        actor = await self.m.apps._allow("env.unset", app_ref)
        app = await self._app(app_ref)
        async with self.store.write() as w:
            if not await w.execute("DELETE FROM env_vars WHERE app_id = ? AND key = ?", (app.id, key)):
                raise NotFound(f"{app_ref} has no variable {key!r}", field="key")
            await audit(w, actor, "env.unset", project=app.project, app=app.name, key=key)
        self.core.events.announce("env", "unset", project=app.project, app=app.name)

    async def import_dotenv(
        self, app_ref: str, text: str, *, secret: bool = False, build: bool = False
    ) -> builtins.list[EnvVar]:
        actor = await self.m.apps._allow("env.import_dotenv", app_ref)
        app = await self._app(app_ref)
        pairs = [(validate.env_key(k), validate.env_value(v)) for k, v in validate.parse_dotenv(text)]
        async with self.store.write() as w:
            for key, value in pairs:
                await self._put(w, app, key, value, secret, build)
            await audit(w, actor, "env.import", project=app.project, app=app.name, keys=[k for k, _ in pairs])
        self.core.events.announce("env", "import", project=app.project, app=app.name)
        keys = {k for k, _ in pairs}
        rows = await self.store.all(
            "SELECT key, value, secret, build, updated_at FROM env_vars WHERE app_id = ? ORDER BY key",
            (app.id,),
        )
        return [self._var(app.id, r, False) for r in rows if r["key"] in keys]

    async def export_dotenv(self, app_ref: str, *, reveal: bool = False) -> str:
        caller = await self.m.apps._allow("env.export_dotenv", app_ref)
        if reveal:
            await self._may_reveal(caller, app_ref)
        app = await self._app(app_ref)
        rows = await self.store.all(
            "SELECT key, value, secret, build, updated_at FROM env_vars WHERE app_id = ? ORDER BY key",
            (app.id,),
        )
        variables = [self._var(app.id, r, reveal) for r in rows]
        return validate.format_dotenv([(v.key, v.value if v.value is not None else "") for v in variables])


# ---------------------------------------------------------------------------------------------- deployments


class _Deployments(Part, DeploymentsAPI):
    async def list(self, app_ref: str, *, limit: int = 50, offset: int = 0) -> Page[Deployment]:
        await self.m.apps._allow("deployments.list", app_ref)
        limit, offset = page_args(limit, offset)
        app = await self.m.apps._get(app_ref)
        total = await self.store.scalar("SELECT COUNT(*) FROM deployments WHERE app_id = ?", (app.id,))
        rows = await self.store.all(
            rec.DEPLOYMENT_SELECT + " WHERE d.app_id = ? ORDER BY d.id DESC LIMIT ? OFFSET ?",
            (app.id, limit, offset),
        )
        return page([rec.deployment(r) for r in rows], total, limit, offset)

    async def get(self, deployment_id: int) -> Deployment:
        await self._allow("deployments.get", deployment_id)
        return await self._get(deployment_id)

    async def _get(self, deployment_id: int) -> Deployment:
        row = await self.store.one(rec.DEPLOYMENT_SELECT + " WHERE d.id = ?", (deployment_id,))
        if row is None:
            raise NotFound(f"there is no deployment {deployment_id}", field="deployment")
        return rec.deployment(row)

    async def _allow(self, operation: str, deployment_id: int) -> Caller:
        """Check ``operation`` on the project of the deployment; one the caller cannot see is not found."""
        row = await self.store.one(
            "SELECT p.name FROM deployments d JOIN apps a ON a.id = d.app_id "
            "JOIN projects p ON p.id = a.project_id WHERE d.id = ?",
            (deployment_id,),
        )
        missing = NotFound(f"there is no deployment {deployment_id}", field="deployment")
        if row is None:
            await self.m.caller()  # an anonymous caller learns that they must log in, not that it is missing
            raise missing
        try:
            return await self.m.allow(operation, project=row["name"])
        except NotFound:
            raise missing from None

    async def log(
        self, deployment_id: int, *, follow: bool = False, after: int = 0
    ) -> AsyncIterator[LogLine]:
        await self._allow("deployments.log", deployment_id)
        async for line in self.core.logs.follow(deployment_id, after, follow=follow):
            yield line

    async def cancel(self, deployment_id: int) -> Deployment:
        actor = await self._allow("deployments.cancel", deployment_id)
        dep = await self._get(deployment_id)
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
            self.core.events.announce(
                "deployment",
                "state",
                project=dep.project,
                app=dep.app,
                deployment_id=deployment_id,
                state="cancelled",
            )
            await self.core.pipeline.restore_app_status(dep.app_id, dep.project, dep.app, never_live="new")
        elif self.core.pipeline.cancel(deployment_id):
            for _ in range(300):
                dep = await self._get(deployment_id)
                if dep.state.is_final:
                    break
                await asyncio.sleep(0.1)
        return await self._get(deployment_id)


# ---------------------------------------------------------------------------------------------- runtime


class _Containers(Part, ContainersAPI):
    async def list(self, *, all: bool = False) -> list[ContainerInfo]:
        caller = await self.m.allow("containers.list")
        containers = await self.core.engine.list_containers(all=all)
        names = await self.m.visible_project_names(caller)
        return containers if names is None else [c for c in containers if c.project in names]

    async def describe(self, app_ref: str) -> ContainerDescription:
        await self.m.apps._allow("containers.describe", app_ref)
        app, name = await self.m.apps._live_container(app_ref)
        info = await self.core.engine.inspect(name)
        if info is None:
            raise NotFound(f"the live container of {app_ref} ({name}) does not exist: deploy the app again")
        assert app.live_deployment_id is not None
        secret = await live_containers.secret_keys(self.store, app.live_deployment_id)
        return live_containers.describe(app, info, secret)

    async def exec(
        self,
        app_ref: str,
        command: builtins.list[str] | None = None,
        *,
        tty: bool = False,
        height: int | None = None,
        width: int | None = None,
    ) -> ExecChannel:
        actor = await self.m.apps._allow("containers.exec", app_ref)
        argv = live_containers.exec_command(command)
        size = live_containers.terminal_size(height, width)
        app, name = await self.m.apps._live_container(app_ref)
        channel = await live_containers.open_exec(self.core.engine, app, name, argv, tty=tty, size=size)
        async with self.store.write() as w:
            await audit(w, actor, "container.exec", project=app.project, app=app.name, command=argv, tty=tty)
        return channel


class _Metrics(Part, MetricsAPI):
    """Server figures are for every signed-in user; per-container figures only for the apps they see."""

    async def _scope(self, operation: str) -> Callable[[MetricsSample], MetricsSample]:
        names = await self.m.visible_project_names(await self.m.allow(operation))
        if names is None:
            return lambda sample: sample

        def scoped(sample: MetricsSample) -> MetricsSample:
            kept = [c for c in sample.containers if c.project in names]
            return sample.model_copy(update={"containers": kept})

        return scoped

    async def current(self) -> MetricsSample:
        scoped = await self._scope("metrics.current")
        return scoped(self.core.sampler.latest() or await self.core.sampler.sample())

    async def history(self, *, seconds: int = 300) -> list[MetricsSample]:
        scoped = await self._scope("metrics.history")
        if not 1 <= seconds <= 86400:
            raise InvalidInput("seconds must be between 1 and 86400", field="seconds")
        return [scoped(s) for s in self.core.sampler.history(seconds)]

    async def stream(self) -> AsyncIterator[MetricsSample]:
        scoped = await self._scope("metrics.stream")
        async for sample in self.core.sampler.subscribe():
            yield scoped(sample)


class _Events(Part, EventsAPI):
    async def stream(self) -> AsyncIterator[Event]:
        caller = await self.m.allow("events.stream")
        names = await self.m.visible_project_names(caller)
        async for event in self.core.events.subscribe():
            # Someone who sees only some projects hears only about those (an event of no project included).
            if names is not None and event.project not in names:
                if event.kind != "project" or event.project is None:
                    continue
                # A project created, renamed or joined since the stream began: look again.
                names = await self.m.visible_project_names(caller)
                if names is not None and event.project not in names:
                    continue
            yield event


class _Audit(Part, AuditAPI):
    async def _visible(self, caller: Caller) -> tuple[builtins.list[str], builtins.list[Any]]:
        """The entries the caller may read: instance admins all; project admins their projects'; everyone
        what they did themselves. A token bound to a project reads only that project's entries among those,
        never what its user did elsewhere."""
        admin = permissions.at_least(caller.role, "admin", permissions.INSTANCE_RANK)
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        if caller.token_project_id is not None:
            clauses.append("project = ?")
            params.append(await self.m.bound_project_name(caller))
        if not admin:
            rows = await self.store.all(
                "SELECT p.name FROM project_members m JOIN projects p ON p.id = m.project_id "
                "WHERE m.user_id = ? AND m.role = 'admin'",
                (caller.user.id,),
            )
            administered = [r["name"] for r in rows]
            marks = ",".join("?" * len(administered))
            clauses.append(f"(actor = ?{f' OR project IN ({marks})' if administered else ''})")
            params += [caller.username, *administered]
        return clauses, params

    async def list(
        self,
        *,
        actor: str | None = None,
        project: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[AuditEntry]:
        caller = await self.m.allow("audit.list")
        limit, offset = page_args(limit, offset)
        clauses, params = await self._visible(caller)
        if actor:
            clauses.append("actor = ?")
            params.append(actor)
        if project:
            clauses.append("project = ?")
            params.append(project)
        if action:
            clauses.append("action LIKE ? ESCAPE '\\'")
            params.append(like(action) + "%")
        if since is not None:
            clauses.append("ts >= ?")
            params.append(ts(since))
        if until is not None:
            clauses.append("ts < ?")
            params.append(ts(until))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        total = await self.store.scalar(f"SELECT COUNT(*) FROM audit_log{where}", params)
        rows = await self.store.all(
            f"SELECT * FROM audit_log{where} ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        items = [
            AuditEntry(
                id=r["id"],
                ts=r["ts"],
                actor=r["actor"],
                actor_role=r["actor_role"],
                source=r["source"],
                action=r["action"],
                project=r["project"],
                app=r["app"],
                detail=json.loads(r["detail"]),
            )
            for r in rows
        ]
        return page(items, total, limit, offset)


class _Settings(Part, SettingsAPI):
    async def _one(self, key: str) -> Setting:
        definition = settings_defs.DEFINITIONS.get(key)
        if definition is None:
            settings_defs.parse(key, "")  # raises the 'no such setting' error
            raise AssertionError
        return Setting(
            key=key,
            value=await self.core.setting(key),
            default=definition.default,
            description=definition.description,
        )

    async def list(self) -> list[Setting]:
        await self.m.allow("settings.list")
        return [await self._one(key) for key in sorted(settings_defs.DEFINITIONS)]

    async def get(self, key: str) -> Setting:
        await self.m.allow("settings.get")
        return await self._one(key)

    async def set(self, key: str, value: str) -> Setting:
        actor = await self.m.allow("settings.set")
        value = str(settings_defs.parse(key, value))
        before = await self.core.setting(key)
        async with self.store.write() as w:
            await w.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, ts()),
            )
            await audit(w, actor, "settings.set", key=key, before=before, after=value)
        self.core._settings[key] = value
        await self.core.setting_changed(key)
        return await self._one(key)


# ---------------------------------------------------------------------------------------------- domains, TLS


class _Domains(Part, DomainsAPI):
    async def list(self, app_ref: str) -> builtins.list[Domain]:
        await self.m.apps._allow("domains.list", app_ref)
        app = await self.m.apps._get(app_ref)
        return await domains.list_domains(self.store, app.id)

    async def _changed(self, app: App, action: str, name: str, actor: Caller, **detail: Any) -> None:
        async with self.store.write() as w:
            await audit(
                w, actor, f"domain.{action}", project=app.project, app=app.name, domain=name, **detail
            )
        self.core.events.announce("app", "domains", project=app.project, app=app.name)
        try:
            await self.core.publish_routes()
        except MistError as err:
            # The domain is stored either way; the proxy status says what went wrong, and the next change or
            # `mist proxy reload` tries again.
            log.warning("the proxy refused the routes after %s of %s: %s", action, name, err.message)

    async def add(self, app_ref: str, name: str, settings: DomainSettings | None = None) -> Domain:
        actor = await self.m.apps._allow("domains.add", app_ref)
        app = await self.m.apps._get(app_ref)
        options = domains.DomainOptions(**(settings or DomainSettings()).model_dump())
        visible = await self.m.visible_projects(actor)
        domain = await domains.add_domain(self.store, app.id, name, options, visible_projects=visible)
        await self._changed(app, "add", domain.name, actor, https=domain.https)
        return domain

    async def update(self, app_ref: str, name: str, settings: DomainSettings) -> Domain:
        actor = await self.m.apps._allow("domains.update", app_ref)
        app = await self.m.apps._get(app_ref)
        domain = await domains.update_domain(
            self.store,
            app.id,
            name,
            domains.DomainOptions(**settings.model_dump()),
            visible_projects=await self.m.visible_projects(actor),
        )
        await self._changed(app, "update", domain.name, actor, settings=settings.model_dump())
        return domain

    async def remove(self, app_ref: str, name: str) -> None:
        actor = await self.m.apps._allow("domains.remove", app_ref)
        app = await self.m.apps._get(app_ref)
        removed = await domains.remove_domain(self.store, app.id, name)
        for host in (removed.name, removed.redirect_from):
            if host:
                await self.core.certs.remove(host)
        await self._changed(app, "remove", removed.name, actor)


class _Certificates(Part, CertificatesAPI):
    async def list(self, app_ref: str | None = None) -> builtins.list[Certificate]:
        if app_ref is not None:
            await self.m.apps._allow("domains.list", app_ref)
            app_ids: set[int] | None = {(await self.m.apps._get(app_ref)).id}
        else:
            caller = await self.m.allow("certificates.list")
            visible, params = _visible_clause(await self.m.visible_projects(caller), "a.project_id")
            app_ids = None
            if visible != "1":
                rows = await self.store.all(f"SELECT a.id FROM apps a WHERE {visible}", params)
                app_ids = {int(r["id"]) for r in rows}
        certificates = await self.core.certs.list()
        if app_ids is None:
            return certificates
        names: set[str] = set()
        for app_id in app_ids:
            for d in await domains.list_domains(self.store, app_id):
                names.update(n for n in (d.name, d.redirect_from) if n)
        return [c for c in certificates if c.domain in names]

    async def _allow(self, operation: str, domain: str) -> Caller:
        """Check ``operation`` on the project of the app that serves ``domain``. A certificate of no app's
        domain (left over, or uploaded ahead) belongs to the instance: admins only."""
        name = validate_domain(domain)
        # The name itself, or the other half of a www redirect (a certificate covers both).
        bare = name.removeprefix("www.")
        row = await self.store.one(
            "SELECT p.name FROM domains d JOIN apps a ON a.id = d.app_id JOIN projects p ON p.id = a.project_id "
            "WHERE d.name IN (?, ?, ?) ORDER BY d.name = ? DESC LIMIT 1",
            (name, bare, f"www.{bare}", name),
        )
        if row is None:
            try:
                return await self.m.allow(operation, project=None)
            except PermissionDenied:
                raise NotFound(f"no app of yours serves {name!r}", field="domain") from None
        try:
            return await self.m.allow(operation, project=row["name"])
        except NotFound:
            raise NotFound(f"no app of yours serves {name!r}", field="domain") from None

    async def renew(self, domain: str) -> Certificate:
        actor = await self._allow("certificates.renew", domain)
        current = await self.core.certs.require(domain)
        await self.core.certs.mark_pending(domain)
        async with self.store.write() as w:
            await audit(w, actor, "certificate.renew", domain=domain, source_before=current.source)
        if self.core.cert_scheduler is not None:
            self.core.cert_scheduler.wake()
        return await self.core.certs.require(domain)

    async def upload(self, domain: str, cert_pem: str, key_pem: str) -> Certificate:
        actor = await self._allow("certificates.upload", domain)
        name = validate_domain(domain)
        parsed = validate_upload(cert_pem, key_pem, domain=name, now=now())
        await self.core.certs.save_uploaded(
            name,
            cert_pem=parsed.cert_pem,
            chain_pem=parsed.chain_pem,
            key_pem=parsed.key_pem,
            not_before=parsed.not_before,
            not_after=parsed.not_after,
            serial=parsed.serial,
        )
        async with self.store.write() as w:
            await audit(
                w, actor, "certificate.upload", domain=name, serial=parsed.serial, issuer=parsed.issuer
            )
        with contextlib.suppress(MistError):
            await self.core.publish_routes()
        return await self.core.certs.require(name)


class _Proxy(Part, ProxyAPI):
    async def _status(self, caller: Caller) -> ProxyStatus:
        # Where Mist keeps files on the host is for instance admins (not a token bound to one project).
        admin = caller.token_project_id is None and permissions.at_least(
            caller.role, "admin", permissions.INSTANCE_RANK
        )
        return await self.core.routes.status(self.core.engine, host_details=admin)

    async def status(self) -> ProxyStatus:
        return await self._status(await self.m.allow("proxy.status"))

    async def reload(self) -> ProxyStatus:
        actor = await self.m.allow("proxy.reload")
        await self.core.publish_routes()
        async with self.store.write() as w:
            await audit(w, actor, "proxy.reload")
        return await self._status(actor)

    async def install(self) -> ProxyStatus:
        actor = await self.m.allow("proxy.install")
        if await self.core.setting("proxy_backend") != "traefik":
            raise Conflict(
                "proxy_backend is caddy: Mist configures a Caddy you run (apt-get install caddy) through its "
                "admin API at caddy_admin_url; `mist proxy install` starts Traefik only"
            )
        engine = self.core.engine
        if not await engine.image_exists(TRAEFIK_IMAGE):
            raise NotFound(
                f"the image {TRAEFIK_IMAGE} is not on this server: pull it (docker pull {TRAEFIK_IMAGE}) and run "
                "`mist proxy install` again"
            )
        spec = traefik_spec(
            traefik_dir=self.core.routes.traefik_dir,
            http_address=await self.core.setting("proxy_http_address"),
            https_address=await self.core.setting("proxy_https_address"),
        )
        self.core.routes.traefik_dir.mkdir(parents=True, exist_ok=True)
        await self.core.publish_routes()  # the files exist before Traefik starts watching them
        await engine.ensure_network()
        await engine.remove(PROXY_CONTAINER)
        await engine.run(spec)
        # Every project's network, so Traefik dials every app by name.
        await connect_proxy(engine, await engine.networks([LABEL_PROJECT_UID]))
        async with self.store.write() as w:
            await audit(w, actor, "proxy.install", image=TRAEFIK_IMAGE)
        return await self._status(actor)
