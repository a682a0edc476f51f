"""Turning Docker's raw container stats into ``ContainerStats``: CPU from two readings, memory without cache.

Docker's one-shot stats carry no previous reading (``precpu_stats`` is empty), so the engine keeps the last
reading of each container and this module computes the CPU share between the two, as ``docker stats`` does.
"""

from __future__ import annotations

from typing import Any

from ..models import ContainerStats


def cpu_reading(raw: dict[str, Any]) -> tuple[int, int, int] | None:
    """``(container CPU ns, host CPU ns, online CPUs)`` of one stats reading, or None if it has none."""
    cpu = raw.get("cpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    system = cpu.get("system_cpu_usage")
    if total is None or system is None:
        return None
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or ()) or 1
    return int(total), int(system), int(online)


def cpu_percent(previous: tuple[int, int, int] | None, current: tuple[int, int, int] | None) -> float | None:
    """Percent of one core used between two readings (150.0 = one and a half cores); None without both.

    Host CPU time counts every core, so the container's share of it times the core count is its use in
    cores. A container that restarted between the readings has a smaller counter: it reports 0 this time.
    """
    if previous is None or current is None:
        return None
    container_delta = current[0] - previous[0]
    system_delta = current[1] - previous[1]
    if system_delta <= 0 or container_delta < 0:
        return 0.0
    return round(container_delta / system_delta * current[2] * 100.0, 2)


def memory_used(raw: dict[str, Any]) -> int:
    """Memory in use without the reclaimable page cache (what ``docker stats`` shows)."""
    memory = raw.get("memory_stats") or {}
    usage = int(memory.get("usage") or 0)
    details = memory.get("stats") or {}
    # cgroup v1 names it total_inactive_file, v2 inactive_file.
    inactive = details.get("total_inactive_file", details.get("inactive_file"))
    if inactive is not None and int(inactive) < usage:
        return usage - int(inactive)
    return usage


def memory_limit(raw: dict[str, Any], host_memory: int | None) -> int | None:
    """The container's memory limit, or None when it has none (Docker then reports the host's memory)."""
    limit = (raw.get("memory_stats") or {}).get("limit")
    if not limit:
        return None
    limit = int(limit)
    if host_memory and limit >= host_memory:
        return None
    return limit


def network_bytes(raw: dict[str, Any]) -> tuple[int, int]:
    """Bytes received and sent over all the container's interfaces."""
    rx = tx = 0
    for counters in (raw.get("networks") or {}).values():
        rx += int(counters.get("rx_bytes") or 0)
        tx += int(counters.get("tx_bytes") or 0)
    return rx, tx


def container_stats(
    name: str,
    labels: dict[str, str],
    raw: dict[str, Any],
    previous_cpu: tuple[int, int, int] | None,
    *,
    host_memory: int | None,
    project_label: str,
    app_label: str,
) -> ContainerStats:
    """One ``ContainerStats`` from a raw reading and the container's previous CPU reading."""
    rx, tx = network_bytes(raw)
    return ContainerStats(
        name=name,
        project=labels.get(project_label),
        app=labels.get(app_label),
        cpu_percent=cpu_percent(previous_cpu, cpu_reading(raw)) or 0.0,
        memory_bytes=memory_used(raw),
        memory_limit=memory_limit(raw, host_memory),
        net_rx_bytes=rx,
        net_tx_bytes=tx,
    )
