"""How the terminal app holds up: the dashboard with 10,000 apps (first paint, a filter keystroke), the log
view under a flood of lines, and the CPU the app uses while idle. Headless (``App.run_test``), in this
process, on the seeded real core of the TUI tests (``tests/tui/world.py``: a SQLite file, fixed engine readings,
the extra apps written straight into its store), as a user of the embedded core would have it. Time runs 60 times faster for the app than
for the wall clock, so every relative time on screen changes at each one-second tick and its redraws are
part of what is measured. Prints figures beside a baseline from the same run; asserts nothing.

    .venv/bin/python bench/bench_tui.py            # everything (about 2 minutes)
    .venv/bin/python bench/bench_tui.py --quick    # shorter feeds and idle windows
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from mist_core.models import LogLine  # noqa: E402
from tests.tui.scenarios import SIZE, make_app, on_dashboard, open_app, until  # noqa: E402
from tests.tui.world import NOW, World, add_apps, new_world  # noqa: E402

PROCESS = psutil.Process()


def live_clock(app, speed: float = 60.0) -> None:
    """Make time pass for ``app``, ``speed`` times faster than the wall clock (from the world's ``NOW``), so
    every relative time on screen changes at each one-second tick and the tick's redraws are measured."""
    started = time.perf_counter()
    app.clock = lambda: NOW + timedelta(seconds=(time.perf_counter() - started) * speed)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def watch_paints(app) -> list[tuple[float, int, str]]:
    """Record each screen update written out (headless, the output is thrown away) with the number of
    dashboard rows it showed."""
    paints: list[tuple[float, int, str]] = []
    display = app._display

    def recorded(screen, renderable) -> None:
        display(screen, renderable)
        table = getattr(screen, "table", None)
        rows = table.row_count if table is not None else -1
        # A paint counts for a keystroke only once the table shows that filter: with 10,000 rows the
        # cursor's own repaints also show "every row" and would end the wait early.
        paints.append((time.perf_counter(), rows, getattr(screen, "shown_filter", "")))

    app._display = recorded
    return paints


async def painted(
    paints: list[tuple[float, int, str]],
    after: float,
    rows: int,
    shown: str | None = None,
    timeout: float = 10,
) -> float:
    """When the first paint after ``after`` that showed ``rows`` rows (for the filter ``shown``) happened."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        for moment, count, filtered in paints:
            if moment > after and count == rows and (shown is None or filtered == shown):
                return moment
        await asyncio.sleep(0.001)
    raise TimeoutError(f"no paint showed {rows} rows")


def world_with(apps: int) -> World:
    """The seeded world plus ``apps`` more apps (``labs/svc00000``...)."""
    world = new_world()
    if apps:
        add_apps(world, apps)
    return world


async def dashboard(apps: int) -> dict[str, float]:
    world = world_with(apps)
    last_page: list[float] = []
    pages: list[int] = []

    def time_last_page(view) -> None:
        list_apps = view.apps.list

        async def timed_list(**kwargs):
            page = await list_apps(**kwargs)
            pages.append(page.total)
            if page.next_offset is None:
                last_page.append(time.perf_counter())
            return page

        view.apps.list = timed_list

    world.on_open(time_last_page)
    app = make_app(world)
    live_clock(app)
    paints = watch_paints(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "DashboardScreen", timeout=30)
        screen = app.screen
        while not last_page:
            await asyncio.sleep(0.001)
        total = pages[-1]
        paint = await painted(paints, last_page[0], total, timeout=30) - last_page[0]

        await pilot.press("slash")
        await pilot.pause(0.3)
        keystrokes = []
        # Narrowing a name one key at a time: "s" keeps every row, "svc00012" one.
        typed = ""
        for key in "svc00012":
            typed += key
            expected = sum(1 for ref in screen.apps if typed in ref)  # type: ignore[attr-defined]
            start = time.perf_counter()
            app.simulate_key(key)
            keystrokes.append(await painted(paints, start, expected, typed) - start)
            await pilot.pause(0.2)
    return {
        "apps": total,
        "paint": paint,
        "key_max": max(keystrokes),
        "key_median": statistics.median(keystrokes),
    }


# ---------------------------------------------------------------------------------------------- logs


async def log_flood(rate: int, seconds: float) -> dict[str, float]:
    world = new_world()
    app = make_app(world)
    live_clock(app)
    async with app.run_test(size=SIZE) as pilot:
        await open_app(pilot, tab="logs")
        view = app.screen.query_one("#app-logs").view  # type: ignore[attr-defined]
        await until(pilot, lambda: view.row_count >= 12)
        await until(pilot, lambda: world.followers("shop/web"))
        base = view.buffer.end
        rss_before = PROCESS.memory_info().rss

        lags: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            # Event-loop lag: how late a 10 ms sleep wakes up. A frame cannot be drawn while the loop is
            # held, so the worst lag bounds the worst gap between frames.
            while not stop.is_set():
                start = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - start - 0.01)

        pushed = 0

        async def feed() -> None:
            nonlocal pushed
            started = time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                due = int(elapsed * rate)
                for i in range(pushed, due):
                    world.push_log(
                        "shop/web",
                        LogLine(
                            ts=NOW + timedelta(microseconds=i),
                            source="mist-shop-web",
                            text=f"GET /products/{i} 200 {i % 97}.3ms user-agent=bench/1.0 request={i:08d}",
                        ),
                    )
                pushed = max(pushed, due)
                await asyncio.sleep(0.005)

        tick = asyncio.create_task(ticker())
        await feed()
        await asyncio.sleep(0.5)
        behind = pushed - (view.buffer.end - base)
        stop.set()
        await tick
        rss_after = PROCESS.memory_info().rss
    return {
        "rate": rate,
        "lines": pushed,
        "lag_max": max(lags),
        "lag_p99": sorted(lags)[int(len(lags) * 0.99)],
        "rss_before": rss_before,
        "rss_after": rss_after,
        "behind": behind,
        "kept": len(view.buffer),
    }


# ---------------------------------------------------------------------------------------------- idle


def cpu_seconds() -> float:
    times = PROCESS.cpu_times()
    return times.user + times.system


async def idle_dashboard(apps: int, seconds: float) -> float:
    app = make_app(world_with(apps))
    live_clock(app)
    async with app.run_test(size=SIZE) as pilot:
        await on_dashboard(pilot)
        await until(pilot, lambda: not app.screen._loading, timeout=30)  # type: ignore[attr-defined]
        await asyncio.sleep(1)
        start_cpu, start = cpu_seconds(), time.perf_counter()
        await asyncio.sleep(seconds)
        return (cpu_seconds() - start_cpu) / (time.perf_counter() - start) * 100


async def idle_loop(seconds: float) -> float:
    start_cpu, start = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(seconds)
    return (cpu_seconds() - start_cpu) / (time.perf_counter() - start) * 100


# ---------------------------------------------------------------------------------------------- main


async def main(quick: bool) -> None:
    flood_seconds = 3.0 if quick else 10.0
    idle_seconds = 10.0 if quick else 30.0

    print("Dashboard: data in → full table painted; a filter keystroke → filtered rows painted")
    print(f"{'apps':>7} {'first paint':>12} {'key (max)':>10} {'key (median)':>13}   target")
    for n in (100, 10_000):
        r = await dashboard(n)
        target = "paint <= 300 ms, key <= 50 ms" if n >= 10_000 else "baseline"
        print(
            f"{r['apps']:>7,} {ms(r['paint']):>12} {ms(r['key_max']):>10} {ms(r['key_median']):>13}   {target}"
        )

    print()
    print(
        f"Log view fed for {flood_seconds:.0f} s: event-loop lag (10 ms ticker), memory, lines behind 0.5 s after"
    )
    print(
        f"{'lines/s':>8} {'lag max':>9} {'lag p99':>9} {'RSS before':>11} {'RSS after':>10} {'kept':>7} {'behind':>7}"
    )
    for rate in (1_000, 20_000):
        r = await log_flood(rate, flood_seconds)
        print(
            f"{rate:>8,} {ms(r['lag_max']):>9} {ms(r['lag_p99']):>9} {r['rss_before'] / 2**20:>8.0f} MiB"
            f" {r['rss_after'] / 2**20:>6.0f} MiB {r['kept']:>7,} {r['behind']:>7,}"
        )
    print("  target at 20,000/s: no lag over 100 ms, RSS bounded by the buffer cap, 0 behind")

    print()
    print(f"Idle for {idle_seconds:.0f} s: CPU of this process")
    base = await idle_loop(idle_seconds)
    tui = await idle_dashboard(1_000, idle_seconds)
    print(f"  idle asyncio loop (baseline)    {base:5.2f} %")
    print(f"  dashboard with 1,000 apps       {tui:5.2f} %   target <= 2 %")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s feeds and 10 s idle windows")
    asyncio.run(main(parser.parse_args().quick))
