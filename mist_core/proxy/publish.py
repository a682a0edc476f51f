"""Hands the route table to the proxy chosen by the ``proxy_backend`` setting: Caddy through its admin API,
or Traefik through its file-provider directory. Every change (a deployment switching, a domain added, a
certificate issued) goes through ``RoutePublisher.publish``, one at a time. ``RoutePublisher.status`` says
whether the proxy really serves, having checked."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from ..engine import Engine
from ..errors import MistError
from ..models import ProxyStatus
from ..store import Store
from .caddy import CaddyProxy
from .install import CHALLENGE_HOST, traefik_health
from .routes import RouteTable, route_table, with_hooks_route
from .traefik import CertFiles, write_traefik

log = logging.getLogger("mist.proxy")

Setting = Callable[[str], Awaitable[str]]
# (cert chain PEM, key PEM) of every domain that has a certificate.
Certificates = Callable[[], Awaitable[Mapping[str, tuple[str, str]]]]
ContainerAddress = Callable[[str], Awaitable[str]]


class RoutePublisher:
    def __init__(
        self,
        store: Store,
        *,
        setting: Setting,
        certificates: Certificates,
        container_address: ContainerAddress,
        traefik_dir: Path,
    ) -> None:
        self._store = store
        self._setting = setting
        self._certificates = certificates
        self._container_address = container_address
        self.traefik_dir = traefik_dir
        self._lock = asyncio.Lock()
        self.last_error: str | None = None

    async def _caddy(self) -> CaddyProxy:
        return CaddyProxy(
            await self._setting("caddy_admin_url"),
            http_address=await self._setting("proxy_http_address"),
            https_address=await self._setting("proxy_https_address"),
        )

    async def table(self, pending: Mapping[int, int] | None = None) -> RouteTable:
        backend = await self._setting("proxy_backend")
        # Caddy runs on the host here and dials containers by address; Traefik runs on the `mist` network and
        # dials them by name.
        resolver = self._container_address if backend == "caddy" else None
        challenge = await self._setting("acme_challenge_address")
        if (
            backend == "traefik"
        ):  # Traefik reaches Mist's challenge responder on the host through host-gateway
            challenge = f"{CHALLENGE_HOST}:{challenge.rpartition(':')[2]}"
        table = await route_table(
            self._store,
            challenge_upstream=challenge,
            upstream_resolver=resolver,
            pending=pending,
        )
        public_url, hooks = await self._setting("public_url"), await self._setting("hooks_upstream")
        return with_hooks_route(table, public_url, hooks) if public_url and hooks else table

    async def publish(self, pending: Mapping[int, int] | None = None) -> RouteTable:
        """Compute the routes (``pending``: app id -> deployment id to route to before it is live) and load
        them into the proxy. Raises ``MistError`` when the proxy refuses them or cannot be reached."""
        async with self._lock:
            table = await self.table(pending)
            certificates = await self._certificates()
            try:
                if await self._setting("proxy_backend") == "caddy":
                    await (await self._caddy()).load(
                        table, certificates, challenge_upstream=table.challenge_upstream
                    )
                else:
                    files = await asyncio.to_thread(self._write_certificates, certificates)
                    await asyncio.to_thread(
                        write_traefik,
                        table,
                        self.traefik_dir / "dynamic",
                        certificates=files,
                        challenge_upstream=table.challenge_upstream,
                    )
            except MistError as err:
                self.last_error = err.message
                raise
            self.last_error = None
            for note in table.notes:
                log.info("%s", note)
            return table

    def _write_certificates(self, certificates: Mapping[str, tuple[str, str]]) -> dict[str, CertFiles]:
        """Certificate files for Traefik, named by their content, so a renewal is a new file name (Traefik
        reloads on a changed list) and an unchanged one is not rewritten. Old files are removed."""
        directory = self.traefik_dir / "certs"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        files: dict[str, CertFiles] = {}
        keep: set[str] = set()
        for domain, (chain, key) in sorted(certificates.items()):
            digest = hashlib.sha256(chain.encode()).hexdigest()[:12]
            cert_name, key_name = f"{domain}.{digest}.crt", f"{domain}.{digest}.key"
            for name, text in ((cert_name, chain), (key_name, key)):
                path = directory / name
                if not path.exists():
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "w") as f:
                        f.write(text)
                keep.add(name)
            # Paths as the Traefik container sees them.
            files[domain] = CertFiles(
                f"/etc/traefik/mist/certs/{cert_name}", f"/etc/traefik/mist/certs/{key_name}"
            )
        for entry in directory.iterdir():
            if entry.name not in keep:
                entry.unlink(missing_ok=True)
        return files

    async def status(self, engine: Engine, *, host_details: bool) -> ProxyStatus:
        """What the proxy does, checked: Caddy's admin API answers, or Traefik's container runs and its entry
        points accept connections. ``host_details``: the caller may see where on the host Mist keeps the
        proxy's files and why the proxy refused a change (instance admins only)."""
        backend = await self._setting("proxy_backend")
        table = await self.table()
        domains = sum(len(r.domains) for r in table.routes)
        http_address = await self._setting("proxy_http_address")
        https_address = await self._setting("proxy_https_address")
        if backend == "caddy":
            try:
                await (await self._caddy()).status()
                reachable, detail = True, f"Caddy answers at {await self._setting('caddy_admin_url')}"
            except MistError as err:
                reachable, detail = False, err.message
        else:
            reachable, detail = await traefik_health(engine, http_address, https_address)
            if host_details:
                detail += "; routes written to " + str(self.traefik_dir / "dynamic")
        if self.last_error:
            if host_details:
                detail += f"; the last change was refused: {self.last_error}"
            else:
                detail += "; the last change was refused (an instance admin sees why in `mist proxy status`)"
        return ProxyStatus(
            backend=backend,  # type: ignore[arg-type]
            reachable=reachable,
            detail=detail,
            routes=len(table.routes),
            domains=domains,
            http_address=http_address,
            https_address=https_address,
        )
