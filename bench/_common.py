"""Helpers shared by the benchmarks in this folder: a real ``mistd`` in a temporary directory, the trap
variant of the busybox test app, Docker clean-up by label, and small statistics and table printing.

Not a benchmark itself: ``make bench`` may run it, and then it only says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The test helpers (busybox image, git repositories) are reused as they are.
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

DOCKER = "/usr/bin/docker"  # Debian's 20.10 client: BuildKit built in, like Mist's default
DOCKER_SOCKET = "unix:///var/run/docker.sock"
PASSWORD = "correct horse battery staple"
BENCH_LABEL = "dev.mist.bench"

# busybox httpd as PID 1 ignores SIGTERM; this variant exits on it at once, so stopping the old container
# costs the same on both sides and does not hide everything else behind the stop grace period.
TRAP_DOCKERFILE = (
    "FROM mist-test/busybox:1\n"
    "COPY index.html /www/index.html\n"
    'CMD ["sh", "-c", "trap \'exit 0\' TERM; httpd -f -p 8080 -h /www & wait"]\n'
)


def unique(prefix: str = "bench") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def docker_client() -> docker.DockerClient:
    return docker.DockerClient(base_url=DOCKER_SOCKET)


# ---------------------------------------------------------------------------------------------- the daemon


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    data: Path
    socket: Path
    log_path: Path

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int:
        return self.proc.pid


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def start_daemon(tmp: Path, *, env: dict[str, str] | None = None, timeout: float = 60) -> Daemon:
    """``mistd`` on ``tmp/data`` and ``tmp/mist.sock``, ``tmp`` a git root.

    Returns once the socket accepts connections; the daemon's stderr goes to ``tmp/mistd.log``.
    """
    data, sock, log_path = tmp / "data", tmp / "mist.sock", tmp / "mistd.log"
    full_env = {**os.environ, "MIST_GIT_ROOTS": str(tmp), **(env or {})}
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mist_core.daemon",
                "--data",
                str(data),
                "--socket",
                str(sock),
                "--log-level",
                "warning",
            ],
            env=full_env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"mistd exited with {proc.returncode}; see {log_path}:\n{log_path.read_text()[-2000:]}"
            )
        if sock.exists() and _answers(sock):
            return Daemon(proc, data, sock, log_path)
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"mistd did not open {sock} within {timeout:g} s")


def stop_daemon(daemon: Daemon, timeout: float = 60) -> None:
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            daemon.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait()


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- clean-up


def _remove_labelled(label: str) -> int:
    """Remove every container (with its anonymous volumes) and image carrying ``label``; returns how many."""
    client = docker_client()
    count = 0
    try:
        for c in client.containers.list(all=True, filters={"label": label}):
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True, v=True)
                count += 1
        for image in client.images.list(filters={"label": label}):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image.id, force=True)
                count += 1
    finally:
        client.close()
    return count


def remove_mist_project(project: str) -> int:
    """Remove every container and image Mist labelled with ``project``."""
    return _remove_labelled(f"dev.mist.project={project}")


def remove_bench_run(run_id: str) -> int:
    """Remove the baseline's containers and images (labelled ``dev.mist.bench=<run_id>``)."""
    return _remove_labelled(f"{BENCH_LABEL}={run_id}")


# ---------------------------------------------------------------------------------------------- figures


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- guard


if __name__ == "__main__":
    print("bench/_common.py holds helpers for the benchmarks beside it; it measures nothing itself")
