"""The Traefik v3 backend: the route table written as file-provider configuration, one file per app plus
one for what all apps share (the ACME challenge router, TLS certificates), each replaced atomically.

The files are JSON, which is YAML too: Traefik reads them as ``.yml`` and Mist needs no YAML library.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import validate
from .routes import CHALLENGE_PATH, DomainRoute, Route, RouteTable

__all__ = ["CHALLENGE_PRIORITY", "SHARED_FILE", "CertFiles", "traefik_config", "write_traefik"]

# Above any router Traefik would rank by rule length (its default priority), below the range Traefik keeps
# for its internal routers.
CHALLENGE_PRIORITY = 1_000_000
SHARED_FILE = "_mist.yml"
HEADER_LINE = "# Written by Mist from its route table: edits are overwritten.\n"

# Files Mist writes: `<project>--<app>[--<id>].yml` and the shared one. Anything else in the directory is
# left alone.
_APP_FILE = re.compile(r"[a-z0-9][a-z0-9-]*--[a-z0-9][a-z0-9-]*\.yml")
_TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class CertFiles:
    """A certificate chain and its key as files Traefik can read (paths as Traefik sees them). Give new file
    names on renewal: Traefik's file provider notices the changed config and reloads the pair."""

    cert_file: str
    key_file: str


def _rule(host: str, path_prefix: str) -> str:
    # Names and prefixes were validated to letters, digits, '.', '-', '_', '~' and '/': nothing that could
    # close a backtick string.
    rule = f"Host(`{host}`)"
    if path_prefix:
        rule += f" && PathPrefix(`{path_prefix}`)"
    return rule


def _slug(name: str) -> str:
    # Underscores never occur in a validated domain, so the slug is as unique as the name.
    return name.replace(".", "_")


def _headers_middleware(domain: DomainRoute) -> dict[str, Any] | None:
    headers: dict[str, Any] = {}
    custom: dict[str, str] = {}
    for name, value in domain.response_headers():
        lower = name.lower()
        if lower == "x-content-type-options" and value == "nosniff":
            headers["contentTypeNosniff"] = True
        elif lower == "x-frame-options" and value.upper() == "DENY":
            headers["frameDeny"] = True
        elif lower == "x-frame-options" and value:
            headers["customFrameOptionsValue"] = value
        elif lower == "referrer-policy" and value:
            headers["referrerPolicy"] = value
        else:
            custom[name] = value  # "" makes Traefik remove the header
    if custom:
        headers["customResponseHeaders"] = custom
    if domain.hsts_max_age and domain.https:
        # Traefik adds Strict-Transport-Security to HTTPS responses only.
        headers["stsSeconds"] = domain.hsts_max_age
    return {"headers": headers} if headers else None


def _app_config(route: Route) -> dict[str, Any]:
    prefix = route.key
    service = f"{prefix}--service"
    routers: dict[str, Any] = {}
    middlewares: dict[str, Any] = {}
    for domain in route.domains:
        base = f"{prefix}--{_slug(domain.name)}"
        serve: list[str] = []
        headers = _headers_middleware(domain)
        if headers:
            middlewares[f"{base}--headers"] = headers
            serve.append(f"{base}--headers")
        if domain.https:
            middlewares[f"{base}--to-https"] = {"redirectScheme": {"scheme": "https", "permanent": True}}
            routers[f"{base}--http"] = {
                "entryPoints": ["web"],
                "rule": _rule(domain.name, domain.path_prefix),
                "middlewares": [f"{base}--to-https"],
                "service": service,
            }
            routers[f"{base}--https"] = {
                "entryPoints": ["websecure"],
                "rule": _rule(domain.name, domain.path_prefix),
                "middlewares": serve,
                "service": service,
                "tls": {},
            }
        else:
            routers[f"{base}--http"] = {
                "entryPoints": ["web"],
                "rule": _rule(domain.name, domain.path_prefix),
                "middlewares": serve,
                "service": service,
            }
        source = domain.redirect_from
        if source:
            scheme = "https" if domain.https else "http"
            escaped = re.escape(source)
            middlewares[f"{base}--www"] = {
                "redirectRegex": {
                    "regex": f"^https?://{escaped}(?::[0-9]+)?/(.*)",
                    "replacement": f"{scheme}://{domain.name}/${{1}}",
                    "permanent": True,
                }
            }
            from_base = f"{prefix}--{_slug(source)}"
            routers[f"{from_base}--http"] = {
                "entryPoints": ["web"],
                "rule": _rule(source, ""),
                "middlewares": [f"{base}--www"],
                "service": service,
            }
            if domain.https:
                routers[f"{from_base}--https"] = {
                    "entryPoints": ["websecure"],
                    "rule": _rule(source, ""),
                    "middlewares": [f"{base}--www"],
                    "service": service,
                    "tls": {},
                }
    for router in routers.values():
        if not router["middlewares"]:
            del router["middlewares"]
    http: dict[str, Any] = {
        "routers": routers,
        "services": {
            service: {
                "loadBalancer": {
                    "servers": [{"url": f"http://{route.upstream}"}],
                    "passHostHeader": True,
                }
            }
        },
    }
    if middlewares:
        http["middlewares"] = middlewares
    return {"http": http}


