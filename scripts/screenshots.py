"""Render every TUI screen from the seeded real core (tests/tui/world.py) to ``screenshots/<name>.svg`` (``make screenshots``).

Usage: ``python scripts/screenshots.py [name ...]`` (no names: all of them).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tui.scenarios import SCENARIOS, SIZE  # noqa: E402
from tests.tui.world import fixed_randomness  # noqa: E402


def preserve_spaces(svg: str) -> str:
    """Rich writes spaces as ``&#160;``, which librsvg (``rsvg-convert``, image viewers) collapses at the
    start of a text run, so padded cells drew shifted and words ran together. Plain spaces with
    ``xml:space="preserve"`` render the same in browsers and in librsvg."""
    return svg.replace("&#160;", " ").replace("<svg ", '<svg xml:space="preserve" ', 1)


async def render(scenario, out_dir: Path) -> Path:
    app = scenario.make()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await scenario.run(pilot)
        await pilot.pause(0.1)
        path = out_dir / f"{scenario.name}.svg"
        svg = app.export_screenshot(title=f"mist · {scenario.name.replace('_', ' ')}")
        path.write_text(preserve_spaces(svg))
    return path


async def main(names: list[str]) -> int:
    out_dir = ROOT / "screenshots"
    out_dir.mkdir(exist_ok=True)
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    failed = 0
    for scenario in chosen:
        try:
            with fixed_randomness():
                path = await render(scenario, out_dir)
            print(f"wrote {path.relative_to(ROOT)}")
        except Exception as exc:  # noqa: BLE001 - report every screen, then fail
            failed += 1
            print(f"FAILED {scenario.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1:])))
