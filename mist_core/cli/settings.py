"""The commands about the instance's settings: list them, show one, change one."""

from __future__ import annotations

from .context import CommandTable, Context
from .output import EXIT_OK

command = CommandTable()


@command("settings", "list")
async def cmd_settings_list(ctx: Context) -> int:
    settings = await ctx.api.settings.list()
    ctx.out.table(
        settings,
        ["KEY", "VALUE", "DEFAULT", "DESCRIPTION"],
        lambda s: (s.key, s.value, s.default, s.description),
    )
    return EXIT_OK


@command("settings", "get")
async def cmd_settings_get(ctx: Context) -> int:
    s = await ctx.api.settings.get(ctx.args.key)
    ctx.out.pairs(
        s, lambda: [("Key", s.key), ("Value", s.value), ("Default", s.default), ("About", s.description)]
    )
    return EXIT_OK


@command("settings", "set")
async def cmd_settings_set(ctx: Context) -> int:
    s = await ctx.api.settings.set(ctx.args.key, ctx.args.value)
    ctx.out.result(s, f"{s.key} = {s.value}")
    return EXIT_OK
