"""Mist's headless core: the Mist API (``LocalMist`` in-process, ``RemoteMist`` over HTTP) and everything
under it. Scripts start here::

    from mist_core import RemoteMist
    async with RemoteMist("unix:///run/mist/mist.sock", token) as mist:
        await mist.apps.deploy("shop/web")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .client import RemoteMist
    from .local import LocalMist, open_embedded

__all__ = ["LocalMist", "RemoteMist", "open_embedded", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import mist_core` stays cheap for the CLI and the TUI.
    if name == "RemoteMist":
        from .client import RemoteMist

        return RemoteMist
    if name in ("LocalMist", "open_embedded"):
        from . import local

        return getattr(local, name)
    raise AttributeError(name)
