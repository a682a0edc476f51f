"""A local stand-in for the REST APIs of GitHub, GitLab and Gitea: only the endpoints Mist calls, with the
request and response shapes of their public documentation, fixed repositories and branches, and a record
of every call. One server on 127.0.0.1 answers for all three (their paths do not overlap): point GitHub's
``api_url`` at ``forge.url``, and GitLab's and Gitea's ``base_url`` at it too.

GitHub's App authentication is checked the way GitHub checks it: the App JWT must be RS256-signed by the
App's key, name the App in ``iss`` and expire no more than 10 minutes ahead; installation tokens expire.
The manifest flow works end to end: the form post to ``/settings/apps/new`` redirects to the manifest's
``redirect_url`` with a one-time code, and the code converts into a new App with its own generated key.

Also here: ``sign_delivery`` and payload builders that make webhook deliveries exactly as each provider
sends them, for tests that POST them to Mist.

    with serve_forge(max_per_page=2) as forge:
        app = GitHubApp(forge.github_app_id, forge.github_private_key_pem, forge.github_installation_id,
                        api_url=forge.url)
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

__all__ = [
    "Call",
    "Forge",
    "ping_payload",
    "pull_request_payload",
    "push_payload",
    "serve_forge",
    "sign_delivery",
]

GITHUB_DOCS = "https://docs.github.com/rest"
BRANCH_NAMES = ("main", "develop", "feature/login", "release/1.0", "hotfix-2")
_SHA = re.compile(r"^[0-9a-f]{40}$")
# The most items a page can hold on each provider (GitHub and GitLab: 100; Gitea: MAX_RESPONSE_ITEMS, 50).
_PROVIDER_MAX_PAGE = {"github": 100, "gitlab": 100, "gitea": 50}
_PROVIDER_DEFAULT_PAGE = {"github": 30, "gitlab": 20, "gitea": 30}


def branch_sha(repo: str, branch: str) -> str:
    """The fixed sha a stand-in branch points at."""
    return hashlib.sha1(f"{repo}:{branch}".encode()).hexdigest()


@dataclass
class Call:
    """One request the stand-in received."""

    provider: str  # github | gitlab | gitea | github-web
    method: str
    path: str  # as sent, percent-encoding kept
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any


@dataclass
class GitHubAppRecord:
    id: int
    slug: str
    public_key: rsa.RSAPublicKey
    installations: list[int]


@dataclass
class Comment:
    provider: str
    repo: str
    number: int
    body: str
    edits: int = 0


@cache
def _default_key_pem() -> str:
    """The stand-in's own App key, made once per test process (RSA keys take a moment to generate)."""
    return _new_key_pem()


def _new_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN RSA PRIVATE KEY", as GitHub hands them out
        serialization.NoEncryption(),
    ).decode()


@cache
def _public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key()


@dataclass
class Forge:
    """State of the stand-in: its repositories, credentials, what was posted, and every call received.

    ``max_per_page`` lowers every provider's page size ceiling so tests see pagination with few items;
    ``token_ttl`` is how long a GitHub installation token lives, in seconds.
    """

    max_per_page: int = 100
    token_ttl: int = 3600
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    github_app_id: int = 4242
    github_installation_id: int = 77
    github_private_key_pem: str = field(default_factory=_default_key_pem, repr=False)
    gitlab_token: str = "glpat-standin-0123456789abcdef"
    gitea_token: str = "0123456789abcdef0123456789abcdef01234567"
    repos: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    branch_names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # repo -> its own branches
    statuses: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[int, Comment] = field(default_factory=dict)
    installation_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (epoch seconds)
    minted: list[tuple[int, str]] = field(default_factory=list)  # (installation id, token), in order
    apps: dict[int, GitHubAppRecord] = field(default_factory=dict)
    manifest_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    converted: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        self.apps[self.github_app_id] = GitHubAppRecord(
            self.github_app_id,
            "mist-standin",
            _public_key(self.github_private_key_pem),
            [self.github_installation_id],
        )
        self.repos = {
            "github": [
                {"full_name": "acme/web", "private": True, "default_branch": "main"},
                {"full_name": "acme/api", "private": True, "default_branch": "main"},
                {"full_name": "acme/site", "private": False, "default_branch": "develop"},
            ],
            "gitlab": [
                {"full_name": "acme/web", "private": True, "default_branch": "main"},
                {"full_name": "acme/platform/api", "private": True, "default_branch": "main"},
                {"full_name": "acme/site", "private": False, "default_branch": "develop"},
            ],
            "gitea": [
                {"full_name": "acme/web", "private": True, "default_branch": "main"},
                {"full_name": "acme/api", "private": True, "default_branch": "main"},
                {"full_name": "acme/site", "private": False, "default_branch": "develop"},
            ],
        }
        self.app = _build_app(self)

    # --- for tests ------------------------------------------------------------------------------------

    def branches(self, repo: str) -> list[tuple[str, str]]:
        """(name, sha) of every branch the stand-in lists for ``repo``."""
        return [(name, branch_sha(repo, name)) for name in self.branch_names.get(repo, BRANCH_NAMES)]

    def transport(self, *hosts: str) -> httpx.AsyncBaseTransport:
        """An httpx transport that sends requests for ``hosts`` (``api.github.com``, ``gitea.example.com``...)
        to this stand-in, as a hosts file pointing them at 127.0.0.1 would, and every other request out as
        usual: a client keeps its provider's own address (and the screens that show it stay the same on every
        run) while it talks to the stand-in."""
        return _HostsTransport(httpx.URL(self.url), frozenset(hosts))

    def calls_to(
        self, method: str | None = None, path: str | None = None, provider: str | None = None
    ) -> list[Call]:
        """Recorded calls, filtered by method, path prefix and provider."""
        return [
            c
            for c in list(self.calls)
            if (method is None or c.method == method)
            and (path is None or c.path.startswith(path))
            and (provider is None or c.provider == provider)
        ]

    def manifest_code(self, manifest: dict[str, Any] | None = None) -> str:
        """A code as GitHub puts it in the manifest redirect, without going through the form."""
        code = secrets.token_hex(10)
        self.manifest_codes[code] = manifest or {"name": "Mist", "url": "https://mist.example"}
        return code

    def expire_tokens(self) -> None:
        """Make every installation token GitHub handed out stop working (as if an hour went by)."""
        for token in self.installation_tokens:
            self.installation_tokens[token] = 0.0

    # --- internals ------------------------------------------------------------------------------------

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def repo(self, provider: str, full_name: str) -> dict[str, Any] | None:
        return next((r for r in self.repos[provider] if r["full_name"] == full_name), None)

    async def note(self, request: Request, provider: str) -> Any:
        raw = await request.body()
        body: Any = None
        if raw and request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        elif raw:
            body = raw.decode(errors="replace")
        self.calls.append(
            Call(
                provider=provider,
                method=request.method,
                path=request.scope.get("raw_path", b"").decode() or request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                json=body,
            )
        )
        return body


