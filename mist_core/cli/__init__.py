"""The ``mist`` command line: every Mist API call as a command, with human tables or ``--json`` output, run
as ``python -m mist_core.cli`` or, through ``mist_tui.launch``, as ``mist`` (which opens the TUI when given no
command). ``mist daemon`` runs the daemon."""

from __future__ import annotations

import gc
from typing import Any


def main(argv: list[str] | None = None, **streams: Any) -> int:
    """``mist [options] command ...`` as the process's program; see ``mist_core.cli.entry.main``."""
    # Imported here, so that reaching for a part of the package (its parser, its formats) does not load
    # every command. Importing makes a few hundred thousand objects and no garbage: the collector would
    # walk them again and again for nothing, so it rests until they are in, then leaves them out of its walks.
    gc.disable()
    try:
        from .entry import main as entry_main
    finally:
        gc.freeze()
        gc.enable()
    try:
        return entry_main(argv, **streams)
    finally:
        # The process ends next: without this, the interpreter's last collection walks every object the
        # command made (0.1-0.25 s measured), only to free memory the exit frees anyway.
        gc.freeze()


def run(argv: list[str], **options: Any) -> int:
    """Run one command in this process; see ``mist_core.cli.entry.run``."""
    from .entry import run as entry_run

    return entry_run(argv, **options)


__all__ = ["main", "run"]
