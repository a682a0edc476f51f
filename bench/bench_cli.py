"""The command line's own cost, before and after a change, in one run: the user's case of
``bench_deploy.py`` (a new app with default settings, ``mist deploy APP --wait`` for its first deployment and
one redeployment, each a new process) with the checkout's code and with the code of an earlier commit,
alternately against the same daemon, beside the same work done by hand.

    .venv/bin/python bench/bench_cli.py --before REV [-n 5]

Also prints the import time (imports plus making a ``RemoteMist``) and the module count of ``mist deploy``
for both. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from _common import (
    PASSWORD,
    ROOT,
    remove_bench_run,
    remove_mist_project,
    start_daemon,
    stop_daemon,
    table,
    temp_dir,
    unique,
)
from bench_deploy import PLAIN_DOCKERFILE, UserBaseline, fmt
from gitutil import commit, init_repo
from images import busybox_image

from mist_core.client import RemoteMist
from mist_core.models import AppSpec, HealthCheck

IMPORTS = (
    "import json, sys, time\n"
    "t = time.perf_counter()\n"
    "import mist_tui.launch, mist_core.cli.entry, mist_core.client\n"
    "entry = mist_core.cli.entry\n"
    "if hasattr(entry, 'handler_for'):\n"
    "    entry.handler_for(('deploy', None))\n"
    "mist_core.client.RemoteMist('unix:///nonexistent/mist.sock')\n"
    "print(json.dumps([time.perf_counter() - t, len(sys.modules)]))\n"
)


def export(rev: str, dest: Path) -> Path:
    """The code of ``rev`` (mist_core and mist_tui) in ``dest``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "mist_core", "mist_tui"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def python(tree: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # cwd outside the checkout, so that PYTHONPATH decides which code runs.
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, cwd="/")


def imports(trees: dict[str, Path], rounds: int = 15) -> None:
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    modules: dict[str, int] = {}
    for i in range(rounds):
        for name in sorted(trees, reverse=bool(i % 2)):
            took, count = json.loads(python(trees[name], "-c", IMPORTS).stdout)
            seconds[name].append(took)
            modules[name] = count
    print(
        table(
            ["imports of mist deploy", "median s", "min s", "max s", "modules"],
            [[name, *fmt(seconds[name]), modules[name]] for name in trees],
        )
    )


def deploy(tree: Path, host: str, token: str, app: str) -> float:
    t0 = time.perf_counter()
    result = python(
        tree, "-m", "mist_tui.launch", "deploy", app, "--wait", env={"MIST_HOST": host, "MIST_TOKEN": token}
    )
    if result.returncode != 0:
        raise SystemExit(f"mist deploy {app} --wait ({tree}) failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - t0


async def bench(n: int, trees: dict[str, Path], tmp: Path) -> None:
    project, run_id = unique("benchcli"), unique("mistcli")
    daemon = start_daemon(tmp)
    mist = RemoteMist(daemon.host, timeout=60)
    times: dict[str, list[float]] = {name: [] for name in [*trees, "by hand"]}
    try:
        await mist.auth.setup("bench", PASSWORD)
        await mist.auth.login("bench", PASSWORD)
        await mist.projects.create(project)
        token = (await mist.tokens.create("bench", scope="deploy", expires_days=None)).token
        baseline = UserBaseline(tmp, run_id)
        count = 0
        for i in range(n + 1):  # round 0 warms up both sides
            for name in sorted(trees, reverse=bool(i % 2)):
                count += 1
                repo = init_repo(
                    tmp / f"repo-{count}", {"Dockerfile": PLAIN_DOCKERFILE, "index.html": "first\n"}
                )
                app = f"{project}/site{count}"
                await mist.apps.create(
                    app, AppSpec(git_url=str(repo), port=8080, health=HealthCheck(type="http", path="/"))
                )
                first = await asyncio.to_thread(deploy, trees[name], daemon.host, token, app)
                commit(repo, {"index.html": "second\n"}, "second")
                second = await asyncio.to_thread(deploy, trees[name], daemon.host, token, app)
                await mist.apps.delete(app)
                if i:
                    times[name].append(first + second)
            by_hand = await baseline.round(i)
            if i:
                times["by hand"].append(by_hand)
                print(
                    f"round {i}/{n}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True
                )
        hand = statistics.median(times["by hand"])
        rows = []
        for name, values in times.items():
            med = statistics.median(values)
            rows.append([name, *fmt(values), f"{med / hand:.2f}x", f"{med - hand:+.3f}"])
        print(table(["deploy + redeploy", "median s", "min s", "max s", "ratio", "difference s"], rows))
        await mist.projects.delete(project)
    finally:
        await mist.close()
        stop_daemon(daemon)
        remove_mist_project(project)
        remove_bench_run(run_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare the checkout with")
    parser.add_argument("-n", type=int, default=5, help="measured rounds")
    args = parser.parse_args()
    busybox_image()
    with temp_dir("mist-bench-cli-") as tmp:
        trees = {f"before ({args.before[:10]})": export(args.before, tmp / "before"), "now": ROOT}
        imports(trees)
        asyncio.run(bench(args.n, trees, tmp))


if __name__ == "__main__":
    main()
