"""The in-process event bus: the core publishes what changed, subscribers (the API's event stream, the TUI)
receive it. A slow subscriber loses its oldest events rather than slowing the publisher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from .models import Event, EventKind


class EventBus:
    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._queue_size = queue_size

    def announce(
        self,
        kind: EventKind,
        action: str,
        *,
        project: str | None = None,
        app: str | None = None,
        deployment_id: int | None = None,
        state: str | None = None,
        restart_count: int | None = None,
    ) -> None:
        """Publish an event that happened now."""
        self.publish(
            Event(
                kind=kind,
                action=action,
                project=project,
                app=app,
                deployment_id=deployment_id,
                state=state,
                restart_count=restart_count,
                ts=datetime.now(UTC),
            )
        )

    def publish(self, event: Event) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
