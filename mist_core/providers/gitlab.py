"""GitLab (gitlab.com or self-managed) through a personal, group or project access token: projects, branches,
commit statuses and merge request notes over the v4 REST API."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from . import Branch, CommitState, ProviderError, ProviderKind, Repo, TokenClient

__all__ = ["GitLab"]

# GitLab's status words; an error of Mist's own (not the app's) is still a failed pipeline to GitLab.
_STATES = {"pending": "pending", "success": "success", "failure": "failed", "error": "failed"}


class GitLab(TokenClient):
    kind: ClassVar[ProviderKind] = "gitlab"
    label: ClassVar[str] = "GitLab"
    nested_paths: ClassVar[bool] = True

    api_path: ClassVar[str] = "/api/v4"

    async def _auth_headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self._token}

    def _next_page(
        self, response: httpx.Response, path: str, params: dict[str, str | int]
    ) -> tuple[str, dict[str, str | int] | None] | None:
        # GitLab says which page comes next in a header of its own (and leaves it empty on the last one).
        following = response.headers.get("x-next-page", "").strip()
        if not following:
            return None
        if not following.isdigit():
            raise ProviderError(f"GitLab gave a next page that is not a number: {following[:40]!r}")
        return path, {**params, "page": int(following)}

    async def repos(self) -> list[Repo]:
        raw = await self._paginate("/projects", {"membership": "true", "per_page": self.per_page})
        return [_repo(item) for item in raw]

    async def branches(self, repo: str) -> list[Branch]:
        raw = await self._paginate(f"{self._project(repo)}/repository/branches", {"per_page": self.per_page})
        return [_branch(item) for item in raw]

    async def clone_credentials(self, repo: str) -> tuple[str, str]:
        self._check_repo(repo)
        # GitLab takes any username with a token over https; "oauth2" is the one its documentation names.
        return "oauth2", self._token

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
        path = f"{self._project(repo)}/statuses/{self._check_sha(sha)}"
        body: dict[str, Any] = {
            "state": _STATES[self._check_state(state)],
            "description": self._status_description(description),
            "name": context,
        }
        if self._check_target_url(target_url):
            body["target_url"] = target_url
        await self._request("POST", path, json_body=body)

    async def comment(self, repo: str, number: int, body: str, *, comment_id: int | None = None) -> int:
        notes = (
            f"{self._project(repo)}/merge_requests/{self._check_number(number, 'merge request number')}/notes"
        )
        text = self._check_body(body)
        if comment_id is None:
            response = await self._request("POST", notes, json_body={"body": text})
            return self._returned_id(response, "POST")
        self._check_number(comment_id, "note id")
        response = await self._request("PUT", f"{notes}/{comment_id}", json_body={"body": text})
        return self._returned_id(response, "PUT")

    def _project(self, repo: str) -> str:
        # A project is named by its URL-encoded full path: "group/sub/name" -> "group%2Fsub%2Fname".
        return f"/projects/{quote(self._check_repo(repo), safe='')}"


def _repo(item: Any) -> Repo:
    if not isinstance(item, dict) or not isinstance(item.get("path_with_namespace"), str):
        raise ProviderError("GitLab listed a project without a path_with_namespace")
    return Repo(
        full_name=item["path_with_namespace"],
        clone_url=str(item.get("http_url_to_repo") or ""),
        ssh_url=str(item.get("ssh_url_to_repo") or ""),
        default_branch=item.get("default_branch") or None,
        private=item.get("visibility") != "public",
    )


def _branch(item: Any) -> Branch:
    commit = item.get("commit") if isinstance(item, dict) else None
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(commit, dict):
        raise ProviderError("GitLab listed a branch without a name or commit")
    return Branch(name=item["name"], sha=str(commit.get("id") or ""))
