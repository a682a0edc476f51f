"""Server and container figures: the latest, a window of history, and a live stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from ..api import MetricsAPI
from ..errors import InvalidInput
from ..models import MetricsSample
from .part import Part


class Metrics(Part, MetricsAPI):
    """Server figures are for every signed-in user; per-container figures only for the apps they see."""

    async def _scope(self, operation: str) -> Callable[[MetricsSample], MetricsSample]:
        names = await self.m.visible_project_names(await self.m.allow(operation))
        if names is None:
            return lambda sample: sample

        def scoped(sample: MetricsSample) -> MetricsSample:
            kept = [c for c in sample.containers if c.project in names]
            return sample.model_copy(update={"containers": kept})

        return scoped

    async def current(self) -> MetricsSample:
        scoped = await self._scope("metrics.current")
        return scoped(self.core.sampler.latest() or await self.core.sampler.sample())

    async def history(self, *, seconds: int = 300) -> list[MetricsSample]:
        scoped = await self._scope("metrics.history")
        if not 1 <= seconds <= 86400:
            raise InvalidInput("seconds must be between 1 and 86400", field="seconds")
        return [scoped(s) for s in self.core.sampler.history(seconds)]

    async def stream(self) -> AsyncIterator[MetricsSample]:
        scoped = await self._scope("metrics.stream")
        async for sample in self.core.sampler.subscribe():
            yield scoped(sample)
