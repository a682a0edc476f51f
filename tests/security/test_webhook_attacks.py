"""Attacks on the public webhook endpoint of a real daemon (``mistd`` on its Unix socket, which serves the
``/hooks/`` routes too), with deliveries signed by the app's own webhook secret, as the git host would sign
whatever a pull request author or a pusher wrote into them: hostile refs are refused and store nothing, a
preview gets the app's secrets only when its owner shares them and never for a fork, and concurrent replays
and deeply nested bodies are clean, recorded refusals instead of server errors. Payloads come from the
stand-in of GitHub, GitLab and Gitea (``tests/standins/forge.py``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gitutil import init_repo
from standins.forge import pull_request_payload, push_payload, sign_delivery

from .conftest import PROBLEM, Daemon

CANARY = f"/tmp/mist-canary-{uuid.uuid4().hex}"
# A ref that is an option to git and clears the screen of whoever reads it.
HOSTILE_REF = f"--upload-pack=touch {CANARY} \x1b[2J\x1b]0;owned\x07"
# A commit that is not in the repository: a preview's deployment fails at its fetch, with no build.
ABSENT_SHA = "ab" * 20
SECRETS = {"API_KEY": "sk_live_production", "DB_PASSWORD": "production-db-password"}


@dataclass
class HookedApp:
    d: Daemon
    project: str
    hook_id: str
    secret: str
    kind: str

    @property
    def path(self) -> str:
        return f"/projects/{self.project}/apps/web"

    def get(self, path: str, **params: Any) -> Any:
        return self.d.ok("GET", path, token=self.d.owner_token, params=params or None)

    def deliver(self, event: str, payload: dict[str, Any], delivery_id: str | None = None) -> httpx.Response:
        headers, body = sign_delivery(self.kind, self.secret, event, payload, delivery_id)
        return self.d.http.post(f"/hooks/{self.hook_id}", content=body, headers=headers)

    def deliveries(self) -> list[dict[str, Any]]:
        return self.get(self.path + "/webhooks", limit=100)  # type: ignore[no-any-return]

    def previews(self) -> list[dict[str, Any]]:
        return self.get(self.path + "/previews")  # type: ignore[no-any-return]

    def apps(self) -> list[str]:
        return [a["name"] for a in self.get("/apps", project=self.project)["items"]]

    def env(self, app: str) -> dict[str, str]:
        rows = self.get(f"/projects/{self.project}/apps/{app}/env", reveal="true")
        return {row["key"]: row["value"] for row in rows}

    def set_previews(self, **settings: Any) -> None:
        self.d.ok("PATCH", self.path + "/source", token=self.d.owner_token, json={"previews": settings})


def hooked_app(d: Daemon, kind: str, *, previews: dict[str, Any] | None = None) -> HookedApp:
    """A new project with app ``web`` following a real repository, its webhook signed the ``kind`` way."""
    project = "wh-" + uuid.uuid4().hex[:8]
    repo = init_repo(d.repos / project, {"README.md": "nothing to build\n"})
    owner = d.owner_token
    d.ok("PUT", "/settings/public_url", token=owner, json={"value": "https://mist.example.com"})
    d.ok("POST", "/projects", token=owner, json={"name": project})
    d.ok("POST", f"/projects/{project}/apps", token=owner, json={"name": "web", "git_url": str(repo)})
    path = f"/projects/{project}/apps/web/source"
    d.ok("PATCH", path, token=owner, json={"webhook_kind": kind, "previews": previews or {}})
    source = d.ok("GET", path, token=owner, params={"reveal": "true"})
    return HookedApp(d, project, source["webhook_url"].rsplit("/", 1)[1], source["webhook_secret"], kind)


def is_refusal(response: httpx.Response, status: int, code: str) -> bool:
    return (
        response.status_code == status
        and response.headers.get("content-type", "").startswith(PROBLEM)
        and response.json()["code"] == code
    )


# ---------------------------------------------------------------------------------------------- refs


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_a_signed_pull_request_with_a_hostile_head_ref_is_refused_and_stores_nothing(
    daemon: Daemon, kind: str
) -> None:
    app = hooked_app(daemon, kind, previews={"enabled": True})
    payload = pull_request_payload(
        kind, "acme/web", action="opened", number=5, head_sha=ABSENT_SHA, head_ref=HOSTILE_REF
    )
    response = app.deliver("pull_request", payload)

    assert is_refusal(response, 400, "webhook_malformed"), response.text
    detail = response.json()["detail"]
    assert "ref Mist does not accept" in detail and "starts with '-'" in detail and "\x1b" not in detail
    assert app.previews() == []
    assert app.apps() == ["web"]
    refused = app.deliveries()[0]
    assert refused["outcome"] == "refused" and "starts with '-'" in refused["reason"]
    assert "\x1b" not in refused["reason"] and refused["ref"] is None and refused["pr_number"] is None
    assert not Path(CANARY).exists()

    # The same pull request with an ordinary branch name is taken: only the ref was the problem.
    payload = pull_request_payload(
        kind, "acme/web", action="opened", number=5, head_sha=ABSENT_SHA, head_ref="feature/login"
    )
    assert app.deliver("pull_request", payload).status_code == 202
    assert [(p["number"], p["head_ref"]) for p in app.previews()] == [(5, "feature/login")]


def test_a_signed_push_of_a_hostile_ref_is_refused_and_queues_nothing(daemon: Daemon) -> None:
    app = hooked_app(daemon, "gitea")
    hostile = [f"refs/heads/{HOSTILE_REF}", HOSTILE_REF, "refs/heads/--upload-pack=x", "refs/heads/a..b"]
    for ref in (*hostile, "refs/tags/-x", "refs/heads/x\x1b[2Jy"):
        response = app.deliver("push", push_payload("gitea", "acme/web", sha=ABSENT_SHA, ref=ref))
        assert is_refusal(response, 400, "webhook_malformed"), (ref, response.text)
    assert [d["outcome"] for d in app.deliveries()] == ["refused"] * 6
    assert all("\x1b" not in d["reason"] and d["ref"] is None for d in app.deliveries())
    assert app.get(app.path + "/deployments")["items"] == []


# ---------------------------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_previews_get_the_apps_secrets_only_when_shared_and_never_for_a_fork(
    daemon: Daemon, kind: str
) -> None:
    app = hooked_app(daemon, kind, previews={"enabled": True, "limit": 10, "env": {"STAGE": "preview"}})
    owner = daemon.owner_token
    daemon.ok("POST", app.path + "/env", token=owner, json={"key": "PLAIN", "value": "visible"})
    for key, value in SECRETS.items():
        daemon.ok("POST", app.path + "/env", token=owner, json={"key": key, "value": value, "secret": True})
    # A preview override of a secret gives the preview its own value instead.
    daemon.ok(
        "POST", app.path + "/env", token=owner, json={"key": "STAGE", "value": "production", "secret": True}
    )

    def open_pr(number: int, action: str = "opened", **fork: Any) -> dict[str, Any]:
        payload = pull_request_payload(
            kind, "acme/web", action=action, number=number, head_sha=ABSENT_SHA, **fork
        )
        response = app.deliver("pull_request", payload)
        assert response.status_code == 202, response.text
        delivery = app.deliveries()[0]
        assert delivery["outcome"] == "preview", delivery
        return delivery

    without = {"PLAIN": "visible", "STAGE": "preview"}
    with_secrets = {**without, **SECRETS}

    # Off by default: the pull request's code runs without the app's secrets, and the delivery says so.
    delivery = open_pr(1)
    assert app.env("web-pr-1") == without
    assert "without the app's 2 secret" in delivery["reason"]

    # The owner shares them: the next deployment of the same pull request has them, a new one too.
    app.set_previews(enabled=True, limit=10, env={"STAGE": "preview"}, share_secrets=True)
    assert app.get(app.path + "/source")["previews"]["share_secrets"] is True
    open_pr(1, action="synchronize")
    assert app.env("web-pr-1") == with_secrets
    open_pr(2)
    assert app.env("web-pr-2") == with_secrets

    # A fork's pull request never gets them, nor one whose head repository the payload does not show.
    delivery = open_pr(3, fork="mallory/web")
    assert app.env("web-pr-3") == without
    assert "fork" in delivery["reason"]
    open_pr(4, fork_deleted=True)
    assert app.env("web-pr-4") == without

    # Sharing turned off again: the next deployment of a preview that had them no longer does.
    app.set_previews(enabled=True, limit=10, env={"STAGE": "preview"}, share_secrets=False)
    open_pr(2, action="synchronize")
    assert app.env("web-pr-2") == without
    # Nowhere in those previews' variables, revealed, is any secret value of the app.
    for name in ("web-pr-2", "web-pr-3", "web-pr-4"):
        shown = json.dumps(app.get(f"/projects/{app.project}/apps/{name}/env", reveal="true"))
        assert not any(value in shown for value in SECRETS.values()), name


# ---------------------------------------------------------------------------------------------- edge cases


def test_concurrent_identical_deliveries_are_handled_once_and_the_rest_refused_as_replays(
    daemon: Daemon,
) -> None:
    app = hooked_app(daemon, "github")
    # A push to a branch the app does not follow: handled (recorded as ignored) without a deployment.
    payload = push_payload("github", "acme/web", sha=ABSENT_SHA, ref="refs/heads/elsewhere")
    headers, body = sign_delivery(
        "github", app.secret, "push", payload, delivery_id="same-" + uuid.uuid4().hex
    )

    async def deliver_eight() -> list[httpx.Response]:
        transport = httpx.AsyncHTTPTransport(uds=str(daemon.sock))
        async with httpx.AsyncClient(transport=transport, base_url="http://mist", timeout=60) as client:
            return await asyncio.gather(
                *(client.post(f"/hooks/{app.hook_id}", content=body, headers=headers) for _ in range(8))
            )

    responses = asyncio.run(deliver_eight())

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] + [409] * 7, [(r.status_code, r.text[:200]) for r in responses]
    assert all(is_refusal(r, 409, "webhook_replayed") for r in responses if r.status_code == 409)
    recorded = app.deliveries()
    assert len(recorded) == 8
    handled = [d for d in recorded if d["delivery_id"] is not None]
    assert [(d["outcome"], d["ref"]) for d in handled] == [("ignored", "refs/heads/elsewhere")]
    replays = [d for d in recorded if d["delivery_id"] is None]
    assert len(replays) == 7 and all(d["outcome"] == "refused" and "replay" in d["reason"] for d in replays)


def test_a_deeply_nested_signed_body_is_refused_with_400_and_recorded(daemon: Daemon) -> None:
    app = hooked_app(daemon, "github")
    payload = push_payload("github", "acme/web", sha=ABSENT_SHA, ref="refs/heads/elsewhere")
    depth = 100_000
    body = json.dumps(payload)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    headers, _ = sign_delivery("github", app.secret, "push", payload)
    headers["X-Hub-Signature-256"] = (
        "sha256=" + hmac.new(app.secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    )
    response = daemon.http.post(f"/hooks/{app.hook_id}", content=body.encode(), headers=headers)

    assert is_refusal(response, 400, "webhook_malformed"), response.text[:300]
    assert "levels deep" in response.json()["detail"]
    refused = app.deliveries()[0]
    assert refused["outcome"] == "refused" and "levels deep" in refused["reason"]
    # The daemon still serves: an ordinary delivery after it is handled.
    assert app.deliver("push", payload).status_code == 202
