"""The ``mist db`` commands: create, list, show and delete databases, start and stop them, read their output,
reveal their connection URL, and link them to apps."""

from __future__ import annotations

from pydantic import ValidationError

from .. import validate
from ..errors import InvalidInput
from ..models import Database, DatabaseChanges, DatabaseSpec
from .context import CommandTable, Context, all_pages, confirm_deletion, invalid_from_validation
from .format import human_size, human_time, parse_since, split_app_ref
from .output import EXIT_FAILURE, EXIT_OK, Text

command = CommandTable()


def db_ref(text: str) -> str:
    """``PROJECT/NAME`` as typed, checked early so the message shows the expected shape."""
    project, sep, name = text.partition("/")
    if not sep or not project or not name or "/" in name:
        raise InvalidInput(
            f"{text!r} does not name a database: write it as PROJECT/NAME, for example shop/db",
            field="database",
        )
    return text


def public_warning(db: Database) -> str | None:
    if db.public_port is None:
        return None
    return (
        f"Warning: {db.ref} is published on port {db.public_port} of every interface of this server: anyone "
        "who reaches it can try its password. Firewall it, or recreate the database without --public-port."
    )


@command("db", "create")
async def cmd_db_create(ctx: Context) -> int:
    a = ctx.args
    ref = db_ref(a.database)
    try:
        spec = DatabaseSpec(
            engine=a.engine,
            version=a.db_version,
            persistence=a.persistence,
            memory=validate.memory(a.memory) if a.memory is not None else None,
            cpus=a.cpus,
            restart=a.restart or "unless-stopped",
            public_port=a.public_port,
        )
    except ValidationError as err:
        raise invalid_from_validation(err) from None
    db = await ctx.api.databases.create(ref, spec)
    text = Text(f"Created {db.engine} {db.version} database {db.ref}: {db.status}")
    text.note(
        f"Apps of project {db.project} reach it at {db.host}:{db.port}; link one with: mist db link {db.ref} {db.project}/APP"
    )
    if db.status != "running":
        text.note(f"It is not healthy yet: see mist db logs {db.ref}")
    if (warning := public_warning(db)) is not None:
        text.note(warning)
    ctx.out.result(db, text)
    return EXIT_OK


@command("db", "list")
async def cmd_db_list(ctx: Context) -> int:
    databases = await all_pages(
        lambda off: ctx.api.databases.list(project=ctx.args.project, limit=100, offset=off)
    )
    ctx.out.table(
        databases,
        ["DATABASE", "ENGINE", "VERSION", "STATUS", "HOST", "LINKED"],
        lambda d: (
            d.ref,
            d.engine,
            d.version,
            d.status,
            f"{d.host}:{d.port}",
            ", ".join(a.split("/", 1)[1] for a in d.linked_apps) or None,
        ),
    )
    return EXIT_OK


def database_pairs(db: Database) -> list[tuple[str, object]]:
    return [
        ("Database", db.ref),
        ("Engine", f"{db.engine} {db.version}"),
        ("Image", db.image),
        ("Status", db.status),
        ("Host", f"{db.host}:{db.port} (on the project's network)"),
        ("Public port", f"{db.public_port} (every interface)" if db.public_port else None),
        ("User", db.user),
        ("Name", db.database),
        ("Persistence", db.persistence),
        ("Memory", human_size(db.memory) if db.memory else None),
        ("CPUs", f"{db.cpus:g}" if db.cpus else None),
        ("Restart", db.restart),
        ("Container", db.container_name),
        ("Volume", db.volume),
        ("Linked apps", ", ".join(db.linked_apps) or None),
        ("Password", f"mist db url {db.ref}"),
        ("Created", human_time(db.created_at)),
    ]


@command("db", "show")
async def cmd_db_show(ctx: Context) -> int:
    db = await ctx.api.databases.get(db_ref(ctx.args.database))
    ctx.out.pairs(db, lambda: database_pairs(db))
    return EXIT_OK


@command("db", "delete")
async def cmd_db_delete(ctx: Context) -> int:
    ref = db_ref(ctx.args.database)
    what = "database (and its data)" if not ctx.args.keep_volume else "database"
    if not confirm_deletion(ctx, what, ref):
        return EXIT_FAILURE
    await ctx.api.databases.delete(ref, keep_volume=ctx.args.keep_volume)
    kept = " (its volume is kept)" if ctx.args.keep_volume else ""
    ctx.out.result({"deleted": ref}, f"Deleted database {ref}{kept}")
    return EXIT_OK


async def _lifecycle(ctx: Context, action: str) -> int:
    db = await getattr(ctx.api.databases, action)(db_ref(ctx.args.database))
    ctx.out.result(db, f"{db.ref}: {db.status}")
    return EXIT_OK


@command("db", "start")
async def cmd_db_start(ctx: Context) -> int:
    return await _lifecycle(ctx, "start")


@command("db", "stop")
async def cmd_db_stop(ctx: Context) -> int:
    return await _lifecycle(ctx, "stop")


@command("db", "restart")
async def cmd_db_restart(ctx: Context) -> int:
    return await _lifecycle(ctx, "restart")


@command("db", "logs")
async def cmd_db_logs(ctx: Context) -> int:
    a = ctx.args
    ref = db_ref(a.database)
    if a.tail is not None and a.tail < 0:
        raise InvalidInput("--tail must be 0 or more", field="tail")
    since = parse_since(a.since) if a.since else None
    stream = ctx.api.databases.logs(ref, follow=a.follow, tail=a.tail, since=since)
    await ctx.out.stream(
        stream,
        (lambda line: f"{line.ts.isoformat()} {line.text}") if a.timestamps else (lambda line: line.text),
        follow=a.follow,
        app_output=True,
    )
    return EXIT_OK


