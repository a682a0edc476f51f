"""The behaviour suite's fixture: every test gets ``mist`` twice, once as the embedded core (``LocalMist``)
and once as ``RemoteMist`` talking to a real daemon on a Unix socket, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mist_core.api import MistAPI

OWNER = "owner"
PASSWORD = "correct horse battery staple"


class Backend:
    """Opens ``MistAPI`` handles on one data dir, embedded or through a daemon, and closes them all."""

    def __init__(self, kind: str, data_dir: Path) -> None:
        self.kind = kind
        self.data_dir = data_dir
        self.socket_path = data_dir.parent / "run" / "mist.sock"
        self._daemon = None
        self._opened: list[MistAPI] = []

    async def open(self, token: str | None = None) -> MistAPI:
        if self.kind == "local":
            from mist_core.local import open_embedded

            api = await open_embedded(self.data_dir, token=token)
        else:
            from mist_core.client import RemoteMist

            if self._daemon is None:
                from mist_core.daemon import Daemon, DaemonOptions

                self._daemon = Daemon(DaemonOptions(data_dir=self.data_dir, socket_path=self.socket_path))
                await self._daemon.start()
            api = RemoteMist(f"unix://{self.socket_path}", token)
        self._opened.append(api)
        return api

    async def reopen(self, api: MistAPI, token: str | None) -> MistAPI:
        """The same instance seen with another token (a different user, or none)."""
        if self.kind == "remote":
            from mist_core.client import RemoteMist

            assert isinstance(api, RemoteMist)
            return api.with_token(token)
        await api.close()
        self._opened.remove(api)
        return await self.open(token)

    async def close(self) -> None:
        for api in reversed(self._opened):
            await api.close()
        self._opened.clear()
        if self._daemon is not None:
            await self._daemon.stop()
            self._daemon = None


@pytest.fixture(params=["local", "remote"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Backend]:
    repos = tmp_path / "repos"
    repos.mkdir()
    monkeypatch.setenv("MIST_GIT_ROOTS", str(repos))
    # Fast sampler ticks so the metrics tests see a sample without waiting the default 5 s.
    monkeypatch.setenv("MIST_METRICS_INTERVAL", "0.2")
    b = Backend(request.param, tmp_path / "data")
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def fresh(backend: Backend) -> MistAPI:
    """An instance nobody has set up yet."""
    return await backend.open()


@pytest.fixture
async def mist(backend: Backend, fresh: MistAPI) -> MistAPI:
    """An instance set up with an owner account, and a handle logged in as that owner."""
    session = await fresh.auth.setup(OWNER, PASSWORD)
    return await backend.reopen(fresh, session.token)
