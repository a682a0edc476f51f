"""The deploy queue, a table in SQLite: a worker claims a job with a lease (``UPDATE ... RETURNING``), keeps it
alive with a heartbeat, and either finishes it or puts it back with a delay. At most one job per app runs at
a time; that rule is part of the claim query itself, so two workers can never race past it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ..store import Store, Writer, now, ts

LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Job:
    id: int
    deployment_id: int
    app_id: int
    attempts: int


class JobQueue:
    def __init__(self, store: Store, owner: str) -> None:
        self._store = store
        self.owner = owner

    @staticmethod
    async def enqueue(w: Writer, deployment_id: int, app_id: int) -> None:
        """Add a job inside the caller's transaction (the deployment row is written in the same one)."""
        await w.execute(
            "INSERT INTO jobs (deployment_id, app_id, status, run_after, created_at) VALUES (?, ?, 'queued', ?, ?)",
            (deployment_id, app_id, ts(), ts()),
        )

    async def claim(self) -> Job | None:
        async with self._store.write() as w:
            row = await w.one(
                """
                UPDATE jobs SET status = 'running', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1
                WHERE id = (
                    SELECT j.id FROM jobs j
                    WHERE j.status = 'queued' AND j.run_after <= ?
                      AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.app_id = j.app_id AND r.status = 'running')
                    ORDER BY j.run_after, j.id LIMIT 1
                )
                RETURNING id, deployment_id, app_id, attempts
                """,
                (self.owner, ts(now() + LEASE), ts()),
            )
        if row is None:
            return None
        return Job(row["id"], row["deployment_id"], row["app_id"], row["attempts"])

    async def heartbeat(self, job: Job) -> None:
        async with self._store.write() as w:
            await w.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?",
                (ts(now() + LEASE), job.id, self.owner),
            )

    @staticmethod
    async def finish_in(w: Writer, job: Job) -> None:
        """Drop a finished job inside the caller's transaction (with the deployment's final state)."""
        await w.execute("DELETE FROM jobs WHERE id = ?", (job.id,))

    async def retry_later(self, job: Job, delay: float) -> None:
        async with self._store.write() as w:
            await w.execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, run_after = ? WHERE id = ?",
                (ts(now() + timedelta(seconds=delay)), job.id),
            )

    async def orphaned(self) -> list[Job]:
        """Jobs marked running by a core that is gone. Only called by the core that holds the data dir's
        lock, so every running job it did not claim itself is an orphan, whatever its lease says."""
        rows = await self._store.all(
            "SELECT id, deployment_id, app_id, attempts FROM jobs WHERE status = 'running' AND lease_owner IS NOT ?",
            (self.owner,),
        )
        return [Job(r["id"], r["deployment_id"], r["app_id"], r["attempts"]) for r in rows]

    async def next_run_after(self) -> str | None:
        row = await self._store.one("SELECT MIN(run_after) FROM jobs WHERE status = 'queued'")
        return row[0] if row else None
