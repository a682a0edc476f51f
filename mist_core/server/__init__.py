"""The daemon's HTTP API: a thin translation of the Mist API into routes under ``/v1``."""

from .app import create_app

__all__ = ["create_app"]
