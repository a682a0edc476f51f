"""Keeps the garbage collector's full collections short while a screen streams data: what exists once a
screen is built is collected once and then left out of later collections."""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect everything now, then exempt the survivors (the app, its screens, their widgets) from
    future collections.

    A full collection walks every tracked object: with the app's 100,000-odd objects that held the event
    loop for up to 100 ms in the middle of a log flood. Collecting once when a screen is ready and
    freezing what survived leaves later collections only the objects made since. The previous freeze is
    undone first, so whatever was dropped since (a closed screen) is still collected here."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def release() -> None:
    """Undo ``settle``: the app is going away and its objects should be collectable again."""
    gc.unfreeze()
