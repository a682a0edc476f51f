"""GitHub through a GitHub App: the App signs a short JWT with its private key, trades it for an installation
access token, and uses that token for repositories, branches, commit statuses, comments and cloning. Also
the manifest flow that creates the App on GitHub from a manifest Mist builds."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ..errors import InvalidInput
from . import (
    Branch,
    GitHubStyle,
    ProviderError,
    ProviderKind,
    Repo,
    _check_api_url,
    _describe_refusal,
)

__all__ = [
    "AppCredentials",
    "GitHubApp",
    "Installation",
    "build_manifest",
    "convert_manifest",
    "manifest_form",
]

GITHUB_API = "https://api.github.com"
GITHUB_WEB = "https://github.com"
API_VERSION = "2022-11-28"

# GitHub accepts an App JWT that lives at most 10 minutes; 9 leaves room for clock drift, and an `iat` set
# a minute back covers a server clock running ahead of GitHub's.
JWT_BACKDATE = 60
JWT_LIFETIME = 9 * 60
# An installation token is used until this many seconds before it expires, so a clone or a status update
# that starts with it does not see it run out halfway.
TOKEN_MARGIN = 60
# GitHub's own limit on an App's name.
MAX_APP_NAME = 34

_MANIFEST_CODE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_ORGANIZATION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


@dataclass(frozen=True)
class Installation:
    """One account (user or organization) that installed the App."""

    id: int
    account: str
    target_type: str  # "User" or "Organization"
    repository_selection: str  # "all" or "selected"


@dataclass(frozen=True)
class AppCredentials:
    """What GitHub hands back once an App is created from a manifest. Secrets stay out of the repr."""

    id: int
    slug: str
    pem: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)
    html_url: str


class GitHubApp(GitHubStyle):
    """A GitHub App, acting through one of its installations (``installation_id``) for repository calls."""

    kind: ClassVar[ProviderKind] = "github"
    label: ClassVar[str] = "GitHub"

    def __init__(
        self,
        app_id: int,
        private_key_pem: str,
        installation_id: int | None,
        api_url: str = GITHUB_API,
        *,
        timeout: float = 15.0,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(app_id, bool) or not isinstance(app_id, int) or app_id < 1:
            raise InvalidInput(
                f"{app_id!r} is not a GitHub App id; it is the number on the App's page", field="app_id"
            )
        if installation_id is not None and (
            isinstance(installation_id, bool) or not isinstance(installation_id, int) or installation_id < 1
        ):
            raise InvalidInput(f"{installation_id!r} is not an installation id", field="installation_id")
        self.app_id = app_id
        self.installation_id = installation_id
        self._key = _load_private_key(private_key_pem)
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (token, expires at, epoch seconds)
        self._token_lock = asyncio.Lock()
        super().__init__(
            api_url,
            timeout=timeout,
            verify=verify,
            transport=transport,
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION},
        )

    def __repr__(self) -> str:
        return f"GitHubApp(app_id={self.app_id}, installation_id={self.installation_id}, api_url={self.api_url!r})"

    # --- authentication -------------------------------------------------------------------------------

    def app_jwt(self) -> str:
        """A JWT that authenticates as the App itself (RS256, valid for 9 minutes)."""
        now = int(self._clock())
        claims = {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": str(self.app_id)}
        return jwt.encode(claims, self._key, algorithm="RS256")

    async def installations(self) -> list[Installation]:
        """Every account the App is installed on."""
        raw = await self._paginate(
            "/app/installations", {"per_page": self.per_page}, headers=self._app_headers()
        )
        found: list[Installation] = []
        for item in raw:
            account = item.get("account") if isinstance(item, dict) else None
            ident = item.get("id") if isinstance(item, dict) else None
            if not isinstance(ident, int) or not isinstance(account, dict):
                raise ProviderError("GitHub listed an installation without an id or account")
            found.append(
                Installation(
                    id=ident,
                    account=str(account.get("login") or account.get("slug") or account.get("name") or ident),
                    target_type=str(item.get("target_type") or account.get("type") or ""),
                    repository_selection=str(item.get("repository_selection") or ""),
                )
            )
        return found

    async def installation_token(self) -> str:
        """The installation access token, minted on first use and again when it is about to expire."""
        installation = self._require_installation()
        async with self._token_lock:
            if self._token is not None and self._clock() < self._token[1] - TOKEN_MARGIN:
                return self._token[0]
            response = await self._request(
                "POST",
                f"/app/installations/{installation}/access_tokens",
                headers=self._app_headers(),
            )
            data = self._json(response, "POST", "an installation token")
            token = data.get("token") if isinstance(data, dict) else None
            expires = data.get("expires_at") if isinstance(data, dict) else None
            if not isinstance(token, str) or not token or not isinstance(expires, str):
                raise ProviderError(
                    "GitHub answered the installation token request without token and expires_at"
                )
            try:
                expires_at = datetime.fromisoformat(expires).timestamp()
            except ValueError:
                raise ProviderError(
                    f"GitHub gave an installation token expiry that is not a time: {expires!r}"
                ) from None
            self._token = (token, expires_at)
            return token

    def forget_token(self) -> None:
        """Drop the cached installation token (after GitHub said it was revoked, say)."""
        self._token = None

    async def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.installation_token()}"}

    def _app_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.app_jwt()}"}

    def _require_installation(self) -> int:
        if self.installation_id is None:
            raise InvalidInput(
                f"the GitHub App {self.app_id} has no installation chosen; install it on an account, then "
                "pick one of the installations it lists",
                field="installation_id",
            )
        return self.installation_id

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await super()._request(method, url, **kwargs)
        except ProviderError as exc:
            # A revoked or expired token must not stay cached: the next call mints a fresh one.
            if exc.extra.get("provider_status") == 401 and kwargs.get("headers") is None:
                self.forget_token()
            raise

    # --- repositories ---------------------------------------------------------------------------------

    async def repos(self) -> list[Repo]:
        raw = await self._paginate(
            "/installation/repositories", {"per_page": self.per_page}, items_key="repositories"
        )
        return [_repo(item) for item in raw]

    async def branches(self, repo: str) -> list[Branch]:
        raw = await self._paginate(f"{self._repo_path(repo)}/branches", {"per_page": self.per_page})
        return [_branch(item) for item in raw]

    async def clone_credentials(self, repo: str) -> tuple[str, str]:
        self._check_repo(repo)
        return "x-access-token", await self.installation_token()


# --- the manifest flow ----------------------------------------------------------------------------------


def build_manifest(name: str, mist_url: str, webhook_url: str, callback_url: str) -> dict[str, Any]:
    """The GitHub App manifest for this Mist: webhook, redirect back, and the permissions Mist uses."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_APP_NAME:
        raise InvalidInput(
            f"{name!r} cannot be a GitHub App name; give 1 to {MAX_APP_NAME} characters", field="name"
        )
    for what, url in (("mist_url", mist_url), ("webhook_url", webhook_url), ("callback_url", callback_url)):
        _check_web_url(url, what)
    return {
        "name": name.strip(),
        "url": mist_url,
        "hook_attributes": {"url": webhook_url, "active": True},
        "redirect_url": callback_url,
        "callback_urls": [callback_url],
        "public": False,
        "default_permissions": {
            "contents": "read",
            "metadata": "read",
            "statuses": "write",
            "pull_requests": "write",
            "issues": "write",
        },
        "default_events": ["push", "pull_request"],
    }


