"""Apps: their spec, lifecycle (start, stop, restart), logs and source; deploying and rolling back are handed
to the deployment orders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from .. import containers as live_containers
from .. import validate
from ..api import AppsAPI
from ..calls import Caller, audit, like, page, page_args
from ..errors import Conflict, NotFound
from ..models import App, AppChanges, AppSource, AppSpec, Deployment, LogLine, Page, SourceChanges
from ..store import records as rec
from ..store import ts
from .part import Part, visible_clause


class Apps(Part, AppsAPI):
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
            if await w.one("SELECT 1 FROM databases WHERE project_id = ? AND name = ?", (prow["id"], name)):
                raise Conflict(
                    f"project {project!r} has a database named {name!r}: give the app another name",
                    field="name",
                )
            await w.execute(
                "INSERT INTO apps (project_id, name, spec, status, created_at, updated_at) VALUES (?, ?, ?, 'new', ?, ?)",
                (prow["id"], name, spec.model_dump_json(), ts(), ts()),
            )
            await audit(w, actor, "app.create", project=project, app=name, after=_public_spec(spec))
        self.core.events.announce("app", "create", project=project, app=name)
        return await self.m.app(app_ref)

    async def list(
        self, *, project: str | None = None, query: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[App]:
        caller = await self.m.allow("apps.list")
        limit, offset = page_args(limit, offset)
        visible, params = visible_clause(await self.m.visible_projects(caller))
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
        await self.m.allow_app("apps.get", app_ref)
        return await self.m.app(app_ref)

    async def update(self, app_ref: str, changes: AppChanges) -> App:
        actor = await self.m.allow_app("apps.update", app_ref)
        app = await self.m.app(app_ref)
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
        return await self.m.app(app_ref)

    async def delete(self, app_ref: str) -> None:
        actor = await self.m.allow_app("apps.delete", app_ref)
        await self.core.orders.remove_app(await self.m.app(app_ref), actor)

    async def deploy(self, app_ref: str, *, ref: str | None = None) -> Deployment:
        actor = await self.m.allow_app("apps.deploy", app_ref)
        return await self.core.orders.queue(await self.m.app(app_ref), ref, actor)

    async def rollback(self, app_ref: str, *, to: int | None = None) -> Deployment:
        actor = await self.m.allow_app("apps.rollback", app_ref)
        return await self.core.orders.rollback(await self.m.app(app_ref), to, actor)

    async def _set_status(self, app: App, status: str, action: str, actor: Caller) -> App:
        async with self.store.write() as w:
            await w.execute("UPDATE apps SET status = ?, updated_at = ? WHERE id = ?", (status, ts(), app.id))
            await audit(w, actor, action, project=app.project, app=app.name)
        self.core.events.announce("app", "status", project=app.project, app=app.name, state=status)
        return await self.m.app(app.ref)

    async def source(self, app_ref: str, *, reveal: bool = False) -> AppSource:
        caller = await self.m.allow_app("apps.source", app_ref)
        if reveal:
            await self.m.may_reveal_secrets(caller, app_ref, "source.reveal")
        return await self.core.gitops.source(await self.m.app(app_ref), reveal=reveal)

    async def set_source(self, app_ref: str, changes: SourceChanges) -> AppSource:
        caller = await self.m.allow_app("apps.set_source", app_ref)
        await self.core.gitops.set_source(await self.m.app(app_ref), changes, caller)
        self.core.events.announce("app", "update", project=app_ref.split("/")[0], app=app_ref.split("/")[1])
        return await self.core.gitops.source(await self.m.app(app_ref), reveal=False)

    async def deploy_key(self, app_ref: str, *, regenerate: bool = False) -> AppSource:
        caller = await self.m.allow_app("apps.deploy_key", app_ref)
        await self.core.gitops.deploy_key(await self.m.app(app_ref), caller, regenerate=regenerate)
        return await self.core.gitops.source(await self.m.app(app_ref), reveal=False)

    async def start(self, app_ref: str) -> App:
        actor = await self.m.allow_app("apps.start", app_ref)
        app, name = await self.m.live_container(app_ref)
        await self.core.engine.start(name)
        return await self._set_status(app, "live", "app.start", actor)

    async def stop(self, app_ref: str) -> App:
        actor = await self.m.allow_app("apps.stop", app_ref)
        app, name = await self.m.live_container(app_ref)
        app = await self._set_status(
            app, "stopped", "app.stop", actor
        )  # first, so the 'die' event is expected
        await self.core.engine.stop(name, grace=float(await self.core.setting("stop_grace_period")))
        return app

    async def restart(self, app_ref: str) -> App:
        actor = await self.m.allow_app("apps.restart", app_ref)
        app, name = await self.m.live_container(app_ref)
        grace = float(await self.core.setting("stop_grace_period"))
        status = await live_containers.restart(
            self.core.engine, self.store, self.core.events, app, name, grace
        )
        return await self._set_status(app, status, "app.restart", actor)

    async def logs(
        self, app_ref: str, *, follow: bool = False, tail: int | None = 200, since: datetime | None = None
    ) -> AsyncIterator[LogLine]:
        await self.m.allow_app("apps.logs", app_ref)
        tail = validate.log_tail(tail)
        _, name = await self.m.live_container(app_ref)
        async for line in self.core.engine.logs(name, follow=follow, tail=tail, since=since):
            yield line


def _public_spec(spec: AppSpec) -> dict[str, Any]:
    """The spec as the audit log keeps it: a git URL's credentials masked."""
    data = spec.model_dump(mode="json")
    data["git_url"] = validate.redact_url(spec.git_url)
    return data