def _shared_config(challenge_upstream: str, certificates: Mapping[str, CertFiles]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "http": {
            "routers": {
                "mist--acme-challenge": {
                    "entryPoints": ["web"],
                    "rule": f"PathPrefix(`{CHALLENGE_PATH}`)",
                    "priority": CHALLENGE_PRIORITY,
                    "service": "mist--acme-challenge",
                }
            },
            "services": {
                "mist--acme-challenge": {
                    "loadBalancer": {
                        "servers": [{"url": f"http://{challenge_upstream}"}],
                        "passHostHeader": True,
                    }
                }
            },
        }
    }
    pairs = sorted({(c.cert_file, c.key_file) for c in certificates.values()})
    if pairs:
        config["tls"] = {"certificates": [{"certFile": cert, "keyFile": key} for cert, key in pairs]}
    return config


def traefik_config(
    table: RouteTable,
    *,
    certificates: Mapping[str, CertFiles] | None = None,
    challenge_upstream: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The file-provider configuration for the table, by file name."""
    challenge = validate.upstream(challenge_upstream or table.challenge_upstream, "challenge_upstream")
    files = {SHARED_FILE: _shared_config(challenge, certificates or {})}
    for route in table.routes:
        files[f"{route.key}.yml"] = _app_config(route)
    return files


def _render(config: Mapping[str, Any]) -> str:
    return HEADER_LINE + json.dumps(config, indent=2, sort_keys=True) + "\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _replace_file(path: Path, text: str) -> bool:
    """Write ``path`` through a temporary file Traefik ignores (not ``*.yml``) and a rename, so Traefik never
    reads half a file. Returns False when the content was already there."""
    data = text.encode()
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    temp = path.with_name(f".{path.name}{_TEMP_SUFFIX}")
    temp.unlink(missing_ok=True)  # O_CREAT keeps the mode of a file left by a crash: make a new one
    # Private like everything in the data directory. Traefik still reads it: it runs as root in its container
    # (or as this user, with rootless Docker), on a bind mount of the directory.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return True


def write_traefik(
    table: RouteTable,
    directory: Path,
    *,
    certificates: Mapping[str, CertFiles] | None = None,
    challenge_upstream: str | None = None,
) -> list[str]:
    """Bring the file-provider directory in line with the table: changed files replaced atomically, files of
    apps no longer routed removed. Returns the names of the files written or removed."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = traefik_config(table, certificates=certificates, challenge_upstream=challenge_upstream)
    changed = [name for name, config in files.items() if _replace_file(directory / name, _render(config))]
    for entry in sorted(directory.iterdir()):
        if entry.name not in files and _APP_FILE.fullmatch(entry.name):
            entry.unlink(missing_ok=True)
            changed.append(entry.name)
        elif entry.name.endswith(".yml" + _TEMP_SUFFIX) and entry.name.startswith("."):
            entry.unlink(missing_ok=True)  # left by a crash mid-write
    if changed:
        fsync_dir(directory)
    return changed


def fsync_dir(directory: Path) -> None:
    """Make renames and removals in the directory durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
