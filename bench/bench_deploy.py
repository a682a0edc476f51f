"""How long a deployment takes through a real ``mistd``, beside the same work done by hand in the same run
(``git clone`` + ``docker build`` + ``docker run`` + polling the same HTTP check + stopping the old container).

    .venv/bin/python bench/bench_deploy.py [-n 5] [--only tuned|user]

Two cases. "tuned": health interval 0.1 s and an app that exits on SIGTERM, driven through RemoteMist.
"user": what a user gets with default settings (an HTTP check on /, interval 2 s, stop grace period 10 s),
through the CLI process (``mist deploy --wait``), on busybox httpd as PID 1 (which ignores SIGTERM, like many
apps with a shell-form CMD): a first deployment and one redeployment, against ``docker build`` + ``docker
run`` + polling + ``docker rm -f`` of the old container by hand.

Prints median/min/max seconds for both, Mist's per-step times, and the ratio; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _common import (
    BENCH_LABEL,
    DOCKER,
    PASSWORD,
    ROOT,
    TRAP_DOCKERFILE,
    remove_bench_run,
    remove_mist_project,
    start_daemon,
    stop_daemon,
    summary,
    table,
    temp_dir,
    unique,
)
from gitutil import commit, git_env, init_repo
from images import busybox_image

from mist_core.client import RemoteMist
from mist_core.models import AppSpec, Deployment, DeploymentState, HealthCheck

# The user's app: busybox httpd as PID 1, which ignores SIGTERM.
PLAIN_DOCKERFILE = 'FROM mist-test/busybox:1\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
USER_POLL = 0.1  # the hand-made baseline polls the app this often

HEALTH_INTERVAL = 0.1  # both sides poll the app this often until it answers
DEPLOY_POLL = 0.05  # how often the benchmark asks the daemon for the deployment's state
STEP_NAMES = ["queued", "fetching", "building", "starting", "checking", "switching"]
BASELINE_STEPS = ["clone", "build", "run", "check", "stop old"]


@dataclass
class MistRound:
    seconds: float  # what the caller sees: deploy() call to observing `live`
    server_seconds: float  # created_at -> finished_at, as the daemon recorded them
    steps: dict[str, float] = field(default_factory=dict)


@dataclass
class BaselineRound:
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- Mist


async def mist_round(mist: RemoteMist, app_ref: str, repo: Path, label: str, attempts: int = 3) -> MistRound:
    """Commit a change, deploy it, and time it until ``live``. A failed deployment is retried (and said):
    other Mist instances on the same engine can remove this one's containers (see README)."""
    for attempt in range(1, attempts + 1):
        commit(repo, {"index.html": f"mist {label} {attempt}\n"}, f"mist {label}")
        t0 = time.perf_counter()
        dep = await mist.apps.deploy(app_ref)
        while not dep.state.is_final:
            await asyncio.sleep(DEPLOY_POLL)
            dep = await mist.deployments.get(dep.id)
        t1 = time.perf_counter()
        if dep.state == DeploymentState.live:
            return MistRound(seconds=t1 - t0, server_seconds=dep.duration or 0.0, steps=step_times(dep))
        print(f"  deployment {dep.id} ended {dep.state.value} (attempt {attempt}): {(dep.error or '')[:200]}")
    raise SystemExit(f"{app_ref}: {attempts} deployments in a row failed")


def step_times(dep: Deployment) -> dict[str, float]:
    out: dict[str, float] = {}
    if dep.steps:
        out["queued"] = (dep.steps[0].started_at - dep.created_at).total_seconds()
    for step in dep.steps:
        out[step.step.value] = step.seconds or 0.0
    return out


# ---------------------------------------------------------------------------------------------- baseline


def run(*args: str, cwd: Path | None = None) -> str:
    env = {**git_env(), "DOCKER_BUILDKIT": "1"}
    result = subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout.strip()


