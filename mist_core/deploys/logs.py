"""Deployment logs: every line is stored, and followers see new lines as they come.

Lines are appended in memory and written to the store in batches (a build can print thousands of lines a
second; one transaction per line would not keep up). A follower first reads what is stored, then the
in-memory lines, then waits for more until the deployment is final.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..models import DeploymentState, LogLine
from ..store import Store, now, parse_ts, ts

FLUSH_INTERVAL = 0.2
QUEUED_POLL = 0.25


@dataclass
class _Live:
    base: int = 0  # the last seq stored before this run (a resumed deployment continues its log)
    lines: list[LogLine] = field(default_factory=list)  # every line of this run
    flushed: int = 0  # how many of `lines` are in the store
    closed: bool = False
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class DeploymentLogs:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._live: dict[int, _Live] = {}
        self._flusher: asyncio.Task[None] | None = None
        # Set when a deployment's log opens or closes: a follower waiting for a queued deployment to start
        # (or a finished one to be stored) looks again at once instead of at its next poll.
        self._changed = asyncio.Event()

    async def open(self, deployment_id: int) -> None:
        """Start collecting lines for a deployment (continuing after what is already stored)."""
        if deployment_id in self._live:
            return
        row = await self._store.one(
            "SELECT COALESCE(MAX(seq), 0) FROM deployment_logs WHERE deployment_id = ?", (deployment_id,)
        )
        self._live[deployment_id] = _Live(base=int(row[0]) if row else 0)
        self._announce()

    def _announce(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def append(self, deployment_id: int, text: str, stream: str = "stdout", source: str = "") -> None:
        live = self._live.get(deployment_id)
        if live is None:  # a line for a deployment that is not running: nothing to attach it to
            return
        seq = live.base + len(live.lines) + 1
        for part in text.splitlines() or [""]:
            live.lines.append(
                LogLine(seq=seq, ts=now(), source=source, stream=stream, text=part)  # type: ignore[arg-type]
            )
            seq += 1
        self._wake(live)
        self._schedule_flush()

    def _wake(self, live: _Live) -> None:
        async def notify() -> None:
            async with live.changed:
                live.changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def _schedule_flush(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_INTERVAL)
        await self.flush()

    async def flush(self) -> None:
        for deployment_id, live in list(self._live.items()):
            pending = live.lines[live.flushed :]
            if not pending:
                continue
            async with self._store.write() as w:
                await w.executemany(
                    "INSERT OR IGNORE INTO deployment_logs (deployment_id, seq, ts, stream, text) VALUES (?, ?, ?, ?, ?)",
                    [(deployment_id, line.seq, ts(line.ts), line.stream, line.text) for line in pending],
                )
            live.flushed += len(pending)

    async def close(self, deployment_id: int) -> None:
        """The deployment is final: store what is left and release its followers."""
        live = self._live.get(deployment_id)
        if live is None:
            return
        await self.flush()
        live.closed = True
        async with live.changed:
            live.changed.notify_all()
        del self._live[deployment_id]
        self._announce()

    async def append_after_end(self, deployment_id: int, text: str, stream: str = "system") -> None:
        """Store a line for a deployment whose log was closed (work that goes on after it went live, such as
        retiring the previous container): readers see it, followers that were released are not held for it."""
        if deployment_id in self._live:
            self.append(deployment_id, text, stream=stream)
            return
        async with self._store.write() as w:
            row = await w.one(
                "SELECT COALESCE(MAX(seq), 0) FROM deployment_logs WHERE deployment_id = ?", (deployment_id,)
            )
            seq = int(row[0]) if row else 0
            await w.executemany(
                "INSERT INTO deployment_logs (deployment_id, seq, ts, stream, text) VALUES (?, ?, ?, ?, ?)",
                [
                    (deployment_id, seq + n, ts(now()), stream, part)
                    for n, part in enumerate(text.splitlines() or [""], start=1)
                ],
            )

    async def shutdown(self) -> None:
        await self.flush()
        if self._flusher is not None:
            self._flusher.cancel()

    async def _is_final(self, deployment_id: int) -> bool:
        row = await self._store.one("SELECT state FROM deployments WHERE id = ?", (deployment_id,))
        return row is None or DeploymentState(row["state"]).is_final

    async def read(self, deployment_id: int, after: int = 0, limit: int = 100_000) -> list[LogLine]:
        rows = await self._store.all(
            "SELECT seq, ts, stream, text FROM deployment_logs WHERE deployment_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (deployment_id, after, limit),
        )
        return [
            LogLine(seq=r["seq"], ts=parse_ts(r["ts"]), stream=r["stream"], text=r["text"])  # type: ignore[arg-type]
            for r in rows
        ]

    async def follow(
        self, deployment_id: int, after: int = 0, *, follow: bool = True
    ) -> AsyncIterator[LogLine]:
        last = after
        for line in await self.read(deployment_id, after):
            last = line.seq
            yield line
        if not follow:
            return
        while True:
            live = self._live.get(deployment_id)
            if live is None:
                # Not running: queued (wait for a worker), or finished (what was added since is stored).
                for line in await self.read(deployment_id, last):
                    last = line.seq
                    yield line
                changed = self._changed
                if await self._is_final(deployment_id):
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=QUEUED_POLL)
                continue
            async with live.changed:
                fresh = [line for line in live.lines if line.seq > last]
                if not fresh and not live.closed:
                    try:
                        await asyncio.wait_for(live.changed.wait(), timeout=1.0)
                    except TimeoutError:
                        pass
                    fresh = [line for line in live.lines if line.seq > last]
            for line in fresh:
                last = line.seq
                yield line
            if live.closed:
                for line in await self.read(deployment_id, last):
                    last = line.seq
                    yield line
                return
