"""The live stream of what changes (projects, apps, deployments, containers), limited to what the caller sees."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..api import EventsAPI
from ..models import Event
from .part import Part


class Events(Part, EventsAPI):
    async def stream(self) -> AsyncIterator[Event]:
        caller = await self.m.allow("events.stream")
        names = await self.m.visible_project_names(caller)
        async for event in self.core.events.subscribe():
            # Someone who sees only some projects hears only about those (an event of no project included).
            if names is not None and event.project not in names:
                if event.kind != "project" or event.project is None:
                    continue
                # A project created, renamed or joined since the stream began: look again.
                names = await self.m.visible_project_names(caller)
                if names is not None and event.project not in names:
                    continue
            yield event
