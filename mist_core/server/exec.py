"""The exec routes (``POST /v1/projects/{project}/apps/{app}/exec``, ``.../databases/{database}/shell``): one
HTTP request whose body and response both stream, in the frames of ``mist_core.execs``. The caller is
authenticated before anything is read (as on every route); the first frame says what to run; the core checks the permission, starts the command and
writes the audit entry; then the route relays frames both ways until the command ends, and its last frame
carries the exit status. The body is read here, frame by frame with a bound on each, not by the security
middleware (a session has no total size)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..errors import InvalidInput, MistError
from ..execs import (
    CLIENT_KINDS,
    ERROR,
    EXIT,
    INPUT,
    INPUT_END,
    MEDIA_TYPE,
    MISSING_START,
    PING,
    RESIZE,
    START,
    STDERR,
    STDOUT,
    ExecChannel,
    FrameError,
    FrameReader,
    frames,
    json_frame,
    parse_size,
)
from ..operations import Operation

log = logging.getLogger("mist.server")


async def _first_frame(
    receive: Receive, reader: FrameReader
) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    """The START frame's payload, and the frames that came with it."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client went away")
        got = reader.feed(message.get("body", b""))
        if got:
            kind, payload = got[0]
            if kind != START:
                raise InvalidInput(MISSING_START, field="body")
            return kind, payload, got[1:]
        if not message.get("more_body", False):
            raise InvalidInput(MISSING_START, field="body")


def exec_endpoint(operation: Operation) -> Any:
    """The route of a duplex operation: ``containers.exec`` (an app's container) or ``databases.shell`` (a
    database's client); the thing it runs in is named by the path, the start frame holds the other
    arguments."""
    body_model = operation.body_model
    assert body_model is not None
    (reference,) = operation.placed("app")
    second = reference.wire.split("/")[1]

    async def exec_session(request: Request, project: str, **names: str) -> Response:
        mist = request.state.mist  # the caller, authenticated before the request was read
        ref = f"{project}/{request.path_params[second]}"
        reader = FrameReader(CLIENT_KINDS)
        try:
            _, payload, early = await _first_frame(request.receive, reader)
        except FrameError as err:
            raise InvalidInput(f"the request body is not exec frames: {err}", field="body") from None
        try:
            start = body_model.model_validate_json(payload)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "the start frame"
            raise InvalidInput(f"{where}: {first.get('msg')}", field=where) from None
        method = getattr(getattr(mist, operation.part), operation.attribute)
        channel = await method(ref, **start.model_dump())
        return ExecResponse(channel, reader, early)

    exec_session.__name__ = operation.name.replace(".", "_")
    # FastAPI reads the path parameters from the signature: {project} and {app} or {database}.
    plain = inspect.Parameter.POSITIONAL_OR_KEYWORD
    exec_session.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", plain, annotation=Request),
            inspect.Parameter("project", plain, annotation=str),
            inspect.Parameter(second, plain, annotation=str),
        ],
        return_annotation=Response,
    )
    exec_session.__doc__ = operation.doc
    return exec_session


class ExecResponse(Response):
    """The output of an exec session as frames, while the request's frames go to its input."""

    media_type = MEDIA_TYPE

    def __init__(self, channel: ExecChannel, reader: FrameReader, early: list[tuple[bytes, bytes]]) -> None:
        super().__init__(status_code=200, headers={"connection": "close"}, media_type=MEDIA_TYPE)
        # The body streams for as long as the session lasts: no length (Starlette says 0 for no content).
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.channel = channel
        self.reader = reader
        self.early = early

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        feeding = asyncio.create_task(self._feed(receive))
        try:
            last = await self._relay(send, feeding)
        finally:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeding
            await self.channel.close()
        await send({"type": "http.response.body", "body": last, "more_body": False})

    async def _relay(self, send: Send, feeding: asyncio.Task[None]) -> bytes:
        """Output frames until the command ends; the last frame (exit status, or what went wrong)."""
        reading = asyncio.ensure_future(self.channel.read())
        try:
            while True:
                done, _ = await asyncio.wait({reading, feeding}, return_when=asyncio.FIRST_COMPLETED)
                if reading in done:
                    item = reading.result()
                    if item is None:
                        return json_frame(EXIT, {"exit_code": await self.channel.exit_code()})
                    stream, data = item
                    body = b"".join(frames(STDERR if stream == 2 else STDOUT, data))
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    reading = asyncio.ensure_future(self.channel.read())
                    continue
                # The client's side ended first: gone, or it sent something that is no frame.
                error = feeding.exception() if not feeding.cancelled() else None
                if isinstance(error, FrameError | InvalidInput):
                    problem = InvalidInput(f"the exec session was ended: {error}").to_problem()
                    return json_frame(ERROR, problem)
                if error is not None and not isinstance(error, ConnectionError):
                    log.error("exec session input failed", exc_info=error)
                    return json_frame(
                        ERROR, MistError("the exec session failed; see the daemon's log").to_problem()
                    )
                return json_frame(ERROR, MistError("the client went away").to_problem())
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading

    async def _feed(self, receive: Receive) -> None:
        """The client's frames into the command; returns once the client has gone away."""
        for kind, payload in self.early:
            await self._apply(kind, payload)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionError("the client went away")
            for kind, payload in self.reader.feed(message.get("body", b"")):
                await self._apply(kind, payload)
            if not message.get("more_body", False):
                await self.channel.close_input()
                # Nothing more comes from the client; the output goes on until the command ends.
                await asyncio.Event().wait()

    async def _apply(self, kind: bytes, payload: bytes) -> None:
        if kind == INPUT:
            await self.channel.write(payload)
        elif kind == INPUT_END:
            await self.channel.close_input()
        elif kind == RESIZE:
            await self.channel.resize(*parse_size(payload))
        elif kind == PING:
            pass
        else:
            raise FrameError("a session has one start frame, at its beginning")


def exec_openapi(operation: Operation) -> dict[str, Any]:
    """The route's request body in the OpenAPI document: the start frame's fields, under the frames' media
    type."""
    assert operation.body_model is not None
    schema = operation.body_model.model_json_schema()
    schema["description"] = "the first frame (START); see mist_core.execs for the framing"
    return {"requestBody": {"required": True, "content": {MEDIA_TYPE: {"schema": schema}}}}


def add_exec_route(router: APIRouter, operation: Operation) -> None:
    router.add_api_route(
        operation.path,
        exec_endpoint(operation),
        methods=[operation.method],
        operation_id=operation.name,
        name=operation.name,
        tags=[operation.tag],
        summary=operation.name,
        description=operation.doc or None,
        response_class=Response,
        responses={200: {"content": {MEDIA_TYPE: {}}, "description": "the session's output frames"}},
        openapi_extra=exec_openapi(operation),
    )
