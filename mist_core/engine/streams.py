"""Blocking Docker streams (logs, events) turned into async iterators that stop cleanly.

A reader thread iterates the blocking stream and hands items to the event loop; the consumer side closes the
stream (shutting its socket down, which wakes the blocked read) as soon as it stops iterating.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")

_END = object()


class ClosableStream(Protocol[T]):  # type: ignore[misc]
    def __iter__(self) -> Iterator[T]: ...

    def close(self) -> None: ...


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def stream_from_thread(
    open_stream: Callable[[], ClosableStream[T]],
    *,
    max_pending: int = 1024,
    thread_name: str = "mist-stream",
) -> AsyncIterator[T]:
    """Iterate ``open_stream()`` in a daemon thread and yield its items here.

    ``open_stream`` runs in the thread too (opening a Docker stream blocks); errors it raises, or that the
    iteration raises, come out of this iterator. At most ``max_pending`` items wait in memory: beyond that
    the reader thread waits for the consumer, so a noisy container cannot fill the daemon's memory.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    space = threading.Semaphore(max_pending)
    stopped = threading.Event()
    lock = threading.Lock()
    opened: list[ClosableStream[T]] = []

    def deliver(item: object) -> None:
        # The loop may already be closed when a stopped reader finishes; nobody is listening then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def close_opened() -> None:
        with lock:
            streams = list(opened)
            opened.clear()
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.close()

    def reader() -> None:
        try:
            stream = open_stream()
            with lock:
                opened.append(stream)
            if stopped.is_set():
                return
            for item in stream:
                space.acquire()
                if stopped.is_set():
                    return
                deliver(item)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, who decides
            if not stopped.is_set():
                deliver(_Failure(error))
        finally:
            close_opened()
            deliver(_END)

    thread = threading.Thread(target=reader, name=thread_name, daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            space.release()
            yield item  # type: ignore[misc]
    finally:
        stopped.set()
        close_opened()
        # Wake a reader blocked on a full buffer so it sees ``stopped`` and ends.
        space.release(max_pending)
