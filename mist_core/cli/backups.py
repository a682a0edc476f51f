"""The backup commands: back up a project's volume or database now or on a schedule, list, verify, restore and delete
backups, and manage the destinations they go to. Runs, verifications and restores go on in the background;
the commands wait for their end unless told not to, and say how it went."""

from __future__ import annotations

import asyncio
import os

from ..errors import InvalidInput
from ..models import Backup, BackupDestinationSpec, BackupRetention, BackupScheduleSpec
from .context import CommandTable, Context, confirm_deletion
from .format import format_table, human_size, human_time
from .output import EXIT_FAILURE, EXIT_OK, Text

command = CommandTable()

POLL = 0.5


def _subject(text: str, *, volume: bool = True) -> tuple[str, str | None]:
    project, sep, name = text.partition("/")
    if not project or (volume and not name) or "/" in name:
        raise InvalidInput(
            f"{text!r} is not PROJECT/NAME: name the project and one of its volumes (e.g. shop/data) or, with "
            "--database, one of its databases (e.g. shop/main)",
            field="subject",
        )
    return project, name or None


def _verified(b: Backup) -> str:
    if b.verified in ("never", "running"):
        return "never" if b.verified == "never" else "verifying"
    return f"{b.verified} {human_time(b.verified_at)}"


def _table(backups: list[Backup]) -> str:
    rows = [
        (
            b.id,
            f"{b.kind}/{b.name}",
            b.state,
            human_time(b.started_at),
            human_size(b.size) if b.size is not None else None,
            "yes" if b.encrypted else None,
            _verified(b),
            b.destination,
        )
        for b in backups
    ]
    return format_table(
        ["ID", "SUBJECT", "STATE", "STARTED", "SIZE", "ENCRYPTED", "VERIFIED", "DESTINATION"], rows
    )


def _details(b: Backup) -> Text:
    text = Text(
        f"Backup {b.id} of {b.project}/{b.name} ({b.kind}) to {b.destination or '(removed)'}: {b.state}"
    )
    if b.error:
        text.note(f"error: {b.error}")
    if b.size is not None:
        text.note(f"size {human_size(b.size)} stored, {human_size(b.raw_size)} dumped; sha256 {b.checksum}")
    text.note(f"verified: {_verified(b)}" + (f" ({b.verify_detail})" if b.verify_detail else ""))
    if b.restore_state:
        text.note(f"last restore: {b.restore_state} {human_time(b.restored_at)} ({b.restore_detail or ''})")
    return text


async def _wait(ctx: Context, backup_id: int, busy: str) -> Backup:
    while True:
        backup = await ctx.api.backups.get(backup_id)
        if getattr(backup, busy) != "running":
            return backup
        await asyncio.sleep(POLL)


@command("backup", "list")
async def cmd_backup_list(ctx: Context) -> int:
    project, name = _subject(ctx.args.subject, volume=False)
    page = await ctx.api.backups.list(project, kind=ctx.args.kind, name=name, limit=ctx.args.limit)
    ctx.out.result(page.items, lambda: _table(page.items))
    return EXIT_OK


@command("backup", "show")
async def cmd_backup_show(ctx: Context) -> int:
    backup = await ctx.api.backups.get(ctx.args.backup_id)
    ctx.out.result(backup, _details(backup))
    return EXIT_OK


@command("backup", "run")
async def cmd_backup_run(ctx: Context) -> int:
    project, name = _subject(ctx.args.subject)
    assert name is not None
    backup = await ctx.api.backups.run(project, name, ctx.args.destination, kind=ctx.args.kind)
    if not ctx.args.wait:
        ctx.out.result(
            backup, Text(f"Backup {backup.id} started").note(f"Follow it with: mist backup show {backup.id}")
        )
        return EXIT_OK
    backup = await _wait(ctx, backup.id, "state")
    ctx.out.result(backup, _details(backup))
    return EXIT_OK if backup.state == "success" else EXIT_FAILURE


@command("backup", "verify")
async def cmd_backup_verify(ctx: Context) -> int:
    backup = await ctx.api.backups.verify(ctx.args.backup_id)
    if not ctx.args.wait:
        ctx.out.result(backup, f"Verification of backup {backup.id} started")
        return EXIT_OK
    backup = await _wait(ctx, backup.id, "verified")
    ctx.out.result(backup, _details(backup))
    return EXIT_OK if backup.verified == "passed" else EXIT_FAILURE


@command("backup", "restore")
async def cmd_backup_restore(ctx: Context) -> int:
    a = ctx.args
    if a.target is None and a.confirm is None:
        raise InvalidInput(
            "say where to restore: --into NEW_NAME (a new volume, or a new database for a database's backup), "
            "or --confirm NAME to replace the data of the volume or database the backup was taken of",
            field="target",
        )
    backup = await ctx.api.backups.restore(a.backup_id, a.target, a.confirm)
    if not a.wait:
        ctx.out.result(backup, f"Restore of backup {backup.id} started")
        return EXIT_OK
    backup = await _wait(ctx, backup.id, "restore_state")
    ctx.out.result(backup, _details(backup))
    return EXIT_OK if backup.restore_state == "success" else EXIT_FAILURE


