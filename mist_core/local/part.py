"""What every part of ``LocalMist`` stands on: the ``View`` it belongs to (who is calling, what they may do
and see) and the core under it.

A part gets the view handed in and reaches it only through ``View``, so no part imports ``LocalMist`` (which
imports every part) or another part: what parts share is on the view, by a public name."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..api import DatabasesAPI
    from ..calls import Caller
    from ..core import Core
    from ..models import App, Session


class View(Protocol):
    """A caller's view of the core (``LocalMist``), as its parts use it."""

    core: Core
    source: str
    user_agent: str | None
    databases: DatabasesAPI  # a backup restored into a new database makes it as `mist db create` does

    async def caller(self) -> Caller: ...

    async def allow(self, operation: str, *, project: str | None = None) -> Caller: ...

    async def allow_app(self, operation: str, app_ref: str) -> Caller: ...

    async def app(self, app_ref: str) -> App: ...

    async def live_container(self, app_ref: str) -> tuple[App, str]: ...

    async def may_reveal_secrets(self, caller: Caller, app_ref: str, action: str = ...) -> None: ...

    async def bound_project_name(self, caller: Caller) -> str: ...

    async def project_role(self, caller: Caller, project: str) -> str: ...

    async def visible_projects(self, caller: Caller) -> set[int] | None: ...

    async def visible_project_names(self, caller: Caller) -> set[str] | None: ...

    def signed_in(self, session: Session) -> None: ...

    def signed_out(self) -> None: ...


class Part:
    """One part of ``LocalMist`` (``projects``, ``apps``...), with its shortcuts to the core."""

    def __init__(self, mist: View) -> None:
        self.m = mist
        self.core = mist.core
        self.store = mist.core.store


def visible_clause(ids: set[int] | None, column: str = "p.id") -> tuple[str, builtins.list[Any]]:
    """A WHERE clause limiting rows to the visible projects (``"1"`` when all are)."""
    if ids is None:
        return "1", []
    if not ids:
        return "0", []
    return f"{column} IN ({','.join('?' * len(ids))})", sorted(ids)
