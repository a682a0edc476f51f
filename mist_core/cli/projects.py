"""The commands about projects: create, list, show, rename, tag and delete them."""

from __future__ import annotations

from ..errors import InvalidInput
from ..models import ProjectChanges
from .context import CommandTable, Context, all_pages, confirm_deletion
from .format import human_age, human_time
from .output import EXIT_FAILURE, EXIT_OK

command = CommandTable()


@command("project", "create")
async def cmd_project_create(ctx: Context) -> int:
    a = ctx.args
    project = await ctx.api.projects.create(a.name, a.description, a.tags)
    ctx.out.result(project, f"Created project {project.name}")
    return EXIT_OK


@command("project", "list")
async def cmd_project_list(ctx: Context) -> int:
    projects = await all_pages(lambda off: ctx.api.projects.list(query=ctx.args.query, limit=100, offset=off))
    ctx.out.table(
        projects,
        ["NAME", "APPS", "TAGS", "OWNER", "AGE"],
        lambda p: (p.name, p.app_count, ",".join(p.tags) or None, p.owner, human_age(p.created_at)),
    )
    return EXIT_OK


@command("project", "show")
async def cmd_project_show(ctx: Context) -> int:
    p = await ctx.api.projects.get(ctx.args.name)
    ctx.out.pairs(
        p,
        lambda: [
            ("Project", p.name),
            ("Description", p.description or None),
            ("Tags", ", ".join(p.tags) or None),
            ("Owner", p.owner),
            ("Members", ", ".join(p.members) or None),
            ("Apps", p.app_count),
            ("Created", human_time(p.created_at)),
            ("Updated", human_time(p.updated_at)),
        ],
    )
    return EXIT_OK


@command("project", "rename")
async def cmd_project_rename(ctx: Context) -> int:
    project = await ctx.api.projects.update(ctx.args.old, ProjectChanges(name=ctx.args.new))
    ctx.out.result(project, f"Renamed project {ctx.args.old} to {project.name}")
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
    ctx.out.result(project, f"Tags of {project.name}: {', '.join(project.tags) or '(none)'}")
    return EXIT_OK


@command("project", "delete")
async def cmd_project_delete(ctx: Context) -> int:
    name = ctx.args.name
    if not confirm_deletion(ctx, "project", name):
        return EXIT_FAILURE
    await ctx.api.projects.delete(name)
    ctx.out.result({"deleted": name}, f"Deleted project {name}")
    return EXIT_OK
