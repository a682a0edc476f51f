"""The Caddy backend: the route table turned into one complete Caddy JSON config and loaded through Caddy's
admin API in a single request, so every change is applied at once or not at all.

Mist brings its own certificates (``apps.tls.certificates.load_pem``) and turns Caddy's automatic HTTPS off:
Caddy never talks to an ACME server on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import validate
from ..errors import ProxyError
from .routes import CHALLENGE_PATH, DomainRoute, Route, RouteTable

if TYPE_CHECKING:
    import httpx

__all__ = ["CaddyProxy", "ProxyError", "caddy_config"]

HTTP_SERVER = "mist_http"
HTTPS_SERVER = "mist_https"

# A dial the app refuses (a container restarting, or a stop-then-start whose new container took the old
# address) is tried again for up to 1 s instead of failing at once. Only failed dials are retried: no request
# was sent on them yet. There is deliberately no short dial timeout: Caddy 2.6 does not retry a timed-out dial,
# so a SYN the app's full listen backlog dropped (Linux resends it after 1 s) would become a 502.
UPSTREAM_TRY_DURATION = "1s"
UPSTREAM_TRY_INTERVAL = "50ms"


def _port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def _host_path_match(host: str, path_prefix: str) -> dict[str, Any]:
    match: dict[str, Any] = {"host": [host]}
    if path_prefix:
        match["path"] = [path_prefix, f"{path_prefix}/*"]
    return match


def _redirect(location: str) -> dict[str, Any]:
    return {"handler": "static_response", "status_code": 308, "headers": {"Location": [location]}}


def _headers_handler(domain: DomainRoute, *, https: bool) -> dict[str, Any] | None:
    set_: dict[str, list[str]] = {}
    delete: list[str] = []
    for name, value in domain.response_headers():
        if value:
            set_[name] = [value]
        else:
            delete.append(name)
    hsts = domain.hsts
    if https and hsts:
        set_["Strict-Transport-Security"] = [hsts]
    if not set_ and not delete:
        return None
    # Deferred: applied when the upstream's response is written, so Mist's values replace the app's own.
    response: dict[str, Any] = {"deferred": True}
    if set_:
        response["set"] = set_
    if delete:
        response["delete"] = delete
    return {"handler": "headers", "response": response}


def _serve(route: Route, domain: DomainRoute, *, https: bool) -> dict[str, Any]:
    handlers = []
    headers = _headers_handler(domain, https=https)
    if headers:
        handlers.append(headers)
    handlers.append(_reverse_proxy(route.upstream))
    return {
        "match": [_host_path_match(domain.name, domain.path_prefix)],
        "handle": handlers,
        "terminal": True,
    }


def _reverse_proxy(upstream: str) -> dict[str, Any]:
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": upstream}],
        "load_balancing": {"try_duration": UPSTREAM_TRY_DURATION, "try_interval": UPSTREAM_TRY_INTERVAL},
    }


def _not_found() -> dict[str, Any]:
    return {
        "handle": [
            {
                "handler": "static_response",
                "status_code": 404,
                "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
                "body": "No app answers to this address.\n",
            }
        ],
        "terminal": True,
    }


def caddy_config(
    table: RouteTable,
    *,
    admin_listen: str,
    http_address: str,
    https_address: str,
    certificates: Mapping[str, tuple[str, str]] | None = None,
    challenge_upstream: str | None = None,
) -> dict[str, Any]:
    """The whole Caddy config for the table. ``certificates`` maps a domain to ``(chain_pem, key_pem)``."""
    challenge = validate.upstream(challenge_upstream or table.challenge_upstream, "challenge_upstream")
    https_port = _port_of(https_address)
    port_suffix = "" if https_port == 443 else f":{https_port}"
    http_port = _port_of(http_address)
    http_suffix = "" if http_port == 80 else f":{http_port}"

    http_routes: list[dict[str, Any]] = [
        {
            "match": [{"path": [CHALLENGE_PATH + "*"]}],
            "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": challenge}]}],
            "terminal": True,
        }
    ]
    https_routes: list[dict[str, Any]] = []
    for route, domain in table.domains():
        if domain.https:
            http_routes.append(
                {
                    "match": [_host_path_match(domain.name, domain.path_prefix)],
                    "handle": [_redirect(f"https://{{http.request.host}}{port_suffix}{{http.request.uri}}")],
                    "terminal": True,
                }
            )
            https_routes.append(_serve(route, domain, https=True))
        else:
            http_routes.append(_serve(route, domain, https=False))
        source = domain.redirect_from
        if source:
            scheme, suffix = ("https", port_suffix) if domain.https else ("http", http_suffix)
            target = f"{scheme}://{domain.name}{suffix}{{http.request.uri}}"
            http_routes.append(
                {"match": [{"host": [source]}], "handle": [_redirect(target)], "terminal": True}
            )
            if domain.https:
                https_routes.append(
                    {"match": [{"host": [source]}], "handle": [_redirect(target)], "terminal": True}
                )
    http_routes.append(_not_found())

    servers: dict[str, Any] = {
        HTTP_SERVER: {
            "listen": [http_address],
            "routes": http_routes,
            "automatic_https": {"disable": True},
        }
    }
    if https_routes:
        https_routes.append(_not_found())
        servers[HTTPS_SERVER] = {
            "listen": [https_address],
            "routes": https_routes,
            # One catch-all policy: Caddy picks the loaded certificate whose names match the SNI.
            "tls_connection_policies": [{}],
            "automatic_https": {"disable": True},
        }
    config: dict[str, Any] = {
        "admin": {"listen": admin_listen},
        "apps": {"http": {"http_port": http_port, "https_port": https_port, "servers": servers}},
    }
    pems = sorted({pair for pair in (certificates or {}).values()})
    if pems:
        config["apps"]["tls"] = {
            "certificates": {"load_pem": [{"certificate": cert, "key": key} for cert, key in pems]}
        }
    return config


class CaddyProxy:
    """A running Caddy, configured through its admin API at ``admin_url``."""

    def __init__(
        self, admin_url: str, *, http_address: str, https_address: str, timeout: float = 10.0
    ) -> None:
        parts = urlsplit(admin_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProxyError(f"Caddy admin URL {admin_url!r} is not http://host:port: fix caddy_admin_url")
        self.admin_url = admin_url.rstrip("/")
        self.admin_listen = parts.netloc
        self.http_address = http_address
        self.https_address = https_address
        self.timeout = timeout

    def config(
        self,
        table: RouteTable,
        *,
        certificates: Mapping[str, tuple[str, str]] | None = None,
        challenge_upstream: str | None = None,
    ) -> dict[str, Any]:
        return caddy_config(
            table,
            admin_listen=self.admin_listen,
            http_address=self.http_address,
            https_address=self.https_address,
            certificates=certificates,
            challenge_upstream=challenge_upstream,
        )

    async def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        # httpx (which pulls in its CLI's rich and click) loads only when Caddy is in use.
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.request(method, self.admin_url + path, json=body)
        except httpx.HTTPError as exc:
            raise ProxyError(
                f"Caddy's admin API at {self.admin_url} does not answer ({exc.__class__.__name__}: {exc}): "
                "start Caddy or fix the caddy_admin_url setting"
            ) from None
        if response.status_code >= 400:
            try:
                message = str(response.json().get("error") or response.text)
            except ValueError:
                message = response.text
            raise ProxyError(f"Caddy refused the configuration: {message.strip()}")
        return response

    async def load(
        self,
        table: RouteTable,
        certificates: Mapping[str, tuple[str, str]] | None = None,
        *,
        challenge_upstream: str | None = None,
    ) -> None:
        """Replace Caddy's whole configuration with the one for ``table`` (one ``POST /load``)."""
        config = self.config(table, certificates=certificates, challenge_upstream=challenge_upstream)
        await self._request("POST", "/load", config)

    async def status(self) -> dict[str, Any]:
        """Caddy's current configuration (``GET /config/``); ``{}`` when it has none."""
        response = await self._request("GET", "/config/")
        data = response.json()
        return data if isinstance(data, dict) else {}
