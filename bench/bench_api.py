"""How fast the daemon answers ``GET /v1/apps`` over its Unix socket with 1,000 apps in the store, beside
``GET /v1/setup`` (a route that does next to nothing) measured in the same run as the baseline.

    .venv/bin/python bench/bench_api.py [-n 500] [--apps 1000]

Prints p50/p95/p99 in milliseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
from _common import PASSWORD, start_daemon, stop_daemon, temp_dir

GIT_URL = "https://example.com/acme/web.git"


def measure(client: httpx.Client, path: str, params: dict[str, int] | None, n: int) -> list[float]:
    for _ in range(20):  # warm-up: connection, caches, lazily built serialisers
        client.get(path, params=params).raise_for_status()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return times


def report(name: str, times: list[float]) -> None:
    q = statistics.quantiles(times, n=100)
    print(f"{name:<28} n={len(times):<5} p50={q[49]:7.2f} ms  p95={q[94]:7.2f} ms  p99={q[98]:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="requests per route")
    parser.add_argument("--apps", type=int, default=1000, help="apps in the store")
    args = parser.parse_args()

    with temp_dir("mist-bench-") as tmp:
        daemon = start_daemon(tmp, env={"MIST_METRICS_INTERVAL": "5"})
        try:
            transport = httpx.HTTPTransport(uds=str(daemon.socket))
            with httpx.Client(transport=transport, base_url="http://mist", timeout=30) as client:
                token = client.post("/v1/setup", json={"username": "bench", "password": PASSWORD})
                token.raise_for_status()
                client.headers["Authorization"] = f"Bearer {token.json()['token']}"
                start = time.perf_counter()
                per_project = 100
                for p in range((args.apps + per_project - 1) // per_project):
                    client.post("/v1/projects", json={"name": f"proj{p:03d}"}).raise_for_status()
                    for a in range(min(per_project, args.apps - p * per_project)):
                        client.post(
                            f"/v1/projects/proj{p:03d}/apps",
                            json={"name": f"app{a:03d}", "git_url": GIT_URL, "port": 8080},
                        ).raise_for_status()
                print(f"created {args.apps} apps through the API in {time.perf_counter() - start:.1f} s")

                report("GET /v1/setup (baseline)", measure(client, "/v1/setup", None, args.n))
                report("GET /v1/apps limit=100", measure(client, "/v1/apps", {"limit": 100}, args.n))
                report("GET /v1/apps limit=1000", measure(client, "/v1/apps", {"limit": 1000}, args.n))
        finally:
            stop_daemon(daemon)


if __name__ == "__main__":
    main()
