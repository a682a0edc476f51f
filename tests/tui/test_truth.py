"""What the screens say must be true and read as words: a cancelled step says cancelled, a rollback's skipped
steps say skipped from the start, counts take the right number, and states are words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mist_core.local import open_embedded
from mist_core.models import Deployment, DeploymentState, StepTiming
from mist_tui.format import counted, status_text
from mist_tui.screens.deployment import step_rows
from tests.tui.realcore import make_app, seed
from tests.tui.scenarios import screen_name, until

T0 = datetime(2026, 1, 15, 3, 12, 40, tzinfo=UTC)
S = DeploymentState


def deployment(state: DeploymentState, steps: list[StepTiming], **fields: object) -> Deployment:
    return Deployment(
        id=10,
        app_id=1,
        project="shop",
        app="web",
        state=state,
        ref="main",
        steps=steps,
        created_at=T0,
        **fields,
    )


def states(d: Deployment, now: datetime) -> dict[str, str]:
    return {step: str(state) for step, state, _ in step_rows(d, now)}


def test_the_step_a_cancel_stopped_reads_cancelled_not_done() -> None:
    # The core closes the running step's timing when it cancels: that end is a stop, not a success.
    d = deployment(
        S.cancelled,
        [
            StepTiming(step=S.fetching, started_at=T0, finished_at=T0 + timedelta(seconds=1)),
            StepTiming(
                step=S.building, started_at=T0 + timedelta(seconds=1), finished_at=T0 + timedelta(seconds=9)
            ),
        ],
        finished_at=T0 + timedelta(seconds=9),
    )
    shown = states(d, T0 + timedelta(seconds=20))
    assert shown["fetching"] == "✓ done"
    assert shown["building"] == "■ cancelled"
    assert shown["starting"] == "· skipped"


def test_a_running_rollback_shows_fetching_and_building_skipped_at_once() -> None:
    d = deployment(S.starting, [StepTiming(step=S.starting, started_at=T0)], source="rollback", rollback_of=7)
    shown = states(d, T0 + timedelta(seconds=2))
    assert shown["fetching"] == "· skipped"
    assert shown["building"] == "· skipped"
    assert shown["starting"] == "◐ running"
    assert shown["checking"] == "· pending"


def test_state_names_read_as_words_and_counts_take_their_number() -> None:
    assert status_text("rolled_back", icon=False).plain == "rolled back"
    assert counted(1, "deployment") == "1 deployment"
    assert counted(2, "line") == "2 lines"
    assert counted(10_000, "app") == "10,000 apps"


@pytest.mark.docker
async def test_one_deployment_is_counted_in_the_singular_on_the_app_screen(tmp_path: Path) -> None:
    seeded = await seed(tmp_path, {"shop": ["web"]})
    core = await open_embedded(seeded.data, seeded.token, run_workers=False, git_roots=[seeded.repos])
    try:
        queued = await core.apps.deploy("shop/web")
        await core.deployments.cancel(queued.id)
    finally:
        await core.close()
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
        app.open_app("shop/web")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        table = app.screen.query_one("#deployments-table")
        await until(pilot, lambda: table.row_count == 1)  # type: ignore[attr-defined]
        assert str(table.border_title).startswith("1 deployment ·")


class Clock:
    """Now, moved forward by the test: what a minute of waiting looks like, in no time."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.mark.docker
