"""The guide's list of keys is the one the bindings make: a key added, changed or removed in the code and
not in ``docs/tui.md`` fails here (``python -m mist_tui.keys`` rewrites the list)."""

from __future__ import annotations

from pathlib import Path

from mist_tui import keys

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "tui.md"


def test_the_guide_lists_every_key_the_bindings_define() -> None:
    text = GUIDE.read_text()
    assert keys.START in text and keys.END in text
    assert keys.update(text) == text, "docs/tui.md is out of date: run `python -m mist_tui.keys`"


def test_every_screen_binding_has_an_id_to_remap_it_by() -> None:
    for place, bindings in keys.bindings().items():
        if place == "The dashboard's table":
            continue  # the table's own cursor keys, as Textual's tables have them
        for binding in bindings:
            assert binding.id, f"{place}: {binding.key} has no id"
