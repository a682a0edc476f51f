"""The certificate store: ACME accounts and one certificate per domain in SQLite, with the issuance state the
scheduler works from. Private keys are sealed by ``SecretBox`` and never part of a ``Certificate``."""

from __future__ import annotations

import builtins
import datetime as dt
from typing import Any

from ..errors import NotFound
from ..models import Certificate
from ..secrets import SecretBox
from ..store import Row, Store, parse_ts, ts
from .acme_client import IssuedCertificate, new_account_key
from .schedule import renewal_due


def _certificate(row: Row) -> Certificate:
    updated = parse_ts(row["updated_at"])
    assert updated is not None
    return Certificate(
        id=row["id"],
        domain=row["domain"],
        status=row["status"],
        source=row["source"],
        cert_pem=row["cert_pem"] or "",
        chain_pem=row["chain_pem"] or "",
        not_before=parse_ts(row["not_before"]),
        not_after=parse_ts(row["not_after"]),
        serial=row["serial"] or "",
        last_error=row["last_error"] or "",
        next_attempt_at=parse_ts(row["next_attempt_at"]),
        attempts=row["attempts"],
        updated_at=updated,
    )


_COLUMNS = (
    "id, domain, status, source, cert_pem, chain_pem, not_before, not_after, serial, last_error, "
    "next_attempt_at, attempts, updated_at"
)


def _key_binding(cert_id: int) -> str:
    return f"cert:{cert_id}:key"


def _account_binding(account_id: int) -> str:
    return f"acme-account:{account_id}"


