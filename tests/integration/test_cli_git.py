"""The git commands of ``mist`` as a user runs them: git providers (against the local stand-in for GitHub, GitLab
and Gitea), apps created from a provider's repository, deploy keys, app sources, webhook deliveries and previews.
Commands run on an embedded core with a real SQLite file, in this process (``mist_core.cli.run`` with their own
streams and environment), and one test starts the installed ``mist`` program itself; deliveries are handed to
the same core in this process, as the daemon's public webhook endpoint would."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gitutil import git
from mistkit import PASSWORD, busybox_site
from standins.forge import Forge, pull_request_payload, push_payload, serve_forge, sign_delivery

from mist_core.cli import run as run_mist
from mist_core.local import LocalMist, open_embedded

ROOT = Path(__file__).resolve().parents[2]
MIST = Path(sys.executable).parent / "mist"
PUBLIC_URL = "https://mist.example.com"

Run = Callable[..., subprocess.CompletedProcess[str]]


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "MIST_CONFIG_DIR": str(tmp_path / "cfg"),
        "MIST_GIT_ROOTS": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    env.pop("MIST_TOKEN", None)
    env.pop("MIST_HOST", None)
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Run:
    """Runs ``mist --embedded --data <tmp>/data ARGS`` in this process, with its config and allowed git roots
    in tmp."""
    env = _environment(tmp_path)

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["--embedded", "--data", str(tmp_path / "data"), *args]
        stdout, stderr = io.StringIO(), io.StringIO()
        code = run_mist(argv, stdin=io.StringIO(input or ""), stdout=stdout, stderr=stderr, env=env)
        return subprocess.CompletedProcess(["mist", *argv], code, stdout.getvalue(), stderr.getvalue())

    return run


@pytest.fixture
def program(tmp_path: Path) -> Run:
    """Runs the installed ``mist`` program, as a user does, on the same data and config as ``cli``."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MIST), "--embedded", "--data", str(tmp_path / "data"), *args],
            input=input,
            capture_output=True,
            text=True,
            env=_environment(tmp_path),
            timeout=120,
        )

    return run


