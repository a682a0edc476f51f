"""``RemoteMist``: the Mist API over HTTP to a daemon, on its Unix socket (``unix:///run/mist/mist.sock``) or
over TCP (``https://host:port``). Same methods, same models and same error classes as ``LocalMist``."""

from __future__ import annotations

import builtins
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from .api import (
    AppsAPI,
    AuditAPI,
    AuthAPI,
    CertificatesAPI,
    ContainersAPI,
    DeploymentsAPI,
    DomainsAPI,
    EnvAPI,
    EventsAPI,
    MetricsAPI,
    MistAPI,
    ProjectsAPI,
    ProxyAPI,
    SettingsAPI,
    UsersAPI,
)
from .errors import DaemonUnavailable, InvalidInput, MistError, error_from_problem
from .models import (
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
    Event,
    LogLine,
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

M = TypeVar("M", bound=BaseModel)

_ENV_LIST = TypeAdapter(list[EnvVar])
_CONTAINERS = TypeAdapter(list[ContainerInfo])
_SAMPLES = TypeAdapter(list[MetricsSample])
_USERS = TypeAdapter(list[User])
_SETTINGS = TypeAdapter(list[Setting])
_DOMAINS = TypeAdapter(list[Domain])
_CERTIFICATES = TypeAdapter(list[Certificate])


def _seg(value: str) -> str:
    """One path segment, escaped so a name can never reach another route."""
    if value in (".", ".."):
        # httpx removes dot segments from a path: `.../domains/..` would become a DELETE of the app itself.
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _app_path(app_ref: str) -> str:
    project, sep, app = app_ref.partition("/")
    if not sep or not project or not app or "/" in app:
        raise InvalidInput(
            f"an app is named 'project/app', not {app_ref!r}: give the project and the app, e.g. 'shop/web'",
            field="app",
        )
    return f"/v1/projects/{_seg(project)}/apps/{_seg(app)}"


def _params(**values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


class _Transport:
    """The HTTP side of ``RemoteMist``: one ``httpx.AsyncClient``, the token, and the error mapping."""

    def __init__(self, host: str, token: str | None, timeout: float, verify: ssl.SSLContext | str | bool):
        self.host = host
        self.token = token
        if host.startswith("unix://"):
            path = host[len("unix://") :]
            if not path:
                raise InvalidInput(
                    "a unix host needs a socket path: unix:///run/mist/mist.sock", field="host"
                )
            transport = httpx.AsyncHTTPTransport(uds=path)
            base_url = "http://mist"
        elif host.startswith(("https://", "http://")):
            transport = httpx.AsyncHTTPTransport(verify=verify)
            base_url = host.rstrip("/")
        else:
            raise InvalidInput(
                f"cannot use {host!r} as a Mist host: give unix:///path/to/mist.sock or https://host:port",
                field="host",
            )
        self.client = httpx.AsyncClient(
            transport=transport,
            base_url=base_url,
            # Streams stay open for as long as the caller reads them: only connecting is bounded.
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": "mist-client"},
        )

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def unavailable(self, exc: Exception) -> DaemonUnavailable:
        return DaemonUnavailable(
            f"cannot reach the Mist daemon at {self.host}: start it with `mist daemon` (or `make run`)"
            f" ({type(exc).__name__})"
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> httpx.Response:
        try:
            response = await self.client.request(
                method, path, params=params, json=json_body, headers=self._headers()
            )
        except (httpx.ConnectError, httpx.RemoteProtocolError, FileNotFoundError, ConnectionError) as exc:
            raise self.unavailable(exc) from exc
        except httpx.TimeoutException as exc:
            raise DaemonUnavailable(
                f"the Mist daemon at {self.host} did not answer in time; check that it is running"
            ) from exc
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    async def model(self, model: type[M], method: str, path: str, **kw: Any) -> M:
        response = await self.request(method, path, **kw)
        return model.model_validate_json(response.content)

    async def adapted(self, adapter: TypeAdapter[Any], method: str, path: str, **kw: Any) -> Any:
        response = await self.request(method, path, **kw)
        return adapter.validate_json(response.content)

    async def stream(self, model: type[M], path: str, params: Mapping[str, Any]) -> AsyncIterator[M]:
        """Parse an SSE stream into models. Closing the generator closes the response."""
        request = self.client.build_request("GET", path, params=params, headers=self._headers())
        try:
            response = await self.client.send(request, stream=True)
        except (httpx.ConnectError, FileNotFoundError, ConnectionError) as exc:
            raise self.unavailable(exc) from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                raise _error_of(response)
            event = "message"
            data: list[str] = []
            async for line in _lines(response):
                if line == "":
                    if data:
                        payload = "\n".join(data)
                        if event == "error":
                            raise error_from_problem(json.loads(payload))
                        yield model.model_validate_json(payload)
                    event, data = "message", []
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        data.append(value)
                    elif name == "event":
                        event = value
        except httpx.RemoteProtocolError as exc:
            raise DaemonUnavailable(
                f"the Mist daemon at {self.host} closed the stream (was it stopped?)"
            ) from exc
        finally:
            await response.aclose()

    async def close(self) -> None:
        await self.client.aclose()


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    # aiter_lines() would hold back a line until the next chunk arrives on some versions; SSE frames end in
    # "\n\n", so splitting the text ourselves delivers each event as soon as its bytes are in.
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        while True:
            cut = buffer.find("\n")
            if cut < 0:
                break
            line, buffer = buffer[:cut], buffer[cut + 1 :]
            yield line.rstrip("\r")
    if buffer:
        yield buffer


def _error_of(response: httpx.Response) -> MistError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body:
        return error_from_problem(body)
    return MistError(f"the Mist daemon answered {response.status_code} {response.reason_phrase}")


# ---------------------------------------------------------------------------------------------- sub-APIs


class _RemoteAuth(AuthAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def status(self) -> SetupStatus:
        return await self._t.model(SetupStatus, "GET", "/v1/setup")

    async def setup(self, username: str, password: str) -> Session:
        session = await self._t.model(
            Session, "POST", "/v1/setup", json_body={"username": username, "password": password}
        )
        self._t.token = session.token
        return session

    async def login(self, username: str, password: str) -> Session:
        session = await self._t.model(
            Session, "POST", "/v1/login", json_body={"username": username, "password": password}
        )
        self._t.token = session.token
        return session

    async def whoami(self) -> User:
        return await self._t.model(User, "GET", "/v1/me")

    async def logout(self) -> None:
        await self._t.request("POST", "/v1/logout")
        self._t.token = None


class _RemoteProjects(ProjectsAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def create(self, name: str, description: str = "", tags: list[str] | None = None) -> Project:
        body = {"name": name, "description": description, "tags": tags}
        return await self._t.model(Project, "POST", "/v1/projects", json_body=body)

    async def list(self, *, query: str | None = None, limit: int = 100, offset: int = 0) -> Page[Project]:
        params = _params(q=query, limit=limit, offset=offset)
        return await self._t.model(Page[Project], "GET", "/v1/projects", params=params)

    async def get(self, name: str) -> Project:
        return await self._t.model(Project, "GET", f"/v1/projects/{_seg(name)}")

    async def update(self, name: str, changes: ProjectChanges) -> Project:
        body = changes.model_dump(mode="json", exclude_unset=True)
        return await self._t.model(Project, "PATCH", f"/v1/projects/{_seg(name)}", json_body=body)

    async def delete(self, name: str) -> None:
        await self._t.request("DELETE", f"/v1/projects/{_seg(name)}")


class _RemoteApps(AppsAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def create(self, app_ref: str, spec: AppSpec) -> App:
        path = _app_path(app_ref)
        project_path, _, name = path.rpartition("/")
        body = {"name": app_ref.partition("/")[2], **spec.model_dump(mode="json")}
        return await self._t.model(App, "POST", project_path, json_body=body)

    async def list(
        self, *, project: str | None = None, query: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[App]:
        params = _params(project=project, q=query, limit=limit, offset=offset)
        return await self._t.model(Page[App], "GET", "/v1/apps", params=params)

    async def get(self, app_ref: str) -> App:
        return await self._t.model(App, "GET", _app_path(app_ref))

    async def update(self, app_ref: str, changes: AppChanges) -> App:
        body = changes.model_dump(mode="json", exclude_unset=True)
        return await self._t.model(App, "PATCH", _app_path(app_ref), json_body=body)

    async def delete(self, app_ref: str) -> None:
        await self._t.request("DELETE", _app_path(app_ref))

    async def deploy(self, app_ref: str, *, ref: str | None = None) -> Deployment:
        return await self._t.model(Deployment, "POST", _app_path(app_ref) + "/deploy", json_body={"ref": ref})

    async def rollback(self, app_ref: str, *, to: int | None = None) -> Deployment:
        return await self._t.model(Deployment, "POST", _app_path(app_ref) + "/rollback", json_body={"to": to})

    async def start(self, app_ref: str) -> App:
        return await self._t.model(App, "POST", _app_path(app_ref) + "/start")

    async def stop(self, app_ref: str) -> App:
        return await self._t.model(App, "POST", _app_path(app_ref) + "/stop")

    async def restart(self, app_ref: str) -> App:
        return await self._t.model(App, "POST", _app_path(app_ref) + "/restart")

    def logs(
        self,
        app_ref: str,
        *,
        follow: bool = False,
        tail: int | None = 200,
        since: datetime | None = None,
    ) -> AsyncIterator[LogLine]:
        params = _params(follow=follow, tail="all" if tail is None else tail, since=since)
        return self._t.stream(LogLine, _app_path(app_ref) + "/logs", params)


class _RemoteEnv(EnvAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self, app_ref: str, *, reveal: bool = False) -> list[EnvVar]:
        params = _params(reveal=reveal)
        return await self._t.adapted(_ENV_LIST, "GET", _app_path(app_ref) + "/env", params=params)

    async def set(
        self, app_ref: str, key: str, value: str, *, secret: bool = False, build: bool = False
    ) -> EnvVar:
        body = {"key": key, "value": value, "secret": secret, "build": build}
        return await self._t.model(EnvVar, "POST", _app_path(app_ref) + "/env", json_body=body)

    async def unset(self, app_ref: str, key: str) -> None:
        await self._t.request("DELETE", _app_path(app_ref) + f"/env/{_seg(key)}")

    async def import_dotenv(
        self, app_ref: str, text: str, *, secret: bool = False, build: bool = False
    ) -> builtins.list[EnvVar]:  # ``list`` here is the method above
        body = {"text": text, "secret": secret, "build": build}
        return await self._t.adapted(_ENV_LIST, "POST", _app_path(app_ref) + "/env/import", json_body=body)

    async def export_dotenv(self, app_ref: str, *, reveal: bool = False) -> str:
        response = await self._t.request(
            "GET", _app_path(app_ref) + "/env/export", params=_params(reveal=reveal)
        )
        return response.text


class _RemoteDeployments(DeploymentsAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self, app_ref: str, *, limit: int = 50, offset: int = 0) -> Page[Deployment]:
        params = _params(limit=limit, offset=offset)
        return await self._t.model(
            Page[Deployment], "GET", _app_path(app_ref) + "/deployments", params=params
        )

    async def get(self, deployment_id: int) -> Deployment:
        return await self._t.model(Deployment, "GET", f"/v1/deployments/{int(deployment_id)}")

    def log(self, deployment_id: int, *, follow: bool = False, after: int = 0) -> AsyncIterator[LogLine]:
        params = _params(follow=follow, after=after)
        return self._t.stream(LogLine, f"/v1/deployments/{int(deployment_id)}/log", params)

    async def cancel(self, deployment_id: int) -> Deployment:
        return await self._t.model(Deployment, "POST", f"/v1/deployments/{int(deployment_id)}/cancel")


class _RemoteContainers(ContainersAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self, *, all: bool = False) -> list[ContainerInfo]:
        return await self._t.adapted(_CONTAINERS, "GET", "/v1/containers", params=_params(all=all))


class _RemoteMetrics(MetricsAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def current(self) -> MetricsSample:
        return await self._t.model(MetricsSample, "GET", "/v1/metrics")

    async def history(self, *, seconds: int = 300) -> list[MetricsSample]:
        return await self._t.adapted(_SAMPLES, "GET", "/v1/metrics/history", params={"seconds": seconds})

    def stream(self) -> AsyncIterator[MetricsSample]:
        return self._t.stream(MetricsSample, "/v1/metrics/stream", {})


class _RemoteEvents(EventsAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    def stream(self) -> AsyncIterator[Event]:
        return self._t.stream(Event, "/v1/events", {})


class _RemoteUsers(UsersAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self) -> list[User]:
        return await self._t.adapted(_USERS, "GET", "/v1/users")


class _RemoteAudit(AuditAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(
        self,
        *,
        actor: str | None = None,
        project: str | None = None,
        action: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[AuditEntry]:
        params = _params(actor=actor, project=project, action=action, limit=limit, offset=offset)
        return await self._t.model(Page[AuditEntry], "GET", "/v1/audit", params=params)


class _RemoteSettings(SettingsAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self) -> list[Setting]:
        return await self._t.adapted(_SETTINGS, "GET", "/v1/settings")

    async def get(self, key: str) -> Setting:
        return await self._t.model(Setting, "GET", f"/v1/settings/{_seg(key)}")

    async def set(self, key: str, value: str) -> Setting:
        return await self._t.model(Setting, "PUT", f"/v1/settings/{_seg(key)}", json_body={"value": value})


class _RemoteDomains(DomainsAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self, app_ref: str) -> builtins.list[Domain]:
        return await self._t.adapted(_DOMAINS, "GET", _app_path(app_ref) + "/domains")

    async def add(self, app_ref: str, name: str, settings: DomainSettings | None = None) -> Domain:
        body = {"name": name, **(settings or DomainSettings()).model_dump(mode="json")}
        return await self._t.model(Domain, "POST", _app_path(app_ref) + "/domains", json_body=body)

    async def update(self, app_ref: str, name: str, settings: DomainSettings) -> Domain:
        path = _app_path(app_ref) + f"/domains/{_seg(name)}"
        return await self._t.model(Domain, "PUT", path, json_body=settings.model_dump(mode="json"))

    async def remove(self, app_ref: str, name: str) -> None:
        await self._t.request("DELETE", _app_path(app_ref) + f"/domains/{_seg(name)}")


class _RemoteCertificates(CertificatesAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self, app_ref: str | None = None) -> builtins.list[Certificate]:
        if app_ref is not None:
            _app_path(app_ref)  # the same refusal of a malformed name as every other call taking an app
        return await self._t.adapted(_CERTIFICATES, "GET", "/v1/certificates", params=_params(app=app_ref))

    async def renew(self, domain: str) -> Certificate:
        return await self._t.model(Certificate, "POST", f"/v1/certificates/{_seg(domain)}/renew")

    async def upload(self, domain: str, cert_pem: str, key_pem: str) -> Certificate:
        body = {"cert_pem": cert_pem, "key_pem": key_pem}
        return await self._t.model(Certificate, "PUT", f"/v1/certificates/{_seg(domain)}", json_body=body)


class _RemoteProxy(ProxyAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def status(self) -> ProxyStatus:
        return await self._t.model(ProxyStatus, "GET", "/v1/proxy")

    async def reload(self) -> ProxyStatus:
        return await self._t.model(ProxyStatus, "POST", "/v1/proxy/reload")

    async def install(self) -> ProxyStatus:
        return await self._t.model(ProxyStatus, "POST", "/v1/proxy/install")


class RemoteMist(MistAPI):
    """The Mist API of a daemon.

    ``host`` is ``unix:///path/mist.sock``, ``https://host:port`` or (development, loopback only)
    ``http://127.0.0.1:port``. ``verify`` is passed to httpx for TLS: ``True`` (system CAs), a CA bundle
    path, an ``ssl.SSLContext``, or ``False``. ``setup``/``login`` keep the new token; ``logout`` drops it.
    """

    def __init__(
        self,
        host: str,
        token: str | None = None,
        *,
        timeout: float = 30,
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        self._t = _Transport(host, token, timeout, verify)
        self.host = host
        self.auth = _RemoteAuth(self._t)
        self.projects = _RemoteProjects(self._t)
        self.apps = _RemoteApps(self._t)
        self.env = _RemoteEnv(self._t)
        self.deployments = _RemoteDeployments(self._t)
        self.containers = _RemoteContainers(self._t)
        self.metrics = _RemoteMetrics(self._t)
        self.events = _RemoteEvents(self._t)
        self.users = _RemoteUsers(self._t)
        self.audit = _RemoteAudit(self._t)
        self.settings = _RemoteSettings(self._t)
        self.domains = _RemoteDomains(self._t)
        self.certificates = _RemoteCertificates(self._t)
        self.proxy = _RemoteProxy(self._t)

    @property
    def token(self) -> str | None:
        return self._t.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._t.token = value

    def with_token(self, token: str | None) -> RemoteMist:
        """Use ``token`` for every later call (returns ``self`` for chaining)."""
        self._t.token = token
        return self

    async def close(self) -> None:
        await self._t.close()
