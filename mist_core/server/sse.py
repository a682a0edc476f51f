"""Server-Sent Events for the API's streams: one ``data: <json>`` frame per item, a comment heartbeat while
the source is quiet, and an ``event: error`` frame (a problem+json body) when the source fails mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import StreamingResponse

from ..errors import MistError

log = logging.getLogger("mist.server")

HEARTBEAT_SECONDS = 15.0
MEDIA_TYPE = "text/event-stream"


def encode(item: BaseModel) -> bytes:
    return b"data: " + item.model_dump_json().encode() + b"\n\n"


def encode_error(problem: dict[str, Any]) -> bytes:
    return b"event: error\ndata: " + json.dumps(problem).encode() + b"\n\n"


async def frames(
    request: Request, source: AsyncIterator[BaseModel], *, heartbeat: float = HEARTBEAT_SECONDS
) -> AsyncIterator[bytes]:
    """Turn ``source`` into SSE frames until it ends or the client goes away.

    The next item is awaited in a task so a quiet source still lets heartbeats out (which is also how a
    vanished client is noticed); whichever way the stream ends, the source is closed so it can release
    its Docker or database resources.
    """
    iterator = source.__aiter__()
    pending: asyncio.Future[BaseModel] | None = None
    try:
        # A first comment flushes the headers at once, so a client knows the stream is open even if the
        # source has nothing to say yet.
        yield b": open\n\n"
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=heartbeat)
            if not done:
                if await request.is_disconnected():
                    return
                yield b": keepalive\n\n"
                continue
            finished, pending = pending, None
            try:
                item = finished.result()
            except StopAsyncIteration:
                return
            except MistError as exc:
                yield encode_error(exc.to_problem())
                return
            except Exception:
                log.exception("stream %s failed", request.url.path)
                yield encode_error(
                    {
                        "type": "https://mist.dev/problems/internal",
                        "title": "internal",
                        "status": 500,
                        "code": "internal",
                        "detail": "the stream failed inside the daemon; see the daemon's log",
                    }
                )
                return
            yield encode(item)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # noqa: BLE001 - the response is over either way
                log.warning("closing the stream of %s failed", request.url.path, exc_info=True)


def stream_response(request: Request, source: AsyncIterator[BaseModel]) -> StreamingResponse:
    return StreamingResponse(
        frames(request, source),
        media_type=MEDIA_TYPE,
        # Proxies in front of the daemon must not buffer a live log.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