def manifest_form(
    github_url: str, manifest: dict[str, Any], state: str, *, organization: str | None = None
) -> str:
    """An HTML page whose form posts ``manifest`` to GitHub's "new App" page at once (or on a click, without
    JavaScript). ``state`` comes back with the redirect; check it there. ``organization`` makes the App
    belong to that organization instead of the signed-in user."""
    base = _check_web_url(github_url, "github_url").rstrip("/")
    if not isinstance(state, str) or not state:
        raise InvalidInput("the manifest flow needs a state value to check on the way back", field="state")
    if organization is not None:
        if not _ORGANIZATION.match(organization):
            raise InvalidInput(f"{organization!r} is not a GitHub organization name", field="organization")
        action = f"{base}/organizations/{organization}/settings/apps/new"
    else:
        action = f"{base}/settings/apps/new"
    action += f"?state={quote(state, safe='')}"
    value = html.escape(json.dumps(manifest, separators=(",", ":")), quote=True)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8"><title>Create the GitHub App for Mist</title></head>\n'
        "<body>\n"
        f'<form id="manifest" method="post" action="{html.escape(action, quote=True)}">\n'
        f'<input type="hidden" name="manifest" value="{value}">\n'
        "<p>Mist is sending you to GitHub to create its App.</p>\n"
        '<button type="submit">Continue to GitHub</button>\n'
        "</form>\n"
        '<script>document.getElementById("manifest").submit();</script>\n'
        "</body></html>\n"
    )


