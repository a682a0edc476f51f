"""The commands about apps themselves: create one (from a git URL or a git provider's repository), change its
settings, list, show and delete apps."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from pydantic import ValidationError

from .. import validate
from ..errors import InvalidInput, MistError, NotFound, PermissionDenied
from ..models import App, AppChanges, AppSpec, HealthCheck, RepoInfo, SourceChanges
from .context import CommandTable, Context, all_pages, app_ref, confirm_deletion, invalid_from_validation
from .format import human_age, human_size, human_time
from .output import EXIT_FAILURE, EXIT_OK, Text

command = CommandTable()

HEALTH_OPTIONS = (
    "health_path",
    "health_tcp",
    "health_docker",
    "health_none",
    "health_interval",
    "health_retries",
    "health_start_period",
)


def health_check(a: Namespace, base: HealthCheck) -> HealthCheck | None:
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


def spec_fields(a: Namespace) -> dict[str, Any]:
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


def new_spec(a: Namespace, **fields: Any) -> AppSpec:
    """The spec of a new app: the options given, ``fields`` on top, the health check if one was described."""
    fields = {**spec_fields(a), **fields}
    health = health_check(a, HealthCheck())
    if health is not None:
        fields["health"] = health
    try:
        return AppSpec(**fields)
    except ValidationError as err:
        raise invalid_from_validation(err) from None


def _same_repo(a: str, b: str) -> bool:
    def norm(name: str) -> str:
        return name.strip().strip("/").removesuffix(".git").lower()

    return norm(a) == norm(b)


async def provider_repo(ctx: Context, provider: str, repo: str) -> RepoInfo:
    """The repository ``repo`` as ``provider`` lists it, or a refusal that says where to look."""
    for info in await ctx.api.git.repos(provider):
        if _same_repo(info.full_name, repo):
            return info
    raise NotFound(
        f"git provider {provider} gives Mist no repository {repo}: see `mist git repos {provider}` (for a "
        "GitHub App, install it on that repository)",
        field="repo",
    )


async def create_from_provider(ctx: Context) -> App:
    """``app create --provider P --repo R``: the app starts from the repository's clone URL (and default
    branch, unless ``--branch``), then is linked to the provider, which fetches with its own credentials."""
    a = ctx.args
    ref = app_ref(a.app)
    info = await provider_repo(ctx, a.provider, a.repo)
    branch = a.branch if a.branch is not None else info.default_branch
    spec = new_spec(a, git_url=info.clone_url, branch=branch)
    await ctx.api.apps.create(ref, spec)
    try:
        await ctx.api.apps.set_source(ref, SourceChanges(provider=a.provider, repo=info.full_name))
    except MistError:
        # An app that cannot fetch from where it was asked to would only fail later: take it back.
        try:
            await ctx.api.apps.delete(ref)
        except MistError:
            pass
        raise
    return await ctx.api.apps.get(ref)


@command("app", "create")
async def cmd_app_create(ctx: Context) -> int:
    a = ctx.args
    if a.provider is not None:
        app = await create_from_provider(ctx)
        ctx.out.result(
            app,
            Text(
                f"Created app {app.ref} from {a.repo} at git provider {a.provider}; "
                f"deploy it with: mist deploy {app.ref}"
            ).note(f"Its webhook and how pushes deploy: mist app source {app.ref}"),
        )
        return EXIT_OK
    ref = app_ref(a.app)
    app = await ctx.api.apps.create(ref, new_spec(a))
    ctx.out.result(app, f"Created app {app.ref}; deploy it with: mist deploy {app.ref}")
    return EXIT_OK


@command("app", "set")
async def cmd_app_set(ctx: Context) -> int:
    a = ctx.args
    ref = app_ref(a.app)
    fields = spec_fields(a)
    if any(getattr(a, n, None) is not None for n in HEALTH_OPTIONS):
        current = await ctx.api.apps.get(ref)
        fields["health"] = health_check(a, current.spec.health)
    if not fields and not a.clear:
        raise InvalidInput(
            "nothing to change: give at least one option (see mist app set --help)", field="app"
        )
    try:
        changes = AppChanges(**fields, clear=list(dict.fromkeys(a.clear or [])))
    except ValidationError as err:
        raise invalid_from_validation(err) from None
    app = await ctx.api.apps.update(ref, changes)
    ctx.out.result(app, f"Updated app {app.ref}; the change takes effect at the next deployment")
    return EXIT_OK


@command("app", "list")
async def cmd_app_list(ctx: Context) -> int:
    a = ctx.args
    apps = await all_pages(
        lambda off: ctx.api.apps.list(project=a.project, query=a.query, limit=100, offset=off)
    )
    ctx.out.table(
        apps,
        ["APP", "STATUS", "COMMIT", "LIVE", "GIT"],
        lambda app: (
            app.ref,
            app.status,
            (app.live_commit or "")[:8] or None,
            human_age(app.live_since),
            app.spec.git_url,
        ),
    )
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


async def webhook_url_of(ctx: Context, ref: str) -> str | None:
    """The app's webhook URL for ``app show``; None for a caller who may not see the source."""
    try:
        return (await ctx.api.apps.source(ref)).webhook_url
    except PermissionDenied:
        return None


@command("app", "show")
async def cmd_app_show(ctx: Context) -> int:
    app = await ctx.api.apps.get(app_ref(ctx.args.app))
    webhook_url = await webhook_url_of(ctx, app.ref)
    ctx.out.pairs(
        {**app.model_dump(mode="json"), "webhook_url": webhook_url},
        lambda: [*app_pairs(app), ("Webhook", webhook_url)],
    )
    return EXIT_OK


@command("app", "delete")
async def cmd_app_delete(ctx: Context) -> int:
    ref = app_ref(ctx.args.app)
    if not confirm_deletion(ctx, "app", ref):
        return EXIT_FAILURE
    await ctx.api.apps.delete(ref)
    ctx.out.result({"deleted": ref}, f"Deleted app {ref}")
    return EXIT_OK
