"""The git parts of ``LocalMist``: git providers, an app's webhook deliveries, and its previews. What they
ask of providers and repositories is done by the core's ``GitOps`` and ``SourceCredentials``."""

from __future__ import annotations

import builtins
import secrets as random

from .. import validate
from ..api import GitAPI, PreviewsAPI, WebhooksAPI
from ..calls import audit
from ..errors import Conflict, InvalidInput
from ..gitops import DEFAULT_URLS, GitOps, new_hook_id, provider_api_url
from ..models import (
    BranchInfo,
    GitProvider,
    GitProviderSpec,
    ManifestStart,
    Preview,
    RepoInfo,
    WebhookDelivery,
)
from ..sources.credentials import SourceCredentials
from ..store import ts
from .part import Part


class Git(Part, GitAPI):
    @property
    def ops(self) -> GitOps:
        return self.core.gitops

    @property
    def credentials(self) -> SourceCredentials:
        return self.core.credentials

    async def providers(self) -> builtins.list[GitProvider]:
        await self.m.allow("git.providers")
        rows = await self.store.all("SELECT * FROM git_providers ORDER BY name")
        return [await self.ops.provider(r) for r in rows]

    async def add_provider(self, spec: GitProviderSpec) -> GitProvider:
        caller = await self.m.allow("git.add_provider")
        name = validate.name(spec.name, "provider name")
        raw_url = spec.url or DEFAULT_URLS.get(spec.kind)
        if raw_url is None:
            raise InvalidInput(f"a {spec.kind} provider needs its address (--url https://...)", field="url")
        url = validate.http_url(raw_url, "url")
        api_url = (
            validate.http_url(spec.api_url, "api_url") if spec.api_url else provider_api_url(spec.kind, url)
        )
        if spec.kind == "github":
            if not (spec.app_id and spec.private_key and spec.webhook_secret):
                raise InvalidInput(
                    "a GitHub App needs its id, private key and webhook secret (or create one with "
                    "`mist git provider add NAME --github-manifest`)",
                    field="app_id",
                )
        elif not spec.token:
            raise InvalidInput(f"a {spec.kind} provider needs an access token", field="token")
        return await self.ops.store_provider(caller, name, spec, url, api_url)

    async def github_manifest(
        self, name: str, *, url: str = "https://github.com", organization: str | None = None
    ) -> ManifestStart:
        caller = await self.m.allow("git.github_manifest")
        name = validate.name(name, "provider name")
        url = validate.http_url(url, "url")
        if organization is not None:
            organization = validate.name(organization, "organization")
        base = await self.ops.public_url()
        if base is None:
            raise Conflict(
                "GitHub must reach Mist to send webhooks and bring the browser back: set public_url first "
                "(`mist settings set public_url https://mist.example.com`)"
            )
        if await self.store.one("SELECT 1 FROM git_providers WHERE name = ?", (name,)):
            raise Conflict(f"a git provider named {name!r} exists already", field="name")
        state = random.token_urlsafe(24)
        target = f"{url}/organizations/{organization}" if organization else url
        async with self.store.write() as w:
            await w.execute(
                "INSERT INTO github_manifests (state, name, url, hook_id, created_by, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (state, name, target, new_hook_id(), caller.user.id, ts()),
            )
            await audit(w, caller, "git.manifest_start", name=name, url=target)
        return ManifestStart(name=name, url=f"{base}/hooks/github/manifest/{state}", state=state)

    async def remove_provider(self, name: str) -> None:
        caller = await self.m.allow("git.remove_provider")
        row = await self.credentials.provider_row(name)
        async with self.store.write() as w:
            users = await w.all(
                "SELECT p.name || '/' || a.name AS ref FROM app_sources s JOIN apps a ON a.id = s.app_id "
                "JOIN projects p ON p.id = a.project_id WHERE s.provider_id = ? LIMIT 6",
                (row["id"],),
            )
            if users:
                refs = ", ".join(r["ref"] for r in users[:5]) + (", ..." if len(users) > 5 else "")
                raise Conflict(f"apps still use provider {name!r} ({refs}): unlink them first")
            await w.execute("DELETE FROM git_providers WHERE id = ?", (row["id"],))
            await audit(w, caller, "git.provider_remove", name=name)
        await self.credentials.forget_client(int(row["id"]))

    async def repos(self, provider: str) -> builtins.list[RepoInfo]:
        await self.m.allow("git.repos")
        client = self.credentials.client_for(await self.credentials.provider_row(provider))
        return [
            RepoInfo(
                full_name=r.full_name,
                clone_url=r.clone_url,
                ssh_url=r.ssh_url,
                default_branch=r.default_branch or "main",
                private=r.private,
            )
            for r in await client.repos()
        ]

    async def branches(self, provider: str, repo: str) -> builtins.list[BranchInfo]:
        await self.m.allow("git.branches")
        client = self.credentials.client_for(await self.credentials.provider_row(provider))
        return [BranchInfo(name=b.name, sha=b.sha) for b in await client.branches(validate.repo_name(repo))]


class Webhooks(Part, WebhooksAPI):
    async def list(self, app_ref: str, *, limit: int = 50) -> builtins.list[WebhookDelivery]:
        await self.m.allow_app("webhooks.list", app_ref)
        app = await self.m.app(app_ref)
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        rows = await self.store.all(
            "SELECT w.*, p.name AS provider FROM webhook_deliveries w LEFT JOIN git_providers p "
            "ON p.id = w.provider_id WHERE w.app_id = ? ORDER BY w.id DESC LIMIT ?",
            (app.id, limit),
        )
        return [
            WebhookDelivery(
                id=r["id"],
                app=app.ref,
                provider=r["provider"],
                delivery_id=r["delivery_id"],
                event=r["event"],
                received_at=r["received_at"],
                outcome=r["outcome"],
                reason=r["reason"],
                ref=r["ref"],
                sha=r["sha"],
                pr_number=r["pr_number"],
                deployment_id=r["deployment_id"],
            )
            for r in rows
        ]


class Previews(Part, PreviewsAPI):
    async def list(self, app_ref: str) -> builtins.list[Preview]:
        await self.m.allow_app("previews.list", app_ref)
        return await self.core.gitops.previews(await self.m.app(app_ref))
