"""Webhooks end to end in the core: signed deliveries deploy, bad ones are refused with a record of why, a burst
of pushes ends with the newest commit, and pull requests open, update and close previews. Real git, a real
Docker Engine, a real store; the git hosts are the local stand-in (tests/standins/forge.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from gitutil import commit, git
from mistkit import busybox_site, busybox_spec, wait_final
from standins.forge import pull_request_payload, push_payload, serve_forge, sign_delivery

from mist_core.local import LocalMist
from mist_core.models import DomainSettings, GitProviderSpec, PreviewSettings, SourceChanges

pytestmark = pytest.mark.docker


async def hook(mist: LocalMist, ref: str, kind: str = "gitea") -> tuple[str, str]:
    """The app's hook id and secret, with deliveries signed the ``kind`` way."""
    await mist.apps.set_source(ref, SourceChanges(webhook_kind=kind))  # type: ignore[arg-type]
    source = await mist.apps.source(ref, reveal=True)
    assert source.webhook_url and source.webhook_secret
    return source.webhook_url.rsplit("/", 1)[1], source.webhook_secret


async def deliver(mist: LocalMist, hook_id: str, headers: dict[str, str], body: bytes) -> int:
    status, _ = await mist.core.gitops.receive(hook_id, headers, body)
    return status


