"""The daemon's HTTP API: every route under ``/v1`` turns its bearer token into a ``MistAPI`` bound to that
actor (``core.api(token)``) and calls one method on it. Authorization, validation and everything else live
in the core; this module only translates HTTP to calls and results (or ``MistError``) back to HTTP."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..api import MistAPI
from ..errors import InvalidInput, MistError
from ..models import (
    App,
    AppChanges,
    AppSpec,
    AuditEntry,
    Certificate,
    ContainerInfo,
    Deployment,
    Domain,
    DomainSettings,
    EnvVar,
    MetricsSample,
    Page,
    Project,
    ProjectChanges,
    ProxyStatus,
    Session,
    Setting,
    SetupStatus,
    User,
)
from . import sse

log = logging.getLogger("mist.server")

PROBLEM = "application/problem+json"


class CoreLike(Protocol):
    """What the routes need from the core: a ``MistAPI`` bound to whoever the token names."""

    def api(self, token: str | None) -> MistAPI: ...


# ---------------------------------------------------------------------------------------------- bodies


class Body_(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(Body_):
    username: str
    password: str


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


class EnvSet(Body_):
    key: str
    value: str
    secret: bool = False
    build: bool = False


class EnvImport(Body_):
    text: str
    secret: bool = False
    build: bool = False


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


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MistError)
    async def mist_error(request: Request, exc: MistError) -> JSONResponse:
        return problem_response(exc.to_problem(), exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _problem(
                "not_found", 404, f"no route {request.method} {request.url.path}: see /v1/openapi.json"
            )
        if exc.status_code == 405:
            return _problem("method_not_allowed", 405, f"{request.url.path} does not accept {request.method}")
        return _problem("http_error", exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the daemon's log only: it can hold paths, SQL and values the caller must not see.
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _problem("internal", 500, "the daemon failed to handle this request; see the daemon's log")


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


def _mist(request: Request) -> MistAPI:
    core: CoreLike = request.app.state.core
    return core.api(_token(request))


# Module level on purpose: FastAPI resolves these (string) annotations in the module's namespace.
Mist = Annotated[MistAPI, Depends(_mist)]
# Ranges are the core's to check, so a bad limit reads the same embedded and remote.
Limit = int
Offset = int


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    # ------------------------------------------------------------------------------------------ auth

    @router.get("/setup", response_model=SetupStatus, tags=["auth"])
    async def setup_status(m: Mist) -> Response:
        return _json(await m.auth.status())

    @router.post("/setup", response_model=Session, status_code=201, tags=["auth"])
    async def setup(m: Mist, body: Credentials) -> Response:
        return _json(await m.auth.setup(body.username, body.password), 201)

    @router.post("/login", response_model=Session, tags=["auth"])
    async def login(m: Mist, body: Credentials) -> Response:
        return _json(await m.auth.login(body.username, body.password))

    @router.post("/logout", status_code=204, tags=["auth"])
    async def logout(m: Mist) -> Response:
        await m.auth.logout()
        return _no_content()

    @router.get("/me", response_model=User, tags=["auth"])
    async def whoami(m: Mist) -> Response:
        return _json(await m.auth.whoami())

    # ------------------------------------------------------------------------------------------ projects

    @router.get("/projects", response_model=Page[Project], tags=["projects"])
    async def list_projects(
        m: Mist, q: str | None = None, limit: Limit = 100, offset: Offset = 0
    ) -> Response:
        return _json(await m.projects.list(query=q, limit=limit, offset=offset))

    @router.post("/projects", response_model=Project, status_code=201, tags=["projects"])
    async def create_project(m: Mist, body: ProjectCreate) -> Response:
        return _json(await m.projects.create(body.name, body.description, body.tags), 201)

    @router.get("/projects/{name}", response_model=Project, tags=["projects"])
    async def get_project(m: Mist, name: str) -> Response:
        return _json(await m.projects.get(name))

    @router.patch("/projects/{name}", response_model=Project, tags=["projects"])
    async def update_project(m: Mist, name: str, body: ProjectChanges) -> Response:
        return _json(await m.projects.update(name, body))

    @router.delete("/projects/{name}", status_code=204, tags=["projects"])
    async def delete_project(m: Mist, name: str) -> Response:
        await m.projects.delete(name)
        return _no_content()

    # ------------------------------------------------------------------------------------------ apps

    @router.get("/apps", response_model=Page[App], tags=["apps"])
    async def list_apps(
        m: Mist,
        project: str | None = None,
        q: str | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        return _json(await m.apps.list(project=project, query=q, limit=limit, offset=offset))

    @router.post("/projects/{project}/apps", response_model=App, status_code=201, tags=["apps"])
    async def create_app_(m: Mist, project: str, body: AppCreate) -> Response:
        spec = AppSpec.model_validate(body.model_dump(exclude={"name"}))
        return _json(await m.apps.create(_ref(project, body.name), spec), 201)

    @router.get("/projects/{project}/apps/{app}", response_model=App, tags=["apps"])
    async def get_app(m: Mist, project: str, app: str) -> Response:
        return _json(await m.apps.get(_ref(project, app)))

    @router.patch("/projects/{project}/apps/{app}", response_model=App, tags=["apps"])
    async def update_app(m: Mist, project: str, app: str, body: AppChanges) -> Response:
        return _json(await m.apps.update(_ref(project, app), body))

    @router.delete("/projects/{project}/apps/{app}", status_code=204, tags=["apps"])
    async def delete_app(m: Mist, project: str, app: str) -> Response:
        await m.apps.delete(_ref(project, app))
        return _no_content()

    @router.post(
        "/projects/{project}/apps/{app}/deploy", response_model=Deployment, status_code=202, tags=["apps"]
    )
    async def deploy(
        m: Mist, project: str, app: str, body: Annotated[DeployRequest | None, Body()] = None
    ) -> Response:
        ref = body.ref if body is not None else None
        return _json(await m.apps.deploy(_ref(project, app), ref=ref), 202)

    @router.post(
        "/projects/{project}/apps/{app}/rollback", response_model=Deployment, status_code=202, tags=["apps"]
    )
    async def rollback(
        m: Mist, project: str, app: str, body: Annotated[RollbackRequest | None, Body()] = None
    ) -> Response:
        to = body.to if body is not None else None
        return _json(await m.apps.rollback(_ref(project, app), to=to), 202)

    @router.post("/projects/{project}/apps/{app}/start", response_model=App, tags=["apps"])
    async def start(m: Mist, project: str, app: str) -> Response:
        return _json(await m.apps.start(_ref(project, app)))

    @router.post("/projects/{project}/apps/{app}/stop", response_model=App, tags=["apps"])
    async def stop(m: Mist, project: str, app: str) -> Response:
        return _json(await m.apps.stop(_ref(project, app)))

    @router.post("/projects/{project}/apps/{app}/restart", response_model=App, tags=["apps"])
    async def restart(m: Mist, project: str, app: str) -> Response:
        return _json(await m.apps.restart(_ref(project, app)))

    @router.get(
        "/projects/{project}/apps/{app}/logs",
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

    # ------------------------------------------------------------------------------------------ env

    @router.get("/projects/{project}/apps/{app}/env", response_model=list[EnvVar], tags=["env"])
    async def list_env(m: Mist, project: str, app: str, reveal: bool = False) -> Response:
        return _json(await m.env.list(_ref(project, app), reveal=reveal))

    @router.post("/projects/{project}/apps/{app}/env", response_model=EnvVar, tags=["env"])
    async def set_env(m: Mist, project: str, app: str, body: EnvSet) -> Response:
        var = await m.env.set(_ref(project, app), body.key, body.value, secret=body.secret, build=body.build)
        return _json(var)

    @router.delete("/projects/{project}/apps/{app}/env/{key}", status_code=204, tags=["env"])
    async def unset_env(m: Mist, project: str, app: str, key: str) -> Response:
        await m.env.unset(_ref(project, app), key)
        return _no_content()

    @router.post("/projects/{project}/apps/{app}/env/import", response_model=list[EnvVar], tags=["env"])
    async def import_env(m: Mist, project: str, app: str, body: EnvImport) -> Response:
        return _json(
            await m.env.import_dotenv(_ref(project, app), body.text, secret=body.secret, build=body.build)
        )

    @router.get(
        "/projects/{project}/apps/{app}/env/export",
        response_class=PlainTextResponse,
        tags=["env"],
    )
    async def export_env(m: Mist, project: str, app: str, reveal: bool = False) -> Response:
        return PlainTextResponse(await m.env.export_dotenv(_ref(project, app), reveal=reveal))

    # ------------------------------------------------------------------------------------------ deployments

    @router.get(
        "/projects/{project}/apps/{app}/deployments", response_model=Page[Deployment], tags=["deployments"]
    )
    async def list_deployments(
        m: Mist, project: str, app: str, limit: Limit = 50, offset: Offset = 0
    ) -> Response:
        return _json(await m.deployments.list(_ref(project, app), limit=limit, offset=offset))

    @router.get("/deployments/{deployment_id}", response_model=Deployment, tags=["deployments"])
    async def get_deployment(m: Mist, deployment_id: int) -> Response:
        return _json(await m.deployments.get(deployment_id))

    @router.get(
        "/deployments/{deployment_id}/log",
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

    @router.post("/deployments/{deployment_id}/cancel", response_model=Deployment, tags=["deployments"])
    async def cancel_deployment(m: Mist, deployment_id: int) -> Response:
        return _json(await m.deployments.cancel(deployment_id))

    # ------------------------------------------------------------------------------------------ runtime

    @router.get("/containers", response_model=list[ContainerInfo], tags=["runtime"])
    async def list_containers(m: Mist, all: bool = False) -> Response:
        return _json(await m.containers.list(all=all))

    @router.get("/metrics", response_model=MetricsSample, tags=["runtime"])
    async def metrics_current(m: Mist) -> Response:
        return _json(await m.metrics.current())

    @router.get("/metrics/history", response_model=list[MetricsSample], tags=["runtime"])
    async def metrics_history(m: Mist, seconds: int = 300) -> Response:
        return _json(await m.metrics.history(seconds=seconds))

    @router.get(
        "/metrics/stream",
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
        tags=["runtime"],
        response_class=Response,
        responses={200: {"content": {sse.MEDIA_TYPE: {}}, "description": "SSE: one Event per change"}},
    )
    async def events(request: Request, m: Mist) -> Response:
        await m.auth.whoami()
        return sse.stream_response(request, m.events.stream())

    # ------------------------------------------------------------------------------------------ admin

    @router.get("/users", response_model=list[User], tags=["admin"])
    async def list_users(m: Mist) -> Response:
        return _json(await m.users.list())

    @router.get("/audit", response_model=Page[AuditEntry], tags=["admin"])
    async def list_audit(
        m: Mist,
        actor: str | None = None,
        project: str | None = None,
        action: str | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        page = await m.audit.list(actor=actor, project=project, action=action, limit=limit, offset=offset)
        return _json(page)

    @router.get("/settings", response_model=list[Setting], tags=["admin"])
    async def list_settings(m: Mist) -> Response:
        return _json(await m.settings.list())

    @router.get("/settings/{key}", response_model=Setting, tags=["admin"])
    async def get_setting(m: Mist, key: str) -> Response:
        return _json(await m.settings.get(key))

    @router.put("/settings/{key}", response_model=Setting, tags=["admin"])
    async def set_setting(m: Mist, key: str, body: SettingValue) -> Response:
        return _json(await m.settings.set(key, body.value))

    # ------------------------------------------------------------------------------------------ domains

    @router.get("/projects/{project}/apps/{app}/domains", response_model=list[Domain], tags=["domains"])
    async def list_domains(m: Mist, project: str, app: str) -> Response:
        return _json(await m.domains.list(_ref(project, app)))

    @router.post(
        "/projects/{project}/apps/{app}/domains", response_model=Domain, status_code=201, tags=["domains"]
    )
    async def add_domain(m: Mist, project: str, app: str, body: DomainCreate) -> Response:
        settings = DomainSettings.model_validate(body.model_dump(exclude={"name"}))
        return _json(await m.domains.add(_ref(project, app), body.name, settings), 201)

    @router.put("/projects/{project}/apps/{app}/domains/{name}", response_model=Domain, tags=["domains"])
    async def update_domain(m: Mist, project: str, app: str, name: str, body: DomainSettings) -> Response:
        return _json(await m.domains.update(_ref(project, app), name, body))

    @router.delete("/projects/{project}/apps/{app}/domains/{name}", status_code=204, tags=["domains"])
    async def remove_domain(m: Mist, project: str, app: str, name: str) -> Response:
        await m.domains.remove(_ref(project, app), name)
        return _no_content()

    # ------------------------------------------------------------------------------------------ certificates

    @router.get("/certificates", response_model=list[Certificate], tags=["certificates"])
    async def list_certificates(
        m: Mist, app: Annotated[str | None, Query(description="only this app's domains: project/app")] = None
    ) -> Response:
        return _json(await m.certificates.list(app or None))

    @router.post("/certificates/{domain}/renew", response_model=Certificate, tags=["certificates"])
    async def renew_certificate(m: Mist, domain: str) -> Response:
        return _json(await m.certificates.renew(domain))

    @router.put("/certificates/{domain}", response_model=Certificate, tags=["certificates"])
    async def upload_certificate(m: Mist, domain: str, body: CertificateUpload) -> Response:
        return _json(await m.certificates.upload(domain, body.cert_pem, body.key_pem))

    # ------------------------------------------------------------------------------------------ proxy

    @router.get("/proxy", response_model=ProxyStatus, tags=["proxy"])
    async def proxy_status(m: Mist) -> Response:
        return _json(await m.proxy.status())

    @router.post("/proxy/reload", response_model=ProxyStatus, tags=["proxy"])
    async def proxy_reload(m: Mist) -> Response:
        return _json(await m.proxy.reload())

    @router.post("/proxy/install", response_model=ProxyStatus, tags=["proxy"])
    async def proxy_install(m: Mist) -> Response:
        return _json(await m.proxy.install())

    return router


def create_app(core: CoreLike) -> FastAPI:
    """The FastAPI application serving ``core``. The caller owns the core (opens and closes it)."""
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
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("mist")
    except Exception:
        return "0.0.0"
