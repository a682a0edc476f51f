"""Docker's streamed answers (container logs, events): read as they arrive, decoded incrementally, and shared.

The decoders turn container logs (8-byte frame headers unless the container has a TTY) into ``LogLine``s and
the events stream (one JSON object per line) into dicts. They are fed whatever pieces the connection
delivers; a frame, a line or a JSON object may be split across pieces anywhere, and a huge line is handed
out in parts rather than held whole (docker-py's own readers keep it whole).

A ``StreamHub`` is one engine stream read by one thread, its decoded items handed to every follower that
joined it: followers of one container's logs (and every reader of the events) share one connection to the
engine, and the thread stops when the last follower leaves. Each follower has a bounded backlog; the reader
waits for the slowest, so a noisy container cannot fill the daemon's memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import json
import logging
import re
import struct
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from ..models import LogLine

_LOG_TIMESTAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d) ")
_FRAME_HEADER = struct.Struct(">BxxxL")
_STREAMS = {1: "stdout", 2: "stderr"}
# A line longer than this is handed out in parts rather than held whole in memory.
MAX_LINE = 1024 * 1024

log = logging.getLogger(__name__)


def parse_log_line(line: bytes) -> tuple[datetime | None, bytes]:
    """Split Docker's ``<RFC 3339 nano timestamp> <text>`` into a UTC datetime and the text."""
    match = _LOG_TIMESTAMP.match(line)
    if not match:
        return None, line
    base, fraction, zone = (g.decode() for g in match.groups(default=b""))
    micros = (fraction + "000000")[:6]
    stamp = datetime.fromisoformat(f"{base}.{micros}{'+00:00' if zone == 'Z' else zone}")
    return stamp.astimezone(UTC), line[match.end() :]


def _log_line(ts: datetime, source: str, stream: str, text: bytes) -> LogLine:
    return LogLine(ts=ts, source=source, stream=stream, text=text.rstrip(b"\r").decode(errors="replace"))  # type: ignore[arg-type]


class LogDecoder:
    """Docker's log stream of one container into ``LogLine``s.

    Without a TTY every frame is ``(stream, length)`` in 8 bytes, then one timestamped message; Docker splits
    a long line into several messages (16 KB each), the first carrying the timestamp the line keeps. With a
    TTY the streams are merged and the bytes come plain, each line starting with its timestamp.
    """

    def __init__(self, source: str, *, tty: bool) -> None:
        self.source = source
        self.tty = tty
        self._buffer = b""
        # Per stream: when the unfinished line started, and its text so far.
        self._pending: dict[str, tuple[datetime, bytes]] = {}

    def feed(self, data: bytes) -> list[LogLine]:
        """The lines completed by ``data``."""
        self._buffer += data
        return self._tty_lines() if self.tty else self._frame_lines()

    def end(self) -> list[LogLine]:
        """What is left when the stream ends: unfinished lines (a truncated frame is dropped)."""
        lines = []
        if self.tty and self._buffer:
            stamp, text = parse_log_line(self._buffer)
            lines.append(_log_line(stamp or datetime.now(UTC), self.source, "stdout", text))
        for stream, (started, rest) in self._pending.items():
            lines.append(_log_line(started, self.source, stream, rest))
        self._buffer = b""
        self._pending.clear()
        return lines

    def _frame_lines(self) -> list[LogLine]:
        lines: list[LogLine] = []
        buffer, offset = self._buffer, 0
        while len(buffer) - offset >= 8:
            kind, length = _FRAME_HEADER.unpack_from(buffer, offset)
            if len(buffer) - offset - 8 < length:
                break
            payload = buffer[offset + 8 : offset + 8 + length]
            offset += 8 + length
            if payload:
                self._message(_STREAMS.get(kind, "stdout"), payload, lines)
        self._buffer = buffer[offset:]
        return lines

    def _message(self, stream: str, payload: bytes, lines: list[LogLine]) -> None:
        stamp, text = parse_log_line(payload)
        started, buffered = self._pending.pop(stream, (stamp or datetime.now(UTC), b""))
        *complete, rest = (buffered + text).split(b"\n")
        for line in complete:
            lines.append(_log_line(started, self.source, stream, line))
        if len(rest) > MAX_LINE:
            lines.append(_log_line(started, self.source, stream, rest))
        elif rest:
            self._pending[stream] = (started, rest)

    def _tty_lines(self) -> list[LogLine]:
        *complete, self._buffer = self._buffer.split(b"\n")
        lines = []
        for line in complete:
            stamp, text = parse_log_line(line)
            lines.append(_log_line(stamp or datetime.now(UTC), self.source, "stdout", text))
        if len(self._buffer) > MAX_LINE:
            stamp, text = parse_log_line(self._buffer)
            lines.append(_log_line(stamp or datetime.now(UTC), self.source, "stdout", text))
            self._buffer = b""
        return lines


