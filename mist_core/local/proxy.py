"""The reverse proxy: its status, reloading its routes, installing Traefik."""

from __future__ import annotations

from ..api import ProxyAPI
from ..auth import permissions
from ..calls import Caller, audit
from ..engine import LABEL_PROJECT_UID
from ..errors import Conflict, NotFound
from ..models import ProxyStatus
from ..proxy.install import PROXY_CONTAINER, TRAEFIK_IMAGE, connect_proxy, traefik_spec
from .part import Part


class Proxy(Part, ProxyAPI):
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
