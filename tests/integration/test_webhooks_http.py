"""The daemon's public ``/hooks/`` routes over real sockets: signed deliveries, refusals as problem+json, the
body bound, the plain HTTP hooks listener (``--hooks-listen``), the GitHub App manifest flow end to end
against the local stand-in of GitHub, and ``RemoteMist``'s git, webhooks and previews calls."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from gitutil import git, init_repo
from standins.forge import Forge, push_payload, serve_forge, sign_delivery
from starlette.applications import Starlette
from starlette.routing import Mount

from mist_core.client import RemoteMist
from mist_core.daemon import Daemon, DaemonOptions
from mist_core.errors import Conflict, NotFound
from mist_core.models import AppSpec, GitProviderSpec, SourceChanges
from mist_core.webhooks import MAX_BODY

PASSWORD = "correct horse battery staple"
PROBLEM = "application/problem+json"


@dataclass
class Served:
    """A daemon in this process: the API on a Unix socket, the hooks alone on plain HTTP."""

    daemon: Daemon
    sock: Path
    hooks_url: str
    repos: Path

    def hooks(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.hooks_url, timeout=30)

    def socket_client(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=str(self.sock))
        return httpx.AsyncClient(transport=transport, base_url="http://mist", timeout=30)


@pytest.fixture
async def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int
) -> AsyncIterator[Served]:
    repos = tmp_path / "repos"
    repos.mkdir()
    monkeypatch.setenv("MIST_GIT_ROOTS", str(repos))
    sock = tmp_path / "run" / "mist.sock"
    listen = f"127.0.0.1:{unused_tcp_port}"
    daemon = Daemon(DaemonOptions(data_dir=tmp_path / "data", socket_path=sock, hooks_listen=listen))
    await daemon.start()
    try:
        yield Served(daemon, sock, f"http://{listen}", repos)
    finally:
        await daemon.stop()


@pytest.fixture
async def admin(served: Served) -> AsyncIterator[RemoteMist]:
    async with RemoteMist(f"unix://{served.sock}") as mist:
        await mist.auth.setup("owner", PASSWORD)
        # GitHub and the browser would reach Mist through the proxy; here they reach the hooks listener.
        await mist.settings.set("public_url", served.hooks_url)
        yield mist


async def _app_with_hook(served: Served, mist: RemoteMist, kind: str = "gitea") -> tuple[str, str, str, str]:
    """An app following a real local repository: (app ref, hook id, secret, HEAD sha)."""
    repo = init_repo(served.repos / "web", {"README.md": "hello\n"})
    await mist.projects.create("shop")
    await mist.apps.create("shop/web", AppSpec(git_url=str(repo), port=8080))
    await mist.apps.set_source("shop/web", SourceChanges(webhook_kind=kind))  # type: ignore[arg-type]
    source = await mist.apps.source("shop/web", reveal=True)
    assert source.webhook_url and source.webhook_secret
    assert source.webhook_url.startswith(f"{served.hooks_url}/hooks/")
    return (
        "shop/web",
        source.webhook_url.rsplit("/", 1)[1],
        source.webhook_secret,
        git(repo, "rev-parse", "HEAD"),
    )


def _is_problem(response: httpx.Response, code: str) -> bool:
    return response.headers["content-type"].startswith(PROBLEM) and response.json()["code"] == code


# ---------------------------------------------------------------------------------------------- deliveries


async def test_a_signed_delivery_is_accepted_and_recorded_and_bad_ones_are_refused_as_problems(
    served: Served, admin: RemoteMist
) -> None:
    ref, hook_id, secret, sha = await _app_with_hook(served, admin)
    async with served.hooks() as hooks:
        headers, body = sign_delivery("gitea", secret, "push", push_payload("gitea", "acme/web", sha=sha))
        accepted = await hooks.post(f"/hooks/{hook_id}", content=body, headers=headers)
        assert accepted.status_code == 202
        assert accepted.json() == {"status": 202, "detail": "accepted"}
        assert accepted.headers["x-content-type-options"] == "nosniff"
        assert accepted.headers["cache-control"] == "no-store"

        forged, forged_body = sign_delivery(
            "gitea", "not the secret", "push", push_payload("gitea", "acme/web", sha=sha)
        )
        refused = await hooks.post(f"/hooks/{hook_id}", content=forged_body, headers=forged)
        assert refused.status_code == 401 and _is_problem(refused, "webhook_refused")
        assert "signature" in refused.json()["detail"].lower()

        other = push_payload("gitea", "acme/web", sha=sha, ref="refs/heads/experiment")
        once, once_body = sign_delivery("gitea", secret, "push", other, delivery_id="delivery-once")
        assert (await hooks.post(f"/hooks/{hook_id}", content=once_body, headers=once)).status_code == 202
        replay = await hooks.post(f"/hooks/{hook_id}", content=once_body, headers=once)
        assert replay.status_code == 409 and _is_problem(replay, "webhook_replayed")

        unknown = await hooks.post("/hooks/no-such-hook", content=body, headers=headers)
        assert unknown.status_code == 404 and _is_problem(unknown, "not_found")

    deliveries = await admin.webhooks.list(ref)
    outcomes = [(d.outcome, d.delivery_id) for d in reversed(deliveries)]
    assert [o for o, _ in outcomes] == ["deployed", "refused", "ignored", "refused"]
    assert "replay" in deliveries[0].reason
    first = deliveries[-1]
    assert first.sha == sha and first.ref == "refs/heads/main" and first.deployment_id
    deployment = await admin.deployments.get(first.deployment_id)
    assert (deployment.project, deployment.app) == ("shop", "web")
    if not deployment.state.is_final:
        await admin.deployments.cancel(deployment.id)
    assert len(await admin.webhooks.list(ref, limit=2)) == 2


async def test_the_socket_serves_the_hooks_too(served: Served, admin: RemoteMist) -> None:
    _, hook_id, secret, sha = await _app_with_hook(served, admin)
    headers, body = sign_delivery(
        "gitea", secret, "push", push_payload("gitea", "acme/web", sha=sha, ref="refs/heads/other")
    )
    async with served.socket_client() as c:
        response = await c.post(f"/hooks/{hook_id}", content=body, headers=headers)
    assert response.status_code == 202


def _raw_request(url: str, head: bytes, body_part: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` and then ``body_part`` (less than the announced length), and read the answer while still
    sending: the server must answer before the rest of the body, which never comes. Blocking sockets, since
    the kernel hands over an answer that arrived before the server's reset, where asyncio would drop it."""
    parts = urlsplit(url)
    conn = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30)

    def send() -> None:
        try:
            conn.sendall(head)
            conn.sendall(body_part)
        except OSError:
            pass  # the server answered and closed: that is what is tested

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    raw = b""
    try:
        while True:
            head_text, found, content = raw.partition(b"\r\n\r\n")
            if found:
                length = re.search(rb"(?i)content-length: *(\d+)", head_text)
                if length and len(content) >= int(length.group(1)):
                    break
            try:
                chunk = conn.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            raw += chunk
    finally:
        conn.close()
        sender.join(timeout=30)
    head_text, _, content = raw.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, content


