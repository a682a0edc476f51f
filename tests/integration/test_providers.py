"""The GitHub App, GitLab and Gitea clients against the local stand-in of their APIs: listings followed
across pages, commit statuses, pull request comments, GitHub's App JWT and installation tokens, and the
manifest flow."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from standins.forge import Forge, serve_forge

from mist_core.errors import InvalidInput
from mist_core.providers import Branch, ProviderClient, ProviderError
from mist_core.providers.gitea import Gitea
from mist_core.providers.github import GitHubApp, build_manifest, convert_manifest, manifest_form
from mist_core.providers.gitlab import GitLab

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def forge() -> Iterator[Forge]:
    # Two items a page, so three repositories and five branches take several pages.
    with serve_forge(max_per_page=2, token_ttl=100) as running:
        yield running


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def github(forge: Forge, clock: Clock) -> AsyncIterator[GitHubApp]:
    app = GitHubApp(
        forge.github_app_id,
        forge.github_private_key_pem,
        forge.github_installation_id,
        api_url=forge.url,
        clock=clock,
    )
    yield app
    await app.close()


@pytest.fixture
async def gitlab(forge: Forge) -> AsyncIterator[GitLab]:
    async with GitLab(forge.url, forge.gitlab_token) as client:
        assert isinstance(client, GitLab)
        yield client


@pytest.fixture
async def gitea(forge: Forge) -> AsyncIterator[Gitea]:
    async with Gitea(forge.url, forge.gitea_token) as client:
        assert isinstance(client, Gitea)
        yield client


@pytest.fixture(params=["github", "gitlab", "gitea"])
def client(request: pytest.FixtureRequest) -> ProviderClient:
    return request.getfixturevalue(request.param)


# --- every provider -------------------------------------------------------------------------------------


async def test_repos_are_listed_across_every_page(client: ProviderClient, forge: Forge) -> None:
    repos = await client.repos()
    expected = [r["full_name"] for r in forge.repos[client.kind]]
    assert [r.full_name for r in repos] == expected
    site = repos[-1]
    assert (site.private, site.default_branch) == (False, "develop")
    assert site.clone_url.startswith("https://") and site.clone_url.endswith("/acme/site.git")
    assert site.ssh_url.endswith("acme/site.git")
    listing = [
        c
        for c in forge.calls
        if c.method == "GET"
        and ("repos" in c.path or "repositories" in c.path or c.path.endswith("/projects"))
    ]
    assert len(listing) == 2  # three repositories, two a page


async def test_branches_are_listed_across_every_page_with_their_shas(
    client: ProviderClient, forge: Forge
) -> None:
    repo = "acme/platform/api" if client.kind == "gitlab" else "acme/web"
    branches = await client.branches(repo)
    assert branches == [Branch(name, sha) for name, sha in forge.branches(repo)]
    assert len(forge.calls_to("GET", path=None, provider=client.kind)) >= 3  # five branches, two a page


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("pending", {"github": "pending", "gitlab": "pending", "gitea": "pending"}),
        ("success", {"github": "success", "gitlab": "success", "gitea": "success"}),
        ("failure", {"github": "failure", "gitlab": "failed", "gitea": "failure"}),
        ("error", {"github": "error", "gitlab": "failed", "gitea": "error"}),
    ],
)
async def test_a_commit_status_is_posted_in_the_providers_words(
    client: ProviderClient, forge: Forge, state: str, words: dict[str, str]
) -> None:
    await client.set_status(
        "acme/web",
        SHA,
        state,
        target_url="https://web.example.com",
        description="Deployed by Mist",  # type: ignore[arg-type]
    )
    [posted] = forge.statuses
    assert posted["sha"] == SHA and posted["repo"] == "acme/web"
    assert posted["state"] == words[client.kind]
    assert posted["target_url"] == "https://web.example.com"
    assert posted["description"] == "Deployed by Mist"
    assert posted.get("context", posted.get("name")) == "mist"


async def test_a_long_status_description_is_cut_to_what_github_accepts(
    client: ProviderClient, forge: Forge
) -> None:
    await client.set_status(
        "acme/web", SHA, "failure", target_url=None, description="x" * 500, context="mist/preview"
    )
    [posted] = forge.statuses
    assert len(posted["description"]) == 140
    assert "target_url" not in posted
    assert posted.get("context", posted.get("name")) == "mist/preview"


async def test_a_comment_is_created_then_updated_in_place(client: ProviderClient, forge: Forge) -> None:
    ident = await client.comment("acme/web", 7, "Preview: https://pr-7.web.example.com (deploying)")
    again = await client.comment(
        "acme/web", 7, "Preview: https://pr-7.web.example.com (live)", comment_id=ident
    )
    assert again == ident
    stored = forge.comments[ident]
    assert (stored.provider, stored.repo, stored.number) == (client.kind, "acme/web", 7)
    assert stored.body.endswith("(live)")
    assert stored.edits == 1
    methods = [c.method for c in forge.calls if "comments" in c.path or "notes" in c.path]
    assert methods == ["POST", {"github": "PATCH", "gitlab": "PUT", "gitea": "PATCH"}[client.kind]]


async def test_updating_a_comment_that_is_gone_reports_what_the_provider_said(client: ProviderClient) -> None:
    with pytest.raises(ProviderError, match="404") as caught:
        await client.comment("acme/web", 7, "hello", comment_id=999999)
    assert caught.value.extra["provider_status"] == 404
    assert client.label in caught.value.message


async def test_an_unknown_repository_is_a_provider_error_that_says_what_to_check(
    client: ProviderClient,
) -> None:
    with pytest.raises(ProviderError, match="check the repository name") as caught:
        await client.branches("acme/nope")
    assert caught.value.status == 502


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.branches("no-slash"), "repo"),
        (lambda c: c.branches("acme/../etc"), "repo"),
        (lambda c: c.set_status("acme/web", "abc123", "success", target_url=None, description=""), "sha"),
        (lambda c: c.set_status("acme/web", SHA, "done", target_url=None, description=""), "state"),
        (
            lambda c: c.set_status("acme/web", SHA, "success", target_url="javascript:x", description=""),
            "target_url",
        ),
        (lambda c: c.comment("acme/web", 0, "hi"), "number"),
        (lambda c: c.comment("acme/web", 1, "   "), "body"),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    client: ProviderClient, forge: Forge, call, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await call(client)
    assert caught.value.field == field
    assert forge.calls_to(provider=client.kind, path="/repos") == []


async def test_an_unreachable_provider_is_reported_with_its_address() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with Gitea(f"http://127.0.0.1:{port}", "token") as client:
        with pytest.raises(ProviderError, match=f"Gitea at http://127.0.0.1:{port}/api/v1 cannot be reached"):
            await client.repos()


def test_tokens_never_appear_in_a_clients_repr(forge: Forge) -> None:
    for client in (GitLab(forge.url, forge.gitlab_token), Gitea(forge.url, forge.gitea_token)):
        assert forge.url in repr(client)
        assert forge.gitlab_token not in repr(client) and forge.gitea_token not in repr(client)


# --- GitHub App -----------------------------------------------------------------------------------------


async def test_the_app_jwt_is_rs256_signed_by_the_app_key_with_a_short_life(
    github: GitHubApp, forge: Forge
) -> None:
    await github.installations()
    [call] = forge.calls_to("GET", "/app/installations")
    token = call.headers["authorization"].removeprefix("Bearer ")
    public = forge.apps[forge.github_app_id].public_key
    claims = jwt.decode(token, public, algorithms=["RS256"])
    assert claims["iss"] == str(forge.github_app_id)
    assert claims["exp"] - claims["iat"] <= 600
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


async def test_installations_are_listed_with_the_app_jwt(github: GitHubApp, forge: Forge) -> None:
    [installation] = await github.installations()
    assert (installation.id, installation.account, installation.target_type) == (77, "acme", "Organization")


async def test_a_jwt_signed_with_another_key_is_refused_like_github_does(forge: Forge) -> None:
    from standins.forge import _new_key_pem

    async with GitHubApp(forge.github_app_id, _new_key_pem(), 77, api_url=forge.url) as impostor:
        with pytest.raises(ProviderError, match="401.*JSON web token could not be decoded"):
            await impostor.repos()
    assert forge.minted == []


async def test_a_jwt_that_lives_too_long_is_refused_like_github_does(forge: Forge) -> None:
    clock = Clock()
    clock.now += 120  # our clock runs two minutes ahead: exp lands 11 minutes after GitHub's now
    async with GitHubApp(
        forge.github_app_id, forge.github_private_key_pem, 77, api_url=forge.url, clock=clock
    ) as app:
        with pytest.raises(ProviderError, match="too far in the future"):
            await app.installation_token()


async def test_the_installation_token_is_minted_once_and_reused(github: GitHubApp, forge: Forge) -> None:
    await github.repos()
    await github.branches("acme/web")
    username, token = await github.clone_credentials("acme/web")
    assert username == "x-access-token"
    assert len(forge.calls_to("POST", "/app/installations/77/access_tokens")) == 1
    assert forge.minted == [(77, token)]
    used = {c.headers["authorization"] for c in forge.calls_to("GET", "/repos/acme/web/branches")}
    assert used == {f"Bearer {token}"}


async def test_the_installation_token_is_minted_again_shortly_before_it_expires(
    github: GitHubApp, forge: Forge, clock: Clock
) -> None:
    first = await github.installation_token()
    clock.now += 30  # 70 s left of the stand-in's 100: still used
    assert await github.installation_token() == first
    clock.now += 15  # 55 s left: inside the one-minute margin
    second = await github.installation_token()
    assert second != first
    assert [token for _, token in forge.minted] == [first, second]


async def test_a_revoked_token_is_forgotten_so_the_next_call_mints_a_new_one(
    github: GitHubApp, forge: Forge
) -> None:
    await github.repos()
    forge.expire_tokens()
    with pytest.raises(ProviderError, match="401.*Bad credentials"):
        await github.repos()
    assert len(await github.repos()) == 3
    assert len(forge.minted) == 2


async def test_repository_calls_need_an_installation(forge: Forge) -> None:
    async with GitHubApp(forge.github_app_id, forge.github_private_key_pem, None, api_url=forge.url) as app:
        assert len(await app.installations()) == 1
        with pytest.raises(InvalidInput, match="no installation chosen"):
            await app.repos()


@pytest.mark.parametrize(
    ("pem", "message"), [("not a key", "not a readable PEM key"), ("", "not a readable PEM key")]
)
def test_a_private_key_that_is_not_a_pem_rsa_key_is_refused_at_once(pem: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        GitHubApp(1, pem, 2)


def test_the_app_key_never_appears_in_the_repr(forge: Forge) -> None:
    app = GitHubApp(forge.github_app_id, forge.github_private_key_pem, 77, api_url=forge.url)
    assert "PRIVATE" not in repr(app) and str(forge.github_app_id) in repr(app)


# --- the manifest flow ----------------------------------------------------------------------------------


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.method = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action, self.method = values.get("action") or "", values.get("method") or ""
        if tag == "input" and values.get("name"):
            self.fields[values["name"] or ""] = values.get("value") or ""


def test_the_manifest_asks_for_what_mist_uses_and_no_more() -> None:
    manifest = build_manifest(
        "Mist on web1",
        "https://mist.example.com",
        "https://mist.example.com/hooks/abc",
        "https://mist.example.com/cb",
    )
    assert manifest["hook_attributes"] == {"url": "https://mist.example.com/hooks/abc", "active": True}
    assert manifest["redirect_url"] == "https://mist.example.com/cb"
    assert manifest["callback_urls"] == ["https://mist.example.com/cb"]
    assert manifest["public"] is False
    assert manifest["default_permissions"] == {
        "contents": "read",
        "metadata": "read",
        "statuses": "write",
        "pull_requests": "write",
        "issues": "write",
    }
    assert manifest["default_events"] == ["push", "pull_request"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("x" * 35, "https://m", "https://m/h", "https://m/c"), "name"),
        (("Mist", "ftp://m", "https://m/h", "https://m/c"), "mist_url"),
        (("Mist", "https://m", "m/h", "https://m/c"), "webhook_url"),
    ],
)
def test_a_manifest_with_a_bad_name_or_url_is_refused(args: tuple[str, str, str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        build_manifest(*args)
    assert caught.value.field == field


def test_the_manifest_form_escapes_the_manifest_and_the_state() -> None:
    manifest = build_manifest('Mist "<b>"', "https://m.example", "https://m.example/h", "https://m.example/c")
    page = manifest_form("https://github.com", manifest, "st&ate", organization="acme")
    form = _Form()
    form.feed(page)
    assert form.method == "post"
    assert form.action == "https://github.com/organizations/acme/settings/apps/new?state=st%26ate"
    assert json.loads(form.fields["manifest"]) == manifest
    assert "<b>" not in page


async def test_the_manifest_flow_creates_an_app_mist_can_then_use(forge: Forge) -> None:
    manifest = build_manifest(
        "Mist", "https://mist.example", "https://mist.example/hooks/h1", "https://mist.example/cb"
    )
    form = _Form()
    form.feed(manifest_form(forge.url, manifest, "state-123"))
    async with httpx.AsyncClient() as browser:
        answer = await browser.post(form.action, data=form.fields)
    assert answer.status_code == 302
    back = urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == "https://mist.example/cb"
    query = parse_qs(back.query)
    assert query["state"] == ["state-123"]

    creds = await convert_manifest(query["code"][0], forge.url)
    assert creds.slug == "mist" and creds.html_url == "https://github.com/apps/mist"
    assert re.fullmatch(r"[0-9a-f]{40}", creds.webhook_secret)
    assert "BEGIN RSA PRIVATE KEY" in creds.pem
    assert creds.pem not in repr(creds) and creds.webhook_secret not in repr(creds)
    assert forge.converted[0]["manifest"] == manifest

    async with GitHubApp(creds.id, creds.pem, None, api_url=forge.url) as app:
        [installation] = await app.installations()
        app.installation_id = installation.id
        assert len(await app.repos()) == 3


async def test_a_manifest_code_works_once(forge: Forge) -> None:
    code = forge.manifest_code()
    await convert_manifest(code, forge.url)
    with pytest.raises(ProviderError, match="404.*start the App creation again"):
        await convert_manifest(code, forge.url)


async def test_a_malformed_manifest_code_is_refused_before_any_request(forge: Forge) -> None:
    with pytest.raises(InvalidInput, match="malformed"):
        await convert_manifest("../../app", forge.url)
    assert forge.calls == []


# --- GitLab and Gitea specifics -------------------------------------------------------------------------


async def test_gitlab_names_a_project_by_its_url_encoded_path(gitlab: GitLab, forge: Forge) -> None:
    await gitlab.set_status("acme/platform/api", SHA, "pending", target_url=None, description="Deploying")
    [call] = forge.calls_to("POST")
    assert call.path == f"/api/v4/projects/acme%2Fplatform%2Fapi/statuses/{SHA}"
    assert call.headers["private-token"] == forge.gitlab_token


async def test_gitlab_lists_only_projects_the_token_is_a_member_of(gitlab: GitLab, forge: Forge) -> None:
    await gitlab.repos()
    assert {c.query.get("membership") for c in forge.calls_to("GET", "/api/v4/projects")} == {"true"}


async def test_gitlab_and_gitea_clone_with_the_token(gitlab: GitLab, gitea: Gitea, forge: Forge) -> None:
    assert await gitlab.clone_credentials("acme/web") == ("oauth2", forge.gitlab_token)
    assert await gitea.clone_credentials("acme/web") == ("mist", forge.gitea_token)


async def test_gitea_sends_its_token_header(gitea: Gitea, forge: Forge) -> None:
    await gitea.repos()
    assert {c.headers["authorization"] for c in forge.calls} == {f"token {forge.gitea_token}"}


@pytest.mark.parametrize("cls", [GitLab, Gitea])
async def test_a_wrong_token_is_reported_as_refused_credentials(
    cls: type[GitLab] | type[Gitea], forge: Forge
) -> None:
    async with cls(forge.url, "wrong-token") as client:
        with pytest.raises(ProviderError, match="401.*check the token"):
            await client.repos()


@pytest.mark.parametrize("cls", [GitLab, Gitea])
def test_an_api_address_given_with_its_api_path_is_not_doubled(
    cls: type[GitLab] | type[Gitea], forge: Forge
) -> None:
    suffix = "/api/v4" if cls is GitLab else "/api/v1"
    assert cls(forge.url + suffix + "/", "t").api_url == forge.url + suffix


async def test_a_next_page_link_to_another_host_is_not_followed(forge: Forge) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json=[], headers={"Link": '<https://evil.example/api/v1/user/repos?page=2>; rel="next"'}
        )

    async with Gitea("https://gitea.example.com", "t", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ProviderError, match="another host"):
            await client.repos()
