"""An app's domains; each change is published to the proxy."""

from __future__ import annotations

import builtins
import logging
from typing import Any

from .. import domains
from ..api import DomainsAPI
from ..calls import Caller, audit
from ..errors import MistError
from ..models import App, Domain, DomainSettings
from .part import Part

log = logging.getLogger("mist.core")


class Domains(Part, DomainsAPI):
    async def list(self, app_ref: str) -> builtins.list[Domain]:
        await self.m.allow_app("domains.list", app_ref)
        app = await self.m.app(app_ref)
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
        actor = await self.m.allow_app("domains.add", app_ref)
        app = await self.m.app(app_ref)
        options = domains.DomainOptions(**(settings or DomainSettings()).model_dump())
        visible = await self.m.visible_projects(actor)
        domain = await domains.add_domain(self.store, app.id, name, options, visible_projects=visible)
        await self._changed(app, "add", domain.name, actor, https=domain.https)
        return domain

    async def update(self, app_ref: str, name: str, settings: DomainSettings) -> Domain:
        actor = await self.m.allow_app("domains.update", app_ref)
        app = await self.m.app(app_ref)
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
        actor = await self.m.allow_app("domains.remove", app_ref)
        app = await self.m.app(app_ref)
        removed = await domains.remove_domain(self.store, app.id, name)
        for host in (removed.name, removed.redirect_from):
            if host:
                await self.core.certs.remove(host)
        await self._changed(app, "remove", removed.name, actor)
