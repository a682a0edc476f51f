"""The Mist containers on the engine, limited to the projects the caller sees; describing an app's live
container and running commands in it."""

from __future__ import annotations

import builtins

from .. import containers as live_containers
from ..api import ContainersAPI
from ..calls import audit
from ..errors import NotFound
from ..execs import ExecChannel
from ..models import ContainerDescription, ContainerInfo
from .part import Part


class Containers(Part, ContainersAPI):
    async def list(self, *, all: bool = False) -> list[ContainerInfo]:
        caller = await self.m.allow("containers.list")
        containers = await self.core.engine.list_containers(all=all)
        names = await self.m.visible_project_names(caller)
        return containers if names is None else [c for c in containers if c.project in names]

    async def describe(self, app_ref: str) -> ContainerDescription:
        await self.m.allow_app("containers.describe", app_ref)
        app, name = await self.m.live_container(app_ref)
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
        actor = await self.m.allow_app("containers.exec", app_ref)
        argv = live_containers.exec_command(command)
        size = live_containers.terminal_size(height, width)
        app, name = await self.m.live_container(app_ref)
        channel = await live_containers.open_exec(self.core.engine, app, name, argv, tty=tty, size=size)
        async with self.store.write() as w:
            await audit(w, actor, "container.exec", project=app.project, app=app.name, command=argv, tty=tty)
        return channel
