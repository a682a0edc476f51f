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

from .execs import ExecChannel
from .models import (
    ApiToken,
    ApiTokenCreated,
    App,
    AppChanges,
    AppSource,
    AppSpec,
    AuditEntry,
    Backup,
    BackupDestination,
    BackupDestinationSpec,
    BackupSchedule,
    BackupScheduleSpec,
    BranchInfo,
    Certificate,
    ContainerDescription,
    ContainerInfo,
    Database,
    DatabaseChanges,
    DatabaseLink,
    DatabaseSpec,
    DatabaseUser,
    DatabaseUserCreated,
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


class AuthAPI(ABC):
    @abstractmethod
    async def status(self) -> SetupStatus:
        """Whether the instance still needs its first (owner) account. Needs no token."""

    @abstractmethod
    async def setup(self, username: str, password: str) -> Session:
        """Create the first owner account and log it in. Refused once any account exists."""

    @abstractmethod
    async def login(self, username: str, password: str, *, totp: str | None = None) -> Session:
        """Exchange a username and password (and, when the account has two-factor authentication, a TOTP or
        recovery code: ``TotpRequired`` says so) for an access token and a refresh token. Repeated failures
        lock the account and the source out for a while (``TooManyAttempts``)."""

    @abstractmethod
    async def refresh(self, refresh_token: str) -> Session:
        """A new access token and a new refresh token for the session; the one given is used up. Presenting a
        used refresh token again revokes the whole session (someone copied it)."""

    @abstractmethod
    async def whoami(self) -> User:
        """The caller's own account (an API token may ask too)."""

    @abstractmethod
    async def logout(self) -> None:
        """End this session (the access and the refresh token stop working)."""

    @abstractmethod
    async def change_password(self, current: str, new: str, *, revoke_tokens: bool = False) -> None:
        """Change the caller's password; every other session of theirs is revoked, and with
        ``revoke_tokens`` every API token of theirs too (the calling one included)."""

    @abstractmethod
    async def totp_setup(self) -> TotpSetup:
        """Start enabling two-factor authentication: a new secret, not active until ``totp_enable``."""

    @abstractmethod
    async def totp_enable(self, code: str) -> RecoveryCodes:
        """Confirm the secret of ``totp_setup`` with a current code; returns the recovery codes (shown once)."""

    @abstractmethod
    async def totp_disable(self, password: str) -> None:
        """Turn two-factor authentication off for the caller (their password confirms it)."""


class ProjectsAPI(ABC):
    @abstractmethod
    async def create(self, name: str, description: str = "", tags: list[str] | None = None) -> Project:
        """A new project. Refused (Conflict) when the name is taken."""

    @abstractmethod
    async def list(self, *, query: str | None = None, limit: int = 100, offset: int = 0) -> Page[Project]:
        """The projects the caller sees, by name; ``query`` matches part of the name."""

    @abstractmethod
    async def get(self, name: str) -> Project:
        """One project (``NotFound`` for someone who cannot see it, as for one that does not exist)."""

    @abstractmethod
    async def update(self, name: str, changes: ProjectChanges) -> Project:
        """Rename, re-describe or re-tag a project."""

    @abstractmethod
    async def delete(self, name: str) -> None:
        """Refused (Conflict) while the project still has apps. Removes the project's Docker network and keeps
        its volumes."""


class AppsAPI(ABC):
    @abstractmethod
    async def create(self, app_ref: str, spec: AppSpec) -> App:
        """A new app in an existing project, not deployed yet. Refused (Conflict) when the name is taken."""

    @abstractmethod
    async def list(
        self, *, project: str | None = None, query: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[App]:
        """The apps the caller sees, by project and name; ``project`` keeps one project's, ``query`` matches
        part of ``project/app``."""

    @abstractmethod
    async def get(self, app_ref: str) -> App:
        """One app with its spec and status; ``docker_volumes`` names the Docker volume the live deployment
        mounts for each of the spec's volumes."""

    @abstractmethod
    async def update(self, app_ref: str, changes: AppChanges) -> App:
        """Change the spec (only the fields given; ``clear`` resets fields to their defaults); takes effect at
        the next deployment."""

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
        the live one), through the same checks and switch; its ``source`` is ``"rollback"``. Refused
        (Conflict) when that image was pruned."""

    @abstractmethod
    async def source(self, app_ref: str, *, reveal: bool = False) -> AppSource:
        """How Mist reaches the app's repository: credentials (never shown), the deploy key's public half,
        pinned host keys, the webhook URL (and its secret with ``reveal``), push and preview settings."""

    @abstractmethod
    async def set_source(self, app_ref: str, changes: SourceChanges) -> AppSource:
        """Change how the app's repository is reached: only the fields given change, and ``previews`` is
        replaced whole. ``previews.share_secrets`` (off by default) gives previews of pull requests from the
        repository itself the app's secret variables; a fork's pull request never gets them."""

    @abstractmethod
    async def deploy_key(self, app_ref: str, *, regenerate: bool = False) -> AppSource:
        """Make the app fetch over ssh with its own ed25519 deploy key (made on first call, or again with
        ``regenerate``); the result shows the public key to add to the repository."""

    @abstractmethod
    async def start(self, app_ref: str) -> App:
        """Start the live deployment's container."""

    @abstractmethod
    async def stop(self, app_ref: str) -> App:
        """Stop the live deployment's container (it stays, ready to start)."""

    @abstractmethod
    async def restart(self, app_ref: str) -> App:
        """Restart the live deployment's container."""

    @abstractmethod
    def logs(
        self,
        app_ref: str,
        *,
        follow: bool = False,
        tail: int | None = 200,
        since: datetime | None = None,
    ) -> AsyncIterator[LogLine]:
        """The live container's output: the last ``tail`` lines (``None``: all of them) since ``since``, then
        with ``follow`` the new lines as they come."""


class DatabasesAPI(ABC):
    """Managed databases, named ``"project/name"`` (``db_ref``): PostgreSQL, MySQL, MariaDB, Redis, MongoDB."""

    @abstractmethod
    async def create(self, db_ref: str, spec: DatabaseSpec) -> Database:
        """A new database in an existing project: its image (pulled when missing), a container on the project's
        network, a volume of its own and generated credentials (kept sealed). Answers once its health check
        passes (or after the ``database_health_wait`` setting, still ``starting``). ``public_port`` publishes
        it on every interface of the server: off by default, and only ever with a password. Refused
        (Conflict) when the project has a database or an app of that name."""

    @abstractmethod
    async def list(self, *, project: str | None = None, limit: int = 100, offset: int = 0) -> Page[Database]:
        """The databases the caller sees, by project and name, with their state."""

    @abstractmethod
    async def get(self, db_ref: str) -> Database:
        """One database: engine, version, state, where apps reach it (never its password)."""

    @abstractmethod
    async def delete(self, db_ref: str, *, keep_volume: bool = False) -> None:
        """Remove the database's container and, unless ``keep_volume``, its volume with the data. Refused
        (Conflict) while an app is linked to it, naming the app."""

    @abstractmethod
    async def start(self, db_ref: str) -> Database:
        """Start the database (its container is made again from its volume when it is gone) and wait for its
        health check."""

    @abstractmethod
    async def stop(self, db_ref: str) -> Database:
        """Stop the database (SIGTERM, then at least 30 seconds to write its data out); the data stays."""

    @abstractmethod
    async def restart(self, db_ref: str) -> Database:
        """Restart the database and wait for its health check."""

    @abstractmethod
    def logs(
        self,
        db_ref: str,
        *,
        follow: bool = False,
        tail: int | None = 200,
        since: datetime | None = None,
    ) -> AsyncIterator[LogLine]:
        """The database server's output, as ``apps.logs`` gives an app's."""

    @abstractmethod
    async def url(self, db_ref: str) -> str:
        """The connection URL apps on the project's network use, password included: shown only to developers
        and admins of the project (and admin-scoped tokens), and recorded in the audit log."""

    @abstractmethod
    async def link(self, db_ref: str, app: str, *, prefix: str | None = None) -> DatabaseLink:
        """Give the project's app ``app`` the database's connection as secret variables: ``<PREFIX>_URL``,
        ``_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD`` and ``_NAME`` (prefix ``DATABASE`` for SQL engines,
        ``REDIS``, ``MONGO``), then deploy the app again (an app never deployed gets them at its first
        deployment). Refused (Conflict) when the app has one of those variables already."""

    @abstractmethod
    async def unlink(self, db_ref: str, app: str) -> None:
        """Remove the variables ``link`` set from the app, and deploy it again."""

    # Managing a database after it exists: a client session in it, its users, its settings and its version.

    @abstractmethod
    async def shell(
        self,
        db_ref: str,
        args: builtins.list[str] | None = None,
        *,
        tty: bool = False,
        height: int | None = None,
        width: int | None = None,
    ) -> ExecChannel:
        """The engine's own client (psql, mariadb, mysql, redis-cli, mongosh) in the database's container,
        logged in as the database's user with the password from the container's environment; ``args`` go to
        the client after its own. A session like ``containers.exec``'s, in the audit log with its arguments."""

    @abstractmethod
    async def users(self, db_ref: str) -> builtins.list[DatabaseUser]:
        """The users of the database's server (PostgreSQL, MySQL, MariaDB); refused for Redis and MongoDB."""

    @abstractmethod
    async def create_user(
        self, db_ref: str, user: str, *, password: str | None = None
    ) -> DatabaseUserCreated:
        """A new user with the rights on the database's rows its apps' user has; its password is ``password``
        (12 to 128 printable ASCII characters) or generated, and given back this once."""

    @abstractmethod
    async def drop_user(self, db_ref: str, user: str) -> None:
        """Remove a user made by ``create_user`` (or by hand); what it owns goes to the database's user. The
        database's own user and the engine's are refused."""

    @abstractmethod
    async def update(self, db_ref: str, changes: DatabaseChanges) -> Database:
        """Change the memory and CPU limits, restart policy or public port: the container is made again with
        its volume (the data kept) and must pass its health check, else the previous one comes back and the
        error says why."""

    @abstractmethod
    async def upgrade(self, db_ref: str, version: str) -> Database:
        """Run a minor release of the same major version (``15`` to ``15.6``): the image is pulled unless the
        engine has it, the container made again with the data and health-gated; a new version that never gets
        healthy is rolled back to the previous image. A major upgrade is refused with the steps to take."""


class EnvAPI(ABC):
    @abstractmethod
    async def list(self, app_ref: str, *, reveal: bool = False) -> builtins.list[EnvVar]:
        """Secret values are ``None`` unless ``reveal``."""

    @abstractmethod
    async def set(
        self, app_ref: str, key: str, value: str, *, secret: bool = False, build: bool = False
    ) -> EnvVar:
        """Set a variable; ``secret`` stores it encrypted and masks it, ``build`` makes it available to the
        build (secrets through BuildKit's ``--secret``) instead of the running container."""

    @abstractmethod
    async def unset(self, app_ref: str, key: str) -> None:
        """Remove a variable; takes effect at the next deployment."""

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
    async def list(self, app_ref: str, *, limit: int = 50, offset: int = 0) -> Page[Deployment]:
        """The app's deployments, newest first."""

    @abstractmethod
    async def get(self, deployment_id: int) -> Deployment:
        """One deployment: its state, its steps with their timings, the commit, the error."""

    @abstractmethod
    def log(self, deployment_id: int, *, follow: bool = False, after: int = 0) -> AsyncIterator[LogLine]:
        """The stored log from line ``after`` on; with ``follow``, then the live lines until it is final.
        Resume a broken follow with ``after`` set to the last ``seq`` seen."""

    @abstractmethod
    async def cancel(self, deployment_id: int) -> Deployment:
        """Cancel a deployment that is not final yet (Conflict once it is)."""


class ContainersAPI(ABC):
    @abstractmethod
    async def list(self, *, all: bool = False) -> builtins.list[ContainerInfo]:
        """Mist's containers (``mist ps``); stopped ones too with ``all``."""

    @abstractmethod
    async def describe(self, app_ref: str) -> ContainerDescription:
        """The app's live container as Docker runs it: image, command, environment (secret values masked),
        mounts, ports, health, restart count, when it started."""

    @abstractmethod
    async def exec(
        self,
        app_ref: str,
        command: builtins.list[str] | None = None,
        *,
        tty: bool = False,
        height: int | None = None,
        width: int | None = None,
    ) -> ExecChannel:
        """Run ``command`` (an argument list, default ``/bin/sh``) in the app's live container, with a TTY of
        ``height`` x ``width`` when ``tty``. Over HTTP the request body and the response both stream (see
        "Exec sessions" above). Each session is in the audit log with its command, never its output."""


class MetricsAPI(ABC):
    @abstractmethod
    async def current(self) -> MetricsSample:
        """The latest sample: the server and every Mist container."""

    @abstractmethod
    async def history(self, *, seconds: int = 300) -> builtins.list[MetricsSample]:
        """The samples of the last ``seconds``, oldest first."""

    @abstractmethod
    def stream(self) -> AsyncIterator[MetricsSample]:
        """One sample per sampler tick, for as long as the caller iterates."""


class EventsAPI(ABC):
    @abstractmethod
    def stream(self) -> AsyncIterator[Event]:
        """What changes as it happens (deployments, apps, projects, containers, environment), for as long as
        the caller iterates."""


class UsersAPI(ABC):
    @abstractmethod
    async def list(self) -> builtins.list[User]:
        """Every account for instance owners and admins; only the caller for anyone else."""

    @abstractmethod
    async def get(self, username: str) -> User:
        """One account: one's own, or anyone's for an admin."""

    @abstractmethod
    async def create(
        self, username: str, password: str, *, role: Role = "developer", email: str | None = None
    ) -> User:
        """An admin creates an account directly (no one can grant a role above their own)."""

    @abstractmethod
    async def update(self, username: str, changes: UserChanges) -> User:
        """Change a profile (email, full name; ``""`` clears the email): one's own, or anyone's for an
        admin."""

    @abstractmethod
    async def set_role(self, username: str, role: Role) -> User:
        """Change an instance role. The last owner cannot be demoted (Conflict); only owners make owners."""

    @abstractmethod
    async def delete(self, username: str, *, reassign_to: str | None = None) -> None:
        """Delete an account; the projects it owns pass to ``reassign_to`` (default: the caller). The last
        owner cannot be deleted."""


class MembersAPI(ABC):
    @abstractmethod
    async def list(self, project: str) -> builtins.list[Member]:
        """The project's members with their roles."""

    @abstractmethod
    async def add(self, project: str, username: str, role: ProjectRole) -> Member:
        """Add a member to a project, or change their role there."""

    @abstractmethod
    async def remove(self, project: str, username: str) -> None:
        """Take a member out of a project."""


class InvitesAPI(ABC):
    @abstractmethod
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
        """A one-time invitation for one username or email, with the role the inviter chooses (never above
        their own). With ``project``, the new account also joins it with ``project_role``. The invitation's
        token is in the answer this once."""

    @abstractmethod
    async def list(self) -> builtins.list[Invite]:
        """Every invitation, newest first (never its token)."""

    @abstractmethod
    async def revoke(self, invite_id: int) -> None:
        """Withdraw an invitation; its token stops working."""

    @abstractmethod
    async def accept(self, token: str, username: str, password: str, *, email: str | None = None) -> Session:
        """Create the invited account and log it in. Needs no login. The username (or email) must be the one
        the invitation names."""


class SessionsAPI(ABC):
    @abstractmethod
    async def list(self, *, username: str | None = None) -> builtins.list[SessionInfo]:
        """The caller's open sessions; an admin may name another user, or ``"*"`` for everyone's."""

    @abstractmethod
    async def revoke(self, session_id: int) -> None:
        """End a session (one's own, or anyone's for an admin)."""


class TokensAPI(ABC):
    @abstractmethod
    async def create(
        self,
        name: str,
        *,
        scope: TokenScope = "read",
        project: str | None = None,
        expires_days: int | None = 90,
    ) -> ApiTokenCreated:
        """An API token acting as the caller, limited to ``scope`` (``read``: look only; ``deploy``: also
        deploy, roll back, start, stop, restart, cancel; ``admin``: everything the caller may do) and, with
        ``project``, to one project. ``expires_days=None`` never expires. The token is in the answer this
        once; Mist keeps only its hash."""

    @abstractmethod
    async def list(self, *, all: bool = False) -> builtins.list[ApiToken]:
        """The caller's tokens; everyone's with ``all`` (admins)."""

    @abstractmethod
    async def revoke(self, token_id: int) -> None:
        """Revoke an API token (one's own, or anyone's for an admin); it stops working at once."""


class GitAPI(ABC):
    @abstractmethod
    async def providers(self) -> builtins.list[GitProvider]:
        """The registered git providers (never a credential)."""

    @abstractmethod
    async def add_provider(self, spec: GitProviderSpec) -> GitProvider:
        """Register a GitLab or Gitea account by token, or a GitHub App by id and key; the credentials are
        checked against the host before anything is stored."""

    @abstractmethod
    async def github_manifest(
        self, name: str, *, url: str = "https://github.com", organization: str | None = None
    ) -> ManifestStart:
        """Start creating a GitHub App from Mist's manifest: open the answer's ``url`` in a browser signed in
        to GitHub. Refused (Conflict) without the ``public_url`` setting."""

    @abstractmethod
    async def remove_provider(self, name: str) -> None:
        """Refused while apps use it, naming them."""

    @abstractmethod
    async def repos(self, provider: str) -> builtins.list[RepoInfo]:
        """The repositories the provider's credentials reach."""

    @abstractmethod
    async def branches(self, provider: str, repo: str) -> builtins.list[BranchInfo]:
        """The branches of one of those repositories (``owner/name``), with their head commits."""


class WebhooksAPI(ABC):
    @abstractmethod
    async def list(self, app_ref: str, *, limit: int = 50) -> builtins.list[WebhookDelivery]:
        """The app's latest deliveries, newest first, refused ones included with the reason."""


class PreviewsAPI(ABC):
    @abstractmethod
    async def list(self, app_ref: str) -> builtins.list[Preview]:
        """The app's previews of pull requests."""


class SecretsAPI(ABC):
    @abstractmethod
    async def rotate_key(self) -> KeyRotation:
        """Re-encrypt every stored secret under a new master key, while Mist keeps running. Owners only."""


class AuditAPI(ABC):
    @abstractmethod
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
        """Newest first. ``action`` matches a prefix (``"app."``); ``since``/``until`` bound the time.
        Instance admins see every entry; a project admin, the entries of their projects."""


class SettingsAPI(ABC):
    @abstractmethod
    async def list(self) -> builtins.list[Setting]:
        """Every setting with its value, default and description."""

    @abstractmethod
    async def get(self, key: str) -> Setting:
        """One setting."""

    @abstractmethod
    async def set(self, key: str, value: str) -> Setting:
        """Refused with a message naming the allowed values when the value does not fit the setting."""


class DomainsAPI(ABC):
    @abstractmethod
    async def list(self, app_ref: str) -> builtins.list[Domain]:
        """The domains routed to the app."""

    @abstractmethod
    async def add(self, app_ref: str, name: str, settings: DomainSettings | None = None) -> Domain:
        """Route ``name`` to the app. Refused (Conflict) when another app uses it, naming that app. With
        HTTPS on, a certificate is requested for it."""

    @abstractmethod
    async def update(self, app_ref: str, name: str, settings: DomainSettings) -> Domain:
        """Replace a domain's settings whole: fields left out take their defaults."""

    @abstractmethod
    async def remove(self, app_ref: str, name: str) -> None:
        """Stop routing the domain; its certificate is forgotten."""


class CertificatesAPI(ABC):
    @abstractmethod
    async def list(self, app_ref: str | None = None) -> builtins.list[Certificate]:
        """Every certificate, or those of one app's domains, with their status (never a key)."""

    @abstractmethod
    async def renew(self, domain: str) -> Certificate:
        """Ask for a new certificate now: it becomes ``pending`` and the renewal scheduler picks it up at once
        (it also renews in the background by itself)."""

    @abstractmethod
    async def upload(self, domain: str, cert_pem: str, key_pem: str) -> Certificate:
        """Use a certificate of your own: its chain, key, names and dates are checked, and each problem is
        explained. Mist then stops asking the ACME server for this domain."""


class ProxyAPI(ABC):
    @abstractmethod
    async def status(self) -> ProxyStatus:
        """Which proxy serves the routes and whether it is reachable (checked: Traefik's container runs and
        its entry points accept connections; Caddy's admin API answers). Host paths in ``detail`` are shown
        to instance admins only."""

    @abstractmethod
    async def reload(self) -> ProxyStatus:
        """Compute the route table from the store again and hand it to the proxy."""

    @abstractmethod
    async def install(self) -> ProxyStatus:
        """Start (or replace) the proxy container Mist supervises (Traefik), then load the routes. Refused
        (Conflict) with the Caddy backend; ``NotFound`` when the Traefik image is not on the server."""


class BackupsAPI(ABC):
    """Backups of a project's volumes and managed databases: made, verified and restored in the background
    (the backup's record says how each one goes); destinations (an instance's) and schedules (a project's)."""

    @abstractmethod
    async def list(
        self,
        project: str,
        *,
        kind: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Backup]:
        """The project's backups, newest first; ``name`` (and ``kind``) keep one subject's."""

    @abstractmethod
    async def get(self, backup_id: int) -> Backup:
        """One backup, with how its run, its last verification and its last restore went."""

    @abstractmethod
    async def run(self, project: str, name: str, destination: str, kind: str = "volume") -> Backup:
        """Start backing up volume ``name`` of the project (``kind="database"``: its database ``name``, dumped
        by the engine's own tool) to ``destination``; the backup is ``running`` until it is ``success`` or
        ``failed`` (a dump that fails, is empty or is not a whole dump is ``failed``)."""

    @abstractmethod
    async def verify(self, backup_id: int) -> Backup:
        """Start restoring the backup into a throw-away volume and checking that it holds what the backup
        recorded (file list and checksums), or, for a database, into a throw-away database of the same engine
        and version, checking the row count of every table (Redis: its keys) against the counts taken at
        backup time; ``verified`` is ``running``, then ``passed`` or ``failed``."""

    @abstractmethod
    async def restore(self, backup_id: int, target: str | None = None, confirm: str | None = None) -> Backup:
        """Start restoring the backup: into a new volume ``target`` of the project, or over the volume it was
        taken of (``confirm`` must name that volume; the containers using it are stopped, then started again).
        A database's backup goes into a new database ``target`` (made with the same engine and version, and
        removed again if the restore fails), or over the database itself (``confirm`` names it; its linked
        apps are stopped meanwhile, started again and told in their deployment's log). The backup's
        ``restore_state`` says how it ends."""

    @abstractmethod
    async def delete(self, backup_id: int) -> None:
        """Delete the backup's data at its destination and its record."""

    @abstractmethod
    async def schedules(self, project: str) -> builtins.list[BackupSchedule]:
        """The project's backup schedules."""

    @abstractmethod
    async def schedule(self, project: str, spec: BackupScheduleSpec) -> BackupSchedule:
        """Back up a volume or a database on a cron schedule (one schedule per subject and destination: the
        same pair again replaces it)."""

    @abstractmethod
    async def unschedule(self, project: str, schedule_id: int) -> None:
        """Remove a schedule (the backups it made stay)."""

    @abstractmethod
    async def destinations(self) -> builtins.list[BackupDestination]:
        """Where backups can go (credentials never shown)."""

    @abstractmethod
    async def add_destination(self, spec: BackupDestinationSpec) -> BackupDestination:
        """A new destination, checked first (the directory is writable, the bucket answers)."""

    @abstractmethod
    async def remove_destination(self, name: str) -> None:
        """Forget a destination; refused while backups or schedules use it."""


class MistAPI(ABC):
    """The whole interface. ``async with`` closes it."""

    auth: AuthAPI
    projects: ProjectsAPI
    apps: AppsAPI
    env: EnvAPI
    databases: DatabasesAPI
    deployments: DeploymentsAPI
    containers: ContainersAPI
    metrics: MetricsAPI
    events: EventsAPI
    users: UsersAPI
    members: MembersAPI
    invites: InvitesAPI
    sessions: SessionsAPI
    tokens: TokensAPI
    secrets: SecretsAPI
    git: GitAPI
    webhooks: WebhooksAPI
    previews: PreviewsAPI
    audit: AuditAPI
    settings: SettingsAPI
    domains: DomainsAPI
    certificates: CertificatesAPI
    proxy: ProxyAPI
    backups: BackupsAPI

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> MistAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
