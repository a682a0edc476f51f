"""The metrics sampler: every few seconds, one reading of the server (psutil) and of every Mist container
(one engine stats sweep), kept as a bounded history and pushed to live subscribers.

A stats sweep costs about half a millisecond of CPU per running container, so with many apps the containers
are read less often than the server: never more CPU than ``CONTAINER_CPU_BUDGET`` of one core on sweeps, and
samples in between carry the last sweep's readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psutil

from .engine import Engine
from .errors import MistError
from .models import ContainerStats, MetricsSample, SystemSample

log = logging.getLogger(__name__)

# Samples a subscriber may fall behind by before the oldest ones are dropped for it.
SUBSCRIBER_BACKLOG = 16
# Share of one core the background container sweeps may use: a sweep that cost 50 ms of CPU (about 100
# containers) is followed by the next one no sooner than 10 s later. A few containers are swept every sample.
CONTAINER_CPU_BUDGET = 0.005


def cpu_busy_percent(before: object, after: object) -> float:
    """Share of the machine's CPU time spent busy between two ``psutil.cpu_times()`` readings, 0..100."""

    def split(times: object) -> tuple[float, float]:
        fields = times._asdict()  # type: ignore[attr-defined]
        # Linux counts guest time inside user time already.
        total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
        idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
        return total, total - idle

    total_before, busy_before = split(before)
    total_after, busy_after = split(after)
    elapsed = total_after - total_before
    if elapsed <= 0:
        return 0.0
    return round(min(max((busy_after - busy_before) / elapsed * 100.0, 0.0), 100.0), 1)


class MetricsSampler:
    """Samples on a background task; the next sample is scheduled once the previous one is done, so slow
    Docker answers never pile up."""

    def __init__(
        self,
        engine: Engine | None,
        *,
        interval: float = 5.0,
        history_seconds: int = 900,
        disk_path: str = "/",
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.engine = engine
        self.interval = interval
        self.disk_path = disk_path
        # The history is kept as (time, system JSON, compressed containers JSON): with 100 containers, 180
        # samples as pydantic objects take about 22 MB, as plain JSON about 3 MB, this way a few hundred KB.
        # Samples between two sweeps share one containers blob. It is read rarely (a metrics screen opening),
        # so decoding then is cheap.
        self._history: deque[tuple[datetime, bytes, bytes]] = deque(
            maxlen=max(1, math.ceil(history_seconds / interval))
        )
        self._containers_blob: tuple[list[ContainerStats], bytes] | None = None
        self._latest: MetricsSample | None = None
        self._subscribers: set[asyncio.Queue[MetricsSample]] = set()
        self._task: asyncio.Task[None] | None = None
        self._engine_down = False
        self._last_containers: list[ContainerStats] = []
        self._next_sweep = 0.0  # time.monotonic() from which the background loop sweeps containers again
        # CPU use is measured between two samples; this sampler keeps its own previous reading so that
        # others calling psutil.cpu_percent() do not shorten its window.
        self._cpu_times = psutil.cpu_times()

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="mist-metrics-sampler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self._publish(await self._tick(sweep=started >= self._next_sweep))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the sampler outlives any one bad reading
                log.exception("metrics sample failed")
            elapsed = time.monotonic() - started
            # Keep the cadence, but always leave the machine some rest between two samples.
            await asyncio.sleep(max(self.interval - elapsed, self.interval / 5))

    def _publish(self, sample: MetricsSample) -> None:
        self._latest = sample
        self._history.append((sample.system.ts, sample.system.model_dump_json().encode(), self._blob(sample)))
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # a slow subscriber loses its oldest sample, never the sampler's time
            queue.put_nowait(sample)

    def _blob(self, sample: MetricsSample) -> bytes:
        # The containers of a sample without a sweep equal the last sweep's: compress those once.
        last = self._containers_blob
        if last is not None and len(last[0]) == len(sample.containers):
            if all(a is b for a, b in zip(last[0], sample.containers, strict=True)):
                return last[1]
        text = b"[" + b",".join(c.model_dump_json().encode() for c in sample.containers) + b"]"
        blob = zlib.compress(text, 6)
        self._containers_blob = (list(sample.containers), blob)
        return blob

    async def sample(self) -> MetricsSample:
        """One reading now. Containers are empty when there is no engine or it does not answer."""
        return await self._tick(sweep=True)

    async def _tick(self, *, sweep: bool) -> MetricsSample:
        system = await asyncio.to_thread(self._system)
        if not sweep:
            return MetricsSample(system=system, containers=list(self._last_containers))
        started, cpu_before = time.monotonic(), time.process_time()
        containers = await self._containers()
        # The process's CPU time over the sweep, the engine's threads included (the readings are made and
        # decoded there); other work that ran meanwhile counts too, which only spaces sweeps out further
        # while the daemon is busy.
        cost = time.process_time() - cpu_before
        self._next_sweep = started + max(self.interval, cost / CONTAINER_CPU_BUDGET)
        self._last_containers = containers
        return MetricsSample(system=system, containers=list(containers))

    def _system(self) -> SystemSample:
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(self.disk_path)
        net = psutil.net_io_counters()
        return SystemSample(
            ts=datetime.now(UTC),
            cpu_percent=self._cpu_since_last(),
            cpu_count=psutil.cpu_count() or 1,
            memory_used=memory.total - memory.available,
            memory_total=memory.total,
            disk_used=disk.used,
            disk_total=disk.total,
            net_rx_bytes=net.bytes_recv if net else 0,
            net_tx_bytes=net.bytes_sent if net else 0,
            load=os.getloadavg(),
        )

    def _cpu_since_last(self) -> float:
        now = psutil.cpu_times()
        before, self._cpu_times = self._cpu_times, now
        return cpu_busy_percent(before, now)

    async def _containers(self) -> list[ContainerStats]:
        if self.engine is None:
            return []
        try:
            containers = await self.engine.stats()
        except (MistError, OSError) as error:
            if not self._engine_down:
                log.warning("no container metrics: %s", error)
            self._engine_down = True
            return []
        except Exception:  # noqa: BLE001 - an engine surprise must not stop the system figures
            log.exception("container metrics failed")
            return []
        if self._engine_down:
            log.info("container metrics are back")
            self._engine_down = False
        return containers

    def history(self, seconds: int) -> list[MetricsSample]:
        """The samples of the last ``seconds``, oldest first."""
        since = datetime.now(UTC) - timedelta(seconds=seconds)
        texts: dict[int, bytes] = {}
        samples = []
        for ts, system, blob in self._history:
            if ts < since:
                continue
            containers = texts.get(id(blob))
            if containers is None:
                containers = texts[id(blob)] = zlib.decompress(blob)
            raw = b'{"system":' + system + b',"containers":' + containers + b"}"
            samples.append(MetricsSample.model_validate_json(raw))
        return samples

    def latest(self) -> MetricsSample | None:
        return self._latest

    async def subscribe(self) -> AsyncIterator[MetricsSample]:
        """Every new sample, until the caller stops iterating."""
        queue: asyncio.Queue[MetricsSample] = asyncio.Queue(maxsize=SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
