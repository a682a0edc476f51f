"""Every operation of the Mist API, called over HTTP by every kind of caller, against an allow/deny table
written here by hand from the rules of issue 5 (not read from ``mist_core.auth.permissions``, so a wrong row
there is caught here).

Callers: each instance role; members of the project with each project role; an instance developer who is not
a member; an instance viewer who is a member as developer (an instance viewer is at most a viewer anywhere);
API tokens of the project admin with each scope; an admin-scoped token bound to another project; and tokens
bound to the project itself held by powerful users (an instance admin's admin- and read-scoped tokens, a
project developer's deploy-scoped one), which reach the project's operations, the lists (filtered to the
project) and their own identity, and nothing of the instance.

Allowed means a 2xx, or a 4xx other than 401/403/404 where the arguments are inert on purpose (rolling back an
app that never went live: 409). Denied means 403 or 404 problem+json, and the state the call would have changed
is the same afterwards. Someone who cannot see the project gets 404, never a hint that it exists.
"""

from __future__ import annotations

import json
import re
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx
import jwt
import pytest
from fastapi.routing import APIRoute
from gitutil import init_repo
from images import redis_image
from standins.forge import Forge, serve_forge

from mist_core.api import MistAPI
from mist_core.auth.permissions import PERMISSIONS
from mist_core.execs import START, frame
from mist_core.operations import OPERATIONS
from mist_core.server.app import build_router

from .conftest import Daemon, describe, is_problem, self_signed, strong_password, totp_code

pytestmark = pytest.mark.docker

# ---------------------------------------------------------------------------------------------- the table

COLUMNS = (
    "owner",  # instance owner
    "admin",  # instance admin, member of nothing
    "dev",  # instance developer, not a member of the project
    "viewer",  # instance viewer, member of the project as developer
    "p_admin",  # instance developer, project admin
    "p_dev",  # instance developer, project developer
    "p_viewer",  # instance developer, project viewer
    "t_read",  # API tokens of p_admin, by scope
    "t_deploy",
    "t_admin",
    "t_other",  # admin-scoped token of p_admin bound to another project (where p_admin is admin too)
    "b_admin",  # admin-scoped token of the instance admin, bound to the project
    "b_read",  # read-scoped token of the instance admin, bound to the project
    "b_dev",  # deploy-scoped token of p_dev, bound to the project
)
# Who must get 404 rather than 403 for the project's things: they cannot see it at all.
OUTSIDERS = ("dev", "t_other")

# Written by hand, in column order: instance roles | members | tokens | token bound elsewhere | tokens bound to
# the project. "Y" allowed, "." denied.
EVERYONE = "YYYY YYY YYY Y YYY"  # public, one's own identity, and the lists (shown scoped to the caller)
SIGNED_IN = "YYYY YYY YYY . ..."  # about the instance: any login or token, but no token bound to a project
OWN_ACCOUNT = "YYYY YYY ..Y . ..."  # any user on their own account; tokens only with the admin scope
INSTANCE_ADMIN = "YY.. ... ... . ..."
INSTANCE_OWNER = "Y... ... ... . ..."
CREATE_PROJECT = "YYY. YYY ..Y . ..."  # instance developers and up
VIEW = "YY.Y YYY YYY . YYY"
DEVELOP = "YY.. YY. ..Y . Y.."
DEPLOY = "YY.. YY. .YY . Y.Y"  # a deploy-scoped token adds these to reading
ADMINISTER = "YY.. Y.. ..Y . Y.."
# Who holds a token bound to the project.
BOUND = ("b_admin", "b_read", "b_dev")

Stream = Literal["finite", "endless"] | None


