"""The commands about deployments: deploy or roll back an app (and follow it to the end with ``--wait``),
list an app's deployments, show one and its log, cancel one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..errors import InvalidInput
from ..models import Deployment, LogLine
from .context import CommandTable, Context, app_ref
from .format import format_pairs, format_table, human_age, human_duration, human_time
from .output import EXIT_FAILURE, EXIT_OK, Text

command = CommandTable()


def deployment_line(line: LogLine) -> str:
    return f"{line.source}: {line.text}" if line.source else line.text


async def follow_deployment(
    ctx: Context, deployment_id: int, on_line: Callable[[LogLine], None]
) -> Deployment:
    """Hand each line of the deployment's log to ``on_line`` until it is final, and return it in its final
    state. The log stream ends when the deployment does; if it ends early (a dropped connection), it is
    resumed after the last line."""
    last = 0
    while True:
        async for line in ctx.api.deployments.log(deployment_id, follow=True, after=last):
            if line.seq and line.seq <= last:
                continue
            last = max(last, line.seq)
            on_line(line)
        deployment = await ctx.api.deployments.get(deployment_id)
        if deployment.state.is_final:
            return deployment
        await asyncio.sleep(0.5)


@command("deploy")
async def cmd_deploy(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    return await _queued(ctx, ref, await ctx.api.apps.deploy(ref, ref=ctx.args.ref))


@command("rollback")
async def cmd_rollback(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    return await _queued(ctx, ref, await ctx.api.apps.rollback(ref, to=ctx.args.to))


async def _queued(ctx: Context, ref: str, deployment: Deployment) -> int:
    """Report a queued deployment, or with --wait follow it and exit 0 only if it goes live. While following,
    a person sees the log; a script gets one document at the end."""
    what = "Rollback" if deployment.source == "rollback" else "Deployment"
    queued = f"{what} {deployment.id} of {ref} queued (ref {deployment.ref})"
    if not ctx.args.wait:
        ctx.out.result(
            deployment, Text(queued).note(f"Follow it with: mist deployment log {deployment.id} -f")
        )
        return EXIT_OK
    ctx.out.show(Text().note(queued))
    final = await follow_deployment(ctx, deployment.id, lambda line: ctx.out.show(deployment_line(line)))
    if final.state == "live":
        commit = (final.commit_sha or "")[:8]
        ctx.out.result(final, f"Deployment {final.id} is live: {ref} at {commit or final.ref}")
        return EXIT_OK
    failed = {
        "error": {"code": "deployment_failed", "message": _ended(final), "field": None},
        "deployment": final,
    }
    ctx.out.result(failed, Text().note(f"mist: {_ended(final)}"))
    return EXIT_FAILURE


def _ended(d: Deployment) -> str:
    text = f"deployment {d.id} ended {d.state.value}"
    return f"{text}: {d.error}" if d.error else text


@command("deployments")
async def cmd_deployments(ctx: Context) -> int:
    if ctx.args.limit < 1:
        raise InvalidInput("--limit must be 1 or more", field="limit")
    page = await ctx.api.deployments.list(app_ref(ctx.args.app), limit=ctx.args.limit)
    ctx.out.table(
        page.items,
        ["ID", "STATE", "REF", "COMMIT", "AGE", "TOOK", "BY", "ERROR"],
        lambda d: (
            d.id,
            d.state.value,
            d.ref,
            (d.commit_sha or "")[:8] or None,
            human_age(d.created_at),
            human_duration(d.duration),
            d.triggered_by,
            d.error,
        ),
    )
    return EXIT_OK


def deployment_text(d: Deployment) -> str:
    text = format_pairs(
        [
            ("Deployment", d.id),
            ("App", f"{d.project}/{d.app}"),
            ("State", d.state.value),
            ("Ref", d.ref),
            ("Commit", d.commit_sha),
            ("Message", (d.commit_message or "").splitlines()[0] if d.commit_message else None),
            ("Author", d.commit_author),
            ("Source", d.source),
            ("Image", d.image),
            ("Container", d.container_name),
            ("Triggered by", d.triggered_by),
            ("Created", human_time(d.created_at)),
            ("Finished", human_time(d.finished_at) if d.finished_at else None),
            ("Took", human_duration(d.duration) if d.duration is not None else None),
            ("Error", d.error),
        ]
    )
    if not d.steps:
        return text
    rows = [(s.step.value, human_time(s.started_at), human_duration(s.seconds)) for s in d.steps]
    return f"{text}\n\n{format_table(['STEP', 'STARTED', 'TOOK'], rows)}"


@command("deployment", "show")
async def cmd_deployment_show(ctx: Context) -> int:
    d = await ctx.api.deployments.get(ctx.args.id)
    ctx.out.result(d, lambda: deployment_text(d))
    return EXIT_OK


@command("deployment", "log")
async def cmd_deployment_log(ctx: Context) -> int:
    if ctx.args.follow:
        await follow_deployment(ctx, ctx.args.id, lambda line: ctx.out.item(line, deployment_line(line)))
        return EXIT_OK
    await ctx.out.stream(ctx.api.deployments.log(ctx.args.id), deployment_line, follow=False)
    return EXIT_OK


@command("cancel")
async def cmd_cancel(ctx: Context) -> int:
    d = await ctx.api.deployments.cancel(ctx.args.id)
    ctx.out.result(d, f"Deployment {d.id}: {d.state.value}")
    return EXIT_OK
