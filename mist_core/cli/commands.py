"""What each ``mist`` command does: one coroutine per command that calls the Mist API and prints the
result, as a table or text for people and as one JSON document with ``--json``."""

from __future__ import annotations

import asyncio
from argparse import Namespace
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from pydantic import ValidationError

from .. import validate
from ..api import MistAPI
from ..credentials import CredentialStore
from ..errors import InvalidInput, NotFound
from ..models import (
    MASK,
    App,
    AppChanges,
    AppSpec,
    Certificate,
    ContainerStats,
    Deployment,
    Domain,
    DomainSettings,
    EnvVar,
    HealthCheck,
    LogLine,
    MetricsSample,
    Page,
    ProjectChanges,
    ProxyStatus,
)
from .format import (
    format_pairs,
    format_table,
    human_age,
    human_duration,
    human_size,
    human_time,
    parse_assignment,
    parse_since,
    split_app_ref,
)
from .output import EXIT_FAILURE, EXIT_OK, Output
from .parser import WWW_CHOICES


@dataclass
class Context:
    args: Namespace
    out: Output
    api: MistAPI
    host: str  # the credentials key: the daemon URL, or "embedded:<data dir>"
    credentials: CredentialStore
    stdin: TextIO
    # The daemon's self-signed certificate the user just chose to trust (``login`` saves it with the session).
    certificate: str | None = None


Handler = Callable[[Context], Awaitable[int]]
HANDLERS: dict[tuple[str, str | None], Handler] = {}


def command(name: str, sub: str | None = None) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[(name, sub)] = fn
        return fn

    return register


# Commands that need no stored token (they are how one gets a token).
ANONYMOUS_COMMANDS = frozenset({("setup", None), ("login", None), ("invite", "accept")})


def is_anonymous(args: Namespace) -> bool:
    return (args.command, getattr(args, "subcommand", None)) in ANONYMOUS_COMMANDS


T = TypeVar("T")


async def all_pages(fetch: Callable[[int], Awaitable[Page[T]]]) -> list[T]:
    items: list[T] = []
    offset = 0
    while True:
        page = await fetch(offset)
        items.extend(page.items)
        if page.next_offset is None or not page.items:
            return items
        offset = page.next_offset


def app_ref(text: str) -> str:
    split_app_ref(text)
    return text


