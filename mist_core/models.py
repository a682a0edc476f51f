"""The typed values that cross the Mist API: what ``LocalMist`` returns, what the daemon serialises, and
what ``RemoteMist`` parses back. One set of pydantic models for all three keeps them from drifting.

Timestamps are UTC ``datetime`` values; sizes are bytes; CPU is in cores (``1.5`` = one and a half).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    # defer_build: a model's validator is built when it is first used, not when this module is imported.
    # A ``mist`` command uses two or three of these models; building all of them doubled its start-up.
    model_config = ConfigDict(extra="forbid", frozen=False, defer_build=True)


# ---------------------------------------------------------------------------------------------- accounts


Role = Literal["owner", "admin", "developer", "viewer"]
ProjectRole = Literal["admin", "developer", "viewer"]
TokenScope = Literal["read", "deploy", "admin"]


class User(Model):
    id: int
    username: str
    role: Role = "owner"  # the instance role; project roles are in ``Member``
    email: str | None = None
    full_name: str = ""
    totp_enabled: bool = False
    created_at: datetime
    last_login_at: datetime | None = None


class UserChanges(Model):
    """A profile update: only the fields given change (``""`` clears the email)."""

    email: str | None = None
    full_name: str | None = None


class Session(Model):
    """What login returns. ``token`` is the short-lived access token (a JWT) sent with every call;
    ``refresh_token`` (opaque, one use) gets the next pair from ``auth.refresh`` before the session ends.

    ``totp_enrollment_required``: the instance requires two-factor authentication and this user has none yet;
    until they enable it, only their own account's calls are allowed."""

    token: str
    refresh_token: str | None = None
    user: User
    expires_at: datetime
    refresh_expires_at: datetime | None = None
    totp_enrollment_required: bool = False


class SessionInfo(Model):
    """A login session as its owner and admins see it (never a token)."""

    id: int
    username: str
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime
    source: str | None = None  # the address the session was opened from ("unix" for the local socket)
    user_agent: str | None = None
    current: bool = False  # the session of the caller


class ApiToken(Model):
    """An API token for scripts and CI (its secret is shown once, at creation)."""

    id: int
    name: str
    username: str
    scope: TokenScope
    project: str | None = None  # when set, the token reaches only this project
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiTokenCreated(Model):
    token: str  # shown this once; Mist keeps only its hash
    info: ApiToken


class Member(Model):
    username: str
    role: ProjectRole
    added_at: datetime | None = None


class Invite(Model):
    """A one-time invitation, bound to the username or email it names and the role the inviter chose."""

    id: int
    username: str | None = None
    email: str | None = None
    role: Role
    project: str | None = None
    project_role: ProjectRole | None = None
    created_by: str | None = None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None
    revoked_at: datetime | None = None


class InviteCreated(Model):
    token: str  # shown this once; hand it to the invited person
    invite: Invite


class TotpSetup(Model):
    """The secret of a two-factor setup in progress: put it in an authenticator app (``uri`` as a QR code),
    then confirm with a code from it (``auth.totp_enable``)."""

    secret: str  # base32
    uri: str  # otpauth://totp/...


class RecoveryCodes(Model):
    codes: list[str]  # each works once in place of a TOTP code; shown this once


class KeyRotation(Model):
    key_id: str  # the id of the new master key
    resealed: int  # how many stored secrets were re-encrypted under it


class SetupStatus(Model):
    needs_setup: bool
    version: str


# ---------------------------------------------------------------------------------------------- projects


class Project(Model):
    id: int
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    owner: str
    members: list[str] = Field(default_factory=list)
    app_count: int = 0
    created_at: datetime
    updated_at: datetime


class ProjectChanges(Model):
    """A partial update: only the fields given change."""

    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None


# ---------------------------------------------------------------------------------------------- apps


class HealthCheck(Model):
    """How a new container proves it is ready before traffic moves to it.

    ``http``: GET ``path`` on the container port must answer 2xx/3xx. ``tcp``: the port accepts a connection.
    ``docker``: the image's own HEALTHCHECK must report healthy. ``none``: running is enough.
    """

    type: Literal["http", "tcp", "docker", "none"] = "none"
    path: str = "/"
    interval: float = 2.0
    timeout: float = 3.0
    retries: int = 10
    start_period: float = 0.0


class Volume(Model):
    name: str
    path: str


