"""Backup and restore of a generated volume (about 1 GB: half random bytes, half text) through a real
``mistd``, beside the same work done by hand in the same run: ``docker run ... tar -c | gzip`` and
``gunzip -c | docker run -i ... tar -x``. Also the daemon's resident memory, sampled during each run.

    .venv/bin/python bench/bench_backup.py [--mb 1024]

Targets: Mist within 1.1x of the hand-run time, daemon RSS growth at most 20 MB. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import psutil
from _common import (
    DOCKER,
    PASSWORD,
    docker_client,
    remove_mist_project,
    start_daemon,
    stop_daemon,
    table,
    temp_dir,
    unique,
)

from mist_core.client import RemoteMist
from mist_core.models import BackupDestinationSpec

IMAGE = "busybox:1.36"


class PeakRSS:
    """The highest resident size of a process while the block runs (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.before = self.process.memory_info().rss
        self.peak = self.before
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.before) / 1e6


def fill(volume: str, mb: int) -> None:
    half = mb // 2
    script = (
        f"dd if=/dev/urandom of=/data/random bs=1048576 count={half} 2>/dev/null && "
        f"yes 'GET /api/items?page=42 200 1534 0.012 Mozilla/5.0 (X11; Linux x86_64) mist-bench' "
        f"| head -c {(mb - half) * 1048576} > /data/log.txt"
    )
    subprocess.run([DOCKER, "run", "--rm", "-v", f"{volume}:/data", IMAGE, "sh", "-c", script], check=True)


def by_hand_backup(volume: str, out: Path) -> float:
    start = time.perf_counter()
    with open(out, "wb") as f:
        tar = subprocess.Popen(
            [
                DOCKER,
                "run",
                "--rm",
                "-v",
                f"{volume}:/data:ro",
                IMAGE,
                "tar",
                "-c",
                "-f",
                "-",
                "-C",
                "/data",
                ".",
            ],
            stdout=subprocess.PIPE,
        )
        subprocess.run(["gzip"], stdin=tar.stdout, stdout=f, check=True)
        assert tar.stdout is not None
        tar.stdout.close()
        assert tar.wait() == 0
    return time.perf_counter() - start


def by_hand_restore(archive: Path, volume: str) -> float:
    subprocess.run([DOCKER, "volume", "create", volume], check=True, capture_output=True)
    start = time.perf_counter()
    gunzip = subprocess.Popen(["gunzip", "-c", str(archive)], stdout=subprocess.PIPE)
    subprocess.run(
        [DOCKER, "run", "--rm", "-i", "-v", f"{volume}:/data", IMAGE, "tar", "-x", "-f", "-", "-C", "/data"],
        stdin=gunzip.stdout,
        check=True,
    )
    assert gunzip.wait() == 0
    return time.perf_counter() - start


async def mist_run(api: RemoteMist, start: object, field: str, backup_id: int | None = None) -> float:
    t0 = time.perf_counter()
    backup = await start  # type: ignore[misc]
    while True:
        backup = await api.backups.get(backup.id)
        if getattr(backup, field) != "running":
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    assert getattr(backup, field) == "success", backup
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mb", type=int, default=1024, help="size of the generated volume in MB (default 1024)"
    )
    args = parser.parse_args()
    project = unique("bk")
    with temp_dir("mist-bench-backup-") as tmp:
        daemon = start_daemon(tmp)
        client = docker_client()
        hand_volume = unique("bench-restore-")
        try:
            api = RemoteMist(daemon.host)
            session = await api.auth.setup("admin", PASSWORD)
            await api.projects.create(project)
            with sqlite3.connect(daemon.data / "mist.db") as db:
                (uid,) = db.execute("SELECT uid FROM projects WHERE name = ?", (project,)).fetchone()
            instance = (daemon.data / "instance-id").read_text().strip()
            volume = f"mist_{uid}_data"
            client.volumes.create(
                volume,
                labels={
                    "dev.mist.managed": "true",
                    "dev.mist.instance": instance,
                    "dev.mist.project": project,
                    "dev.mist.project-uid": uid,
                    "dev.mist.volume": "data",
                },
            )
            print(f"generating a {args.mb} MB volume ...", flush=True)
            fill(volume, args.mb)
            await api.backups.add_destination(
                BackupDestinationSpec(name="here", kind="local", path=str(tmp / "b"))
            )

            hand_archive = tmp / "by-hand.tar.gz"
            hand_backup = by_hand_backup(volume, hand_archive)
            # A fresh connection after each long step by hand (an idle one may have been closed meanwhile).
            api = RemoteMist(daemon.host, session.token)
            with PeakRSS(daemon.pid) as backup_rss:
                mist_backup = await mist_run(api, api.backups.run(project, "data", "here"), "state")
            listed = (await api.backups.list(project)).items[0]
            hand_restore = by_hand_restore(hand_archive, hand_volume)
            api = RemoteMist(daemon.host, session.token)
            with PeakRSS(daemon.pid) as restore_rss:
                mist_restore = await mist_run(
                    api, api.backups.restore(listed.id, target="copy"), "restore_state"
                )
            rows = [
                (
                    "backup",
                    f"{hand_backup:.1f}",
                    f"{mist_backup:.1f}",
                    f"{mist_backup / hand_backup:.2f}x",
                    f"{backup_rss.growth_mb:.1f}",
                ),
                (
                    "restore (new volume)",
                    f"{hand_restore:.1f}",
                    f"{mist_restore:.1f}",
                    f"{mist_restore / hand_restore:.2f}x",
                    f"{restore_rss.growth_mb:.1f}",
                ),
            ]
            print(
                f"volume: {args.mb} MB; stored: {(listed.size or 0) / 1e6:.0f} MB by Mist, "
                f"{hand_archive.stat().st_size / 1e6:.0f} MB by hand"
            )
            print(table(["", "by hand (s)", "Mist (s)", "ratio", "daemon RSS growth (MB)"], rows))
            print("targets: ratio <= 1.10x, RSS growth <= 20 MB")
            await api.close()
        finally:
            stop_daemon(daemon)
            client.close()
            subprocess.run([DOCKER, "volume", "rm", "-f", hand_volume], capture_output=True)
            remove_mist_project(project)
            for name in [
                v.name for v in docker_client().volumes.list(filters={"label": f"dev.mist.project={project}"})
            ]:
                subprocess.run([DOCKER, "volume", "rm", "-f", name], capture_output=True)


if __name__ == "__main__":
    asyncio.run(main())
