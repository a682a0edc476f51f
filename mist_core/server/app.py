"""The daemon's HTTP API: every route under ``/v1`` is made from the operation table (``mist_core.operations``),
turns its bearer token into a ``MistAPI`` bound to that actor (``core.api(token, source=..., user_agent=...)``)
and calls the method the operation names. For every operation that is not public the caller is authenticated
before the request is read (``AuthenticatedRoute``). Authorization, validation and everything else live in the
core; this module only translates HTTP to calls and results (or ``MistError``) back to HTTP. Transport
hardening (headers, body size, rate limits) is in ``security``; the public ``/hooks`` routes (webhook
deliveries, the GitHub App manifest pages) are in ``hooks``."""

from __future__ import annotations

import inspect
import logging
import math
import operator
from collections.abc import Callable, Coroutine, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Optional, Protocol

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..api import MistAPI
from ..auth import permissions
from ..errors import MistError
from ..operations import EMPTY, OPERATIONS, Argument, Operation, model_type
from . import sse
from .exec import add_exec_route
from .hooks import build_hooks_router
from .security import (
    MAX_BODY_BYTES,
    SECURITY_HEADERS,
    Rate,
    RateLimiter,
    SecurityMiddleware,
    source_of,
)

log = logging.getLogger("mist.server")

PROBLEM = "application/problem+json"
# The hooks listener's bound on bodies outside /hooks/ (which bound their own): there is nothing else to post.
HOOKS_OTHER_BODY = 8 * 1024


class CoreLike(Protocol):
    """What the routes need from the core: a ``MistAPI`` bound to whoever the token names, told where the
    call comes from (an address, or ``"unix"``) for the lockout and the audit log."""

    def api(
        self, token: str | None, *, source: str = ..., user_agent: str | None = ..., one_request: bool = ...
    ) -> MistAPI: ...


# ---------------------------------------------------------------------------------------------- responses


class _JSON(Response):
    media_type = "application/json"


_adapters: dict[Any, TypeAdapter[Any]] = {}


def _json(value: Any, status_code: int = 200) -> Response:
    """Serialise once, straight to bytes: returning a ``Response`` keeps FastAPI from validating the model a
    second time against ``response_model`` (which is there for the OpenAPI document)."""
    if isinstance(value, BaseModel):
        body = value.model_dump_json().encode()
    else:
        kind = type(value[0]) if isinstance(value, list) and value else None
        adapter = _adapters.get(kind)
        if adapter is None:
            adapter = _adapters[kind] = TypeAdapter(list[kind] if kind else Any)  # type: ignore[valid-type]
        body = adapter.dump_json(value)
    return _JSON(body, status_code=status_code)


def problem_response(problem: dict[str, Any], status: int) -> JSONResponse:
    return JSONResponse(problem, status_code=status, media_type=PROBLEM)


def _problem(code: str, status: int, detail: str, **more: Any) -> JSONResponse:
    body = {
        "type": f"https://mist.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
        **more,
    }
    return problem_response(body, status)


# ---------------------------------------------------------------------------------------------- errors


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)


