"""Backup and restore through a real ``mistd``, beside the same work done by hand in the same run, with the
daemon's resident memory sampled during each run:

- a generated volume (about 1 GB: half random bytes, half text) against ``docker run ... tar -c | gzip`` and
  ``gunzip -c | docker run -i ... tar -x``;
- a PostgreSQL database (the ``postgres:15`` image; one table of generated rows, ``--pg-size`` MB of data)
  against ``docker run ... pg_dump -Fc | gzip`` and ``gunzip -c | docker run -i ... pg_restore`` on the
  project's network.

    .venv/bin/python bench/bench_backup.py [--mb 1024] [--pg-size 256] [--only volume|postgres]

Targets: Mist within 1.1x of the hand-run time, daemon RSS growth at most 20 MB. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from mist_core.engine import project_network
from mist_core.models import BackupDestinationSpec, DatabaseSpec

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


def by_hand_pg_dump(network: str, host: str, user: str, password: str, out: Path) -> float:
    env = {**os.environ, "PGPASSWORD": password}
    start = time.perf_counter()
    with open(out, "wb") as f:
        dump = subprocess.Popen(
            [DOCKER, "run", "--rm", "--network", network, "-e", "PGPASSWORD", "postgres:15",
             "pg_dump", "-h", host, "-U", user, "-d", user, "-Fc"],
            stdout=subprocess.PIPE,
            env=env,
        )  # fmt: skip
        subprocess.run(["gzip"], stdin=dump.stdout, stdout=f, check=True)
        assert dump.stdout is not None
        dump.stdout.close()
        assert dump.wait() == 0
    return time.perf_counter() - start


def by_hand_pg_restore(archive: Path, network: str, host: str, user: str, password: str) -> float:
    env = {**os.environ, "PGPASSWORD": password}
    start = time.perf_counter()
    gunzip = subprocess.Popen(["gunzip", "-c", str(archive)], stdout=subprocess.PIPE)
    subprocess.run(
        [DOCKER, "run", "--rm", "-i", "--network", network, "-e", "PGPASSWORD", "postgres:15",
         "pg_restore", "-h", host, "-U", user, "-d", user, "--no-owner", "--exit-on-error"],
        stdin=gunzip.stdout,
        check=True,
        env=env,
    )  # fmt: skip
    assert gunzip.wait() == 0
    return time.perf_counter() - start


def psql(container: str, url: str, sql: str) -> str:
    done = subprocess.run(
        [DOCKER, "exec", container, "psql", url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


async def volume_case(api: RemoteMist, token: str, host: str, pid: int, data: Path, tmp: Path, project: str,
                      mb: int, hand_volume: str) -> None:  # fmt: skip
    client = docker_client()
    try:
        with sqlite3.connect(data / "mist.db") as db:
            (uid,) = db.execute("SELECT uid FROM projects WHERE name = ?", (project,)).fetchone()
        instance = (data / "instance-id").read_text().strip()
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
    finally:
        client.close()
    print(f"generating a {mb} MB volume ...", flush=True)
    fill(volume, mb)

    hand_archive = tmp / "by-hand.tar.gz"
    hand_backup = by_hand_backup(volume, hand_archive)
    # A fresh connection after each long step by hand (an idle one may have been closed meanwhile).
    api = RemoteMist(host, token)
    with PeakRSS(pid) as backup_rss:
        mist_backup = await mist_run(api, api.backups.run(project, "data", "here"), "state")
    listed = (await api.backups.list(project, kind="volume")).items[0]
    hand_restore = by_hand_restore(hand_archive, hand_volume)
    api = RemoteMist(host, token)
    with PeakRSS(pid) as restore_rss:
        mist_restore = await mist_run(api, api.backups.restore(listed.id, target="copy"), "restore_state")
    rows = [
        ("backup", hand_backup, mist_backup, backup_rss.growth_mb),
        ("restore (new volume)", hand_restore, mist_restore, restore_rss.growth_mb),
    ]
    print(
        f"volume: {mb} MB; stored: {(listed.size or 0) / 1e6:.0f} MB by Mist, "
        f"{hand_archive.stat().st_size / 1e6:.0f} MB by hand"
    )
    print_rows(rows)
    await api.close()


async def postgres_case(api: RemoteMist, token: str, host: str, pid: int, data: Path, tmp: Path,
                        project: str, mb: int) -> None:  # fmt: skip
    db = await api.databases.create(f"{project}/pg", DatabaseSpec(engine="postgres"))
    url = await api.databases.url(f"{project}/pg")
    password = url.split(":")[2].split("@")[0]
    with sqlite3.connect(data / "mist.db") as conn:
        (uid,) = conn.execute("SELECT uid FROM projects WHERE name = ?", (project,)).fetchone()
    network = project_network(uid)
    # About 180 bytes a row on disk (an int, 128 characters of text, a timestamp, a float).
    rows_wanted = max(1000, mb * 1_000_000 // 180)
    print(f"generating a PostgreSQL database of about {mb} MB ({rows_wanted} rows) ...", flush=True)
    psql(
        db.container_name,
        url,
        "CREATE TABLE items AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) "
        "|| md5((g * 31)::text) AS body, now() - g * interval '1 second' AS at, random() AS score "
        f"FROM generate_series(1, {rows_wanted}) g; CREATE INDEX items_at ON items (at)",
    )
    size = int(psql(db.container_name, url, "SELECT pg_database_size(current_database())"))

    hand_archive = tmp / "by-hand.pgdump.gz"
    hand_backup = by_hand_pg_dump(network, db.host, db.user, password, hand_archive)
    api = RemoteMist(host, token)
    with PeakRSS(pid) as backup_rss:
        mist_backup = await mist_run(api, api.backups.run(project, "pg", "here", kind="database"), "state")
    listed = (await api.backups.list(project, kind="database")).items[0]

    # By hand: a new database (made through Mist, as anyone would), then pg_restore into it.
    api = RemoteMist(host, token)
    start = time.perf_counter()
    target = await api.databases.create(f"{project}/byhand", DatabaseSpec(engine="postgres"))
    target_password = (await api.databases.url(f"{project}/byhand")).split(":")[2].split("@")[0]
    hand_restore = time.perf_counter() - start
    hand_restore += by_hand_pg_restore(hand_archive, network, target.host, target.user, target_password)
    api = RemoteMist(host, token)
    with PeakRSS(pid) as restore_rss:
        mist_restore = await mist_run(api, api.backups.restore(listed.id, target="copy"), "restore_state")
    api = RemoteMist(host, token)
    t0 = time.perf_counter()
    verified = await api.backups.verify(listed.id)
    while verified.verified == "running":
        await asyncio.sleep(0.1)
        verified = await api.backups.get(listed.id)
    verify_time = time.perf_counter() - t0
    rows = [
        ("backup", hand_backup, mist_backup, backup_rss.growth_mb),
        ("restore (new database, made too)", hand_restore, mist_restore, restore_rss.growth_mb),
    ]
    print(
        f"postgres: {size / 1e6:.0f} MB database ({rows_wanted} rows); stored: {(listed.size or 0) / 1e6:.0f} MB "
        f"by Mist, {hand_archive.stat().st_size / 1e6:.0f} MB by hand"
    )
    print_rows(rows)
    print(
        f"verification (restore into a throw-away database, count rows): {verify_time:.1f} s, {verified.verified}"
    )
    await api.close()


def print_rows(rows: list[tuple[str, float, float, float]]) -> None:
    shown = [
        (what, f"{hand:.1f}", f"{mist:.1f}", f"{mist / hand:.2f}x", f"{rss:.1f}")
        for what, hand, mist, rss in rows
    ]
    print(table(["", "by hand (s)", "Mist (s)", "ratio", "daemon RSS growth (MB)"], shown))
    print("targets: ratio <= 1.10x, RSS growth <= 20 MB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mb", type=int, default=1024, help="size of the generated volume in MB (default 1024)"
    )
    parser.add_argument(
        "--pg-size", type=int, default=256, metavar="MB", help="data in the PostgreSQL database (default 256)"
    )
    parser.add_argument("--only", choices=["volume", "postgres"], help="run one case only")
    args = parser.parse_args()
    project = unique("bk")
    with temp_dir("mist-bench-backup-") as tmp:
        daemon = start_daemon(tmp)
        hand_volume = unique("bench-restore-")
        try:
            api = RemoteMist(daemon.host)
            session = await api.auth.setup("admin", PASSWORD)
            await api.projects.create(project)
            await api.backups.add_destination(
                BackupDestinationSpec(name="here", kind="local", path=str(tmp / "b"))
            )
            await api.close()
            if args.only in (None, "volume"):
                await volume_case(api, session.token, daemon.host, daemon.pid, daemon.data, tmp, project,
                                  args.mb, hand_volume)  # fmt: skip
            if args.only in (None, "postgres"):
                await postgres_case(
                    api, session.token, daemon.host, daemon.pid, daemon.data, tmp, project, args.pg_size
                )
        finally:
            stop_daemon(daemon)
            subprocess.run([DOCKER, "volume", "rm", "-f", hand_volume], capture_output=True)
            remove_mist_project(project)
            for name in [
                v.name for v in docker_client().volumes.list(filters={"label": f"dev.mist.project={project}"})
            ]:
                subprocess.run([DOCKER, "volume", "rm", "-f", name], capture_output=True)
            networks = subprocess.run(
                [DOCKER, "network", "ls", "-q", "--filter", f"label=dev.mist.project={project}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            for network in networks:
                subprocess.run([DOCKER, "network", "rm", network], capture_output=True)


if __name__ == "__main__":
    asyncio.run(main())
