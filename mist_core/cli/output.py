"""Where the command line writes: human text or one JSON document on stdout, notes and errors on stderr,
and the mapping from errors to exit codes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TextIO

from pydantic import BaseModel

from ..errors import MistError

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


def error_document(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


class Output:
    """One command's output. In JSON mode a command emits exactly one document with ``data`` (or one per
    line with ``record`` while following a stream); in human mode it prints text with ``line``."""

    def __init__(self, *, json_mode: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json_mode = json_mode
        self.stdout = stdout
        self.stderr = stderr

    def data(self, value: Any) -> None:
        json.dump(to_jsonable(value), self.stdout, indent=2, ensure_ascii=False)
        self.stdout.write("\n")
        self.stdout.flush()

    def record(self, value: Any) -> None:
        """One compact JSON document on one line: used while following a stream."""
        self.stdout.write(json.dumps(to_jsonable(value), ensure_ascii=False) + "\n")
        self.stdout.flush()

    def line(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        """A message for the person at the terminal, kept off stdout so pipes see only the data."""
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def error(self, code: str, message: str, field: str | None = None) -> None:
        if self.json_mode:
            self.data(error_document(code, message, field))
        else:
            self.note(f"mist: {message}")

    def mist_error(self, err: MistError) -> int:
        self.error(err.code, err.message, err.field)
        return exit_code_for(err)
