"""What every command module shares: the ``Context`` a command runs with, the table commands register in, and
the helpers many commands use (asking before a deletion, reading every page of a list, checking an app
reference, turning a refused value into the error every other bad input raises). Command modules import
this module and never one another."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TextIO, TypeVar

from pydantic import ValidationError

from ..api import MistAPI
from ..credentials import CredentialStore
from ..errors import InvalidInput
from ..models import Page
from .format import split_app_ref
from .output import Output


@dataclass
class Context:
    args: Namespace
    out: Output
    api: MistAPI
    host: str  # the credentials key: the daemon URL, or "embedded:<data dir>"
    credentials: CredentialStore
    stdin: TextIO
    # The daemon's self-signed certificate the user just chose to trust (``login`` saves it with the session).
    certificate: str | None = None

    @property
    def can_ask(self) -> bool:
        """Whether a question can be put to a person: not when a script reads JSON, nor without a terminal."""
        return not self.out.json_mode and self.stdin.isatty()

    def ask(self, prompt: str) -> str:
        """One line typed in answer to ``prompt`` (shown on stderr, so stdout keeps only the output)."""
        self.out.stderr.write(prompt)
        self.out.stderr.flush()
        return self.stdin.readline().strip()


Handler = Callable[[Context], Awaitable[int]]
# ``(command, subcommand)``; ``git provider add`` is ``("git", "provider add")``.
CommandKey = tuple[str, str | None]


@dataclass
class CommandTable:
    """The commands of one module, by the words that name them. Each module makes its own table and the entry
    point joins them, so no module needs another to be imported first."""

    handlers: dict[CommandKey, Handler] = field(default_factory=dict)

    def __call__(self, name: str, sub: str | None = None) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            if (name, sub) in self.handlers:
                raise ValueError(f"two handlers for mist {name} {sub or ''}".rstrip())
            self.handlers[(name, sub)] = fn
            return fn

        return register


# Commands that need no stored token (they are how one gets a token).
ANONYMOUS_COMMANDS = frozenset({("setup", None), ("login", None), ("invite", "accept")})


def command_key(args: Namespace) -> CommandKey:
    sub = getattr(args, "subcommand", None)
    if getattr(args, "subaction", None):
        sub = f"{sub} {args.subaction}"
    return (args.command, sub)


def is_anonymous(args: Namespace) -> bool:
    return (args.command, getattr(args, "subcommand", None)) in ANONYMOUS_COMMANDS


def confirm_deletion(ctx: Context, what: str, name: str) -> bool:
    """Destructive commands ask for the name to be typed back, or need --yes where nobody can answer."""
    if ctx.args.yes:
        return True
    if not ctx.can_ask:
        raise InvalidInput(f"refusing to delete {what} {name} without confirmation: pass --yes", field="yes")
    ctx.out.note(f"This deletes {what} {name}. Type its name to confirm:")
    if ctx.ask("> ") != name:
        ctx.out.note("mist: not deleted (the name did not match)")
        return False
    return True


T = TypeVar("T")


async def all_pages(fetch: Callable[[int], Awaitable[Page[T]]]) -> list[T]:
    items: list[T] = []
    offset = 0
    while True:
        page = await fetch(offset)
        items.extend(page.items)
        if page.next_offset is None or not page.items:
            return items
        offset = page.next_offset


def app_ref(text: str) -> str:
    """``PROJECT/APP`` as typed, checked early so the message can show the expected shape."""
    split_app_ref(text)
    return text


def invalid_from_validation(err: ValidationError) -> InvalidInput:
    """A pydantic refusal of a value the user typed, as the error every other bad input raises."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    return InvalidInput(f"{field or 'value'}: {first.get('msg', 'invalid value')}", field=field)
