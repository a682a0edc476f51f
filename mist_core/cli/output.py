"""Where the command line writes: human text or one JSON document on stdout, notes and errors on stderr,
and the mapping from errors to exit codes. A command says what it produced and how a person reads it
(``Output.result``, ``table``, ``pairs``, ``stream``); which of the two is written is decided here alone.
Every human line passes through ``printable`` on its way out, so nothing stored (a name, a commit message, a
log line) can act on the terminal; JSON keeps values exact."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO, TypeVar

from pydantic import BaseModel

from ..errors import MistError
from ..printable import is_unsafe, printable, printable_log
from .format import format_pairs, format_table

# Errors the user can fix by changing what they typed or did: exit 2. Anything else (engine down,
# daemon unreachable, a bug): exit 1.
USER_ERROR_CODES = frozenset(
    {
        "invalid_input",
        "not_found",
        "conflict",
        "permission_denied",
        "unauthenticated",
        "token_expired",
        "totp_required",
        "too_many_attempts",
        "setup_required",
    }
)
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def exit_code_for(error: MistError) -> int:
    return EXIT_USER_ERROR if error.code in USER_ERROR_CODES else EXIT_FAILURE


def to_jsonable(value: Any) -> Any:
    """Models, lists of models and plain values as JSON-ready data (datetimes as ISO 8601 strings)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


# json.dumps escapes the C0 controls; C1 controls, bidi overrides and the other characters that could act on a
# terminal are escaped here too (as \uXXXX, which decodes to the same text), so even JSON read on a terminal
# is safe. Outside strings a JSON document holds only ASCII, so every match is inside a string.
_NON_ASCII = re.compile(r"[^\x00-\x7e]")


def _escape_unsafe(match: re.Match[str]) -> str:
    ch = match.group()
    if not is_unsafe(ch):
        return ch
    return "".join(f"\\u{unit:04x}" for unit in _utf16_units(ch))


def _utf16_units(ch: str) -> tuple[int, ...]:
    code = ord(ch)
    if code < 0x10000:
        return (code,)
    code -= 0x10000
    return (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF))


def json_text(value: Any, *, indent: int | None = None) -> str:
    """``value`` as a JSON document that is exact and safe to print."""
    text = json.dumps(to_jsonable(value), indent=indent, ensure_ascii=False)
    return _NON_ASCII.sub(_escape_unsafe, text)


