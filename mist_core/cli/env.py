"""The commands about an app's environment variables: set, list, unset, import and export them (secret values
masked unless revealed)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInput
from ..models import MASK, EnvVar
from .context import CommandTable, Context, app_ref
from .format import format_table, human_age, parse_assignment
from .output import EXIT_OK, Text

command = CommandTable()


def env_table(variables: list[EnvVar]) -> str:
    rows = [
        (v.key, MASK if v.secret and v.value is None else v.value, v.secret, v.build, human_age(v.updated_at))
        for v in variables
    ]
    return format_table(["KEY", "VALUE", "SECRET", "BUILD", "UPDATED"], rows)


def masked(variables: list[EnvVar]) -> list[EnvVar]:
    """Variables as a command that just set them shows them: secret values are not echoed back."""
    return [v.model_copy(update={"value": None}) if v.secret else v for v in variables]


@command("env", "set")
async def cmd_env_set(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    # Every pair is checked before the first is set, so a typo does not leave half the variables set.
    pairs = [parse_assignment(text) for text in a.assignments]
    result = [await ctx.api.env.set(ref, key, value, secret=a.secret, build=a.build) for key, value in pairs]
    variables = masked(result)
    ctx.out.result(variables, lambda: env_table(variables))
    return EXIT_OK


@command("env", "list")
async def cmd_env_list(ctx: Context) -> int:
    variables = await ctx.api.env.list(app_ref(ctx.args.app), reveal=ctx.args.reveal)
    ctx.out.result(variables, lambda: env_table(variables))
    return EXIT_OK


@command("env", "unset")
async def cmd_env_unset(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    keys = list(dict.fromkeys(ctx.args.keys))
    for key in keys:
        await ctx.api.env.unset(ref, key)
    ctx.out.result({"unset": keys}, f"Unset {', '.join(keys)} on {ref}")
    return EXIT_OK


@command("env", "import")
async def cmd_env_import(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    if a.file == "-":
        text = ctx.stdin.read()
    else:
        try:
            text = Path(a.file).read_text()
        except OSError as err:
            raise InvalidInput(f"cannot read {a.file}: {err.strerror or err}", field="file") from None
    imported = list(await ctx.api.env.import_dotenv(ref, text, secret=a.secret, build=a.build))
    variables = masked(imported)
    ctx.out.result(variables, lambda: env_table(variables))
    return EXIT_OK


@command("env", "export")
async def cmd_env_export(ctx: Context) -> int:
    text = await ctx.api.env.export_dotenv(app_ref(ctx.args.app), reveal=ctx.args.reveal)
    ctx.out.result({"dotenv": text}, Text().document(text))
    return EXIT_OK
