"""The Traefik file-provider writer, checked against what Traefik documents (every router's service and
middlewares exist, names are unique, certificate files exist, the challenge router wins) and against golden
files. Regenerate the golden files with ``MIST_UPDATE_GOLDEN=1``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mist_core.proxy import traefik
from mist_core.proxy.routes import CHALLENGE_PATH, DomainRoute, Route, RouteTable, with_hooks_route
from mist_core.proxy.traefik import CHALLENGE_PRIORITY, SHARED_FILE, CertFiles, write_traefik

GOLDEN = Path(__file__).parent / "golden" / "traefik"
CHALLENGE = "mist:8081"


def _route(project: str, app: str, app_id: int, *domains: DomainRoute, port: int = 8080) -> Route:
    container = f"mist-{project}-{app}-{app_id}0"
    return Route(project, app, app_id, app_id * 10, container, f"{container}:{port}", port, False, domains)


TABLES: dict[str, RouteTable] = {
    "one-app-defaults": RouteTable(
        routes=(_route("shop", "web", 1, DomainRoute("shop.example.com")),), challenge_upstream=CHALLENGE
    ),
    "every-option": RouteTable(
        routes=(
            _route(
                "shop",
                "web",
                1,
                DomainRoute(
                    "example.com",
                    hsts_max_age=31536000,
                    www_redirect="to-apex",
                    headers=(
                        ("X-Frame-Options", "SAMEORIGIN"),
                        ("X-Powered-By", ""),
                        ("X-Robots-Tag", "none"),
                    ),
                ),
                DomainRoute("api.example.com", path_prefix="/v1"),
                DomainRoute("plain.example.com", https=False, security_headers=False),
                DomainRoute("www.example.org", www_redirect="to-www"),
            ),
        ),
        challenge_upstream=CHALLENGE,
    ),
    "two-projects": RouteTable(
        routes=(
            _route("blog", "site", 2, DomainRoute("blog.example.net"), port=80),
            _route("shop", "web", 1, DomainRoute("shop.example.com", security_headers=False)),
        ),
        challenge_upstream=CHALLENGE,
    ),
}


def _certs(tmp_path: Path, table: RouteTable) -> dict[str, CertFiles]:
    certs = {}
    for name in table.host_names():
        cert, key = tmp_path / f"{name}-1.crt", tmp_path / f"{name}-1.key"
        cert.write_text("cert")
        key.write_text("key")
        certs[name] = CertFiles(str(cert), str(key))
    return certs


def _load(directory: Path) -> dict[str, dict[str, Any]]:
    """Every .yml file, parsed (they are JSON, which YAML reads as well)."""
    out = {}
    for path in sorted(directory.glob("*.yml")):
        text = path.read_text()
        assert text.startswith("#")
        out[path.name] = json.loads(text.split("\n", 1)[1])
    return out


def _check_structure(files: dict[str, dict[str, Any]]) -> None:
    """What Traefik needs for the merged configuration to load as intended."""
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    middlewares: dict[str, Any] = {}
    certificates: list[dict[str, str]] = []
    for config in files.values():
        http = config.get("http", {})
        for kind, into in (("routers", routers), ("services", services), ("middlewares", middlewares)):
            for name, value in http.get(kind, {}).items():
                assert name not in into, f"{kind[:-1]} {name} is defined twice"
                into[name] = value
        certificates += config.get("tls", {}).get("certificates", [])
        assert "api" not in config, "the dashboard/API must never be enabled"
    assert len({json.dumps(r["rule"]) + str(r["entryPoints"]) for r in routers.values()}) == len(routers)
    for name, router in routers.items():
        assert router["service"] in services, f"router {name} names a missing service"
        for middleware in router.get("middlewares", []):
            assert middleware in middlewares, f"router {name} names a missing middleware {middleware}"
        assert router["entryPoints"] in (["web"], ["websecure"])
        assert ("tls" in router) == (router["entryPoints"] == ["websecure"])
    for service in services.values():
        assert service["loadBalancer"]["servers"][0]["url"].startswith("http://")
    for cert in certificates:
        assert Path(cert["certFile"]).is_file() and Path(cert["keyFile"]).is_file()
    challenge = [r for r in routers.values() if CHALLENGE_PATH in r["rule"]]
    assert len(challenge) == 1
    (router,) = challenge
    assert router["rule"] == f"PathPrefix(`{CHALLENGE_PATH}`)" and router["entryPoints"] == ["web"]
    # Traefik ranks a router without a priority by the length of its rule.
    others = [r.get("priority", len(r["rule"])) for r in routers.values() if r is not router]
    assert all(router["priority"] > p for p in others)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_written_files_are_a_consistent_traefik_configuration(tmp_path: Path, name: str) -> None:
    table = TABLES[name]
    write_traefik(table, tmp_path / "dynamic", certificates=_certs(tmp_path, table))
    files = _load(tmp_path / "dynamic")
    assert sorted(files) == sorted([SHARED_FILE, *(f"{r.key}.yml" for r in table.routes)])
    _check_structure(files)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_written_files_match_the_golden_files(tmp_path: Path, name: str) -> None:
    table = TABLES[name]
    certs = {n: CertFiles(f"/certs/{n}-7.crt", f"/certs/{n}-7.key") for n in table.host_names()}
    write_traefik(table, tmp_path, certificates=certs)
    golden = GOLDEN / name
    if os.environ.get("MIST_UPDATE_GOLDEN") == "1":
        golden.mkdir(parents=True, exist_ok=True)
        for old in golden.glob("*.yml"):
            old.unlink()
        for path in tmp_path.glob("*.yml"):
            (golden / path.name).write_text(path.read_text())
    written = {p.name: p.read_text() for p in tmp_path.glob("*.yml")}
    expected = {p.name: p.read_text() for p in golden.glob("*.yml")}
    assert written == expected, "run with MIST_UPDATE_GOLDEN=1 if the change is intended, and review the diff"


def test_every_option_shows_up_in_the_routers_and_middlewares(tmp_path: Path) -> None:
    write_traefik(TABLES["every-option"], tmp_path)
    http = _load(tmp_path)["shop--web.yml"]["http"]
    routers, middlewares = http["routers"], http["middlewares"]
    apex = routers["shop--web--example_com--https"]
    assert apex["rule"] == "Host(`example.com`)" and apex["tls"] == {}
    headers = middlewares[apex["middlewares"][0]]["headers"]
    assert headers["stsSeconds"] == 31536000
    assert headers["contentTypeNosniff"] is True
    assert headers["customFrameOptionsValue"] == "SAMEORIGIN" and "frameDeny" not in headers
    assert headers["referrerPolicy"] == "strict-origin-when-cross-origin"
    assert headers["customResponseHeaders"] == {"X-Powered-By": "", "X-Robots-Tag": "none"}
    redirect = middlewares[routers["shop--web--example_com--http"]["middlewares"][0]]
    assert redirect == {"redirectScheme": {"permanent": True, "scheme": "https"}}
    www = middlewares[routers["shop--web--www_example_com--https"]["middlewares"][0]]["redirectRegex"]
    assert www["replacement"] == "https://example.com/${1}"
    assert www["regex"].startswith("^https?://www\\.example\\.com")
    apex_org = middlewares[routers["shop--web--example_org--http"]["middlewares"][0]]["redirectRegex"]
    assert apex_org["replacement"] == "https://www.example.org/${1}"
    api = routers["shop--web--api_example_com--https"]
    assert api["rule"] == "Host(`api.example.com`) && PathPrefix(`/v1`)"
    plain = routers["shop--web--plain_example_com--http"]
    assert "middlewares" not in plain and "shop--web--plain_example_com--https" not in routers
    service = http["services"][plain["service"]]
    assert service["loadBalancer"]["servers"] == [{"url": "http://mist-shop-web-10:8080"}]


def test_files_of_apps_no_longer_routed_are_removed_and_foreign_files_kept(tmp_path: Path) -> None:
    write_traefik(TABLES["two-projects"], tmp_path)
    (tmp_path / "operator-extra.yml").write_text("http: {}\n")
    assert (tmp_path / "blog--site.yml").exists()
    changed = write_traefik(TABLES["one-app-defaults"], tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.yml")) == [
        SHARED_FILE,
        "operator-extra.yml",
        "shop--web.yml",
    ]
    assert "blog--site.yml" in changed
    # Unchanged files are not rewritten, so Traefik does not reload for nothing.
    assert write_traefik(TABLES["one-app-defaults"], tmp_path) == []


def test_a_failure_mid_write_leaves_the_previous_file_whole_and_no_partial_yml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_traefik(TABLES["one-app-defaults"], tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}

    def half_then_fail(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(traefik, "_write_all", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        write_traefik(TABLES["every-option"], tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before
    _check_structure(_load(tmp_path))


def test_a_temporary_file_left_by_a_crash_is_cleaned_up_and_never_named_yml(tmp_path: Path) -> None:
    (tmp_path / ".shop--web.yml.tmp").write_text("{half")
    write_traefik(TABLES["one-app-defaults"], tmp_path)
    assert not (tmp_path / ".shop--web.yml.tmp").exists()
    assert all(
        not p.name.endswith(".yml") or p.name in (SHARED_FILE, "shop--web.yml") for p in tmp_path.iterdir()
    )


def test_certificates_are_listed_once_under_tls_certificates(tmp_path: Path) -> None:
    table = TABLES["every-option"]
    shared = CertFiles("/certs/example-3.crt", "/certs/example-3.key")
    write_traefik(table, tmp_path, certificates={"example.com": shared, "www.example.com": shared})
    config = _load(tmp_path)[SHARED_FILE]
    assert config["tls"]["certificates"] == [{"certFile": shared.cert_file, "keyFile": shared.key_file}]
    assert config["http"]["routers"]["mist--acme-challenge"]["priority"] == CHALLENGE_PRIORITY
    assert config["http"]["services"]["mist--acme-challenge"]["loadBalancer"]["servers"] == [
        {"url": "http://mist:8081"}
    ]


def test_mists_hooks_route_is_written_for_its_own_host_and_path(tmp_path: Path) -> None:
    table = with_hooks_route(TABLES["one-app-defaults"], "https://mist.example.com", "172.17.0.1:8787")
    write_traefik(table, tmp_path, certificates=_certs(tmp_path, table))
    files = _load(tmp_path)
    _check_structure(files)
    http = files["_mist--hooks.yml"]["http"]
    router = http["routers"]["_mist--hooks--mist_example_com--https"]
    assert router["rule"] == "Host(`mist.example.com`) && PathPrefix(`/hooks`)"
    assert http["services"][router["service"]]["loadBalancer"]["servers"] == [
        {"url": "http://172.17.0.1:8787"}
    ]
    assert "mist.example.com" in table.host_names()