class AppSpec(Model):
    """Everything that says how an app is built and run. Validated by ``mist_core.validate``."""

    git_url: str
    branch: str = "main"
    dockerfile: str | None = None  # None: the repo's Dockerfile at the context root, or a generated one
    context: str = "."
    port: int | None = None  # the port the app listens on inside the container
    publish: list[str] = Field(default_factory=list)  # "127.0.0.1:18080:8080", "18080:8080", "8080"
    start_command: str | None = (
        None  # overrides the image's CMD (split with shlex, never run by a host shell)
    )
    build_command: str | None = None  # generated Dockerfiles only
    install_command: str | None = None  # generated Dockerfiles only
    memory: int | None = None  # bytes
    cpus: float | None = None
    restart: str = "unless-stopped"
    health: HealthCheck = Field(default_factory=HealthCheck)
    volumes: list[Volume] = Field(default_factory=list)

    @property
    def stop_then_start_reason(self) -> str | None:
        """Why a new container cannot start beside the old one (so deployments stop the old one first), or None
        when deployments switch without downtime."""
        if self.publish:
            return "it publishes host ports, which two containers cannot share"
        if self.volumes:
            return "it mounts volumes, which one container must own alone"
        return None


class AppChanges(Model):
    """A partial update of an app's spec (``mist app set``). Fields left ``None`` keep their value;
    ``clear`` names optional fields to reset to their default."""

    git_url: str | None = None
    branch: str | None = None
    dockerfile: str | None = None
    context: str | None = None
    port: int | None = None
    publish: list[str] | None = None
    start_command: str | None = None
    build_command: str | None = None
    install_command: str | None = None
    memory: int | str | None = None
    cpus: float | None = None
    restart: str | None = None
    health: HealthCheck | None = None
    volumes: list[Volume] | None = None
    clear: list[str] = Field(default_factory=list)


# ``restarting``: Mist is restarting the live container (set for the length of the restart, then ``live`` or
# ``crashed`` after what the container does).
AppStatus = Literal["new", "deploying", "live", "failed", "stopped", "crashed", "restarting"]


class App(Model):
    id: int
    project: str
    name: str
    spec: AppSpec
    status: AppStatus = "new"
    live_deployment_id: int | None = None
    live_commit: str | None = None
    live_since: datetime | None = None
    container_name: str | None = None
    image: str | None = None
    # The Docker volume the live deployment mounts for each volume of the spec, by its name there: what an
    # operator looks for with `docker volume inspect`.
    docker_volumes: dict[str, str] = Field(default_factory=dict)
    # Why the app is down when Mist could not bring its live container back (``status`` is then ``crashed``).
    status_reason: str | None = None
    # The newest deployment, live or not: a live app whose latest deployment failed or is still running
    # shows it beside its status.
    latest_deployment_id: int | None = None
    latest_deployment_state: DeploymentState | None = None
    # How many times Docker restarted the live container after it exited (its restart policy).
    restart_count: int = 0
    # The app's domains, by name (what the proxy routes to it).
    domains: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.name}"


T = TypeVar("T")


class Page(Model, Generic[T]):
    """One page of a list. ``next_offset`` is None on the last page."""

    items: list[T]
    total: int
    next_offset: int | None = None


# ---------------------------------------------------------------------------------------------- databases

DatabaseEngineName = Literal["postgres", "mysql", "mariadb", "redis", "mongo"]
RedisPersistence = Literal["rdb", "aof", "none"]
# ``running``: up and its health check passes; ``starting``: up, not yet healthy; ``unhealthy``: up, failing
# its health check; ``stopped``: stopped (by the user, or it exited); ``missing``: its container is gone.
DatabaseStatus = Literal["running", "starting", "unhealthy", "stopped", "missing"]


class DatabaseSpec(Model):
    """How a new database runs. Validated by ``mist_core.validate``."""

    engine: DatabaseEngineName
    version: str | None = None  # None: the engine's default
    persistence: RedisPersistence | None = None  # Redis only (default rdb)
    memory: int | str | None = None  # bytes, or "512m"
    cpus: float | None = None
    restart: str = "unless-stopped"
    # A host port the database is published on, on every interface (off by default).
    public_port: int | None = None