@command("db", "url")
async def cmd_db_url(ctx: Context) -> int:
    url = await ctx.api.databases.url(db_ref(ctx.args.database))
    ctx.out.result({"url": url}, url)
    return EXIT_OK


def _same_project(database: str, app: str) -> str:
    """The app's name, when it is in the database's project (an app reaches only its own project's network)."""
    project, _ = split_app_ref(app)
    db_project = database.split("/", 1)[0]
    if project != db_project:
        raise InvalidInput(
            f"app {app} is not in project {db_project}: a database serves the apps of its own project (each "
            "project has its own network)",
            field="app",
        )
    return app.split("/", 1)[1]


@command("db", "link")
async def cmd_db_link(ctx: Context) -> int:
    a = ctx.args
    ref = db_ref(a.database)
    link = await ctx.api.databases.link(ref, _same_project(ref, a.app), prefix=a.prefix)
    text = Text(f"Linked {link.database} to {link.app}: {', '.join(link.variables)} (secret)")
    if link.deployment_id is not None:
        text.note(
            f"Redeploying {link.app} (deployment {link.deployment_id}): mist deployment log {link.deployment_id} -f"
        )
    else:
        text.note(
            f"{link.app} was never deployed: it gets them at its first deployment (mist deploy {link.app})"
        )
    ctx.out.result(link, text)
    return EXIT_OK


@command("db", "unlink")
async def cmd_db_unlink(ctx: Context) -> int:
    a = ctx.args
    ref = db_ref(a.database)
    await ctx.api.databases.unlink(ref, _same_project(ref, a.app))
    ctx.out.result({"unlinked": ref, "app": a.app}, f"Unlinked {ref} from {a.app}; its variables are removed")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- after creation


@command("db", "shell")
async def cmd_db_shell(ctx: Context) -> int:
    import sys

    from .terminal import attach, terminal_size

    a = ctx.args
    ref = db_ref(a.database)
    tty = a.tty if a.tty is not None else (sys.stdin.isatty() and sys.stdout.isatty())
    height, width = terminal_size() if tty else (None, None)
    channel = await ctx.api.databases.shell(
        ref, list(a.argv or []) or None, tty=tty, height=height, width=width
    )
    return await attach(channel, stdin_fd=sys.stdin.fileno(), stdout_fd=sys.stdout.fileno())


@command("db", "users")
async def cmd_db_users(ctx: Context) -> int:
    users = await ctx.api.databases.users(db_ref(ctx.args.database))
    kinds = {"app": "the database's own (its apps use it)", "superuser": "superuser", "user": "user"}
    ctx.out.table(users, ["USER", "KIND"], lambda u: (u.name, kinds.get(u.kind, u.kind)))
    return EXIT_OK


@command("db", "create-user")
async def cmd_db_create_user(ctx: Context) -> int:
    a = ctx.args
    ref = db_ref(a.database)
    password = None
    if a.password_stdin:
        password = ctx.stdin.readline().rstrip("\r\n")
        if not password:
            raise InvalidInput("--password-stdin read an empty line: pipe the password in", field="password")
    created = await ctx.api.databases.create_user(ref, a.user, password=password)
    text = Text(f"Created user {created.user} on {created.database}")
    if created.generated:
        text = Text(
            f"Created user {created.user} on {created.database} with the password:\n{created.password}"
        )
        text.note("Copy it now: Mist keeps no copy and cannot show it again.")
    ctx.out.result(created, text)
    return EXIT_OK


@command("db", "drop-user")
async def cmd_db_drop_user(ctx: Context) -> int:
    a = ctx.args
    ref = db_ref(a.database)
    if not confirm_deletion(ctx, f"the user of {ref}", a.user):
        return EXIT_FAILURE
    await ctx.api.databases.drop_user(ref, a.user)
    ctx.out.result({"dropped": a.user, "database": ref}, f"Removed user {a.user} from {ref}")
    return EXIT_OK


@command("db", "update")
async def cmd_db_update(ctx: Context) -> int:
    a = ctx.args
    ref = db_ref(a.database)
    given: dict[str, object] = {}
    if a.memory is not None:
        given["memory"] = validate.memory(a.memory)
    if a.cpus is not None:
        given["cpus"] = a.cpus
    if a.restart is not None:
        given["restart"] = a.restart
    if a.public_port is not None:
        given["public_port"] = a.public_port
    if a.no_public_port:
        given["public_port"] = None
    try:
        changes = DatabaseChanges(**given)  # type: ignore[arg-type]
    except ValidationError as err:
        raise invalid_from_validation(err) from None
    db = await ctx.api.databases.update(ref, changes)
    text = Text(f"Updated {db.ref}: {db.status}")
    if (warning := public_warning(db)) is not None:
        text.note(warning)
    ctx.out.result(db, text)
    return EXIT_OK


@command("db", "upgrade")
async def cmd_db_upgrade(ctx: Context) -> int:
    a = ctx.args
    db = await ctx.api.databases.upgrade(db_ref(a.database), a.db_version)
    ctx.out.result(db, f"{db.ref} runs {db.engine} {db.version} ({db.image}): {db.status}")
    return EXIT_OK
