"""How Mist reaches an app's repository: the provider clients (cached, so a GitHub installation token is
reused until it expires) and the credentials a fetch needs, which the pipeline asks for before each
checkout."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import NotFound
from ..secrets import SecretBox
from ..store import Row, Store

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from ..providers import ProviderClient

log = logging.getLogger("mist.git")


class SourceCredentials:
    def __init__(self, store: Store, secrets: SecretBox) -> None:
        self.store = store
        self.secrets = secrets
        self._clients: dict[int, ProviderClient] = {}
        # How provider clients reach their hosts: None is the network. Tests set a maker of transports that
        # send a provider's address to a local stand-in of its API, as a hosts file would (one per client,
        # since closing a client closes its transport).
        self.transport: Callable[[], httpx.AsyncBaseTransport] | None = None

    def _open(self, value: str, binding: str) -> str:
        return self.secrets.open(value, bound_to=binding)

    async def close(self) -> None:
        for pid, client in self._clients.items():
            try:
                await client.close()
            except Exception as err:  # noqa: BLE001 - closing at shutdown: nothing waits on it
                log.warning("closing the client of git provider %s failed: %s", pid, err)
        self._clients.clear()

    # ------------------------------------------------------------------------------------------ providers

    def _transport(self) -> httpx.AsyncBaseTransport | None:
        return self.transport() if self.transport is not None else None

    def client_for(self, row: Row) -> ProviderClient:
        if (cached := self._clients.get(int(row["id"]))) is not None:
            return cached
        pid = int(row["id"])
        client: ProviderClient
        if row["kind"] == "github":
            from ..providers.github import GitHubApp

            client = GitHubApp(
                int(row["app_id"]),
                self._open(row["key_sealed"], f"provider:{pid}:key"),
                row["installation_id"],
                api_url=row["api_url"],
                transport=self._transport(),
            )
        elif row["kind"] == "gitlab":
            from ..providers.gitlab import GitLab

            client = GitLab(
                row["api_url"],
                self._open(row["token_sealed"], f"provider:{pid}:token"),
                transport=self._transport(),
            )
        else:
            from ..providers.gitea import Gitea

            client = Gitea(
                row["api_url"],
                self._open(row["token_sealed"], f"provider:{pid}:token"),
                transport=self._transport(),
            )
        self._clients[pid] = client
        return client

    async def forget_client(self, provider_id: int) -> None:
        client = self._clients.pop(provider_id, None)
        if client is not None:
            try:
                await client.close()
            except Exception as err:  # noqa: BLE001 - the client is dropped either way
                log.warning("closing the client of git provider %s failed: %s", provider_id, err)

    async def provider_row(self, name: str) -> Row:
        row = await self.store.one("SELECT * FROM git_providers WHERE name = ?", (name,))
        if row is None:
            raise NotFound(
                f"there is no git provider {name!r}: see `mist git provider list`", field="provider"
            )
        return row

    # ------------------------------------------------------------------------------------------ app sources

    async def source_row(self, app_id: int) -> Row | None:
        return await self.store.one(
            "SELECT s.*, p.name AS provider_name, p.kind AS provider_kind FROM app_sources s "
            "LEFT JOIN git_providers p ON p.id = s.provider_id WHERE s.app_id = ?",
            (app_id,),
        )

    async def fetch_options(self, app_id: int) -> dict[str, Any]:
        """The credentials ``sources.git.fetch`` needs for an app (a preview uses its parent's)."""
        parent = await self.store.one("SELECT preview_of FROM apps WHERE id = ?", (app_id,))
        if parent is not None and parent["preview_of"]:
            app_id = int(parent["preview_of"])
        row = await self.source_row(app_id)
        if row is None:
            return {}
        if row["provider_id"]:
            prow = await self.store.one("SELECT * FROM git_providers WHERE id = ?", (row["provider_id"],))
            assert prow is not None
            username, token = await self.client_for(prow).clone_credentials(row["repo"])
            return {"token": token, "token_username": username}
        if row["key_sealed"]:
            return {
                "ssh_private_key": self._open(row["key_sealed"], f"source:{app_id}:key"),
                "known_hosts": row["known_hosts"],
            }
        if row["token_sealed"]:
            return {"token": self._open(row["token_sealed"], f"source:{app_id}:token")}
        return {}

    async def pin_known_hosts(self, app_id: int, known_hosts: str) -> None:
        """Keep the host keys ssh saw on the first fetch: later fetches accept only them."""
        parent = await self.store.one("SELECT preview_of FROM apps WHERE id = ?", (app_id,))
        if parent is not None and parent["preview_of"]:
            app_id = int(parent["preview_of"])
        async with self.store.write() as w:
            await w.execute(
                "UPDATE app_sources SET known_hosts = ? WHERE app_id = ? AND known_hosts IS NULL",
                (known_hosts, app_id),
            )
