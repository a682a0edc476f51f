"""The daemon's HTTP API: every route under ``/v1`` turns its bearer token into a ``MistAPI`` bound to that
actor (``core.api(token, source=..., user_agent=...)``) and calls one method on it. Each route names its
operation of the permission table (``operation_id``); for every operation that is not public the caller is
authenticated before the request is read (``AuthenticatedRoute``). Authorization, validation and everything
else live in the core; this module only translates HTTP to calls and results (or ``MistError``) back to HTTP.
Transport hardening (headers, body size, rate limits) is in ``security``; the public ``/hooks`` routes (webhook
deliveries, the GitHub App manifest pages) are in ``hooks``."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, ClassVar, Protocol

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..api import MistAPI
from ..auth import permissions
from ..errors import InvalidInput, MistError
from ..models import (
    ApiToken,
    ApiTokenCreated,
    App,
    AppChanges,
    AppSource,
    AppSpec,
    AuditEntry,
    BranchInfo,
    Certificate,
    ContainerInfo,
    Deployment,
    Domain,
    DomainSettings,
    EnvVar,
    GitProvider,
    GitProviderSpec,
    Invite,
    InviteCreated,
    KeyRotation,
    ManifestStart,
    Member,
    MetricsSample,
    Page,
    Preview,
    Project,
    ProjectChanges,
    ProjectRole,
    ProxyStatus,
    RecoveryCodes,
    RepoInfo,
    Role,
    Session,
    SessionInfo,
    Setting,
    SetupStatus,
    SourceChanges,
    TokenScope,
    TotpSetup,
    User,
    UserChanges,
    WebhookDelivery,
)
from . import sse
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


# ---------------------------------------------------------------------------------------------- bodies


class Body_(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Fields that hold a password, a code or a token: never shown by a repr (a debug log of a request body).
    _hidden: ClassVar[frozenset[str]] = frozenset(
        {"password", "current", "new", "token", "refresh_token", "totp", "code", "key_pem"}
    )

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, ("<hidden>" if name in self._hidden and value is not None else value)


class Credentials(Body_):
    username: str
    password: str


class Login(Credentials):
    totp: str | None = None


class RefreshRequest(Body_):
    refresh_token: str


class PasswordChange(Body_):
    current: str
    new: str
    revoke_tokens: bool = False  # also revoke every API token of the user


class TotpCode(Body_):
    code: str


class PasswordConfirmation(Body_):
    password: str


class UserCreate(Body_):
    username: str
    password: str
    role: Role = "developer"
    email: str | None = None


class RoleChange(Body_):
    role: Role


class MemberRole(Body_):
    role: ProjectRole


class InviteRequest(Body_):
    username: str | None = None
    email: str | None = None
    role: Role = "developer"
    project: str | None = None
    project_role: ProjectRole | None = None
    expires_hours: int = 72


class InviteAcceptance(Body_):
    token: str
    username: str
    password: str
    email: str | None = None


class TokenRequest(Body_):
    name: str
    scope: TokenScope = "read"
    project: str | None = None
    # ``null`` is a token that never expires; leaving the field out gives the default lifetime.
    expires_days: int | None = 90


class ProjectCreate(Body_):
    name: str
    description: str = ""
    tags: list[str] | None = None


class AppCreate(AppSpec):
    """An app's name and its spec, side by side in one object."""

    name: str


class DeployRequest(Body_):
    ref: str | None = None


class RollbackRequest(Body_):
    to: int | None = None


class DeployKeyRequest(Body_):
    regenerate: bool = False


class EnvSet(Body_):
    key: str
    value: str
    secret: bool = False
    build: bool = False


class EnvImport(Body_):
    text: str
    secret: bool = False
    build: bool = False


class ProviderCreate(GitProviderSpec):
    """A git provider to register (``GitProviderSpec``); its token, key and webhook secret never appear in a repr."""

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            hidden = name in ("token", "private_key", "webhook_secret") and value is not None
            yield name, ("<hidden>" if hidden else value)


