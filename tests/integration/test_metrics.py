"""The metrics sampler with a real Docker Engine: the server's figures and every Mist container's."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest
from images import busybox_image

from mist_core.engine import LABEL_APP, LABEL_PROJECT, ContainerSpec, Engine
from mist_core.metrics import MetricsSampler

SOCKET = "unix:///var/run/docker.sock"


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"mist-m-{uuid.uuid4().hex[:8]}"
    yield prefix
    api = docker.APIClient(base_url=SOCKET, version="1.41")
    for row in api.containers(all=True, filters={"name": prefix}):
        api.remove_container(row["Id"], force=True)
    for network in api.networks(names=[f"{prefix}-net"]):
        api.remove_network(network["Id"])
    api.close()


@pytest.fixture
async def engine(prefix: str) -> AsyncIterator[Engine]:
    engine = Engine(SOCKET)
    await engine.ensure_network(f"{prefix}-net")
    yield engine
    engine.close()


@pytest.mark.docker
async def test_a_sample_has_sane_server_figures_and_the_running_mist_containers(
    engine: Engine, prefix: str
) -> None:
    await engine.run(
        ContainerSpec(
            name=f"{prefix}-web",
            image=busybox_image(),
            env={},
            labels={LABEL_PROJECT: prefix, LABEL_APP: "web"},
            command=["sleep", "300"],
            network=f"{prefix}-net",
        )
    )
    sampler = MetricsSampler(engine)
    sample = await sampler.sample()

    system = sample.system
    assert 0.0 <= system.cpu_percent <= 100.0
    assert system.cpu_count >= 1
    assert 0 < system.memory_used <= system.memory_total
    assert 0 < system.disk_used <= system.disk_total
    assert system.net_rx_bytes >= 0 and system.net_tx_bytes >= 0
    assert len(system.load) == 3 and all(value >= 0 for value in system.load)
    ours = [c for c in sample.containers if c.project == prefix]
    assert [(c.name, c.app) for c in ours] == [(f"{prefix}-web", "web")]
    assert ours[0].memory_bytes > 0


@pytest.mark.docker
async def test_running_sampler_feeds_subscribers_and_history(engine: Engine) -> None:
    sampler = MetricsSampler(engine, interval=0.2, history_seconds=60)
    await sampler.start()
    try:
        received = []
        stream = sampler.subscribe()
        async with contextlib.aclosing(stream), asyncio.timeout(60):
            async for sample in stream:
                received.append(sample)
                if len(received) == 2:
                    break
    finally:
        await sampler.stop()
    assert received[0].system.ts < received[1].system.ts
    assert sampler.latest() is not None
    assert len(sampler.history(3600)) >= 2


async def test_engine_down_gives_no_containers_and_no_error(tmp_path: Path) -> None:
    sampler = MetricsSampler(Engine(f"unix://{tmp_path}/docker.sock"))
    sample = await sampler.sample()
    assert sample.containers == []
    assert sample.system.memory_total > 0
    # and the background loop keeps going
    await sampler.start()
    try:
        stream = sampler.subscribe()
        async with contextlib.aclosing(stream), asyncio.timeout(60):
            async for sample in stream:
                assert sample.containers == []
                break
    finally:
        await sampler.stop()