class Database(Model):
    """A managed database. Its password is never here: ``databases.url`` reveals the connection URL."""

    id: int
    project: str
    name: str
    engine: DatabaseEngineName
    version: str
    image: str
    status: DatabaseStatus
    host: str  # its name on the project's network
    port: int
    public_port: int | None = None
    user: str
    database: str
    persistence: RedisPersistence | None = None
    memory: int | None = None
    cpus: float | None = None
    restart: str = "unless-stopped"
    container_name: str
    volume: str  # the Docker volume of its data
    linked_apps: list[str] = Field(default_factory=list)  # "project/app"
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.name}"


class DatabaseLink(Model):
    """An app linked to a database: the variables set on it (stored as secrets), and the deployment queued
    to apply them (None when the app was never deployed)."""

    database: str  # "project/name"
    app: str  # "project/app"
    prefix: str
    variables: list[str]
    deployment_id: int | None = None


# Managing a database after it exists: its users, its container's settings.

DatabaseUserKind = Literal["app", "superuser", "user"]


class DatabaseUser(Model):
    """A user of a database's server: ``app`` is the database's own (its linked apps log in with it)."""

    name: str
    kind: DatabaseUserKind


class DatabaseUserCreated(Model):
    """A user just made: its password, shown this once (Mist keeps no copy)."""

    database: str  # "project/name"
    user: str
    password: str = Field(repr=False)
    generated: bool  # made by Mist rather than given


class DatabaseChanges(Model):
    """What ``databases.update`` changes; a field left out stays as it is, ``public_port`` given as null (None)
    unpublishes the database."""

    memory: int | str | None = None  # bytes, or "512m"
    cpus: float | None = None
    restart: str | None = None
    public_port: int | None = None


# ---------------------------------------------------------------------------------------------- env


class EnvVar(Model):
    key: str
    value: str | None  # None when masked (secret and not revealed)
    secret: bool = False
    build: bool = False  # available at build time (secrets through BuildKit --secret) rather than runtime
    updated_at: datetime


MASK = "••••••"


# ---------------------------------------------------------------------------------------------- deployments


class DeploymentState(StrEnum):
    queued = "queued"
    fetching = "fetching"
    building = "building"
    starting = "starting"
    checking = "checking"
    switching = "switching"
    live = "live"
    failed = "failed"
    cancelled = "cancelled"
    superseded = "superseded"
    rolled_back = "rolled_back"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATES


PIPELINE_STEPS: tuple[DeploymentState, ...] = (
    DeploymentState.fetching,
    DeploymentState.building,
    DeploymentState.starting,
    DeploymentState.checking,
    DeploymentState.switching,
)
ACTIVE_STATES = frozenset(PIPELINE_STEPS)
FINAL_STATES = frozenset(
    {
        DeploymentState.live,
        DeploymentState.failed,
        DeploymentState.cancelled,
        DeploymentState.superseded,
        DeploymentState.rolled_back,
    }
)


class StepTiming(Model):
    step: DeploymentState
    started_at: datetime
    finished_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Deployment(Model):
    id: int
    app_id: int
    project: str
    app: str
    state: DeploymentState
    ref: str  # what was asked for: branch, tag or sha
    commit_sha: str | None = None
    commit_message: str | None = None
    commit_author: str | None = None
    image: str | None = None
    container_name: str | None = None
    error: str | None = None
    source: Literal["git", "rollback"] = "git"
    rollback_of: int | None = None  # for a rollback: the deployment whose image and config it runs again
    triggered_by: str | None = None
    steps: list[StepTiming] = Field(default_factory=list)
    # The previous live container, while it is being retired after this deployment went live (drain,
    # SIGTERM, grace period, removal): the deployment is live already, the old container not gone yet.
    retiring: str | None = None
    created_at: datetime
    finished_at: datetime | None = None

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()


class LogLine(Model):
    """One line of a deployment log or a container log.

    ``seq`` orders a deployment log (and lets a follower resume); ``source`` names the container or the
    pipeline step; ``stream`` is stdout/stderr for containers and ``system`` for Mist's own lines.
    """

    seq: int = 0
    ts: datetime
    source: str = ""
    stream: Literal["stdout", "stderr", "system"] = "stdout"
    text: str


# ---------------------------------------------------------------------------------------------- runtime


class ContainerInfo(Model):
    id: str
    name: str
    project: str | None
    app: str | None
    deployment_id: int | None
    image: str
    state: str  # Docker's: created, running, restarting, exited, dead, paused
    status: str  # Docker's human text: "Up 3 minutes"
    ports: list[str] = Field(default_factory=list)
    created_at: datetime
    database: str | None = None  # a managed database's container: the database's name in its project


