"""The daemon's HTTP API: a thin translation of the Mist API into routes under ``/v1``, and the public ``/hooks``
routes git hosts and browsers reach without a token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app, create_hooks_app

__all__ = ["create_app", "create_hooks_app"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only by whoever serves: the daemon's option parsing and the TLS helpers stay light.
    if name in ("create_app", "create_hooks_app"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
