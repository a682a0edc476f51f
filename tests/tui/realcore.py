"""A real core on a temporary data directory, seeded through its API, and a ``MistApp`` on it: what the
TUI's behaviour tests drive instead of a stand-in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mist_core.api import MistAPI
from mist_core.local import open_embedded
from mist_core.models import AppSpec
from mist_tui.app import MistApp, utc_now
from mist_tui.config import Config, Credentials, Target
from tests.gitutil import init_repo

PASSWORD = "correct horse battery"


@dataclass
class Seeded:
    data: Path
    repos: Path
    token: str


async def seed(
    tmp_path: Path, apps: dict[str, list[str]] | None = None, files: dict[str, str] | None = None
) -> Seeded:
    """An owner ``ada`` and, for each project of ``apps``, its apps (created, not deployed), all built from
    one local repository holding ``files``."""
    data, repos = tmp_path / "data", tmp_path / "repos"
    repo = init_repo(repos / "site", files or {"Dockerfile": "FROM scratch\n", "index.html": "hello\n"})
    core = await open_embedded(data, run_workers=False, git_roots=[repos])
    try:
        session = await core.auth.setup("ada", PASSWORD)
    finally:
        await core.close()
    core = await open_embedded(data, session.token, run_workers=False, git_roots=[repos])
    try:
        for project, names in (apps or {}).items():
            await core.projects.create(project)
            for name in names:
                await core.apps.create(f"{project}/{name}", AppSpec(git_url=str(repo), port=8080))
    finally:
        await core.close()
    return Seeded(data, repos, session.token)


def make_app(seeded: Seeded, tmp_path: Path, clock: Callable[[], datetime] = utc_now) -> MistApp:
    async def connect(target: Target) -> MistAPI:
        return await open_embedded(target.address, target.token, git_roots=[seeded.repos])

    return MistApp(
        connect,
        Config(theme="textual-dark"),
        target=Target("embedded", str(seeded.data), seeded.token),
        credentials=Credentials(tmp_path / "credentials.json"),
        clock=clock,
        cursor_blink=False,
    )