@pytest.fixture
def owner(cli: Run) -> Run:
    """Logged in as the owner, with Mist's public address set (webhook URLs are made from it)."""
    assert cli("setup", "--username", "admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0
    assert cli("settings", "set", "public_url", PUBLIC_URL).returncode == 0
    assert cli("project", "create", "shop").returncode == 0
    return cli


@pytest.fixture
def forge() -> Iterator[Forge]:
    with serve_forge() as running:
        yield running


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def doc(result: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(ok(result).stdout)  # type: ignore[no-any-return]


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert result.stderr.startswith("mist: ") and "Traceback" not in result.stderr
    return result.stderr


def add_gitea(owner: Run, forge: Forge, name: str = "tea") -> subprocess.CompletedProcess[str]:
    return owner(
        "git", "provider", "add", name, "--kind", "gitea", "--url", forge.url, "--token-stdin",
        input=forge.gitea_token + "\n",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- providers


def test_gitea_and_gitlab_providers_are_added_browsed_and_removed(
    owner: Run, forge: Forge, tmp_path: Path
) -> None:
    added = ok(add_gitea(owner, forge))
    assert "Added gitea provider tea" in added.stdout
    ok(
        owner(
            "git", "provider", "add", "lab", "--kind", "gitlab", "--url", forge.url, "--token-stdin",
            input=forge.gitlab_token + "\n",
        )
    )  # fmt: skip
    wrong = owner(
        "git", "provider", "add", "bad", "--kind", "gitlab", "--url", forge.url, "--token-stdin",
        input="glpat-not-the-token\n",
    )  # fmt: skip
    assert "401" in refused(wrong)

    table = ok(owner("git", "provider", "list")).stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "KIND", "URL"]
    assert [line.split()[:3] for line in table[1:]] == [
        ["lab", "gitlab", forge.url],
        ["tea", "gitea", forge.url],
    ]
    # The tokens went to the hosts, and nowhere a person or a backup would see them.
    assert any(c.headers.get("authorization") == f"token {forge.gitea_token}" for c in forge.calls)
    database = (tmp_path / "data" / "mist.db").read_bytes()
    for token in (forge.gitea_token, forge.gitlab_token):
        assert token.encode() not in database
        assert token not in added.stdout + added.stderr

    repos = doc(owner("git", "repos", "tea", "--json"))
    assert [r["full_name"] for r in repos] == ["acme/web", "acme/api", "acme/site"]
    table = ok(owner("git", "repos", "lab")).stdout.splitlines()
    assert table[0].split() == ["REPO", "DEFAULT", "BRANCH", "PRIVATE", "CLONE", "URL"]
    assert table[2].split()[:3] == ["acme/platform/api", "main", "yes"]
    branches = ok(owner("git", "branches", "lab", "acme/platform/api")).stdout.splitlines()
    assert [line.split() for line in branches[1:]] == [
        [name, sha[:12]] for name, sha in forge.branches("acme/platform/api")
    ]
    missing = owner("git", "branches", "nope", "acme/web")
    assert "mist git provider list" in refused(missing)

    assert "--yes" in refused(owner("git", "provider", "remove", "lab"))
    assert "Removed git provider lab" in ok(owner("git", "provider", "remove", "lab", "--yes")).stdout
    assert [p["name"] for p in doc(owner("git", "provider", "list", "--json"))] == ["tea"]


def test_a_github_app_is_added_by_id_and_key_and_shows_its_webhook(
    owner: Run, forge: Forge, tmp_path: Path
) -> None:
    key = tmp_path / "app.pem"
    key.write_text(forge.github_private_key_pem)
    added = owner(
        "git", "provider", "add", "gh", "--kind", "github", "--url", forge.url, "--api-url", forge.url,
        "--app-id", str(forge.github_app_id), "--private-key-file", str(key), "--webhook-secret-stdin",
        input="app-webhook-secret\n",
    )  # fmt: skip
    ok(added)
    assert f"{PUBLIC_URL}/hooks/" in added.stderr
    assert "app-webhook-secret" not in added.stdout + added.stderr
    assert "PRIVATE KEY" not in added.stdout + added.stderr
    (provider,) = doc(owner("git", "provider", "list", "--json"))
    assert (provider["kind"], provider["app_id"]) == ("github", forge.github_app_id)
    assert provider["installation_id"] == forge.github_installation_id
    assert provider["webhook_url"].startswith(f"{PUBLIC_URL}/hooks/")
    assert "acme/site" in ok(owner("git", "repos", "gh")).stdout


def test_github_manifest_prints_the_address_to_open_in_a_browser(owner: Run, program: Run) -> None:
    """Through the installed ``mist`` program, as a user runs it."""
    started = ok(program("git", "provider", "add", "gh", "--github-manifest", "--organization", "acme"))
    assert re.fullmatch(rf"{re.escape(PUBLIC_URL)}/hooks/github/manifest/\S+\n", started.stdout)
    assert "brings the browser back" in started.stderr and "mist git provider list" in started.stderr
    # The App does not exist until GitHub sends the browser back.
    assert doc(program("git", "provider", "list", "--json")) == []
    ok(program("settings", "set", "public_url", ""))
    assert "public_url" in refused(program("git", "provider", "add", "gh2", "--github-manifest"))


# ---------------------------------------------------------------------------------------------- apps


def test_an_app_created_from_a_provider_repo_is_linked_and_shows_its_webhook(
    owner: Run, forge: Forge
) -> None:
    ok(add_gitea(owner, forge))
    created = ok(
        owner("app", "create", "shop/web", "--provider", "tea", "--repo", "acme/site", "--port", "80")
    )
    assert "mist deploy shop/web" in created.stdout
    app = doc(owner("app", "show", "shop/web", "--json"))
    assert app["spec"]["git_url"] == f"{forge.url}/acme/site.git"
    assert app["spec"]["branch"] == "develop"  # the repository's default branch
    assert app["webhook_url"].startswith(f"{PUBLIC_URL}/hooks/")
    shown = ok(owner("app", "show", "shop/web")).stdout.splitlines()
    assert shown[-1].split() == ["Webhook", app["webhook_url"]]
    source = doc(owner("app", "source", "shop/web", "--json"))
    assert (source["auth"], source["provider"], source["repo"]) == ("provider", "tea", "acme/site")
    assert source["webhook_kind"] == "gitea" and source["webhook_secret"] is None

    unknown = owner("app", "create", "shop/other", "--provider", "tea", "--repo", "acme/nope")
    assert "mist git repos tea" in refused(unknown)
    assert [a["name"] for a in doc(owner("app", "list", "--json"))] == ["web"]
    assert "shop/web" in refused(owner("git", "provider", "remove", "tea", "--yes"))  # still used by it


def test_deploy_key_shows_the_public_key_and_keeps_it_until_regenerated(
    owner: Run, git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = git_repo(busybox_site("keys"))
    ok(owner("app", "create", "shop/web", "--git", str(repo)))
    first = ok(owner("app", "deploy-key", "shop/web"))
    public = first.stdout.strip()
    assert re.fullmatch(r"ssh-ed25519 [A-Za-z0-9+/=]+ mist-shop-web", public)
    (tmp_path / "key.pub").write_text(public + "\n")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "key.pub")], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert fingerprint in first.stderr
    assert "read access only" in first.stderr
    assert "No host key pinned yet" in first.stderr
    assert "--git git@HOST:OWNER/NAME.git" in first.stderr  # the app still fetches from a local path

    assert ok(owner("app", "deploy-key", "shop/web")).stdout.strip() == public
    regenerated = doc(owner("app", "deploy-key", "shop/web", "--regenerate", "--json"))
    assert regenerated["deploy_key"] != public and regenerated["auth"] == "deploy_key"
    shown = ok(owner("app", "source", "shop/web")).stdout
    assert regenerated["deploy_key_fingerprint"] in shown and "ssh deploy key" in shown
    assert "PRIVATE KEY" not in shown


def test_app_source_changes_push_and_preview_settings_and_reveals_the_secret(
    owner: Run, git_repo: Callable[..., Path]
) -> None:
    repo = git_repo(busybox_site("source"))
    ok(owner("app", "create", "shop/web", "--git", str(repo)))
    before = doc(owner("app", "source", "shop/web", "--reveal", "--json"))
    assert before["auth"] == "none" and len(before["webhook_secret"]) >= 32
    shown = ok(owner("app", "source", "shop/web", "--reveal")).stdout
    assert before["webhook_secret"] in shown and before["webhook_url"] in shown
    assert before["webhook_secret"] not in ok(owner("app", "source", "shop/web")).stdout

    changed = ok(
        owner(
            "app", "source", "shop/web", "--webhook-kind", "gitlab", "--no-deploy-on-push", "--deploy-tags",
            "--previews", "--preview-limit", "2", "--preview-domain", "pr-{number}.preview.example.com",
            "--preview-env", "STAGE=preview", "--preview-env", "DEBUG=1",
        )
    )  # fmt: skip
    assert "Updated the source of shop/web" in changed.stderr
    assert "on, up to 2 at once, at pr-{number}.preview.example.com" in changed.stdout
    source = doc(owner("app", "source", "shop/web", "--preview-env-unset", "DEBUG", "--json"))
    assert (source["webhook_kind"], source["deploy_on_push"], source["deploy_tags"]) == (
        "gitlab",
        False,
        True,
    )
    assert source["previews"] == {
        "enabled": True,
        "limit": 2,
        "domain_pattern": "pr-{number}.preview.example.com",
        "env": {"STAGE": "preview"},
        "share_secrets": False,
    }
    assert (
        "Preview secrets  none of the app's (--preview-secrets shares them)"
        in ok(owner("app", "source", "shop/web")).stdout
    )
    shared = doc(owner("app", "source", "shop/web", "--preview-secrets", "--json"))
    assert shared["previews"]["share_secrets"] is True and shared["previews"]["env"] == {"STAGE": "preview"}
    assert "never from a fork" in ok(owner("app", "source", "shop/web")).stdout
    assert "--preview-limit" in refused(owner("app", "source", "shop/web", "--preview-limit", "99"))

    renewed = ok(owner("app", "source", "shop/web", "--new-webhook-secret"))
    assert "--reveal" in renewed.stderr
    after = doc(owner("app", "source", "shop/web", "--reveal", "--json"))
    assert (
        after["webhook_secret"] != before["webhook_secret"] and after["webhook_url"] == before["webhook_url"]
    )

    token = doc(owner("app", "source", "shop/web", "--token-stdin", "--json", input="s3cret-https-token\n"))
    assert token["auth"] == "token" and "s3cret-https-token" not in json.dumps(token)
    assert doc(owner("app", "source", "shop/web", "--no-token", "--json"))["auth"] == "none"


# ---------------------------------------------------------------------------------------------- deliveries


async def _deliver(tmp_path: Path, hook_id: str, deliveries: list[tuple[dict[str, str], bytes]]) -> list[int]:
    """Hand deliveries to the core, as the daemon's webhook endpoint does; the deployments they queue are
    cancelled before any worker runs them (these tests are about what the CLI shows)."""
    api = await open_embedded(tmp_path / "data", run_workers=False, git_roots=[tmp_path])
    assert isinstance(api, LocalMist)
    try:
        statuses = [(await api.core.gitops.receive(hook_id, h, b))[0] for h, b in deliveries]
        session = await api.auth.login("admin", PASSWORD)
        authed = LocalMist(api.core, session.token)
        queued = await api.core.store.all(
            "SELECT id FROM deployments WHERE state NOT IN ('live', 'failed', 'cancelled', 'superseded')"
        )
        for row in queued:
            await authed.deployments.cancel(int(row["id"]))
        return statuses
    finally:
        await api.close()


def _hook(owner: Run, kind: str) -> tuple[str, str]:
    source = doc(owner("app", "source", "shop/web", "--webhook-kind", kind, "--reveal", "--json"))
    return source["webhook_url"].rsplit("/", 1)[1], source["webhook_secret"]


def test_webhooks_lists_every_delivery_with_what_mist_did(
    owner: Run, git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = git_repo(busybox_site("hooks"))
    sha = git(repo, "rev-parse", "HEAD")
    ok(owner("app", "create", "shop/web", "--git", str(repo)))
    assert "No delivery yet" in ok(owner("webhooks", "shop/web")).stderr
    hook_id, secret = _hook(owner, "gitea")
    statuses = asyncio.run(
        _deliver(
            tmp_path,
            hook_id,
            [
                sign_delivery("gitea", secret, "push", push_payload("gitea", "acme/web", sha=sha)),
                sign_delivery(
                    "gitea", secret, "push", push_payload("gitea", "acme/web", sha=sha, ref="refs/heads/exp")
                ),
                sign_delivery("gitea", "not the secret", "push", push_payload("gitea", "acme/web", sha=sha)),
            ],
        )
    )
    assert statuses == [202, 202, 401]

    table = ok(owner("webhooks", "shop/web")).stdout.splitlines()
    assert table[0].split() == ["TIME", "EVENT", "OUTCOME", "REF", "COMMIT", "DEPLOYMENT", "REASON"]
    refused_row, ignored_row, deployed_row = (line.split() for line in table[1:])
    assert refused_row[3] == "refused" and "signature" in " ".join(refused_row).lower()
    assert ignored_row[2:6] == ["push", "ignored", "exp", sha[:8]]
    assert deployed_row[2:6] == ["push", "deployed", "main", sha[:8]]
    deliveries = doc(owner("webhooks", "shop/web", "--json"))
    assert deployed_row[6] == str(deliveries[2]["deployment_id"])
    assert [d["outcome"] for d in deliveries] == ["refused", "ignored", "deployed"]
    assert [d["outcome"] for d in doc(owner("webhooks", "shop/web", "-n", "1", "--json"))] == ["refused"]


def test_previews_lists_the_preview_a_pull_request_opened(
    owner: Run, git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = git_repo(busybox_site("previews"))
    ok(owner("app", "create", "shop/web", "--git", str(repo)))
    assert ok(owner("previews", "shop/web")).stdout.split() == ["PR", "APP", "HEAD", "URL", "UPDATED"]
    ok(owner("app", "source", "shop/web", "--previews", "--preview-env", "STAGE=preview"))
    hook_id, secret = _hook(owner, "github")
    git(repo, "checkout", "-q", "-b", "feature/login")
    head = git(repo, "rev-parse", "HEAD")
    payload = pull_request_payload("github", "acme/web", action="opened", number=7, head_sha=head)
    assert asyncio.run(
        _deliver(tmp_path, hook_id, [sign_delivery("github", secret, "pull_request", payload)])
    ) == [202]

    (preview,) = doc(owner("previews", "shop/web", "--json"))
    assert (preview["app"], preview["parent"], preview["number"]) == ("shop/web-pr-7", "shop/web", 7)
    assert preview["head_ref"] == "feature/login"
    row = ok(owner("previews", "shop/web")).stdout.splitlines()[1].split()
    assert row[:3] == ["7", "shop/web-pr-7", "feature/login"]
    (delivery,) = doc(owner("webhooks", "shop/web", "--json"))
    assert delivery["outcome"] == "preview" and delivery["pr_number"] == 7
    assert "PR #7" in ok(owner("webhooks", "shop/web")).stdout
