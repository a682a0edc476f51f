"""Mist's SQLite database: one writer connection behind an async lock (every write in ``BEGIN IMMEDIATE``),
one reader connection (WAL lets it read while the writer writes), and numbered SQL migrations tracked with
``PRAGMA user_version``."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .. import clock
from ..errors import InvalidInput

Row = aiosqlite.Row
T = TypeVar("T")
log = logging.getLogger("mist.store")

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def now() -> datetime:
    return clock.now()


def ts(value: datetime | None = None) -> str:
    """A timestamp as stored: ISO 8601 in UTC with microseconds, so text order is time order."""
    return (value or now()).astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def migrations() -> list[tuple[int, str]]:
    """The numbered migrations shipped with Mist, in order."""
    found = []
    for entry in resources.files("mist_core.store").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text()))
    return sorted(found)


async def _run(conn: aiosqlite.Connection, sql: str) -> list[Row]:
    """Execute and close the cursor at once: an open cursor keeps its statement, and its lock, alive."""
    cursor = await conn.execute(sql)
    try:
        return list(await cursor.fetchall())
    finally:
        await cursor.close()


class Store:
    """The database. Open with ``await Store.open(path)``; close with ``await store.close()``."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._write_owner: asyncio.Task[Any] | None = None

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        writer = await cls._connect(path)
        if new:
            os.chmod(path, 0o600)
        await _run(writer, "PRAGMA journal_mode=WAL")
        store_ = cls(path, writer, await cls._connect(path))
        await store_._migrate()
        return store_

    @staticmethod
    async def _connect(path: Path) -> aiosqlite.Connection:
        # isolation_level=None: we issue BEGIN ourselves, so a write transaction is exactly one `write()` block.
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        # cache_size: 1 MB of pages per connection instead of SQLite's 2 MB; the file's pages stay in the
        # system's page cache, so a page this cache drops costs a read() from memory, not from disk.
        for pragma in (
            "PRAGMA busy_timeout=5000",
            "PRAGMA foreign_keys=ON",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA cache_size=-1024",
        ):
            await _run(conn, pragma)
        return conn

    async def _migrate(self) -> None:
        async with self._write_lock:
            version = int((await _run(self._writer, "PRAGMA user_version"))[0][0])
            for number, sql in migrations():
                if number <= version:
                    continue
                # executescript commits; the version bump is inside the same script so a crash leaves either
                # the old schema and version or the new ones.
                await self._writer.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;"
                )

    async def schema_version(self) -> int:
        row = await self.one("PRAGMA user_version")
        assert row is not None
        return int(row[0])

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    # -------------------------------------------------------------------------------------------- reads

    # Each await on aiosqlite is a round trip to its thread; execute_fetchall runs the statement and reads every
    # row in one, where execute + fetch + close would take three. A fully read statement is reset by sqlite3,
    # so it holds no lock afterwards.

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with _in_range():
            return list(await self._reader.execute_fetchall(sql, params))

    async def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row (``COUNT(*)`` and the like), or None."""
        row = await self.one(sql, params)
        return row[0] if row is not None else None

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row, or None. Meant for lookups by key and aggregates, which return one row at most."""
        with _in_range():
            rows = await self._reader.execute_fetchall(sql, params)
        return next(iter(rows), None)

    # -------------------------------------------------------------------------------------------- writes

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Writer]:
        """One write transaction (``BEGIN IMMEDIATE``); committed when the block ends, rolled back on error.

        BEGIN, COMMIT and ROLLBACK run to their end even when the task awaiting them is cancelled: the statement
        goes on in the connection's thread regardless, and a lock released while it does would leave the next
        writer inside someone else's transaction ("cannot start a transaction within a transaction").
        """
        if self._write_owner is not None and self._write_owner is asyncio.current_task():
            raise RuntimeError("Store.write() entered again by the task that holds it; it would wait forever")
        async with self._write_lock:
            self._write_owner = asyncio.current_task()
            try:
                if self._writer.in_transaction:
                    # Only a statement cut off outside these guards could leave this; never commit its work.
                    log.error("the database writer was left inside a transaction; rolling it back")
                    await _settled(_run(self._writer, "ROLLBACK"))
                try:
                    await _settled(_run(self._writer, "BEGIN IMMEDIATE"))
                    yield Writer(self._writer)
                    await _settled(_run(self._writer, "COMMIT"))
                except BaseException:
                    if self._writer.in_transaction:
                        await _settled(_run(self._writer, "ROLLBACK"))
                    raise
            finally:
                self._write_owner = None


async def _settled(statement: Awaitable[T]) -> T:
    """Await ``statement`` to its end even if the awaiting task is cancelled meanwhile, then honour the cancel."""
    future = asyncio.ensure_future(statement)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(future)
            break
        except asyncio.CancelledError:
            if future.cancelled():
                raise
            if future.done():
                # The statement finished (with an error) and we were cancelled too: its error says more.
                future.result()
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


@contextmanager
def _in_range() -> Iterator[None]:
    """A number too large for SQLite's 64-bit integers (an id or offset someone typed) is bad input."""
    try:
        yield
    except OverflowError:
        raise InvalidInput("a number given is too large") from None


class Writer:
    """The connection handed to a ``Store.write()`` block."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns ``lastrowid`` (for INSERT) or the number of rows changed."""
        with _in_range():
            cursor = await self._conn.execute(sql, params)
        try:
            return cursor.lastrowid if sql.lstrip().upper().startswith("INSERT") else cursor.rowcount  # type: ignore[return-value]
        finally:
            await cursor.close()

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self.all(sql, params)
        return rows[0] if rows else None