@dataclass
class Call:
    """One HTTP request of a cell, plus how to see whether it changed anything."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    content: bytes | None = None  # a body that is not JSON (the frames of an exec session)
    token: str | None = None  # instead of the caller's usual credential (a fresh one of the same kind)
    stream: Stream = None
    state: Callable[[], Any] | None = None  # read as the owner before and after; equal when denied
    cleanup: Callable[[], None] | None = None


@dataclass(frozen=True)
class Row:
    expect: str
    build: Callable[[World, Principal], Call]
    project: bool = False  # the operation names the project: outsiders get 404

    def allowed(self, column: str) -> bool:
        marks = self.expect.replace(" ", "")
        assert len(marks) == len(COLUMNS), f"row {self.expect!r} needs {len(COLUMNS)} marks"
        return marks[COLUMNS.index(column)] == "Y"


ROWS: dict[str, Row] = {}


def row(operation: str, expect: str, *, project: bool = False) -> Callable[[Any], Any]:
    """Register the request builder of ``operation`` (``"part.method"``, or ``"part.method+variant"``)."""

    def register(build: Callable[[World, Principal], Call]) -> Callable[[World, Principal], Call]:
        assert operation not in ROWS, operation
        ROWS[operation] = Row(expect, build, project)
        return build

    return register


# ---------------------------------------------------------------------------------------------- the world


@dataclass
class Principal:
    key: str
    username: str
    token: str
    scope: str | None = None  # an API token's scope; None for a login session
    project: str | None = None  # an API token's project binding


def _hex() -> str:
    return uuid.uuid4().hex[:8]


class World:
    """The project P, its apps and members, another project Q, and a credential for every column."""

    forge: Forge
    provider: str
    provider_repo: str
    db: str

    def __init__(self, d: Daemon, repos: Path) -> None:
        self.d = d
        s = _hex()
        self.s = s
        self.p = f"mx-p-{s}"
        self.q = f"mx-q-{s}"
        self.passwords: dict[str, str] = {d.owner["user"]["username"]: d.owner_password}
        self.sessions: dict[str, str] = {d.owner["user"]["username"]: d.owner_token}
        self.repo = init_repo(repos / f"mx-{s}", {"README.md": "nothing to build here\n"})

        self.owner("POST", "/projects", json={"name": self.p})
        self.owner("POST", "/projects", json={"name": self.q})
        self.app = self.new_app("web")
        self.idle = self.new_app("idle")  # never deployed: its status never moves by itself
        self.owner(
            "POST",
            f"/projects/{self.p}/apps/{self.app}/env",
            json={"key": "MATRIX_SECRET", "value": f"s3cret-{s}", "secret": True},
        )
        deployment = self.owner("POST", f"/projects/{self.p}/apps/{self.app}/deploy", json={})
        self.deployment = int(deployment["id"])
        self._wait_final(self.deployment)

        names = {
            "admin": "admin",
            "dev": "developer",
            "viewer": "viewer",
            "p_admin": "developer",
            "p_dev": "developer",
            "p_viewer": "developer",
            "bystander": "developer",
        }
        self.user: dict[str, str] = {"owner": d.owner["user"]["username"]}
        for key, role in names.items():
            self.user[key] = self.new_user(role, prefix=f"mx-{key.replace('_', '-')}")
        for key, role in (
            ("p_admin", "admin"),
            ("p_dev", "developer"),
            ("p_viewer", "viewer"),
            ("viewer", "developer"),
        ):
            self.owner("PUT", f"/projects/{self.p}/members/{self.user[key]}", json={"role": role})
        self.owner("PUT", f"/projects/{self.q}/members/{self.user['p_admin']}", json={"role": "admin"})

        self.principals: dict[str, Principal] = {}
        for key in COLUMNS[:7]:
            self.principals[key] = Principal(key, self.user[key], self.session_of(self.user[key]))
        for key, holder, scope, project in (
            ("t_read", "p_admin", "read", None),
            ("t_deploy", "p_admin", "deploy", None),
            ("t_admin", "p_admin", "admin", None),
            ("t_other", "p_admin", "admin", self.q),
            ("b_admin", "admin", "admin", self.p),
            ("b_read", "admin", "read", self.p),
            ("b_dev", "p_dev", "deploy", self.p),
        ):
            principal = Principal(key, self.user[holder], "", scope, project)
            principal.token = self.mint(principal)
            self.principals[key] = principal

    # ------------------------------------------------------------------------------------------ helpers

    def owner(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.d.ok(method, path, token=self.d.owner_token, **kwargs)

    def as_owner(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.d.call(method, path, token=self.d.owner_token, **kwargs)

    def status_as_owner(self, path: str) -> int:
        return self.as_owner("GET", path).status_code

    def _wait_final(self, deployment_id: int) -> None:
        final = {"live", "failed", "cancelled", "superseded", "rolled_back"}
        for _ in range(600):
            if self.owner("GET", f"/deployments/{deployment_id}")["state"] in final:
                return
            time.sleep(0.1)
        raise AssertionError(f"deployment {deployment_id} did not finish")

    def new_user(self, role: str = "developer", prefix: str = "mx-u") -> str:
        username = f"{prefix}-{_hex()}"
        password = strong_password()
        self.d.create_user(username, role, password)
        self.passwords[username] = password
        return username

    def new_app(self, prefix: str = "a") -> str:
        name = f"{prefix}-{_hex()}"
        self.owner("POST", f"/projects/{self.p}/apps", json={"name": name, "git_url": str(self.repo)})
        return name

    def new_domain(self, *, https: bool = False) -> str:
        name = f"d{_hex()}.example.com"
        self.owner("POST", f"/projects/{self.p}/apps/{self.app}/domains", json={"name": name, "https": https})
        return name

    def login(self, username: str) -> dict[str, Any]:
        return self.d.login(username, self.passwords[username])

    def session_of(self, username: str) -> str:
        """A working session token of ``username`` (kept, renewed when a test ended it)."""
        token = self.sessions.get(username)
        if token and self.d.call("GET", "/me", token=token).status_code == 200:
            return token
        token = self.login(username)["token"]
        self.sessions[username] = token
        if username == self.user["owner"]:
            self.d.owner["token"] = token
        return token

    def mint(self, principal: Principal) -> str:
        assert principal.scope is not None
        created = self.d.create_token(self.session_of(principal.username), principal.scope, principal.project)
        return str(created["token"])

    def fresh(self, who: Principal) -> str:
        """A new credential of the same kind as ``who``'s (a new login, or a new token of the same scope)."""
        if who.scope is None:
            return str(self.login(who.username)["token"])
        return self.mint(who)

    def twin(self, who: Principal) -> Principal:
        """A new account like ``who``'s (instance role, memberships) with a credential of the same kind, for
        calls that change the account itself (password, two-factor) and so would disturb other cells."""
        base = who.username
        role = self.owner("GET", f"/users/{base}")["role"]
        username = self.new_user(role, prefix="mx-twin")
        for project in (self.p, self.q):
            for member, member_role in self.members(project):
                if member == base and base != self.user["owner"]:
                    self.owner("PUT", f"/projects/{project}/members/{username}", json={"role": member_role})
        twin = Principal(who.key, username, self.session_of(username), who.scope, who.project)
        if who.scope is not None:
            twin.token = self.mint(twin)
        return twin

    # state probes, read as the owner

    def app_path(self, app: str | None = None) -> str:
        return f"/projects/{self.p}/apps/{app or self.app}"

    def deployments_total(self) -> int:
        return int(self.owner("GET", self.app_path() + "/deployments")["total"])

    def env_keys(self) -> list[str]:
        return sorted(v["key"] for v in self.owner("GET", self.app_path() + "/env"))

    def members(self, project: str | None = None) -> list[tuple[str, str]]:
        return sorted(
            (m["username"], m["role"]) for m in self.owner("GET", f"/projects/{project or self.p}/members")
        )

    def domains(self) -> list[dict[str, Any]]:
        return sorted(self.owner("GET", self.app_path() + "/domains"), key=lambda d: d["name"])

    def works(self, token: str) -> bool:
        return self.d.call("GET", "/me", token=token).status_code == 200

    def certificate(self, domain: str) -> Any:
        return [c for c in self.owner("GET", "/certificates") if c.get("domain") == domain]

    def sessions_of(self, token: str) -> list[dict[str, Any]]:
        return list(self.d.ok("GET", "/sessions", token=token))

    def current_session_id(self, token: str) -> int:
        return next(int(s["id"]) for s in self.sessions_of(token) if s.get("current"))


# ---------------------------------------------------------------------------------------------- rows: auth


