"""The proxy in front of the apps: one route table computed from the store, written out for Traefik (file
provider) or loaded into Caddy (admin API)."""

from __future__ import annotations

from .caddy import CaddyProxy, ProxyError, caddy_config
from .routes import CHALLENGE_PATH, DomainRoute, Route, RouteTable, route_table
from .traefik import CertFiles, traefik_config, write_traefik

__all__ = [
    "CHALLENGE_PATH",
    "CaddyProxy",
    "CertFiles",
    "DomainRoute",
    "ProxyError",
    "Route",
    "RouteTable",
    "caddy_config",
    "route_table",
    "traefik_config",
    "write_traefik",
]
