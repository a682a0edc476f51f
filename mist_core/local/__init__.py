"""The Mist API in-process: ``LocalMist`` (a caller's view, in ``view``) with one module per part, over the
``Core`` it views. ``Core.api(token)`` makes views of this kind once this package is imported."""

from ..core import Core
from .view import LocalMist, open_embedded

Core.view = LocalMist

__all__ = ["Core", "LocalMist", "open_embedded"]
