"""Pure logic of the metrics: CPU and memory arithmetic, the bounded history, slow subscribers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import namedtuple

import pytest

from mist_core.engine.stats import container_stats, cpu_percent, cpu_reading, memory_limit, memory_used
from mist_core.metrics import SUBSCRIBER_BACKLOG, MetricsSampler, cpu_busy_percent
from mist_core.models import ContainerStats, MetricsSample

GIB = 1024**3


def reading(container_ns: int, host_ns: int, cpus: int = 4) -> dict:
    return {
        "cpu_stats": {
            "cpu_usage": {"total_usage": container_ns},
            "system_cpu_usage": host_ns,
            "online_cpus": cpus,
        }
    }


def test_cpu_is_percent_of_one_core_between_two_readings() -> None:
    # 4 cores, 1 s of wall time = 4 s of host CPU; the container used 1.5 s of it: one and a half cores.
    before = cpu_reading(reading(10_000_000_000, 100_000_000_000))
    after = cpu_reading(reading(11_500_000_000, 104_000_000_000))
    assert cpu_percent(before, after) == 150.0


def test_cpu_needs_two_readings_and_a_restart_reads_zero() -> None:
    now = cpu_reading(reading(5, 100))
    assert cpu_percent(None, now) is None
    assert cpu_percent(cpu_reading(reading(50, 90)), now) == 0.0
    assert cpu_reading({"cpu_stats": {}}) is None


def test_online_cpus_falls_back_to_the_per_cpu_list() -> None:
    raw = {"cpu_stats": {"cpu_usage": {"total_usage": 1, "percpu_usage": [1, 0]}, "system_cpu_usage": 2}}
    assert cpu_reading(raw) == (1, 2, 2)


def test_memory_leaves_out_the_page_cache_on_cgroup_v1_and_v2() -> None:
    v1 = {"memory_stats": {"usage": 100 * 2**20, "stats": {"total_inactive_file": 30 * 2**20}, "limit": GIB}}
    v2 = {"memory_stats": {"usage": 100 * 2**20, "stats": {"inactive_file": 40 * 2**20}, "limit": GIB}}
    assert memory_used(v1) == 70 * 2**20
    assert memory_used(v2) == 60 * 2**20
    assert memory_used({"memory_stats": {}}) == 0


def test_memory_limit_is_none_when_docker_reports_the_whole_host() -> None:
    limited = {"memory_stats": {"limit": 256 * 2**20}}
    unlimited = {"memory_stats": {"limit": 16 * GIB}}
    assert memory_limit(limited, host_memory=16 * GIB) == 256 * 2**20
    assert memory_limit(unlimited, host_memory=16 * GIB) is None


def test_container_stats_sum_every_network_interface() -> None:
    raw = {
        **reading(2_000_000_000, 20_000_000_000, cpus=2),
        "memory_stats": {"usage": 2**20, "limit": GIB},
        "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 1}, "eth1": {"rx_bytes": 5, "tx_bytes": 2}},
    }
    stats = container_stats(
        "shop-web-3",
        {"dev.mist.project": "shop", "dev.mist.app": "web"},
        raw,
        (1_000_000_000, 10_000_000_000, 2),
        host_memory=8 * GIB,
        project_label="dev.mist.project",
        app_label="dev.mist.app",
    )
    assert (stats.project, stats.app, stats.cpu_percent) == ("shop", "web", 20.0)
    assert (stats.net_rx_bytes, stats.net_tx_bytes, stats.memory_limit) == (15, 3, GIB)


Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_machine_cpu_is_busy_time_over_elapsed_time() -> None:
    before = Times(100, 0, 50, 800, 50, 0, 0, 0, 10, 0)
    after = Times(130, 0, 60, 850, 60, 0, 0, 0, 15, 0)  # 40 busy of 100 elapsed (guest is inside user)
    assert cpu_busy_percent(before, after) == 40.0
    assert cpu_busy_percent(after, after) == 0.0


def test_sampler_without_engine_samples_the_server_only() -> None:
    sample = asyncio.run(MetricsSampler(None).sample())
    assert sample.containers == []
    assert sample.system.cpu_count >= 1


async def test_history_is_bounded_to_its_time_window() -> None:
    sampler = MetricsSampler(None, interval=0.01, history_seconds=0.04)  # type: ignore[arg-type]
    await sampler.start()
    try:
        stream = sampler.subscribe()
        async with contextlib.aclosing(stream), asyncio.timeout(30):
            seen = 0
            async for _ in stream:
                seen += 1
                if seen == 10:
                    break
    finally:
        await sampler.stop()
    assert len(sampler.history(3600)) == 4
    assert sampler.history(3600)[-1] == sampler.latest()
    assert sampler.history(0) == []


async def test_a_slow_subscriber_drops_old_samples_and_never_holds_up_others() -> None:
    sampler = MetricsSampler(None, interval=0.01)
    await sampler.start()
    slow = sampler.subscribe()
    fast = sampler.subscribe()
    try:
        async with asyncio.timeout(30):
            first_slow = await anext(slow)  # registered; then it stops reading for a while
            fast_seen = []
            async for sample in fast:
                fast_seen.append(sample)
                if len(fast_seen) == SUBSCRIBER_BACKLOG * 3:
                    break
            backlog = []
            while len(backlog) < SUBSCRIBER_BACKLOG:
                backlog.append(await anext(slow))
    finally:
        await slow.aclose()
        await fast.aclose()
        await sampler.stop()
    assert len(fast_seen) == SUBSCRIBER_BACKLOG * 3
    # What the slow one reads next is recent: the oldest samples were dropped for it alone.
    assert backlog[0].system.ts > fast_seen[SUBSCRIBER_BACKLOG].system.ts
    assert first_slow.system.ts <= fast_seen[0].system.ts
    assert sampler._subscribers == set()


async def test_stop_ends_the_background_task_and_start_again_resumes() -> None:
    sampler = MetricsSampler(None, interval=0.01)
    await sampler.start()
    await sampler.stop()
    await sampler.stop()
    assert sampler._task is None
    await sampler.start()
    stream = sampler.subscribe()
    async with contextlib.aclosing(stream), asyncio.timeout(30):
        assert await anext(stream)
    await sampler.stop()


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MetricsSampler(None, interval=0)


def test_history_gives_back_each_samples_containers_and_shares_one_blob_between_sweeps() -> None:
    sampler = MetricsSampler(None)
    system = asyncio.run(sampler.sample()).system
    swept = [
        ContainerStats(name=f"c{n}", project="shop", app=f"a{n}", cpu_percent=n * 1.5, memory_bytes=n * GIB)
        for n in range(3)
    ]
    later = [*swept[:2], ContainerStats(name="c9", cpu_percent=0.0, memory_bytes=1)]
    samples = [
        MetricsSample(system=system, containers=swept),
        MetricsSample(system=system, containers=swept),  # no sweep in between: the same objects
        MetricsSample(system=system, containers=later),
    ]
    for sample in samples:
        sampler._publish(sample)
    assert sampler.history(3600) == samples
    blobs = [blob for _, _, blob in sampler._history]
    assert blobs[0] is blobs[1] and blobs[1] is not blobs[2]
