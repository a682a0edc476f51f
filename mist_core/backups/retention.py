"""Which backups a schedule keeps: the union of its rules (keep the last N, those younger than D days, and
the newest of each of the last N days, weeks and months in the schedule's timezone). No rule: keep all."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ..models import BackupRetention


def to_prune(
    backups: Sequence[tuple[int, datetime]], rules: BackupRetention, now: datetime, timezone: str = "UTC"
) -> list[int]:
    """The ids among ``backups`` (id, when it was made; successful ones) that no rule keeps, oldest first."""
    if all(getattr(rules, f) is None for f in ("last", "days", "daily", "weekly", "monthly")):
        return []
    zone = ZoneInfo(timezone)
    newest_first = sorted(backups, key=lambda b: (b[1], b[0]), reverse=True)
    keep: set[int] = set()
    if rules.last:
        keep.update(i for i, _ in newest_first[: rules.last])
    if rules.days is not None:
        keep.update(i for i, at in newest_first if at >= now - timedelta(days=rules.days))
    buckets = (
        (rules.daily, lambda d: d.date().isoformat()),
        (rules.weekly, lambda d: "{}-W{:02d}".format(*d.isocalendar()[:2])),
        (rules.monthly, lambda d: f"{d.year}-{d.month:02d}"),
    )
    for count, period_of in buckets:
        if not count:
            continue
        seen: list[str] = []
        for backup_id, at in newest_first:
            period = period_of(at.astimezone(zone))
            if period in seen:
                continue
            if len(seen) == count:
                break
            seen.append(period)
            keep.add(backup_id)
    return [i for i, _ in reversed(newest_first) if i not in keep]
