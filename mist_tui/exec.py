"""A shell in an app's live container from the TUI: the session is opened first (so a refusal, such as a
viewer's, is a notification and the screen stays), then the TUI suspends, hands the terminal to the
session (``mist_core.cli.exec.attach``, the same relay ``mist exec`` uses, embedded or remote) and comes
back when the shell exits."""

from __future__ import annotations

import shutil
from typing import Any

from textual import work
from textual.app import App, SuspendNotSupported
from textual.dom import DOMNode

from mist_core.cli.exec import attach
from mist_core.errors import MistError, PermissionDenied


async def shell_in(app: App[Any], app_ref: str) -> int | None:
    """Run a shell in ``app_ref``'s container with the TUI suspended; its exit status, or None when none ran
    (the reason is shown)."""
    api = app.api  # type: ignore[attr-defined]
    size = shutil.get_terminal_size()
    try:
        channel = await api.containers.exec(app_ref, None, tty=True, height=size.lines, width=size.columns)
    except PermissionDenied as error:
        app.notify(
            f"Not allowed: a shell in {app_ref} needs a developer role or more. {error}", severity="error"
        )
        return None
    except MistError as error:
        app.notify(f"No shell in {app_ref}: {error}", severity="error")
        return None
    try:
        with app.suspend():
            code = await attach(channel, stdin_fd=0, stdout_fd=1, stderr_fd=2)
    except SuspendNotSupported:
        await channel.close()
        app.notify("This terminal cannot hand over to a shell: use `mist exec` instead.", severity="error")
        return None
    except MistError as error:
        app.notify(f"The shell in {app_ref} ended: {error}", severity="error")
        return None
    app.notify(f"Shell in {app_ref} exited with status {code}.")
    return code


def open_shell(node: DOMNode, app_ref: str) -> None:
    """``s``: a shell in ``app_ref``, in a worker of ``node`` (one at a time)."""

    @work(exclusive=True, group="shell", exit_on_error=False)
    async def run(self: DOMNode) -> None:
        await shell_in(self.app, app_ref)

    run(node)
