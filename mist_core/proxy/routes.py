"""The route table: which domain goes to which container, with what options, computed from the store. Both
proxy backends (Traefik files, Caddy's admin API) are written from this one value, so they cannot disagree."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from .. import validate
from ..domains import redirect_source
from ..store import Store

__all__ = [
    "CHALLENGE_PATH",
    "DEFAULT_PORT",
    "DomainRoute",
    "Route",
    "RouteTable",
    "SECURITY_HEADERS",
    "UpstreamResolver",
    "route_table",
    "with_hooks_route",
]

CHALLENGE_PATH = "/.well-known/acme-challenge/"
DEFAULT_PORT = 80

# On by default for every domain; a custom header of the same name replaces the value.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
)

# Takes a container name and gives the host the proxy dials: the name itself when the proxy shares the
# `mist` network, the container's IP address when the proxy runs on the host.
UpstreamResolver = Callable[[str], "str | Awaitable[str]"]


@dataclass(frozen=True)
class DomainRoute:
    """One domain of a route, with the options the proxy applies to it."""

    name: str
    https: bool = True
    hsts_max_age: int = 0
    www_redirect: str = ""
    path_prefix: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # custom response headers, sorted by name; "" removes one
    security_headers: bool = True

    @property
    def redirect_from(self) -> str | None:
        """The www (or apex) name that is answered with a redirect to this one."""
        return redirect_source(self.name, self.www_redirect)

    def response_headers(self) -> tuple[tuple[str, str], ...]:
        """Every header the proxy sets on the app's responses (HSTS excluded: it goes on HTTPS only).

        Sorted by lowercase name; an empty value means "remove this header from responses".
        """
        merged: dict[str, tuple[str, str]] = {}
        if self.security_headers:
            merged.update({k.lower(): (k, v) for k, v in SECURITY_HEADERS})
        merged.update({k.lower(): (k, v) for k, v in self.headers})
        return tuple(merged[k] for k in sorted(merged))

    @property
    def hsts(self) -> str | None:
        """The ``Strict-Transport-Security`` value, when HTTPS and a max-age are set."""
        if not self.https or not self.hsts_max_age:
            return None
        return f"max-age={self.hsts_max_age}"


@dataclass(frozen=True)
class Route:
    """An app that has domains and a live container: where its traffic goes."""

    project: str
    app: str
    app_id: int
    deployment_id: int
    container: str
    upstream: str  # host:port the proxy dials
    port: int
    port_assumed: bool  # no port in the app's spec: DEFAULT_PORT was used
    domains: tuple[DomainRoute, ...]

    @property
    def key(self) -> str:
        """``<project>--<app>``, the prefix of every name the proxy config gives this app.

        Names may contain ``--`` themselves (``a--b`` / ``c`` against ``a`` / ``b--c``); such apps get their id
        appended, so a key with a single ``--`` is always a plain pair and keys never collide.
        """
        if "--" in self.project or "--" in self.app:
            return f"{self.project}--{self.app}--{self.app_id}"
        return f"{self.project}--{self.app}"

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.app}"


@dataclass(frozen=True)
class RouteTable:
    """Every route, sorted by project and app (domains sorted by name), and where ACME challenges go."""

    routes: tuple[Route, ...]
    challenge_upstream: str

    @property
    def notes(self) -> tuple[str, ...]:
        """What a user should know about the table: guesses that were made."""
        return tuple(
            f"{r.ref}: its spec names no port, so the proxy sends traffic to port {r.port}; "
            f"set one with `mist app set {r.ref} --port PORT` if the app listens elsewhere"
            for r in self.routes
            if r.port_assumed
        )

    def host_names(self) -> list[str]:
        """Every name the proxy answers to (redirect sources included), sorted: what needs a certificate."""
        return sorted(
            {n for _, d in self.domains() for n in (d.name, d.redirect_from) if n and d.https},
        )

    def domains(self) -> Iterator[tuple[Route, DomainRoute]]:
        for route in self.routes:
            for domain in route.domains:
                yield route, domain

    def without(self, name: str) -> RouteTable:
        """The same table without one domain (and without a route left with none)."""
        routes = []
        for route in self.routes:
            kept = tuple(d for d in route.domains if d.name != name)
            if kept:
                routes.append(replace(route, domains=kept))
        return RouteTable(routes=tuple(routes), challenge_upstream=self.challenge_upstream)


def _port(config: Mapping[str, object], spec: Mapping[str, object]) -> int | None:
    """The container port: what the deployment recorded (the generated Dockerfile's default included),
    else its spec snapshot, else the app's current spec."""
    recorded = config.get("port")
    if isinstance(recorded, int):
        return recorded
    snapshot = config.get("spec")
    if isinstance(snapshot, Mapping) and isinstance(snapshot.get("port"), int):
        return int(snapshot["port"])
    current = spec.get("port")
    return current if isinstance(current, int) else None


async def _resolve(resolver: UpstreamResolver | None, container: str) -> str:
    if resolver is None:
        return container
    host = resolver(container)
    if inspect.isawaitable(host):
        host = await host
    return str(host)


async def route_table(
    store: Store,
    *,
    challenge_upstream: str,
    upstream_resolver: UpstreamResolver | None = None,
    pending: Mapping[int, int] | None = None,
) -> RouteTable:
    """The routes of every app that has domains and a live deployment with a container.

    ``pending`` maps an app id to a deployment id to route to instead of the live one: the switching step
    moves the route to the new container before the store marks it live.
    """
    validate.upstream(challenge_upstream, "challenge_upstream")
    pending = pending or {}
    apps = await store.all(
        "SELECT a.id, a.name, a.spec, a.live_deployment_id, p.name AS project "
        "FROM apps a JOIN projects p ON p.id = a.project_id "
        "WHERE EXISTS (SELECT 1 FROM domains d WHERE d.app_id = a.id) ORDER BY p.name, a.name"
    )
    wanted = {a["id"]: pending.get(a["id"], a["live_deployment_id"]) for a in apps}
    deployment_ids = sorted({d for d in wanted.values() if d is not None})
    deployments = {}
    if deployment_ids:
        marks = ",".join("?" * len(deployment_ids))
        rows = await store.all(
            f"SELECT id, app_id, container_name, config FROM deployments WHERE id IN ({marks})",
            deployment_ids,
        )
        deployments = {r["id"]: r for r in rows}
    domain_rows = await store.all("SELECT * FROM domains ORDER BY app_id, name")
    by_app: dict[int, list[DomainRoute]] = {}
    for row in domain_rows:
        by_app.setdefault(row["app_id"], []).append(
            DomainRoute(
                name=row["name"],
                https=bool(row["https"]),
                hsts_max_age=row["hsts_max_age"],
                www_redirect=row["www_redirect"],
                path_prefix=row["path_prefix"],
                headers=tuple(sorted(json.loads(row["headers"]).items(), key=lambda kv: kv[0].lower())),
                security_headers=bool(row["security_headers"]),
            )
        )
    routes = []
    for app in apps:
        dep = deployments.get(wanted[app["id"]])
        if dep is None or dep["app_id"] != app["id"] or not dep["container_name"]:
            continue
        port = _port(json.loads(dep["config"] or "{}"), json.loads(app["spec"] or "{}"))
        host = await _resolve(upstream_resolver, dep["container_name"])
        routes.append(
            Route(
                project=app["project"],
                app=app["name"],
                app_id=app["id"],
                deployment_id=dep["id"],
                container=dep["container_name"],
                upstream=validate.upstream(f"{host}:{port or DEFAULT_PORT}"),
                port=port or DEFAULT_PORT,
                port_assumed=port is None,
                domains=tuple(by_app.get(app["id"], ())),
            )
        )
    return RouteTable(routes=tuple(routes), challenge_upstream=challenge_upstream)


def with_hooks_route(table: RouteTable, public_url: str, upstream: str) -> RouteTable:
    """The table with Mist's own public routes first: ``<public_url host>/hooks/`` (webhook deliveries, the
    GitHub App pages) to the daemon's hooks listener at ``upstream``. First, so an app that answers the same
    host name does not shadow it; its project name cannot be a real project's (names have no ``_``)."""
    parts = urlsplit(public_url)
    host = validate.upstream(upstream, "hooks_upstream")
    route = Route(
        project="_mist",
        app="hooks",
        app_id=0,
        deployment_id=0,
        container="",
        upstream=host,
        port=int(host.rpartition(":")[2]),
        port_assumed=False,
        domains=(
            DomainRoute(name=parts.hostname or "", https=parts.scheme == "https", path_prefix="/hooks"),
        ),
    )
    return RouteTable(routes=(route, *table.routes), challenge_upstream=table.challenge_upstream)