class ContainerEnvVar(Model):
    key: str
    value: str | None  # None for a secret variable: its value never leaves the core
    secret: bool = False


class ContainerMount(Model):
    type: str  # Docker's: volume, bind, tmpfs
    name: str | None = None  # a volume's name
    source: str | None = None  # a bind mount's host path
    destination: str
    read_only: bool = False


class ContainerDescription(Model):
    """The live container of an app as Docker runs it (``mist describe``)."""

    app: str  # project/app
    deployment_id: int | None
    id: str
    name: str
    image: str
    image_id: str
    command: list[str]  # entrypoint and command, as the container runs them
    working_dir: str | None = None
    user: str | None = None
    env: list[ContainerEnvVar] = Field(default_factory=list)
    mounts: list[ContainerMount] = Field(default_factory=list)
    ports: list[str] = Field(default_factory=list)  # "127.0.0.1:8080->80/tcp", or "80/tcp" when not published
    networks: list[str] = Field(default_factory=list)
    state: str  # Docker's: created, running, restarting, exited, dead, paused
    health: str | None = None  # starting, healthy, unhealthy; None without a health check
    restart_policy: str | None = None
    restart_count: int = 0
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ContainerStats(Model):
    name: str
    project: str | None = None
    app: str | None = None
    cpu_percent: float  # of one core: 150.0 = one and a half cores busy
    memory_bytes: int
    memory_limit: int | None = None
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0


class SystemSample(Model):
    ts: datetime
    cpu_percent: float  # of the whole machine, 0..100
    cpu_count: int
    memory_used: int
    memory_total: int
    disk_used: int
    disk_total: int
    net_rx_bytes: int
    net_tx_bytes: int
    load: tuple[float, float, float]


class MetricsSample(Model):
    """One tick of the sampler: the server and every Mist container."""

    system: SystemSample
    containers: list[ContainerStats] = Field(default_factory=list)


EventKind = Literal["deployment", "app", "project", "container", "env"]


class Event(Model):
    """Something changed: the dashboard redraws the row named by ``project``/``app``.

    kinds: ``deployment`` (state changed), ``app`` (created, updated, deleted, status), ``project``,
    ``container`` (Docker reported start/die/restart...).
    """

    kind: EventKind
    action: str
    project: str | None = None
    app: str | None = None
    deployment_id: int | None = None
    state: str | None = None
    # ``app`` / ``restarts``: Docker restarted the live container this many times in all.
    restart_count: int | None = None
    ts: datetime


# ---------------------------------------------------------------------------------------------- admin


class AuditEntry(Model):
    id: int
    ts: datetime
    actor: str | None  # username; None for the system itself
    actor_role: str | None = None  # the role the actor acted with ("owner", "developer", "token:deploy"...)
    source: str | None = None  # where the call came from: an address, "unix" or "local"
    action: str  # "project.create", "app.update", "env.set", "deployment.cancel"...
    project: str | None = None
    app: str | None = None
    detail: dict[str, object] = Field(default_factory=dict)  # never a secret value


class Setting(Model):
    key: str
    value: str
    default: str
    description: str


# ---------------------------------------------------------------------------------------------- domains


WwwRedirect = Literal["", "to-apex", "to-www"]


class Domain(Model):
    """A domain of an app, with how the proxy serves it (see ``mist_core.domains.DomainOptions``)."""

    id: int
    app_id: int
    project: str
    app: str
    name: str
    https: bool = True
    hsts_max_age: int = 0
    www_redirect: WwwRedirect = ""
    path_prefix: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    security_headers: bool = True
    created_at: datetime

    @property
    def redirect_from(self) -> str | None:
        """The other name a www redirect answers to (and sends here)."""
        if self.www_redirect == "to-apex":
            return "www." + self.name
        if self.www_redirect == "to-www":
            return self.name[4:]
        return None


class DomainSettings(Model):
    """The options given when adding or changing a domain."""

    https: bool = True
    hsts_max_age: int = 0
    www_redirect: WwwRedirect = ""
    path_prefix: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    security_headers: bool = True


class ProxyStatus(Model):
    backend: Literal["traefik", "caddy"]
    reachable: bool
    detail: str  # what the proxy said, or what is wrong and what to do
    routes: int  # apps routed
    domains: int
    http_address: str
    https_address: str


