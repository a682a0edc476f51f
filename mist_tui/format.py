"""How values look on screen: human sizes, ages, durations, short shas and status colours, in one place so
every screen says them the same way; and stored text made safe to show (``shown``, ``printable_text``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from rich.style import Style
from rich.text import Text

from mist_core.printable import printable


def shown(value: object, style: str | Style = "", **options: object) -> Text:
    """Stored text (a name, a message, a ref, a reason) as it may reach the screen: control characters
    neutralised, so it cannot act on the terminal, and never read as markup, whatever brackets it holds.
    A ``str`` given to a Static, a Label, a border title or a Rich table would be read as markup."""
    return Text(printable(str(value)), style=style, **options)  # type: ignore[arg-type]


def printable_text(text: Text) -> Text:
    """``text`` with its characters made printable: the same ``Text`` when nothing needed it, else a copy
    (each character is replaced by one, so its styles stay where they were)."""
    plain = text.plain
    fixed = printable(plain)
    if fixed is plain:
        return text
    copy = text.copy()
    copy.plain = fixed
    return copy


STATUS_STYLES = {
    "live": "bold green",
    "deploying": "bold yellow",
    "failed": "bold red",
    "crashed": "bold red",
    "stopped": "dim",
    "new": "italic dim",
    "restarting": "bold yellow",
    # deployment states
    "queued": "yellow",
    "fetching": "yellow",
    "building": "yellow",
    "starting": "yellow",
    "checking": "yellow",
    "switching": "yellow",
    "cancelled": "dim",
    "superseded": "dim",
    "rolled_back": "magenta",
}

STATUS_ICONS = {
    "live": "●",
    "deploying": "◐",
    "failed": "✕",
    "crashed": "✕",
    "stopped": "○",
    "new": "·",
    "restarting": "↻",
}


ROLE_STYLES = {"owner": "bold magenta", "admin": "bold cyan", "developer": "green", "viewer": "dim"}


def role_text(role: str | None) -> Text:
    """An instance or project role in its colour (owner magenta, admin cyan, developer green)."""
    if not role:
        return Text("—", style="dim")
    return Text(role, style=ROLE_STYLES.get(role.removeprefix("token:"), "yellow"))


def state_words(state: str) -> str:
    """A state as words: ``rolled_back`` reads ``rolled back``."""
    return state.replace("_", " ")


def status_text(status: str, *, icon: bool = True) -> Text:
    """A status word in its colour (live green, deploying yellow, failed red, stopped dim)."""
    words = state_words(status)
    label = f"{STATUS_ICONS.get(status, '●')} {words}" if icon else words
    return Text(label, style=STATUS_STYLES.get(status, ""))


def status_with_latest(status: str, latest_state: str | None, latest_id: int | None) -> Text:
    """An app's status, and beside it its latest deployment when that one is not what serves: ``● live ·
    ✕ #10`` (the last deploy failed, the previous one still serves) or ``● live · ◐ #11`` (one is running)."""
    text = status_text(status)
    if latest_id is None or latest_state is None or status != "live":
        return text
    if latest_state == "failed":
        text.append(f" · ✕ #{latest_id}", style="bold red")
    elif latest_state in ("queued", "fetching", "building", "starting", "checking", "switching"):
        text.append(f" · ◐ #{latest_id}", style="bold yellow")
    return text


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 line``, ``2 lines``, ``10,000 apps``: a count with its noun in the right number."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def human_bytes(n: int | float | None) -> str:
    """``512.0 MiB``, ``1.5 GiB``: binary units, one decimal above KiB."""
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_rate(bytes_per_second: float) -> str:
    return f"{human_bytes(bytes_per_second)}/s"


def human_age(then: datetime | None, now: datetime) -> str:
    """The age of a moment in its largest whole unit: ``45s``, ``3m``, ``2h``, ``5d``, ``3mo``, ``2y``."""
    if then is None:
        return "—"
    seconds = max(0, int((now - then).total_seconds()))
    for limit, unit, size in (
        (60, "s", 1),
        (3600, "m", 60),
        (86400, "h", 3600),
        (86400 * 60, "d", 86400),
        (86400 * 730, "mo", 86400 * 30),
    ):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // (86400 * 365)}y"


def human_duration(seconds: float | None) -> str:
    """``0.4s``, ``38s``, ``2m05s``, ``1h02m``."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


def human_until(when: datetime | None, now: datetime, *, never: str = "never") -> str:
    """How long until a moment: ``in 3d``, ``in 45m``; ``expired`` once it has passed."""
    if when is None:
        return never
    if when <= now:
        return "expired"
    return f"in {human_age(now, when)}"


def utc_time(when: datetime) -> str:
    """A moment as ``2026-01-15 11:55`` in UTC: the same on every machine that reads an audit trail."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


_SPAN = re.compile(r"^(\d+)\s*(m|min|h|d|w)$")
_SPAN_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime | None:
    """A "since" the user typed: ``""`` (none), a span back from now (``30m``, ``2h``, ``7d``, ``2w``) or
    a UTC date or time (``2026-01-10``, ``2026-01-10 14:30``). Raises ``ValueError`` saying what works."""
    text = text.strip().lower()
    if not text:
        return None
    if match := _SPAN.match(text):
        return now - timedelta(**{_SPAN_UNITS[match.group(2)]: int(match.group(1))})
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a time: use 30m, 2h, 7d, 2w or a UTC date like 2026-01-10 14:30")


def human_wait(seconds: float) -> str:
    """A wait said in words: ``45 seconds``, ``1 minute``, ``5 minutes``."""
    whole = max(1, int(round(seconds)))
    if whole < 60:
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = (whole + 59) // 60
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def short_sha(sha: str | None) -> str:
    return sha[:7] if sha else "—"


def cpu_text(percent: float | None) -> Text:
    """CPU as percent of one core, right-aligned, warm colours when busy."""
    if percent is None:
        return Text("—", style="dim", justify="right")
    style = "red" if percent >= 90 else "yellow" if percent >= 50 else ""
    return Text(f"{percent:5.1f}%", style=style, justify="right")


def memory_text(used: int | None, limit: int | None = None) -> Text:
    if used is None:
        return Text("—", style="dim", justify="right")
    style = "red" if limit and used / limit >= 0.9 else ""
    return Text(human_bytes(used), style=style, justify="right")


def right(value: str, style: str = "") -> Text:
    return Text(value, style=style, justify="right")


def parse_size(text: str) -> int | str | None:
    """What the user typed in a memory field: ``""`` clears, digits are bytes, ``512m``/``1g`` pass through
    for the core to validate (it owns the rules)."""
    text = text.strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text
