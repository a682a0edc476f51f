"""One snapshot per screen state, at 120x36, from the fake API with a fixed clock and a still cursor.

Update the pictures with ``pytest tests/tui --snapshot-update`` after checking them by eye.
"""

from __future__ import annotations

import pytest

from tests.tui.scenarios import SCENARIOS, SIZE


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_screen_looks_as_approved(scenario, snap_compare):
    assert snap_compare(scenario.make(), terminal_size=SIZE, run_before=scenario.run)
