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


# The Databases screens at the smallest terminal.
DATABASE_NAMES = [
    "dashboard_databases",
    "databases",
    "database_overview",
    "database_backups",
    "project_backups",
]
DATABASE_CASES = [s for s in SCENARIOS if s.name in DATABASE_NAMES]


@pytest.mark.parametrize("scenario", DATABASE_CASES, ids=[f"{s.name}-80x24" for s in DATABASE_CASES])
def test_database_screen_fits_80_columns(scenario, snap_compare):
    assert snap_compare(scenario.make(), terminal_size=(80, 24), run_before=scenario.run)
