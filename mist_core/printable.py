"""Stored text made safe to show on a terminal. Names, messages, refs and log lines come from users, pull
request authors, git servers and apps; printed as they are, a control character in them could clear the
screen, move the cursor, set the window title or the clipboard (OSC), or make a line read differently from how
it runs (bidi overrides). Every human rendering (the CLI's text output, the TUI) passes text through here;
JSON output keeps values exact, escaped by the JSON encoder instead.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["REPLACEMENT", "is_unsafe", "printable", "printable_log"]

REPLACEMENT = "\ufffd"

# Control codes (C0, DEL, C1: ESC starts every terminal sequence, 0x9b is a one-byte CSI), format characters
# (bidi overrides and isolates, zero-width characters), lone surrogates (which no terminal encoding can carry),
# and the Unicode line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Tabs and line breaks keep their meaning: a table is several lines, a log line may be indented.
_KEPT = "\t\n"
_KEPT_AS_SPACES = {ord(ch): " " for ch in _KEPT}
# A colour (Select Graphic Rendition) sequence: ESC [ parameters m. It changes how text looks, nothing else.
_SGR = re.compile(r"\x1b\[[0-9;:]{0,64}m")
_RESET = "\x1b[0m"


def is_unsafe(ch: str) -> bool:
    """Whether the character ``ch`` could act on a terminal or change how a line reads, instead of being shown."""
    return ch not in _KEPT and not ch.isprintable() and unicodedata.category(ch) in _UNSAFE_CATEGORIES


def printable(text: str) -> str:
    """``text`` with every control, format and separator character replaced by U+FFFD (tabs and line breaks
    kept), so it shows exactly what it holds and does nothing else. Each character is replaced by one, so
    offsets into the text stay valid."""
    # str.isprintable runs in C and is true for almost every line: the slow path is for the rare rest.
    if text.isprintable() or text.translate(_KEPT_AS_SPACES).isprintable():
        return text
    return "".join(REPLACEMENT if is_unsafe(ch) else ch for ch in text)


def printable_log(text: str, *, colour: bool) -> str:
    """A line an app wrote, for a terminal: like ``printable``, except that its colour sequences are kept
    (``colour``, followed by a reset so they cannot spill onto what comes next) or removed (not ``colour``,
    for a file, a pipe, or a reader who asked for no colour). Nothing else an app writes reaches the terminal:
    no cursor movement, screen clearing, titles or hyperlinks (OSC), no bidi overrides."""
    if "\x1b" not in text:
        return printable(text)
    pieces = _SGR.split(text)
    if not colour:
        return "".join(printable(piece) for piece in pieces)
    sequences = _SGR.findall(text)
    kept = [printable(pieces[0])]
    for sequence, piece in zip(sequences, pieces[1:], strict=True):
        kept += [sequence, printable(piece)]
    return "".join(kept) + (_RESET if sequences else "")