CertificateStatus = Literal["pending", "issued", "renewing", "failed"]
CertificateSource = Literal["acme", "uploaded"]


class Certificate(Model):
    """A domain's certificate and where its issuance stands (never the private key). ``cert_pem`` is the
    leaf, ``chain_pem`` the intermediates; both are empty while the first issuance is pending or failed."""

    id: int
    domain: str
    status: CertificateStatus
    source: CertificateSource
    cert_pem: str = ""
    chain_pem: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    serial: str = ""
    last_error: str = ""
    next_attempt_at: datetime | None = None
    attempts: int = 0
    updated_at: datetime

    @property
    def fullchain_pem(self) -> str:
        return self.cert_pem + self.chain_pem

    @property
    def has_certificate(self) -> bool:
        return bool(self.cert_pem)


# ---------------------------------------------------------------------------------------------- git providers

ProviderKind = Literal["github", "gitlab", "gitea"]


class GitProvider(Model):
    """A git host Mist talks to: a GitHub App, or a GitLab / Gitea (Forgejo) account by token."""

    id: int
    name: str
    kind: ProviderKind
    url: str  # the web address (https://github.com, https://gitlab.example.com)
    api_url: str
    app_id: int | None = None  # GitHub App
    app_slug: str | None = None
    installation_id: int | None = None
    webhook_url: str | None = None  # where the host sends deliveries for every repo of this provider
    created_at: datetime


class GitProviderSpec(Model):
    """What ``git.add_provider`` needs: ``token`` for GitLab and Gitea; ``app_id``, ``private_key`` (PEM) and
    ``webhook_secret`` (and ``installation_id``, or the first installation is used) for a GitHub App."""

    name: str
    kind: ProviderKind
    url: str | None = None  # default: https://github.com / required for gitlab and gitea
    api_url: str | None = None  # default: derived from url
    token: str | None = Field(default=None, repr=False)
    app_id: int | None = None
    private_key: str | None = Field(default=None, repr=False)
    webhook_secret: str | None = Field(default=None, repr=False)
    installation_id: int | None = None


class ManifestStart(Model):
    """The first step of creating a GitHub App from Mist's manifest: open ``url`` in a browser signed in to
    GitHub; GitHub sends the browser back to Mist, which stores the new App as provider ``name``."""

    name: str
    url: str
    state: str


class RepoInfo(Model):
    full_name: str  # owner/name (GitLab: the full path)
    clone_url: str
    ssh_url: str | None = None
    default_branch: str = "main"
    private: bool = False


class BranchInfo(Model):
    name: str
    sha: str


class PreviewSettings(Model):
    """Preview environments per pull request: off unless ``enabled``. A preview runs the pull request's code,
    so it gets the app's secret variables only with ``share_secrets``, and never for a pull request from a
    fork; the app's other variables and the ``env`` overrides it always gets."""

    enabled: bool = False
    limit: int = 3  # live previews at once; further pull requests wait
    domain_pattern: str = "pr-{number}.{app_domain}"
    env: dict[str, str] = Field(default_factory=dict)  # overrides of the app's variables in previews
    share_secrets: bool = False  # previews of pull requests from the repository itself get the app's secrets


class AppSource(Model):
    """How Mist reaches an app's repository and hears about its pushes. Secrets are never shown here except
    ``webhook_secret`` with ``reveal`` (it has to be pasted into the git host)."""

    auth: Literal["none", "token", "deploy_key", "provider"] = "none"
    provider: str | None = None
    repo: str | None = None  # owner/name at the provider
    deploy_key: str | None = None  # the public key to add to the repository's deploy keys
    deploy_key_fingerprint: str | None = None
    known_hosts: str | None = None  # the ssh host keys pinned on first use
    webhook_kind: ProviderKind | None = None  # how deliveries to webhook_url are signed
    webhook_url: str | None = None
    webhook_secret: str | None = None  # only with reveal
    deploy_on_push: bool = True
    deploy_tags: bool = False  # also deploy pushed tags
    previews: PreviewSettings = Field(default_factory=PreviewSettings)


class SourceChanges(Model):
    """A partial update of an app's source; fields left ``None`` keep their value."""

    token: str | None = Field(default=None, repr=False)  # https access token ("" removes it)
    provider: str | None = None  # "" unlinks
    repo: str | None = None
    webhook_kind: ProviderKind | None = None
    deploy_on_push: bool | None = None
    deploy_tags: bool | None = None
    previews: PreviewSettings | None = None
    forget_known_hosts: bool = False  # trust the ssh host key again on the next fetch
    new_webhook_secret: bool = False


