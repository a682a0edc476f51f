"""``y`` everywhere: copy a value to the clipboard of the terminal the user sits at (OSC 52, so it also
works over SSH), and say what was copied."""

from __future__ import annotations

from textual.dom import DOMNode

SHOWN = 40  # characters of the copied value repeated in the notification


def copy(node: DOMNode, value: str, what: str) -> None:
    node.app.copy_to_clipboard(value)
    preview = value if len(value) <= SHOWN else value[: SHOWN - 1] + "…"
    node.app.notify(f"Copied {what}: {preview}", timeout=3)
