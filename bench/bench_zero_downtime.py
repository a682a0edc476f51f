"""Requests through a real Caddy while an app is redeployed 20 times: how many fail, and how slow they get
during the switches; then the same with stop-then-start (an app with a volume) for comparison.

    .venv/bin/python bench/bench_zero_downtime.py [--deploys 20] [--rate 400] [--connections 8]

Mist runs embedded with ``proxy_backend=caddy``; the load comes from a separate process (asyncio, keep-alive
connections to Caddy's HTTP port). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import TRAP_DOCKERFILE, table, temp_dir, unique
from caddykit import free_port, running_caddy
from gitutil import commit, init_repo
from images import busybox_image
from mistkit import PASSWORD, remove_everything_of

from mist_core.api import MistAPI
from mist_core.local import open_embedded
from mist_core.models import AppSpec, Deployment, DeploymentState, DomainSettings, HealthCheck, Volume

REQUEST_TIMEOUT = 10.0  # a request slower than this counts as failed
DEPLOY_POLL = 0.05


# ---------------------------------------------------------------------------------------------- load


@dataclass
class Sample:
    started: float  # epoch seconds, comparable with the deployments' step times
    latency: float  # seconds
    status: int  # 0: no HTTP response
    error: str = ""
    note: str = ""  # "new connection", "sent again": how the request went out


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; returns (status, whether the server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection") == "close"


@dataclass
class Counters:
    reconnects: int = 0  # pooled connections the proxy had closed, replaced before sending on them
    retries: int = 0  # requests sent again after a reused connection closed without a response byte


async def _exchange(conn: list[Any], port: int, request: bytes) -> tuple[int, bool]:
    """Send ``request`` on the pooled connection ``conn`` ([reader, writer] or [None, None]), opening one if
    needed; returns (status, closed). Raises ``_NothingReceived`` when a reused connection was closed before
    any byte of the response arrived, which is when an HTTP client may send an idempotent request again."""
    reused = conn[1] is not None
    if not reused:
        conn[0], conn[1] = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = conn
    try:
        writer.write(request)
        await writer.drain()
        status, close = await _read_response(reader)
    except asyncio.IncompleteReadError as err:
        if reused and not err.partial:
            raise _NothingReceived() from err
        raise
    except ConnectionError as err:
        # A reset while sending or before the status line: the response's first bytes arrive in one segment.
        if reused:
            raise _NothingReceived() from err
        raise
    return status, close


class _NothingReceived(Exception):
    pass


def _drop(conn: list[Any]) -> None:
    if conn[1] is not None:
        conn[1].close()
    conn[0] = conn[1] = None


async def _connection(
    port: int,
    domain: str,
    interval: float,
    stop: Any,
    samples: list[Sample],
    counters: Counters,
    offset: float,
) -> None:
    """One keep-alive connection sending a GET every ``interval`` seconds.

    It behaves like the HTTP clients browsers and libraries use (urllib3, httpcore, Go's net/http): a pooled
    connection the server has closed is replaced before it is used, and a GET sent on a reused connection that
    closes before any byte of the response is sent once more on a new one (RFC 9112, 9.3.1). Both are counted
    and printed; any other error, or any status but 200, is a failed request. A connection that falls behind
    (a slow response) catches up, up to 2 s, so the offered rate stays the same.
    """
    request = f"GET / HTTP/1.1\r\nHost: {domain}\r\nUser-Agent: mist-bench\r\n\r\n".encode()
    conn: list[Any] = [None, None]
    await asyncio.sleep(offset)
    next_at = time.monotonic()
    while not stop.is_set():
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        next_at = max(next_at + interval, time.monotonic() - 2.0)
        if conn[0] is not None and conn[0].at_eof():
            counters.reconnects += 1
            _drop(conn)
        started, t0 = time.time(), time.perf_counter()
        note = "new connection" if conn[1] is None else ""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                try:
                    status, close = await _exchange(conn, port, request)
                except _NothingReceived:
                    counters.retries += 1
                    note = "sent again on a new connection"
                    _drop(conn)
                    status, close = await _exchange(conn, port, request)
            samples.append(Sample(started, time.perf_counter() - t0, status, "", note))
            if close:
                _drop(conn)
        except (OSError, EOFError, ValueError, TimeoutError, asyncio.IncompleteReadError) as err:
            samples.append(Sample(started, time.perf_counter() - t0, 0, f"{type(err).__name__}: {err}", note))
            _drop(conn)
    _drop(conn)


async def _generate(
    port: int, domain: str, rate: float, connections: int, stop: Any
) -> tuple[list[Sample], Counters]:
    samples: list[Sample] = []
    counters = Counters()
    interval = connections / rate
    await asyncio.gather(
        *(
            _connection(port, domain, interval, stop, samples, counters, interval * i / connections)
            for i in range(connections)
        )
    )
    return samples, counters


def load_process(port: int, domain: str, rate: float, connections: int, stop: Any, out: Any) -> None:
    """Entry point of the load generator's process: runs until ``stop`` is set, then sends its samples."""
    samples, counters = asyncio.run(_generate(port, domain, rate, connections, stop))
    out.put(
        (
            [(s.started, s.latency, s.status, s.error, s.note) for s in samples],
            counters.reconnects,
            counters.retries,
        )
    )


class Load:
    """The load generator in its own process, so its timing does not share an event loop or the GIL with Mist."""

    def __init__(self, port: int, domain: str, rate: float, connections: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self.queue: Any = ctx.Queue()
        self.proc = ctx.Process(
            target=load_process, args=(port, domain, rate, connections, self.stop, self.queue), daemon=True
        )

    def __enter__(self) -> Load:
        self.proc.start()
        self.started = time.time()
        return self

    def finish(self) -> tuple[list[Sample], Counters]:
        self.stop.set()
        rows, reconnects, retries = self.queue.get(timeout=60)
        self.proc.join(timeout=10)
        return sorted((Sample(*row) for row in rows), key=lambda s: s.started), Counters(reconnects, retries)

    def __exit__(self, *exc: object) -> None:
        if self.proc.is_alive():
            self.stop.set()
            self.proc.join(timeout=5)
            if self.proc.is_alive():
                self.proc.kill()


# ---------------------------------------------------------------------------------------------- deploys


@dataclass
class Round:
    deployment: Deployment
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)  # step -> (start, end), epoch


def windows_of(dep: Deployment) -> dict[str, tuple[float, float]]:
    out = {}
    for step in dep.steps:
        end = step.finished_at or dep.finished_at
        if end is not None:
            out[step.step.value] = (step.started_at.timestamp(), end.timestamp())
    return out


async def deploy(mist: MistAPI, ref: str, repo: Path, text: str) -> Round:
    commit(repo, {"index.html": text}, text)
    dep = await mist.apps.deploy(ref)
    while not dep.state.is_final:
        await asyncio.sleep(DEPLOY_POLL)
        dep = await mist.deployments.get(dep.id)
    if dep.state != DeploymentState.live:
        print(f"  deployment {dep.id} ended {dep.state.value}: {(dep.error or '')[:300]}")
    return Round(dep, windows_of(dep))


@dataclass
class Result:
    name: str
    samples: list[Sample]
    rounds: list[Round]
    counters: Counters

    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    def during(self, steps: tuple[str, ...]) -> list[Sample]:
        """Requests in flight at any moment of the given steps of any deployment."""
        spans = []
        for r in self.rounds:
            inside = [r.windows[s] for s in steps if s in r.windows]
            if inside:
                spans.append((min(a for a, _ in inside), max(b for _, b in inside)))
        return [
            s for s in self.samples if any(s.started <= b and s.started + s.latency >= a for a, b in spans)
        ]


async def measure(
    mist: MistAPI, name: str, ref: str, repo: Path, port: int, domain: str, args: argparse.Namespace
) -> Result:
    print(
        f"\n{name}: {args.deploys} deployments under load ({args.rate:g} req/s on {args.connections} connections)"
    )
    rounds = []
    with Load(port, domain, args.rate, args.connections) as load:
        await asyncio.sleep(1.0)  # the load settles before the first deployment
        for i in range(args.deploys):
            r = await deploy(mist, ref, repo, f"{name} version {i + 1}\n")
            rounds.append(r)
            print(
                f"  {i + 1:2d}/{args.deploys} deployment {r.deployment.id} {r.deployment.state.value}"
                f"  switching {r.windows.get('switching', (0, 0))[1] - r.windows.get('switching', (0, 0))[0]:.3f} s"
            )
        await asyncio.sleep(1.0)
        samples, counters = load.finish()
    return Result(name, samples, rounds, counters)


# ---------------------------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> str:
    return f"{value * 1000:.1f}"


def where(res: Result, sample: Sample) -> str:
    """The deployment step a request started in, and how far into it."""
    for r in res.rounds:
        for name, (a, b) in r.windows.items():
            if a <= sample.started <= b:
                return f"deployment {r.deployment.id} {name} +{sample.started - a:.3f} s"
    return "between deployments"


def report(results: list[Result]) -> None:
    rows = []
    for res in results:
        lat = [s.latency for s in res.samples if s.status == 200]
        span = res.samples[-1].started - res.samples[0].started if len(res.samples) > 1 else 1.0
        switching = [s.latency for s in res.during(("switching",))]
        outage = [s.latency for s in res.during(("starting", "checking", "switching"))]
        rows.append(
            [
                res.name,
                len(res.samples),
                f"{len(res.samples) / span:.0f}",
                len(res.failed()),
                ms(statistics.median(lat)) if lat else "-",
                ms(pct(lat, 0.99)),
                ms(max(lat, default=0.0)),
                ms(max(switching, default=0.0)),
                ms(max(outage, default=0.0)),
                res.counters.reconnects,
                res.counters.retries,
                sum(1 for r in res.rounds if r.deployment.state == DeploymentState.live),
            ]
        )
    print()
    print(
        table(
            [
                "run",
                "requests",
                "req/s",
                "failed",
                "p50 ms",
                "p99 ms",
                "max ms",
                "max in switching ms",
                "max starting..live ms",
                "reconnects",
                "retried",
                "live",
            ],
            rows,
        )
    )
    for res in results:
        t0 = res.samples[0].started
        print(f"\n{res.name}: the slowest requests (seconds since the load started):")
        for s in sorted(res.samples, key=lambda s: -s.latency)[:5]:
            print(
                f"  t={s.started - t0:8.3f}  {ms(s.latency):>8} ms  {s.error or s.status}  ({where(res, s)})"
            )
        failed = res.failed()
        if not failed:
            continue
        print(f"\n{res.name}: {len(failed)} failed requests (seconds since the load started):")
        kinds: dict[str, int] = {}
        for s in failed:
            kinds[s.error or f"HTTP {s.status}"] = kinds.get(s.error or f"HTTP {s.status}", 0) + 1
        for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"  {count:5d} x {kind}")
        shown = failed if len(failed) <= 40 else failed[:20] + failed[-20:]
        for s in shown:
            print(
                f"  t={s.started - t0:8.3f}  {ms(s.latency):>8} ms  {s.error or s.status}  ({where(res, s)})"
            )
        if len(failed) > 40:
            print(f"  ... {len(failed) - 40} more")