async def test_a_two_mib_delivery_gets_413_before_its_body_is_all_sent(
    served: Served, admin: RemoteMist
) -> None:
    ref, hook_id, secret, sha = await _app_with_hook(served, admin)
    announced = 2 * 1024 * 1024
    head = (
        f"POST /hooks/{hook_id} HTTP/1.1\r\nHost: mist\r\nContent-Type: application/json\r\n"
        f"X-Gitea-Event: push\r\nX-Gitea-Delivery: big-one\r\nX-Gitea-Signature: {'0' * 64}\r\n"
        f"Content-Length: {announced}\r\n\r\n"
    ).encode()
    # A bit over the limit is sent; the other ~900 KiB never are, yet the answer comes.
    status, headers, content = await asyncio.to_thread(
        _raw_request, served.hooks_url, head, b" " * (MAX_BODY + 128 * 1024)
    )
    assert status == 413
    assert headers["content-type"].startswith(PROBLEM)
    assert headers["connection"] == "close"
    assert json.loads(content)["code"] == "webhook_too_large"
    refused = (await admin.webhooks.list(ref))[0]
    assert refused.outcome == "refused" and "at most" in refused.reason


async def test_the_hooks_listener_serves_the_hooks_and_nothing_else(
    served: Served, admin: RemoteMist
) -> None:
    async with served.hooks() as hooks:
        for path in ("/v1/setup", "/v1/openapi.json", "/v1/projects", "/"):
            response = await hooks.get(path)
            assert response.status_code == 404, path
            assert _is_problem(response, "not_found")
            assert "/v1" not in response.json()["detail"].split(":", 1)[1]
        login = await hooks.post("/v1/login", json={"username": "owner", "password": PASSWORD})
        assert login.status_code == 404
        # Deliveries are not rate limited like logins (30 at once): git hosts send bursts.
        for n in range(40):
            burst = await hooks.post(f"/hooks/unknown-{n}", content=b"{}")
            assert burst.status_code == 404
        page = await hooks.get("/hooks/github/manifest/unknown-state")
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        for response in (login, page):
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
            assert "strict-transport-security" not in response.headers