async def convert_manifest(
    code: str,
    api_url: str = GITHUB_API,
    *,
    timeout: float = 15.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AppCredentials:
    """Trade the code GitHub put in the manifest redirect for the new App's id, key and secrets (once: the
    code is single-use and lasts an hour)."""
    if not isinstance(code, str) or not _MANIFEST_CODE.match(code):
        raise InvalidInput(
            "the code in GitHub's redirect is missing or malformed; start the App creation again",
            field="code",
        )
    base = _check_api_url(api_url, "GitHub")
    path = f"/app-manifests/{code}/conversions"
    async with httpx.AsyncClient(
        base_url=base,
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
        headers={
            "User-Agent": "Mist",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        },
    ) as http:
        try:
            response = await http.post(path)
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"GitHub at {base} cannot be reached ({type(exc).__name__}: {exc}); check the address"
            ) from None
    if response.status_code != 201:
        raise ProviderError(
            _describe_refusal("GitHub", "POST", "/app-manifests/…/conversions", response)
            + "; the code is single-use and lasts an hour, so start the App creation again",
            provider_status=response.status_code,
        )
    try:
        data = response.json()
        creds = AppCredentials(
            id=_field(data, "id", int),
            slug=_field(data, "slug", str),
            pem=_field(data, "pem", str),
            webhook_secret=_field(data, "webhook_secret", str),
            client_id=_field(data, "client_id", str),
            client_secret=_field(data, "client_secret", str),
            html_url=_field(data, "html_url", str),
        )
    except ValueError:
        raise ProviderError(
            "GitHub answered the manifest conversion with something that is not JSON"
        ) from None
    except KeyError as exc:
        raise ProviderError(
            f"GitHub's answer to the manifest conversion has no usable {exc.args[0]!r}"
        ) from None
    try:
        _load_private_key(creds.pem)  # a key we cannot use is better refused now than at the first token
    except InvalidInput as exc:
        raise ProviderError(
            f"GitHub's answer to the manifest conversion has an unusable key: {exc.message}"
        ) from None
    return creds


# --- helpers --------------------------------------------------------------------------------------------


def _load_private_key(pem: str) -> RSAPrivateKey:
    try:
        key = load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"the GitHub App private key is not a readable PEM key ({exc}); paste the whole .pem file GitHub "
            "generated, BEGIN and END lines included",
            field="private_key",
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise InvalidInput(
            "the GitHub App private key must be an RSA key (GitHub generates RSA keys)", field="private_key"
        )
    return key


def _check_web_url(url: str, what: str) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise InvalidInput(f"{url!r} is not a usable {what}; give an http(s) URL with a host", field=what)
    return url


def _field(data: Any, key: str, kind: type) -> Any:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise KeyError(key)
    return value


def _repo(item: Any) -> Repo:
    if not isinstance(item, dict) or not isinstance(item.get("full_name"), str):
        raise ProviderError("GitHub listed a repository without a full_name")
    return Repo(
        full_name=item["full_name"],
        clone_url=str(item.get("clone_url") or ""),
        ssh_url=str(item.get("ssh_url") or ""),
        default_branch=item.get("default_branch") or None,
        private=bool(item.get("private")),
    )


def _branch(item: Any) -> Branch:
    commit = item.get("commit") if isinstance(item, dict) else None
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(commit, dict):
        raise ProviderError("GitHub listed a branch without a name or commit")
    return Branch(name=item["name"], sha=str(commit.get("sha") or ""))
