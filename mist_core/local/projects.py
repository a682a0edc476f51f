"""Projects: create, list, rename and delete them; a project is what members, networks and volumes belong to."""

from __future__ import annotations

import builtins
import json
import uuid
from typing import Any

from .. import validate
from ..api import ProjectsAPI
from ..calls import audit, like, page, page_args
from ..engine import LABEL_PROJECT_UID, project_network
from ..errors import Conflict, EngineUnavailable, NotFound
from ..models import Page, Project, ProjectChanges
from ..proxy.install import PROXY_CONTAINER
from ..store import records as rec
from ..store import ts
from .part import Part, visible_clause

_APPS_OF_PROJECT = "SELECT name FROM apps WHERE project_id = ? ORDER BY name LIMIT 6"
_DATABASES_OF_PROJECT = "SELECT name FROM databases WHERE project_id = ? ORDER BY name LIMIT 6"


class Projects(Part, ProjectsAPI):
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
        visible, params = visible_clause(await self.m.visible_projects(caller))
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
        self._refuse_databases(name, await self.store.all(_DATABASES_OF_PROJECT, (project.id,)))
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
            self._refuse_databases(name, await w.all(_DATABASES_OF_PROJECT, (project.id,)))
            await w.execute("DELETE FROM projects WHERE id = ?", (project.id,))
            await audit(w, actor, "project.delete", project=name, uid=uid, kept_volumes=kept)
        self.core.events.announce("project", "delete", project=name)

    @staticmethod
    def _refuse_databases(name: str, databases: builtins.list[Any]) -> None:
        if databases:
            names = ", ".join(r["name"] for r in databases[:5]) + (", ..." if len(databases) > 5 else "")
            raise Conflict(
                f"project {name!r} still has databases ({names}): delete them first (mist db delete)"
            )

    @staticmethod
    def _refuse_apps(name: str, project: Project, apps: builtins.list[Any]) -> None:
        if apps:
            names = ", ".join(r["name"] for r in apps[:5]) + (", ..." if len(apps) > 5 else "")
            raise Conflict(
                f"project {name!r} still has {max(project.app_count, len(apps))} app(s) ({names}): "
                "delete them first"
            )