@row("auth.status", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/setup")


@row("auth.setup", EVERYONE)  # public, and refused (409) for everyone once an account exists
def _(w: World, who: Principal) -> Call:
    name = f"mx-setup-{_hex()}"
    return Call(
        "POST",
        "/setup",
        json={"username": name, "password": strong_password()},
        state=lambda: w.status_as_owner(f"/users/{name}"),
    )


@row("auth.login", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("POST", "/login", json={"username": who.username, "password": w.passwords[who.username]})


@row("auth.refresh", EVERYONE)
def _(w: World, who: Principal) -> Call:
    refresh = w.login(who.username)["refresh_token"]
    return Call("POST", "/refresh", json={"refresh_token": refresh})


@row("auth.whoami", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/me")


@row("auth.logout", OWN_ACCOUNT)
def _(w: World, who: Principal) -> Call:
    token = w.fresh(who)
    return Call("POST", "/logout", token=token, state=lambda: w.works(token))


@row("auth.change_password", OWN_ACCOUNT)
def _(w: World, who: Principal) -> Call:
    # On a twin of the caller: a change ends the account's other sessions, which other columns use.
    twin = w.twin(who)
    witness = w.login(twin.username)["token"]  # ended only if the change happened
    return Call(
        "POST",
        "/me/password",
        token=twin.token,
        json={"current": w.passwords[twin.username], "new": strong_password()},
        state=lambda: w.works(witness),
    )


def _totp_enabled(w: World, username: str) -> bool:
    return bool(w.owner("GET", f"/users/{username}")["totp_enabled"])


@row("auth.totp_setup", OWN_ACCOUNT)
def _(w: World, who: Principal) -> Call:
    twin = w.twin(who)
    return Call("POST", "/me/totp", token=twin.token, state=lambda: _totp_enabled(w, twin.username))


@row("auth.totp_enable", OWN_ACCOUNT)
def _(w: World, who: Principal) -> Call:
    # The secret is started with the twin's own session, so only the confirmation is the cell's call.
    twin = w.twin(who)
    setup = w.d.ok("POST", "/me/totp", token=w.session_of(twin.username))
    return Call(
        "POST",
        "/me/totp/enable",
        token=twin.token,
        json={"code": totp_code(setup["secret"])},
        state=lambda: _totp_enabled(w, twin.username),
    )


@row("auth.totp_disable", OWN_ACCOUNT)
def _(w: World, who: Principal) -> Call:
    twin = w.twin(who)
    token = w.session_of(twin.username)
    setup = w.d.ok("POST", "/me/totp", token=token)
    w.d.ok("POST", "/me/totp/enable", token=token, json={"code": totp_code(setup["secret"])})
    return Call(
        "POST",
        "/me/totp/disable",
        token=twin.token,
        json={"password": w.passwords[twin.username]},
        state=lambda: _totp_enabled(w, twin.username),
    )


# ---------------------------------------------------------------------------------------------- rows: projects


@row("projects.create", CREATE_PROJECT)
def _(w: World, who: Principal) -> Call:
    name = f"mx-n-{_hex()}"
    return Call(
        "POST", "/projects", json={"name": name}, state=lambda: w.status_as_owner(f"/projects/{name}")
    )


@row("projects.list", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/projects")


@row("projects.get", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", f"/projects/{w.p}")


@row("projects.update", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    def state() -> Any:
        project = w.owner("GET", f"/projects/{w.p}")
        return project["name"], project["description"], project["tags"]

    return Call("PATCH", f"/projects/{w.p}", json={"description": f"changed {_hex()}"}, state=state)


@row("projects.delete", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    # A project of its own with P's members (same roles), so a delete that is allowed costs nothing.
    name = f"mx-d-{_hex()}"
    w.owner("POST", "/projects", json={"name": name})
    for username, role in w.members():
        if username != w.user["owner"]:
            w.owner("PUT", f"/projects/{name}/members/{username}", json={"role": role})
    # A token bound to P: the same kind of token bound to this project instead (P must stay).
    token = w.mint(replace(who, project=name)) if who.project == w.p else None
    return Call(
        "DELETE", f"/projects/{name}", token=token, state=lambda: w.status_as_owner(f"/projects/{name}")
    )


# ---------------------------------------------------------------------------------------------- rows: apps


@row("apps.create", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    name = f"mx-c-{_hex()}"
    return Call(
        "POST",
        f"/projects/{w.p}/apps",
        json={"name": name, "git_url": str(w.repo)},
        state=lambda: w.status_as_owner(w.app_path(name)),
    )


@row("apps.list", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/apps")


@row("apps.get", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path())


@row("apps.update", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    return Call(
        "PATCH",
        w.app_path(w.idle),
        json={"port": 1000 + int(_hex()[:3], 16)},
        state=lambda: w.owner("GET", w.app_path(w.idle))["spec"],
    )


@row("apps.delete", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    name = w.new_app("gone")
    return Call("DELETE", w.app_path(name), state=lambda: w.status_as_owner(w.app_path(name)))


@row("apps.deploy", DEPLOY, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("POST", w.app_path() + "/deploy", json={}, state=w.deployments_total)


@row("apps.rollback", DEPLOY, project=True)  # the app never went live: allowed callers get 409
def _(w: World, who: Principal) -> Call:
    return Call("POST", w.app_path() + "/rollback", json={}, state=w.deployments_total)


def _idle_status(w: World) -> Any:
    return w.owner("GET", w.app_path(w.idle))["status"]


@row("apps.start", DEPLOY, project=True)  # no live container: allowed callers get 409
def _(w: World, who: Principal) -> Call:
    return Call("POST", w.app_path(w.idle) + "/start", state=lambda: _idle_status(w))


@row("apps.stop", DEPLOY, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("POST", w.app_path(w.idle) + "/stop", state=lambda: _idle_status(w))


@row("apps.restart", DEPLOY, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("POST", w.app_path(w.idle) + "/restart", state=lambda: _idle_status(w))


@row("apps.logs", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/logs", params={"follow": "false"}, stream="finite")


def _source(w: World, app: str) -> Any:
    return w.owner("GET", w.app_path(app) + "/source")


@row("apps.source", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/source")


@row("apps.source+reveal", DEVELOP, project=True)  # the webhook secret, like secret env values
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/source", params={"reveal": "true"})


@row("apps.set_source", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    current = bool(_source(w, w.idle)["deploy_on_push"])
    return Call(
        "PATCH",
        w.app_path(w.idle) + "/source",
        json={"deploy_on_push": not current},
        state=lambda: _source(w, w.idle),
    )


@row("apps.deploy_key", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    app = w.new_app("key")
    return Call("POST", w.app_path(app) + "/source/deploy-key", json={}, state=lambda: _source(w, app))


# ---------------------------------------------------------------------------------------------- rows: env


@row("env.list", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/env")


@row("env.list+reveal", DEVELOP, project=True)  # viewers never see secret values
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/env", params={"reveal": "true"})


@row("env.set", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    key = f"MX_{_hex().upper()}"
    return Call("POST", w.app_path() + "/env", json={"key": key, "value": "1"}, state=w.env_keys)


@row("env.unset", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    key = f"MX_{_hex().upper()}"
    w.owner("POST", w.app_path() + "/env", json={"key": key, "value": "1"})
    return Call("DELETE", w.app_path() + f"/env/{key}", state=w.env_keys)


@row("env.import_dotenv", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    key = f"MX_{_hex().upper()}"
    return Call("POST", w.app_path() + "/env/import", json={"text": f"{key}=1\n"}, state=w.env_keys)


@row("env.export_dotenv", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/env/export")


@row("env.export_dotenv+reveal", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/env/export", params={"reveal": "true"})


# ---------------------------------------------------------------------------------------------- rows: databases


def _db_path(w: World, name: str | None = None) -> str:
    return f"/projects/{w.p}/databases/{name or w.db}"


def _db_status(w: World) -> Any:
    return w.owner("GET", _db_path(w))["status"]


def _db_links(w: World) -> Any:
    return w.owner("GET", _db_path(w))["linked_apps"]


@row("databases.create", DEVELOP, project=True)  # the name is the app's: allowed callers get 409
def _(w: World, who: Principal) -> Call:
    return Call(
        "POST",
        f"/projects/{w.p}/databases",
        json={"name": w.app, "engine": "redis"},
        state=lambda: w.owner("GET", "/databases", params={"project": w.p})["total"],
    )


@row("databases.list", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/databases")


@row("databases.get", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", _db_path(w))


@row("databases.delete", ADMINISTER, project=True)  # linked to the idle app: allowed callers get 409
def _(w: World, who: Principal) -> Call:
    return Call("DELETE", _db_path(w), state=lambda: w.status_as_owner(_db_path(w)))


@row("databases.stop", DEPLOY, project=True)
def _(w: World, who: Principal) -> Call:
    w.owner("POST", _db_path(w) + "/start")
    return Call("POST", _db_path(w) + "/stop", state=lambda: _db_status(w))


@row("databases.start", DEPLOY, project=True)
def _(w: World, who: Principal) -> Call:
    w.owner("POST", _db_path(w) + "/stop")
    return Call("POST", _db_path(w) + "/start", state=lambda: _db_status(w))


@row("databases.restart", DEPLOY, project=True)
def _(w: World, who: Principal) -> Call:
    restarts = lambda: len(w.owner("GET", "/audit", params={"action": "database.restart"})["items"])  # noqa: E731
    return Call("POST", _db_path(w) + "/restart", state=restarts)


@row("databases.logs", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", _db_path(w) + "/logs", params={"follow": "false"}, stream="finite")


@row("databases.url", DEVELOP, project=True)  # the password: like secret env values
def _(w: World, who: Principal) -> Call:
    return Call("GET", _db_path(w) + "/url")


@row("databases.link", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    app = w.new_app("link")  # never deployed: linking queues no deployment
    return Call("POST", _db_path(w) + "/links", json={"app": app, "prefix": "MX"}, state=lambda: _db_links(w))


@row("databases.unlink", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    app = w.new_app("unlink")
    w.owner("POST", _db_path(w) + "/links", json={"app": app})
    return Call("DELETE", _db_path(w) + f"/links/{app}", state=lambda: _db_links(w))


# ---------------------------------------------------------------------------------------------- rows: databases after creation
# On the Redis database: a real client session; the user operations are refused by the engine for allowed
# callers (422: Redis has no users Mist manages), an update with nothing to change and an upgrade to another
# major line are refused as input, so nothing moves whoever calls.


def _db_audit(w: World, action: str) -> int:
    return int(w.owner("GET", "/audit", params={"action": action})["total"])


@row("databases.shell", DEVELOP, project=True)  # a client logged in with the password: like exec
def _(w: World, who: Principal) -> Call:
    start = frame(START, json.dumps({"args": ["--version"]}).encode())
    return Call("POST", _db_path(w) + "/shell", content=start, state=lambda: _db_audit(w, "database.shell"))


@row("databases.users", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", _db_path(w) + "/users")


@row("databases.create_user", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    body = {"user": "reporter", "password": f"matrix-{w.s}-password"}
    return Call("POST", _db_path(w) + "/users", json=body, state=lambda: _db_audit(w, "database.user."))


@row("databases.drop_user", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("DELETE", _db_path(w) + "/users/reporter", state=lambda: _db_audit(w, "database.user."))


@row("databases.update", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("PATCH", _db_path(w), json={}, state=lambda: w.owner("GET", _db_path(w))["updated_at"])


@row("databases.upgrade", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    body = {"version": "8.0"}
    return Call(
        "POST", _db_path(w) + "/upgrade", json=body, state=lambda: w.owner("GET", _db_path(w))["version"]
    )


# ---------------------------------------------------------------------------------------------- rows: deployments


@row("deployments.list", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/deployments")


@row("deployments.get", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", f"/deployments/{w.deployment}")


@row("deployments.log", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", f"/deployments/{w.deployment}/log", stream="finite")


@row("deployments.cancel", DEPLOY, project=True)  # the deployment is final: allowed callers get 409
def _(w: World, who: Principal) -> Call:
    return Call(
        "POST",
        f"/deployments/{w.deployment}/cancel",
        state=lambda: w.owner("GET", f"/deployments/{w.deployment}")["state"],
    )


# ---------------------------------------------------------------------------------------------- rows: runtime


@row("containers.list", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/containers")


@row("containers.describe", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/container")


def _execs(w: World) -> int:
    return int(w.owner("GET", "/audit", params={"action": "container.exec"})["total"])


@row("containers.exec", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    start = frame(START, json.dumps({"command": ["true"]}).encode())
    return Call("POST", w.app_path() + "/exec", content=start, state=lambda: _execs(w))


@row("metrics.current", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/metrics")


@row("metrics.history", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/metrics/history", params={"seconds": 10})


@row("metrics.stream", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/metrics/stream", stream="endless")


@row("events.stream", EVERYONE)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/events", stream="endless")


# ---------------------------------------------------------------------------------------------- rows: users


@row("users.list", SIGNED_IN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/users")


@row("users.get+self", SIGNED_IN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", f"/users/{who.username}")


@row("users.get", INSTANCE_ADMIN)  # someone else's account
def _(w: World, who: Principal) -> Call:
    return Call("GET", f"/users/{w.user['bystander']}")


@row("users.create", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    name = f"mx-new-{_hex()}"
    return Call(
        "POST",
        "/users",
        json={"username": name, "password": strong_password(), "role": "viewer"},
        state=lambda: w.status_as_owner(f"/users/{name}"),
    )


def _profile(w: World, username: str) -> Any:
    user = w.owner("GET", f"/users/{username}")
    return user.get("full_name"), user.get("email")


@row("users.update+self", OWN_ACCOUNT)
def _(w: World, who: Principal) -> Call:
    return Call(
        "PATCH",
        f"/users/{who.username}",
        json={"full_name": f"Name {_hex()}"},
        state=lambda: _profile(w, who.username),
    )


@row("users.update", INSTANCE_ADMIN)  # someone else's profile
def _(w: World, who: Principal) -> Call:
    target = w.user["bystander"]
    return Call(
        "PATCH", f"/users/{target}", json={"full_name": f"Name {_hex()}"}, state=lambda: _profile(w, target)
    )


@row("users.set_role", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    target = w.new_user("developer")
    return Call(
        "PUT",
        f"/users/{target}/role",
        json={"role": "viewer"},
        state=lambda: w.owner("GET", f"/users/{target}")["role"],
    )


@row("users.delete", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    target = w.new_user("developer")
    return Call("DELETE", f"/users/{target}", state=lambda: w.status_as_owner(f"/users/{target}"))


# ---------------------------------------------------------------------------------------------- rows: members


@row("members.list", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", f"/projects/{w.p}/members")


@row("members.add", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    target = w.new_user("developer")
    return Call("PUT", f"/projects/{w.p}/members/{target}", json={"role": "viewer"}, state=w.members)


@row("members.remove", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    target = w.new_user("developer")
    w.owner("PUT", f"/projects/{w.p}/members/{target}", json={"role": "viewer"})
    return Call("DELETE", f"/projects/{w.p}/members/{target}", state=w.members)


# ---------------------------------------------------------------------------------------------- rows: invites


def _invites(w: World) -> list[Any]:
    return sorted((i["id"], i.get("revoked_at")) for i in w.owner("GET", "/invites"))


@row("invites.create", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    return Call(
        "POST",
        "/invites",
        json={"username": f"mx-inv-{_hex()}", "role": "viewer", "expires_hours": 1},
        state=lambda: _invites(w),
    )


@row("invites.list", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/invites")


@row("invites.revoke", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    invite = w.owner("POST", "/invites", json={"username": f"mx-inv-{_hex()}", "role": "viewer"})
    return Call("DELETE", f"/invites/{invite['invite']['id']}", state=lambda: _invites(w))


@row("invites.accept", EVERYONE)  # public: the invitation is the credential
def _(w: World, who: Principal) -> Call:
    name = f"mx-inv-{_hex()}"
    invite = w.owner("POST", "/invites", json={"username": name, "role": "viewer"})
    return Call(
        "POST",
        "/invites/accept",
        json={"token": invite["token"], "username": name, "password": strong_password()},
    )


# ---------------------------------------------------------------------------------------------- rows: sessions


@row("sessions.list", OWN_ACCOUNT)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/sessions")


@row("sessions.list+everyone", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/sessions", params={"username": "*"})


@row("sessions.list+other", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/sessions", params={"username": w.user["bystander"]})


@row("sessions.revoke", OWN_ACCOUNT)  # one of the caller's own sessions
def _(w: World, who: Principal) -> Call:
    victim = w.login(who.username)["token"]
    return Call("DELETE", f"/sessions/{w.current_session_id(victim)}", state=lambda: w.works(victim))


@row("sessions.revoke+other", INSTANCE_ADMIN)  # someone else's session
def _(w: World, who: Principal) -> Call:
    victim = w.login(w.user["bystander"])["token"]
    return Call("DELETE", f"/sessions/{w.current_session_id(victim)}", state=lambda: w.works(victim))


# ---------------------------------------------------------------------------------------------- rows: tokens


def _token_ids(w: World, username: str) -> list[int]:
    return sorted(t["id"] for t in w.d.ok("GET", "/tokens", token=w.session_of(username)))


@row("tokens.create", OWN_ACCOUNT)
def _(w: World, who: Principal) -> Call:
    return Call(
        "POST",
        "/tokens",
        json={"name": f"mx-{_hex()}", "scope": "read"},
        state=lambda: _token_ids(w, who.username),
    )


@row("tokens.list", OWN_ACCOUNT)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/tokens")


@row("tokens.list+everyone", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/tokens", params={"all": "true"})


@row("tokens.revoke", OWN_ACCOUNT)  # one of the caller's own tokens
def _(w: World, who: Principal) -> Call:
    created = w.d.create_token(w.session_of(who.username), "read")
    return Call("DELETE", f"/tokens/{created['info']['id']}", state=lambda: w.works(created["token"]))


@row("tokens.revoke+other", INSTANCE_ADMIN)  # someone else's token
def _(w: World, who: Principal) -> Call:
    created = w.d.create_token(w.session_of(w.user["bystander"]), "read")
    return Call("DELETE", f"/tokens/{created['info']['id']}", state=lambda: w.works(created["token"]))


# ---------------------------------------------------------------------------------------------- rows: backups


def _backup_world(w: World) -> dict[str, str]:
    """A backup destination and a volume of project P holding a file (made once per world)."""
    found = getattr(w, "backup_world", None)
    if found is not None:
        return found
    import sqlite3

    import docker

    with sqlite3.connect(w.d.data / "mist.db") as db:
        (uid,) = db.execute("SELECT uid FROM projects WHERE name = ?", (w.p,)).fetchone()
    volume = f"mist_{uid}_vol"
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        labels = {
            "dev.mist.managed": "true",
            "dev.mist.project": w.p,
            "dev.mist.project-uid": uid,
            "dev.mist.volume": "vol",
            "dev.mist.instance": w.d.instance_id,  # removed with the daemon's other leftovers
        }
        client.volumes.create(volume, labels=labels)
        client.containers.run(
            "busybox:1.36",
            ["sh", "-c", "echo matrix > /data/file"],
            volumes={volume: {"bind": "/data", "mode": "rw"}},
            remove=True,
        )
    finally:
        client.close()
    destination = f"mx-dest-{w.s}"
    w.owner(
        "POST",
        "/backup-destinations",
        json={"name": destination, "kind": "local", "path": str(w.d.root / "backups")},
    )
    w.backup_world = {"destination": destination, "volume": "vol"}  # type: ignore[attr-defined]
    return w.backup_world  # type: ignore[attr-defined,no-any-return]


def _new_backup(w: World) -> int:
    """A finished, successful backup of P's volume, made by the owner."""
    setup = _backup_world(w)
    made = w.owner(
        "POST",
        f"/projects/{w.p}/backups",
        json={"name": setup["volume"], "destination": setup["destination"]},
    )
    for _ in range(600):
        backup = w.owner("GET", f"/backups/{made['id']}")
        if backup["state"] != "running":
            assert backup["state"] == "success", backup
            return int(made["id"])
        time.sleep(0.05)
    raise AssertionError("the backup did not finish")


def _backups_of(w: World) -> list[int]:
    return sorted(b["id"] for b in w.owner("GET", f"/projects/{w.p}/backups", params={"limit": 500})["items"])


def _schedules_of(w: World) -> list[Any]:
    return sorted((s["id"], s["name"]) for s in w.owner("GET", f"/projects/{w.p}/backup-schedules"))


def _destinations(w: World) -> list[str]:
    return sorted(d["name"] for d in w.owner("GET", "/backup-destinations"))


def _new_schedule(w: World) -> int:
    setup = _backup_world(w)
    body = {"name": f"v{_hex()}", "destination": setup["destination"], "cron": "0 3 * * *"}
    return int(w.owner("POST", f"/projects/{w.p}/backup-schedules", json=body)["id"])


@row("backups.list", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    _backup_world(w)
    return Call("GET", f"/projects/{w.p}/backups")


@row("backups.get", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", f"/backups/{_new_backup(w)}")


@row("backups.run", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    setup = _backup_world(w)
    body = {"name": setup["volume"], "destination": setup["destination"]}
    return Call("POST", f"/projects/{w.p}/backups", json=body, state=lambda: _backups_of(w))


@row("backups.verify", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    backup_id = _new_backup(w)
    return Call(
        "POST",
        f"/backups/{backup_id}/verify",
        state=lambda: w.owner("GET", f"/backups/{backup_id}")["verified"],
    )


@row("backups.restore", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    backup_id = _new_backup(w)
    return Call(
        "POST",
        f"/backups/{backup_id}/restore",
        json={"target": f"r{_hex()}"},
        state=lambda: w.owner("GET", f"/backups/{backup_id}")["restore_state"],
    )


@row("backups.delete", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("DELETE", f"/backups/{_new_backup(w)}", state=lambda: _backups_of(w))


@row("backups.schedules", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", f"/projects/{w.p}/backup-schedules")


@row("backups.schedule", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    setup = _backup_world(w)
    body = {"name": f"v{_hex()}", "destination": setup["destination"], "cron": "0 3 * * *"}
    return Call("POST", f"/projects/{w.p}/backup-schedules", json=body, state=lambda: _schedules_of(w))


@row("backups.unschedule", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    schedule_id = _new_schedule(w)
    return Call("DELETE", f"/projects/{w.p}/backup-schedules/{schedule_id}", state=lambda: _schedules_of(w))


def _db_backup(w: World) -> int:
    """A successful backup of the project's database, made once by the owner."""
    found = getattr(w, "db_backup", None)
    if found is not None:
        return int(found)
    setup = _backup_world(w)
    w.owner("POST", _db_path(w) + "/start")  # the database rows above leave it stopped or running
    body = {"name": w.db, "kind": "database", "destination": setup["destination"]}
    made = w.owner("POST", f"/projects/{w.p}/backups", json=body)
    for _ in range(1200):
        backup = w.owner("GET", f"/backups/{made['id']}")
        if backup["state"] != "running":
            assert backup["state"] == "success", backup
            w.db_backup = int(made["id"])  # type: ignore[attr-defined]
            return int(made["id"])
        time.sleep(0.05)
    raise AssertionError("the database's backup did not finish")


def _audited(w: World, action: str) -> int:
    return len(w.owner("GET", "/audit", params={"action": action, "limit": 500})["items"])


@row("backups.run+database", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    setup = _backup_world(w)
    body = {"name": w.db, "kind": "database", "destination": setup["destination"]}
    return Call("POST", f"/projects/{w.p}/backups", json=body, state=lambda: _backups_of(w))


@row("backups.verify+database", DEVELOP, project=True)  # one backup: allowed callers may get 409 (busy)
def _(w: World, who: Principal) -> Call:
    backup_id = _db_backup(w)
    return Call("POST", f"/backups/{backup_id}/verify", state=lambda: _audited(w, "backup.verify"))


# Into a new database named like the project's app: allowed callers get 409 before anything is made.
@row("backups.restore+database", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    backup_id = _db_backup(w)
    return Call(
        "POST",
        f"/backups/{backup_id}/restore",
        json={"target": w.app},
        state=lambda: (
            w.owner("GET", f"/backups/{backup_id}")["restore_state"],
            w.owner("GET", "/databases", params={"project": w.p})["total"],
        ),
    )


@row("backups.schedule+database", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    setup = _backup_world(w)
    body = {"name": w.db, "kind": "database", "destination": setup["destination"], "cron": "0 3 * * *"}
    return Call("POST", f"/projects/{w.p}/backup-schedules", json=body, state=lambda: _schedules_of(w))


@row("backups.destinations", SIGNED_IN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/backup-destinations")


@row("backups.add_destination", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    body = {"name": f"mx-d-{_hex()}", "kind": "local", "path": str(w.d.root / "backups")}
    return Call("POST", "/backup-destinations", json=body, state=lambda: _destinations(w))


@row("backups.remove_destination", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    name = f"mx-d-{_hex()}"
    w.owner(
        "POST",
        "/backup-destinations",
        json={"name": name, "kind": "local", "path": str(w.d.root / "backups")},
    )
    return Call("DELETE", f"/backup-destinations/{name}", state=lambda: _destinations(w))


# ---------------------------------------------------------------------------------------------- rows: admin


@row("secrets.rotate_key", INSTANCE_OWNER)
def _(w: World, who: Principal) -> Call:
    # The secret stays readable through a rotation, and a refused rotation leaves it alone.
    return Call(
        "POST",
        "/secrets/rotate-key",
        state=lambda: w.owner("GET", w.app_path() + "/env", params={"reveal": "true"}),
    )


@row("audit.list", EVERYONE)  # what it shows is scoped to the caller
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/audit")


@row("settings.list", SIGNED_IN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/settings")


@row("settings.get", SIGNED_IN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/settings/images_per_app")


@row("settings.set", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    current = int(w.owner("GET", "/settings/images_per_app")["value"])
    return Call(
        "PUT",
        "/settings/images_per_app",
        json={"value": str(3 if current != 3 else 4)},
        state=lambda: w.owner("GET", "/settings/images_per_app")["value"],
    )


# ---------------------------------------------------------------------------------------------- rows: domains


@row("domains.list", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/domains")


@row("domains.add", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    return Call(
        "POST",
        w.app_path() + "/domains",
        json={"name": f"d{_hex()}.example.com", "https": False},
        state=w.domains,
    )


@row("domains.update", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    name = w.new_domain()
    return Call(
        "PUT",
        w.app_path() + f"/domains/{name}",
        json={"https": False, "path_prefix": "/mx"},
        state=w.domains,
    )


@row("domains.remove", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    name = w.new_domain()
    return Call("DELETE", w.app_path() + f"/domains/{name}", state=w.domains)


# ---------------------------------------------------------------------------------------------- rows: certificates


@row("certificates.list", EVERYONE)  # the certificates of the apps the caller sees
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/certificates")


@row("certificates.renew", DEVELOP, project=True)
def _(w: World, who: Principal) -> Call:
    name = w.new_domain()
    cert, key = self_signed(name)
    w.owner("PUT", f"/certificates/{name}", json={"cert_pem": cert, "key_pem": key})
    return Call("POST", f"/certificates/{name}/renew", state=lambda: w.certificate(name))


@row("certificates.upload", ADMINISTER, project=True)
def _(w: World, who: Principal) -> Call:
    name = w.new_domain()
    cert, key = self_signed(name)
    return Call(
        "PUT",
        f"/certificates/{name}",
        json={"cert_pem": cert, "key_pem": key},
        state=lambda: w.certificate(name),
    )


# ---------------------------------------------------------------------------------------------- rows: git

GIT_USER = "YYY. YYY ..Y . ..."  # instance developers and up; tokens only with the admin scope, unbound


def _providers(w: World) -> list[str]:
    return sorted(p["name"] for p in w.owner("GET", "/git/providers"))


def _gitea_spec(w: World, name: str) -> dict[str, Any]:
    return {"name": name, "kind": "gitea", "url": w.forge.url, "token": w.forge.gitea_token}


@row("git.providers", SIGNED_IN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/git/providers")


@row("git.add_provider", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    name = f"mx-gp-{_hex()}"

    def cleanup() -> None:
        if name in _providers(w):
            w.owner("DELETE", f"/git/providers/{name}")

    return Call(
        "POST", "/git/providers", json=_gitea_spec(w, name), state=lambda: _providers(w), cleanup=cleanup
    )


@row("git.github_manifest", INSTANCE_ADMIN)  # public_url is unset: allowed callers get 409
def _(w: World, who: Principal) -> Call:
    return Call("POST", "/git/github-manifest", json={"name": f"mx-gh-{_hex()}"}, state=lambda: _providers(w))


@row("git.remove_provider", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    name = f"mx-gp-{_hex()}"
    w.owner("POST", "/git/providers", json=_gitea_spec(w, name))

    def cleanup() -> None:
        if name in _providers(w):
            w.owner("DELETE", f"/git/providers/{name}")

    return Call("DELETE", f"/git/providers/{name}", state=lambda: _providers(w), cleanup=cleanup)


@row("git.repos", GIT_USER)
def _(w: World, who: Principal) -> Call:
    return Call("GET", f"/git/providers/{w.provider}/repos")


@row("git.branches", GIT_USER)
def _(w: World, who: Principal) -> Call:
    return Call("GET", f"/git/providers/{w.provider}/branches", params={"repo": w.provider_repo})


@row("webhooks.list", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/webhooks")


@row("previews.list", VIEW, project=True)
def _(w: World, who: Principal) -> Call:
    return Call("GET", w.app_path() + "/previews")


# ---------------------------------------------------------------------------------------------- rows: proxy


@row("proxy.status", SIGNED_IN)
def _(w: World, who: Principal) -> Call:
    return Call("GET", "/proxy")


@row("proxy.reload", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    return Call("POST", "/proxy/reload")


@row("proxy.install", INSTANCE_ADMIN)
def _(w: World, who: Principal) -> Call:
    # With the Caddy backend an allowed install stops at a 409 before touching Docker: the proxy container's
    # name is shared by every Mist on this engine, and this test must not replace one it did not start.
    w.owner("PUT", "/settings/proxy_backend", json={"value": "caddy"})
    return Call(
        "POST",
        "/proxy/install",
        cleanup=lambda: w.owner("PUT", "/settings/proxy_backend", json={"value": "traefik"}),
    )


# ---------------------------------------------------------------------------------------------- running a cell


@dataclass
class Outcome:
    status: int
    problem: bool
    text: str
    error_frame: str | None = None  # a stream that answered 200 and then reported an error


def send(d: Daemon, call: Call, token: str) -> Outcome:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {"params": call.params, "headers": headers}
    if call.json is not None:
        kwargs["json"] = call.json
    if call.content is not None:
        kwargs["content"] = call.content
    if call.stream is None:
        response = d.http.request(call.method, "/v1" + call.path, **kwargs)
        return Outcome(response.status_code, is_problem(response), describe(response))
    with d.http.stream(call.method, "/v1" + call.path, **kwargs) as response:
        if response.status_code != 200:
            response.read()
            return Outcome(response.status_code, is_problem(response), describe(response))
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if call.stream == "endless" and body:
                break
        text = body.decode(errors="replace")
        frame = None
        if "event: error" in text:
            frame = text[text.index("event: error") :][:300]
        return Outcome(200, False, f"{call.method} {call.path} -> 200 stream {text[:200]!r}", frame)


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)

    def add(self, operation: str, column: str, message: str) -> None:
        self.problems.append(f"{operation} as {column}: {message}")


def run_cell(w: World, operation: str, r: Row, who: Principal, findings: Findings) -> None:
    call = r.build(w, who)
    before = call.state() if call.state else None
    try:
        outcome = send(w.d, call, call.token or who.token)
        after = call.state() if call.state else None
    finally:
        if call.cleanup:
            call.cleanup()
    expected = r.allowed(who.key)
    status = outcome.status
    if status >= 500:
        findings.add(operation, who.key, f"server error: {outcome.text}")
        return
    if status == 401:
        findings.add(operation, who.key, f"the credential was refused (401): {outcome.text}")
        return
    if status >= 400 and not outcome.problem:
        findings.add(operation, who.key, f"a refusal that is not problem+json: {outcome.text}")
    denied = status in (403, 404)
    if outcome.error_frame and any(f'"status": {s}' in outcome.error_frame for s in (401, 403, 404)):
        findings.add(operation, who.key, f"a stream opened (200) and then refused: {outcome.error_frame}")
        denied = True
    if expected and denied:
        findings.add(operation, who.key, f"expected allowed, got {outcome.text}")
    elif not expected and not denied:
        findings.add(operation, who.key, f"expected denied (403/404), got {outcome.text}")
    elif not expected and r.project and who.key in OUTSIDERS and status != 404:
        findings.add(operation, who.key, f"someone who cannot see the project must get 404: {outcome.text}")
    if not expected and call.state is not None and before != after:
        findings.add(operation, who.key, f"refused, yet the state changed: {before!r} -> {after!r}")


# ---------------------------------------------------------------------------------------------- the tests


def interface_operations() -> set[str]:
    """``"part.method"`` for every abstract method of every part of ``MistAPI``."""
    operations = set()
    for part, cls in typing.get_type_hints(MistAPI).items():
        for method in getattr(cls, "__abstractmethods__", ()):
            operations.add(f"{part}.{method}")
    return operations


def test_every_operation_of_the_interface_has_a_row_in_this_test() -> None:
    covered = {name.split("+")[0] for name in ROWS}
    missing = sorted(interface_operations() - covered)
    assert not missing, f"operations with no row in the permission matrix test: {missing}"
    stale = sorted(covered - interface_operations())
    assert not stale, f"rows for operations the interface does not have: {stale}"


def test_the_permission_table_and_the_interface_name_the_same_operations() -> None:
    operations = interface_operations()
    assert sorted(operations - PERMISSIONS.keys()) == [], "operations with no rule in PERMISSIONS"
    assert sorted(PERMISSIONS.keys() - operations) == [], "rules in PERMISSIONS for no operation"


def test_every_route_of_the_api_names_one_operation_of_the_table() -> None:
    # The HTTP layer decides from a route's operation whether it answers without a token: a route naming no
    # operation, or two routes naming one, would make that decision about the wrong thing.
    routes = [r for r in build_router().routes if isinstance(r, APIRoute)]
    named = sorted(str(r.operation_id) for r in routes)
    assert sorted(set(named)) == named, "two routes name the same operation"
    assert set(named) == PERMISSIONS.keys()
    # Each route is the one the operation table gives its operation, which RemoteMist calls too.
    for r in routes:
        operation = OPERATIONS[str(r.operation_id)]
        assert (r.methods, r.path) == ({operation.method}, "/v1" + operation.path), r.operation_id


def test_the_operation_table_and_the_permission_table_name_the_same_operations() -> None:
    assert sorted(OPERATIONS) == sorted(interface_operations())
    assert sorted(OPERATIONS) == sorted(PERMISSIONS)


def test_every_row_has_a_mark_for_every_column() -> None:
    for name, r in ROWS.items():
        marks = r.expect.replace(" ", "")
        assert len(marks) == len(COLUMNS) and set(marks) <= {"Y", "."}, name


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> Iterator[World]:
    w = World(daemon, daemon.repos)
    with serve_forge() as forge:
        # A git host for the provider rows: the local stand-in of Gitea's API.
        w.forge = forge
        w.provider = f"mx-gitea-{w.s}"
        w.owner("POST", "/git/providers", json=_gitea_spec(w, w.provider))
        w.provider_repo = w.owner("GET", f"/git/providers/{w.provider}/repos")[0]["full_name"]
        # A database of the project, linked to the idle app (so deleting it is refused).
        redis_image()
        w.db = "cache"
        w.owner("POST", f"/projects/{w.p}/databases", json={"name": w.db, "engine": "redis"})
        w.owner("POST", _db_path(w) + "/links", json={"app": w.idle})
        yield w


def test_every_caller_is_allowed_and_refused_exactly_as_the_rules_say(world: World) -> None:
    findings = Findings()
    for operation, r in ROWS.items():
        for column in COLUMNS:
            run_cell(world, operation, r, world.principals[column], findings)
    assert not findings.problems, f"{len(findings.problems)} cells disagree with the rules:\n" + "\n".join(
        findings.problems
    )


def test_without_a_token_only_the_public_operations_answer(world: World) -> None:
    public = {"auth.status", "auth.setup", "auth.login", "auth.refresh", "invites.accept"}
    nobody = Principal("nobody", world.user["p_dev"], "")
    problems = []
    for operation, r in ROWS.items():
        call = r.build(world, nobody)
        try:
            outcome = send(world.d, call, "")
        finally:
            if call.cleanup:
                call.cleanup()
        if operation.split("+")[0] in public:
            if outcome.status in (401, 403) or outcome.status >= 500:
                problems.append(f"{operation}: public, yet {outcome.text}")
        elif outcome.status != 401 or not outcome.problem:
            problems.append(f"{operation}: expected 401 problem+json, got {outcome.text}")
    assert not problems, "\n".join(problems)


def _credentials_that_are_not(world: World) -> dict[str, dict[str, str]]:
    """Authorization headers that name no caller: absent, garbage, the wrong scheme, an expired access token
    (genuinely signed), a revoked API token and the access token of a session that has ended."""
    d = world.d
    username = world.user["p_dev"]
    session = world.login(username)
    claims = jwt.decode(session["token"], options={"verify_signature": False})
    now = int(time.time())
    expired = jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, d.signing_key, algorithm="HS256")
    revoked = d.create_token(world.session_of(username), "admin")
    d.ok("DELETE", f"/tokens/{revoked['info']['id']}", token=world.session_of(username))
    ended = world.login(username)["token"]
    d.ok("POST", "/logout", token=ended)
    bearer = {
        "garbage": "not-a-token",
        "garbage JWT": "a.b.c",
        "unknown API token": "mist_t_" + uuid.uuid4().hex,
        "expired access token": expired,
        "revoked API token": revoked["token"],
        "ended session": ended,
    }
    return {
        "no token": {},
        "another scheme": {"Authorization": f"Basic {session['token']}"},
        **{what: {"Authorization": f"Bearer {value}"} for what, value in bearer.items()},
    }


# Request parts no route accepts: the answer must still be 401, never a 422 that describes the schema.
NOT_JSON = b'{"name": '
WRONG_BODY = {"name": ["not", "a", "string"], "port": "many", "role": 7, "no_such_field": {"x": 1}}
WRONG_QUERY = {
    "limit": "lots",
    "offset": "-x",
    "all": "maybe",
    "reveal": "perhaps",
    "seconds": "long",
    "follow": "sometimes",
    "since": "yesterday",
    "repo": "",
}


def _variants(call: Call) -> dict[str, dict[str, Any]]:
    """The row's own request, then with a body that is not JSON, a body of the wrong shape, and wrong query
    and path parameters (a number in the path becomes a word)."""
    as_built: dict[str, Any] = {"params": call.params}
    if call.json is not None:
        as_built["json"] = call.json
    return {
        "as built": {"path": call.path, **as_built},
        "a body that is not JSON": {
            "path": call.path,
            "params": call.params,
            "content": NOT_JSON,
            "headers": {"Content-Type": "application/json"},
        },
        "a body of the wrong shape": {"path": call.path, "params": call.params, "json": WRONG_BODY},
        "wrong query and path parameters": {
            "path": re.sub(r"/\d+(?=/|$)", "/not-a-number", call.path),
            "params": {**(call.params or {}), **WRONG_QUERY},
            **({"json": call.json} if call.json is not None else {}),
        },
    }


def test_a_request_without_a_valid_credential_is_refused_before_anything_in_it_is_read(world: World) -> None:
    public = {"auth.status", "auth.setup", "auth.login", "auth.refresh", "invites.accept"}
    credentials = _credentials_that_are_not(world)
    nobody = Principal("nobody", world.user["p_dev"], "")
    problems = []
    for operation, r in ROWS.items():
        if operation.split("+")[0] in public:
            continue
        call = r.build(world, nobody)
        try:
            for what, variant in _variants(call).items():
                for credential, auth_headers in credentials.items():
                    request = dict(variant)
                    path = request.pop("path")
                    request["headers"] = {**request.get("headers", {}), **auth_headers}
                    with world.d.http.stream(call.method, "/v1" + path, **request) as response:
                        if response.status_code == 401 and is_problem(response):
                            continue
                        # An answer that opened a stream is left unread: it would never end.
                        body = "(a stream)" if response.status_code == 200 else response.read()[:200]
                        problems.append(
                            f"{operation} with {what}, {credential}: {call.method} {path} -> "
                            f"{response.status_code} {body!r}"
                        )
        finally:
            if call.cleanup:
                call.cleanup()
    assert not problems, f"{len(problems)} requests were not refused with 401 first:\n" + "\n".join(
        problems[:60]
    )


# ---------------------------------------------------------------------------------------------- escalation


def _refused(response: httpx.Response, *, may_be_401: bool = False) -> bool:
    statuses = range(400, 500) if may_be_401 else [s for s in range(400, 500) if s != 401]
    return response.status_code in statuses and is_problem(response)


def _accept_refused(response: httpx.Response) -> bool:
    # The invitation is the credential: an unusable one may be a 401 as well as a 4xx about the input.
    return _refused(response, may_be_401=True)


def test_no_one_grants_a_role_above_their_own(world: World) -> None:
    d = world.d
    admin = world.principals["admin"].token
    p_dev = world.principals["p_dev"]
    p_admin = world.principals["p_admin"]
    target = world.new_user("developer")
    an_owner = world.new_user("owner")
    name = f"mx-esc-{_hex()}"
    attempts: list[tuple[str, str, str, str, Any, Callable[[], bool]]] = [
        (
            "an admin creates an owner account",
            admin,
            "POST",
            "/users",
            {"username": name, "password": strong_password(), "role": "owner"},
            lambda: world.status_as_owner(f"/users/{name}") == 404,
        ),
        (
            "an admin invites an owner",
            admin,
            "POST",
            "/invites",
            {"username": f"{name}-i", "role": "owner"},
            lambda: all(i["role"] != "owner" for i in world.owner("GET", "/invites")),
        ),
        (
            "an admin makes someone an owner",
            admin,
            "PUT",
            f"/users/{target}/role",
            {"role": "owner"},
            lambda: world.owner("GET", f"/users/{target}")["role"] == "developer",
        ),
        (
            "an admin demotes an owner",
            admin,
            "PUT",
            f"/users/{an_owner}/role",
            {"role": "viewer"},
            lambda: world.owner("GET", f"/users/{an_owner}")["role"] == "owner",
        ),
        (
            "an admin deletes an owner",
            admin,
            "DELETE",
            f"/users/{an_owner}",
            None,
            lambda: world.status_as_owner(f"/users/{an_owner}") == 200,
        ),
        (
            "a developer makes themself an admin",
            p_dev.token,
            "PUT",
            f"/users/{p_dev.username}/role",
            {"role": "admin"},
            lambda: world.owner("GET", f"/users/{p_dev.username}")["role"] == "developer",
        ),
        (
            "a project developer makes themself project admin",
            p_dev.token,
            "PUT",
            f"/projects/{world.p}/members/{p_dev.username}",
            {"role": "admin"},
            lambda: (p_dev.username, "developer") in world.members(),
        ),
        (
            "a project admin invites an account into the project",
            p_admin.token,
            "POST",
            "/invites",
            {"username": f"{name}-j", "role": "developer", "project": world.p, "project_role": "admin"},
            lambda: all(i.get("username") != f"{name}-j" for i in world.owner("GET", "/invites")),
        ),
        (
            "a read token mints an admin token",
            world.principals["t_read"].token,
            "POST",
            "/tokens",
            {"name": name, "scope": "admin"},
            lambda: all(
                t["name"] != name for t in d.ok("GET", "/tokens", token=world.session_of(p_admin.username))
            ),
        ),
    ]
    problems = []
    for what, token, method, path, body, unchanged in attempts:
        response = d.call(method, path, token=token, json=body)
        if not _refused(response):
            problems.append(f"{what}: {describe(response)}")
        if not unchanged():
            problems.append(f"{what}: it happened")
    # A token bound to a project may mint tokens only for that project.
    minted = d.call(
        "POST", "/tokens", token=world.principals["t_other"].token, json={"name": name, "scope": "admin"}
    )
    if minted.is_success and minted.json()["info"].get("project") != world.q:
        problems.append(f"a token bound to {world.q} minted one that is not: {describe(minted)}")
    assert not problems, "\n".join(problems)


def test_an_invitation_grants_exactly_what_it_names_once(world: World) -> None:
    d = world.d
    name, other = f"mx-inv-{_hex()}", f"mx-inv-{_hex()}"
    invite = world.owner(
        "POST",
        "/invites",
        json={"username": name, "role": "viewer", "project": world.p, "project_role": "developer"},
    )
    token = invite["token"]
    password = strong_password()

    wrong_name = d.call(
        "POST", "/invites/accept", json={"token": token, "username": other, "password": password}
    )
    assert _accept_refused(wrong_name), describe(wrong_name)
    assert world.status_as_owner(f"/users/{other}") == 404

    more = d.call(
        "POST",
        "/invites/accept",
        json={"token": token, "username": name, "password": password, "role": "owner"},
    )
    assert more.status_code in (201, 422), describe(more)
    if more.status_code == 422:
        accepted = d.call(
            "POST", "/invites/accept", json={"token": token, "username": name, "password": password}
        )
        assert accepted.status_code == 201, describe(accepted)
    assert world.owner("GET", f"/users/{name}")["role"] == "viewer"
    # An instance viewer is at most a viewer in the project, whatever the invitation said.
    assert (name, "developer") in world.members() or (name, "viewer") in world.members()

    again = d.call(
        "POST", "/invites/accept", json={"token": token, "username": name, "password": strong_password()}
    )
    assert _accept_refused(again), describe(again)
    reuse_other = d.call(
        "POST", "/invites/accept", json={"token": token, "username": other, "password": strong_password()}
    )
    assert _accept_refused(reuse_other), describe(reuse_other)
    assert world.status_as_owner(f"/users/{other}") == 404


def test_a_revoked_invitation_cannot_be_accepted(world: World) -> None:
    name = f"mx-inv-{_hex()}"
    invite = world.owner("POST", "/invites", json={"username": name, "role": "developer"})
    world.owner("DELETE", f"/invites/{invite['invite']['id']}")
    response = world.d.call(
        "POST",
        "/invites/accept",
        json={"token": invite["token"], "username": name, "password": strong_password()},
    )
    assert _accept_refused(response), describe(response)
    assert world.status_as_owner(f"/users/{name}") == 404


def test_an_invitation_by_email_needs_that_email(world: World) -> None:
    email = f"mx-{_hex()}@example.com"
    invite = world.owner("POST", "/invites", json={"email": email, "role": "developer"})
    name = f"mx-inv-{_hex()}"
    body = {"token": invite["token"], "username": name, "password": strong_password()}
    for wrong in ({}, {"email": f"other-{_hex()}@example.com"}):
        response = world.d.call("POST", "/invites/accept", json={**body, **wrong})
        assert _accept_refused(response), describe(response)
    assert world.status_as_owner(f"/users/{name}") == 404
    accepted = world.d.call("POST", "/invites/accept", json={**body, "email": email})
    assert accepted.status_code == 201, describe(accepted)