async def test_signed_pushes_deploy_the_newest_commit_and_bad_deliveries_are_refused_with_a_reason(
    mist: LocalMist, git_repo, project_name
) -> None:
    await mist.settings.set("public_url", "https://mist.example.com")
    repo = git_repo(busybox_site("one"))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    hook_id, secret = await hook(mist, ref)
    assert (await mist.apps.source(ref)).webhook_url == f"https://mist.example.com/hooks/{hook_id}"
    assert (await mist.apps.source(ref)).webhook_secret is None  # only with reveal

    # A burst of three pushes: the queue keeps only the newest waiting deployment.
    shas = []
    for n in range(3):
        commit(repo, {"index.html": f"version {n}"}, f"change {n}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    for sha in shas:
        headers, body = sign_delivery("gitea", secret, "push", push_payload("gitea", "acme/web", sha=sha))
        assert await deliver(mist, hook_id, headers, body) == 202
    deliveries = await mist.webhooks.list(ref)
    assert [d.outcome for d in deliveries] == ["deployed"] * 3
    final = await wait_final(mist, deliveries[0].deployment_id or 0)
    assert final.state == "live" and final.commit_sha == shas[-1]
    cancelled = [await mist.deployments.get(d.deployment_id or 0) for d in deliveries[1:]]
    assert any(d.state == "cancelled" for d in cancelled) or all(
        d.state in ("superseded", "live") for d in cancelled
    )

    # Refusals, each recorded with its reason; nothing is queued for any of them.
    headers, body = sign_delivery(
        "gitea", "not the secret", "push", push_payload("gitea", "acme/web", sha=shas[0])
    )
    assert await deliver(mist, hook_id, headers, body) == 401
    good_headers, good_body = sign_delivery(
        "gitea", secret, "push", push_payload("gitea", "acme/web", sha=shas[0]), delivery_id="fixed-id"
    )
    assert await deliver(mist, hook_id, good_headers, good_body) == 202
    assert await deliver(mist, hook_id, good_headers, good_body) == 409  # the same delivery id again
    big_headers, big_body = sign_delivery(
        "gitea", secret, "push", {**push_payload("gitea", "acme/web", sha=shas[0]), "pad": "x" * 1_100_000}
    )
    assert await deliver(mist, hook_id, big_headers, big_body) == 413
    other_headers, other_body = sign_delivery(
        "gitea", secret, "push", push_payload("gitea", "acme/web", sha=shas[0], ref="refs/heads/experiment")
    )
    assert await deliver(mist, hook_id, other_headers, other_body) == 202
    star_headers, star_body = sign_delivery("gitea", secret, "star", {"action": "created"})
    assert await deliver(mist, hook_id, star_headers, star_body) == 202
    assert await deliver(mist, "no-such-hook", other_headers, other_body) == 404

    latest = (await mist.webhooks.list(ref))[:4]
    reasons = [(d.outcome, d.reason) for d in reversed(latest)]
    assert reasons[0][0] == "refused" and "replay" in reasons[0][1]
    assert reasons[1][0] == "refused" and "at most that is accepted" in reasons[1][1]
    assert reasons[2] == ("ignored", "a push to refs/heads/experiment; the app follows branch main")
    assert reasons[3][0] == "ignored" and "not ones Mist acts on" in reasons[3][1]
    signature = [d for d in await mist.webhooks.list(ref) if d.reason and "signature" in d.reason.lower()]
    assert signature and signature[0].outcome == "refused"


async def test_a_pull_request_opens_updates_and_closes_its_preview(
    mist: LocalMist, git_repo, project_name
) -> None:
    await mist.settings.set("public_url", "https://mist.example.com")
    repo = git_repo(busybox_site("main page"))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    await mist.domains.add(ref, f"{project_name}.example.com", DomainSettings(https=False))
    # Shared with previews of the repository's own pull requests (below): re-encrypted for the preview.
    await mist.env.set(ref, "API_KEY", "kept secret in previews", secret=True)
    await mist.apps.set_source(
        ref,
        SourceChanges(
            previews=PreviewSettings(enabled=True, limit=1, env={"PREVIEW": "yes"}, share_secrets=True)
        ),
    )
    hook_id, secret = await hook(mist, ref, kind="github")

    git(repo, "checkout", "-q", "-b", "feature/login")
    commit(repo, {"index.html": "login page"}, "login")
    head = git(repo, "rev-parse", "HEAD")
    headers, body = sign_delivery(
        "github",
        secret,
        "pull_request",
        pull_request_payload("github", "acme/web", action="opened", number=7, head_sha=head),
    )
    assert await deliver(mist, hook_id, headers, body) == 202
    previews = await mist.previews.list(ref)
    assert [(p.app, p.number, p.url) for p in previews] == [
        (f"{project_name}/web-pr-7", 7, f"http://pr-7.{project_name}.example.com")
    ]
    preview_ref = previews[0].app
    env = {v.key: v.value for v in await mist.env.list(preview_ref, reveal=True)}
    assert env == {"API_KEY": "kept secret in previews", "PREVIEW": "yes"}
    first = (await mist.webhooks.list(ref))[0]
    assert (
        first.outcome == "preview" and (await wait_final(mist, first.deployment_id or 0)).commit_sha == head
    )

    # A second pull request waits: the limit is one live preview.
    headers, body = sign_delivery(
        "github",
        secret,
        "pull_request",
        pull_request_payload("github", "acme/web", action="opened", number=8, head_sha=head),
    )
    await deliver(mist, hook_id, headers, body)
    assert "limit" in (await mist.webhooks.list(ref))[0].reason

    commit(repo, {"index.html": "login page, fixed"}, "fix")
    newer = git(repo, "rev-parse", "HEAD")
    headers, body = sign_delivery(
        "github",
        secret,
        "pull_request",
        pull_request_payload("github", "acme/web", action="synchronize", number=7, head_sha=newer),
    )
    await deliver(mist, hook_id, headers, body)
    update = (await mist.webhooks.list(ref))[0]
    assert (await wait_final(mist, update.deployment_id or 0)).commit_sha == newer

    headers, body = sign_delivery(
        "github",
        secret,
        "pull_request",
        pull_request_payload("github", "acme/web", action="closed", number=7, head_sha=newer, merged=True),
    )
    await deliver(mist, hook_id, headers, body)
    for _ in range(200):
        if not await mist.previews.list(ref):
            break
        await asyncio.sleep(0.1)
    assert await mist.previews.list(ref) == []
    assert f"{project_name}/web-pr-7" not in [
        a.ref for a in (await mist.apps.list(project=project_name)).items
    ]
    containers = await mist.containers.list(all=True)
    assert not [c for c in containers if c.app == "web-pr-7"]


async def test_a_github_app_provider_posts_commit_statuses_and_preview_comments(
    mist: LocalMist, git_repo, project_name
) -> None:
    await mist.settings.set("public_url", "https://mist.example.com")
    with serve_forge() as forge:
        provider = await mist.git.add_provider(
            GitProviderSpec(
                name="gh",
                kind="github",
                url=forge.url,
                api_url=forge.url,
                app_id=forge.github_app_id,
                private_key=forge.github_private_key_pem,
                webhook_secret="app-webhook-secret",
            )
        )
        assert provider.installation_id == forge.github_installation_id
        assert provider.webhook_url and provider.webhook_url.startswith("https://mist.example.com/hooks/")
        repos = await mist.git.repos("gh")
        assert repos and all(r.full_name for r in repos)
        branches = await mist.git.branches("gh", repos[0].full_name)
        assert any(b.name == "main" for b in branches)

        # The app is linked to the provider's repository; its git URL follows, and fetches get a token.
        repo = git_repo(busybox_site("statuses"))
        ref = f"{project_name}/web"
        await mist.projects.create(project_name)
        await mist.apps.create(ref, busybox_spec(repo))
        await mist.apps.set_source(ref, SourceChanges(provider="gh", repo=repos[0].full_name))
        app = await mist.apps.get(ref)
        assert app.spec.git_url == f"{forge.url}/{repos[0].full_name}.git"
        options = await mist.core.credentials.fetch_options(app.id)
        assert options["token_username"] == "x-access-token" and options["token"]

        # Deliveries to the provider's hook reach every app of that repository.
        sha = git(repo, "rev-parse", "HEAD")
        hook_id = provider.webhook_url.rsplit("/", 1)[1]
        headers, body = sign_delivery(
            "github", "app-webhook-secret", "push", push_payload("github", repos[0].full_name, sha=sha)
        )
        assert await deliver(mist, hook_id, headers, body) == 202
        delivery = (await mist.webhooks.list(ref))[0]
        assert delivery.outcome == "deployed" and delivery.provider == "gh"
        # The fetch from the stand-in fails (it serves no git), and the status says so.
        await wait_final(mist, delivery.deployment_id or 0)
        for _ in range(100):
            states = [s["state"] for s in forge.statuses if s.get("sha") == sha]
            if "failure" in states:
                break
            await asyncio.sleep(0.1)
        assert "failure" in states
        posted = next(s for s in forge.statuses if s.get("sha") == sha and s["state"] == "failure")
        assert posted["context"] == "mist"
        assert not any("app-webhook-secret" in json.dumps(c.json) for c in forge.calls if c.json)


async def test_deleting_an_app_removes_its_previews_with_their_containers(
    mist: LocalMist, git_repo, project_name
) -> None:
    await mist.settings.set("public_url", "https://mist.example.com")
    repo = git_repo(busybox_site("main page"))
    ref = f"{project_name}/web"
    await mist.projects.create(project_name)
    await mist.apps.create(ref, busybox_spec(repo))
    await mist.apps.set_source(ref, SourceChanges(previews=PreviewSettings(enabled=True)))
    hook_id, secret = await hook(mist, ref, kind="gitlab")
    head = git(repo, "rev-parse", "HEAD")
    headers, body = sign_delivery(
        "gitlab",
        secret,
        "pull_request",
        pull_request_payload("gitlab", "acme/web", action="opened", number=3, head_sha=head),
    )
    assert await deliver(mist, hook_id, headers, body) == 202
    delivery = (await mist.webhooks.list(ref))[0]
    assert (await wait_final(mist, delivery.deployment_id or 0)).state == "live"
    assert [c.app for c in await mist.containers.list() if c.project == project_name] == ["web-pr-3"]

    await mist.apps.delete(ref)
    assert (await mist.apps.list(project=project_name)).total == 0
    assert not [c for c in await mist.containers.list(all=True) if c.project == project_name]
