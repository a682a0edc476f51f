"""Where code lives, on the core's side: git providers, how each app reaches its repository, webhook
deliveries (push to deploy, pull requests to previews) and the commit statuses and comments Mist writes back.

``GitOps`` (one per ``Core``) holds the webhook receiver, previews, the GitHub App manifest flow, and a task
that follows deployment events to post commit statuses. It gets its collaborators from the core: the store,
the provider clients and fetch credentials (``sources.credentials``), and the deployment orders it places for
a push or a pull request. The API parts over it are in ``local/git.py``.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import secrets as random
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import domains, validate
from .calls import Caller, audit
from .deploys.orders import DeploymentOrders
from .errors import Conflict, InvalidInput, MistError, NotFound
from .events import EventBus
from .models import (
    App,
    AppSource,
    GitProvider,
    GitProviderSpec,
    Preview,
    PreviewSettings,
    SourceChanges,
)
from .secrets import SecretBox
from .sources.credentials import SourceCredentials
from .store import Row, Store, Writer, ts

if TYPE_CHECKING:
    from .webhooks import WebhookEvent

log = logging.getLogger("mist.git")

DEFAULT_URLS = {"github": "https://github.com"}
TOKEN_USERNAMES = {"github": "x-access-token", "gitlab": "oauth2", "gitea": "mist"}
StatusState = Literal["pending", "success", "failure", "error"]
STATUS_STATES: dict[str, StatusState] = {
    "building": "pending",
    "live": "success",
    "failed": "failure",
    "cancelled": "error",
}


def new_hook_id() -> str:
    """The random part of an app's or a provider's webhook address."""
    return random.token_urlsafe(18)


def provider_api_url(kind: str, url: str) -> str:
    """The API address of a provider at ``url`` (GitHub's is on another host; GitHub Enterprise's is under
    its own address)."""
    if kind == "github":
        return (
            "https://api.github.com"
            if url.rstrip("/") == "https://github.com"
            else url.rstrip("/") + "/api/v3"
        )
    return url.rstrip("/")


class GitOps:
    def __init__(
        self,
        *,
        store: Store,
        secrets: SecretBox,
        events: EventBus,
        credentials: SourceCredentials,
        orders: DeploymentOrders,
        setting: Callable[[str], Awaitable[str]],
        publish_routes: Callable[[], Awaitable[None]],
        git_roots: list[Path],
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.events = events
        self.credentials = credentials
        self.orders = orders
        self.setting = setting
        self.publish_routes = publish_routes
        self.git_roots = git_roots
        self._tasks: set[asyncio.Task[Any]] = set()

    def _seal(self, value: str, binding: str) -> str:
        return self.secrets.seal(value, bound_to=binding)

    def _open(self, value: str, binding: str) -> str:
        return self.secrets.open(value, bound_to=binding)

    def background(self, coro: Any) -> None:
        """Run provider calls (statuses, comments, removals) after the request that caused them."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------------------------------------ providers

    async def public_url(self) -> str | None:
        return (await self.setting("public_url")).rstrip("/") or None

    async def hook_url(self, hook_id: str) -> str | None:
        base = await self.public_url()
        return f"{base}/hooks/{hook_id}" if base else None

    async def provider(self, row: Row) -> GitProvider:
        return GitProvider(
            id=row["id"],
            name=row["name"],
            kind=row["kind"],
            url=row["url"],
            api_url=row["api_url"],
            app_id=row["app_id"],
            app_slug=row["app_slug"],
            installation_id=row["installation_id"],
            webhook_url=await self.hook_url(row["hook_id"]) if row["kind"] == "github" else None,
            created_at=row["created_at"],
        )

    async def store_provider(
        self,
        caller: Caller | None,
        name: str,
        spec: GitProviderSpec,
        url: str,
        api_url: str,
        slug: str | None = None,
        hook_id: str | None = None,
    ) -> GitProvider:
        """Keep a provider once its credentials work (``caller`` None: GitHub, finishing an App's creation)."""
        async with self.store.write() as w:
            if await w.one("SELECT 1 FROM git_providers WHERE name = ?", (name,)):
                raise Conflict(f"a git provider named {name!r} exists already", field="name")
            pid = await w.execute(
                "INSERT INTO git_providers (name, kind, url, api_url, app_id, app_slug, installation_id, hook_id, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    spec.kind,
                    url,
                    api_url,
                    spec.app_id,
                    slug,
                    spec.installation_id,
                    hook_id or new_hook_id(),
                    ts(),
                ),
            )
            seal = self.secrets.seal
            await w.execute(
                "UPDATE git_providers SET token_sealed = ?, key_sealed = ?, secret_sealed = ? WHERE id = ?",
                (
                    seal(spec.token, bound_to=f"provider:{pid}:token") if spec.token else None,
                    seal(spec.private_key, bound_to=f"provider:{pid}:key") if spec.private_key else None,
                    seal(spec.webhook_secret, bound_to=f"provider:{pid}:secret")
                    if spec.webhook_secret
                    else None,
                    pid,
                ),
            )
            row = await w.one("SELECT * FROM git_providers WHERE id = ?", (pid,))
            assert row is not None
            # The credentials must work before the provider is kept: a failure rolls the insert back.
            client = self.credentials.client_for(row)
            try:
                if spec.kind == "github" and not spec.installation_id:
                    installations = await client.installations()  # type: ignore[attr-defined]
                    if installations:
                        await w.execute(
                            "UPDATE git_providers SET installation_id = ? WHERE id = ?",
                            (installations[0].id, pid),
                        )
                        await self.credentials.forget_client(pid)
                        row = await w.one("SELECT * FROM git_providers WHERE id = ?", (pid,))
                        assert row is not None
                        client = self.credentials.client_for(row)
                if spec.kind != "github" or row["installation_id"]:
                    await client.repos()
            except BaseException:
                await self.credentials.forget_client(pid)
                raise
            await audit(
                w, caller, "git.provider_add", actor=None if caller else "github", name=name, kind=spec.kind
            )
        return await self.provider(row)

    async def manifest_page(self, state: str) -> str:
        """The page the browser opens to create the App: a form that posts Mist's manifest to GitHub."""
        from .providers.github import build_manifest, manifest_form

        row = await self.store.one("SELECT * FROM github_manifests WHERE state = ?", (state,))
        base = await self.public_url()
        if row is None or base is None:
            raise NotFound("this GitHub App creation is unknown or finished already: start again")
        manifest = build_manifest(
            f"Mist {row['name']}",
            base,
            f"{base}/hooks/{row['hook_id']}",
            f"{base}/hooks/github/callback",
        )
        return manifest_form(row["url"], manifest, state)

    async def finish_manifest(self, state: str, code: str) -> GitProvider:
        """GitHub sent the browser back with ``code``: turn it into the App's credentials and keep them."""
        from .providers.github import convert_manifest

        row = await self.store.one("SELECT * FROM github_manifests WHERE state = ?", (state,))
        if row is None:
            raise NotFound("this GitHub App creation is unknown or finished already: start again")
        async with self.store.write() as w:
            await w.execute("DELETE FROM github_manifests WHERE state = ?", (state,))
        url = row["url"].split("/organizations/")[0]
        api_url = provider_api_url("github", url)
        credentials = await convert_manifest(code, api_url)
        spec = GitProviderSpec(
            name=row["name"],
            kind="github",
            url=url,
            api_url=api_url,
            app_id=credentials.id,
            private_key=credentials.pem,
            webhook_secret=credentials.webhook_secret,
        )
        return await self.store_provider(
            None, row["name"], spec, url, api_url, slug=credentials.slug, hook_id=row["hook_id"]
        )

    # ------------------------------------------------------------------------------------------ app sources

    async def ensure_source(self, w: Writer, app_id: int) -> None:
        """Every app gets a source row (with its webhook id and secret) the first time one is needed."""
        if await w.one("SELECT 1 FROM app_sources WHERE app_id = ?", (app_id,)):
            return
        await w.execute(
            "INSERT INTO app_sources (app_id, hook_id, secret_sealed) VALUES (?, ?, ?)",
            (app_id, new_hook_id(), self._seal(random.token_hex(20), f"source:{app_id}:secret")),
        )

    async def source(self, app: App, *, reveal: bool) -> AppSource:
        row = await self.credentials.source_row(app.id)
        if row is None:
            async with self.store.write() as w:
                await self.ensure_source(w, app.id)
            row = await self.credentials.source_row(app.id)
            assert row is not None
        auth = "none"
        if row["provider_id"]:
            auth = "provider"
        elif row["key_sealed"]:
            auth = "deploy_key"
        elif row["token_sealed"]:
            auth = "token"
        from .sources.keys import fingerprint_of

        return AppSource(
            auth=auth,  # type: ignore[arg-type]
            provider=row["provider_name"],
            repo=row["repo"],
            deploy_key=row["public_key"],
            deploy_key_fingerprint=fingerprint_of(row["public_key"]) if row["public_key"] else None,
            known_hosts=row["known_hosts"],
            webhook_kind=row["provider_kind"] or row["webhook_kind"],
            webhook_url=await self.hook_url(row["hook_id"]),
            webhook_secret=self._open(row["secret_sealed"], f"source:{app.id}:secret") if reveal else None,
            deploy_on_push=bool(row["deploy_on_push"]),
            deploy_tags=bool(row["deploy_tags"]),
            previews=PreviewSettings.model_validate_json(row["previews"] or "{}"),
        )

    async def set_source(self, app: App, changes: SourceChanges, caller: Caller) -> App:
        """Apply ``changes``; linking a provider repository also points the app's git URL at it."""
        spec = app.spec
        async with self.store.write() as w:
            await self.ensure_source(w, app.id)
            sets: dict[str, Any] = {}
            detail: dict[str, Any] = {}
            if changes.token is not None:
                sets["token_sealed"] = (
                    self._seal(changes.token, f"source:{app.id}:token") if changes.token else None
                )
                detail["token"] = "set" if changes.token else "removed"
            if changes.provider is not None:
                if changes.provider:
                    prow = await self.credentials.provider_row(changes.provider)
                    repo = validate.repo_name(changes.repo or "")
                    sets.update(provider_id=prow["id"], repo=repo)
                    spec = spec.model_copy(update={"git_url": f"{prow['url']}/{repo}.git"})
                    spec = validate.app_spec(spec, allowed_roots=self.git_roots)
                else:
                    sets.update(provider_id=None, repo=None)
                detail["provider"] = changes.provider or None
            elif changes.repo is not None:
                raise InvalidInput("a repository needs its provider (--provider)", field="repo")
            if changes.webhook_kind is not None:
                sets["webhook_kind"] = changes.webhook_kind
            if changes.deploy_on_push is not None:
                sets["deploy_on_push"] = int(changes.deploy_on_push)
            if changes.deploy_tags is not None:
                sets["deploy_tags"] = int(changes.deploy_tags)
            if changes.previews is not None:
                previews = changes.previews
                if not 1 <= previews.limit <= 50:
                    raise InvalidInput("the preview limit is 1 to 50", field="previews.limit")
                _preview_domain(previews.domain_pattern, 1, "example.com")  # refuses a bad pattern now
                for key, value in previews.env.items():
                    validate.env_key(key), validate.env_value(value)
                sets["previews"] = previews.model_dump_json()
            if changes.forget_known_hosts:
                sets["known_hosts"] = None
            if changes.new_webhook_secret:
                sets["secret_sealed"] = self._seal(random.token_hex(20), f"source:{app.id}:secret")
                detail["webhook_secret"] = "renewed"
            if sets:
                assignments = ", ".join(f"{k} = ?" for k in sets)
                await w.execute(
                    f"UPDATE app_sources SET {assignments} WHERE app_id = ?", (*sets.values(), app.id)
                )
            if spec is not app.spec:
                await w.execute(
                    "UPDATE apps SET spec = ?, updated_at = ? WHERE id = ?",
                    (spec.model_dump_json(), ts(), app.id),
                )
            public = {k: v for k, v in changes.model_dump(exclude_none=True).items() if k != "token"}
            await audit(w, caller, "app.source", project=app.project, app=app.name, **{**public, **detail})
        return app

    async def deploy_key(self, app: App, caller: Caller, *, regenerate: bool) -> None:
        from .sources.keys import generate_deploy_key

        row = await self.credentials.source_row(app.id)
        if row is not None and row["key_sealed"] and not regenerate:
            return
        key = generate_deploy_key(f"mist-{app.project}-{app.name}")
        async with self.store.write() as w:
            await self.ensure_source(w, app.id)
            await w.execute(
                "UPDATE app_sources SET key_sealed = ?, public_key = ? WHERE app_id = ?",
                (self._seal(key.private_openssh, f"source:{app.id}:key"), key.public_openssh, app.id),
            )
            await audit(
                w, caller, "app.deploy_key", project=app.project, app=app.name, fingerprint=key.fingerprint
            )

    # ------------------------------------------------------------------------------------------ webhooks

    async def receive(self, hook_id: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Handle one delivery to ``/hooks/<hook_id>``; returns the HTTP status and a short answer. Every
        delivery to a known hook is recorded with what was done and why."""
        from . import webhooks

        source = await self.store.one(
            "SELECT s.*, a.id AS app_id, p.kind AS provider_kind FROM app_sources s JOIN apps a ON a.id = s.app_id "
            "LEFT JOIN git_providers p ON p.id = s.provider_id WHERE s.hook_id = ?",
            (hook_id,),
        )
        provider = None
        if source is None:
            provider = await self.store.one("SELECT * FROM git_providers WHERE hook_id = ?", (hook_id,))
            if provider is None:
                return 404, "no such webhook"
        app_id = int(source["app_id"]) if source else None
        provider_id = int(provider["id"]) if provider else None

        async def record(outcome: str, reason: str, event: str = "unknown", **extra: Any) -> None:
            async with self.store.write() as w:
                await self._record(w, hook_id, app_id, provider_id, event, outcome, reason, **extra)

        if len(body) > webhooks.MAX_BODY:
            await record("refused", f"the body is over {webhooks.MAX_BODY} bytes: at most that is accepted")
            return 413, "body too large"
        if source is not None:
            kind = source["provider_kind"] or source["webhook_kind"]
            secret = self._open(source["secret_sealed"], f"source:{app_id}:secret")
            if kind is None:
                await record(
                    "refused", "the app does not say which git host signs its webhooks (set webhook_kind)"
                )
                return 400, "webhook kind not set"
        else:
            assert provider is not None
            kind = provider["kind"]
            sealed = provider["secret_sealed"] or provider["token_sealed"]
            binding = "secret" if provider["secret_sealed"] else "token"
            secret = self._open(sealed, f"provider:{provider_id}:{binding}")
        try:
            webhooks.verify(kind, headers, body, secret)
        except webhooks.WebhookRefused as err:
            await record("refused", err.message)
            return err.status, err.message
        try:
            event = webhooks.parse(kind, headers, body)
        except webhooks.WebhookRefused as err:
            await record("refused", err.message)
            return err.status, err.message

        if source is not None:
            targets = [int(source["app_id"])]
        else:
            rows = await self.store.all(
                "SELECT s.app_id FROM app_sources s JOIN apps a ON a.id = s.app_id "
                "WHERE s.provider_id = ? AND s.repo = ? AND a.preview_of IS NULL",
                (provider_id, event.repo),
            )
            targets = [int(r["app_id"]) for r in rows]
        claim = await self._claim(hook_id, app_id, targets[0] if targets else None, provider_id, event)
        if claim is None:
            return 409, "delivery already received"
        if not targets:
            async with self.store.write() as w:
                await self._settle(w, claim, "ignored", f"no app follows {event.repo or 'this repository'}")
            return 202, "ignored"
        for target in targets:
            failure: Exception | None = None
            try:
                outcome, reason, extra = await self._handle(target, event)
            except Exception as err:
                # A bug, not the delivery: its record says so rather than "being handled" for ever.
                outcome, reason, extra = "refused", "Mist failed while handling it: see the daemon's log", {}
                failure = err
            async with self.store.write() as w:
                if target == targets[0]:
                    await self._settle(w, claim, outcome, reason, **extra)
                else:
                    await self._record(
                        w,
                        hook_id,
                        target,
                        provider_id,
                        event.event,
                        outcome,
                        reason,
                        delivery_id=event.delivery_id,
                        **extra,
                    )
            if failure is not None:
                raise failure
        return 202, "accepted"

    async def _claim(
        self,
        hook_id: str,
        hook_app_id: int | None,
        first_target: int | None,
        provider_id: int | None,
        event: WebhookEvent,
    ) -> int | None:
        """Take ``event``'s delivery id for this hook: the id of the row that records it, or None when it
        was taken before (a replay, recorded as refused). Checked and taken in one write transaction, so of
        deliveries that arrive together exactly one is handled."""
        async with self.store.write() as w:
            if await w.one(
                "SELECT 1 FROM webhook_deliveries WHERE hook_id = ? AND delivery_id = ?",
                (hook_id, event.delivery_id),
            ):
                # Recorded without the id: the id stays the first delivery's.
                await self._record(
                    w,
                    hook_id,
                    hook_app_id,
                    provider_id,
                    event.event,
                    "refused",
                    f"delivery {event.delivery_id} was received already (a replay)",
                )
                return None
            # Settled with what was done once it is done; the reason says so if the daemon stops first.
            return await self._record(
                w,
                hook_id,
                first_target,
                provider_id,
                event.event,
                "ignored",
                "received and being handled (if this stays, Mist stopped before it finished)",
                delivery_id=event.delivery_id,
            )

    @staticmethod
    async def _settle(w: Writer, record_id: int, outcome: str, reason: str, **extra: Any) -> None:
        """Record what was done with a claimed delivery."""
        await w.execute(
            "UPDATE webhook_deliveries SET outcome = ?, reason = ?, ref = ?, sha = ?, pr_number = ?, "
            "deployment_id = ? WHERE id = ?",
            (
                outcome,
                reason[:500],
                extra.get("ref"),
                extra.get("sha"),
                extra.get("pr_number"),
                extra.get("deployment_id"),
                record_id,
            ),
        )

    @staticmethod
    async def _record(
        w: Writer,
        hook_id: str,
        app_id: int | None,
        provider_id: int | None,
        event: str,
        outcome: str,
        reason: str,
        **extra: Any,
    ) -> int:
        return await w.execute(
            "INSERT INTO webhook_deliveries (hook_id, app_id, provider_id, delivery_id, event, received_at, "
            "outcome, reason, ref, sha, pr_number, deployment_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                hook_id,
                app_id,
                provider_id,
                extra.get("delivery_id"),
                event[:100],
                ts(),
                outcome,
                reason[:500],
                extra.get("ref"),
                extra.get("sha"),
                extra.get("pr_number"),
                extra.get("deployment_id"),
            ),
        )

    async def _app(self, app_id: int) -> App:
        from .store import records as rec

        row = await self.store.one(rec.APP_SELECT + " WHERE a.id = ?", (app_id,))
        if row is None:
            raise NotFound(f"app {app_id} was deleted")
        return rec.app(row)

    async def _handle(self, app_id: int, event: WebhookEvent) -> tuple[str, str, dict[str, Any]]:
        app = await self._app(app_id)
        source = await self.credentials.source_row(app_id)
        assert source is not None
        if event.event == "ping":
            return "ignored", "a ping: the webhook works", {}
        extra: dict[str, Any]
        if event.event == "push":
            extra = {"ref": event.ref, "sha": event.sha}
            if event.deleted:
                return "ignored", f"{event.ref} was deleted", extra
            wanted = (event.branch is not None and event.branch == app.spec.branch) or (
                event.tag is not None and bool(source["deploy_tags"])
            )
            if not wanted:
                follows = f"branch {app.spec.branch}" + (" and tags" if source["deploy_tags"] else "")
                return "ignored", f"a push to {event.ref}; the app follows {follows}", extra
            if not source["deploy_on_push"]:
                return "ignored", "deploy on push is off for this app", extra
            assert event.sha is not None  # a push that did not delete its ref
            try:
                deployment = await self.orders.queue(app, event.sha, None, triggered_by="webhook")
            except MistError as err:
                return "refused", f"the deployment could not be queued: {err.message}", extra
            return (
                "deployed",
                f"queued deployment {deployment.id} of {event.sha[:12]}",
                {
                    **extra,
                    "deployment_id": deployment.id,
                },
            )
        if event.event == "pull_request" and event.number is not None and event.head_sha:
            extra = {"pr_number": event.number, "sha": event.head_sha, "ref": event.head_ref}
            settings = PreviewSettings.model_validate_json(source["previews"] or "{}")
            if not settings.enabled:
                return "ignored", "previews are off for this app", extra
            if event.action == "closed":
                removed = await self.remove_preview(app, event.number)
                return "preview", "preview removed" if removed else "no preview to remove", extra
            if event.action not in ("opened", "synchronize", "reopened"):
                return "ignored", f"pull request {event.action}: nothing to do", extra
            try:
                return await self.upsert_preview(app, source, settings, event, extra)
            except MistError as err:
                return "refused", f"the preview could not be made: {err.message}", extra
        return "ignored", f"{event.event} events are not ones Mist acts on", {}

    # ------------------------------------------------------------------------------------------ previews

    async def upsert_preview(
        self, app: App, source: Row, settings: PreviewSettings, event: WebhookEvent, extra: dict[str, Any]
    ) -> tuple[str, str, dict[str, Any]]:
        """Create or update the preview of the pull request ``event`` names, and queue a deployment of its
        head commit."""
        number = int(event.number or 0)
        assert event.head_sha is not None
        # The pull request's code runs with these variables: the app's secrets only when its owner shares
        # them with previews, and never with a fork's pull request, which anyone can open.
        with_secrets = settings.share_secrets and not event.from_fork
        existing = await self.store.one(
            "SELECT id FROM apps WHERE preview_of = ? AND pr_number = ?", (app.id, number)
        )
        if existing is None:
            live = await self.store.one("SELECT COUNT(*) AS n FROM apps WHERE preview_of = ?", (app.id,))
            if live is not None and live["n"] >= settings.limit:
                return "ignored", f"{app.ref} has {live['n']} previews, its limit: close one first", extra
            preview_id, left_out = await self._create_preview(
                app, settings, number, event.head_ref, with_secrets=with_secrets
            )
        else:
            preview_id = int(existing["id"])
            async with self.store.write() as w:
                left_out = await self._preview_env(w, app.id, preview_id, settings, with_secrets=with_secrets)
        preview = await self._app(preview_id)
        deployment = await self.orders.queue(preview, event.head_sha, None, triggered_by="webhook")
        self.background(self._comment(preview_id, f"deploying {event.head_sha[:12]}"))
        reason = f"preview {preview.ref}: queued deployment {deployment.id}"
        if left_out:
            why = (
                "a pull request from a fork never gets them"
                if event.from_fork
                else "previews get them only when the app shares its secrets with previews"
            )
            reason += f", without the app's {left_out} secret variable(s) ({why})"
        return "preview", reason, {**extra, "deployment_id": deployment.id}

    async def _preview_env(
        self, w: Writer, parent_id: int, preview_id: int, settings: PreviewSettings, *, with_secrets: bool
    ) -> int:
        """Make a preview's variables afresh for its next deployment: the app's (its secrets re-sealed for the
        preview, and only ``with_secrets``), then the preview overrides. Returns how many of the app's secrets
        the preview has no value for. Made afresh each time, so a change of the app's variables or of the setting reaches the preview
        at its next deployment."""
        await w.execute("DELETE FROM env_vars WHERE app_id = ?", (preview_id,))
        left_out = 0
        for var in await w.all("SELECT * FROM env_vars WHERE app_id = ?", (parent_id,)):
            value = var["value"]
            if var["secret"]:
                if not with_secrets:
                    left_out += var["key"] not in settings.env  # an override gives it a value of its own
                    continue
                plain = self._open(value, f"env:{parent_id}:{var['key']}")
                value = self._seal(plain, f"env:{preview_id}:{var['key']}")
            await w.execute(
                "INSERT INTO env_vars (app_id, key, value, secret, build, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (preview_id, var["key"], value, var["secret"], var["build"], ts()),
            )
        for key, value in settings.env.items():
            await w.execute(
                "INSERT INTO env_vars (app_id, key, value, secret, build, updated_at) VALUES (?, ?, ?, 0, 0, ?) "
                "ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value, secret = 0",
                (preview_id, key, value, ts()),
            )
        return left_out

    async def _create_preview(
        self, app: App, settings: PreviewSettings, number: int, head_ref: str | None, *, with_secrets: bool
    ) -> tuple[int, int]:
        """A new preview app for pull request ``number``: its id, and how many of the app's secrets it was
        not given."""
        suffix = f"-pr-{number}"
        name = app.name[: validate.NAME_MAX - len(suffix)].rstrip("-") + suffix
        # The head ref was checked when the delivery was read; checked again because it becomes the spec's.
        branch = validate.git_ref(head_ref, "the pull request's head ref") if head_ref else app.spec.branch
        spec = app.spec.model_copy(update={"branch": branch, "publish": []})
        parent_domains = await domains.list_domains(self.store, app.id)
        host = None
        if parent_domains:
            host = _preview_domain(settings.domain_pattern, number, parent_domains[0].name)
        async with self.store.write() as w:
            project = await w.one("SELECT project_id FROM apps WHERE id = ?", (app.id,))
            assert project is not None
            preview_id = await w.execute(
                "INSERT INTO apps (project_id, name, spec, status, created_at, updated_at, preview_of, pr_number, "
                "pr_head_ref) VALUES (?, ?, ?, 'new', ?, ?, ?, ?, ?)",
                (project["project_id"], name, spec.model_dump_json(), ts(), ts(), app.id, number, head_ref),
            )
            left_out = await self._preview_env(w, app.id, preview_id, settings, with_secrets=with_secrets)
            await audit(
                w,
                None,
                "preview.create",
                project=app.project,
                app=name,
                actor="webhook",
                parent=app.name,
                number=number,
                secrets="shared" if with_secrets else "not shared",
            )
        if host is not None:
            parent_options = parent_domains[0]
            options = domains.DomainOptions(https=parent_options.https)
            await domains.add_domain(self.store, preview_id, host, options)
            try:
                await self.publish_routes()
            except MistError as err:
                log.warning("the proxy refused the routes after adding preview %s: %s", name, err.message)
        self.events.announce("app", "create", project=app.project, app=name)
        return preview_id, left_out

    async def remove_preview(self, app: App, number: int) -> bool:
        row = await self.store.one(
            "SELECT id FROM apps WHERE preview_of = ? AND pr_number = ?", (app.id, number)
        )
        if row is None:
            return False
        preview = await self._app(int(row["id"]))
        self.background(self.orders.remove_preview(preview))
        return True

    async def previews(self, app: App) -> builtins.list[Preview]:
        rows = await self.store.all(
            "SELECT a.id, a.name, a.pr_number, a.pr_head_ref, a.created_at, a.updated_at, d.commit_sha "
            "FROM apps a LEFT JOIN deployments d ON d.id = (SELECT MAX(id) FROM deployments WHERE app_id = a.id) "
            "WHERE a.preview_of = ? ORDER BY a.pr_number",
            (app.id,),
        )
        result = []
        for r in rows:
            hosts = await domains.list_domains(self.store, r["id"])
            result.append(
                Preview(
                    app=f"{app.project}/{r['name']}",
                    parent=app.ref,
                    number=r["pr_number"],
                    head_ref=r["pr_head_ref"],
                    head_sha=r["commit_sha"],
                    url=_url(hosts[0]) if hosts else None,
                    created_at=r["created_at"],
                    updated_at=r["updated_at"],
                )
            )
        return result

    # ------------------------------------------------------------------------------------------ write-back

    async def follow_deployments(self) -> None:
        """Post commit statuses (and preview comments) as deployments of provider-linked apps move."""
        async for event in self.events.subscribe():
            if event.kind != "deployment" or event.state not in STATUS_STATES or not event.deployment_id:
                continue
            try:
                await self._write_back(event.deployment_id, event.state)
            except Exception as err:  # a git host that is down must not stop the loop
                log.warning("could not report deployment %s to the git host: %s", event.deployment_id, err)

    async def _linked(self, app_id: int) -> tuple[Row, Row] | None:
        """The provider and source of an app (a preview's parent's), when it is linked to a provider."""
        row = await self.store.one(
            "SELECT COALESCE(preview_of, id) AS owner FROM apps WHERE id = ?", (app_id,)
        )
        if row is None:
            return None
        source = await self.credentials.source_row(int(row["owner"]))
        if source is None or not source["provider_id"]:
            return None
        provider = await self.store.one("SELECT * FROM git_providers WHERE id = ?", (source["provider_id"],))
        return (provider, source) if provider is not None else None

    async def _write_back(self, deployment_id: int, state: str) -> None:
        dep = await self.store.one(
            "SELECT d.app_id, d.commit_sha, d.ref, d.error, a.pr_number FROM deployments d "
            "JOIN apps a ON a.id = d.app_id WHERE d.id = ?",
            (deployment_id,),
        )
        if dep is None:
            return
        linked = await self._linked(int(dep["app_id"]))
        sha = dep["commit_sha"] or (
            dep["ref"] if validate.is_sha(dep["ref"]) and len(dep["ref"]) == 40 else None
        )
        if linked is None or sha is None:
            return
        provider, source = linked
        hosts = await domains.list_domains(self.store, int(dep["app_id"]))
        description = {
            "pending": f"Mist is deploying ({deployment_id})",
            "success": "Deployed by Mist",
            "failure": (dep["error"] or "the deployment failed")[:130],
            "error": "The deployment was cancelled",
        }[STATUS_STATES[state]]
        await self.credentials.client_for(provider).set_status(
            source["repo"],
            sha,
            STATUS_STATES[state],
            target_url=_url(hosts[0]) if hosts else await self.public_url(),
            description=description,
            context="mist/preview" if dep["pr_number"] else "mist",
        )
        if dep["pr_number"] and state in ("live", "failed"):
            await self._comment(int(dep["app_id"]), "live" if state == "live" else "failed to deploy")

    async def _comment(self, preview_id: int, status: str) -> None:
        """Create or update the pull request's comment that points at the preview."""
        row = await self.store.one(
            "SELECT name, pr_number, pr_comment_id, preview_of FROM apps WHERE id = ?", (preview_id,)
        )
        if row is None or not row["pr_number"]:
            return
        linked = await self._linked(preview_id)
        if linked is None:
            return
        provider, source = linked
        hosts = await domains.list_domains(self.store, preview_id)
        where = (
            _url(hosts[0]) if hosts else f"app {row['name']} (no domain: the app has none to derive one from)"
        )
        body = f"**Mist preview** of #{row['pr_number']}: {where}\n\nStatus: {status}."
        try:
            comment_id = await self.credentials.client_for(provider).comment(
                source["repo"], int(row["pr_number"]), body, comment_id=row["pr_comment_id"]
            )
        except MistError as err:
            log.warning("could not comment on pull request %s: %s", row["pr_number"], err.message)
            return
        async with self.store.write() as w:
            await w.execute("UPDATE apps SET pr_comment_id = ? WHERE id = ?", (comment_id, preview_id))


def _url(domain: Any) -> str:
    return f"{'https' if domain.https else 'http'}://{domain.name}"


def _preview_domain(pattern: str, number: int, app_domain: str) -> str:
    try:
        host = pattern.format(number=number, app_domain=app_domain)
    except (KeyError, IndexError, ValueError):
        raise InvalidInput(
            f"{pattern!r} is not a domain pattern: use {{number}} and {{app_domain}}, e.g. pr-{{number}}.{{app_domain}}",
            field="previews.domain_pattern",
        ) from None
    return domains.validate_domain(host)
