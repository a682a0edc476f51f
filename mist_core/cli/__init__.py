"""The ``mist`` command line: every Mist API call as a command, with human tables or ``--json`` output.
``mist`` alone opens the TUI; ``mist daemon`` runs the daemon."""

from .entry import main, run

__all__ = ["main", "run"]