async def test_relative_times_move_on_by_themselves_on_the_dashboard_and_the_app_screen(
    tmp_path: Path,
) -> None:
    from uuid import uuid4

    from tests.images import busybox_image
    from tests.mistkit import busybox_site, remove_everything_of, wait_final

    busybox_image()
    project = "t" + uuid4().hex[:8]
    seeded = await seed(tmp_path, {project: ["web"]}, busybox_site("hello\n"))
    clock = Clock()
    app = make_app(seeded, tmp_path, clock)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
            assert app.api is not None
            queued = await app.api.apps.deploy(f"{project}/web")
            done = await wait_final(app.api, queued.id, timeout=120)
            assert done.state == S.live, done.error
            table = app.screen.table  # type: ignore[attr-defined]
            ref = f"{project}/web"
            await until(pilot, lambda: "live" in str(table.get_row(ref)[2]), timeout=15)
            await until(pilot, lambda: str(table.get_row(ref)[4]).endswith("s"))

            # Nothing about the app changes; only time passes. The age follows within a second or so.
            clock.offset = timedelta(minutes=7)
            await until(pilot, lambda: str(table.get_row(ref)[4]) == "7m", timeout=3)

            app.open_app(ref)
            await until(pilot, lambda: screen_name(pilot) == "AppScreen")
            title = app.screen.query_one("#app-title")
            await until(pilot, lambda: "live for 7m" in str(title.render()))
            clock.offset = timedelta(hours=3)
            await until(pilot, lambda: "live for 3h" in str(title.render()), timeout=3)
            recent = app.screen.query_one("#recent")
            assert str(recent.get_cell(str(queued.id), "age")) == "3h"  # type: ignore[attr-defined]
    finally:
        remove_everything_of(project)


@pytest.mark.docker
@pytest.mark.parametrize("width", [80, 120, 250])
async def test_dashboard_columns_fit_the_terminal_and_keep_status_cpu_and_memory(
    tmp_path: Path, width: int
) -> None:
    seeded = await seed(tmp_path, {"shop": ["web"]})
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=(width, 30)) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
        table = app.screen.table  # type: ignore[attr-defined]
        await until(pilot, lambda: table.row_count > 0)
        keys = [column.key for column in table.columns]
        assert {"status", "cpu", "memory"} <= set(keys)
        assert table.virtual_size.width <= table.scrollable_content_region.width  # nothing off the edge
        if width >= 200:
            assert {"commit", "branch", "container"} <= set(keys)


@pytest.mark.docker
async def test_a_failed_build_shows_its_cause_first_at_80_by_24(tmp_path: Path) -> None:
    from uuid import uuid4

    from tests.images import busybox_image
    from tests.mistkit import remove_everything_of, wait_final

    busybox_image()
    project = "f" + uuid4().hex[:8]
    dockerfile = "FROM mist-test/busybox:1\nRUNN echo typo\n"
    seeded = await seed(tmp_path, {project: ["web"]}, {"Dockerfile": dockerfile, "index.html": "hi\n"})
    app = make_app(seeded, tmp_path)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
            assert app.api is not None
            queued = await app.api.apps.deploy(f"{project}/web")
            done = await wait_final(app.api, queued.id, timeout=120)
            assert done.state == S.failed
            app.open_deployment(queued.id)
            await until(pilot, lambda: screen_name(pilot) == "DeploymentScreen")
            screen = app.screen
            panel = screen.query_one("#deployment-error")
            view = screen.query_one("#build-log").view  # type: ignore[attr-defined]

            def log_on_screen() -> str:
                """The log's rows on screen, without their time column, joined as wrapping split them."""
                rows = (
                    "".join(segment.text for segment in view.render_line(y)) for y in range(view.size.height)
                )
                return "".join(row[view._prefix_width :] for row in rows)

            await until(pilot, lambda: panel.display and "RUNN" in str(panel.render()), timeout=10)
            # The panel names the cause, and all of it fits on the screen.
            assert "unknown instruction" in str(panel.render()).lower()
            assert "sha256" not in str(panel.render())
            assert panel.region.bottom <= 24
            # The log opens at the cause, wrapped: the whole message is in view.
            await until(pilot, lambda: "unknown instruction: RUNN" in log_on_screen(), timeout=5)
    finally:
        remove_everything_of(project)


