"""The instance's settings: read them, change one (applied at once where it can be)."""

from __future__ import annotations

from .. import settings as settings_defs
from ..api import SettingsAPI
from ..calls import audit
from ..models import Setting
from ..store import ts
from .part import Part


class Settings(Part, SettingsAPI):
    async def _one(self, key: str) -> Setting:
        definition = settings_defs.DEFINITIONS.get(key)
        if definition is None:
            settings_defs.parse(key, "")  # raises the 'no such setting' error
            raise AssertionError
        return Setting(
            key=key,
            value=await self.core.setting(key),
            default=definition.default,
            description=definition.description,
        )

    async def list(self) -> list[Setting]:
        await self.m.allow("settings.list")
        return [await self._one(key) for key in sorted(settings_defs.DEFINITIONS)]

    async def get(self, key: str) -> Setting:
        await self.m.allow("settings.get")
        return await self._one(key)

    async def set(self, key: str, value: str) -> Setting:
        actor = await self.m.allow("settings.set")
        value = str(settings_defs.parse(key, value))
        before = await self.core.setting(key)
        async with self.store.write() as w:
            await w.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, value, ts()),
            )
            await audit(w, actor, "settings.set", key=key, before=before, after=value)
        self.core.remember_setting(key, value)
        await self.core.setting_changed(key)
        return await self._one(key)