# ---------------------------------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> None:
    busybox_image()
    with temp_dir("mist-bench-zdt-") as tmp:
        project = unique("zdt")
        http_port = free_port()
        with running_caddy(tmp / "caddy") as caddy_admin:
            mist = await open_embedded(tmp / "data", git_roots=[tmp])
            try:
                await mist.auth.setup("admin", PASSWORD)
                for key, value in {
                    "proxy_backend": "caddy",
                    "caddy_admin_url": caddy_admin,
                    "proxy_http_address": f"127.0.0.1:{http_port}",
                    "proxy_https_address": f"127.0.0.1:{free_port()}",
                    "acme_challenge_address": f"127.0.0.1:{free_port()}",
                }.items():
                    await mist.settings.set(key, value)
                print(
                    f"Caddy {caddy_admin} (HTTP on 127.0.0.1:{http_port}); Mist embedded; "
                    "domains with HTTPS off (DomainSettings(https=False)), so no ACME is involved"
                )
                print(
                    f"settings: drain_seconds={(await mist.settings.get('drain_seconds')).value}"
                    f" stop_grace_period={(await mist.settings.get('stop_grace_period')).value}"
                )
                await mist.projects.create(project)
                health = HealthCheck(type="http", path="/", interval=0.1, retries=50)
                results = []
                runs = {
                    "zero-downtime": [],
                    "stop-then-start": [Volume(name=f"{project}-data", path="/data")],
                }
                for name, volumes in runs.items():
                    if args.only and name != args.only:
                        continue
                    app = "web" if not volumes else "vol"
                    ref, domain = f"{project}/{app}", f"{app}.{project}.test"
                    repo = init_repo(
                        tmp / f"repo-{app}", {"Dockerfile": TRAP_DOCKERFILE, "index.html": f"{name} 0\n"}
                    )
                    spec = AppSpec(git_url=str(repo), port=8080, health=health, volumes=volumes)
                    await mist.apps.create(ref, spec)
                    await mist.domains.add(ref, domain, DomainSettings(https=False))
                    first = await deploy(mist, ref, repo, f"{name} first\n")
                    if first.deployment.state != DeploymentState.live:
                        raise SystemExit(f"{ref}: the first deployment failed")
                    results.append(await measure(mist, name, ref, repo, http_port, domain, args))
                report(results)
            finally:
                await mist.close()
                await asyncio.to_thread(remove_everything_of, project)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=20)
    parser.add_argument("--rate", type=float, default=400, help="requests per second over all connections")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", choices=["zero-downtime", "stop-then-start"], help="measure one run only")
    asyncio.run(main(parser.parse_args()))