@pytest.mark.docker
async def test_a_dotenv_import_can_mark_the_values_secret(tmp_path: Path) -> None:
    from textual.widgets import Checkbox

    seeded = await seed(tmp_path, {"shop": ["web"]})
    dotenv = tmp_path / "prod.env"
    dotenv.write_text("DB_PASSWORD=hunter2\nAPI_KEY=abc\n")
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
        app.open_app("shop/web")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        await pilot.press("4")
        await pilot.pause(0.2)
        await pilot.press("i")
        await until(pilot, lambda: screen_name(pilot) == "FormDialog")
        field = app.screen.query_one("#field-path")
        field.value = str(dotenv)  # type: ignore[attr-defined]
        await pilot.press("tab")
        assert isinstance(app.focused, Checkbox)
        await pilot.press("space", "enter")
        await until(pilot, lambda: screen_name(pilot) == "AppScreen")
        assert app.api is not None
        variables = await app.api.env.list("shop/web")
        assert {(v.key, v.secret, v.value) for v in variables} == {
            ("API_KEY", True, None),
            ("DB_PASSWORD", True, None),
        }
        env = app.screen.query_one("#env")
        await until(pilot, lambda: env.row_count == 2)  # type: ignore[attr-defined]
        assert "hunter2" not in str(env.get_row("DB_PASSWORD"))  # type: ignore[attr-defined]
        assert str(env.border_title).startswith("Environment · 2 variables")  # type: ignore[attr-defined]


@pytest.mark.docker
@pytest.mark.parametrize(("width", "overflows"), [(80, True), (200, False)])
async def test_a_footer_that_cannot_show_every_key_says_so(
    tmp_path: Path, width: int, overflows: bool
) -> None:
    from textual.widgets._footer import FooterKey

    from mist_tui.widgets.footer import MORE, MistFooter

    seeded = await seed(tmp_path, {"shop": ["web"]})
    app = make_app(seeded, tmp_path)
    async with app.run_test(size=(width, 24)) as pilot:
        await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
        footer = app.screen.query_one(MistFooter)
        await until(pilot, lambda: bool(footer.query(FooterKey)))
        await pilot.pause(0.3)
        palette = footer.query_one("FooterKey.-command-palette", FooterKey)
        assert footer.has_class("-overflow") is overflows
        assert (palette.description == MORE) is overflows


@pytest.mark.docker
async def test_metrics_graphs_have_fixed_scales_and_a_time_axis_and_enter_opens_the_app(
    tmp_path: Path,
) -> None:
    from uuid import uuid4

    from tests.images import busybox_image
    from tests.mistkit import busybox_site, remove_everything_of, wait_final

    busybox_image()
    project = "m" + uuid4().hex[:8]
    seeded = await seed(tmp_path, {project: ["web"]}, busybox_site("hello\n"))
    app = make_app(seeded, tmp_path)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: screen_name(pilot) == "DashboardScreen", timeout=30)
            assert app.api is not None
            queued = await app.api.apps.deploy(f"{project}/web")
            done = await wait_final(app.api, queued.id, timeout=120)
            assert done.state == S.live, done.error
            app.action_goto("metrics")
            await until(pilot, lambda: screen_name(pilot) == "MetricsScreen")
            screen = app.screen
            table = screen.query_one("#containers")
            name = done.container_name
            await until(pilot, lambda: name in [str(k.value) for k in table.rows], timeout=20)  # type: ignore[attr-defined]
            assert str(screen.query_one("#g-cpu").border_title) == "0–100%"
            assert str(screen.query_one("#g-mem").border_title).startswith("0–")
            assert str(screen.query_one("#g-cpu").border_subtitle).endswith("now")
            await until(pilot, lambda: str(screen.query_one("#g-app-mem").border_title).startswith("0–"))
            assert str(screen.query_one("#g-app-cpu").border_title).startswith("0–")

            table.focus()
            table.move_cursor(row=table.get_row_index(name))  # type: ignore[attr-defined]
            await pilot.press("enter")
            await until(pilot, lambda: screen_name(pilot) == "AppScreen")
            assert app.screen.app_ref == f"{project}/web"  # type: ignore[attr-defined]
    finally:
        remove_everything_of(project)


def test_a_live_app_whose_latest_deployment_failed_or_runs_says_so_beside_its_status() -> None:
    from mist_tui.format import status_with_latest

    assert status_with_latest("live", "failed", 10).plain == "● live · ✕ #10"
    assert status_with_latest("live", "building", 11).plain == "● live · ◐ #11"
    assert status_with_latest("live", "live", 9).plain == "● live"
    assert status_with_latest("restarting", None, None).plain == "↻ restarting"
