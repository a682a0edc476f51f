"""Gitea and Forgejo through an access token: repositories, branches, commit statuses and pull request
comments over the v1 REST API."""

from __future__ import annotations

from typing import Any, ClassVar

from . import Branch, GitHubStyle, ProviderError, ProviderKind, Repo, TokenClient

__all__ = ["Gitea"]


class Gitea(TokenClient, GitHubStyle):
    kind: ClassVar[ProviderKind] = "gitea"
    label: ClassVar[str] = "Gitea"
    # Gitea's default ceiling on page size (MAX_RESPONSE_ITEMS); asking for more returns this many anyway.
    per_page: ClassVar[int] = 50

    api_path: ClassVar[str] = "/api/v1"
    token_forbidden: ClassVar[str] = "\r\n "

    async def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self._token}"}

    async def repos(self) -> list[Repo]:
        raw = await self._paginate("/user/repos", {"limit": self.per_page})
        return [_repo(item) for item in raw]

    async def branches(self, repo: str) -> list[Branch]:
        raw = await self._paginate(f"{self._repo_path(repo)}/branches", {"limit": self.per_page})
        return [_branch(item) for item in raw]

    async def clone_credentials(self, repo: str) -> tuple[str, str]:
        self._check_repo(repo)
        # Gitea checks the token, not the username, on an https clone.
        return "mist", self._token


def _repo(item: Any) -> Repo:
    if not isinstance(item, dict) or not isinstance(item.get("full_name"), str):
        raise ProviderError("Gitea listed a repository without a full_name")
    return Repo(
        full_name=item["full_name"],
        clone_url=str(item.get("clone_url") or ""),
        ssh_url=str(item.get("ssh_url") or ""),
        default_branch=(item.get("default_branch") or None) if not item.get("empty") else None,
        private=bool(item.get("private")),
    )


def _branch(item: Any) -> Branch:
    commit = item.get("commit") if isinstance(item, dict) else None
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(commit, dict):
        raise ProviderError("Gitea listed a branch without a name or commit")
    return Branch(name=item["name"], sha=str(commit.get("id") or ""))
