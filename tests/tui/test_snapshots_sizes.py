"""The main screens at the smallest terminal Mist supports (80x24) and a large one (200x50): columns that
fit, nothing cut off at the edge, a failure's cause in view. Same scenarios as ``test_snapshots``.

Update the pictures with ``pytest tests/tui/test_snapshots_sizes.py --snapshot-update`` after checking them."""

from __future__ import annotations

import pytest

from tests.tui.scenarios import SCENARIOS

NAMES = ["dashboard", "app_overview", "deployment_failed", "app_logs"]
SIZES = [(80, 24), (200, 50)]
CASES = [(s, size) for s in SCENARIOS if s.name in NAMES for size in SIZES]


@pytest.mark.parametrize(("scenario", "size"), CASES, ids=[f"{s.name}-{w}x{h}" for s, (w, h) in CASES])
def test_screen_fits_the_terminal(scenario, size, snap_compare):
    assert snap_compare(scenario.make(), terminal_size=size, run_before=scenario.run)
