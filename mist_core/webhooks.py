"""Checking and reading the webhook deliveries GitHub, GitLab and Gitea send: signature (or secret token)
verification in constant time, and a provider-neutral ``WebhookEvent`` for pushes and pull requests.
Pure functions of headers and body: no I/O, no clock; remembering delivery ids is the caller's job.

A signed delivery is trusted to come from the git host, not to hold safe values: its refs are written by
whoever pushed or opened the pull request, so they pass the same checks as refs a user types, and its JSON is
read only when it is nested no deeper than a provider ever nests it."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, get_args

from . import validate
from .errors import InvalidInput, WebhookRefused
from .models import ProviderKind

__all__ = [
    "MAX_BODY",
    "MAX_DEPTH",
    "WebhookEvent",
    "WebhookMalformed",
    "WebhookRefused",
    "WebhookTooLarge",
    "parse",
    "verify",
]

MAX_BODY = 1024 * 1024
# Providers nest their payloads about six levels deep. Python's JSON reader recurses once per level, and a
# few thousand levels (a few kilobytes of brackets) exhaust its stack, so deeper bodies are refused unread.
MAX_DEPTH = 64

_LABELS = {"github": "GitHub", "gitlab": "GitLab", "gitea": "Gitea"}
_ZERO_SHA = re.compile(r"^0+$")
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
_DELIVERY_ID = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces: it is stored and shown
_EVENT_NAME_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
# A JSON string, escapes included (possessive, so a string left open costs one pass, not a backtrack).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_OPENING = b"[{"
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")

# Headers in the order they are tried. Forgejo sends its own names beside Gitea's; Gitea also sends
# GitHub's, which is the last resort for the event name and delivery id but never for the signature.
_EVENT_HEADERS = {
    "github": ("x-github-event",),
    "gitlab": ("x-gitlab-event",),
    "gitea": ("x-gitea-event", "x-forgejo-event", "x-gogs-event", "x-github-event"),
}
_DELIVERY_HEADERS = {
    "github": ("x-github-delivery",),
    # Idempotency-Key stays the same when GitLab retries a delivery, which is what replay checks want.
    "gitlab": ("idempotency-key", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid"),
    "gitea": ("x-gitea-delivery", "x-forgejo-delivery", "x-gogs-delivery", "x-github-delivery"),
}

_PR_ACTIONS = {
    "opened": "opened",
    "reopened": "reopened",
    "closed": "closed",
    "synchronize": "synchronize",
    "synchronized": "synchronize",  # Gitea's word for new commits on the head branch
}
_GITLAB_MR_ACTIONS = {"open": "opened", "reopen": "reopened", "close": "closed", "merge": "closed"}


class WebhookMalformed(WebhookRefused):
    """A delivery whose headers or JSON body are not what the provider sends."""

    code: ClassVar[str] = "webhook_malformed"
    status: ClassVar[int] = 400


class WebhookTooLarge(WebhookRefused):
    """A delivery body over ``MAX_BODY``."""

    code: ClassVar[str] = "webhook_too_large"
    status: ClassVar[int] = 413


@dataclass(frozen=True)
class WebhookEvent:
    """One delivery, read the same way whichever provider sent it.

    ``event`` is "push", "pull_request", "ping" or "other:<provider's name>". Push fields are set for pushes
    (``sha`` is None when the push deleted the ref), pull request fields for pull (merge) requests, where
    ``action`` is opened | synchronize | reopened | closed | other. Refs (``ref``, ``branch``, ``tag``,
    ``head_ref``) are valid git refs. ``from_fork`` is False only when the payload shows the pull request's
    head in the same repository as its base: a fork's pull request is anyone's code.
    """

    kind: ProviderKind
    delivery_id: str
    event: str
    repo: str | None
    ref: str | None = None
    branch: str | None = None
    tag: str | None = None
    sha: str | None = None
    deleted: bool = False
    message: str | None = None
    author: str | None = None
    action: str | None = None
    number: int | None = None
    head_sha: str | None = None
    head_ref: str | None = None
    merged: bool = False
    title: str | None = None
    from_fork: bool = True


def verify(kind: ProviderKind, headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Raise ``WebhookRefused`` unless the delivery carries the signature (GitHub, Gitea: HMAC-SHA256 of the
    raw body) or the secret token (GitLab) that ``secret`` gives. Returns None when it does."""
    label = _label(kind)
    _check_size(body)
    if not secret:
        raise WebhookRefused(
            f"no webhook secret is set for this {label} connection, so no delivery can be trusted; set one in "
            f"Mist and the same one in {label}'s webhook settings"
        )
    found = _lower(headers)
    if kind == "gitlab":
        token = found.get("x-gitlab-token")
        if token is None:
            raise WebhookRefused(
                "the delivery has no X-Gitlab-Token header; set the secret token in GitLab's webhook settings"
            )
        if not hmac.compare_digest(token.encode("utf-8", "surrogateescape"), secret.encode()):
            raise WebhookRefused("the X-Gitlab-Token does not match this app's webhook secret")
        return
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if kind == "github":
        given = found.get("x-hub-signature-256")
        if given is None:
            raise WebhookRefused(
                "the delivery has no X-Hub-Signature-256 header; set a webhook secret in the GitHub App settings"
            )
        if not given.startswith("sha256="):
            raise WebhookRefused("the X-Hub-Signature-256 header does not start with 'sha256='")
        given = given[len("sha256=") :]
        header = "X-Hub-Signature-256"
    else:
        header, given_or_none = _first(found, ("x-gitea-signature", "x-forgejo-signature"))
        if given_or_none is None:
            raise WebhookRefused(
                "the delivery has no X-Gitea-Signature header; set the secret in the Gitea webhook settings"
            )
        given = given_or_none
    if not _HEX_DIGEST.match(given):
        raise WebhookRefused(f"the {header} header is not a hexadecimal SHA-256 signature")
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise WebhookRefused(f"the {header} signature does not match the body and this app's webhook secret")


