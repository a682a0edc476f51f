"""TLS certificates: list them, renew one, upload one."""

from __future__ import annotations

import builtins
import logging

from .. import domains
from ..api import CertificatesAPI
from ..calls import Caller, audit
from ..domains import validate_domain
from ..errors import MistError, NotFound, PermissionDenied
from ..models import Certificate
from ..store import now
from ..tls.upload import validate_upload
from .part import Part, visible_clause

log = logging.getLogger("mist.core")


class Certificates(Part, CertificatesAPI):
    async def list(self, app_ref: str | None = None) -> builtins.list[Certificate]:
        if app_ref is not None:
            await self.m.allow_app("domains.list", app_ref)
            app_ids: set[int] | None = {(await self.m.app(app_ref)).id}
        else:
            caller = await self.m.allow("certificates.list")
            visible, params = visible_clause(await self.m.visible_projects(caller), "a.project_id")
            app_ids = None
            if visible != "1":
                rows = await self.store.all(f"SELECT a.id FROM apps a WHERE {visible}", params)
                app_ids = {int(r["id"]) for r in rows}
        certificates = await self.core.certs.list()
        if app_ids is None:
            return certificates
        names: set[str] = set()
        for app_id in app_ids:
            for d in await domains.list_domains(self.store, app_id):
                names.update(n for n in (d.name, d.redirect_from) if n)
        return [c for c in certificates if c.domain in names]

    async def _allow(self, operation: str, domain: str) -> Caller:
        """Check ``operation`` on the project of the app that serves ``domain``. A certificate of no app's
        domain (left over, or uploaded ahead) belongs to the instance: admins only."""
        name = validate_domain(domain)
        # The name itself, or the other half of a www redirect (a certificate covers both).
        bare = name.removeprefix("www.")
        row = await self.store.one(
            "SELECT p.name FROM domains d JOIN apps a ON a.id = d.app_id JOIN projects p ON p.id = a.project_id "
            "WHERE d.name IN (?, ?, ?) ORDER BY d.name = ? DESC LIMIT 1",
            (name, bare, f"www.{bare}", name),
        )
        if row is None:
            try:
                return await self.m.allow(operation, project=None)
            except PermissionDenied:
                raise NotFound(f"no app of yours serves {name!r}", field="domain") from None
        try:
            return await self.m.allow(operation, project=row["name"])
        except NotFound:
            raise NotFound(f"no app of yours serves {name!r}", field="domain") from None

    async def renew(self, domain: str) -> Certificate:
        actor = await self._allow("certificates.renew", domain)
        current = await self.core.certs.require(domain)
        await self.core.certs.mark_pending(domain)
        async with self.store.write() as w:
            await audit(w, actor, "certificate.renew", domain=domain, source_before=current.source)
        if self.core.cert_scheduler is not None:
            self.core.cert_scheduler.wake()
        return await self.core.certs.require(domain)

    async def upload(self, domain: str, cert_pem: str, key_pem: str) -> Certificate:
        actor = await self._allow("certificates.upload", domain)
        name = validate_domain(domain)
        parsed = validate_upload(cert_pem, key_pem, domain=name, now=now())
        await self.core.certs.save_uploaded(
            name,
            cert_pem=parsed.cert_pem,
            chain_pem=parsed.chain_pem,
            key_pem=parsed.key_pem,
            not_before=parsed.not_before,
            not_after=parsed.not_after,
            serial=parsed.serial,
        )
        async with self.store.write() as w:
            await audit(
                w, actor, "certificate.upload", domain=name, serial=parsed.serial, issuer=parsed.issuer
            )
        try:
            await self.core.publish_routes()
        except MistError as err:
            # The certificate is stored either way; the proxy status says what went wrong, and the next change
            # or `mist proxy reload` tries again.
            log.warning(
                "the proxy refused the routes after uploading a certificate for %s: %s", name, err.message
            )
        return await self.core.certs.require(name)