class _HostsTransport(httpx.AsyncHTTPTransport):
    def __init__(self, target: httpx.URL, hosts: frozenset[str]) -> None:
        super().__init__()
        self._target = target
        self._hosts = hosts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in self._hosts:
            # The Host header keeps the provider's name; only the connection goes to the stand-in.
            request.url = request.url.copy_with(
                scheme=self._target.scheme, host=self._target.host, port=self._target.port
            )
        return await super().handle_async_request(request)


# --- shapes from the providers' documentation -------------------------------------------------------------


def _github_owner(login: str) -> dict[str, Any]:
    return {
        "login": login,
        "id": 1,
        "node_id": "MDEyOk9yZ2FuaXphdGlvbjE=",
        "type": "Organization",
        "site_admin": False,
        "html_url": f"https://github.com/{login}",
    }


def _github_repo(item: dict[str, Any], ident: int) -> dict[str, Any]:
    owner, name = item["full_name"].split("/")
    return {
        "id": ident,
        "node_id": f"R_{ident}",
        "name": name,
        "full_name": item["full_name"],
        "owner": _github_owner(owner),
        "private": item["private"],
        "html_url": f"https://github.com/{item['full_name']}",
        "clone_url": f"https://github.com/{item['full_name']}.git",
        "ssh_url": f"git@github.com:{item['full_name']}.git",
        "git_url": f"git://github.com/{item['full_name']}.git",
        "default_branch": item["default_branch"],
        "visibility": "private" if item["private"] else "public",
        "archived": False,
        "fork": False,
    }


def _gitlab_project(item: dict[str, Any], ident: int) -> dict[str, Any]:
    path = item["full_name"]
    namespace, _, name = path.rpartition("/")
    return {
        "id": ident,
        "name": name,
        "path": name,
        "path_with_namespace": path,
        "name_with_namespace": " / ".join(path.split("/")),
        "namespace": {"id": 9, "name": namespace, "path": namespace.split("/")[-1], "full_path": namespace},
        "default_branch": item["default_branch"],
        "visibility": "private" if item["private"] else "public",
        "http_url_to_repo": f"https://gitlab.example.com/{path}.git",
        "ssh_url_to_repo": f"git@gitlab.example.com:{path}.git",
        "web_url": f"https://gitlab.example.com/{path}",
        "archived": False,
    }


