"""The footer: the focused view's keys, as Textual's, and when they do not all fit, it says so on its right
end ("… ? all keys") instead of cutting the last ones off without a word."""

from __future__ import annotations

from textual.widgets import Footer
from textual.widgets._footer import FooterKey

MORE = "… ? all keys"


class MistFooter(Footer):
    def on_resize(self) -> None:
        self.call_after_refresh(self.mark_overflow)

    async def recompose(self) -> None:
        await super().recompose()
        self.call_after_refresh(self.mark_overflow)

    def mark_overflow(self) -> None:
        """Name the palette key's end "… ? all keys" while the keys are wider than the footer."""
        palettes = [key for key in self.query(FooterKey) if key.has_class("-command-palette")]
        shown = [key for key in self.query(FooterKey) if not key.has_class("-command-palette")]
        if not shown:
            return
        reserved = sum(key.outer_size.width for key in palettes)
        needed = max(key.region.right for key in shown) - self.region.x
        overflowing = needed > self.size.width - reserved
        self.set_class(overflowing, "-overflow")
        for key in palettes:
            description = MORE if overflowing else "Commands"
            if key.description != description:
                key.description = description
                key.refresh(layout=True)
