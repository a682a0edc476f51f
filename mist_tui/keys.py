"""Every key of the terminal app, read from the bindings themselves: the reference in ``docs/tui.md`` is
made from this (``python -m mist_tui.keys``), and ``?`` shows the same bindings for the focused view, so the
two cannot say different things."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

from textual.binding import Binding
from textual.dom import DOMNode
from textual.keys import format_key

import mist_tui

START = "<!-- keys:start (made by `python -m mist_tui.keys`; do not edit by hand) -->"
END = "<!-- keys:end -->"

# Where each set of keys applies, in the order the reference lists them; a class not named here is listed
# after these under its own name.
PLACES = {
    "MistApp": "Everywhere",
    "MistTable": "Every list",
    "LineTable": "The dashboard's table",
    "DashboardScreen": "Dashboard",
    "AppScreen": "App",
    "EnvironmentPane": "App: Environment tab",
    "DomainsPane": "App: Domains tab",
    "GitPane": "App: Git tab",
    "SettingsPane": "App: Settings tab",
    "DeploymentScreen": "Deployment",
    "LogPanel": "Logs (an app's Logs tab, a deployment's build log, several apps' logs)",
    "LogsScreen": "Several apps' logs",
    "AppPicker": "Several apps' logs: the app picker",
    "MetricsScreen": "Metrics",
    "DatabasesScreen": "Databases",
    "DatabaseScreen": "A database",
    "BackupsPane": "Backups (a database's Backups tab, a project's backups)",
    "BackupsScreen": "A project's backups",
    "_ListScreen": "Users, sessions, tokens, audit log and settings",
    "UsersScreen": "Users",
    "SessionsScreen": "Sessions",
    "TokensScreen": "API tokens",
    "AuditScreen": "Audit log",
    "SettingsScreen": "Server settings",
    "AccountScreen": "Account",
    "GitProvidersScreen": "Git providers",
    "RepositoriesScreen": "Git providers: a provider's repositories",
    "MembersDialog": "Project members",
    "ConfirmDialog": "A confirmation",
    "FormDialog": "A form",
    "FormCheckbox": "A form's checkbox",
    "SecretDialog": "A secret shown once, or a value to copy",
    "_Card": "Connect, log in and set up",
}


def _classes() -> Iterator[type[DOMNode]]:
    seen: set[type] = set()
    for module_info in pkgutil.walk_packages(mist_tui.__path__, "mist_tui."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, DOMNode)
                and value.__module__ == module.__name__
                and "BINDINGS" in vars(value)
                and value not in seen
            ):
                seen.add(value)
                yield value


def bindings() -> dict[str, list[Binding]]:
    """Each place's own bindings (``Binding`` objects, as declared), by the place's name."""
    found: dict[str, list[Binding]] = {}
    classes = sorted(
        _classes(), key=lambda c: (list(PLACES).index(c.__name__) if c.__name__ in PLACES else 99, c.__name__)
    )
    for cls in classes:
        own = [b for b in vars(cls)["BINDINGS"] if isinstance(b, Binding)]
        if own:
            found.setdefault(PLACES.get(cls.__name__, cls.__name__), []).extend(own)
    return found


def key_names(binding: Binding) -> str:
    return " / ".join(f"`{binding.key_display or format_key(key)}`" for key in binding.key.split(","))


def reference() -> str:
    """The keys section of ``docs/tui.md``: one table per place, with each key's binding id for remapping."""
    out = [START, ""]
    for place, place_bindings in bindings().items():
        out += [f"#### {place}", "", "| Key | Does | Id |", "| --- | --- | --- |"]
        for binding in place_bindings:
            does = binding.description or binding.tooltip or binding.action
            remap = f"`{binding.id}`" if binding.id else "—"
            out.append(f"| {key_names(binding)} | {does} | {remap} |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def update(text: str) -> str:
    """``text`` (the guide) with its keys section replaced by the current ``reference()``."""
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    return before + reference() + after


if __name__ == "__main__":
    from pathlib import Path

    guide = Path(__file__).resolve().parent.parent / "docs" / "tui.md"
    guide.write_text(update(guide.read_text()))
