"""Small pure helpers of the command line: aligned tables, human sizes and ages, and the parsing of the
values users type (``--since 10m``, ``--memory 512m``, ``KEY=VALUE``, ``NAME:/path``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ..errors import InvalidInput

# ---------------------------------------------------------------------------------------------- output


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, gap: int = 2) -> str:
    """Columns padded to their widest cell; the last column is not padded, so lines carry no trailing
    spaces. ``None`` cells print as ``-`` so a missing value is visible rather than a hole."""
    cells = [[_cell(v) for v in row] for row in rows]
    header = [str(h) for h in headers]
    widths = [len(h) for h in header]
    for row in cells:
        if len(row) != len(header):
            raise ValueError(f"row has {len(row)} cells, expected {len(header)}")
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    sep = " " * gap
    lines = []
    for row in [header, *cells]:
        padded = [value.ljust(widths[i]) for i, value in enumerate(row[:-1])] + [row[-1]]
        lines.append(sep.join(padded).rstrip())
    return "\n".join(lines)


def format_pairs(pairs: Sequence[tuple[str, object]]) -> str:
    """A two-column ``label  value`` block for ``show`` commands."""
    if not pairs:
        return ""
    width = max(len(label) for label, _ in pairs)
    return "\n".join(f"{label.ljust(width)}  {_cell(value)}".rstrip() for label, value in pairs)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    # A cell is one line: a multi-line value (an error, a description) would break the alignment.
    return str(value).replace("\r", " ").replace("\n", " ")


_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | float | None) -> str:
    """Bytes as ``512 B``, ``1.5 KiB``, ``3.2 GiB`` (binary units, like Docker's memory limits)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in _SIZE_UNITS:
        if abs(value) < 1024 or unit == _SIZE_UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    """``45s``, ``3m12s``, ``2h05m``, ``3d4h``: short enough for a table column."""
    if seconds is None:
        return "-"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h}h"


def human_age(when: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``when`` was, in the largest whole unit: ``12s``, ``5m``, ``3h``, ``2d``."""
    if when is None:
        return "-"
    now = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    s = max(0, int((now - when).total_seconds()))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def human_time(when: datetime | None) -> str:
    """A timestamp in UTC, to the second."""
    if when is None:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------------------------- input

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_RELATIVE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, field: str = "since", now: datetime | None = None) -> datetime:
    """``10m``, ``2h``, ``1d`` (that long ago) or an ISO 8601 time or date; a time without a zone is taken as
    UTC. ``field`` names the option in the message of a refusal (``since``, ``until``)."""
    now = now or datetime.now(UTC)
    if match := _RELATIVE.match(text):
        amount = float(match.group(1))
        return now - timedelta(seconds=amount * _RELATIVE_UNITS[match.group(2).lower()])
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"--{field} {text!r} is not a time: use a duration like 30s, 10m, 2h, 1d, or an ISO 8601 time "
            "like 2024-05-01T12:00:00Z",
            field=field,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: see ``parse_time``."""
    return parse_time(text, "since", now)


_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_assignment(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as a pair; the value may itself contain ``=``."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidInput(
            f"{text!r} is not KEY=VALUE: write the variable as NAME=value (use NAME= for an empty value)",
            field="key",
        )
    if not _ENV_KEY.match(key):
        raise InvalidInput(
            f"{key!r} is not a valid variable name: use letters, digits and _, not starting with a digit",
            field="key",
        )
    return key, value


def split_app_ref(text: str) -> tuple[str, str]:
    """``project/app`` as a pair; checked early so the message can show the expected shape."""
    project, sep, app = text.partition("/")
    if not sep or not project or not app or "/" in app:
        raise InvalidInput(
            f"{text!r} does not name an app: write it as PROJECT/APP, for example shop/web", field="app"
        )
    return project, app