def error_document(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


T = TypeVar("T")


class Text:
    """What a person sees of a result: lines for stdout and notes for stderr, in the order they are added.
    Notes are what a script piping stdout must not get: hints, warnings, what to run next."""

    def __init__(self, *lines: str) -> None:
        self.parts: list[tuple[str, str]] = [("line", line) for line in lines]

    def line(self, text: str = "") -> Text:
        self.parts.append(("line", text))
        return self

    def lines(self, texts: Iterable[str]) -> Text:
        self.parts.extend(("line", text) for text in texts)
        return self

    def note(self, text: str) -> Text:
        self.parts.append(("note", text))
        return self

    def document(self, text: str) -> Text:
        """A text meant to be saved (see ``Output.document``)."""
        self.parts.append(("document", text))
        return self


# How a result reads for a person: one text (a line or a block), a ``Text`` of lines and notes, or a
# function making either, called only when a person reads the output (not with --json).
Human = str | Text | Callable[[], "str | Text"] | None


class Output:
    """One command's output. In JSON mode a command emits exactly one document (or, while following a stream,
    one compact document per line); in human mode it prints text. Commands say what they produced with
    ``result``/``table``/``pairs``/``stream``/``item`` and leave the choice to this class."""

    def __init__(self, *, json_mode: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json_mode = json_mode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def terminal(self) -> bool:
        """Whether stdout is a terminal (rather than a file or a pipe)."""
        isatty = getattr(self.stdout, "isatty", None)
        return bool(isatty and isatty())

    @property
    def colour(self) -> bool:
        """Whether an app's own colours may reach stdout: only a terminal's, unless NO_COLOR is set."""
        return self.terminal and not os.environ.get("NO_COLOR")

    # ------------------------------------------------------------------------------------------ results

    def result(self, data: Any, human: Human = None) -> None:
        """What a command produced: ``data`` as the JSON document with --json, else ``human`` for a person."""
        if self.json_mode:
            self.data(data)
        else:
            self.show(human)

    def table(self, items: Sequence[T], headers: Sequence[str], row: Callable[[T], Sequence[object]]) -> None:
        """A list: the items as a JSON array, or a table of one ``row`` per item under ``headers``."""
        self.result(items, lambda: format_table(headers, [row(item) for item in items]))

    def pairs(self, data: Any, pairs: Callable[[], Sequence[tuple[str, object]]]) -> None:
        """One thing: ``data`` as a JSON document, or its ``label  value`` pairs for a person."""
        self.result(data, lambda: format_pairs(pairs()))

    def item(self, data: Any, text: str, *, app_output: bool = False) -> None:
        """One item of a stream being followed: a compact JSON document on its own line, or ``text``
        (``app_output``: a line an app wrote, whose colours may reach a terminal)."""
        if self.json_mode:
            self.record(data)
        elif app_output:
            self.app_line(text)
        else:
            self.line(text)

    async def stream(
        self,
        items: AsyncIterable[T],
        text: Callable[[T], str],
        *,
        follow: bool,
        app_output: bool = False,
    ) -> None:
        """Items as they arrive: for a person, a line per item; with --json, one document holding them all,
        or while following (the stream has no end) one compact document per line."""
        if self.json_mode and not follow:
            self.data([item async for item in items])
            return
        async for item in items:
            self.item(item, text(item), app_output=app_output)

    def show(self, human: Human) -> None:
        """Text for a person, not written with --json (where the document says it all)."""
        if self.json_mode or human is None:
            return
        if callable(human):
            human = human()
        if isinstance(human, str):
            self.line(human)
            return
        write = {"line": self.line, "note": self.note, "document": self.document}
        for kind, text in human.parts:
            write[kind](text)

    def aside(self, text: str) -> None:
        """Text a person must see whatever the mode (a secret to copy before answering a prompt): on stdout,
        or on stderr with --json, where stdout holds only the document."""
        if self.json_mode:
            self.note(text)
        else:
            self.line(text)

    # ------------------------------------------------------------------------------------------ writing

    def data(self, value: Any) -> None:
        self.stdout.write(json_text(value, indent=2) + "\n")
        self.stdout.flush()

    def record(self, value: Any) -> None:
        """One compact JSON document on one line: used while following a stream."""
        self.stdout.write(json_text(value) + "\n")
        self.stdout.flush()

    def line(self, text: str = "") -> None:
        self.stdout.write(printable(text) + "\n")
        self.stdout.flush()

    def app_line(self, text: str) -> None:
        """A line an app wrote (its logs): its colours survive on a terminal, nothing else it could send
        to one does."""
        self.stdout.write(printable_log(text, colour=self.colour) + "\n")
        self.stdout.flush()

    def document(self, text: str) -> None:
        """A text meant to be saved (``mist env export > .env``): exact into a file or a pipe, made printable
        on a terminal, where a control character in it would act instead of being shown."""
        if self.terminal:
            text = printable(text)
        self.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        """A message for the person at the terminal, kept off stdout so pipes see only the data."""
        self.stderr.write(printable(text) + "\n")
        self.stderr.flush()

    def error(self, code: str, message: str, field: str | None = None) -> None:
        if self.json_mode:
            self.data(error_document(code, message, field))
        else:
            self.note(f"mist: {message}")

    def mist_error(self, err: MistError) -> int:
        self.error(err.code, err.message, err.field)
        return exit_code_for(err)

    def usage_error(self, message: str, field: str | None, usage: str) -> int:
        """A malformed command line: the usage and what was wrong, or the error document with --json."""
        if self.json_mode:
            self.data(error_document("invalid_input", message, field))
        else:
            self.stderr.write(usage + message + "\n")
            self.stderr.flush()
        return EXIT_USER_ERROR
