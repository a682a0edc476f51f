"""The commands about the proxy in front of the apps: its state, installing the Traefik container Mist
supervises, and handing it the routes again."""

from __future__ import annotations

from ..models import ProxyStatus
from .context import CommandTable, Context
from .output import EXIT_FAILURE, EXIT_OK

command = CommandTable()


def proxy_pairs(p: ProxyStatus) -> list[tuple[str, object]]:
    return [
        ("Backend", p.backend),
        ("Reachable", p.reachable),
        ("Detail", p.detail or None),
        ("Routes", p.routes),
        ("Domains", p.domains),
        ("HTTP", p.http_address),
        ("HTTPS", p.https_address),
    ]


@command("proxy", "status")
async def cmd_proxy_status(ctx: Context) -> int:
    status = await ctx.api.proxy.status()
    ctx.out.pairs(status, lambda: proxy_pairs(status))
    return EXIT_OK


def _changed(ctx: Context, status: ProxyStatus) -> int:
    """Print the status after a reload or install; the proxy not answering afterwards is a failure."""
    ctx.out.pairs(status, lambda: proxy_pairs(status))
    return EXIT_OK if status.reachable else EXIT_FAILURE


@command("proxy", "install")
async def cmd_proxy_install(ctx: Context) -> int:
    return _changed(ctx, await ctx.api.proxy.install())


@command("proxy", "reload")
async def cmd_proxy_reload(ctx: Context) -> int:
    return _changed(ctx, await ctx.api.proxy.reload())
