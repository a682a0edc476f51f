"""An app's environment variables: plain or sealed secrets, and dotenv import and export."""

from __future__ import annotations

import builtins
from typing import Any

from .. import validate
from ..api import EnvAPI
from ..calls import audit
from ..errors import NotFound
from ..models import App, EnvVar
from ..store import Writer, ts
from .part import Part


class Env(Part, EnvAPI):
    def _var(self, app_id: int, row: Any, reveal: bool) -> EnvVar:
        value: str | None = row["value"]
        if row["secret"]:
            value = (
                self.core.secrets.open(row["value"], bound_to=f"env:{app_id}:{row['key']}")
                if reveal
                else None
            )
        return EnvVar(
            key=row["key"],
            value=value,
            secret=bool(row["secret"]),
            build=bool(row["build"]),
            updated_at=row["updated_at"],
        )

    async def list(self, app_ref: str, *, reveal: bool = False) -> list[EnvVar]:
        caller = await self.m.allow_app("env.list", app_ref)
        if reveal:
            await self.m.may_reveal_secrets(caller, app_ref)
        app = await self.m.app(app_ref)
        rows = await self.store.all(
            "SELECT key, value, secret, build, updated_at FROM env_vars WHERE app_id = ? ORDER BY key",
            (app.id,),
        )
        return [self._var(app.id, r, reveal) for r in rows]

    async def _put(self, w: Writer, app: App, key: str, value: str, secret: bool, build: bool) -> None:
        stored = self.core.secrets.seal(value, bound_to=f"env:{app.id}:{key}") if secret else value
        await w.execute(
            "INSERT INTO env_vars (app_id, key, value, secret, build, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value, secret = excluded.secret, "
            "build = excluded.build, updated_at = excluded.updated_at",
            (app.id, key, stored, int(secret), int(build), ts()),
        )

    async def set(
        self, app_ref: str, key: str, value: str, *, secret: bool = False, build: bool = False
    ) -> EnvVar:
        actor = await self.m.allow_app("env.set", app_ref)
        app = await self.m.app(app_ref)
        key, value = validate.env_key(key), validate.env_value(value)
        async with self.store.write() as w:
            await self._put(w, app, key, value, secret, build)
            await audit(
                w, actor, "env.set", project=app.project, app=app.name, key=key, secret=secret, build=build
            )
        self.core.events.announce("env", "set", project=app.project, app=app.name)
        row = await self.store.one(
            "SELECT key, value, secret, build, updated_at FROM env_vars WHERE app_id = ? AND key = ?",
            (app.id, key),
        )
        return self._var(app.id, row, reveal=False)

    async def unset(self, app_ref: str, key: str) -> None:
        actor = await self.m.allow_app("env.unset", app_ref)
        app = await self.m.app(app_ref)
        async with self.store.write() as w:
            if not await w.execute("DELETE FROM env_vars WHERE app_id = ? AND key = ?", (app.id, key)):
                raise NotFound(f"{app_ref} has no variable {key!r}", field="key")
            await audit(w, actor, "env.unset", project=app.project, app=app.name, key=key)
        self.core.events.announce("env", "unset", project=app.project, app=app.name)

    async def import_dotenv(
        self, app_ref: str, text: str, *, secret: bool = False, build: bool = False
    ) -> builtins.list[EnvVar]:
        actor = await self.m.allow_app("env.import_dotenv", app_ref)
        app = await self.m.app(app_ref)
        pairs = [(validate.env_key(k), validate.env_value(v)) for k, v in validate.parse_dotenv(text)]
        async with self.store.write() as w:
            for key, value in pairs:
                await self._put(w, app, key, value, secret, build)
            await audit(w, actor, "env.import", project=app.project, app=app.name, keys=[k for k, _ in pairs])
        self.core.events.announce("env", "import", project=app.project, app=app.name)
        keys = {k for k, _ in pairs}
        rows = await self.store.all(
            "SELECT key, value, secret, build, updated_at FROM env_vars WHERE app_id = ? ORDER BY key",
            (app.id,),
        )
        return [self._var(app.id, r, False) for r in rows if r["key"] in keys]

    async def export_dotenv(self, app_ref: str, *, reveal: bool = False) -> str:
        caller = await self.m.allow_app("env.export_dotenv", app_ref)
        if reveal:
            await self.m.may_reveal_secrets(caller, app_ref)
        app = await self.m.app(app_ref)
        rows = await self.store.all(
            "SELECT key, value, secret, build, updated_at FROM env_vars WHERE app_id = ? ORDER BY key",
            (app.id,),
        )
        variables = [self._var(app.id, r, reveal) for r in rows]
        return validate.format_dotenv([(v.key, v.value if v.value is not None else "") for v in variables])
