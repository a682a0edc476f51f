"""The ``mist`` program: the terminal UI when given no command, the command line (``mist_core.cli``) for
everything else. It lives beside the TUI so that the headless core never imports it; Textual is loaded only
when the TUI opens."""

from __future__ import annotations

import sys


def tui_arguments(argv: list[str]) -> list[str]:
    """The command line's connection options as the TUI names them: it has no JSON output, and calls the
    data directory ``--data-dir``."""
    translated: list[str] = []
    for arg in argv:
        if arg == "--json":
            continue
        if arg == "--data" or arg.startswith("--data="):
            arg = "--data-dir" + arg[len("--data") :]
        translated.append(arg)
    return translated


def opens_the_tui(argv: list[str]) -> bool:
    """Whether ``argv`` names no command (only connection options), and is no request for help."""
    from mist_core.cli.parser import first_command

    return first_command(argv) is None and "-h" not in argv and "--help" not in argv


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if opens_the_tui(args):
        from .__main__ import main as tui_main

        return int(tui_main(tui_arguments(args)) or 0)
    from mist_core.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
