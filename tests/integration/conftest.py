"""Fixtures for tests of the whole core: an embedded Mist on a fresh data directory, logged in, with the
test's temporary directory allowed as a git root."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from mistkit import PASSWORD, remove_everything_of

from mist_core.local import LocalMist, open_embedded


@pytest.fixture
async def mist(tmp_path: Path, busybox: str, project_name: str) -> AsyncIterator[LocalMist]:
    api = await open_embedded(tmp_path / "data", git_roots=[tmp_path], metrics_interval=1.0)
    await api.auth.setup("admin", PASSWORD)
    await api.settings.set("stop_grace_period", "2")  # busybox httpd as PID 1 ignores SIGTERM
    assert isinstance(api, LocalMist)
    try:
        yield api
    finally:
        await api.close()
        await asyncio.to_thread(remove_everything_of, project_name)


@pytest.fixture
def project_name() -> str:
    """A project name unique to this test (container and image names are built from it)."""
    return "p" + uuid.uuid4().hex[:10]


@pytest.fixture
def app_ref(project_name: str) -> Callable[[str], str]:
    return lambda app: f"{project_name}/{app}"