def _validation_problem(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if not errors:
        return _problem("invalid_input", 422, "the request is malformed")
    first = errors[0]
    field = _field_of(first.get("loc", ()))
    where = f"'{field}'" if field else "the request body"
    message = first.get("msg", "is not valid")
    if first.get("type") == "json_invalid":
        detail = "the request body is not valid JSON: send a JSON object"
    elif first.get("type") == "missing":
        detail = f"{where} is required"
    elif first.get("type") == "extra_forbidden":
        detail = f"{where} is not a known field: remove it (see /v1/openapi.json for the fields)"
    else:
        detail = f"{where}: {message}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    more: dict[str, Any] = {}
    if field:
        more["field"] = field
    return _problem("invalid_input", 422, detail, **more)


def _install_error_handlers(app: FastAPI, *, where: str = "see /v1/openapi.json") -> None:
    @app.exception_handler(MistError)
    async def mist_error(request: Request, exc: MistError) -> JSONResponse:
        response = problem_response(exc.to_problem(), exc.status)
        retry_after = exc.extra.get("retry_after") if exc.status == 429 else None
        if isinstance(retry_after, int | float):
            # A lockout says when to come back the standard way too, like the rate limit does.
            response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _problem("not_found", 404, f"no route {request.method} {request.url.path}: {where}")
        if exc.status_code == 405:
            return _problem("method_not_allowed", 405, f"{request.url.path} does not accept {request.method}")
        return _problem("http_error", exc.status_code, str(exc.detail))

    @app.exception_handler(OverflowError)
    async def overflow_error(request: Request, exc: OverflowError) -> JSONResponse:
        # A number that fits Python but not SQLite's 64 bits (an id, an offset): bad input, not a failure.
        return _problem("invalid_input", 422, "a number in the request is too large")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the daemon's log only: it can hold paths, SQL and values the caller must not see.
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        response = _problem("internal", 500, "the daemon failed to handle this request; see the daemon's log")
        # This answer leaves through Starlette's outermost layer, around the security middleware.
        for name, value in SECURITY_HEADERS:
            response.headers[name.decode()] = value.decode()
        return response


# ---------------------------------------------------------------------------------------------- routes


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _view(request: Request) -> MistAPI:
    core: CoreLike = request.app.state.core
    return core.api(
        _token(request),
        source=source_of(request.scope),
        user_agent=request.headers.get("user-agent"),
        one_request=True,
    )


async def _mist(request: Request) -> MistAPI:
    # async: a plain function would be run in a worker thread for every request.
    authenticated: MistAPI | None = getattr(request.state, "mist", None)
    return authenticated if authenticated is not None else _view(request)


class AuthenticatedRoute(APIRoute):
    """A route of the API named after its operation (``operation_id="apps.deploy"``), which authenticates the
    caller before FastAPI reads anything else of the request.

    FastAPI parses and validates the body, the query and the path before it runs any dependency, so without
    this an anonymous request would learn the schema's rules (422) before being told to log in (401). Here the
    token is checked first, for every operation that is not ``public`` in the permission table, and the view
    it made (caller resolved once) serves the rest of the request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        operation = self.operation_id
        if operation not in permissions.PERMISSIONS:
            raise ValueError(
                f"the route {self.path} names the operation {operation!r}, which the permission table lacks: "
                "give it operation_id='<part>.<method>' of MistAPI"
            )
        if permissions.rule(operation).on == "public":
            return handle

        async def authenticated_first(request: Request) -> Response:
            mist = _view(request)
            await mist.auth.whoami()  # 401 (or 409 before setup) here, before the request is read
            request.state.mist = mist
            return await handle(request)

        return authenticated_first


# Module level on purpose: FastAPI resolves these (string) annotations in the module's namespace.
Mist = Annotated[MistAPI, Depends(_mist)]

Values = Mapping[str, Any]  # what FastAPI parsed out of a request, by endpoint parameter name
Getter = Callable[[Values], Any]


class Endpoint:
    """The FastAPI endpoint of one operation.

    Its ``__signature__`` lists the path, query and body parameters with their types, so FastAPI validates
    and documents them as for a hand-written function; calling it reads those values back into the
    arguments of the ``MistAPI`` method the operation names, calls it, and turns the result into HTTP."""

    def __init__(self, operation: Operation, table: Mapping[str, Operation]) -> None:
        self.operation = operation
        self.__name__ = operation.name.replace(".", "_")
        self.__doc__ = operation.doc
        self.check = table[operation.check] if operation.check else None
        parameters = [
            inspect.Parameter("request_", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
            inspect.Parameter("mist_", inspect.Parameter.KEYWORD_ONLY, annotation=Mist),
        ]
        self.getters: list[tuple[Argument, Getter]] = []
        for argument in operation.arguments:
            parameters += _parameters_of(operation, argument, {p.name for p in parameters})
            self.getters.append((argument, _getter(operation, argument)))
        # Every argument is given on this path, so the call's shape is fixed once here.
        self.positional = [get for a, get in self.getters if not a.keyword]
        self.keywords = [(a.name, get) for a, get in self.getters if a.keyword]
        names = [p.name for p in parameters]
        if len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
            raise ValueError(f"{operation.name}: its HTTP parameters {names} must be distinct identifiers")
        self.__signature__ = inspect.Signature(parameters)

    async def __call__(self, *, request_: Request, mist_: MistAPI, **values: Any) -> Response:
        operation = self.operation
        method = getattr(getattr(mist_, operation.part), operation.attribute)
        args = [get(values) for get in self.positional]
        kwargs = {name: get(values) for name, get in self.keywords}
        if operation.stream:
            if self.check is not None:
                given = {argument.name: get(values) for argument, get in self.getters}
                await _call(mist_, self.check, given)
            return sse.stream_response(request_, method(*args, **kwargs))
        result = await method(*args, **kwargs)
        if operation.returns is None:
            return Response(status_code=operation.status)
        if operation.returns is str:
            return PlainTextResponse(result, status_code=operation.status)
        return _json(result, operation.status)


def _call(mist: MistAPI, operation: Operation, given: Mapping[str, Any]) -> Any:
    """Call ``operation``'s method with the arguments in ``given`` (the others keep their defaults), passed as
    the interface declares them: positionally, or by keyword for keyword-only ones. For a stream's check,
    which takes some of the stream's arguments."""
    method = getattr(getattr(mist, operation.part), operation.attribute)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for position, a in enumerate(operation.arguments):
        if a.name not in given:
            continue
        if a.keyword or len(args) < position:  # after an argument left out, the rest go by name
            kwargs[a.name] = given[a.name]
        else:
            args.append(given[a.name])
    return method(*args, **kwargs)


def _parameters_of(operation: Operation, argument: Argument, have: set[str]) -> list[inspect.Parameter]:
    """The endpoint parameters that carry ``argument`` (none when one already there carries it: the body)."""
    out: list[inspect.Parameter] = []
    if argument.where in ("app", "project+name"):
        for name in argument.wire.split("/") if argument.where == "app" else ("project",):
            out.append(_parameter(name, _annotated(str, Path())))
    elif argument.where == "path":
        out.append(
            _parameter(argument.wire, _annotated(argument.annotation, Path(description=argument.description)))
        )
    elif argument.where == "query" and argument.codec is not None:
        query = Query(description=argument.codec.description)
        out.append(_parameter(argument.wire, _annotated(argument.codec.wire_type, query), None))
    elif argument.where == "query":
        query = Query(description=argument.description)
        out.append(_parameter(argument.wire, _annotated(argument.annotation, query), argument.default))
    if "body" not in have and argument.where in ("body", "model", "spread", "project+name"):
        model = operation.body_model
        if operation.body_optional:
            out.append(_parameter("body", _annotated(operator.getitem(Optional, model), Body()), None))
        else:
            out.append(_parameter("body", _annotated(model, Body())))
    return [p for p in out if not (p.name == "body" and p.name in have)]


def _parameter(name: str, annotation: Any, default: Any = EMPTY) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _annotated(annotation: Any, *metadata: Any) -> Any:
    """``Annotated[annotation, *metadata]`` for a type known only at run time."""
    return operator.getitem(Annotated, (annotation, *metadata))


def _getter(operation: Operation, argument: Argument) -> Getter:
    """How the argument is read back from the values FastAPI parsed."""
    where, wire, default = argument.where, argument.wire, argument.default
    if where == "app":
        second = wire.split("/")[1]
        return lambda v: f"{v['project']}/{v[second]}"
    if where == "project+name":
        return lambda v: f"{v['project']}/{v['body'].name}"
    if where == "path":
        return lambda v: v[wire]
    if where == "query":
        codec = argument.codec
        if codec is not None:
            return lambda v: codec.decode(v[wire])
        if argument.annotation == str | None:
            # An empty optional filter (``?project=``) is no filter, as the core reads it.
            return lambda v: v[wire] or None
        return lambda v: v[wire]
    if where == "model":
        return lambda v: v["body"]
    if where == "spread":
        base = model_type(argument.annotation)
        assert base is not None
        beside = {name for name, _, _ in operation.body_fields}
        return lambda v: base.model_validate(v["body"].model_dump(exclude=beside, exclude_unset=True))
    if default is EMPTY:
        return lambda v: getattr(v["body"], wire)
    return lambda v: default if v["body"] is None else getattr(v["body"], wire)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", route_class=AuthenticatedRoute)
    for operation in OPERATIONS.values():
        extra: dict[str, Any] = {}
        if operation.duplex:
            add_exec_route(router, operation)
            continue
        if operation.stream:
            item = operation.returns
            extra["response_class"] = Response
            content: dict[str, Any] = {sse.MEDIA_TYPE: {}}
            extra["responses"] = {
                200: {"content": content, "description": f"SSE: one {item.__name__} per event"}
            }
        elif operation.returns is str:
            extra["response_class"] = PlainTextResponse
        elif operation.returns is not None:
            extra["response_model"] = operation.returns
        router.add_api_route(
            operation.path,
            Endpoint(operation, OPERATIONS),
            methods=[operation.method],
            operation_id=operation.name,
            name=operation.name,
            status_code=operation.status,
            tags=[operation.tag],
            summary=operation.name,
            description=operation.doc or None,
            **extra,
        )
    return router


def create_app(core: CoreLike, *, max_body: int = MAX_BODY_BYTES, auth_rate: Rate | None = None) -> FastAPI:
    """The FastAPI application serving ``core``. The caller owns the core (opens and closes it).

    ``max_body`` bounds request bodies (bytes); ``auth_rate`` shapes the per-address limit on the endpoints
    that hand out credentials (default: ``MIST_AUTH_RATE``, else 30 at once and one a second)."""
    app = FastAPI(
        title="Mist",
        summary="A self-hostable Platform-as-a-Service: git repository in, running app out.",
        version=_version(),
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.core = core
    _install_error_handlers(app)
    app.include_router(build_router())
    app.include_router(build_hooks_router())
    # No CORS middleware, on purpose: the API is for the CLI, the TUI and scripts, never for a browser page
    # of another origin, so a preflight gets no Access-Control-Allow-* header and the browser refuses.
    limiter = RateLimiter(auth_rate if auth_rate is not None else Rate.from_env())
    app.add_middleware(SecurityMiddleware, max_body=max_body, limiter=limiter)
    return app


def create_hooks_app(core: Any) -> FastAPI:
    """Only the public ``/hooks`` routes (webhook deliveries, the GitHub App manifest pages), for the plain HTTP
    listener the proxy routes ``<public_url>/hooks/`` to. Everything else, ``/v1`` included, is a 404 there.
    Webhook bodies are bounded by the route itself (``mist_core.webhooks.MAX_BODY``); any other body here is
    refused beyond a few kilobytes."""
    app = FastAPI(title="Mist hooks", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.core = core
    _install_error_handlers(app, where="the hooks listener serves only /hooks/")
    app.include_router(build_hooks_router())
    app.add_middleware(SecurityMiddleware, max_body=HOOKS_OTHER_BODY, limiter=RateLimiter(Rate()))
    return app


def _version() -> str:
    try:
        return version("mist")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"