class JsonLinesDecoder:
    """Docker's events stream: one JSON object per line, lines split across pieces anywhere."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        *complete, self._buffer = (self._buffer + data).split(b"\n")
        return [self._decode(line) for line in complete if line.strip()]

    def end(self) -> list[dict[str, Any]]:
        rest, self._buffer = self._buffer, b""
        return [self._decode(rest)] if rest.strip() else []

    @staticmethod
    def _decode(line: bytes) -> dict[str, Any]:
        value = json.loads(line)
        if not isinstance(value, dict):
            raise ValueError(f"an event is not a JSON object: {line[:80]!r}")
        return value


# ------------------------------------------------------------------------------------------------ sharing

T = TypeVar("T")
# The largest piece read from the engine at once, and the batches a follower may be behind by.
READ_SIZE = 64 * 1024
FOLLOWER_BACKLOG = 64
# How often a reader waiting for a slow follower looks whether the event loop is still there.
LOOP_CHECK = 1.0


class Decoder(Protocol[T]):
    def feed(self, data: bytes) -> list[T]: ...

    def end(self) -> list[T]: ...


class _End:
    """What a follower receives last: nothing (the engine ended the stream) or the error that ended it."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class StreamHub(Generic[T]):
    """One streamed answer of the engine, read on its own thread and shared by the followers that join it.

    ``open_response`` (blocking, run on the reader thread) sends the request and returns the response whose
    head was read; its errors reach every follower waiting in ``join``. ``translate`` turns an error the
    reader met into what followers raise. ``on_close`` runs once, when the hub stops taking followers.
    """

    def __init__(
        self,
        open_response: Callable[[], Any],
        decoder: Decoder[T],
        *,
        name: str,
        translate: Callable[[BaseException], BaseException] = lambda error: error,
        interrupt: Callable[[Any], None] = lambda response: None,
        on_close: Callable[[StreamHub[T]], None] | None = None,
    ) -> None:
        self._open_response = open_response
        self._decoder = decoder
        self._name = name
        self._translate = translate
        self._interrupt = interrupt
        self._on_close = on_close
        self._followers: list[asyncio.Queue[list[T] | _End]] = []
        self._opened: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._response: Any = None
        self._thread: threading.Thread | None = None
        self.closed = False  # no new followers: the last one left, or the stream ended

    @property
    def followers(self) -> int:
        return len(self._followers)

    @property
    def reader(self) -> threading.Thread | None:
        return self._thread

    async def join(self) -> asyncio.Queue[list[T] | _End]:
        """A new follower's queue, once the engine accepted the request (its errors are raised here)."""
        queue: asyncio.Queue[list[T] | _End] = asyncio.Queue(maxsize=FOLLOWER_BACKLOG)
        self._followers.append(queue)
        if self._opened is None:
            self._loop = asyncio.get_running_loop()
            self._opened = self._loop.create_future()
            # Followers that gave up waiting do not leave the error unread.
            self._opened.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._thread = threading.Thread(target=self._read, name=f"mist-stream-{self._name}", daemon=True)
            self._thread.start()
        try:
            await asyncio.shield(self._opened)
        except BaseException:
            self.leave(queue)
            raise
        return queue

    def leave(self, queue: asyncio.Queue[list[T] | _End]) -> None:
        """A follower is gone; the last one to leave stops the stream."""
        with contextlib.suppress(ValueError):
            self._followers.remove(queue)
        # Whatever the reader waits to put there can go in now.
        while not queue.empty():
            queue.get_nowait()
        if not self._followers:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._on_close is not None:
            self._on_close(self)
        # The reader looks at `closed` before every read: either it sees it, or the response is set by now.
        self._interrupt(self._response)

    @staticmethod
    async def items(queue: asyncio.Queue[list[T] | _End]) -> AsyncIterator[T]:
        """A follower's items until the stream ends; the error that ended it is raised."""
        while True:
            batch = await queue.get()
            if isinstance(batch, _End):
                if batch.error is not None:
                    raise batch.error
                return
            for item in batch:
                yield item

    # ------------------------------------------------------------------------------------------ the reader

    def _read(self) -> None:
        loop = self._loop
        assert loop is not None and self._opened is not None
        opened = self._opened
        try:
            response = self._open_response()
        except BaseException as refused:  # noqa: BLE001 - handed to the followers
            loop.call_soon_threadsafe(_settle, opened, self._translate(refused))
            loop.call_soon_threadsafe(self._end_now)
            return
        self._response = response
        loop.call_soon_threadsafe(_settle, opened, None)
        error: BaseException | None = None
        try:
            while not self.closed:
                piece = response.raw.read1(READ_SIZE)
                if not piece:
                    break
                batch = self._decoder.feed(piece)
                if batch and not self._hand_over(loop, batch):
                    return
            if not self.closed:
                rest = self._decoder.end()
                if rest and not self._hand_over(loop, rest):
                    return
        except BaseException as failure:  # noqa: BLE001 - handed to the followers
            if _cut_at_a_chunk_boundary(failure):
                # The last, empty chunk never came (an ssh engine's dial-stdio may close first): every chunk
                # before it arrived whole, so the stream ended where it would have.
                rest = self._decoder.end()
                if rest and not self._hand_over(loop, rest):
                    return
            else:
                error = None if self.closed else self._translate(failure)
        finally:
            try:
                response.close()
            except Exception:  # noqa: BLE001 - the stream is over either way
                log.debug("closing an engine stream failed", exc_info=True)
        _on_loop(loop, lambda: self._finish(error))

    def _hand_over(self, loop: asyncio.AbstractEventLoop, batch: list[T]) -> bool:
        """Give a batch to every follower, waiting for room; False if the loop is gone."""
        return _on_loop(loop, lambda: self._deliver(batch))

    async def _deliver(self, batch: list[T]) -> None:
        for queue in list(self._followers):
            await queue.put(batch)

    async def _finish(self, error: BaseException | None) -> None:
        self.close()
        for queue in list(self._followers):
            await queue.put(_End(error))

    def _end_now(self) -> None:
        self.close()


def _on_loop(loop: asyncio.AbstractEventLoop, make: Callable[[], Coroutine[Any, Any, None]]) -> bool:
    """Run a coroutine on ``loop`` from the reader thread and wait for it; False when the loop is gone (closed
    while waiting too: nobody is following any more)."""
    if loop.is_closed():
        return False
    coroutine = make()
    try:
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    except RuntimeError:
        coroutine.close()
        return False
    while True:
        try:
            future.result(timeout=LOOP_CHECK)
            return True
        except concurrent.futures.TimeoutError:
            if loop.is_closed():
                future.cancel()
                with contextlib.suppress(RuntimeError):
                    coroutine.close()  # never run: no warning that it was not awaited
                return False
        except (concurrent.futures.CancelledError, RuntimeError):
            return False


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _cut_at_a_chunk_boundary(failure: BaseException) -> bool:
    """Whether ``failure`` (or what caused it) is a chunked answer that ended between two chunks."""
    seen: BaseException | None = failure
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, http.client.IncompleteRead) and not seen.partial:
            return True
        for candidate in seen.args:
            if isinstance(candidate, http.client.IncompleteRead) and not candidate.partial:
                return True
        seen = seen.__cause__ or seen.__context__
    return False
