"""The daemon's HTTP API: a thin translation of the Mist API into routes under ``/v1``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only by whoever serves: the daemon's option parsing and the TLS helpers stay light.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
