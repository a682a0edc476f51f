"""The SQLite store (migrations, transactions) and the deploy queue's claiming rules, on real SQLite files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3

import pytest

from mist_core.deploys.queue import JobQueue
from mist_core.store import Store, migrations, ts


async def test_migrations_apply_in_order_and_record_the_schema_version(tmp_path):
    store = await Store.open(tmp_path / "mist.db")
    try:
        assert await store.schema_version() == migrations()[-1][0]
        tables = {r["name"] for r in await store.all("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {
            "users",
            "sessions",
            "projects",
            "apps",
            "deployments",
            "deployment_logs",
            "env_vars",
            "jobs",
            "audit_log",
            "settings",
            "project_members",
        } <= tables
        assert (await store.one("PRAGMA journal_mode"))[0] == "wal"
        assert (await store.one("PRAGMA foreign_keys"))[0] == 1
    finally:
        await store.close()
    # Opening again applies nothing twice.
    store = await Store.open(tmp_path / "mist.db")
    await store.close()
    assert oct((tmp_path / "mist.db").stat().st_mode & 0o777) == "0o600"


async def test_a_write_block_that_raises_leaves_nothing_behind(tmp_path):
    store = await Store.open(tmp_path / "mist.db")
    try:
        with pytest.raises(RuntimeError):
            async with store.write() as w:
                await w.execute("INSERT INTO settings (key, value, updated_at) VALUES ('a', '1', ?)", (ts(),))
                raise RuntimeError("boom")
        assert await store.one("SELECT * FROM settings") is None
    finally:
        await store.close()


async def _seed(store: Store, apps: int, deployments_per_app: int) -> None:
    async with store.write() as w:
        await w.execute(
            "INSERT INTO projects (id, name, created_at, updated_at) VALUES (1, 'p', ?, ?)", (ts(), ts())
        )
        for a in range(1, apps + 1):
            await w.execute(
                "INSERT INTO apps (id, project_id, name, spec, created_at, updated_at) VALUES (?, 1, ?, '{}', ?, ?)",
                (a, f"a{a}", ts(), ts()),
            )
            for _ in range(deployments_per_app):
                dep = await w.execute(
                    "INSERT INTO deployments (app_id, state, ref, config, created_at) VALUES (?, 'queued', 'main', ?, ?)",
                    (a, json.dumps({}), ts()),
                )
                await JobQueue.enqueue(w, dep, a)


async def test_a_writer_cancelled_at_any_point_leaves_the_next_writer_a_clean_connection(tmp_path):
    store = await Store.open(tmp_path / "mist.db")
    try:

        async def insert(name: str) -> None:
            async with store.write() as w:
                await w.execute(
                    "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)", (name, "1", ts())
                )

        # Cancel writers after every number of loop turns, so some are cut off while BEGIN, the INSERT or
        # COMMIT is still running on the connection's thread.
        for turns in range(12):
            task = asyncio.create_task(insert(f"cut-{turns}"))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await insert(f"after-{turns}")  # would fail "cannot start a transaction within a transaction"
        names = {r["key"] for r in await store.all("SELECT key FROM settings")}
        assert {f"after-{n}" for n in range(12)} <= names
    finally:
        await store.close()


async def test_a_write_entered_again_by_its_own_task_is_refused_not_left_waiting(tmp_path):
    store = await Store.open(tmp_path / "mist.db")
    try:
        async with store.write():
            with pytest.raises(RuntimeError, match="entered again"):
                async with store.write():
                    pass
    finally:
        await store.close()


async def test_the_queue_never_hands_out_two_jobs_of_the_same_app_at_once(tmp_path):
    store = await Store.open(tmp_path / "mist.db")
    try:
        await _seed(store, apps=3, deployments_per_app=2)
        queues = [JobQueue(store, owner=f"w{i}") for i in range(6)]
        claimed = [j for j in await asyncio.gather(*(q.claim() for q in queues)) if j]
        assert sorted(j.app_id for j in claimed) == [1, 2, 3]
        first = claimed[0]
        async with store.write() as w:
            await JobQueue.finish_in(w, first)
        again = await queues[0].claim()
        assert again is not None and again.app_id == first.app_id and again.attempts == 1
    finally:
        await store.close()


async def test_a_job_put_back_with_a_delay_is_not_claimed_before_its_time(tmp_path):
    store = await Store.open(tmp_path / "mist.db")
    try:
        await _seed(store, apps=1, deployments_per_app=1)
        queue = JobQueue(store, owner="w")
        job = await queue.claim()
        assert job is not None
        await queue.retry_later(job, 3600)
        assert await queue.claim() is None
        await queue.retry_later(job, 0)
        retried = await queue.claim()
        assert retried is not None and retried.attempts == 2
    finally:
        await store.close()


async def test_running_jobs_of_a_dead_core_are_orphans_for_the_next_one(tmp_path):
    store = await Store.open(tmp_path / "mist.db")
    try:
        await _seed(store, apps=2, deployments_per_app=1)
        dead = JobQueue(store, owner="dead")
        job = await dead.claim()
        alive = JobQueue(store, owner="alive")
        mine = await alive.claim()
        orphans = await alive.orphaned()
        assert [o.id for o in orphans] == [job.id]
        assert mine is not None and mine.id not in [o.id for o in orphans]
    finally:
        await store.close()


def test_the_database_is_plain_sqlite_readable_by_other_tools(tmp_path):
    async def make() -> None:
        store = await Store.open(tmp_path / "mist.db")
        await store.close()

    asyncio.run(make())
    conn = sqlite3.connect(tmp_path / "mist.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    conn.close()