class CertificateStore:
    def __init__(self, store: Store, secrets: SecretBox) -> None:
        self._store = store
        self._secrets = secrets

    # ----------------------------------------------------------------------------------------- accounts

    async def account_key(self, directory_url: str, email: str = "") -> str:
        """The ACME account key (PEM) for ``directory_url``, made and sealed on first use."""
        row = await self._store.one(
            "SELECT id, email, key_sealed FROM acme_accounts WHERE directory_url = ?", (directory_url,)
        )
        if row is not None:
            if row["email"] != email:
                async with self._store.write() as w:
                    await w.execute("UPDATE acme_accounts SET email = ? WHERE id = ?", (email, row["id"]))
            return self._secrets.open(row["key_sealed"], bound_to=_account_binding(row["id"]))
        key = new_account_key()
        async with self._store.write() as w:
            # Another task may have made it between our read and this write: the UNIQUE makes this a no-op.
            await w.execute(
                "INSERT INTO acme_accounts (directory_url, email, key_sealed, created_at) VALUES (?, ?, '', ?) "
                "ON CONFLICT (directory_url) DO NOTHING",
                (directory_url, email, ts()),
            )
            found = await w.one(
                "SELECT id, key_sealed FROM acme_accounts WHERE directory_url = ?", (directory_url,)
            )
            assert found is not None
            if found["key_sealed"]:
                return self._secrets.open(found["key_sealed"], bound_to=_account_binding(found["id"]))
            sealed = self._secrets.seal(key, bound_to=_account_binding(found["id"]))
            await w.execute("UPDATE acme_accounts SET key_sealed = ? WHERE id = ?", (sealed, found["id"]))
        return key

    async def set_account_uri(self, directory_url: str, uri: str) -> None:
        async with self._store.write() as w:
            await w.execute(
                "UPDATE acme_accounts SET uri = ? WHERE directory_url = ?", (uri or None, directory_url)
            )

    async def account_uri(self, directory_url: str) -> str | None:
        value = await self._store.scalar(
            "SELECT uri FROM acme_accounts WHERE directory_url = ?", (directory_url,)
        )
        return str(value) if value else None

    # ------------------------------------------------------------------------------------------- reads

    async def get(self, domain: str) -> Certificate | None:
        row = await self._store.one(f"SELECT {_COLUMNS} FROM certificates WHERE domain = ?", (domain,))
        return _certificate(row) if row is not None else None

    async def require(self, domain: str) -> Certificate:
        cert = await self.get(domain)
        if cert is None:
            raise NotFound(
                f"there is no certificate for {domain}; add the domain to an app, or upload one with "
                "`mist cert upload`"
            )
        return cert

    async def list(self) -> builtins.list[Certificate]:
        rows = await self._store.all(f"SELECT {_COLUMNS} FROM certificates ORDER BY domain")
        return [_certificate(r) for r in rows]

    async def key_pem(self, domain: str) -> str | None:
        """The certificate's private key (PEM), opened; None while there is no certificate yet."""
        row = await self._store.one("SELECT id, key_sealed FROM certificates WHERE domain = ?", (domain,))
        if row is None or not row["key_sealed"]:
            return None
        return self._secrets.open(row["key_sealed"], bound_to=_key_binding(row["id"]))

    async def pending(self) -> builtins.list[Certificate]:
        """Certificates waiting for their first (or a requested) issuance, and renewals a crash interrupted."""
        rows = await self._store.all(
            f"SELECT {_COLUMNS} FROM certificates WHERE status IN ('pending', 'renewing') "
            "AND source = 'acme' ORDER BY updated_at"
        )
        return [_certificate(r) for r in rows]

    async def due_for_renewal(self, now: dt.datetime, window_days: int) -> builtins.list[Certificate]:
        """Issued ACME certificates whose renewal time has come: ``window_days`` before expiry, or two
        thirds into the life of a certificate shorter than three windows (see ``schedule.renewal_window``)."""
        limit = ts(now + dt.timedelta(days=window_days))
        rows = await self._store.all(
            f"SELECT {_COLUMNS} FROM certificates WHERE status = 'issued' AND source = 'acme' "
            "AND not_after IS NOT NULL AND not_after <= ? ORDER BY not_after",
            (limit,),
        )
        due = [_certificate(r) for r in rows]
        return [c for c in due if c.not_after and renewal_due(c.not_after, now, window_days, c.not_before)]

    async def due_for_retry(self, now: dt.datetime) -> builtins.list[Certificate]:
        """Failed ACME certificates whose next attempt time has come."""
        rows = await self._store.all(
            f"SELECT {_COLUMNS} FROM certificates WHERE status = 'failed' AND source = 'acme' "
            "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY next_attempt_at",
            (ts(now),),
        )
        return [_certificate(r) for r in rows]

    # ------------------------------------------------------------------------------------------ writes

    async def mark_pending(self, domain: str) -> Certificate:
        """Ask for an ACME certificate for ``domain`` (made if missing). A certificate it already has keeps
        being served until the new one arrives; an uploaded one is replaced by ACME's."""
        await self._upsert(
            domain,
            {
                "status": "pending",
                "source": "acme",
                "last_error": None,
                "next_attempt_at": None,
                "attempts": 0,
            },
        )
        return await self.require(domain)

    async def mark_renewing(self, domain: str) -> None:
        await self._update(domain, {"status": "renewing"})

    async def mark_failed(self, domain: str, *, error: str, next_attempt_at: dt.datetime) -> Certificate:
        """Record a failed issuance: the error, one more attempt, and when to try again."""
        async with self._store.write() as w:
            changed = await w.execute(
                "UPDATE certificates SET status = 'failed', last_error = ?, next_attempt_at = ?, "
                "attempts = attempts + 1, updated_at = ? WHERE domain = ?",
                (error, ts(next_attempt_at), ts(), domain),
            )
        if not changed:
            raise NotFound(f"there is no certificate for {domain}")
        return await self.require(domain)

    async def save_issued(self, domain: str, issued: IssuedCertificate) -> Certificate:
        """Store a certificate obtained from ACME (made if missing) and mark it issued."""
        return await self._save_material(
            domain,
            source="acme",
            cert_pem=issued.cert_pem,
            chain_pem=issued.chain_pem,
            key_pem=issued.key_pem,
            not_before=issued.not_before,
            not_after=issued.not_after,
            serial=issued.serial,
        )

    mark_issued = save_issued

    async def save_uploaded(
        self,
        domain: str,
        *,
        cert_pem: str,
        chain_pem: str,
        key_pem: str,
        not_before: dt.datetime,
        not_after: dt.datetime,
        serial: str,
    ) -> Certificate:
        """Store a certificate the user uploaded (validate it first with ``upload.validate_upload``).
        Mist does not renew it: the user uploads the next one."""
        return await self._save_material(
            domain,
            source="uploaded",
            cert_pem=cert_pem,
            chain_pem=chain_pem,
            key_pem=key_pem,
            not_before=not_before,
            not_after=not_after,
            serial=serial,
        )

    async def remove(self, domain: str) -> bool:
        async with self._store.write() as w:
            return bool(await w.execute("DELETE FROM certificates WHERE domain = ?", (domain,)))

    async def _save_material(
        self,
        domain: str,
        *,
        source: str,
        cert_pem: str,
        chain_pem: str,
        key_pem: str,
        not_before: dt.datetime,
        not_after: dt.datetime,
        serial: str,
    ) -> Certificate:
        async with self._store.write() as w:
            cert_id = await self._ensure_row(w, domain, source)
            await w.execute(
                "UPDATE certificates SET status = 'issued', source = ?, cert_pem = ?, chain_pem = ?, "
                "key_sealed = ?, not_before = ?, not_after = ?, serial = ?, last_error = NULL, "
                "next_attempt_at = NULL, attempts = 0, updated_at = ? WHERE id = ?",
                (
                    source,
                    cert_pem,
                    chain_pem,
                    self._secrets.seal(key_pem, bound_to=_key_binding(cert_id)),
                    ts(not_before),
                    ts(not_after),
                    serial,
                    ts(),
                    cert_id,
                ),
            )
        return await self.require(domain)

    @staticmethod
    async def _ensure_row(w: Any, domain: str, source: str) -> int:
        await w.execute(
            "INSERT INTO certificates (domain, status, source, updated_at) VALUES (?, 'pending', ?, ?) "
            "ON CONFLICT (domain) DO NOTHING",
            (domain, source, ts()),
        )
        row = await w.one("SELECT id FROM certificates WHERE domain = ?", (domain,))
        assert row is not None
        return int(row["id"])

    async def _upsert(self, domain: str, values: dict[str, Any]) -> None:
        async with self._store.write() as w:
            cert_id = await self._ensure_row(w, domain, str(values.get("source", "acme")))
            await self._set(w, cert_id, values)

    async def _update(self, domain: str, values: dict[str, Any]) -> None:
        async with self._store.write() as w:
            row = await w.one("SELECT id FROM certificates WHERE domain = ?", (domain,))
            if row is None:
                raise NotFound(f"there is no certificate for {domain}")
            await self._set(w, int(row["id"]), values)

    @staticmethod
    async def _set(w: Any, cert_id: int, values: dict[str, Any]) -> None:
        # Column names come from this module's literals only, never from the caller's input.
        assignments = ", ".join(f"{column} = ?" for column in values)
        await w.execute(
            f"UPDATE certificates SET {assignments}, updated_at = ? WHERE id = ?",
            (*values.values(), ts(), cert_id),
        )