# ---------------------------------------------------------------------------------------------- manifest flow


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.method = ""
        self.fields: dict[str, str] = {}
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action, self.method = values.get("action", ""), values.get("method", "")
        elif tag == "input" and "name" in values:
            self.fields[values["name"]] = values.get("value", "")
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


@contextmanager
def _serve_enterprise_forge() -> Iterator[Forge]:
    """The stand-in laid out like GitHub Enterprise Server: the web pages at ``/``, the REST API under
    ``/api/v3`` (where Mist looks for the API of a GitHub that is not github.com)."""
    forge = Forge()
    app = Starlette(routes=[Mount("/api/v3", app=forge.app), Mount("/", app=forge.app)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the forge stand-in did not start"
    forge.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield forge
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def test_a_github_app_is_created_from_the_manifest_end_to_end_and_its_secrets_stay_inside(
    served: Served, admin: RemoteMist
) -> None:
    seen: list[str] = []  # every answer Mist gave on the way
    with _serve_enterprise_forge() as forge:
        start = await admin.git.github_manifest("gh", url=forge.url)
        assert start.name == "gh"
        assert start.url == f"{served.hooks_url}/hooks/github/manifest/{start.state}"

        async with served.hooks() as browser:
            page = await browser.get(start.url)
            seen.append(page.text)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            form = _Form()
            form.feed(page.text)
            assert form.method == "post"
            assert form.action == f"{forge.url}/settings/apps/new?state={start.state}"
            manifest = json.loads(form.fields["manifest"])
            assert manifest["redirect_url"] == f"{served.hooks_url}/hooks/github/callback"
            assert manifest["hook_attributes"]["url"].startswith(f"{served.hooks_url}/hooks/")

            # The page's policy allows its one inline script (by hash) and a form post to GitHub, nothing else.
            policy = page.headers["content-security-policy"]
            hashes = [
                "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
                for s in form.scripts
            ]
            assert form.scripts and all(h in policy for h in hashes)
            assert f"form-action {forge.url}" in policy
            assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
            assert "unsafe-inline" not in policy and "*" not in policy
            assert page.headers["x-frame-options"] == "DENY"

            # The browser posts the form to GitHub, which sends it back to Mist with a code.
            async with httpx.AsyncClient(timeout=30) as github:
                created = await github.post(form.action, data=form.fields)
            assert created.status_code == 302
            back = created.headers["location"]
            assert back.startswith(f"{served.hooks_url}/hooks/github/callback?")
            assert parse_qs(urlsplit(back).query)["state"] == [start.state]
            done = await browser.get(back)
            seen.append(done.text)
            assert done.status_code == 200, done.text
            app = forge.converted[0]
            assert "gh" in done.text and app["slug"] in done.text
            assert f'href="{forge.url}/github-apps/{app["slug"]}/installations/new"' in done.text
            assert "<script" not in done.text

            again = await browser.get(back)  # the state is used up
            seen.append(again.text)
            assert again.status_code == 404

        [provider] = await admin.git.providers()
        assert (provider.name, provider.kind, provider.app_id, provider.app_slug) == (
            "gh",
            "github",
            app["id"],
            app["slug"],
        )
        assert provider.installation_id == app["installation_id"]
        assert provider.webhook_url == manifest["hook_attributes"]["url"]
        # Mist can use it: repositories through the installation, with a token minted from the stored key.
        assert "acme/web" in {r.full_name for r in await admin.git.repos("gh")}
        async with served.socket_client() as c:
            listed = await c.get("/v1/git/providers", headers={"Authorization": f"Bearer {admin.token}"})
            seen.append(listed.text)
            audit = await c.get("/v1/audit", headers={"Authorization": f"Bearer {admin.token}"})
            seen.append(audit.text)

    for secret in (app["pem"], app["webhook_secret"], app["client_secret"]):
        for text in seen:
            assert secret not in text
    assert "BEGIN RSA PRIVATE KEY" not in "".join(seen)


async def test_a_callback_without_code_or_with_an_unknown_state_says_to_start_again(
    served: Served, admin: RemoteMist
) -> None:
    async with served.hooks() as browser:
        missing = await browser.get("/hooks/github/callback", params={"state": "x"})
        assert missing.status_code == 400 and "start the App creation again" in missing.text
        unknown = await browser.get("/hooks/github/callback", params={"state": "<b>x</b>", "code": "abc123"})
        assert unknown.status_code == 404 and "start again" in unknown.text
        assert "<b>x</b>" not in unknown.text
    assert await admin.git.providers() == []


# ---------------------------------------------------------------------------------------------- RemoteMist


async def test_git_webhooks_and_previews_round_trip_through_remote_mist(
    served: Served, admin: RemoteMist
) -> None:
    with serve_forge() as forge:
        gitea = await admin.git.add_provider(
            GitProviderSpec(name="tea", kind="gitea", url=forge.url, token=forge.gitea_token)
        )
        assert (gitea.name, gitea.kind, gitea.url) == ("tea", "gitea", forge.url)
        await admin.git.add_provider(
            GitProviderSpec(name="lab", kind="gitlab", url=forge.url, token=forge.gitlab_token)
        )
        assert [p.name for p in await admin.git.providers()] == ["lab", "tea"]

        repos = {r.full_name: r for r in await admin.git.repos("tea")}
        assert set(repos) == {"acme/web", "acme/api", "acme/site"}
        assert repos["acme/site"].default_branch == "develop" and not repos["acme/site"].private
        branches = await admin.git.branches("tea", "acme/web")
        assert [(b.name, b.sha) for b in branches] == forge.branches("acme/web")
        nested = await admin.git.branches("lab", "acme/platform/api")
        assert [b.name for b in nested] == [name for name, _ in forge.branches("acme/platform/api")]

        with pytest.raises(NotFound):
            await admin.git.repos("nope")
        with pytest.raises(Conflict):
            await admin.git.add_provider(
                GitProviderSpec(name="tea", kind="gitea", url=forge.url, token=forge.gitea_token)
            )

        await admin.projects.create("shop")
        repo = init_repo(served.repos / "web", {"README.md": "hello\n"})
        await admin.apps.create("shop/web", AppSpec(git_url=str(repo), port=8080))
        linked = await admin.apps.set_source("shop/web", SourceChanges(provider="tea", repo="acme/web"))
        assert (linked.auth, linked.provider, linked.repo) == ("provider", "tea", "acme/web")
        with pytest.raises(Conflict, match="shop/web"):
            await admin.git.remove_provider("tea")
        await admin.git.remove_provider("lab")
        assert [p.name for p in await admin.git.providers()] == ["tea"]

        assert await admin.webhooks.list("shop/web") == []
        assert await admin.previews.list("shop/web") == []
        with pytest.raises(NotFound):
            await admin.previews.list("shop/nothing")
        # Every token given stays inside the daemon.
        async with served.socket_client() as c:
            text = (await c.get("/v1/git/providers", headers={"Authorization": f"Bearer {admin.token}"})).text
        assert forge.gitea_token not in text and forge.gitlab_token not in text
        assert re.search(r'"token"', text) is None