def invalid_from_validation(err: ValidationError) -> InvalidInput:
    """A pydantic refusal of a value the user typed, as the error every other bad input raises."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    return InvalidInput(f"{field or 'value'}: {first.get('msg', 'invalid value')}", field=field)


# ---------------------------------------------------------------------------------------------- projects


@command("project", "create")
async def cmd_project_create(ctx: Context) -> int:
    a = ctx.args
    project = await ctx.api.projects.create(a.name, a.description, a.tags)
    if ctx.out.json_mode:
        ctx.out.data(project)
    else:
        ctx.out.line(f"Created project {project.name}")
    return EXIT_OK


@command("project", "list")
async def cmd_project_list(ctx: Context) -> int:
    projects = await all_pages(lambda off: ctx.api.projects.list(query=ctx.args.query, limit=100, offset=off))
    if ctx.out.json_mode:
        ctx.out.data(projects)
        return EXIT_OK
    rows = [
        (p.name, p.app_count, ",".join(p.tags) or None, p.owner, human_age(p.created_at)) for p in projects
    ]
    ctx.out.line(format_table(["NAME", "APPS", "TAGS", "OWNER", "AGE"], rows))
    return EXIT_OK


@command("project", "show")
async def cmd_project_show(ctx: Context) -> int:
    p = await ctx.api.projects.get(ctx.args.name)
    if ctx.out.json_mode:
        ctx.out.data(p)
        return EXIT_OK
    ctx.out.line(
        format_pairs(
            [
                ("Project", p.name),
                ("Description", p.description or None),
                ("Tags", ", ".join(p.tags) or None),
                ("Owner", p.owner),
                ("Members", ", ".join(p.members) or None),
                ("Apps", p.app_count),
                ("Created", human_time(p.created_at)),
                ("Updated", human_time(p.updated_at)),
            ]
        )
    )
    return EXIT_OK


@command("project", "rename")
async def cmd_project_rename(ctx: Context) -> int:
    project = await ctx.api.projects.update(ctx.args.old, ProjectChanges(name=ctx.args.new))
    if ctx.out.json_mode:
        ctx.out.data(project)
    else:
        ctx.out.line(f"Renamed project {ctx.args.old} to {project.name}")
    return EXIT_OK


@command("project", "tag")
async def cmd_project_tag(ctx: Context) -> int:
    a = ctx.args
    if not a.add and not a.remove:
        raise InvalidInput("nothing to change: give --add TAG and/or --remove TAG", field="tags")
    current = await ctx.api.projects.get(a.name)
    tags = [t for t in current.tags if t not in a.remove]
    tags += [t for t in dict.fromkeys(a.add) if t not in tags]
    project = await ctx.api.projects.update(a.name, ProjectChanges(tags=tags))
    if ctx.out.json_mode:
        ctx.out.data(project)
    else:
        ctx.out.line(f"Tags of {project.name}: {', '.join(project.tags) or '(none)'}")
    return EXIT_OK


def confirm_deletion(ctx: Context, what: str, name: str) -> bool:
    """Destructive commands ask for the name to be typed back, or need --yes where nobody can answer."""
    if ctx.args.yes:
        return True
    if ctx.out.json_mode or not ctx.stdin.isatty():
        raise InvalidInput(f"refusing to delete {what} {name} without confirmation: pass --yes", field="yes")
    ctx.out.note(f"This deletes {what} {name}. Type its name to confirm:")
    answer = input("> ").strip()
    if answer != name:
        ctx.out.note("mist: not deleted (the name did not match)")
        return False
    return True


@command("project", "delete")
async def cmd_project_delete(ctx: Context) -> int:
    name = ctx.args.name
    if not confirm_deletion(ctx, "project", name):
        return EXIT_FAILURE
    await ctx.api.projects.delete(name)
    if ctx.out.json_mode:
        ctx.out.data({"deleted": name})
    else:
        ctx.out.line(f"Deleted project {name}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- apps


def _health(a: Namespace, base: HealthCheck) -> HealthCheck | None:
    """The health check the options describe on top of ``base``, or None when no health option was given."""
    fields: dict[str, Any] = {}
    if a.health_path is not None:
        fields.update(type="http", path=a.health_path)
    if a.health_tcp:
        fields["type"] = "tcp"
    if a.health_docker:
        fields["type"] = "docker"
    if getattr(a, "health_none", None):
        fields["type"] = "none"
    if a.health_interval is not None:
        fields["interval"] = a.health_interval
    if a.health_retries is not None:
        fields["retries"] = a.health_retries
    if a.health_start_period is not None:
        fields["start_period"] = a.health_start_period
    if not fields:
        return None
    try:
        return HealthCheck(**{**base.model_dump(), **fields})
    except ValidationError as err:
        raise invalid_from_validation(err) from None


def _spec_fields(a: Namespace) -> dict[str, Any]:
    """The spec fields given on the command line (those left out are not in the result)."""
    fields: dict[str, Any] = {}
    for name in (
        "git_url",
        "branch",
        "dockerfile",
        "context",
        "port",
        "publish",
        "start_command",
        "build_command",
        "install_command",
        "cpus",
        "restart",
    ):
        value = getattr(a, name)
        if value is not None:
            fields[name] = value
    # Sizes and volumes are parsed here with the core's own rules, so the user sees the same message
    # whether the value is refused by this process or by the daemon.
    if a.memory is not None:
        fields["memory"] = validate.memory(a.memory)
    if a.volumes is not None:
        fields["volumes"] = [validate.volume_spec(v) for v in a.volumes]
    return fields


@command("app", "create")
async def cmd_app_create(ctx: Context) -> int:
    a = ctx.args
    if a.provider is not None:
        from .sources import create_from_provider

        app = await create_from_provider(ctx)
        if ctx.out.json_mode:
            ctx.out.data(app)
        else:
            ctx.out.line(
                f"Created app {app.ref} from {a.repo} at git provider {a.provider}; "
                f"deploy it with: mist deploy {app.ref}"
            )
            ctx.out.note(f"Its webhook and how pushes deploy: mist app source {app.ref}")
        return EXIT_OK
    ref = app_ref(a.app)
    fields = _spec_fields(a)
    health = _health(a, HealthCheck())
    if health is not None:
        fields["health"] = health
    try:
        spec = AppSpec(**fields)
    except ValidationError as err:
        raise invalid_from_validation(err) from None
    app = await ctx.api.apps.create(ref, spec)
    if ctx.out.json_mode:
        ctx.out.data(app)
    else:
        ctx.out.line(f"Created app {app.ref}; deploy it with: mist deploy {app.ref}")
    return EXIT_OK


@command("app", "set")
async def cmd_app_set(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    fields = _spec_fields(a)
    if any(
        getattr(a, n, None) is not None
        for n in (
            "health_path",
            "health_tcp",
            "health_docker",
            "health_none",
            "health_interval",
            "health_retries",
            "health_start_period",
        )
    ):
        current = await ctx.api.apps.get(ref)
        fields["health"] = _health(a, current.spec.health)
    if not fields and not a.clear:
        raise InvalidInput(
            "nothing to change: give at least one option (see mist app set --help)", field="app"
        )
    try:
        changes = AppChanges(**fields, clear=list(dict.fromkeys(a.clear or [])))
    except ValidationError as err:
        raise invalid_from_validation(err) from None
    app = await ctx.api.apps.update(ref, changes)
    if ctx.out.json_mode:
        ctx.out.data(app)
    else:
        ctx.out.line(f"Updated app {app.ref}; the change takes effect at the next deployment")
    return EXIT_OK


@command("app", "list")
async def cmd_app_list(ctx: Context) -> int:
    a = ctx.args
    apps = await all_pages(
        lambda off: ctx.api.apps.list(project=a.project, query=a.query, limit=100, offset=off)
    )
    if ctx.out.json_mode:
        ctx.out.data(apps)
        return EXIT_OK
    rows = [
        (
            app.ref,
            app.status,
            (app.live_commit or "")[:8] or None,
            human_age(app.live_since),
            app.spec.git_url,
        )
        for app in apps
    ]
    ctx.out.line(format_table(["APP", "STATUS", "COMMIT", "LIVE", "GIT"], rows))
    return EXIT_OK


def describe_health(h: HealthCheck) -> str:
    if h.type == "none":
        return "none (running is enough)"
    what = {"http": f"http GET {h.path}", "tcp": "tcp connect", "docker": "image HEALTHCHECK"}[h.type]
    return (
        f"{what}, every {h.interval:g}s, {h.retries} retries, timeout {h.timeout:g}s, "
        f"start period {h.start_period:g}s"
    )


def describe_volumes(app: App) -> str:
    """Each volume as ``name:/path``, with the Docker volume the live deployment mounts for it, so an operator
    finds it (``docker volume inspect``); a volume added since then has none yet."""
    return ", ".join(
        f"{v.name}:{v.path} (Docker volume {app.docker_volumes[v.name]})"
        if v.name in app.docker_volumes
        else f"{v.name}:{v.path} (made at the next deployment)"
        for v in app.spec.volumes
    )


def app_pairs(app: App) -> list[tuple[str, object]]:
    s = app.spec
    return [
        ("App", app.ref),
        ("Status", app.status),
        ("Git", s.git_url),
        ("Branch", s.branch),
        ("Dockerfile", s.dockerfile or "(repository's, or generated)"),
        ("Context", s.context),
        ("Port", s.port),
        ("Publish", ", ".join(s.publish) or None),
        ("Memory", human_size(s.memory) if s.memory else None),
        ("CPUs", f"{s.cpus:g}" if s.cpus else None),
        ("Restart", s.restart),
        ("Health", describe_health(s.health)),
        ("Volumes", describe_volumes(app) or None),
        (
            "Switching",
            f"stop-then-start: {s.stop_then_start_reason}" if s.stop_then_start_reason else "zero downtime",
        ),
        ("Start command", s.start_command),
        ("Build command", s.build_command),
        ("Install command", s.install_command),
        ("Live deployment", app.live_deployment_id),
        ("Commit", app.live_commit),
        ("Live since", human_time(app.live_since) if app.live_since else None),
        ("Container", app.container_name),
        ("Image", app.image),
        ("Created", human_time(app.created_at)),
        ("Updated", human_time(app.updated_at)),
    ]


@command("app", "show")
async def cmd_app_show(ctx: Context) -> int:
    from .sources import webhook_url_of

    app = await ctx.api.apps.get(app_ref(ctx.args.app))
    webhook_url = await webhook_url_of(ctx, app.ref)
    if ctx.out.json_mode:
        ctx.out.data({**app.model_dump(mode="json"), "webhook_url": webhook_url})
    else:
        ctx.out.line(format_pairs([*app_pairs(app), ("Webhook", webhook_url)]))
    return EXIT_OK


@command("app", "delete")
async def cmd_app_delete(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    if not confirm_deletion(ctx, "app", ref):
        return EXIT_FAILURE
    await ctx.api.apps.delete(ref)
    if ctx.out.json_mode:
        ctx.out.data({"deleted": ref})
    else:
        ctx.out.line(f"Deleted app {ref}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- env


def env_value(var: EnvVar) -> str:
    if var.value is None:
        return MASK
    return var.value


def env_table(variables: list[EnvVar]) -> str:
    rows = [
        (v.key, MASK if v.secret and v.value is None else v.value, v.secret, v.build, human_age(v.updated_at))
        for v in variables
    ]
    return format_table(["KEY", "VALUE", "SECRET", "BUILD", "UPDATED"], rows)


@command("env", "set")
async def cmd_env_set(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    # Every pair is checked before the first is set, so a typo does not leave half the variables set.
    pairs = [parse_assignment(text) for text in a.assignments]
    result = []
    for key, value in pairs:
        var = await ctx.api.env.set(ref, key, value, secret=a.secret, build=a.build)
        if var.secret:
            var = var.model_copy(update={"value": None})
        result.append(var)
    if ctx.out.json_mode:
        ctx.out.data(result)
    else:
        ctx.out.line(env_table(result))
    return EXIT_OK


@command("env", "list")
async def cmd_env_list(ctx: Context) -> int:
    variables = await ctx.api.env.list(app_ref(ctx.args.app), reveal=ctx.args.reveal)
    if ctx.out.json_mode:
        ctx.out.data(variables)
    else:
        ctx.out.line(env_table(variables))
    return EXIT_OK


@command("env", "unset")
async def cmd_env_unset(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    keys = list(dict.fromkeys(ctx.args.keys))
    for key in keys:
        await ctx.api.env.unset(ref, key)
    if ctx.out.json_mode:
        ctx.out.data({"unset": keys})
    else:
        ctx.out.line(f"Unset {', '.join(keys)} on {ref}")
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
    imported: list[EnvVar] = list(await ctx.api.env.import_dotenv(ref, text, secret=a.secret, build=a.build))
    variables = [v.model_copy(update={"value": None}) if v.secret else v for v in imported]
    if ctx.out.json_mode:
        ctx.out.data(variables)
    else:
        ctx.out.line(env_table(variables))
    return EXIT_OK


@command("env", "export")
async def cmd_env_export(ctx: Context) -> int:
    text = await ctx.api.env.export_dotenv(app_ref(ctx.args.app), reveal=ctx.args.reveal)
    if ctx.out.json_mode:
        ctx.out.data({"dotenv": text})
    else:
        ctx.out.document(text)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- deployments


def deployment_line(line: LogLine) -> str:
    return f"{line.source}: {line.text}" if line.source else line.text


async def follow_deployment(ctx: Context, deployment_id: int, *, print_lines: bool) -> Deployment:
    """Print the deployment's log until it is final and return it in its final state. The log stream ends
    when the deployment does; if it ends early (a dropped connection), it is resumed after the last line."""
    last = 0
    while True:
        async for line in ctx.api.deployments.log(deployment_id, follow=True, after=last):
            if line.seq and line.seq <= last:
                continue
            last = max(last, line.seq)
            if print_lines:
                if ctx.out.json_mode:
                    ctx.out.record(line)
                else:
                    ctx.out.line(deployment_line(line))
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
    """Report a queued deployment, or with --wait follow it and exit 0 only if it goes live."""
    what = "Rollback" if deployment.source == "rollback" else "Deployment"
    if not ctx.args.wait:
        if ctx.out.json_mode:
            ctx.out.data(deployment)
        else:
            ctx.out.line(f"{what} {deployment.id} of {ref} queued (ref {deployment.ref})")
            ctx.out.note(f"Follow it with: mist deployment log {deployment.id} -f")
        return EXIT_OK
    if not ctx.out.json_mode:
        ctx.out.note(f"{what} {deployment.id} of {ref} queued (ref {deployment.ref})")
    final = await follow_deployment(ctx, deployment.id, print_lines=not ctx.out.json_mode)
    live = final.state == "live"
    if ctx.out.json_mode:
        if live:
            ctx.out.data(final)
        else:
            doc = {
                "error": {"code": "deployment_failed", "message": _ended(final), "field": None},
                "deployment": final,
            }
            ctx.out.data(doc)
    elif live:
        commit = (final.commit_sha or "")[:8]
        ctx.out.line(f"Deployment {final.id} is live: {ref} at {commit or final.ref}")
    else:
        ctx.out.note(f"mist: {_ended(final)}")
    return EXIT_OK if live else EXIT_FAILURE


def _ended(d: Deployment) -> str:
    text = f"deployment {d.id} ended {d.state.value}"
    return f"{text}: {d.error}" if d.error else text


@command("deployments")
async def cmd_deployments(ctx: Context) -> int:
    if ctx.args.limit < 1:
        raise InvalidInput("--limit must be 1 or more", field="limit")
    page = await ctx.api.deployments.list(app_ref(ctx.args.app), limit=ctx.args.limit)
    if ctx.out.json_mode:
        ctx.out.data(page.items)
        return EXIT_OK
    rows = [
        (
            d.id,
            d.state.value,
            d.ref,
            (d.commit_sha or "")[:8] or None,
            human_age(d.created_at),
            human_duration(d.duration),
            d.triggered_by,
            d.error,
        )
        for d in page.items
    ]
    ctx.out.line(format_table(["ID", "STATE", "REF", "COMMIT", "AGE", "TOOK", "BY", "ERROR"], rows))
    return EXIT_OK


@command("deployment", "show")
async def cmd_deployment_show(ctx: Context) -> int:
    d = await ctx.api.deployments.get(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.data(d)
        return EXIT_OK
    ctx.out.line(
        format_pairs(
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
    )
    if d.steps:
        ctx.out.line()
        rows = [(s.step.value, human_time(s.started_at), human_duration(s.seconds)) for s in d.steps]
        ctx.out.line(format_table(["STEP", "STARTED", "TOOK"], rows))
    return EXIT_OK


@command("deployment", "log")
async def cmd_deployment_log(ctx: Context) -> int:
    if ctx.args.follow:
        await follow_deployment(ctx, ctx.args.id, print_lines=True)
        return EXIT_OK
    lines = [line async for line in ctx.api.deployments.log(ctx.args.id)]
    if ctx.out.json_mode:
        ctx.out.data(lines)
    else:
        for line in lines:
            ctx.out.line(deployment_line(line))
    return EXIT_OK


@command("cancel")
async def cmd_cancel(ctx: Context) -> int:
    d = await ctx.api.deployments.cancel(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.data(d)
    else:
        ctx.out.line(f"Deployment {d.id}: {d.state.value}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- runtime


@command("ps")
async def cmd_ps(ctx: Context) -> int:
    containers = await ctx.api.containers.list(all=ctx.args.all)
    if ctx.out.json_mode:
        ctx.out.data(containers)
        return EXIT_OK
    rows = [
        (
            c.name,
            f"{c.project}/{c.app}" if c.project and c.app else None,
            c.deployment_id,
            c.state,
            c.status,
            ", ".join(c.ports) or None,
            c.image,
        )
        for c in containers
    ]
    ctx.out.line(format_table(["NAME", "APP", "DEPLOYMENT", "STATE", "STATUS", "PORTS", "IMAGE"], rows))
    return EXIT_OK


@command("logs")
async def cmd_logs(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    if a.tail is not None and a.tail < 0:
        raise InvalidInput("--tail must be 0 or more", field="tail")
    since = parse_since(a.since) if a.since else None
    stream = ctx.api.apps.logs(ref, follow=a.follow, tail=a.tail, since=since)
    if ctx.out.json_mode and not a.follow:
        ctx.out.data([line async for line in stream])
        return EXIT_OK
    async for line in stream:
        if ctx.out.json_mode:
            ctx.out.record(line)
        elif a.timestamps:
            ctx.out.app_line(f"{line.ts.isoformat()} {line.text}")
        else:
            ctx.out.app_line(line.text)
    return EXIT_OK


async def _lifecycle(ctx: Context, action: str) -> int:
    ref = app_ref(ctx.args.app)
    app = await getattr(ctx.api.apps, action)(ref)
    if ctx.out.json_mode:
        ctx.out.data(app)
    else:
        ctx.out.line(f"{app.ref}: {app.status}")
    return EXIT_OK


@command("start")
async def cmd_start(ctx: Context) -> int:
    return await _lifecycle(ctx, "start")


@command("stop")
async def cmd_stop(ctx: Context) -> int:
    return await _lifecycle(ctx, "stop")


@command("restart")
async def cmd_restart(ctx: Context) -> int:
    return await _lifecycle(ctx, "restart")


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def metrics_text(sample: MetricsSample) -> str:
    s = sample.system
    system = format_pairs(
        [
            ("Time", human_time(s.ts)),
            (
                "CPU",
                f"{s.cpu_percent:.1f}% of {s.cpu_count} cores, load {s.load[0]:.2f} {s.load[1]:.2f} {s.load[2]:.2f}",
            ),
            (
                "Memory",
                f"{human_size(s.memory_used)} / {human_size(s.memory_total)} ({_percent(s.memory_used, s.memory_total)})",
            ),
            (
                "Disk",
                f"{human_size(s.disk_used)} / {human_size(s.disk_total)} ({_percent(s.disk_used, s.disk_total)})",
            ),
            ("Network", f"rx {human_size(s.net_rx_bytes)}, tx {human_size(s.net_tx_bytes)}"),
        ]
    )
    if not sample.containers:
        return system
    return system + "\n\n" + containers_table(sample.containers)


def containers_table(stats: list[ContainerStats]) -> str:
    rows = [
        (
            c.name,
            f"{c.project}/{c.app}" if c.project and c.app else None,
            f"{c.cpu_percent:.1f}%",
            human_size(c.memory_bytes),
            human_size(c.memory_limit) if c.memory_limit else None,
            human_size(c.net_rx_bytes),
            human_size(c.net_tx_bytes),
        )
        for c in stats
    ]
    return format_table(["CONTAINER", "APP", "CPU", "MEMORY", "LIMIT", "NET RX", "NET TX"], rows)


@command("metrics")
async def cmd_metrics(ctx: Context) -> int:
    if not ctx.args.follow:
        sample = await ctx.api.metrics.current()
        if ctx.out.json_mode:
            ctx.out.data(sample)
        else:
            ctx.out.line(metrics_text(sample))
        return EXIT_OK
    first = True
    async for sample in ctx.api.metrics.stream():
        if ctx.out.json_mode:
            ctx.out.record(sample)
            continue
        if not first:
            ctx.out.line()
        first = False
        ctx.out.line(metrics_text(sample))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- domains

_WWW_NAMES = {value: name for name, value in WWW_CHOICES.items() if value}


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` as a pair; the value may itself contain ``:``. The core checks names and values."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise InvalidInput(
            f"{text!r} is not a header: write it as 'Name: value', for example 'X-Robots-Tag: noindex'",
            field="headers",
        )
    return name.strip(), value.strip()


def _domain_fields(a: Namespace, current: DomainSettings) -> dict[str, Any]:
    """The settings the options change on top of ``current`` (those left out are not in the result)."""
    fields: dict[str, Any] = {}
    if a.https is not None:
        fields["https"] = a.https
    if a.hsts is not None:
        fields["hsts_max_age"] = a.hsts
    if a.www is not None:
        fields["www_redirect"] = WWW_CHOICES[a.www]
    if a.path_prefix is not None:
        fields["path_prefix"] = a.path_prefix
    if a.security_headers is not None:
        fields["security_headers"] = a.security_headers
    added = [parse_header(h) for h in a.headers or []]
    removed = {n.strip().lower() for n in getattr(a, "remove_header", None) or []}
    if added or removed or getattr(a, "clear_headers", False):
        headers = {} if getattr(a, "clear_headers", False) else dict(current.headers)
        headers = {k: v for k, v in headers.items() if k.lower() not in removed}
        for name, value in added:
            # A header given again replaces the stored one, whatever its case.
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
            headers[name] = value
        fields["headers"] = headers
    return fields


def _settings_of(domain: Domain) -> DomainSettings:
    return DomainSettings(**domain.model_dump(include=set(DomainSettings.model_fields)))


def _same_domain(a: str, b: str) -> bool:
    return a.strip().rstrip(".").lower() == b.strip().rstrip(".").lower()


@command("domain", "add")
async def cmd_domain_add(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    try:
        settings = DomainSettings(**_domain_fields(ctx.args, DomainSettings()))
    except ValidationError as err:
        raise invalid_from_validation(err) from None
    domain = await ctx.api.domains.add(ref, ctx.args.domain, settings)
    if ctx.out.json_mode:
        ctx.out.data(domain)
    else:
        ctx.out.line(f"Added {domain.name} to {ref}")
        if domain.https:
            ctx.out.note(f"A certificate is requested for it; follow it with: mist cert status {ref}")
    return EXIT_OK


@command("domain", "set")
async def cmd_domain_set(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    current = next((d for d in await ctx.api.domains.list(ref) if _same_domain(d.name, a.domain)), None)
    if current is None:
        raise NotFound(f"{ref} has no domain {a.domain}: see mist domain list {ref}", field="domain")
    base = _settings_of(current)
    fields = _domain_fields(a, base)
    if not fields:
        raise InvalidInput(
            "nothing to change: give at least one option (see mist domain set --help)", field="domain"
        )
    try:
        settings = DomainSettings(**{**base.model_dump(), **fields})
    except ValidationError as err:
        raise invalid_from_validation(err) from None
    domain = await ctx.api.domains.update(ref, current.name, settings)
    if ctx.out.json_mode:
        ctx.out.data(domain)
    else:
        ctx.out.line(f"Updated {domain.name} of {ref}")
    return EXIT_OK


@command("domain", "remove")
async def cmd_domain_remove(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    name = ctx.args.domain
    if not confirm_deletion(ctx, "the domain", name):
        return EXIT_FAILURE
    await ctx.api.domains.remove(ref, name)
    if ctx.out.json_mode:
        ctx.out.data({"removed": name, "app": ref})
    else:
        ctx.out.line(f"Removed {name} from {ref}")
    return EXIT_OK


def _retry(c: Certificate) -> str:
    return f"next retry {human_time(c.next_attempt_at)}" if c.next_attempt_at else "no retry planned"


def certificate_summary(domain: Domain, cert: Certificate | None) -> str | None:
    """One cell saying where a domain's certificate stands: its expiry, or its error and next retry."""
    if cert is None:
        return "none (plain HTTP)" if not domain.https else "not requested yet"
    if cert.status == "failed":
        return f"failed: {cert.last_error or 'no error recorded'}; {_retry(cert)}"
    if cert.not_after is not None:
        return f"{cert.status}, expires {human_time(cert.not_after)}"
    return cert.status


