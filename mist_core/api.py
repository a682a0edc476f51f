"""The Mist API: the one interface behind everything a user can do.

``LocalMist`` (the core in-process) and ``RemoteMist`` (the same calls over HTTP to a daemon) both implement
it, with the same signatures and the same pydantic results. The TUI and the CLI only ever hold a ``MistAPI``.

Apps are named ``"project/app"`` everywhere (``app_ref``). Streams are async iterators that end when the
caller stops iterating (or, for a deployment log, when the deployment reaches a final state).
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from datetime import datetime

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


class AuthAPI(ABC):
    @abstractmethod
    async def status(self) -> SetupStatus:
        """Whether the instance still needs its first (owner) account. Needs no token."""

    @abstractmethod
    async def setup(self, username: str, password: str) -> Session:
        """Create the first owner account and log it in. Refused once any account exists."""

    @abstractmethod
    async def login(self, username: str, password: str) -> Session:
        """Exchange a username and password for a session token."""

    @abstractmethod
    async def whoami(self) -> User: ...

    @abstractmethod
    async def logout(self) -> None: ...


class ProjectsAPI(ABC):
    @abstractmethod
    async def create(self, name: str, description: str = "", tags: list[str] | None = None) -> Project: ...

    @abstractmethod
    async def list(self, *, query: str | None = None, limit: int = 100, offset: int = 0) -> Page[Project]: ...

    @abstractmethod
    async def get(self, name: str) -> Project: ...

    @abstractmethod
    async def update(self, name: str, changes: ProjectChanges) -> Project:
        """Rename, re-describe or re-tag a project."""

    @abstractmethod
    async def delete(self, name: str) -> None:
        """Refused (Conflict) while the project still has apps."""


class AppsAPI(ABC):
    @abstractmethod
    async def create(self, app_ref: str, spec: AppSpec) -> App: ...

    @abstractmethod
    async def list(
        self, *, project: str | None = None, query: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[App]: ...

    @abstractmethod
    async def get(self, app_ref: str) -> App: ...

    @abstractmethod
    async def update(self, app_ref: str, changes: AppChanges) -> App:
        """Change the spec; takes effect at the next deployment."""

    @abstractmethod
    async def delete(self, app_ref: str) -> None:
        """Stop and remove the app's containers and images, then forget it."""

    @abstractmethod
    async def deploy(self, app_ref: str, *, ref: str | None = None) -> Deployment:
        """Queue a deployment of ``ref`` (default: the app's branch). A queued deployment of the same app
        is replaced by this one."""

    @abstractmethod
    async def rollback(self, app_ref: str, *, to: int | None = None) -> Deployment:
        """Queue a deployment of an earlier deployment's image and config snapshot (default: the one before
        the live one), through the same checks and switch. Refused when that image was pruned."""

    @abstractmethod
    async def start(self, app_ref: str) -> App: ...

    @abstractmethod
    async def stop(self, app_ref: str) -> App: ...

    @abstractmethod
    async def restart(self, app_ref: str) -> App: ...

    @abstractmethod
    def logs(
        self,
        app_ref: str,
        *,
        follow: bool = False,
        tail: int | None = 200,
        since: datetime | None = None,
    ) -> AsyncIterator[LogLine]:
        """The live container's output."""


class EnvAPI(ABC):
    @abstractmethod
    async def list(self, app_ref: str, *, reveal: bool = False) -> builtins.list[EnvVar]:
        """Secret values are ``None`` unless ``reveal``."""

    @abstractmethod
    async def set(
        self, app_ref: str, key: str, value: str, *, secret: bool = False, build: bool = False
    ) -> EnvVar: ...

    @abstractmethod
    async def unset(self, app_ref: str, key: str) -> None: ...

    @abstractmethod
    async def import_dotenv(
        self, app_ref: str, text: str, *, secret: bool = False, build: bool = False
    ) -> builtins.list[EnvVar]:
        """Set every ``KEY=VALUE`` of a ``.env`` text; the whole file is checked before anything is set."""

    @abstractmethod
    async def export_dotenv(self, app_ref: str, *, reveal: bool = False) -> str:
        """A ``.env`` text; secrets are masked unless ``reveal``."""


