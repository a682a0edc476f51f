"""Stored text made safe for a terminal (``mist_core.printable``) and the CLI's JSON, which stays exact: what
is neutralised, what is kept, and that nothing else changes."""

from __future__ import annotations

import json

import pytest

from mist_core.cli.output import json_text
from mist_core.printable import REPLACEMENT, printable, printable_log

R = REPLACEMENT


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ünïcödé and emoji 🚀", "plain text, ünïcödé and emoji 🚀"),
        ("a\ttab\nand a line break", "a\ttab\nand a line break"),
        ("\x1b[2Jcleared", f"{R}[2Jcleared"),
        ("\x1b]0;title\x07", f"{R}]0;title{R}"),
        ("one-byte CSI \x9b6n", f"one-byte CSI {R}6n"),
        ("carriage\rreturn and \x08backspace", f"carriage{R}return and {R}backspace"),
        ("bidi \u202eesrever\u202c", f"bidi {R}esrever{R}"),
        ("zero\u200bwidth, \u2028separator", f"zero{R}width, {R}separator"),
        ("lone \ud800 surrogate", f"lone {R} surrogate"),
    ],
)
def test_control_format_and_separator_characters_are_replaced_one_for_one(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert len(printable(text)) == len(text)


def test_text_that_needs_nothing_is_returned_as_it_is() -> None:
    text = "nothing to do\there"
    assert printable(text) is text


def test_an_apps_colours_survive_on_a_terminal_and_nothing_else_does() -> None:
    line = "\x1b[1;31mred\x1b[0m \x1b[2J \x1b]8;;http://x\x1b\\link \x1b[38;5;208morange"
    assert printable_log(line, colour=True) == (
        f"\x1b[1;31mred\x1b[0m {R}[2J {R}]8;;http://x{R}\\link \x1b[38;5;208morange\x1b[0m"
    )
    assert printable_log(line, colour=False) == f"red {R}[2J {R}]8;;http://x{R}\\link orange"
    assert printable_log("no sequences \u202e", colour=True) == f"no sequences {R}"


def test_cli_json_escapes_what_could_act_on_a_terminal_and_decodes_to_the_same_value() -> None:
    value = {"text": "\x1b[2J \x9b \u202e \U000e0001 \ud800 é ✓ 🚀", "n": [1, 2]}
    for indent in (None, 2):
        document = json_text(value, indent=indent)
        assert json.loads(document) == value
        assert not any(ch in document for ch in "\x1b\x9b\u202e\U000e0001\ud800")
        assert "é ✓ 🚀" in document
