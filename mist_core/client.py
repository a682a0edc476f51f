"""``RemoteMist``: the Mist API over HTTP to a daemon, on its Unix socket (``unix:///run/mist/mist.sock``) or
over TCP (``https://host:port``). Same methods, same models and same error classes as ``LocalMist``.

Also here: pinning a daemon's self-signed certificate (``RemoteMist(..., certificate=PEM)``) and
``fetch_certificate`` to show a user what a daemon presents before they choose to trust it."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import inspect
import ipaddress
import json
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

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
    GitAPI,
    InvitesAPI,
    MembersAPI,
    MetricsAPI,
    MistAPI,
    PreviewsAPI,
    ProjectsAPI,
    ProxyAPI,
    SecretsAPI,
    SessionsAPI,
    SettingsAPI,
    TokensAPI,
    UsersAPI,
    WebhooksAPI,
)
from .errors import DaemonUnavailable, InvalidInput, MistError, error_from_problem
from .models import (
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
    Event,
    GitProvider,
    GitProviderSpec,
    Invite,
    InviteCreated,
    KeyRotation,
    LogLine,
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

M = TypeVar("M", bound=BaseModel)

_ENV_LIST = TypeAdapter(list[EnvVar])
_CONTAINERS = TypeAdapter(list[ContainerInfo])
_SAMPLES = TypeAdapter(list[MetricsSample])
_USERS = TypeAdapter(list[User])
_SETTINGS = TypeAdapter(list[Setting])
_DOMAINS = TypeAdapter(list[Domain])
_CERTIFICATES = TypeAdapter(list[Certificate])
_MEMBERS = TypeAdapter(list[Member])
_INVITES = TypeAdapter(list[Invite])
_SESSIONS = TypeAdapter(list[SessionInfo])
_TOKENS = TypeAdapter(list[ApiToken])
_PROVIDERS = TypeAdapter(list[GitProvider])
_REPOS = TypeAdapter(list[RepoInfo])
_BRANCHES = TypeAdapter(list[BranchInfo])
_DELIVERIES = TypeAdapter(list[WebhookDelivery])
_PREVIEWS = TypeAdapter(list[Preview])

# Called with the new session after an expired access token was renewed, so the caller can save the pair
# (a coroutine function works too).
OnSession = Callable[[Session], Awaitable[None] | None]

FETCH_TIMEOUT = 10.0


class CertificateMismatch(DaemonUnavailable):
    """The daemon presented a certificate other than the one pinned for it: either it was replaced (log in
    again to pin the new one) or something sits between the client and the daemon."""

    code = "certificate_mismatch"


# ---------------------------------------------------------------------------------------------- certificates


def certificate_fingerprint(pem: str) -> str:
    """``SHA256:aa:bb:...``: the SHA-256 of a certificate's DER, as the daemon prints it at start."""
    # The first certificate of a chain is the daemon's own.
    found = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.DOTALL)
    try:
        if found is None:
            raise ValueError
        der = ssl.PEM_cert_to_DER_cert(found.group(0) + "\n")
    except ValueError:
        raise InvalidInput("the certificate is not a PEM certificate", field="certificate") from None
    return _fingerprint_of_der(der)


def _fingerprint_of_der(der: bytes) -> str:
    return "SHA256:" + ":".join(f"{b:02x}" for b in hashlib.sha256(der).digest())


def _https_address(host: str) -> tuple[str, int]:
    url = urlsplit(host)
    if url.scheme != "https" or not url.hostname:
        raise InvalidInput(f"{host!r} is not an https:// address: give https://host:port", field="host")
    try:
        return url.hostname, url.port or 443
    except ValueError:
        raise InvalidInput(f"{host!r} has no valid port: give https://host:port", field="host") from None


