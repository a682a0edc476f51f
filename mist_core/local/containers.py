"""The Mist containers on the engine, limited to the projects the caller sees."""

from __future__ import annotations

from ..api import ContainersAPI
from ..models import ContainerInfo
from .part import Part


class Containers(Part, ContainersAPI):
    async def list(self, *, all: bool = False) -> list[ContainerInfo]:
        caller = await self.m.allow("containers.list")
        containers = await self.core.engine.list_containers(all=all)
        names = await self.m.visible_project_names(caller)
        return containers if names is None else [c for c in containers if c.project in names]
