"""The operation table: how each operation of the Mist API travels over HTTP, written once for the daemon's
routes (``server/app.py``), ``RemoteMist`` (``client.py``) and the reference in docs/api.md.

A row names an operation like its permission (``"apps.deploy"``) and says only what the abstract method of
``MistAPI`` cannot: the HTTP method, the path under ``/v1``, a success status other than the usual one, and
the few special cases. Everything else is read from the method's signature and annotations:

- ``app_ref`` (``"project/app"``) fills ``{project}`` and ``{app}`` of the path; when the path names only
  ``{project}`` (creating an app), the app's name is the body field ``name``; when the path names neither,
  it is a query parameter. ``db_ref`` (``"project/database"``) does the same with ``{database}``.
- An argument whose name (or ``wire`` name) is a ``{placeholder}`` of the path is a path parameter.
- Every other argument of a GET or DELETE is a query parameter; of a POST, PUT or PATCH, part of the JSON
  body. A pydantic model alone in the body is the body; beside other arguments, its fields sit beside
  theirs; plain arguments make a body of their own (``AppsDeployRequest``). A body whose arguments all have
  defaults may be left out.
- What comes back: ``None`` is 204 with no body, ``str`` is ``text/plain``, ``AsyncIterator[X]`` is a stream
  of Server-Sent Events, one ``X`` per event, anything else JSON of the annotated type.

Resolving the table against the interface fails (``TableError``, at import) when they disagree: an
operation without a row or a row without an operation, a placeholder that names no argument, an argument
that goes nowhere, two arguments under one name.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache, cached_property, lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from . import validate
from .api import MistAPI
from .auth import permissions

# ---------------------------------------------------------------------------------------------- rows


class TableError(ValueError):
    """The operation table disagrees with ``MistAPI`` or the permission table (a mistake in the code)."""


@dataclass(frozen=True)
class Codec:
    """How an argument travels when its Python value is not a plain query value: ``wire_type`` is what the
    server accepts, ``encode`` turns the argument into it, ``decode`` turns it back (``None``, the parameter
    left out, gives the argument's default)."""

    wire_type: Any
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    description: str


def _tail_of(value: str | None) -> int | None:
    return validate.log_tail(value if value is not None else "")


# ``tail=None`` (every line) is ``?tail=all`` on the wire.
TAIL = Codec(
    str | None,
    encode=lambda tail: "all" if tail is None else tail,
    decode=_tail_of,
    description="a number of lines, or 'all'",
)


@dataclass(frozen=True)
class Row:
    """One operation as written in the table: what the abstract method cannot say."""

    name: str  # "part.method" of MistAPI, the key of the permission table
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str  # under /v1, with {placeholders}
    status: int | None = None  # default: 204 for a method returning None, 200 otherwise
    wire: Mapping[str, str] = field(default_factory=dict)  # argument -> its name on the wire
    secret: frozenset[str] = frozenset()  # body fields a repr never shows (passwords, codes, keys)
    describe: Mapping[str, str] = field(
        default_factory=dict
    )  # argument -> description in the OpenAPI document
    codecs: Mapping[str, Codec] = field(default_factory=dict)  # argument -> how it travels
    check: str | None = None  # a stream: the operation called (same arguments) before the stream opens
    # A two-way byte stream (an exec session): the body model is its first frame, and the route and the client
    # are written by hand (``server/exec.py``, ``exec_client.py``) on the framing of ``mist_core.execs``.
    duplex: bool = False


def op(
    name: str,
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"],
    path: str,
    status: int | None = None,
    *,
    wire: Mapping[str, str] | None = None,
    secret: Iterable[str] = (),
    describe: Mapping[str, str] | None = None,
    codecs: Mapping[str, Codec] | None = None,
    check: str | None = None,
    duplex: bool = False,
) -> Row:
    return Row(
        name, method, path, status, wire or {}, frozenset(secret), describe or {}, codecs or {}, check, duplex
    )


APP = "/projects/{project}/apps/{app}"
DB = "/projects/{project}/databases/{database}"

ROWS: tuple[Row, ...] = (
    # setup, login and one's own account
    op("auth.status", "GET", "/setup"),
    op("auth.setup", "POST", "/setup", 201, secret={"password"}),
    op("auth.login", "POST", "/login", secret={"password", "totp"}),
    op("auth.refresh", "POST", "/refresh", secret={"refresh_token"}),
    op("auth.logout", "POST", "/logout"),
    op("auth.whoami", "GET", "/me"),
    op("auth.change_password", "POST", "/me/password", secret={"current", "new"}),
    op("auth.totp_setup", "POST", "/me/totp"),
    op("auth.totp_enable", "POST", "/me/totp/enable", secret={"code"}),
    op("auth.totp_disable", "POST", "/me/totp/disable", secret={"password"}),
    # users, members, invitations
    op("users.list", "GET", "/users"),
    op("users.create", "POST", "/users", 201, secret={"password"}),
    op("users.get", "GET", "/users/{username}"),
    op("users.update", "PATCH", "/users/{username}"),
    op("users.set_role", "PUT", "/users/{username}/role"),
    op("users.delete", "DELETE", "/users/{username}"),
    op("members.list", "GET", "/projects/{project}/members"),
    op("members.add", "PUT", "/projects/{project}/members/{username}"),
    op("members.remove", "DELETE", "/projects/{project}/members/{username}"),
    op("invites.create", "POST", "/invites", 201),
    op("invites.list", "GET", "/invites"),
    op("invites.revoke", "DELETE", "/invites/{invite_id}"),
    op("invites.accept", "POST", "/invites/accept", 201, secret={"token", "password"}),
    # sessions, API tokens, secrets
    op("sessions.list", "GET", "/sessions", describe={"username": "another user's (admins), or '*' for all"}),
    op("sessions.revoke", "DELETE", "/sessions/{session_id}"),
    op("tokens.create", "POST", "/tokens", 201),
    op("tokens.list", "GET", "/tokens"),
    op("tokens.revoke", "DELETE", "/tokens/{token_id}"),
    op("secrets.rotate_key", "POST", "/secrets/rotate-key"),
    # projects
    op("projects.list", "GET", "/projects", wire={"query": "q"}),
    op("projects.create", "POST", "/projects", 201),
    op("projects.get", "GET", "/projects/{name}"),
    op("projects.update", "PATCH", "/projects/{name}"),
    op("projects.delete", "DELETE", "/projects/{name}"),
    # apps
    op("apps.list", "GET", "/apps", wire={"query": "q"}),
    op("apps.create", "POST", "/projects/{project}/apps", 201),
    op("apps.get", "GET", APP),
    op("apps.update", "PATCH", APP),
    op("apps.delete", "DELETE", APP),
    op("apps.deploy", "POST", APP + "/deploy", 202),
    op("apps.rollback", "POST", APP + "/rollback", 202),
    op("apps.start", "POST", APP + "/start"),
    op("apps.stop", "POST", APP + "/stop"),
    op("apps.restart", "POST", APP + "/restart"),
    # An unknown app is a plain 404, not an error inside a stream that already answered 200.
    op("apps.logs", "GET", APP + "/logs", codecs={"tail": TAIL}, check="apps.get"),
    # git providers, app sources, webhooks and previews
    op("git.providers", "GET", "/git/providers"),
    op("git.add_provider", "POST", "/git/providers", 201),
    op("git.github_manifest", "POST", "/git/github-manifest", 201),
    op("git.remove_provider", "DELETE", "/git/providers/{name}"),
    op("git.repos", "GET", "/git/providers/{name}/repos", wire={"provider": "name"}),
    op(
        "git.branches",
        "GET",
        "/git/providers/{name}/branches",
        wire={"provider": "name"},
        describe={"repo": "the repository: owner/name"},
    ),
    op("apps.source", "GET", APP + "/source"),
    op("apps.set_source", "PATCH", APP + "/source"),
    op("apps.deploy_key", "POST", APP + "/source/deploy-key"),
    op("webhooks.list", "GET", APP + "/webhooks"),
    op("previews.list", "GET", APP + "/previews"),
    # databases
    op("databases.create", "POST", "/projects/{project}/databases", 201),
    op("databases.list", "GET", "/databases"),
    op("databases.get", "GET", DB),
    op("databases.delete", "DELETE", DB),
    op("databases.start", "POST", DB + "/start"),
    op("databases.stop", "POST", DB + "/stop"),
    op("databases.restart", "POST", DB + "/restart"),
    op("databases.logs", "GET", DB + "/logs", codecs={"tail": TAIL}, check="databases.get"),
    op("databases.url", "GET", DB + "/url"),
    op("databases.link", "POST", DB + "/links", 201),
    op("databases.unlink", "DELETE", DB + "/links/{app}"),
    # databases after they exist: a client session, users, settings and version
    op("databases.shell", "POST", DB + "/shell", duplex=True),
    op("databases.users", "GET", DB + "/users"),
    op("databases.create_user", "POST", DB + "/users", 201, secret={"password"}),
    op("databases.drop_user", "DELETE", DB + "/users/{user}"),
    op("databases.update", "PATCH", DB),
    op("databases.upgrade", "POST", DB + "/upgrade"),
    # environment
    op("env.list", "GET", APP + "/env"),
    op("env.set", "POST", APP + "/env"),
    op("env.unset", "DELETE", APP + "/env/{key}"),
    op("env.import_dotenv", "POST", APP + "/env/import"),
    op("env.export_dotenv", "GET", APP + "/env/export"),
    # deployments
    op("deployments.list", "GET", APP + "/deployments"),
    op("deployments.get", "GET", "/deployments/{deployment_id}"),
    op("deployments.log", "GET", "/deployments/{deployment_id}/log", check="deployments.get"),
    op("deployments.cancel", "POST", "/deployments/{deployment_id}/cancel"),
    # runtime
    op("containers.list", "GET", "/containers"),
    op("containers.describe", "GET", APP + "/container"),
    op("containers.exec", "POST", APP + "/exec", duplex=True),
    op("metrics.current", "GET", "/metrics"),
    op("metrics.history", "GET", "/metrics/history"),
    op("metrics.stream", "GET", "/metrics/stream"),
    op("events.stream", "GET", "/events"),
    # domains, certificates and the proxy
    op("domains.list", "GET", APP + "/domains"),
    op("domains.add", "POST", APP + "/domains", 201),
    op("domains.update", "PUT", APP + "/domains/{name}"),
    op("domains.remove", "DELETE", APP + "/domains/{name}"),
    op(
        "certificates.list",
        "GET",
        "/certificates",
        wire={"app_ref": "app"},
        describe={"app_ref": "only this app's domains: project/app"},
    ),
    op("certificates.renew", "POST", "/certificates/{domain}/renew"),
    op("certificates.upload", "PUT", "/certificates/{domain}", secret={"key_pem"}),
    op("proxy.status", "GET", "/proxy"),
    op("proxy.reload", "POST", "/proxy/reload"),
    op("proxy.install", "POST", "/proxy/install"),
    # administration
    op("audit.list", "GET", "/audit"),
    op("settings.list", "GET", "/settings"),
    op("settings.get", "GET", "/settings/{key}"),
    op("settings.set", "PUT", "/settings/{key}"),
    # backups
    op("backups.list", "GET", "/projects/{project}/backups"),
    op("backups.get", "GET", "/backups/{backup_id}"),
    op("backups.run", "POST", "/projects/{project}/backups", 202),
    op("backups.verify", "POST", "/backups/{backup_id}/verify", 202),
    op("backups.restore", "POST", "/backups/{backup_id}/restore", 202),
    op("backups.delete", "DELETE", "/backups/{backup_id}"),
    op("backups.schedules", "GET", "/projects/{project}/backup-schedules"),
    op("backups.schedule", "POST", "/projects/{project}/backup-schedules", 201),
    op("backups.unschedule", "DELETE", "/projects/{project}/backup-schedules/{schedule_id}"),
    op("backups.destinations", "GET", "/backup-destinations"),
    op("backups.add_destination", "POST", "/backup-destinations", 201),
    op("backups.remove_destination", "DELETE", "/backup-destinations/{name}"),
)

# The OpenAPI tag of a part, where it is not the part's own name.
TAGS = {
    "containers": "runtime",
    "metrics": "runtime",
    "events": "runtime",
    "secrets": "admin",
    "audit": "admin",
    "settings": "admin",
    "webhooks": "git",
    "previews": "git",
}


# ---------------------------------------------------------------------------------------------- resolved

# The arguments that name a thing of a project as "project/name", and the path placeholder of the name: both
# parts travel in the path (``where="app"``, ``wire="project/<placeholder>"``), or, when creating the thing,
# the project in the path and the name as the body field "name".
REFERENCES = {"app_ref": "app", "db_ref": "database"}

Where = Literal[
    "path",  # one path segment, {wire}
    "app",  # app_ref or db_ref: {project} and {app} (or {database}), as named by ``wire``
    "project+name",  # app_ref or db_ref: {project}, and the name as the body field "name"
    "query",
    "body",  # one field of the body
    "model",  # a pydantic model that is the whole body
    "spread",  # a pydantic model whose fields sit beside the other body fields
]

EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class Argument:
    """One parameter of an operation's method and where it travels."""

    name: str
    annotation: Any
    default: Any  # ``EMPTY`` when required
    keyword: bool  # keyword-only in the interface
    where: Where
    wire: str  # its name in the path, query or body
    codec: Codec | None = None
    description: str | None = None

    @property
    def required(self) -> bool:
        return self.default is EMPTY


class RequestBody(BaseModel):
    """The base of the bodies made from an operation's plain arguments."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, eq=False)
class Operation:
    """A row of the table resolved against ``MistAPI``: every argument placed, the result typed."""

    row: Row
    part: str  # "apps"
    attribute: str  # "deploy"
    signature: inspect.Signature  # of the abstract method, ``self`` included
    doc: str
    arguments: tuple[Argument, ...]
    returns: Any  # the annotation: a model, list[...], Page[...], str, None, or the streamed item's type
    stream: bool
    public: bool  # needs no token (permission table)

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def method(self) -> str:
        return self.row.method

    @property
    def path(self) -> str:
        return self.row.path

    @property
    def status(self) -> int:
        if self.row.status is not None:
            return self.row.status
        return 204 if self.returns is None else 200

    @property
    def tag(self) -> str:
        return TAGS.get(self.part, self.part)

    @property
    def check(self) -> str | None:
        return self.row.check

    @property
    def duplex(self) -> bool:
        return self.row.duplex

    def placed(self, *where: Where) -> tuple[Argument, ...]:
        return tuple(a for a in self.arguments if a.where in where)

    @property
    def body_fields(self) -> tuple[tuple[str, Any, Any], ...]:
        """The plain fields of the body: (name, annotation, default)."""
        fields: list[tuple[str, Any, Any]] = []
        for a in self.arguments:
            if a.where == "project+name":
                fields.append(("name", str, EMPTY))
            elif a.where == "body":
                fields.append((a.wire, a.annotation, a.default))
        return tuple(fields)

    @property
    def body_optional(self) -> bool:
        """Whether the body may be left out: every argument it carries has a default."""
        carried = self.placed("body", "model", "spread", "project+name")
        return bool(carried) and all(not a.required for a in carried)

    @cached_property
    def body_model(self) -> type[BaseModel] | None:
        """The pydantic model of the JSON body (``None`` without one)."""
        whole = self.placed("model")
        if whole:
            return model_type(whole[0].annotation)
        fields = {
            name: (annotation, Field(... if default is EMPTY else default, repr=name not in self.row.secret))
            for name, annotation, default in self.body_fields
        }
        spread = self.placed("spread")
        if spread:
            base = model_type(spread[0].annotation)
            model: type[BaseModel] = create_model(self.body_name, __base__=base, **fields)  # type: ignore[call-overload]
        elif fields:
            model = create_model(self.body_name, __base__=RequestBody, **fields)  # type: ignore[call-overload]
        else:
            return None
        model.__doc__ = f"The body of {self.name}."
        return model

    @property
    def body_name(self) -> str:
        return "".join(w.capitalize() for w in re.split(r"[._]", self.name)) + "Request"


# ---------------------------------------------------------------------------------------------- resolving


def model_type(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model of ``annotation`` (``X`` or ``X | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        if len(members) == 1:
            return model_type(members[0])
    return None


@lru_cache(maxsize=4)
def parts(interface: type[MistAPI] = MistAPI) -> dict[str, Any]:
    """The parts of ``interface`` by attribute name: ``{"auth": AuthAPI, "apps": AppsAPI, ...}``."""
    return typing.get_type_hints(interface)


_SCALARS = (str, int, bool, float, datetime)


def _is_scalar(annotation: Any) -> bool:
    """Whether ``annotation`` fits a query parameter: a plain value, a Literal, or either or None."""
    if annotation in _SCALARS:
        return True
    if typing.get_origin(annotation) is Literal:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return all(m is type(None) or _is_scalar(m) for m in typing.get_args(annotation))
    return False


def _placeholders(path: str) -> list[str]:
    return re.findall(r"\{([^}/]+)\}", path)


def resolve(row: Row, interface: type[MistAPI] = MistAPI) -> Operation:
    """``row`` with its arguments placed and its result typed, from the abstract method it names."""
    part, _, attribute = row.name.partition(".")
    cls = parts(interface).get(part)
    function = getattr(cls, attribute, None) if cls is not None else None
    if cls is None or function is None or not getattr(function, "__isabstractmethod__", False):
        raise TableError(f"the row {row.name!r} names no operation of MistAPI: name it '<part>.<method>'")
    if row.name not in permissions.PERMISSIONS:
        raise TableError(f"{row.name} has no rule in the permission table (mist_core/auth/permissions.py)")
    if not row.path.startswith("/"):
        raise TableError(f"{row.name}: the path {row.path!r} must start with '/'")

    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)
    returns = hints.get("return")
    stream = typing.get_origin(returns) is AsyncIterator
    if stream:
        (returns,) = typing.get_args(returns)
    elif returns is type(None):
        returns = None

    names = [p for p in signature.parameters if p != "self"]
    for option in ("wire", "describe", "codecs"):
        for name in getattr(row, option):
            if name not in names:
                raise TableError(
                    f"{row.name}: {option} names {name!r}, which is not an argument of the method"
                )
    if row.check is not None and not stream:
        raise TableError(f"{row.name}: only a stream has a check before it opens")

    placeholders = _placeholders(row.path)
    if len(set(placeholders)) != len(placeholders):
        raise TableError(f"{row.name}: the path {row.path!r} names a placeholder twice")
    reads_body = row.method in ("POST", "PUT", "PATCH")
    arguments: list[Argument] = []
    for name in names:
        parameter = signature.parameters[name]
        annotation = hints.get(name, Any)
        wire = row.wire.get(name, name)
        where: Where
        if name in REFERENCES and "project" in placeholders:
            second = REFERENCES[name]
            if second in placeholders:
                where = "app"
            elif reads_body:
                where = "project+name"
            else:
                raise TableError(f"{row.name}: {name} needs {{{second}}} in the path beside {{project}}")
            wire = f"project/{second}"
        elif wire in placeholders:
            where = "path"
        elif not reads_body:
            if not _is_scalar(row.codecs[name].wire_type if name in row.codecs else annotation):
                raise TableError(
                    f"{row.name}: the argument {name!r} ({annotation}) cannot travel in a query string, "
                    f"and a {row.method} has no body: put it in the path or use another method"
                )
            where = "query"
        elif model_type(annotation) is not None:
            where = "model"
        else:
            where = "body"
        arguments.append(
            Argument(
                name,
                annotation,
                parameter.default,
                parameter.kind is inspect.Parameter.KEYWORD_ONLY,
                where,
                wire,
                row.codecs.get(name),
                row.describe.get(name),
            )
        )

    models = [a for a in arguments if a.where == "model"]
    if len(models) > 1:
        raise TableError(
            f"{row.name}: two models ({', '.join(a.name for a in models)}) cannot share one body"
        )
    if models and any(a.where in ("body", "project+name") for a in arguments):
        # A model beside plain fields: its fields sit beside theirs.
        arguments = [replace(a, where="spread") if a.where == "model" else a for a in arguments]

    wires: dict[str, list[str]] = {"path": [], "query": [], "body": []}
    for a in arguments:
        if a.where == "app":
            wires["path"] += a.wire.split("/")
        elif a.where == "project+name":
            wires["path"].append("project")
            wires["body"].append("name")
        elif a.where in wires:
            wires[a.where].append(a.wire)
    for placeholder in placeholders:
        if placeholder not in wires["path"]:
            raise TableError(
                f"{row.name}: the path placeholder {{{placeholder}}} names no argument of the method"
            )
    for location, names_there in wires.items():
        doubled = sorted({w for w in names_there if names_there.count(w) > 1})
        if doubled:
            raise TableError(f"{row.name}: two arguments travel as the {location} parameter {doubled[0]!r}")
    unknown_secret = row.secret - {a.wire for a in arguments if a.where == "body"}
    if unknown_secret:
        raise TableError(
            f"{row.name}: secret names {sorted(unknown_secret)}, which are no fields of its body"
        )

    return Operation(
        row=row,
        part=part,
        attribute=attribute,
        signature=signature,
        doc=inspect.cleandoc(function.__doc__ or ""),
        arguments=tuple(arguments),
        returns=returns,
        stream=stream,
        public=permissions.PERMISSIONS[row.name].on == "public",
    )


def interface_operations(interface: type[MistAPI] = MistAPI) -> list[str]:
    """``"part.method"`` of every abstract method of every part of ``interface``, in declaration order."""
    names = []
    for part, cls in parts(interface).items():
        for attribute, value in vars(cls).items():
            if getattr(value, "__isabstractmethod__", False):
                names.append(f"{part}.{attribute}")
    return names


def resolve_table(rows: Iterable[Row] = ROWS, interface: type[MistAPI] = MistAPI) -> dict[str, Operation]:
    """Every row resolved; fails when the rows, the interface and the permission table disagree."""
    table: dict[str, Operation] = {}
    routes: dict[tuple[str, str], str] = {}
    for row in rows:
        if row.name in table:
            raise TableError(f"two rows for {row.name}")
        operation = resolve(row, interface)
        shape = re.sub(r"\{[^}]+\}", "{}", row.path)
        if (row.method, shape) in routes:
            raise TableError(f"{row.name} and {routes[row.method, shape]} are both {row.method} {row.path}")
        routes[row.method, shape] = row.name
        table[row.name] = operation
    missing = [name for name in interface_operations(interface) if name not in table]
    if missing:
        raise TableError(f"operations of MistAPI with no row in the operation table: {', '.join(missing)}")
    extra = sorted(set(permissions.PERMISSIONS) - set(table))
    if extra:
        raise TableError(f"rules in the permission table for no operation of the table: {', '.join(extra)}")
    for operation in table.values():
        check = operation.check
        if check is None:
            if operation.stream and operation.public:
                raise TableError(f"{operation.name}: a public stream must be checked before it opens")
            continue
        if check not in table:
            raise TableError(f"{operation.name}: its check {check!r} is not an operation")
        given = {a.name for a in operation.arguments}
        needed = {a.name for a in table[check].arguments if a.required}
        if not needed <= given:
            raise TableError(f"{operation.name}: its check {check} needs {sorted(needed - given)}")
    return table


_ROWS = {row.name: row for row in ROWS}


@cache
def operation(name: str) -> Operation:
    """One row resolved: what a client needs for the one or two calls a process makes. Only resolving the
    whole table (``OPERATIONS``) checks the rows against each other; the server and the tests do that."""
    row = _ROWS.get(name)
    if row is None:
        raise TableError(f"no row in the operation table for {name}")
    return resolve(row)


# The whole table, resolved and checked on first use (``from .operations import OPERATIONS`` included):
# resolving every row reads every annotation of MistAPI, which a one-command process does not need.
OPERATIONS: dict[str, Operation]


def __getattr__(name: str) -> Any:
    if name == "OPERATIONS":
        table = resolve_table()
        globals()["OPERATIONS"] = table
        return table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