class ManifestRequest(Body_):
    name: str
    url: str = "https://github.com"
    organization: str | None = None


class SettingValue(Body_):
    value: str


class DomainCreate(DomainSettings):
    """A domain's name and its settings, side by side in one object."""

    name: str


class CertificateUpload(Body_):
    cert_pem: str
    key_pem: str

    def __repr__(self) -> str:
        # The key must never reach a log line, even through a debug repr of the request body.
        return f"CertificateUpload(cert_pem=<{len(self.cert_pem)} chars>, key_pem=<hidden>)"

    __str__ = __repr__


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


def _no_content() -> Response:
    return Response(status_code=204)


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


def _ref(project: str, app: str) -> str:
    return f"{project}/{app}"


def _tail(value: str | None) -> int | None:
    if value is None or value == "":
        return 200
    if value == "all":
        return None
    try:
        tail = int(value)
    except ValueError:
        raise InvalidInput(f"tail must be a number of lines or 'all', not {value!r}", field="tail") from None
    if tail < 0:
        raise InvalidInput("tail must be 0 or more (or 'all')", field="tail")
    return tail


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
# Ranges are the core's to check, so a bad limit reads the same embedded and remote.
Limit = int
Offset = int


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", route_class=AuthenticatedRoute)

    # ------------------------------------------------------------------------------------------ auth

    @router.get("/setup", operation_id="auth.status", response_model=SetupStatus, tags=["auth"])
    async def setup_status(m: Mist) -> Response:
        return _json(await m.auth.status())

    @router.post("/setup", operation_id="auth.setup", response_model=Session, status_code=201, tags=["auth"])
    async def setup(m: Mist, body: Credentials) -> Response:
        return _json(await m.auth.setup(body.username, body.password), 201)

    @router.post("/login", operation_id="auth.login", response_model=Session, tags=["auth"])
    async def login(m: Mist, body: Login) -> Response:
        return _json(await m.auth.login(body.username, body.password, totp=body.totp))

    @router.post("/refresh", operation_id="auth.refresh", response_model=Session, tags=["auth"])
    async def refresh(m: Mist, body: RefreshRequest) -> Response:
        return _json(await m.auth.refresh(body.refresh_token))

    @router.post("/logout", operation_id="auth.logout", status_code=204, tags=["auth"])
    async def logout(m: Mist) -> Response:
        await m.auth.logout()
        return _no_content()

    @router.get("/me", operation_id="auth.whoami", response_model=User, tags=["auth"])
    async def whoami(m: Mist) -> Response:
        return _json(await m.auth.whoami())

    @router.post("/me/password", operation_id="auth.change_password", status_code=204, tags=["auth"])
    async def change_password(m: Mist, body: PasswordChange) -> Response:
        await m.auth.change_password(body.current, body.new, revoke_tokens=body.revoke_tokens)
        return _no_content()

    @router.post("/me/totp", operation_id="auth.totp_setup", response_model=TotpSetup, tags=["auth"])
    async def totp_setup(m: Mist) -> Response:
        return _json(await m.auth.totp_setup())

    @router.post(
        "/me/totp/enable", operation_id="auth.totp_enable", response_model=RecoveryCodes, tags=["auth"]
    )
    async def totp_enable(m: Mist, body: TotpCode) -> Response:
        return _json(await m.auth.totp_enable(body.code))

    @router.post("/me/totp/disable", operation_id="auth.totp_disable", status_code=204, tags=["auth"])
    async def totp_disable(m: Mist, body: PasswordConfirmation) -> Response:
        await m.auth.totp_disable(body.password)
        return _no_content()

    # ------------------------------------------------------------------------------------------ projects

    @router.get("/projects", operation_id="projects.list", response_model=Page[Project], tags=["projects"])
    async def list_projects(
        m: Mist, q: str | None = None, limit: Limit = 100, offset: Offset = 0
    ) -> Response:
        return _json(await m.projects.list(query=q, limit=limit, offset=offset))

    @router.post(
        "/projects",
        operation_id="projects.create",
        response_model=Project,
        status_code=201,
        tags=["projects"],
    )
    async def create_project(m: Mist, body: ProjectCreate) -> Response:
        return _json(await m.projects.create(body.name, body.description, body.tags), 201)

    @router.get("/projects/{name}", operation_id="projects.get", response_model=Project, tags=["projects"])
    async def get_project(m: Mist, name: str) -> Response:
        return _json(await m.projects.get(name))

    @router.patch(
        "/projects/{name}", operation_id="projects.update", response_model=Project, tags=["projects"]
    )
    async def update_project(m: Mist, name: str, body: ProjectChanges) -> Response:
        return _json(await m.projects.update(name, body))

    @router.delete("/projects/{name}", operation_id="projects.delete", status_code=204, tags=["projects"])
    async def delete_project(m: Mist, name: str) -> Response:
        await m.projects.delete(name)
        return _no_content()

    # ------------------------------------------------------------------------------------------ apps

    @router.get("/apps", operation_id="apps.list", response_model=Page[App], tags=["apps"])
    async def list_apps(
        m: Mist,
        project: str | None = None,
        q: str | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        return _json(await m.apps.list(project=project, query=q, limit=limit, offset=offset))

    @router.post(
        "/projects/{project}/apps",
        operation_id="apps.create",
        response_model=App,
        status_code=201,
        tags=["apps"],
    )
    async def create_app_(m: Mist, project: str, body: AppCreate) -> Response:
        spec = AppSpec.model_validate(body.model_dump(exclude={"name"}))
        return _json(await m.apps.create(_ref(project, body.name), spec), 201)

    @router.get("/projects/{project}/apps/{app}", operation_id="apps.get", response_model=App, tags=["apps"])
    async def get_app(m: Mist, project: str, app: str) -> Response:
        return _json(await m.apps.get(_ref(project, app)))

    @router.patch(
        "/projects/{project}/apps/{app}", operation_id="apps.update", response_model=App, tags=["apps"]
    )
    async def update_app(m: Mist, project: str, app: str, body: AppChanges) -> Response:
        return _json(await m.apps.update(_ref(project, app), body))

    @router.delete(
        "/projects/{project}/apps/{app}", operation_id="apps.delete", status_code=204, tags=["apps"]
    )
    async def delete_app(m: Mist, project: str, app: str) -> Response:
        await m.apps.delete(_ref(project, app))
        return _no_content()

    @router.post(
        "/projects/{project}/apps/{app}/deploy",
        operation_id="apps.deploy",
        response_model=Deployment,
        status_code=202,
        tags=["apps"],
    )
    async def deploy(
        m: Mist, project: str, app: str, body: Annotated[DeployRequest | None, Body()] = None
    ) -> Response:
        ref = body.ref if body is not None else None
        return _json(await m.apps.deploy(_ref(project, app), ref=ref), 202)

    @router.post(
        "/projects/{project}/apps/{app}/rollback",
        operation_id="apps.rollback",
        response_model=Deployment,
        status_code=202,
        tags=["apps"],
    )
    async def rollback(
        m: Mist, project: str, app: str, body: Annotated[RollbackRequest | None, Body()] = None
    ) -> Response:
        to = body.to if body is not None else None
        return _json(await m.apps.rollback(_ref(project, app), to=to), 202)

    @router.get(
        "/projects/{project}/apps/{app}/source",
        operation_id="apps.source",
        response_model=AppSource,
        tags=["apps"],
    )
    async def app_source(m: Mist, project: str, app: str, reveal: bool = False) -> Response:
        return _json(await m.apps.source(_ref(project, app), reveal=reveal))

    @router.patch(
        "/projects/{project}/apps/{app}/source",
        operation_id="apps.set_source",
        response_model=AppSource,
        tags=["apps"],
    )
    async def set_app_source(m: Mist, project: str, app: str, body: SourceChanges) -> Response:
        return _json(await m.apps.set_source(_ref(project, app), body))

    @router.post(
        "/projects/{project}/apps/{app}/source/deploy-key",
        operation_id="apps.deploy_key",
        response_model=AppSource,
        tags=["apps"],
    )
    async def app_deploy_key(
        m: Mist, project: str, app: str, body: Annotated[DeployKeyRequest | None, Body()] = None
    ) -> Response:
        regenerate = body.regenerate if body is not None else False
        return _json(await m.apps.deploy_key(_ref(project, app), regenerate=regenerate))

    @router.post(
        "/projects/{project}/apps/{app}/start", operation_id="apps.start", response_model=App, tags=["apps"]
    )
    async def start(m: Mist, project: str, app: str) -> Response:
        return _json(await m.apps.start(_ref(project, app)))

    @router.post(
        "/projects/{project}/apps/{app}/stop", operation_id="apps.stop", response_model=App, tags=["apps"]
    )
    async def stop(m: Mist, project: str, app: str) -> Response:
        return _json(await m.apps.stop(_ref(project, app)))

    @router.post(
        "/projects/{project}/apps/{app}/restart",
        operation_id="apps.restart",
        response_model=App,
        tags=["apps"],
    )
    async def restart(m: Mist, project: str, app: str) -> Response:
        return _json(await m.apps.restart(_ref(project, app)))

    @router.get(
        "/projects/{project}/apps/{app}/logs",
        operation_id="apps.logs",
        tags=["apps"],
        response_class=Response,
        responses={200: {"content": {sse.MEDIA_TYPE: {}}, "description": "SSE: one LogLine per event"}},
    )
    async def app_logs(
        request: Request,
        m: Mist,
        project: str,
        app: str,
        follow: bool = False,
        tail: Annotated[str | None, Query(description="a number of lines, or 'all'")] = None,
        since: datetime | None = None,
    ) -> Response:
        app_ref = _ref(project, app)
        lines = _tail(tail)
        # Looked up first so an unknown app is a plain 404 instead of an error inside a 200 stream.
        await m.apps.get(app_ref)
        return sse.stream_response(request, m.apps.logs(app_ref, follow=follow, tail=lines, since=since))

    @router.get(
        "/projects/{project}/apps/{app}/webhooks",
        operation_id="webhooks.list",
        response_model=list[WebhookDelivery],
        tags=["git"],
    )
    async def list_webhooks(m: Mist, project: str, app: str, limit: Limit = 50) -> Response:
        return _json(await m.webhooks.list(_ref(project, app), limit=limit))

    @router.get(
        "/projects/{project}/apps/{app}/previews",
        operation_id="previews.list",
        response_model=list[Preview],
        tags=["git"],
    )
    async def list_previews(m: Mist, project: str, app: str) -> Response:
        return _json(await m.previews.list(_ref(project, app)))

    # ------------------------------------------------------------------------------------------ env

    @router.get(
        "/projects/{project}/apps/{app}/env",
        operation_id="env.list",
        response_model=list[EnvVar],
        tags=["env"],
    )
    async def list_env(m: Mist, project: str, app: str, reveal: bool = False) -> Response:
        return _json(await m.env.list(_ref(project, app), reveal=reveal))

    @router.post(
        "/projects/{project}/apps/{app}/env", operation_id="env.set", response_model=EnvVar, tags=["env"]
    )
    async def set_env(m: Mist, project: str, app: str, body: EnvSet) -> Response:
        var = await m.env.set(_ref(project, app), body.key, body.value, secret=body.secret, build=body.build)
        return _json(var)

    @router.delete(
        "/projects/{project}/apps/{app}/env/{key}", operation_id="env.unset", status_code=204, tags=["env"]
    )
    async def unset_env(m: Mist, project: str, app: str, key: str) -> Response:
        await m.env.unset(_ref(project, app), key)
        return _no_content()

    @router.post(
        "/projects/{project}/apps/{app}/env/import",
        operation_id="env.import_dotenv",
        response_model=list[EnvVar],
        tags=["env"],
    )
    async def import_env(m: Mist, project: str, app: str, body: EnvImport) -> Response:
        return _json(
            await m.env.import_dotenv(_ref(project, app), body.text, secret=body.secret, build=body.build)
        )

    @router.get(
        "/projects/{project}/apps/{app}/env/export",
        operation_id="env.export_dotenv",
        response_class=PlainTextResponse,
        tags=["env"],
    )
    async def export_env(m: Mist, project: str, app: str, reveal: bool = False) -> Response:
        return PlainTextResponse(await m.env.export_dotenv(_ref(project, app), reveal=reveal))

    # ------------------------------------------------------------------------------------------ deployments

    @router.get(
        "/projects/{project}/apps/{app}/deployments",
        operation_id="deployments.list",
        response_model=Page[Deployment],
        tags=["deployments"],
    )
    async def list_deployments(
        m: Mist, project: str, app: str, limit: Limit = 50, offset: Offset = 0
    ) -> Response:
        return _json(await m.deployments.list(_ref(project, app), limit=limit, offset=offset))

    @router.get(
        "/deployments/{deployment_id}",
        operation_id="deployments.get",
        response_model=Deployment,
        tags=["deployments"],
    )
    async def get_deployment(m: Mist, deployment_id: int) -> Response:
        return _json(await m.deployments.get(deployment_id))

    @router.get(
        "/deployments/{deployment_id}/log",
        operation_id="deployments.log",
        tags=["deployments"],
        response_class=Response,
        responses={200: {"content": {sse.MEDIA_TYPE: {}}, "description": "SSE: one LogLine per event"}},
    )
    async def deployment_log(
        request: Request,
        m: Mist,
        deployment_id: int,
        follow: bool = False,
        after: int = 0,
    ) -> Response:
        await m.deployments.get(deployment_id)
        return sse.stream_response(request, m.deployments.log(deployment_id, follow=follow, after=after))

    @router.post(
        "/deployments/{deployment_id}/cancel",
        operation_id="deployments.cancel",
        response_model=Deployment,
        tags=["deployments"],
    )
    async def cancel_deployment(m: Mist, deployment_id: int) -> Response:
        return _json(await m.deployments.cancel(deployment_id))

    # ------------------------------------------------------------------------------------------ runtime

    @router.get(
        "/containers", operation_id="containers.list", response_model=list[ContainerInfo], tags=["runtime"]
    )
    async def list_containers(m: Mist, all: bool = False) -> Response:
        return _json(await m.containers.list(all=all))

    @router.get("/metrics", operation_id="metrics.current", response_model=MetricsSample, tags=["runtime"])
    async def metrics_current(m: Mist) -> Response:
        return _json(await m.metrics.current())

    @router.get(
        "/metrics/history",
        operation_id="metrics.history",
        response_model=list[MetricsSample],
        tags=["runtime"],
    )
    async def metrics_history(m: Mist, seconds: int = 300) -> Response:
        return _json(await m.metrics.history(seconds=seconds))

    @router.get(
        "/metrics/stream",
        operation_id="metrics.stream",
        tags=["runtime"],
        response_class=Response,
        responses={200: {"content": {sse.MEDIA_TYPE: {}}, "description": "SSE: one MetricsSample per tick"}},
    )
    async def metrics_stream(request: Request, m: Mist) -> Response:
        # Checked up front: a stream that only fails once iterated would answer 200 to a bad token.
        await m.auth.whoami()
        return sse.stream_response(request, m.metrics.stream())

    @router.get(
        "/events",
        operation_id="events.stream",
        tags=["runtime"],
        response_class=Response,
        responses={200: {"content": {sse.MEDIA_TYPE: {}}, "description": "SSE: one Event per change"}},
    )
    async def events(request: Request, m: Mist) -> Response:
        await m.auth.whoami()
        return sse.stream_response(request, m.events.stream())

    # ------------------------------------------------------------------------------------------ admin

    @router.get("/users", operation_id="users.list", response_model=list[User], tags=["users"])
    async def list_users(m: Mist) -> Response:
        return _json(await m.users.list())

    @router.post("/users", operation_id="users.create", response_model=User, status_code=201, tags=["users"])
    async def create_user(m: Mist, body: UserCreate) -> Response:
        user = await m.users.create(body.username, body.password, role=body.role, email=body.email)
        return _json(user, 201)

    @router.get("/users/{username}", operation_id="users.get", response_model=User, tags=["users"])
    async def get_user(m: Mist, username: str) -> Response:
        return _json(await m.users.get(username))

    @router.patch("/users/{username}", operation_id="users.update", response_model=User, tags=["users"])
    async def update_user(m: Mist, username: str, body: UserChanges) -> Response:
        return _json(await m.users.update(username, body))

    @router.put("/users/{username}/role", operation_id="users.set_role", response_model=User, tags=["users"])
    async def set_user_role(m: Mist, username: str, body: RoleChange) -> Response:
        return _json(await m.users.set_role(username, body.role))

    @router.delete("/users/{username}", operation_id="users.delete", status_code=204, tags=["users"])
    async def delete_user(m: Mist, username: str, reassign_to: str | None = None) -> Response:
        await m.users.delete(username, reassign_to=reassign_to or None)
        return _no_content()

    # ------------------------------------------------------------------------------------------ members

    @router.get(
        "/projects/{project}/members",
        operation_id="members.list",
        response_model=list[Member],
        tags=["members"],
    )
    async def list_members(m: Mist, project: str) -> Response:
        return _json(await m.members.list(project))

    @router.put(
        "/projects/{project}/members/{username}",
        operation_id="members.add",
        response_model=Member,
        tags=["members"],
    )
    async def add_member(m: Mist, project: str, username: str, body: MemberRole) -> Response:
        return _json(await m.members.add(project, username, body.role))

    @router.delete(
        "/projects/{project}/members/{username}",
        operation_id="members.remove",
        status_code=204,
        tags=["members"],
    )
    async def remove_member(m: Mist, project: str, username: str) -> Response:
        await m.members.remove(project, username)
        return _no_content()

    # ------------------------------------------------------------------------------------------ invites

    @router.post(
        "/invites",
        operation_id="invites.create",
        response_model=InviteCreated,
        status_code=201,
        tags=["invites"],
    )
    async def create_invite(m: Mist, body: InviteRequest) -> Response:
        created = await m.invites.create(
            username=body.username,
            email=body.email,
            role=body.role,
            project=body.project,
            project_role=body.project_role,
            expires_hours=body.expires_hours,
        )
        return _json(created, 201)

    @router.get("/invites", operation_id="invites.list", response_model=list[Invite], tags=["invites"])
    async def list_invites(m: Mist) -> Response:
        return _json(await m.invites.list())

    @router.post(
        "/invites/accept",
        operation_id="invites.accept",
        response_model=Session,
        status_code=201,
        tags=["invites"],
    )
    async def accept_invite(m: Mist, body: InviteAcceptance) -> Response:
        session = await m.invites.accept(body.token, body.username, body.password, email=body.email)
        return _json(session, 201)

    @router.delete("/invites/{invite_id}", operation_id="invites.revoke", status_code=204, tags=["invites"])
    async def revoke_invite(m: Mist, invite_id: int) -> Response:
        await m.invites.revoke(invite_id)
        return _no_content()

    # ------------------------------------------------------------------------------------------ sessions

    @router.get(
        "/sessions", operation_id="sessions.list", response_model=list[SessionInfo], tags=["sessions"]
    )
    async def list_sessions(
        m: Mist,
        username: Annotated[str | None, Query(description="another user's (admins), or '*' for all")] = None,
    ) -> Response:
        return _json(await m.sessions.list(username=username or None))

    @router.delete(
        "/sessions/{session_id}", operation_id="sessions.revoke", status_code=204, tags=["sessions"]
    )
    async def revoke_session(m: Mist, session_id: int) -> Response:
        await m.sessions.revoke(session_id)
        return _no_content()

    # ------------------------------------------------------------------------------------------ tokens

    @router.post(
        "/tokens",
        operation_id="tokens.create",
        response_model=ApiTokenCreated,
        status_code=201,
        tags=["tokens"],
    )
    async def create_token(m: Mist, body: TokenRequest) -> Response:
        created = await m.tokens.create(
            body.name, scope=body.scope, project=body.project, expires_days=body.expires_days
        )
        return _json(created, 201)

    @router.get("/tokens", operation_id="tokens.list", response_model=list[ApiToken], tags=["tokens"])
    async def list_tokens(m: Mist, all: bool = False) -> Response:
        return _json(await m.tokens.list(all=all))

    @router.delete("/tokens/{token_id}", operation_id="tokens.revoke", status_code=204, tags=["tokens"])
    async def revoke_token(m: Mist, token_id: int) -> Response:
        await m.tokens.revoke(token_id)
        return _no_content()

    # ------------------------------------------------------------------------------------------ secrets

    @router.post(
        "/secrets/rotate-key", operation_id="secrets.rotate_key", response_model=KeyRotation, tags=["admin"]
    )
    async def rotate_key(m: Mist) -> Response:
        return _json(await m.secrets.rotate_key())

    # ------------------------------------------------------------------------------------------ audit

    @router.get("/audit", operation_id="audit.list", response_model=Page[AuditEntry], tags=["admin"])
    async def list_audit(
        m: Mist,
        actor: str | None = None,
        project: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        page = await m.audit.list(
            actor=actor,
            project=project,
            action=action,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        return _json(page)

    @router.get("/settings", operation_id="settings.list", response_model=list[Setting], tags=["admin"])
    async def list_settings(m: Mist) -> Response:
        return _json(await m.settings.list())

    @router.get("/settings/{key}", operation_id="settings.get", response_model=Setting, tags=["admin"])
    async def get_setting(m: Mist, key: str) -> Response:
        return _json(await m.settings.get(key))

    @router.put("/settings/{key}", operation_id="settings.set", response_model=Setting, tags=["admin"])
    async def set_setting(m: Mist, key: str, body: SettingValue) -> Response:
        return _json(await m.settings.set(key, body.value))

    # ------------------------------------------------------------------------------------------ domains

    @router.get(
        "/projects/{project}/apps/{app}/domains",
        operation_id="domains.list",
        response_model=list[Domain],
        tags=["domains"],
    )
    async def list_domains(m: Mist, project: str, app: str) -> Response:
        return _json(await m.domains.list(_ref(project, app)))

    @router.post(
        "/projects/{project}/apps/{app}/domains",
        operation_id="domains.add",
        response_model=Domain,
        status_code=201,
        tags=["domains"],
    )
    async def add_domain(m: Mist, project: str, app: str, body: DomainCreate) -> Response:
        settings = DomainSettings.model_validate(body.model_dump(exclude={"name"}))
        return _json(await m.domains.add(_ref(project, app), body.name, settings), 201)

    @router.put(
        "/projects/{project}/apps/{app}/domains/{name}",
        operation_id="domains.update",
        response_model=Domain,
        tags=["domains"],
    )
    async def update_domain(m: Mist, project: str, app: str, name: str, body: DomainSettings) -> Response:
        return _json(await m.domains.update(_ref(project, app), name, body))

    @router.delete(
        "/projects/{project}/apps/{app}/domains/{name}",
        operation_id="domains.remove",
        status_code=204,
        tags=["domains"],
    )
    async def remove_domain(m: Mist, project: str, app: str, name: str) -> Response:
        await m.domains.remove(_ref(project, app), name)
        return _no_content()

    # ------------------------------------------------------------------------------------------ certificates

    @router.get(
        "/certificates",
        operation_id="certificates.list",
        response_model=list[Certificate],
        tags=["certificates"],
    )
    async def list_certificates(
        m: Mist, app: Annotated[str | None, Query(description="only this app's domains: project/app")] = None
    ) -> Response:
        return _json(await m.certificates.list(app or None))

    @router.post(
        "/certificates/{domain}/renew",
        operation_id="certificates.renew",
        response_model=Certificate,
        tags=["certificates"],
    )
    async def renew_certificate(m: Mist, domain: str) -> Response:
        return _json(await m.certificates.renew(domain))

    @router.put(
        "/certificates/{domain}",
        operation_id="certificates.upload",
        response_model=Certificate,
        tags=["certificates"],
    )
    async def upload_certificate(m: Mist, domain: str, body: CertificateUpload) -> Response:
        return _json(await m.certificates.upload(domain, body.cert_pem, body.key_pem))

    # ------------------------------------------------------------------------------------------ proxy

    @router.get("/proxy", operation_id="proxy.status", response_model=ProxyStatus, tags=["proxy"])
    async def proxy_status(m: Mist) -> Response:
        return _json(await m.proxy.status())

    @router.post("/proxy/reload", operation_id="proxy.reload", response_model=ProxyStatus, tags=["proxy"])
    async def proxy_reload(m: Mist) -> Response:
        return _json(await m.proxy.reload())

    @router.post("/proxy/install", operation_id="proxy.install", response_model=ProxyStatus, tags=["proxy"])
    async def proxy_install(m: Mist) -> Response:
        return _json(await m.proxy.install())

    # ------------------------------------------------------------------------------------------ git

    @router.get(
        "/git/providers", operation_id="git.providers", response_model=list[GitProvider], tags=["git"]
    )
    async def list_git_providers(m: Mist) -> Response:
        return _json(await m.git.providers())

    @router.post(
        "/git/providers",
        operation_id="git.add_provider",
        response_model=GitProvider,
        status_code=201,
        tags=["git"],
    )
    async def add_git_provider(m: Mist, body: ProviderCreate) -> Response:
        spec = GitProviderSpec.model_validate(body.model_dump())
        return _json(await m.git.add_provider(spec), 201)

    @router.post(
        "/git/github-manifest",
        operation_id="git.github_manifest",
        response_model=ManifestStart,
        status_code=201,
        tags=["git"],
    )
    async def start_github_manifest(m: Mist, body: ManifestRequest) -> Response:
        start = await m.git.github_manifest(body.name, url=body.url, organization=body.organization)
        return _json(start, 201)

    @router.delete("/git/providers/{name}", operation_id="git.remove_provider", status_code=204, tags=["git"])
    async def remove_git_provider(m: Mist, name: str) -> Response:
        await m.git.remove_provider(name)
        return _no_content()

    @router.get(
        "/git/providers/{name}/repos", operation_id="git.repos", response_model=list[RepoInfo], tags=["git"]
    )
    async def list_git_repos(m: Mist, name: str) -> Response:
        return _json(await m.git.repos(name))

    @router.get(
        "/git/providers/{name}/branches",
        operation_id="git.branches",
        response_model=list[BranchInfo],
        tags=["git"],
    )
    async def list_git_branches(
        m: Mist, name: str, repo: Annotated[str, Query(description="the repository: owner/name")]
    ) -> Response:
        return _json(await m.git.branches(name, repo))

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
        from importlib.metadata import version

        return version("mist")
    except Exception:
        return "0.0.0"
