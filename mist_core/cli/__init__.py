"""The ``mist`` command line: every Mist API call as a command, with human tables or ``--json`` output, run
as ``python -m mist_core.cli`` or, through ``mist_tui.launch``, as ``mist`` (which opens the TUI when given no
command). ``mist daemon`` runs the daemon."""

from __future__ import annotations

from typing import Any


def main(argv: list[str] | None = None, **streams: Any) -> int:
    """``mist [options] command ...``; see ``mist_core.cli.entry.main``."""
    # Imported here, so that reaching for a part of the package (its parser, its formats) does not load
    # every command.
    from .entry import main as entry_main

    return entry_main(argv, **streams)


def run(argv: list[str], **options: Any) -> int:
    """Run one command in this process; see ``mist_core.cli.entry.run``."""
    from .entry import run as entry_run

    return entry_run(argv, **options)


__all__ = ["main", "run"]
