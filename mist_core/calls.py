"""What every call shares, in the API parts and in the orders under them: who is calling (``Caller``), the
audit record written in the same transaction as a change, and the paging helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput
from .models import Page, User
from .store import Writer, ts

MAX_PAGE = 1000
MAX_OFFSET = 2**53  # far past any real list, and within what SQLite binds


@dataclass
class Caller:
    """The user behind a call, and how they authenticated: a login session, or an API token (with its
    scope and, maybe, its one project)."""

    user: User
    source: str
    session_id: int | None = None
    token_id: int | None = None
    scope: str | None = None  # an API token's scope; None for a login session
    token_project_id: int | None = None
    enrollment_required: bool = False  # 2FA is required on the instance and this user has none

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def role_label(self) -> str:
        """The role as the audit log records it: ``"admin"``, or ``"developer token:deploy"``."""
        return f"{self.user.role} token:{self.scope}" if self.scope else self.user.role


async def audit(
    w: Writer,
    caller: Caller | None,
    action: str,
    *,
    project: str | None = None,
    app: str | None = None,
    actor: str | None = None,
    source: str | None = None,
    **detail: Any,
) -> None:
    """Record a change (never a secret value) in the transaction that makes it. ``actor`` and ``source``
    name someone who is not (yet) a caller: a failed login, an accepted invitation, a webhook."""
    await w.execute(
        "INSERT INTO audit_log (ts, actor, actor_role, source, action, project, app, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            ts(),
            caller.username if caller else actor,
            caller.role_label if caller else None,
            caller.source if caller else source,
            action,
            project,
            app,
            json.dumps(detail, default=str),
        ),
    )


def page_args(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}", field="offset")
    return limit, offset


def page(items: list[Any], total: int, limit: int, offset: int) -> Page[Any]:
    nxt = offset + limit if offset + limit < total else None
    return Page(items=items, total=total, next_offset=nxt)


def like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
