"""``LocalMist``: the Mist API in-process, as one caller's view of a ``Core``.

A view holds the caller's token and checks it on every call (``caller``), then the permission table
(``allow``); each part (``projects``, ``apps``...) is a module of this package that gets the view handed in.
``open_embedded`` opens a core in this process and gives a view of it that closes the core with it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import auth, validate
from ..api import MistAPI
from ..auth import permissions
from ..auth.access import looks_like_jwt
from ..calls import Caller, audit
from ..config import CoreConfig
from ..core import Core
from ..errors import Conflict, NotFound, PermissionDenied, SetupRequired, TokenExpired, Unauthenticated
from ..models import App, Session, User
from ..store import now, parse_ts, ts
from ..store import records as rec
from .accounts import (
    USER_COLUMNS,
    Auth,
    Invites,
    Members,
    Secrets,
    Sessions,
    Tokens,
    Users,
    needs_setup,
    user_from_row,
)
from .apps import Apps
from .audit import Audit
from .backups import Backups
from .certificates import Certificates
from .containers import Containers
from .databases import Databases
from .deployments import Deployments
from .domains import Domains
from .env import Env
from .events import Events
from .git import Git, Previews, Webhooks
from .metrics import Metrics
from .projects import Projects
from .proxy import Proxy
from .settings import Settings


async def open_embedded(
    data_dir: Path | str,
    token: str | None = None,
    *,
    refresh_token: str | None = None,
    on_session: Callable[[Session], None] | None = None,
    **config: Any,
) -> MistAPI:
    """The core in this process, with its workers running; ``close()`` shuts it down."""
    core = await Core.open(CoreConfig(data_dir=Path(data_dir), **config))
    if core.config.run_workers:
        await core.start_background()
    return LocalMist(core, token, owns_core=True, refresh_token=refresh_token, on_session=on_session)


class LocalMist(MistAPI):
    """The Mist API for the caller whose ``token`` it holds, on ``core``; ``owns_core``: closing it closes the
    core (``open_embedded``)."""

    def __init__(
        self,
        core: Core,
        token: str | None,
        *,
        owns_core: bool = False,
        source: str = "local",
        user_agent: str | None = None,
        refresh_token: str | None = None,
        on_session: Callable[[Session], None] | None = None,
        one_request: bool = False,
    ) -> None:
        self.core = core
        self.token = token
        self._one_request = one_request
        self._caller: Caller | None = None  # the caller of this one request, once checked
        self.source = source
        self.user_agent = user_agent
        self.refresh_token = refresh_token
        self.on_session = on_session
        self._owns_core = owns_core
        self.auth = Auth(self)
        self.projects = Projects(self)
        self.apps = Apps(self)
        self.env = Env(self)
        self.databases = Databases(self)
        self.deployments = Deployments(self)
        self.containers = Containers(self)
        self.metrics = Metrics(self)
        self.events = Events(self)
        self.users = Users(self)
        self.members = Members(self)
        self.invites = Invites(self)
        self.sessions = Sessions(self)
        self.tokens = Tokens(self)
        self.secrets = Secrets(self)
        self.git = Git(self)
        self.webhooks = Webhooks(self)
        self.previews = Previews(self)
        self.audit = Audit(self)
        self.settings = Settings(self)
        self.domains = Domains(self)
        self.certificates = Certificates(self)
        self.proxy = Proxy(self)
        self.backups = Backups(self)

    async def close(self) -> None:
        if self._owns_core:
            await self.core.close()

    def signed_in(self, session: Session) -> None:
        """A login, a refresh or an accepted invitation gave this view a new session."""
        self.token, self.refresh_token = session.token, session.refresh_token
        self._caller = None
        if self.on_session is not None:
            self.on_session(session)

    def signed_out(self) -> None:
        self.token, self.refresh_token = None, None
        self._caller = None

    async def actor(self) -> User:
        """The user behind the token."""
        return (await self.caller()).user

    async def caller(self) -> Caller:
        """Who is calling: the token is checked against its session (or API token) row on every call, so a
        revoked session or a changed role counts at once; an expired access token is renewed when a
        refresh token is at hand. A view of one request checks once: the same caller for the whole request."""
        if self._caller is not None:
            return self._caller
        if not self.token:
            if await needs_setup(self.core.store):
                raise SetupRequired("no account exists yet: create the first one with `mist setup`")
            raise Unauthenticated("not logged in: run `mist login`")
        try:
            caller = await self._resolve(self.token)
        except TokenExpired:
            if not self.refresh_token:
                raise
            await self.auth.refresh(self.refresh_token)
            caller = await self._resolve(self.token or "")
        if self._one_request:
            self._caller = caller
        return caller

    async def _resolve(self, token: str) -> Caller:
        store = self.core.store
        if token.startswith("mist_t_"):
            row = await store.one(
                f"SELECT {USER_COLUMNS}, t.id AS token_id, t.scope, t.project_id, t.expires_at AS token_expires, "
                "t.revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
                (auth.token_hash(token),),
            )
            if row is None or row["revoked_at"]:
                raise Unauthenticated("this API token is not valid or was revoked")
            if row["token_expires"] and (parse_ts(row["token_expires"]) or now()) <= now():
                raise Unauthenticated("this API token has expired: create a new one with `mist token create`")
            await self._touch_token(int(row["token_id"]))
            return Caller(
                user=user_from_row(row),
                source=self.source,
                token_id=int(row["token_id"]),
                scope=row["scope"],
                token_project_id=row["project_id"],
                enrollment_required=await self._enrollment_required(row),
            )
        if not looks_like_jwt(token):
            raise Unauthenticated("the token is not valid: log in again with `mist login`")
        claims = self.core.access.verify(token)
        row = await store.one(
            f"SELECT {USER_COLUMNS}, s.revoked_at, s.expires_at AS session_expires FROM sessions s "
            "JOIN users u ON u.id = s.user_id WHERE s.id = ? AND s.user_id = ?",
            (claims.session_id, claims.user_id),
        )
        if row is None or row["revoked_at"] or (parse_ts(row["session_expires"]) or now()) <= now():
            raise Unauthenticated("your session has ended or was revoked: log in again with `mist login`")
        return Caller(
            user=user_from_row(row),
            source=self.source,
            session_id=claims.session_id,
            enrollment_required=await self._enrollment_required(row),
        )

    async def _enrollment_required(self, row: Any) -> bool:
        return not row["totp_enabled"] and await self.core.setting("require_2fa") == "true"

    async def _touch_token(self, token_id: int) -> None:
        """Note when an API token was last used, at most once a minute per token (a write per call would
        cost more than the call)."""
        moment = asyncio.get_running_loop().time()
        if moment - self.core.token_last_used.get(token_id, -1e9) < 60:
            return
        self.core.token_last_used[token_id] = moment
        async with self.core.store.write() as w:
            await w.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (ts(), token_id))

    async def allow(self, operation: str, *, project: str | None = None) -> Caller:
        """Check that the caller may call ``operation`` (on ``project``, for project operations) by the
        permission table, and return them. A project the caller is not a member of is ``NotFound``."""
        rule = permissions.rule(operation)
        caller = await self.caller()
        if caller.enrollment_required and not operation.startswith("auth."):
            raise PermissionDenied(
                "this instance requires two-factor authentication: enable it first with `mist 2fa enable`"
            )
        if caller.token_project_id is not None and not rule.bound and rule.on != "public":
            bound_to = await self.bound_project_name(caller)
            raise PermissionDenied(
                f"this API token is bound to project {bound_to!r}: {operation} is not an operation on that "
                "project; use a token that is not bound to a project (or log in) for it"
            )
        if caller.scope and not permissions.token_allows(caller.scope, operation):
            raise PermissionDenied(
                f"this API token's scope ({caller.scope}) does not allow {operation}: use a token with a "
                "wider scope"
            )
        if rule.on == "instance" and not permissions.at_least(
            caller.role, rule.role, permissions.INSTANCE_RANK
        ):
            raise PermissionDenied(f"{operation} needs the instance role {rule.role}; you are {caller.role}")
        if rule.on == "project" and project is None:
            # Something of no project (a certificate no app uses): only those who administer every project.
            if caller.token_project_id is not None or not permissions.at_least(
                caller.role, "admin", permissions.INSTANCE_RANK
            ):
                raise PermissionDenied(f"{operation} on something of no project needs an instance admin")
        elif rule.on == "project" and project is not None:
            role = await self.project_role(caller, project)
            if not permissions.at_least(role, rule.role, permissions.PROJECT_RANK):
                raise PermissionDenied(
                    f"{operation} needs the role {rule.role} in project {project!r}; you are {role}"
                )
        return caller

    async def bound_project_name(self, caller: Caller) -> str:
        """The name of the project the caller's API token is bound to."""
        row = await self.core.store.one("SELECT name FROM projects WHERE id = ?", (caller.token_project_id,))
        return str(row["name"]) if row else f"#{caller.token_project_id}"

    async def project_role(self, caller: Caller, project: str) -> str:
        """The caller's role in ``project``; ``NotFound`` when it does not exist or they cannot see it."""
        row = await self.core.store.one(
            "SELECT p.id, m.role FROM projects p LEFT JOIN project_members m "
            "ON m.project_id = p.id AND m.user_id = ? WHERE p.name = ?",
            (caller.user.id, project),
        )
        role = None
        if row is not None and caller.token_project_id in (None, row["id"]):
            role = permissions.project_role(caller.role, row["role"])
        if role is None:
            raise NotFound(f"there is no project {project!r}", field="project")
        return role

    async def visible_projects(self, caller: Caller) -> set[int] | None:
        """The ids of the projects the caller sees, or None for all of them (owners and admins)."""
        if caller.token_project_id is not None:
            if permissions.at_least(caller.role, "admin", permissions.INSTANCE_RANK):
                return {caller.token_project_id}
            ids = await self._member_of(caller)
            return ids & {caller.token_project_id}
        if permissions.at_least(caller.role, "admin", permissions.INSTANCE_RANK):
            return None
        return await self._member_of(caller)

    async def _member_of(self, caller: Caller) -> set[int]:
        rows = await self.core.store.all(
            "SELECT project_id FROM project_members WHERE user_id = ?", (caller.user.id,)
        )
        return {int(r["project_id"]) for r in rows}

    async def visible_project_names(self, caller: Caller) -> set[str] | None:
        ids = await self.visible_projects(caller)
        if ids is None:
            return None
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = await self.core.store.all(f"SELECT name FROM projects WHERE id IN ({marks})", tuple(ids))
        return {r["name"] for r in rows}

    # ------------------------------------------------------------------------------------------ shared by parts

    async def app(self, app_ref: str) -> App:
        """The app ``PROJECT/NAME`` (no permission check: call ``allow_app`` first)."""
        project, name = validate.app_ref(app_ref)
        row = await self.core.store.one(rec.APP_SELECT + " WHERE p.name = ? AND a.name = ?", (project, name))
        if row is None:
            raise NotFound(f"there is no app {app_ref!r}", field="app")
        return rec.app(row)

    async def live_container(self, app_ref: str) -> tuple[App, str]:
        """The app and the name of its live container (no permission check), or Conflict when it has none."""
        app = await self.app(app_ref)
        if not app.container_name:
            raise Conflict(
                f"{app_ref} has no live deployment yet: deploy it first with `mist deploy {app_ref}`"
            )
        return app, app.container_name

    async def allow_app(self, operation: str, app_ref: str) -> Caller:
        """Check ``operation`` on the app's project; a project the caller cannot see hides the app too."""
        project, _ = validate.app_ref(app_ref)
        try:
            return await self.allow(operation, project=project)
        except NotFound:
            raise NotFound(f"there is no app {app_ref!r}", field="app") from None

    async def may_reveal_secrets(self, caller: Caller, app_ref: str, action: str = "env.reveal") -> None:
        """Refuse to show secret values to anyone but developers and admins of the app's project (and their
        admin-scoped tokens); for them, leave an ``action`` audit entry: who saw which app's secrets, when."""
        project, name = validate.app_ref(app_ref)
        role = await self.project_role(caller, project)
        allowed = permissions.at_least(role, permissions.ENV_REVEAL_ROLE, permissions.PROJECT_RANK)
        if not allowed or caller.scope not in (None, "admin"):
            raise PermissionDenied(
                f"secret values are shown only to developers and admins of project {project!r}"
                + (" (and to admin-scoped API tokens, not read or deploy ones)" if caller.scope else "")
            )
        async with self.core.store.write() as w:
            await audit(w, caller, action, project=project, app=name)