class WebhookDelivery(Model):
    """One delivery from a git host and what Mist did with it."""

    id: int
    app: str | None = None
    provider: str | None = None
    delivery_id: str | None = None
    event: str
    received_at: datetime
    outcome: Literal["deployed", "ignored", "refused", "preview"]
    reason: str
    ref: str | None = None
    sha: str | None = None
    pr_number: int | None = None
    deployment_id: int | None = None


class Preview(Model):
    app: str  # the preview app, "project/app-pr-12"
    parent: str
    number: int
    head_ref: str | None = None
    head_sha: str | None = None
    url: str | None = None
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------------------------------------- backups

BackupState = Literal["running", "success", "failed"]
# ``running``: a verification is under way (the last result is replaced when it ends).
VerifyState = Literal["never", "running", "passed", "failed"]
RestoreState = Literal["running", "success", "failed"]
BackupSubjectKind = Literal["volume", "database"]
DestinationKind = Literal["local", "s3"]


class Backup(Model):
    """One backup of a subject (a project's volume or managed database) to a destination. ``size`` is what is stored
    (compressed, encrypted), ``raw_size`` the dump's own size; ``checksum`` the sha256 of the stored bytes.
    ``verified`` says whether a restore of it has been checked; the last restore's outcome is beside it."""

    id: int
    project: str
    kind: BackupSubjectKind
    name: str  # the volume's or the database's name in the project
    destination: str | None  # None once the destination was removed
    state: BackupState
    started_at: datetime
    finished_at: datetime | None = None
    size: int | None = None
    raw_size: int | None = None
    checksum: str | None = None
    encrypted: bool = False
    exit_status: int | None = None
    error: str | None = None
    schedule_id: int | None = None
    verified: VerifyState = "never"
    verified_at: datetime | None = None
    verify_detail: str | None = None
    restore_state: RestoreState | None = None
    restore_target: str | None = None
    restored_at: datetime | None = None
    restore_detail: str | None = None


class BackupDestination(Model):
    """Where backups go. S3 credentials are kept sealed and never shown: ``has_credentials`` says they are
    set."""

    name: str
    kind: DestinationKind
    path: str | None = None  # local
    endpoint: str | None = None  # s3: None for AWS itself
    bucket: str | None = None
    region: str | None = None
    prefix: str = ""
    encrypt: bool = False
    has_credentials: bool = False
    created_at: datetime


class BackupDestinationSpec(Model):
    """What ``backups.add_destination`` needs: ``path`` (absolute) for a local directory; ``bucket``,
    ``access_key`` and ``secret_key`` (and ``endpoint`` for anything but AWS, ``region``, ``prefix``) for S3.
    With ``encrypt``, backups are encrypted with the instance's backup key."""

    name: str
    kind: DestinationKind
    path: str | None = None
    endpoint: str | None = None
    bucket: str | None = None
    region: str | None = None
    prefix: str = ""
    access_key: str | None = Field(default=None, repr=False)
    secret_key: str | None = Field(default=None, repr=False)
    encrypt: bool = False


class BackupRetention(Model):
    """Which backups a schedule keeps (the union of every rule given; none given: all of them): the
    ``last`` N, those of the last ``days`` days, and the newest of each of the last ``daily`` days,
    ``weekly`` weeks and ``monthly`` months (in the schedule's timezone)."""

    last: int | None = None
    days: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None


class BackupScheduleSpec(Model):
    """A schedule: back up volume (or, with ``kind="database"``, database) ``name`` to ``destination`` at each time of the cron expression ``cron``
    (in ``timezone``), verify each new backup when ``verify``, then apply ``retention``."""

    name: str
    kind: BackupSubjectKind = "volume"
    destination: str
    cron: str
    timezone: str = "UTC"
    verify: bool = True
    retention: BackupRetention = Field(default_factory=BackupRetention)


class BackupSchedule(Model):
    id: int
    project: str
    kind: BackupSubjectKind
    name: str
    destination: str
    cron: str
    timezone: str
    verify: bool
    retention: BackupRetention
    next_run_at: datetime
    last_run_at: datetime | None = None
    last_backup_id: int | None = None
    created_at: datetime