@command("backup", "delete")
async def cmd_backup_delete(ctx: Context) -> int:
    backup_id = ctx.args.backup_id
    if not confirm_deletion(ctx, "backup", str(backup_id)):
        return EXIT_FAILURE
    await ctx.api.backups.delete(backup_id)
    ctx.out.result({"deleted": backup_id}, f"Deleted backup {backup_id}")
    return EXIT_OK


@command("backup", "schedule list")
async def cmd_backup_schedule_list(ctx: Context) -> int:
    schedules = await ctx.api.backups.schedules(ctx.args.project)
    rows = [
        (
            s.id,
            f"{s.kind}/{s.name}",
            s.destination,
            f"{s.cron} ({s.timezone})",
            human_time(s.next_run_at),
            ", ".join(f"{k} {v}" for k, v in s.retention.model_dump().items() if v is not None) or "all",
            "yes" if s.verify else "no",
        )
        for s in schedules
    ]
    ctx.out.result(
        schedules,
        lambda: format_table(["ID", "SUBJECT", "DESTINATION", "CRON", "NEXT", "KEEP", "VERIFY"], rows),
    )
    return EXIT_OK


@command("backup", "schedule add")
async def cmd_backup_schedule_add(ctx: Context) -> int:
    a = ctx.args
    project, name = _subject(a.subject)
    assert name is not None
    spec = BackupScheduleSpec(
        name=name,
        kind=a.kind,
        destination=a.destination,
        cron=a.cron,
        timezone=a.timezone,
        verify=a.verify,
        retention=BackupRetention(
            last=a.keep_last,
            days=a.keep_days,
            daily=a.keep_daily,
            weekly=a.keep_weekly,
            monthly=a.keep_monthly,
        ),
    )
    schedule = await ctx.api.backups.schedule(project, spec)
    ctx.out.result(
        schedule,
        f"Scheduled backups of {a.kind} {project}/{name} to {schedule.destination} ({schedule.cron}, "
        f"{schedule.timezone}); next {human_time(schedule.next_run_at)}",
    )
    return EXIT_OK


@command("backup", "schedule remove")
async def cmd_backup_schedule_remove(ctx: Context) -> int:
    await ctx.api.backups.unschedule(ctx.args.project, ctx.args.schedule_id)
    ctx.out.result({"removed": ctx.args.schedule_id}, f"Removed backup schedule {ctx.args.schedule_id}")
    return EXIT_OK


@command("backup", "destination list")
async def cmd_backup_destination_list(ctx: Context) -> int:
    destinations = await ctx.api.backups.destinations()
    rows = [
        (
            d.name,
            d.kind,
            d.path or f"{d.endpoint or 'aws'} {d.bucket}/{d.prefix}".rstrip("/"),
            "yes" if d.encrypt else "no",
        )
        for d in destinations
    ]
    ctx.out.result(destinations, lambda: format_table(["NAME", "KIND", "WHERE", "ENCRYPT"], rows))
    return EXIT_OK


def _s3_key(ctx: Context, variable: str, what: str) -> str:
    # Keys never come from the command line, where other users of the server see them (ps).
    value = os.environ.get(variable)
    if value:
        return value
    if not ctx.can_ask:
        raise InvalidInput(f"the S3 {what} is missing: set {variable}", field="access_key")
    return ctx.ask(f"S3 {what}: ")


@command("backup", "destination add")
async def cmd_backup_destination_add(ctx: Context) -> int:
    a = ctx.args
    if (a.path is None) == (a.bucket is None):
        raise InvalidInput("give either --path (a local directory) or --bucket (S3)", field="path")
    if a.path is not None:
        spec = BackupDestinationSpec(
            name=a.name, kind="local", path=os.path.abspath(a.path), encrypt=a.encrypt
        )
    else:
        spec = BackupDestinationSpec(
            name=a.name,
            kind="s3",
            bucket=a.bucket,
            endpoint=a.endpoint,
            region=a.region,
            prefix=a.prefix,
            access_key=_s3_key(ctx, "MIST_S3_ACCESS_KEY", "access key"),
            secret_key=_s3_key(ctx, "MIST_S3_SECRET_KEY", "secret key"),
            encrypt=a.encrypt,
        )
    added = await ctx.api.backups.add_destination(spec)
    text = Text(f"Added backup destination {added.name} ({added.kind})")
    if added.encrypt:
        text.note("Backups to it are encrypted with backup.key in the data directory: keep a copy elsewhere")
    ctx.out.result(added, text)
    return EXIT_OK


@command("backup", "destination remove")
async def cmd_backup_destination_remove(ctx: Context) -> int:
    if not confirm_deletion(ctx, "the backup destination", ctx.args.name):
        return EXIT_FAILURE
    await ctx.api.backups.remove_destination(ctx.args.name)
    ctx.out.result({"removed": ctx.args.name}, f"Removed backup destination {ctx.args.name}")
    return EXIT_OK
