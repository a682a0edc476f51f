"""``api_work``: Textual's ``@work`` for calls to the Mist API. A failure does not crash the app: it comes
back as an ``ApiFailed`` message that bubbles up to ``MistApp``, the one place errors are shown."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from textual import work
from textual.message import Message


class ApiFailed(Message):
    """A worker's call failed; ``MistApp.on_api_failed`` shows it."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


def api_work(*, exclusive: bool = False, group: str = "default") -> Callable[[Callable[..., Any]], Any]:
    def decorator(method: Callable[..., Any]) -> Any:
        @functools.wraps(method)
        async def guarded(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - every failure is reported, none is fatal
                if not self.post_message(ApiFailed(error)):
                    self.app.show_error(error)
                return None

        return work(guarded, exclusive=exclusive, group=group, exit_on_error=False)

    return decorator