def parse(kind: ProviderKind, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
    """Read a (verified) delivery. Anything missing or of the wrong type raises ``WebhookMalformed`` with
    what was wrong; events other than push, pull request and ping come back as "other:<name>"."""
    label = _label(kind)
    _check_size(body)
    found = _lower(headers)
    _, delivery = _first(found, _DELIVERY_HEADERS[kind])
    if delivery is None:
        names = " or ".join(_title(h) for h in _DELIVERY_HEADERS[kind][:2])
        raise WebhookMalformed(f"the {label} delivery has no {names} header to tell it apart from others")
    if not _DELIVERY_ID.match(delivery):
        raise WebhookMalformed(f"the {label} delivery id is not 1 to 200 printable characters")
    _, raw_event = _first(found, _EVENT_HEADERS[kind])
    if not raw_event or not raw_event.strip():
        raise WebhookMalformed(f"the {label} delivery has no {_title(_EVENT_HEADERS[kind][0])} header")
    if _nesting_over(body, MAX_DEPTH):
        raise WebhookMalformed(
            f"the {label} delivery body nests JSON more than {MAX_DEPTH} levels deep; no git host sends "
            "that, so Mist does not read it"
        )
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookMalformed(
            f"the {label} delivery body is not JSON ({exc}); send it as application/json"
        ) from None
    if not isinstance(data, dict):
        raise WebhookMalformed(f"the {label} delivery body is JSON but not an object")
    reader = _Reader(label, raw_event.strip(), data)
    if kind == "github":
        return _github(reader, delivery)
    if kind == "gitlab":
        return _gitlab(reader, delivery)
    return _gitea(reader, delivery)


# --- per provider ---------------------------------------------------------------------------------------


def _github(r: _Reader, delivery: str) -> WebhookEvent:
    event = r.event.lower()
    if event == "ping":
        return WebhookEvent("github", delivery, "ping", r.text("repository", "full_name", required=False))
    if event == "push":
        return _push_like("github", r, delivery, repo=r.text("repository", "full_name"))
    if event == "pull_request":
        return _pull_request_like("github", r, delivery)
    return WebhookEvent("github", delivery, _other(event), r.text("repository", "full_name", required=False))


def _gitea(r: _Reader, delivery: str) -> WebhookEvent:
    event = r.event.lower()
    if event == "ping":
        return WebhookEvent("gitea", delivery, "ping", r.text("repository", "full_name", required=False))
    if event == "push":
        return _push_like("gitea", r, delivery, repo=r.text("repository", "full_name"))
    if event in ("pull_request", "pull_request_sync"):
        return _pull_request_like("gitea", r, delivery)
    return WebhookEvent("gitea", delivery, _other(event), r.text("repository", "full_name", required=False))


def _gitlab(r: _Reader, delivery: str) -> WebhookEvent:
    event = r.event
    if event == "System Hook":
        # Instance-wide hooks name the event in the body only.
        kind = r.text("object_kind", required=False)
        event = {"push": "Push Hook", "tag_push": "Tag Push Hook", "merge_request": "Merge Request Hook"}.get(
            kind or "", kind or event
        )
    if event in ("Push Hook", "Tag Push Hook"):
        return _push_like("gitlab", r, delivery, repo=r.text("project", "path_with_namespace"))
    if event == "Merge Request Hook":
        repo = r.text("project", "path_with_namespace")
        attrs = ("object_attributes",)
        raw_action = r.text(*attrs, "action", required=False) or ""
        action = _GITLAB_MR_ACTIONS.get(raw_action, "other")
        # "update" covers title edits and label changes too; only new commits carry `oldrev`.
        if raw_action == "update" and r.get(*attrs, "oldrev") is not None:
            action = "synchronize"
        state = r.text(*attrs, "state", required=False)
        return WebhookEvent(
            "gitlab",
            delivery,
            "pull_request",
            repo,
            action=action,
            number=r.integer(*attrs, "iid"),
            head_sha=r.sha(*attrs, "last_commit", "id"),
            head_ref=r.ref("the merge request's source branch", *attrs, "source_branch"),
            merged=raw_action == "merge" or state == "merged",
            title=r.text(*attrs, "title", required=False) or "",
            from_fork=not _same_project(
                r.get(*attrs, "source_project_id"), r.get(*attrs, "target_project_id")
            ),
        )
    return WebhookEvent(
        "gitlab", delivery, _other(event), r.text("project", "path_with_namespace", required=False)
    )


def _push_like(kind: ProviderKind, r: _Reader, delivery: str, *, repo: str | None) -> WebhookEvent:
    ref = r.ref("the pushed ref", "ref")
    after = r.text("after")
    assert after is not None
    deleted_flag = r.get("deleted")
    deleted = bool(_ZERO_SHA.match(after)) or deleted_flag is True
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    tag = ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else None
    # A branch or tag is used by its short name: "refs/heads/--upload-pack=x" is a fine ref but an option.
    if branch is not None:
        r.check_ref("the pushed branch", branch)
    if tag is not None:
        r.check_ref("the pushed tag", tag)
    if deleted:
        return WebhookEvent(
            kind, delivery, "push", repo, ref=ref, branch=branch, tag=tag, sha=None, deleted=True
        )
    # For an annotated tag `after` is the tag object; the commit is checkout_sha (GitLab) or head_commit.
    peeled = r.get("checkout_sha") if kind == "gitlab" else r.get("head_commit", "id")
    sha = (peeled if isinstance(peeled, str) and _SHA.match(peeled.lower()) else after).lower()
    if not _SHA.match(sha):
        raise WebhookMalformed(f"the {r.label} push's 'after' is not a commit sha: {after[:80]!r}")
    message, author = _head_commit(kind, r, sha)
    return WebhookEvent(
        kind, delivery, "push", repo, ref=ref, branch=branch, tag=tag, sha=sha, message=message, author=author
    )


def _head_commit(kind: ProviderKind, r: _Reader, sha: str) -> tuple[str | None, str | None]:
    """Message and author of the pushed commit: ``head_commit`` (GitHub, Gitea) or the matching entry of
    ``commits`` (GitLab, older Gitea); a tag push may have neither."""
    commit: Any = r.get("head_commit")
    if not isinstance(commit, dict):
        commits = r.get("commits")
        commit = None
        if isinstance(commits, list):
            commit = next((c for c in commits if isinstance(c, dict) and c.get("id") == sha), None)
    if not isinstance(commit, dict):
        fallback = r.get("user_name") if kind == "gitlab" else None
        return None, fallback if isinstance(fallback, str) else None
    message = commit.get("message")
    author = commit.get("author")
    who: str | None = None
    if isinstance(author, dict):
        name = author.get("name") or author.get("username")
        email = author.get("email")
        if isinstance(name, str) and name:
            who = f"{name} <{email}>" if isinstance(email, str) and email else name
    return (message if isinstance(message, str) else None), who


def _pull_request_like(kind: ProviderKind, r: _Reader, delivery: str) -> WebhookEvent:
    repo = r.text("repository", "full_name")
    raw_action = r.text("action")
    assert raw_action is not None
    pr = ("pull_request",)
    number = r.get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        number = r.integer(*pr, "number")
    return WebhookEvent(
        kind,
        delivery,
        "pull_request",
        repo,
        action=_PR_ACTIONS.get(raw_action, "other"),
        number=number,
        head_sha=r.sha(*pr, "head", "sha"),
        head_ref=r.ref("the pull request's head ref", *pr, "head", "ref"),
        merged=r.get(*pr, "merged") is True,
        title=r.text(*pr, "title", required=False) or "",
        from_fork=not _same_repository(r.get(*pr, "head"), r.get(*pr, "base")),
    )


def _same_repository(head: Any, base: Any) -> bool:
    """Whether a pull request's head and base (GitHub's and Gitea's ``head``/``base`` objects) are in one
    repository: by the repositories' ids when both have one (a rename keeps them), else by full name. Whatever
    the payload leaves out counts as another repository (GitHub sends ``head.repo: null`` once a fork is
    deleted)."""
    if not isinstance(head, dict) or not isinstance(base, dict):
        return False
    head_repo, base_repo = head.get("repo"), base.get("repo")
    if not isinstance(head_repo, dict) or not isinstance(base_repo, dict):
        return False
    head_id, base_id = head_repo.get("id"), base_repo.get("id")
    if _is_id(head_id) and _is_id(base_id):
        return bool(head_id == base_id)
    head_name, base_name = head_repo.get("full_name"), base_repo.get("full_name")
    if isinstance(head_name, str) and isinstance(base_name, str) and head_name:
        return head_name.lower() == base_name.lower()
    return False


def _same_project(source: Any, target: Any) -> bool:
    """Whether a GitLab merge request's source and target projects (by id) are one."""
    return _is_id(source) and _is_id(target) and source == target


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# --- helpers --------------------------------------------------------------------------------------------


class _Reader:
    """Typed access to a payload, with errors that name the missing field by its dotted path."""

    def __init__(self, label: str, event: str, data: dict[str, Any]) -> None:
        self.label = label
        self.event = event
        self.data = data

    def get(self, *path: str) -> Any:
        node: Any = self.data
        for key in path:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    def text(self, *path: str, required: bool = True) -> str | None:
        value = self.get(*path)
        if isinstance(value, str) and (value or not required):
            return value
        if value is None and not required:
            return None
        raise self._missing(path, "text")

    def ref(self, what: str, *path: str) -> str:
        """A git ref from the payload, checked as a ref a user typed would be: it was written by whoever
        pushed or opened the pull request, and it ends up in git's arguments and on people's screens."""
        value = self.text(*path)
        assert value is not None
        return self.check_ref(what, value)

    def check_ref(self, what: str, value: str) -> str:
        try:
            return validate.git_ref(value, what)
        except InvalidInput as err:
            problem = err.message.removesuffix(": give a branch, a tag or a commit sha")
            raise WebhookMalformed(
                f"the {self.label} '{self.event[:60]}' delivery names a ref Mist does not accept: {problem}; "
                "nothing was done"
            ) from None

    def integer(self, *path: str) -> int:
        value = self.get(*path)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        raise self._missing(path, "a positive number")

    def sha(self, *path: str) -> str:
        value = self.get(*path)
        if isinstance(value, str) and _SHA.match(value.lower()):
            return value.lower()
        raise self._missing(path, "a commit sha")

    def _missing(self, path: tuple[str, ...], what: str) -> WebhookMalformed:
        return WebhookMalformed(
            f"the {self.label} '{self.event[:60]}' delivery has no {what} at {'.'.join(path)}"
        )


def _label(kind: str) -> str:
    if kind not in get_args(ProviderKind):
        raise WebhookMalformed(
            f"{kind!r} is not a provider Mist takes webhooks from ({', '.join(get_args(ProviderKind))})"
        )
    return _LABELS[kind]


def _check_size(body: bytes) -> None:
    if len(body) > MAX_BODY:
        raise WebhookTooLarge(
            f"the delivery body is {len(body)} bytes, over the {MAX_BODY} byte limit; Mist does not read it"
        )


def _nesting_over(body: bytes, limit: int) -> bool:
    """Whether ``body``, read as JSON, opens more than ``limit`` arrays or objects inside one another, found
    in one pass without recursing (brackets inside strings do not count). A string left open runs to the end
    of the body, as a JSON reader would read it."""
    outside = _JSON_STRING.sub(b"", body)
    unclosed = outside.find(b'"')
    if unclosed >= 0:
        outside = outside[:unclosed]
    brackets = outside.translate(None, _NOT_A_BRACKET)
    if sum(brackets.count(b) for b in _OPENING) <= limit:
        return False
    depth = 0
    for byte in brackets:
        if byte in _OPENING:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _first(headers: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str | None]:
    for name in names:
        if name in headers:
            return _title(name), headers[name]
    return _title(names[0]), None


def _title(header: str) -> str:
    special = {"x-github-event": "X-GitHub-Event", "x-github-delivery": "X-GitHub-Delivery"}
    return special.get(header) or "-".join(part.capitalize() for part in header.split("-"))


def _other(event: str) -> str:
    name = _EVENT_NAME_UNSAFE.sub("_", event.strip().lower()).strip("_")[:60]
    return f"other:{name or 'unknown'}"
