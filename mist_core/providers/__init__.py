"""Clients of the git hosting services Mist connects to (GitHub Apps, GitLab, Gitea / Forgejo): listing
repositories and branches, clone credentials, commit statuses and pull request comments, all behind one
abstract ``ProviderClient`` so the core does not care which host a repository lives on."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Literal, get_args
from urllib.parse import quote

import httpx

from ..errors import InvalidInput, ProviderError
from ..models import ProviderKind

__all__ = [
    "Branch",
    "CommitState",
    "ProviderClient",
    "ProviderError",
    "ProviderKind",
    "Repo",
]

CommitState = Literal["pending", "success", "failure", "error"]

# The kinds are the API's (models.ProviderKind), so webhooks and the daemon name them without loading this
# package (and httpx with it).
PROVIDER_KINDS: tuple[str, ...] = get_args(ProviderKind)
COMMIT_STATES: tuple[str, ...] = get_args(CommitState)

# GitHub refuses descriptions over 140 characters; the others accept more, but one limit keeps them alike.
MAX_STATUS_DESCRIPTION = 140
# GitHub's limit on a comment body; GitLab and Gitea accept at least as much.
MAX_COMMENT_BODY = 65536
# A bound on how many pages a listing follows, so a provider that always answers "next" cannot loop us.
MAX_PAGES = 50

_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_OWNER_NAME = re.compile(rf"^{_SEGMENT}/{_SEGMENT}$")
_NESTED_PATH = re.compile(rf"^{_SEGMENT}(/{_SEGMENT})+$")
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class Repo:
    full_name: str  # "owner/name" (GitLab: the full path, groups included)
    clone_url: str  # https
    ssh_url: str
    default_branch: str | None  # None for an empty repository
    private: bool


@dataclass(frozen=True)
class Branch:
    name: str
    sha: str


class ProviderClient(ABC):
    """One account or installation on one git provider, spoken to over its REST API.

    Subclasses say how requests are authenticated and where each endpoint is; this base class owns the HTTP
    client, error reporting and pagination. Use ``async with`` or call ``close()``.
    """

    kind: ClassVar[ProviderKind]
    label: ClassVar[str]  # the provider's name in messages: "GitHub"
    per_page: ClassVar[int] = 100
    nested_paths: ClassVar[bool] = False  # GitLab groups nest; GitHub and Gitea have owner/name only

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = 15.0,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.api_url = _check_api_url(api_url, self.label)
        self.timeout = timeout
        self._origin = httpx.URL(self.api_url).copy_with(path="/", query=None)
        self._http = httpx.AsyncClient(
            base_url=self.api_url,
            timeout=timeout,
            verify=verify,
            transport=transport,
            # A redirect could carry our token to another host; providers do not redirect API calls.
            follow_redirects=False,
            headers={"User-Agent": "Mist", **(headers or {})},
        )

    def __repr__(self) -> str:
        # Never the token: reprs end up in logs and tracebacks.
        return f"{type(self).__name__}(api_url={self.api_url!r})"

    async def __aenter__(self) -> ProviderClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- the interface --------------------------------------------------------------------------------

    @abstractmethod
    async def repos(self) -> list[Repo]:
        """Every repository the credentials can see."""

    @abstractmethod
    async def branches(self, repo: str) -> list[Branch]:
        """Every branch of ``repo`` with the sha it points at."""

    @abstractmethod
    async def clone_credentials(self, repo: str) -> tuple[str, str]:
        """(username, token) to clone ``repo`` over https."""

    @abstractmethod
    async def set_status(
        self,
        repo: str,
        sha: str,
        state: CommitState,
        *,
        target_url: str | None,
        description: str,
        context: str = "mist",
    ) -> None:
        """Set the commit status named ``context`` on ``sha``: pending, success, failure or error."""

    @abstractmethod
    async def comment(self, repo: str, number: int, body: str, *, comment_id: int | None = None) -> int:
        """Comment on pull (merge) request ``number``, or edit comment ``comment_id``; returns the comment id."""

    async def close(self) -> None:
        await self._http.aclose()

    # --- shared plumbing ------------------------------------------------------------------------------

    @abstractmethod
    async def _auth_headers(self) -> dict[str, str]:
        """The headers that authenticate an ordinary API call."""

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One API call; any failure becomes a ``ProviderError`` that says what the provider answered."""
        auth = dict(headers) if headers is not None else await self._auth_headers()
        shown = httpx.URL(url).path if url.startswith(("http://", "https://")) else url.split("?")[0]
        try:
            response = await self._http.request(method, url, params=params, json=json_body, headers=auth)
        except httpx.TimeoutException:
            raise ProviderError(
                f"{self.label} at {self.api_url} did not answer {method} {shown} within {self.timeout:g} s; "
                "try again later or check that the address is right"
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"{self.label} at {self.api_url} cannot be reached ({type(exc).__name__}: {exc}); "
                "check the address and that this server can reach it"
            ) from None
        if response.status_code >= 400:
            raise ProviderError(
                _describe_refusal(self.label, method, shown, response), provider_status=response.status_code
            )
        if 300 <= response.status_code < 400:
            raise ProviderError(
                f"{self.label} answered {method} {shown} with a redirect ({response.status_code}) to "
                f"{response.headers.get('location', '?')}; use the API address it points at",
                provider_status=response.status_code,
            )
        return response

    def _json(self, response: httpx.Response, method: str, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ProviderError(
                f"{self.label} answered {method} {response.request.url.path} with something that is not JSON "
                f"({what} expected); is {self.api_url} the API address?"
            ) from None

    async def _paginate(
        self,
        path: str,
        params: Mapping[str, str | int],
        *,
        items_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[Any]:
        """Every item of a listing, following the provider's next-page pointers up to ``MAX_PAGES``."""
        items: list[Any] = []
        url: str = path
        query: dict[str, str | int] | None = dict(params)
        for _ in range(MAX_PAGES):
            response = await self._request("GET", url, params=query, headers=headers)
            data = self._json(response, "GET", "a list")
            page = data.get(items_key) if items_key and isinstance(data, dict) else data
            if not isinstance(page, list):
                raise ProviderError(
                    f"{self.label} answered GET {response.request.url.path} with "
                    f"{type(data).__name__} where a list was expected"
                )
            items.extend(page)
            following = self._next_page(response, path, dict(params))
            if following is None:
                break
            url, query = following
        return items

    def _next_page(
        self, response: httpx.Response, path: str, params: dict[str, str | int]
    ) -> tuple[str, dict[str, str | int] | None] | None:
        """Where the next page is, from the RFC 8288 ``Link`` header (GitHub, Gitea). GitLab overrides."""
        link = response.links.get("next", {}).get("url")
        if not link:
            return None
        target = httpx.URL(link)
        if not target.is_absolute_url:
            target = self._origin.join(link)
        # Our token goes with the next request: only ever to the host it was configured for.
        if (target.scheme, target.host, target.port) != (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        ):
            raise ProviderError(
                f"{self.label} pointed the next page of {path} at another host ({target.host}); "
                "Mist does not send credentials there"
            )
        return str(target), None

    # --- argument checks shared by every provider -----------------------------------------------------

    def _check_repo(self, repo: str) -> str:
        pattern = _NESTED_PATH if self.nested_paths else _OWNER_NAME
        if (
            not isinstance(repo, str)
            or not pattern.match(repo)
            or any(part in {".", ".."} or part.endswith(".") for part in repo.split("/"))
        ):
            shape = "group/name (groups may nest)" if self.nested_paths else "owner/name"
            raise InvalidInput(
                f"{repo!r} is not a {self.label} repository name; write it as {shape}", field="repo"
            )
        return repo

    @staticmethod
    def _check_sha(sha: str) -> str:
        if not isinstance(sha, str) or not _SHA.match(sha.lower()):
            raise InvalidInput(
                f"{sha!r} is not a full commit sha; give all 40 (or 64) hexadecimal digits", field="sha"
            )
        return sha.lower()

    @staticmethod
    def _check_state(state: str) -> str:
        if state not in COMMIT_STATES:
            raise InvalidInput(
                f"{state!r} is not a commit status; use one of {', '.join(COMMIT_STATES)}", field="state"
            )
        return state

    @staticmethod
    def _check_number(number: int, what: str = "pull request number") -> int:
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise InvalidInput(f"{number!r} is not a {what}; give a positive whole number", field="number")
        return number

    @staticmethod
    def _check_body(body: str) -> str:
        if not isinstance(body, str) or not body.strip():
            raise InvalidInput("a comment needs some text", field="body")
        if len(body) > MAX_COMMENT_BODY:
            raise InvalidInput(
                f"a comment is at most {MAX_COMMENT_BODY} characters; this one has {len(body)}", field="body"
            )
        return body

    @staticmethod
    def _check_target_url(target_url: str | None) -> str | None:
        if target_url is None:
            return None
        if not isinstance(target_url, str) or not target_url.startswith(("https://", "http://")):
            raise InvalidInput(
                f"{target_url!r} is not a link a provider accepts; give an http(s) URL", field="target_url"
            )
        return target_url

    @staticmethod
    def _status_description(description: str) -> str:
        text = " ".join(str(description).split())
        if len(text) > MAX_STATUS_DESCRIPTION:
            text = text[: MAX_STATUS_DESCRIPTION - 1] + "…"
        return text

    def _returned_id(self, response: httpx.Response, method: str) -> int:
        data = self._json(response, method, "an object with an id")
        ident = data.get("id") if isinstance(data, dict) else None
        if isinstance(ident, bool) or not isinstance(ident, int):
            raise ProviderError(
                f"{self.label} answered {method} {response.request.url.path} without a numeric id"
            )
        return ident


def _check_api_url(url: str, label: str) -> str:
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise InvalidInput(f"{url!r} is not a {label} address; give an http(s) URL", field="api_url")
    parsed = httpx.URL(url)
    if not parsed.host or parsed.userinfo or parsed.query or parsed.fragment:
        raise InvalidInput(
            f"{url!r} is not a {label} address; give scheme, host and path only (no credentials or query)",
            field="api_url",
        )
    return url.rstrip("/")


_HINTS = {
    401: "check the token (or the App's private key and id)",
    403: "the credentials lack a permission this needs, or a rate limit was hit",
    404: "check the repository name and that the credentials can see it",
    422: "the provider refused the values sent",
}


def _describe_refusal(label: str, method: str, path: str, response: httpx.Response) -> str:
    said = ""
    try:
        data = response.json()
    except ValueError:
        said = response.text.strip()
    else:
        if isinstance(data, dict):
            found = data.get("message") or data.get("error") or data.get("error_description")
            said = found if isinstance(found, str) else json.dumps(found if found is not None else data)
        else:
            said = json.dumps(data)
    said = " ".join(said.split())[:300]
    reason = response.reason_phrase or ""
    message = f"{label} answered {method} {path} with {response.status_code} {reason}".rstrip()
    if said:
        message += f": {said}"
    hint = _HINTS.get(response.status_code)
    if hint:
        message += f" ({hint})"
    return message


class GitHubStyle(ProviderClient):
    """The calls GitHub and Gitea (Forgejo) answer alike: commit statuses and pull request comments under
    ``/repos/{owner}/{name}``, with Mist's own words for the states."""

    async def set_status(
        self,
        repo: str,
        sha: str,
        state: CommitState,
        *,
        target_url: str | None,
        description: str,
        context: str = "mist",
    ) -> None:
        path = f"{self._repo_path(repo)}/statuses/{self._check_sha(sha)}"
        body: dict[str, Any] = {
            "state": self._check_state(state),  # Mist's words are theirs: pending|success|failure|error
            "description": self._status_description(description),
            "context": context,
        }
        if self._check_target_url(target_url):
            body["target_url"] = target_url
        await self._request("POST", path, json_body=body)

    async def comment(self, repo: str, number: int, body: str, *, comment_id: int | None = None) -> int:
        base = self._repo_path(repo)
        self._check_number(number)
        text = self._check_body(body)
        if comment_id is None:
            response = await self._request(
                "POST", f"{base}/issues/{number}/comments", json_body={"body": text}
            )
            return self._returned_id(response, "POST")
        self._check_number(comment_id, "comment id")
        response = await self._request(
            "PATCH", f"{base}/issues/comments/{comment_id}", json_body={"body": text}
        )
        return self._returned_id(response, "PATCH")

    def _repo_path(self, repo: str) -> str:
        owner, name = self._check_repo(repo).split("/")
        return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


class TokenClient(ProviderClient):
    """A provider reached with one access token (GitLab, Gitea): the API lives at ``base_url + api_path``."""

    api_path: ClassVar[str]
    token_forbidden: ClassVar[str] = "\r\n"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 15.0,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(token, str) or not token.strip() or any(c in token for c in self.token_forbidden):
            raise InvalidInput(
                f"the {self.label} access token is empty or malformed; paste it again", field="token"
            )
        self._token = token.strip()
        super().__init__(
            base_url.rstrip("/").removesuffix(self.api_path) + self.api_path
            if isinstance(base_url, str)
            else base_url,
            timeout=timeout,
            verify=verify,
            transport=transport,
        )
        self.base_url = self.api_url.removesuffix(self.api_path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"