@command("domain", "list")
async def cmd_domain_list(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    domains = await ctx.api.domains.list(ref)
    certificates = {c.domain: c for c in await ctx.api.certificates.list(ref)}
    if ctx.out.json_mode:
        ctx.out.data(
            [{**d.model_dump(mode="json"), "certificate": certificates.get(d.name)} for d in domains]
        )
        return EXIT_OK
    rows = [
        (
            d.name,
            d.https,
            d.hsts_max_age or None,
            _WWW_NAMES.get(d.www_redirect),
            d.path_prefix or None,
            certificate_summary(d, certificates.get(d.name)),
        )
        for d in domains
    ]
    ctx.out.line(format_table(["DOMAIN", "HTTPS", "HSTS", "WWW", "PREFIX", "CERTIFICATE"], rows))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- certificates


def certificates_table(certificates: list[Certificate]) -> str:
    rows = [
        (
            c.domain,
            c.status,
            c.source,
            human_time(c.not_after) if c.not_after else None,
            c.last_error or None,
            human_time(c.next_attempt_at) if c.next_attempt_at and c.status != "issued" else None,
        )
        for c in certificates
    ]
    return format_table(["DOMAIN", "STATUS", "SOURCE", "EXPIRES", "ERROR", "NEXT RETRY"], rows)


@command("cert", "status")
async def cmd_cert_status(ctx: Context) -> int:
    ref = app_ref(ctx.args.app) if ctx.args.app else None
    certificates = await ctx.api.certificates.list(ref)
    if ctx.out.json_mode:
        ctx.out.data(certificates)
    else:
        ctx.out.line(certificates_table(certificates))
    return EXIT_OK


@command("cert", "renew")
async def cmd_cert_renew(ctx: Context) -> int:
    cert = await ctx.api.certificates.renew(ctx.args.domain)
    if ctx.out.json_mode:
        ctx.out.data(cert)
    else:
        ctx.out.line(f"Renewal of the certificate for {cert.domain} requested: {cert.status}")
        ctx.out.note("Follow it with: mist cert status")
    return EXIT_OK


def _read_pem(path: str, field: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{path} is not a PEM text file: give the {what} in PEM form", field=field
        ) from None
    except OSError as err:
        raise InvalidInput(f"cannot read {path}: {err.strerror or err}", field=field) from None


@command("cert", "upload")
async def cmd_cert_upload(ctx: Context) -> int:
    a = ctx.args
    cert_pem = _read_pem(a.cert, "cert", "certificate")
    key_pem = _read_pem(a.key, "key", "private key")
    cert = await ctx.api.certificates.upload(a.domain, cert_pem, key_pem)
    if ctx.out.json_mode:
        ctx.out.data(cert)
    else:
        ctx.out.line(
            f"Uploaded the certificate for {cert.domain} (serial {cert.serial or '-'}, "
            f"expires {human_time(cert.not_after)})"
        )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- proxy


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
    if ctx.out.json_mode:
        ctx.out.data(status)
    else:
        ctx.out.line(format_pairs(proxy_pairs(status)))
    return EXIT_OK


async def _proxy_changed(ctx: Context, status: ProxyStatus) -> int:
    """Print the status after a reload or install; the proxy not answering afterwards is a failure."""
    if ctx.out.json_mode:
        ctx.out.data(status)
    else:
        ctx.out.line(format_pairs(proxy_pairs(status)))
    return EXIT_OK if status.reachable else EXIT_FAILURE


@command("proxy", "install")
async def cmd_proxy_install(ctx: Context) -> int:
    return await _proxy_changed(ctx, await ctx.api.proxy.install())


@command("proxy", "reload")
async def cmd_proxy_reload(ctx: Context) -> int:
    return await _proxy_changed(ctx, await ctx.api.proxy.reload())


# ---------------------------------------------------------------------------------------------- admin


@command("settings", "list")
async def cmd_settings_list(ctx: Context) -> int:
    settings = await ctx.api.settings.list()
    if ctx.out.json_mode:
        ctx.out.data(settings)
        return EXIT_OK
    rows = [(s.key, s.value, s.default, s.description) for s in settings]
    ctx.out.line(format_table(["KEY", "VALUE", "DEFAULT", "DESCRIPTION"], rows))
    return EXIT_OK


@command("settings", "get")
async def cmd_settings_get(ctx: Context) -> int:
    s = await ctx.api.settings.get(ctx.args.key)
    if ctx.out.json_mode:
        ctx.out.data(s)
    else:
        ctx.out.line(
            format_pairs(
                [("Key", s.key), ("Value", s.value), ("Default", s.default), ("About", s.description)]
            )
        )
    return EXIT_OK


@command("settings", "set")
async def cmd_settings_set(ctx: Context) -> int:
    s = await ctx.api.settings.set(ctx.args.key, ctx.args.value)
    if ctx.out.json_mode:
        ctx.out.data(s)
    else:
        ctx.out.line(f"{s.key} = {s.value}")
    return EXIT_OK


async def call_handler(ctx: Context) -> int:
    """Run the handler the parsed command names."""
    from . import accounts, sources  # noqa: F401  (register their commands)

    sub = getattr(ctx.args, "subcommand", None)
    if getattr(ctx.args, "subaction", None):
        sub = f"{sub} {ctx.args.subaction}"  # ``git provider add`` is registered as ("git", "provider add")
    handler = HANDLERS[(ctx.args.command, sub)]
    try:
        return await handler(ctx)
    except ValidationError as err:
        raise invalid_from_validation(err) from None
