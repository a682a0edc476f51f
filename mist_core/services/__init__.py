"""Managed services beside apps: databases (``databases``: one spec per engine, what its official image
expects and how to reach it) and the containers that run them (``runtime``)."""

from .databases import (
    ENGINES,
    Command,
    Credentials,
    DatabaseEngine,
    engine_spec,
)

__all__ = ["ENGINES", "Command", "Credentials", "DatabaseEngine", "engine_spec"]