def fetch_certificate(host: str, *, timeout: float = FETCH_TIMEOUT) -> tuple[str, str]:
    """The certificate ``host`` (``https://host:port``) presents, as ``(PEM, "SHA256:aa:bb:...")``.

    Nothing is verified: this is only for showing the fingerprint to the user on first use, who compares it
    with the one the daemon printed at start before pinning the PEM (``RemoteMist(..., certificate=PEM)``).
    No request is sent, so no token can leak to whoever answers. Blocking; call it in a thread from async code.
    """
    hostname, port = _https_address(host)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((hostname, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=hostname) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise DaemonUnavailable(
            f"cannot read the certificate of {host}: is a Mist daemon listening there with TLS? ({exc})"
        ) from None
    if not der:
        raise DaemonUnavailable(f"{host} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der), _fingerprint_of_der(der)


def pinned_context(certificate: str) -> ssl.SSLContext:
    """A TLS context that trusts exactly ``certificate`` (a PEM), whatever name the daemon is reached by:
    the pin replaces both the CA chain and the host name check."""
    certificate_fingerprint(certificate)  # a clear error for something that is not a PEM certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cadata=certificate)
    except ssl.SSLError as exc:
        raise InvalidInput(f"the pinned certificate cannot be loaded: {exc}", field="certificate") from None
    return context


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


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
    """The HTTP side of ``RemoteMist``: one ``httpx.AsyncClient``, the tokens, renewal of an expired access
    token, and the error mapping."""

    def __init__(
        self,
        host: str,
        token: str | None,
        timeout: float,
        verify: ssl.SSLContext | str | bool,
        *,
        refresh_token: str | None = None,
        on_session: OnSession | None = None,
        certificate: str | None = None,
    ):
        self.host = host
        self.token = token
        self.refresh_token = refresh_token
        self.on_session = on_session
        self.certificate = certificate
        # One renewal at a time: two calls that both see the token expire must not both spend the refresh
        # token, since presenting a used one revokes the session.
        self._renewing = asyncio.Lock()
        if host.startswith("unix://"):
            path = host[len("unix://") :]
            if not path:
                raise InvalidInput(
                    "a unix host needs a socket path: unix:///run/mist/mist.sock", field="host"
                )
            transport = httpx.AsyncHTTPTransport(uds=path)
            base_url = "http://mist"
        elif host.startswith(("https://", "http://")):
            hostname = urlsplit(host).hostname or ""
            if host.startswith("http://") and not _loopback(hostname):
                raise InvalidInput(
                    f"refusing plain http:// to {hostname or host}: tokens would cross the network in clear; "
                    "use https://host:port",
                    field="host",
                )
            if certificate is not None:
                verify = pinned_context(certificate)
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

    def _headers(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def unavailable(self, exc: Exception) -> DaemonUnavailable:
        if _is_certificate_error(exc):
            return await self._untrusted()
        return DaemonUnavailable(
            f"cannot reach the Mist daemon at {self.host}: start it with `mist daemon` (or `make run`)"
            f" ({type(exc).__name__})"
        )

    async def _untrusted(self) -> DaemonUnavailable:
        try:
            _, presented = await asyncio.to_thread(fetch_certificate, self.host)
        except MistError:
            presented = "unknown"
        if self.certificate is not None:
            pinned = certificate_fingerprint(self.certificate)
            return CertificateMismatch(
                f"the daemon at {self.host} presented the certificate {presented}, not the one pinned for it "
                f"({pinned}). If its certificate was replaced on purpose, log in again to pin the new one "
                "(`mist login --host ...`); otherwise do not connect: someone may be intercepting the traffic"
            )
        return DaemonUnavailable(
            f"the certificate of the daemon at {self.host} ({presented}) is not trusted by this machine: "
            "if it is the self-signed one the daemon printed at start, log in with `mist login --host` "
            "to pin it (or pass certificate=PEM)"
        )

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        token: str | None,
        *,
        stream: bool = False,
    ) -> httpx.Response:
        request = self.client.build_request(
            method, path, params=params, json=json_body, headers=self._headers(token)
        )
        try:
            return await self.client.send(request, stream=stream)
        except (httpx.ConnectError, httpx.RemoteProtocolError, FileNotFoundError, ConnectionError) as exc:
            raise await self.unavailable(exc) from exc
        except httpx.TimeoutException as exc:
            raise DaemonUnavailable(
                f"the Mist daemon at {self.host} did not answer in time; check that it is running"
            ) from exc

    async def _send_renewing(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        *,
        stream: bool = False,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send; when the access token has expired and a refresh token is at hand, renew and send once more."""
        token = self.token if authenticated else None
        response = await self._send(method, path, params, json_body, token, stream=stream)
        if token is None or response.status_code != 401:
            return response
        await response.aread()
        if _code_of(response) != "token_expired" or not await self._renew(token):
            return response
        await response.aclose()
        return await self._send(method, path, params, json_body, self.token, stream=stream)

    async def _renew(self, expired: str) -> bool:
        async with self._renewing:
            if self.token != expired:
                return True  # another call renewed it while this one waited
            if not self.refresh_token:
                return False
            response = await self._send(
                "POST", "/v1/refresh", None, {"refresh_token": self.refresh_token}, None
            )
            if response.status_code >= 400:
                # The session ended (revoked, logged out, or the refresh token expired): say so, not "expired".
                raise _error_of(response)
            session = Session.model_validate_json(response.content)
            self.keep(session)
        if self.on_session is not None:
            outcome = self.on_session(session)
            if inspect.isawaitable(outcome):
                await outcome
        return True

    def keep(self, session: Session) -> None:
        """Use ``session``'s tokens from now on."""
        self.token = session.token
        self.refresh_token = session.refresh_token

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        response = await self._send_renewing(method, path, params, json_body, authenticated=authenticated)
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
        """Parse an SSE stream into models. Closing the generator closes the response. An expired access
        token is renewed before the stream starts."""
        response = await self._send_renewing("GET", path, params, None, stream=True)
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
                            raise _error_of_problem(json.loads(payload))
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


def _problem_of(response: httpx.Response) -> dict[str, Any] | None:
    if not response.headers.get("content-type", "").startswith(
        ("application/problem+json", "application/json")
    ):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "code" in body else None


def _code_of(response: httpx.Response) -> str | None:
    problem = _problem_of(response)
    return str(problem["code"]) if problem else None


def _error_of_problem(body: dict[str, Any]) -> MistError:
    error = error_from_problem(body)
    # ``extra`` carries what a caller acts on (``retry_after`` of ``TooManyAttempts``).
    if isinstance(body.get("extra"), dict) and not error.extra:
        error.extra = dict(body["extra"])
    return error


def _error_of(response: httpx.Response) -> MistError:
    problem = _problem_of(response)
    if problem is not None:
        return _error_of_problem(problem)
    return MistError(f"the Mist daemon answered {response.status_code} {response.reason_phrase}")


# ---------------------------------------------------------------------------------------------- sub-APIs


class _RemoteAuth(AuthAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def _session(self, path: str, body: dict[str, Any]) -> Session:
        session = await self._t.model(Session, "POST", path, json_body=body, authenticated=False)
        self._t.keep(session)
        return session

    async def status(self) -> SetupStatus:
        return await self._t.model(SetupStatus, "GET", "/v1/setup", authenticated=False)

    async def setup(self, username: str, password: str) -> Session:
        return await self._session("/v1/setup", {"username": username, "password": password})

    async def login(self, username: str, password: str, *, totp: str | None = None) -> Session:
        body: dict[str, Any] = {"username": username, "password": password}
        if totp is not None:
            body["totp"] = totp
        return await self._session("/v1/login", body)

    async def refresh(self, refresh_token: str) -> Session:
        return await self._session("/v1/refresh", {"refresh_token": refresh_token})

    async def whoami(self) -> User:
        return await self._t.model(User, "GET", "/v1/me")

    async def logout(self) -> None:
        await self._t.request("POST", "/v1/logout")
        self._t.token = None
        self._t.refresh_token = None

    async def change_password(self, current: str, new: str, *, revoke_tokens: bool = False) -> None:
        body = {"current": current, "new": new, "revoke_tokens": revoke_tokens}
        await self._t.request("POST", "/v1/me/password", json_body=body)

    async def totp_setup(self) -> TotpSetup:
        return await self._t.model(TotpSetup, "POST", "/v1/me/totp")

    async def totp_enable(self, code: str) -> RecoveryCodes:
        return await self._t.model(RecoveryCodes, "POST", "/v1/me/totp/enable", json_body={"code": code})

    async def totp_disable(self, password: str) -> None:
        await self._t.request("POST", "/v1/me/totp/disable", json_body={"password": password})


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

    async def source(self, app_ref: str, *, reveal: bool = False) -> AppSource:
        params = _params(reveal=reveal)
        return await self._t.model(AppSource, "GET", _app_path(app_ref) + "/source", params=params)

    async def set_source(self, app_ref: str, changes: SourceChanges) -> AppSource:
        body = changes.model_dump(mode="json", exclude_unset=True)
        return await self._t.model(AppSource, "PATCH", _app_path(app_ref) + "/source", json_body=body)

    async def deploy_key(self, app_ref: str, *, regenerate: bool = False) -> AppSource:
        path = _app_path(app_ref) + "/source/deploy-key"
        return await self._t.model(AppSource, "POST", path, json_body={"regenerate": regenerate})

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

    async def list(self) -> builtins.list[User]:
        return await self._t.adapted(_USERS, "GET", "/v1/users")

    async def get(self, username: str) -> User:
        return await self._t.model(User, "GET", f"/v1/users/{_seg(username)}")

    async def create(
        self, username: str, password: str, *, role: Role = "developer", email: str | None = None
    ) -> User:
        body = {"username": username, "password": password, "role": role, "email": email}
        return await self._t.model(User, "POST", "/v1/users", json_body=body)

    async def update(self, username: str, changes: UserChanges) -> User:
        body = changes.model_dump(mode="json", exclude_unset=True)
        return await self._t.model(User, "PATCH", f"/v1/users/{_seg(username)}", json_body=body)

    async def set_role(self, username: str, role: Role) -> User:
        return await self._t.model(User, "PUT", f"/v1/users/{_seg(username)}/role", json_body={"role": role})

    async def delete(self, username: str, *, reassign_to: str | None = None) -> None:
        params = _params(reassign_to=reassign_to)
        await self._t.request("DELETE", f"/v1/users/{_seg(username)}", params=params)


class _RemoteMembers(MembersAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self, project: str) -> builtins.list[Member]:
        return await self._t.adapted(_MEMBERS, "GET", f"/v1/projects/{_seg(project)}/members")

    async def add(self, project: str, username: str, role: ProjectRole) -> Member:
        path = f"/v1/projects/{_seg(project)}/members/{_seg(username)}"
        return await self._t.model(Member, "PUT", path, json_body={"role": role})

    async def remove(self, project: str, username: str) -> None:
        await self._t.request("DELETE", f"/v1/projects/{_seg(project)}/members/{_seg(username)}")


class _RemoteInvites(InvitesAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def create(
        self,
        *,
        username: str | None = None,
        email: str | None = None,
        role: Role = "developer",
        project: str | None = None,
        project_role: ProjectRole | None = None,
        expires_hours: int = 72,
    ) -> InviteCreated:
        body = {
            "username": username,
            "email": email,
            "role": role,
            "project": project,
            "project_role": project_role,
            "expires_hours": expires_hours,
        }
        return await self._t.model(InviteCreated, "POST", "/v1/invites", json_body=body)

    async def list(self) -> builtins.list[Invite]:
        return await self._t.adapted(_INVITES, "GET", "/v1/invites")

    async def revoke(self, invite_id: int) -> None:
        await self._t.request("DELETE", f"/v1/invites/{int(invite_id)}")

    async def accept(self, token: str, username: str, password: str, *, email: str | None = None) -> Session:
        body = {"token": token, "username": username, "password": password, "email": email}
        session = await self._t.model(
            Session, "POST", "/v1/invites/accept", json_body=body, authenticated=False
        )
        self._t.keep(session)
        return session


class _RemoteSessions(SessionsAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self, *, username: str | None = None) -> builtins.list[SessionInfo]:
        return await self._t.adapted(_SESSIONS, "GET", "/v1/sessions", params=_params(username=username))

    async def revoke(self, session_id: int) -> None:
        await self._t.request("DELETE", f"/v1/sessions/{int(session_id)}")


class _RemoteTokens(TokensAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def create(
        self,
        name: str,
        *,
        scope: TokenScope = "read",
        project: str | None = None,
        expires_days: int | None = 90,
    ) -> ApiTokenCreated:
        # ``expires_days`` is always sent: ``null`` means "never expires", unlike a missing field.
        body = {"name": name, "scope": scope, "project": project, "expires_days": expires_days}
        return await self._t.model(ApiTokenCreated, "POST", "/v1/tokens", json_body=body)

    async def list(self, *, all: bool = False) -> builtins.list[ApiToken]:
        return await self._t.adapted(_TOKENS, "GET", "/v1/tokens", params=_params(all=all))

    async def revoke(self, token_id: int) -> None:
        await self._t.request("DELETE", f"/v1/tokens/{int(token_id)}")


class _RemoteGit(GitAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def providers(self) -> builtins.list[GitProvider]:
        return await self._t.adapted(_PROVIDERS, "GET", "/v1/git/providers")

    async def add_provider(self, spec: GitProviderSpec) -> GitProvider:
        body = spec.model_dump(mode="json")
        return await self._t.model(GitProvider, "POST", "/v1/git/providers", json_body=body)

    async def github_manifest(
        self, name: str, *, url: str = "https://github.com", organization: str | None = None
    ) -> ManifestStart:
        body = {"name": name, "url": url, "organization": organization}
        return await self._t.model(ManifestStart, "POST", "/v1/git/github-manifest", json_body=body)

    async def remove_provider(self, name: str) -> None:
        await self._t.request("DELETE", f"/v1/git/providers/{_seg(name)}")

    async def repos(self, provider: str) -> builtins.list[RepoInfo]:
        return await self._t.adapted(_REPOS, "GET", f"/v1/git/providers/{_seg(provider)}/repos")

    async def branches(self, provider: str, repo: str) -> builtins.list[BranchInfo]:
        path = f"/v1/git/providers/{_seg(provider)}/branches"
        return await self._t.adapted(_BRANCHES, "GET", path, params={"repo": repo})


class _RemoteWebhooks(WebhooksAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self, app_ref: str, *, limit: int = 50) -> builtins.list[WebhookDelivery]:
        params = _params(limit=limit)
        return await self._t.adapted(_DELIVERIES, "GET", _app_path(app_ref) + "/webhooks", params=params)


class _RemotePreviews(PreviewsAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(self, app_ref: str) -> builtins.list[Preview]:
        return await self._t.adapted(_PREVIEWS, "GET", _app_path(app_ref) + "/previews")


class _RemoteSecrets(SecretsAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def rotate_key(self) -> KeyRotation:
        return await self._t.model(KeyRotation, "POST", "/v1/secrets/rotate-key")


class _RemoteAudit(AuditAPI):
    def __init__(self, t: _Transport) -> None:
        self._t = t

    async def list(
        self,
        *,
        actor: str | None = None,
        project: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[AuditEntry]:
        params = _params(
            actor=actor,
            project=project,
            action=action,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
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

    ``host`` is ``unix:///path/mist.sock`` or ``https://host:port`` (plain ``http://`` only to a loopback
    address). ``setup``/``login``/``refresh``/``invites.accept`` keep the new tokens; ``logout`` drops them.

    With ``refresh_token``, an access token that expires mid-use is renewed by itself (``POST /v1/refresh``)
    and the call retried once; ``on_session`` then gets the new ``Session`` so the caller can save the pair.

    TLS: ``certificate`` (a PEM) pins the daemon's certificate: exactly that one is trusted, whatever the
    host name, and another one fails with ``CertificateMismatch``. Without it, ``verify`` goes to httpx:
    ``True`` (system CAs), a CA bundle path, or an ``ssl.SSLContext``.
    """

    def __init__(
        self,
        host: str,
        token: str | None = None,
        *,
        refresh_token: str | None = None,
        on_session: OnSession | None = None,
        certificate: str | None = None,
        timeout: float = 30,
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        self._t = _Transport(
            host,
            token,
            timeout,
            verify,
            refresh_token=refresh_token,
            on_session=on_session,
            certificate=certificate,
        )
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
        self.members = _RemoteMembers(self._t)
        self.invites = _RemoteInvites(self._t)
        self.sessions = _RemoteSessions(self._t)
        self.tokens = _RemoteTokens(self._t)
        self.secrets = _RemoteSecrets(self._t)
        self.git = _RemoteGit(self._t)
        self.webhooks = _RemoteWebhooks(self._t)
        self.previews = _RemotePreviews(self._t)
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

    @property
    def refresh_token(self) -> str | None:
        return self._t.refresh_token

    @refresh_token.setter
    def refresh_token(self, value: str | None) -> None:
        self._t.refresh_token = value

    def with_token(self, token: str | None, refresh_token: str | None = None) -> RemoteMist:
        """Use ``token`` (and ``refresh_token``) for every later call (returns ``self`` for chaining)."""
        self._t.token = token
        self._t.refresh_token = refresh_token
        return self

    async def close(self) -> None:
        await self._t.close()
