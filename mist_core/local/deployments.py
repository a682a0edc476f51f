"""Deployments: their history, logs, and cancelling one."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..api import DeploymentsAPI
from ..calls import Caller, page, page_args
from ..errors import NotFound
from ..models import Deployment, LogLine, Page
from ..store import records as rec
from .part import Part


class Deployments(Part, DeploymentsAPI):
    async def list(self, app_ref: str, *, limit: int = 50, offset: int = 0) -> Page[Deployment]:
        await self.m.allow_app("deployments.list", app_ref)
        limit, offset = page_args(limit, offset)
        app = await self.m.app(app_ref)
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
        return await self.core.orders.cancel(await self._get(deployment_id), actor)
