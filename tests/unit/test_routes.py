"""The route table computed from the store: which apps are routed, to which container and port, with which
domain options; deterministic whatever the order things were added in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mist_core.domains import DomainOptions, add_domain
from mist_core.errors import InvalidInput
from mist_core.proxy.routes import DomainRoute, Route, route_table
from mist_core.store import Store, ts

CHALLENGE = "127.0.0.1:8081"


async def _seed(store: Store) -> None:
    """shop/web (live, port 8080), shop/api (live, no port), shop/new (never deployed), blog/site (live)."""
    async with store.write() as w:
        for pid, project in ((1, "shop"), (2, "blog")):
            await w.execute(
                "INSERT INTO projects (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (pid, project, ts(), ts()),
            )
        apps = ((1, 1, "web", 8080), (2, 1, "api", None), (3, 1, "new", 3000), (4, 2, "site", 5000))
        for app_id, pid, name, port in apps:
            spec = {"git_url": "https://example.com/r.git", "port": port}
            await w.execute(
                "INSERT INTO apps (id, project_id, name, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (app_id, pid, name, json.dumps(spec), ts(), ts()),
            )
            if name == "new":
                continue
            project = "shop" if pid == 1 else "blog"
            dep = await w.execute(
                "INSERT INTO deployments (app_id, state, ref, container_name, config, created_at) "
                "VALUES (?, 'live', 'main', ?, ?, ?)",
                (app_id, f"mist-{project}-{name}-{app_id}0", json.dumps({"spec": spec}), ts()),
            )
            await w.execute("UPDATE apps SET live_deployment_id = ? WHERE id = ?", (dep, app_id))


@pytest.fixture
async def store(tmp_path: Path):
    store = await Store.open(tmp_path / "mist.db")
    await _seed(store)
    try:
        yield store
    finally:
        await store.close()


async def test_only_apps_with_domains_and_a_live_container_are_routed(store: Store) -> None:
    await add_domain(store, 1, "shop.example.com")
    await add_domain(store, 3, "new.example.com")  # no deployment yet
    table = await route_table(store, challenge_upstream=CHALLENGE)
    assert [(r.ref, r.container, r.upstream) for r in table.routes] == [
        ("shop/web", "mist-shop-web-10", "mist-shop-web-10:8080")
    ]
    assert table.challenge_upstream == CHALLENGE


async def test_routes_and_domains_are_sorted_whatever_the_insertion_order(store: Store) -> None:
    await add_domain(store, 1, "z.example.com")
    await add_domain(store, 4, "blog.example.com")
    await add_domain(store, 1, "a.example.com", DomainOptions(headers={"X-B": "2", "X-A": "1"}))
    table = await route_table(store, challenge_upstream=CHALLENGE)
    assert [r.ref for r in table.routes] == ["blog/site", "shop/web"]
    assert [d.name for d in table.routes[1].domains] == ["a.example.com", "z.example.com"]
    assert table.routes[1].domains[0].headers == (("X-A", "1"), ("X-B", "2"))
    assert table == await route_table(store, challenge_upstream=CHALLENGE)


async def test_an_app_without_a_port_goes_to_port_80_and_the_table_says_so(store: Store) -> None:
    await add_domain(store, 2, "api.example.com")
    table = await route_table(store, challenge_upstream=CHALLENGE)
    (route,) = table.routes
    assert (route.port, route.port_assumed, route.upstream) == (80, True, "mist-shop-api-20:80")
    assert table.notes and "shop/api" in table.notes[0] and "--port" in table.notes[0]


async def test_the_upstream_resolver_chooses_the_host_the_proxy_dials(store: Store) -> None:
    await add_domain(store, 1, "shop.example.com")

    async def resolve(container: str) -> str:
        return {"mist-shop-web-10": "172.17.0.9"}[container]

    table = await route_table(store, challenge_upstream=CHALLENGE, upstream_resolver=resolve)
    assert table.routes[0].upstream == "172.17.0.9:8080"
    table = await route_table(store, challenge_upstream=CHALLENGE, upstream_resolver=lambda c: "10.0.0.2")
    assert table.routes[0].upstream == "10.0.0.2:8080"


async def test_a_pending_deployment_is_routed_before_the_store_marks_it_live(store: Store) -> None:
    await add_domain(store, 1, "shop.example.com")
    await add_domain(store, 3, "new.example.com")
    async with store.write() as w:
        new_dep = await w.execute(
            "INSERT INTO deployments (app_id, state, ref, container_name, config, created_at) "
            "VALUES (3, 'switching', 'main', 'mist-shop-new-99', ?, ?)",
            (json.dumps({"spec": {"port": 3000}, "port": 3001}), ts()),
        )
    table = await route_table(store, challenge_upstream=CHALLENGE, pending={3: new_dep})
    new = next(r for r in table.routes if r.app == "new")
    # The port the deployment recorded wins over its spec snapshot.
    assert (new.container, new.upstream, new.deployment_id) == (
        "mist-shop-new-99",
        "mist-shop-new-99:3001",
        new_dep,
    )


async def test_host_names_include_www_redirect_sources_and_exclude_plain_http_domains(store: Store) -> None:
    await add_domain(store, 1, "example.com", DomainOptions(www_redirect="to-apex"))
    await add_domain(store, 1, "plain.example.com", DomainOptions(https=False))
    table = await route_table(store, challenge_upstream=CHALLENGE)
    assert table.host_names() == ["example.com", "www.example.com"]
    assert [d.name for _, d in table.without("example.com").domains()] == ["plain.example.com"]


async def test_a_bad_challenge_upstream_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="host:port"):
        await route_table(store, challenge_upstream="127.0.0.1")
    with pytest.raises(InvalidInput):
        await route_table(store, challenge_upstream="x`:80")


def test_response_headers_merge_security_defaults_with_custom_ones_custom_winning() -> None:
    domain = DomainRoute(
        name="a.example", headers=(("X-Frame-Options", "SAMEORIGIN"), ("X-Robots-Tag", "none"))
    )
    assert domain.response_headers() == (
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "SAMEORIGIN"),
        ("X-Robots-Tag", "none"),
    )
    assert DomainRoute(name="a.example", security_headers=False).response_headers() == ()
    assert DomainRoute(name="a.example", hsts_max_age=60).hsts == "max-age=60"
    assert DomainRoute(name="a.example", https=False, hsts_max_age=60).hsts is None


def test_route_keys_stay_unique_when_names_contain_double_hyphens() -> None:
    def route(project: str, app: str, app_id: int) -> Route:
        return Route(project, app, app_id, 1, "c", "c:80", 80, False, ())

    keys = {route("a--b", "c", 1).key, route("a", "b--c", 2).key, route("a", "b", 3).key}
    assert len(keys) == 3