class DeploymentsAPI(ABC):
    @abstractmethod
    async def list(self, app_ref: str, *, limit: int = 50, offset: int = 0) -> Page[Deployment]: ...

    @abstractmethod
    async def get(self, deployment_id: int) -> Deployment: ...

    @abstractmethod
    def log(self, deployment_id: int, *, follow: bool = False, after: int = 0) -> AsyncIterator[LogLine]:
        """The stored log from line ``after`` on; with ``follow``, then the live lines until it is final."""

    @abstractmethod
    async def cancel(self, deployment_id: int) -> Deployment: ...


class ContainersAPI(ABC):
    @abstractmethod
    async def list(self, *, all: bool = False) -> builtins.list[ContainerInfo]:
        """Mist's containers (``mist ps``); stopped ones too with ``all``."""


class MetricsAPI(ABC):
    @abstractmethod
    async def current(self) -> MetricsSample: ...

    @abstractmethod
    async def history(self, *, seconds: int = 300) -> builtins.list[MetricsSample]: ...

    @abstractmethod
    def stream(self) -> AsyncIterator[MetricsSample]:
        """One sample per sampler tick, for as long as the caller iterates."""


class EventsAPI(ABC):
    @abstractmethod
    def stream(self) -> AsyncIterator[Event]: ...


class UsersAPI(ABC):
    @abstractmethod
    async def list(self) -> builtins.list[User]: ...


class AuditAPI(ABC):
    @abstractmethod
    async def list(
        self,
        *,
        actor: str | None = None,
        project: str | None = None,
        action: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[AuditEntry]:
        """Newest first. ``action`` matches a prefix (``"app."``)."""


class SettingsAPI(ABC):
    @abstractmethod
    async def list(self) -> builtins.list[Setting]: ...

    @abstractmethod
    async def get(self, key: str) -> Setting: ...

    @abstractmethod
    async def set(self, key: str, value: str) -> Setting:
        """Refused with a message naming the allowed values when the value does not fit the setting."""


class DomainsAPI(ABC):
    @abstractmethod
    async def list(self, app_ref: str) -> builtins.list[Domain]: ...

    @abstractmethod
    async def add(self, app_ref: str, name: str, settings: DomainSettings | None = None) -> Domain:
        """Route ``name`` to the app. Refused (Conflict) when another app uses it, naming that app. With
        HTTPS on, a certificate is requested for it."""

    @abstractmethod
    async def update(self, app_ref: str, name: str, settings: DomainSettings) -> Domain: ...

    @abstractmethod
    async def remove(self, app_ref: str, name: str) -> None: ...


class CertificatesAPI(ABC):
    @abstractmethod
    async def list(self, app_ref: str | None = None) -> builtins.list[Certificate]:
        """Every certificate, or those of one app's domains, with their status (never a key)."""

    @abstractmethod
    async def renew(self, domain: str) -> Certificate:
        """Ask the ACME server for a new certificate now (the scheduler does it in the background)."""

    @abstractmethod
    async def upload(self, domain: str, cert_pem: str, key_pem: str) -> Certificate:
        """Use a certificate of your own: its chain, key, names and dates are checked, and each problem is
        explained. Mist then stops asking the ACME server for this domain."""


class ProxyAPI(ABC):
    @abstractmethod
    async def status(self) -> ProxyStatus: ...

    @abstractmethod
    async def reload(self) -> ProxyStatus:
        """Compute the route table from the store again and hand it to the proxy."""

    @abstractmethod
    async def install(self) -> ProxyStatus:
        """Start (or replace) the proxy container Mist supervises (Traefik), then load the routes."""


class MistAPI(ABC):
    """The whole interface. ``async with`` closes it."""

    auth: AuthAPI
    projects: ProjectsAPI
    apps: AppsAPI
    env: EnvAPI
    deployments: DeploymentsAPI
    containers: ContainersAPI
    metrics: MetricsAPI
    events: EventsAPI
    users: UsersAPI
    audit: AuditAPI
    settings: SettingsAPI
    domains: DomainsAPI
    certificates: CertificatesAPI
    proxy: ProxyAPI

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> MistAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
