"""One snapshot per screen state, at 120x36, from the seeded real core (``world.py``) with a fixed clock, fixed
randomness and a still cursor.

Update the pictures with ``pytest tests/tui/test_snapshots.py --snapshot-update`` after checking them by eye.
"""

from __future__ import annotations

import pytest

from tests.tui.scenarios import SCENARIOS, SIZE
from tests.tui.world import fixed_randomness


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_screen_looks_as_approved(scenario, snap_compare):
    with fixed_randomness():
        assert snap_compare(scenario.make(), terminal_size=SIZE, run_before=scenario.run)