def _gitea_repo(item: dict[str, Any], ident: int) -> dict[str, Any]:
    owner, name = item["full_name"].split("/")
    return {
        "id": ident,
        "owner": {"id": 1, "login": owner, "username": owner, "full_name": ""},
        "name": name,
        "full_name": item["full_name"],
        "private": item["private"],
        "empty": False,
        "fork": False,
        "html_url": f"https://gitea.example.com/{item['full_name']}",
        "clone_url": f"https://gitea.example.com/{item['full_name']}.git",
        "ssh_url": f"git@gitea.example.com:{item['full_name']}.git",
        "default_branch": item["default_branch"],
        "archived": False,
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the server -------------------------------------------------------------------------------------------


def _build_app(forge: Forge) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def page(provider: str, request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """One page of ``items`` and the headers each provider sends with it."""
        q = request.query_params
        size_param = "limit" if provider == "gitea" else "per_page"
        try:
            number = max(1, int(q.get("page", "1")))
            size = int(q.get(size_param, str(_PROVIDER_DEFAULT_PAGE[provider])))
        except ValueError:
            number, size = 1, _PROVIDER_DEFAULT_PAGE[provider]
        size = max(1, min(size, _PROVIDER_MAX_PAGE[provider], forge.max_per_page))
        pages = max(1, -(-len(items) // size))
        chunk = items[(number - 1) * size : number * size]
        links = []
        if number < pages:
            links.append(f'<{request.url.include_query_params(page=number + 1)}>; rel="next"')
            links.append(f'<{request.url.include_query_params(page=pages)}>; rel="last"')
        if number > 1:
            links.append(f'<{request.url.include_query_params(page=1)}>; rel="first"')
            links.append(f'<{request.url.include_query_params(page=number - 1)}>; rel="prev"')
        headers: dict[str, str] = {}
        if links:
            headers["Link"] = ", ".join(links)
        if provider == "gitlab":
            headers.update(
                {
                    "X-Page": str(number),
                    "X-Per-Page": str(size),
                    "X-Next-Page": str(number + 1) if number < pages else "",
                    "X-Prev-Page": str(number - 1) if number > 1 else "",
                    "X-Total": str(len(items)),
                    "X-Total-Pages": str(pages),
                }
            )
        if provider == "gitea":
            headers["X-Total-Count"] = str(len(items))
        return chunk, headers

    # --- GitHub ---------------------------------------------------------------------------------------

    def github_error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse(
            {"message": message, "documentation_url": GITHUB_DOCS, "status": str(status), **extra}, status
        )

    def bearer(request: Request) -> str | None:
        value = request.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() in ("bearer", "token") and token.strip() else None

    def check_app_jwt(request: Request) -> GitHubAppRecord | JSONResponse:
        token = bearer(request)
        if token is None:
            return github_error(401, "A JSON web token could not be decoded")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return github_error(401, "A JSON web token could not be decoded")
        if header.get("alg") != "RS256":
            return github_error(401, "A JSON web token could not be decoded")
        try:
            record = forge.apps.get(int(str(unverified.get("iss"))))
        except ValueError:
            record = None
        if record is None:
            return github_error(401, "Integration not found")
        try:
            claims = jwt.decode(
                token,
                record.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            return github_error(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the future time at which "
                "the assertion expires",
            )
        except jwt.PyJWTError:
            return github_error(401, "A JSON web token could not be decoded")
        if claims["exp"] > time.time() + 600:
            return github_error(401, "'Expiration time' claim ('exp') is too far in the future")
        if not isinstance(claims["iat"], int) or claims["iat"] > time.time() + 30:
            return github_error(
                401,
                "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
            )
        if claims["iss"] != str(record.id):
            return github_error(401, "'Issuer' claim ('iss') must be an Integer or a String of the App's id")
        return record

    def check_installation_token(request: Request) -> int | JSONResponse:
        token = bearer(request)
        if token is None or forge.installation_tokens.get(token, 0.0) <= time.time():
            return github_error(401, "Bad credentials")
        return forge.github_installation_id

    @app.post("/app-manifests/{code}/conversions")
    async def github_convert(code: str, request: Request) -> Response:
        await forge.note(request, "github")
        manifest = forge.manifest_codes.pop(code, None)
        if manifest is None:
            return github_error(404, "Not Found")
        pem = _new_key_pem()
        app_id = forge.next_id()
        name = str(manifest.get("name") or f"app-{app_id}")
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or f"app-{app_id}"
        installation = forge.next_id()
        forge.apps[app_id] = GitHubAppRecord(app_id, slug, _public_key(pem), [installation])
        now = _iso(time.time())
        body = {
            "id": app_id,
            "slug": slug,
            "node_id": f"A_{app_id}",
            "owner": _github_owner("acme"),
            "name": name,
            "description": manifest.get("description") or "",
            "external_url": manifest.get("url") or "",
            "html_url": f"https://github.com/apps/{slug}",
            "created_at": now,
            "updated_at": now,
            "permissions": manifest.get("default_permissions") or {"metadata": "read"},
            "events": manifest.get("default_events") or [],
            "client_id": "Iv1." + secrets.token_hex(8),
            "client_secret": secrets.token_hex(20),
            "webhook_secret": secrets.token_hex(20),
            "pem": pem,
        }
        forge.converted.append({**body, "installation_id": installation, "manifest": manifest})
        return JSONResponse(body, 201)

    @app.get("/app/installations")
    async def github_installations(request: Request) -> Response:
        await forge.note(request, "github")
        record = check_app_jwt(request)
        if isinstance(record, JSONResponse):
            return record
        items = [
            {
                "id": ident,
                "account": _github_owner("acme"),
                "app_id": record.id,
                "app_slug": record.slug,
                "target_type": "Organization",
                "repository_selection": "selected",
                "permissions": {"contents": "read", "metadata": "read", "statuses": "write"},
                "events": ["push", "pull_request"],
            }
            for ident in record.installations
        ]
        chunk, headers = page("github", request, items)
        return JSONResponse(chunk, headers=headers)

    @app.post("/app/installations/{installation_id}/access_tokens")
    async def github_access_token(installation_id: int, request: Request) -> Response:
        await forge.note(request, "github")
        record = check_app_jwt(request)
        if isinstance(record, JSONResponse):
            return record
        if installation_id not in record.installations:
            return github_error(404, "Not Found")
        token = "ghs_" + secrets.token_hex(18)
        expires = time.time() + forge.token_ttl
        forge.installation_tokens[token] = expires
        forge.minted.append((installation_id, token))
        return JSONResponse(
            {
                "token": token,
                "expires_at": _iso(expires),
                "permissions": {"contents": "read", "metadata": "read", "statuses": "write"},
                "repository_selection": "selected",
            },
            201,
        )

    @app.get("/installation/repositories")
    async def github_installation_repos(request: Request) -> Response:
        await forge.note(request, "github")
        if isinstance(denied := check_installation_token(request), JSONResponse):
            return denied
        items = [_github_repo(r, 500 + i) for i, r in enumerate(forge.repos["github"])]
        chunk, headers = page("github", request, items)
        return JSONResponse(
            {"total_count": len(items), "repository_selection": "selected", "repositories": chunk},
            headers=headers,
        )

    @app.get("/repos/{owner}/{name}/branches")
    async def github_branches(owner: str, name: str, request: Request) -> Response:
        await forge.note(request, "github")
        if isinstance(denied := check_installation_token(request), JSONResponse):
            return denied
        repo = f"{owner}/{name}"
        if forge.repo("github", repo) is None:
            return github_error(404, "Not Found")
        items = [
            {
                "name": branch,
                "commit": {"sha": sha, "url": f"https://api.github.com/repos/{repo}/commits/{sha}"},
                "protected": branch == "main",
            }
            for branch, sha in forge.branches(repo)
        ]
        chunk, headers = page("github", request, items)
        return JSONResponse(chunk, headers=headers)

    @app.post("/repos/{owner}/{name}/statuses/{sha}")
    async def github_status(owner: str, name: str, sha: str, request: Request) -> Response:
        body = await forge.note(request, "github")
        if isinstance(denied := check_installation_token(request), JSONResponse):
            return denied
        repo = f"{owner}/{name}"
        if forge.repo("github", repo) is None:
            return github_error(404, "Not Found")
        if not isinstance(body, dict) or body.get("state") not in ("error", "failure", "pending", "success"):
            return github_error(
                422, "Validation Failed", errors=[{"resource": "Status", "field": "state", "code": "custom"}]
            )
        if not _SHA.match(sha):
            return github_error(422, f"No commit found for SHA: {sha}")
        ident = forge.next_id()
        forge.statuses.append({"provider": "github", "repo": repo, "sha": sha, **body})
        now = _iso(time.time())
        return JSONResponse(
            {
                "url": f"https://api.github.com/repos/{repo}/statuses/{sha}",
                "id": ident,
                "node_id": f"SC_{ident}",
                "state": body["state"],
                "description": body.get("description"),
                "target_url": body.get("target_url"),
                "context": body.get("context", "default"),
                "created_at": now,
                "updated_at": now,
            },
            201,
        )

    def github_comment_body(ident: int, c: Comment) -> dict[str, Any]:
        now = _iso(time.time())
        return {
            "id": ident,
            "node_id": f"IC_{ident}",
            "url": f"https://api.github.com/repos/{c.repo}/issues/comments/{ident}",
            "html_url": f"https://github.com/{c.repo}/pull/{c.number}#issuecomment-{ident}",
            "issue_url": f"https://api.github.com/repos/{c.repo}/issues/{c.number}",
            "body": c.body,
            "user": {"login": "mist-standin[bot]", "type": "Bot"},
            "created_at": now,
            "updated_at": now,
        }

    @app.post("/repos/{owner}/{name}/issues/{number}/comments")
    async def github_comment(owner: str, name: str, number: int, request: Request) -> Response:
        body = await forge.note(request, "github")
        if isinstance(denied := check_installation_token(request), JSONResponse):
            return denied
        repo = f"{owner}/{name}"
        if forge.repo("github", repo) is None:
            return github_error(404, "Not Found")
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return github_error(422, "Validation Failed")
        ident = forge.next_id()
        forge.comments[ident] = Comment("github", repo, number, body["body"])
        return JSONResponse(github_comment_body(ident, forge.comments[ident]), 201)

    @app.patch("/repos/{owner}/{name}/issues/comments/{comment_id}")
    async def github_edit_comment(owner: str, name: str, comment_id: int, request: Request) -> Response:
        body = await forge.note(request, "github")
        if isinstance(denied := check_installation_token(request), JSONResponse):
            return denied
        c = forge.comments.get(comment_id)
        if c is None or c.provider != "github" or c.repo != f"{owner}/{name}":
            return github_error(404, "Not Found")
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return github_error(422, "Validation Failed")
        c.body, c.edits = body["body"], c.edits + 1
        return JSONResponse(github_comment_body(comment_id, c))

    # github.com itself (not the API): the form a browser posts the manifest to.
    async def github_new_app(request: Request) -> Response:
        raw = await request.body()
        await forge.note(request, "github-web")
        form = parse_qs(raw.decode(errors="replace"))
        try:
            manifest = json.loads(form["manifest"][0])
            redirect = manifest["redirect_url"]
            manifest["hook_attributes"]["url"]
        except (KeyError, IndexError, ValueError, TypeError):
            return Response("Invalid GitHub App configuration", 422)
        code = forge.manifest_code(manifest)
        state = request.query_params.get("state")
        query = {"code": code, **({"state": state} if state is not None else {})}
        separator = "&" if urlsplit(redirect).query else "?"
        return RedirectResponse(f"{redirect}{separator}{urlencode(query)}", 302)

    app.add_api_route("/settings/apps/new", github_new_app, methods=["POST"])
    app.add_api_route("/organizations/{org}/settings/apps/new", github_new_app, methods=["POST"])

    # --- GitLab ---------------------------------------------------------------------------------------

    def gitlab_error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"message": message}, status)

    def gitlab_project(request: Request, project: str) -> dict[str, Any] | JSONResponse:
        if request.headers.get("private-token") != forge.gitlab_token:
            return gitlab_error(401, "401 Unauthorized")
        # GitLab names a project by its URL-encoded path; a bare slash is a different route (404).
        raw = request.scope.get("raw_path", b"").decode()
        if quote(project, safe="") not in raw and project.isdigit() is False:
            return gitlab_error(404, "404 Not Found")
        found = forge.repo("gitlab", unquote(project))
        if found is None:
            return gitlab_error(404, "404 Project Not Found")
        return found

    @app.get("/api/v4/projects")
    async def gitlab_projects(request: Request) -> Response:
        await forge.note(request, "gitlab")
        if request.headers.get("private-token") != forge.gitlab_token:
            return gitlab_error(401, "401 Unauthorized")
        items = [_gitlab_project(r, 300 + i) for i, r in enumerate(forge.repos["gitlab"])]
        chunk, headers = page("gitlab", request, items)
        return JSONResponse(chunk, headers=headers)

    @app.get("/api/v4/projects/{project:path}/repository/branches")
    async def gitlab_branches(project: str, request: Request) -> Response:
        await forge.note(request, "gitlab")
        if isinstance(found := gitlab_project(request, project), JSONResponse):
            return found
        repo = found["full_name"]
        items = [
            {
                "name": branch,
                "merged": False,
                "protected": branch == "main",
                "default": branch == found["default_branch"],
                "web_url": f"https://gitlab.example.com/{repo}/-/tree/{branch}",
                "commit": {
                    "id": sha,
                    "short_id": sha[:8],
                    "title": f"Tip of {branch}",
                    "message": f"Tip of {branch}\n",
                },
            }
            for branch, sha in forge.branches(repo)
        ]
        chunk, headers = page("gitlab", request, items)
        return JSONResponse(chunk, headers=headers)

    @app.post("/api/v4/projects/{project:path}/statuses/{sha}")
    async def gitlab_status(project: str, sha: str, request: Request) -> Response:
        body = await forge.note(request, "gitlab")
        if isinstance(found := gitlab_project(request, project), JSONResponse):
            return found
        params = {**dict(request.query_params), **(body if isinstance(body, dict) else {})}
        if params.get("state") not in ("pending", "running", "success", "failed", "canceled", "skipped"):
            return JSONResponse({"error": "state does not have a valid value"}, 400)
        if not _SHA.match(sha):
            return gitlab_error(404, "404 Commit Not Found")
        ident = forge.next_id()
        forge.statuses.append({"provider": "gitlab", "repo": found["full_name"], "sha": sha, **params})
        now = _iso(time.time())
        return JSONResponse(
            {
                "id": ident,
                "sha": sha,
                "ref": params.get("ref") or found["default_branch"],
                "status": params["state"],
                "name": params.get("name") or params.get("context") or "default",
                "target_url": params.get("target_url"),
                "description": params.get("description"),
                "created_at": now,
                "started_at": None,
                "finished_at": None,
                "allow_failure": False,
                "coverage": None,
                "author": {"id": 1, "username": "mist", "name": "Mist"},
            },
            201,
        )

    def gitlab_note(ident: int, c: Comment) -> dict[str, Any]:
        now = _iso(time.time())
        return {
            "id": ident,
            "type": None,
            "body": c.body,
            "author": {"id": 1, "username": "mist", "name": "Mist"},
            "created_at": now,
            "updated_at": now,
            "system": False,
            "noteable_type": "MergeRequest",
            "noteable_iid": c.number,
            "resolvable": False,
        }

    @app.post("/api/v4/projects/{project:path}/merge_requests/{iid}/notes")
    async def gitlab_create_note(project: str, iid: int, request: Request) -> Response:
        body = await forge.note(request, "gitlab")
        if isinstance(found := gitlab_project(request, project), JSONResponse):
            return found
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return JSONResponse({"error": "body is missing"}, 400)
        ident = forge.next_id()
        forge.comments[ident] = Comment("gitlab", found["full_name"], iid, body["body"])
        return JSONResponse(gitlab_note(ident, forge.comments[ident]), 201)

    @app.put("/api/v4/projects/{project:path}/merge_requests/{iid}/notes/{note_id}")
    async def gitlab_update_note(project: str, iid: int, note_id: int, request: Request) -> Response:
        body = await forge.note(request, "gitlab")
        if isinstance(found := gitlab_project(request, project), JSONResponse):
            return found
        c = forge.comments.get(note_id)
        if c is None or c.provider != "gitlab" or c.repo != found["full_name"] or c.number != iid:
            return gitlab_error(404, "404 Not found")
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return JSONResponse({"error": "body is missing"}, 400)
        c.body, c.edits = body["body"], c.edits + 1
        return JSONResponse(gitlab_note(note_id, c))

    # --- Gitea ----------------------------------------------------------------------------------------

    def gitea_error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"message": message, "url": "https://gitea.example.com/api/swagger"}, status)

    def gitea_auth(request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != f"token {forge.gitea_token}":
            return gitea_error(401, "token is required")
        return None

    def gitea_repo(request: Request, owner: str, name: str) -> dict[str, Any] | JSONResponse:
        if (denied := gitea_auth(request)) is not None:
            return denied
        found = forge.repo("gitea", f"{owner}/{name}")
        return found if found is not None else gitea_error(404, "The target couldn't be found.")

    @app.get("/api/v1/user/repos")
    async def gitea_user_repos(request: Request) -> Response:
        await forge.note(request, "gitea")
        if (denied := gitea_auth(request)) is not None:
            return denied
        items = [_gitea_repo(r, 700 + i) for i, r in enumerate(forge.repos["gitea"])]
        chunk, headers = page("gitea", request, items)
        return JSONResponse(chunk, headers=headers)

    @app.get("/api/v1/repos/{owner}/{name}/branches")
    async def gitea_branches(owner: str, name: str, request: Request) -> Response:
        await forge.note(request, "gitea")
        if isinstance(found := gitea_repo(request, owner, name), JSONResponse):
            return found
        repo = found["full_name"]
        items = [
            {
                "name": branch,
                "commit": {
                    "id": sha,
                    "message": f"Tip of {branch}\n",
                    "url": f"https://gitea.example.com/{repo}/commit/{sha}",
                    "author": {"name": "Ada", "email": "ada@example.com", "username": "ada"},
                },
                "protected": branch == "main",
            }
            for branch, sha in forge.branches(repo)
        ]
        chunk, headers = page("gitea", request, items)
        return JSONResponse(chunk, headers=headers)

    @app.post("/api/v1/repos/{owner}/{name}/statuses/{sha}")
    async def gitea_status(owner: str, name: str, sha: str, request: Request) -> Response:
        body = await forge.note(request, "gitea")
        if isinstance(found := gitea_repo(request, owner, name), JSONResponse):
            return found
        if not isinstance(body, dict) or body.get("state") not in (
            "pending",
            "success",
            "error",
            "failure",
            "warning",
        ):
            return gitea_error(422, "[State]: invalid state")
        ident = forge.next_id()
        forge.statuses.append({"provider": "gitea", "repo": found["full_name"], "sha": sha, **body})
        now = _iso(time.time())
        return JSONResponse(
            {
                "id": ident,
                "status": body["state"],
                "target_url": body.get("target_url", ""),
                "description": body.get("description", ""),
                "url": f"https://gitea.example.com/api/v1/repos/{found['full_name']}/statuses/{sha}",
                "context": body.get("context", ""),
                "creator": {"id": 1, "login": "mist"},
                "created_at": now,
                "updated_at": now,
            },
            201,
        )

    def gitea_comment(ident: int, c: Comment) -> dict[str, Any]:
        now = _iso(time.time())
        return {
            "id": ident,
            "html_url": f"https://gitea.example.com/{c.repo}/pulls/{c.number}#issuecomment-{ident}",
            "pull_request_url": f"https://gitea.example.com/{c.repo}/pulls/{c.number}",
            "issue_url": "",
            "user": {"id": 1, "login": "mist"},
            "body": c.body,
            "created_at": now,
            "updated_at": now,
        }

    @app.post("/api/v1/repos/{owner}/{name}/issues/{index}/comments")
    async def gitea_create_comment(owner: str, name: str, index: int, request: Request) -> Response:
        body = await forge.note(request, "gitea")
        if isinstance(found := gitea_repo(request, owner, name), JSONResponse):
            return found
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return gitea_error(422, "[Body]: Required")
        ident = forge.next_id()
        forge.comments[ident] = Comment("gitea", found["full_name"], index, body["body"])
        return JSONResponse(gitea_comment(ident, forge.comments[ident]), 201)

    @app.patch("/api/v1/repos/{owner}/{name}/issues/comments/{comment_id}")
    async def gitea_edit_comment(owner: str, name: str, comment_id: int, request: Request) -> Response:
        body = await forge.note(request, "gitea")
        if isinstance(found := gitea_repo(request, owner, name), JSONResponse):
            return found
        c = forge.comments.get(comment_id)
        if c is None or c.provider != "gitea" or c.repo != found["full_name"]:
            return gitea_error(404, "The target couldn't be found.")
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return gitea_error(422, "[Body]: Required")
        c.body, c.edits = body["body"], c.edits + 1
        return JSONResponse(gitea_comment(comment_id, c))

    return app


@contextmanager
def serve_forge(*, max_per_page: int = 100, token_ttl: int = 3600) -> Iterator[Forge]:
    """Run the stand-in on 127.0.0.1 (a free port) in a background thread for the ``with`` block."""
    forge = Forge(max_per_page=max_per_page, token_ttl=token_ttl)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(forge.app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="forge-standin", daemon=True
    )
    thread.start()
    for _ in range(1000):
        if server.started or not thread.is_alive():
            break
        time.sleep(0.01)
    if not server.started:
        sock.close()
        raise RuntimeError("the forge stand-in did not start")
    forge.url = f"http://127.0.0.1:{port}"
    try:
        yield forge
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# --- webhook deliveries as the providers send them --------------------------------------------------------

_GITLAB_EVENTS = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "pull_request": "Merge Request Hook",
    "merge_request": "Merge Request Hook",
}


def sign_delivery(
    kind: str, secret: str, event: str, payload: dict[str, Any], delivery_id: str | None = None
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a webhook delivery, signed with ``secret`` the way ``kind`` signs it.

    ``event`` is the provider's event name ("push", "pull_request", "ping"; for GitLab "Push Hook" and
    friends, or the short names "push", "tag_push", "pull_request" which are translated).
    """
    body = json.dumps(payload, separators=(",", ":")).encode()
    delivery = delivery_id or str(uuid.uuid4())
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if kind == "github":
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/044aadd",
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Event": event,
            "X-GitHub-Hook-ID": "292430182",
            "X-GitHub-Hook-Installation-Target-ID": "79929171",
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
            "X-Hub-Signature-256": "sha256=" + digest,
        }
    elif kind == "gitlab":
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitLab/17.5.0",
            "X-Gitlab-Event": _GITLAB_EVENTS.get(event, event),
            "X-Gitlab-Token": secret,
            "X-Gitlab-Instance": "https://gitlab.example.com",
            "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
            "Idempotency-Key": delivery,
        }
    elif kind == "gitea":
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Go-http-client/1.1",
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Event": event,
            "X-GitHub-Event-Type": event,
            "X-Gogs-Delivery": delivery,
            "X-Gogs-Event": event,
            "X-Gogs-Event-Type": event,
            "X-Gitea-Delivery": delivery,
            "X-Gitea-Event": event,
            "X-Gitea-Event-Type": event,
            "X-Gitea-Signature": digest,
            "X-Gogs-Signature": digest,
            "X-Hub-Signature": "sha256=" + digest,
            "X-Hub-Signature-256": "sha256=" + digest,
        }
    else:
        raise ValueError(f"unknown provider {kind!r}")
    return headers, body


def _repository(kind: str, repo: str, ident: int | None = None) -> dict[str, Any]:
    item = {"full_name": repo, "private": True, "default_branch": "main"}
    if kind == "github":
        return _github_repo(item, ident or 500)
    return _gitea_repo(item, ident or 700)


# The id the stand-in gives a fork: any repository other than the base has another id.
FORK_ID = 4242


def push_payload(
    kind: str,
    repo: str,
    *,
    ref: str = "refs/heads/main",
    sha: str,
    before: str = "0" * 40,
    message: str = "Update the landing page",
    author: tuple[str, str] = ("Ada Lovelace", "ada@example.com"),
    deleted: bool = False,
) -> dict[str, Any]:
    """The body of a push (or, on GitLab, tag push when ``ref`` is a tag) as ``kind`` sends it."""
    zero = "0" * 40
    after = zero if deleted else sha
    commit = {
        "id": sha,
        "message": message,
        "timestamp": "2024-05-01T12:00:00+02:00",
        "url": f"https://{kind}.example.com/{repo}/commit/{sha}",
        "author": {"name": author[0], "email": author[1], "username": author[0].split()[0].lower()},
        "committer": {"name": author[0], "email": author[1], "username": author[0].split()[0].lower()},
        "added": [],
        "removed": [],
        "modified": ["index.html"],
    }
    if kind == "gitlab":
        namespace, _, name = repo.rpartition("/")
        project = _gitlab_project({"full_name": repo, "private": True, "default_branch": "main"}, 300)
        return {
            "object_kind": "tag_push" if ref.startswith("refs/tags/") else "push",
            "event_name": "tag_push" if ref.startswith("refs/tags/") else "push",
            "before": before,
            "after": after,
            "ref": ref,
            "ref_protected": True,
            "checkout_sha": None if deleted else sha,
            "user_id": 4,
            "user_name": author[0],
            "user_username": author[0].split()[0].lower(),
            "user_email": "",
            "project_id": 300,
            "project": {
                **project,
                "git_http_url": project["http_url_to_repo"],
                "git_ssh_url": project["ssh_url_to_repo"],
            },
            "commits": [] if deleted else [{k: v for k, v in commit.items() if k != "committer"}],
            "total_commits_count": 0 if deleted else 1,
            "repository": {"name": name, "url": project["ssh_url_to_repo"], "homepage": project["web_url"]},
        }
    body: dict[str, Any] = {
        "ref": ref,
        "before": before,
        "after": after,
        "compare_url"
        if kind == "gitea"
        else "compare": f"https://{kind}.example.com/{repo}/compare/{before[:12]}...{after[:12]}",
        "commits": [] if deleted else [commit],
        "head_commit": None if deleted else commit,
        "repository": _repository(kind, repo),
        "pusher": {"name": author[0], "email": author[1]},
        "sender": {"login": author[0].split()[0].lower(), "id": 5},
    }
    if kind == "github":
        body.update(
            {"created": before == zero and not deleted, "deleted": deleted, "forced": False, "base_ref": None}
        )
        body["installation"] = {"id": 77, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNzc="}
    else:
        body["total_commits"] = 0 if deleted else 1
    return body


def pull_request_payload(
    kind: str,
    repo: str,
    *,
    action: str,
    number: int,
    head_sha: str,
    head_ref: str = "feature/login",
    title: str = "Add a login page",
    merged: bool = False,
    fork: str | None = None,
    fork_deleted: bool = False,
) -> dict[str, Any]:
    """The body of a pull (merge) request event; ``action`` is opened | synchronize | reopened | closed (or
    any provider word, passed through). The head is in ``repo`` itself unless ``fork`` names the fork it
    comes from; ``fork_deleted`` sends what GitHub sends once the fork is gone (no head repository)."""
    if kind == "gitlab":
        words = {
            "opened": "open",
            "reopened": "reopen",
            "synchronize": "update",
            "closed": "merge" if merged else "close",
        }
        project = _gitlab_project({"full_name": repo, "private": True, "default_branch": "main"}, 300)
        source = project
        if fork is not None:
            source = _gitlab_project({"full_name": fork, "private": False, "default_branch": "main"}, FORK_ID)
        attrs: dict[str, Any] = {
            "id": 9000 + number,
            "iid": number,
            "title": title,
            "description": "",
            "state": {"closed": "merged" if merged else "closed"}.get(action, "opened"),
            "action": words.get(action, action),
            "source_branch": head_ref,
            "target_branch": "main",
            "source_project_id": None if fork_deleted else source["id"],
            "target_project_id": 300,
            "merge_status": "can_be_merged",
            "url": f"https://gitlab.example.com/{repo}/-/merge_requests/{number}",
            "last_commit": {
                "id": head_sha,
                "message": title,
                "title": title,
                "timestamp": "2024-05-01T12:00:00+02:00",
                "author": {"name": "Ada Lovelace", "email": "ada@example.com"},
            },
            "source": None if fork_deleted else source,
            "target": project,
        }
        if action == "synchronize":
            attrs["oldrev"] = hashlib.sha1(head_sha.encode()).hexdigest()
        return {
            "object_kind": "merge_request",
            "event_type": "merge_request",
            "user": {"id": 1, "name": "Ada Lovelace", "username": "ada"},
            "project": project,
            "object_attributes": attrs,
            "repository": {"name": repo.rpartition("/")[2], "url": project["ssh_url_to_repo"]},
            "labels": [],
            "changes": {},
        }
    repository = _repository(kind, repo)
    head_repository = repository if fork is None else _repository(kind, fork, FORK_ID)
    word = "synchronized" if (kind == "gitea" and action == "synchronize") else action
    pull = {
        "id": 8000 + number,
        "number": number,
        "state": "closed" if action == "closed" else "open",
        "title": title,
        "body": "",
        "merged": merged,
        "html_url": f"https://{kind}.example.com/{repo}/pull/{number}",
        "head": {
            "label": f"{(fork or repo).split('/')[0]}:{head_ref}",
            "ref": head_ref,
            "sha": head_sha,
            "repo": None if fork_deleted else head_repository,
        },
        "base": {"label": "acme:main", "ref": "main", "sha": "f" * 40, "repo": repository},
        "user": {"login": "ada", "id": 5},
    }
    if kind == "gitea":
        pull["index"] = number
    body = {
        "action": word,
        "number": number,
        "pull_request": pull,
        "repository": repository,
        "sender": {"login": "ada", "id": 5},
    }
    if kind == "github":
        body["installation"] = {"id": 77}
    return body


def ping_payload(kind: str, repo: str | None = "acme/web") -> dict[str, Any]:
    """GitHub's ping on hook creation (sent for App webhooks without a repository)."""
    body: dict[str, Any] = {
        "zen": "Design for failure.",
        "hook_id": 292430182,
        "hook": {
            "type": "App" if repo is None else "Repository",
            "id": 292430182,
            "active": True,
            "events": ["push", "pull_request"],
        },
    }
    if repo is not None:
        body["repository"] = _repository(kind, repo)
    return body