async def wait_http(url: str, timeout: float = 60, poll: float = HEALTH_INTERVAL) -> None:
    """GET ``url`` every ``poll`` seconds until it answers 2xx/3xx, as Mist's http health check does."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=3, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if 200 <= (await client.get(url)).status_code < 400:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(poll)
    raise SystemExit(f"{url} did not answer within {timeout:g} s")


class Baseline:
    """The same app deployed by hand: clone, build, run beside the old one, check, then stop the old one."""

    def __init__(self, repo: Path, work: Path, run_id: str) -> None:
        self.repo = repo
        self.work = work
        self.run_id = run_id
        self.previous: str | None = None
        self.count = 0

    async def round(self, label: str) -> BaselineRound:
        commit(self.repo, {"index.html": f"baseline {label}\n"}, f"baseline {label}")
        self.count += 1
        dest = self.work / f"clone{self.count}"
        name = f"{self.run_id}-web-{self.count}"
        tag = f"{self.run_id}/web:{self.count}"
        steps: dict[str, float] = {}
        t0 = mark = time.perf_counter()

        def lap(step: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            steps[step] = now - mark
            mark = now

        await asyncio.to_thread(
            run, "git", "clone", "-q", "--depth=1", "--branch", "main", f"file://{self.repo}", str(dest)
        )
        lap("clone")
        await asyncio.to_thread(
            run,
            DOCKER,
            "build",
            "--progress=plain",
            "-t",
            tag,
            "--label",
            f"{BENCH_LABEL}={self.run_id}",
            str(dest),
        )
        lap("build")
        await asyncio.to_thread(
            run, DOCKER, "run", "-d", "--name", name, "--label", f"{BENCH_LABEL}={self.run_id}", tag
        )
        ip = await asyncio.to_thread(run, DOCKER, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)
        lap("run")
        await wait_http(f"http://{ip}:8080/")
        lap("check")
        if self.previous is not None:
            await asyncio.to_thread(run, DOCKER, "stop", self.previous)
            await asyncio.to_thread(run, DOCKER, "rm", self.previous)
        lap("stop old")
        t1 = time.perf_counter()
        self.previous = name
        shutil.rmtree(dest, ignore_errors=True)
        return BaselineRound(seconds=t1 - t0, steps=steps)


# ---------------------------------------------------------------------------------------------- main


def fmt(values: list[float]) -> list[str]:
    med, lo, hi = summary(values)
    return [f"{med:.3f}", f"{lo:.3f}", f"{hi:.3f}"]


async def bench(n: int, tmp: Path) -> None:
    project = unique("bench")
    run_id = unique("mistbench")
    repo = init_repo(tmp / "repo", {"Dockerfile": TRAP_DOCKERFILE, "index.html": "first\n"})
    daemon = start_daemon(tmp)
    print(f"mistd pid {daemon.pid}, project {project}, baseline prefix {run_id}")
    mist = RemoteMist(daemon.host, timeout=60)
    try:
        await mist.auth.setup("bench", PASSWORD)
        await mist.auth.login("bench", PASSWORD)
        await mist.projects.create(project)
        app_ref = f"{project}/web"
        spec = AppSpec(
            git_url=str(repo),
            port=8080,
            health=HealthCheck(type="http", path="/", interval=HEALTH_INTERVAL, retries=100),
        )
        await mist.apps.create(app_ref, spec)
        baseline = Baseline(repo, tmp, run_id)

        # One unmeasured round each: the first deployment has no old container to stop, and the first
        # build of the day warms BuildKit's cache of the base image.
        await mist_round(mist, app_ref, repo, "warm-up")
        await baseline.round("warm-up")

        mist_rounds: list[MistRound] = []
        base_rounds: list[BaselineRound] = []
        for i in range(n):
            # Alternating keeps a noisy neighbour on the machine from landing on one side only.
            m = await mist_round(mist, app_ref, repo, str(i))
            b = await baseline.round(str(i))
            mist_rounds.append(m)
            base_rounds.append(b)
            print(
                f"round {i + 1}/{n}: mist {m.seconds:.3f} s (daemon says {m.server_seconds:.3f}), "
                f"baseline {b.seconds:.3f} s"
            )

        report(mist_rounds, base_rounds)
        await mist.apps.delete(app_ref)
        await mist.projects.delete(project)
    finally:
        await mist.close()
        stop_daemon(daemon)
        removed = remove_mist_project(project) + remove_bench_run(run_id)
        print(f"cleaned up ({removed} leftover containers/images removed after the API's own clean-up)")


def report(mist_rounds: list[MistRound], base_rounds: list[BaselineRound]) -> None:
    print()
    print("Mist steps (seconds, from deployment.steps; median / min / max):")
    rows = []
    for step in STEP_NAMES:
        values = [r.steps.get(step, 0.0) for r in mist_rounds]
        rows.append([step, *fmt(values)])
    rows.append(["(daemon total)", *fmt([r.server_seconds for r in mist_rounds])])
    rows.append(["(seen by client)", *fmt([r.seconds for r in mist_rounds])])
    print(table(["step", "median", "min", "max"], rows))
    print()
    print("Baseline steps (seconds; median / min / max):")
    rows = [[step, *fmt([r.steps[step] for r in base_rounds])] for step in BASELINE_STEPS]
    rows.append(["(total)", *fmt([r.seconds for r in base_rounds])])
    print(table(["step", "median", "min", "max"], rows))

    mist_med = statistics.median(r.seconds for r in mist_rounds)
    base_med = statistics.median(r.seconds for r in base_rounds)
    ratio, diff = mist_med / base_med, mist_med - base_med
    print()
    print(f"deploy, n={len(mist_rounds)} ({datetime.now(UTC):%Y-%m-%d}):")
    print(
        table(
            ["", "median s", "min s", "max s"],
            [
                ["Mist (RemoteMist -> mistd)", *fmt([r.seconds for r in mist_rounds])],
                ["baseline (git+docker by hand)", *fmt([r.seconds for r in base_rounds])],
            ],
        )
    )
    verdict = "within" if ratio <= 1.15 and diff <= 1.0 else "OVER"
    print(
        f"ratio median(Mist)/median(baseline) = {ratio:.2f}x, difference = {diff:+.3f} s "
        f"({verdict} the target of <= 1.15x and <= 1 s)"
    )
    print(
        "json:",
        json.dumps(
            {
                "mist": [round(r.seconds, 3) for r in mist_rounds],
                "baseline": [round(r.seconds, 3) for r in base_rounds],
                "ratio": round(ratio, 3),
                "difference": round(diff, 3),
            }
        ),
    )


# ---------------------------------------------------------------------------------------------- the user's case


def cli(host: str, token: str, *args: str) -> float:
    """Run the ``mist`` command line (a new process, as a user does) and return how long it took."""
    # As installed: Python may write (and so reuse) its bytecode, whatever the caller's environment says.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {"MIST_HOST": host, "MIST_TOKEN": token}
    t0 = time.perf_counter()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mist"), *args], capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"mist {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


async def user_mist_round(mist: RemoteMist, host: str, token: str, project: str, tmp: Path, i: int) -> float:
    """A new app with default settings (an HTTP check on /): the first deployment and one redeployment,
    each ``mist deploy --wait`` in its own process. Returns the two together."""
    repo = init_repo(tmp / f"user-repo-{i}", {"Dockerfile": PLAIN_DOCKERFILE, "index.html": "first\n"})
    app_ref = f"{project}/site{i}"
    await mist.apps.create(
        app_ref, AppSpec(git_url=str(repo), port=8080, health=HealthCheck(type="http", path="/"))
    )
    first = await asyncio.to_thread(cli, host, token, "deploy", app_ref, "--wait")
    commit(repo, {"index.html": "second\n"}, "second")
    second = await asyncio.to_thread(cli, host, token, "deploy", app_ref, "--wait")
    await mist.apps.delete(app_ref)
    return first + second


class UserBaseline:
    """The same by hand: build, run, poll until it answers; then build, run the new one, poll, and
    ``docker rm -f`` the old one."""

    def __init__(self, tmp: Path, run_id: str) -> None:
        self.tmp = tmp
        self.run_id = run_id

    async def deploy(self, repo: Path, name: str, tag: str, old: str | None) -> None:
        dest = self.tmp / f"clone-{name}"
        await asyncio.to_thread(
            run, "git", "clone", "-q", "--depth=1", "--branch", "main", f"file://{repo}", str(dest)
        )
        await asyncio.to_thread(
            run, DOCKER, "build", "-q", "-t", tag, "--label", f"{BENCH_LABEL}={self.run_id}", str(dest)
        )
        await asyncio.to_thread(
            run, DOCKER, "run", "-d", "--name", name, "--label", f"{BENCH_LABEL}={self.run_id}", tag
        )
        ip = await asyncio.to_thread(run, DOCKER, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)
        await wait_http(f"http://{ip}:8080/", poll=USER_POLL)
        if old is not None:
            await asyncio.to_thread(run, DOCKER, "rm", "-f", old)
        shutil.rmtree(dest, ignore_errors=True)

    async def round(self, i: int) -> float:
        repo = init_repo(
            self.tmp / f"base-repo-{i}", {"Dockerfile": PLAIN_DOCKERFILE, "index.html": "first\n"}
        )
        first, second = f"{self.run_id}-site{i}-1", f"{self.run_id}-site{i}-2"
        t0 = time.perf_counter()
        await self.deploy(repo, first, f"{self.run_id}/site{i}:1", None)
        commit(repo, {"index.html": "second\n"}, "second")
        await self.deploy(repo, second, f"{self.run_id}/site{i}:2", first)
        elapsed = time.perf_counter() - t0
        await asyncio.to_thread(run, DOCKER, "rm", "-f", second)
        return elapsed


async def bench_user(n: int, tmp: Path) -> None:
    project = unique("benchuser")
    run_id = unique("mistuser")
    daemon = start_daemon(tmp)
    print(f"user's case: mistd pid {daemon.pid}, project {project}, baseline prefix {run_id}")
    mist = RemoteMist(daemon.host, timeout=60)
    try:
        await mist.auth.setup("bench", PASSWORD)
        await mist.auth.login("bench", PASSWORD)
        await mist.projects.create(project)
        token = (await mist.tokens.create("bench", scope="deploy", expires_days=None)).token
        baseline = UserBaseline(tmp, run_id)
        await user_mist_round(mist, daemon.host, token, project, tmp, 0)  # warm-up, both sides
        await baseline.round(0)
        mist_times: list[float] = []
        base_times: list[float] = []
        for i in range(1, n + 1):
            m = await user_mist_round(mist, daemon.host, token, project, tmp, i)
            b = await baseline.round(i)
            mist_times.append(m)
            base_times.append(b)
            print(f"round {i}/{n}: mist deploy + redeploy {m:.3f} s, by hand {b:.3f} s")
        mist_med, base_med = statistics.median(mist_times), statistics.median(base_times)
        ratio, diff = mist_med / base_med, mist_med - base_med
        print()
        print(f"user's case, first deployment + one redeployment, n={n} ({datetime.now(UTC):%Y-%m-%d}):")
        print(
            table(
                ["", "median s", "min s", "max s"],
                [
                    ["Mist (mist deploy --wait, twice)", *fmt(mist_times)],
                    ["by hand (docker build/run/poll/rm -f)", *fmt(base_times)],
                ],
            )
        )
        verdict = "within" if ratio <= 1.2 or diff <= 0.3 else "OVER"
        print(f"ratio {ratio:.2f}x, difference {diff:+.3f} s ({verdict} the target of <= 1.2x or <= 0.3 s)")
        print(
            "json:",
            json.dumps(
                {
                    "mist": [round(t, 3) for t in mist_times],
                    "baseline": [round(t, 3) for t in base_times],
                    "ratio": round(ratio, 3),
                    "difference": round(diff, 3),
                }
            ),
        )
        await mist.projects.delete(project)
    finally:
        await mist.close()
        stop_daemon(daemon)
        removed = remove_mist_project(project) + remove_bench_run(run_id)
        print(f"cleaned up ({removed} leftover containers/images removed after the API's own clean-up)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="measured deployments on each side")
    parser.add_argument("--only", choices=["tuned", "user"], help="run one case only")
    args = parser.parse_args()
    busybox_image()
    # pip compiles a package's bytecode when it installs it; an editable checkout compiles on first use.
    compileall.compile_dir(ROOT / "mist_core", quiet=1)
    if args.only != "user":
        with temp_dir("mist-bench-deploy-") as tmp:
            asyncio.run(bench(args.n, tmp))
    if args.only != "tuned":
        with temp_dir("mist-bench-deploy-user-") as tmp:
            asyncio.run(bench_user(args.n, tmp))


if __name__ == "__main__":
    main()
