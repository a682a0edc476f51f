"""The audit log, limited to what the caller may read."""

from __future__ import annotations

import builtins
import json
from datetime import datetime
from typing import Any

from ..api import AuditAPI
from ..auth import permissions
from ..calls import Caller, like, page, page_args
from ..models import AuditEntry, Page
from ..store import ts
from .part import Part


class Audit(Part, AuditAPI):
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
