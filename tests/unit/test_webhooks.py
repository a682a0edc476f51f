"""Webhook deliveries: signature and token checks, and reading pushes, pull requests and pings from each
provider's payloads (built as the providers send them)."""

from __future__ import annotations

import json

import pytest
from standins.forge import ping_payload, pull_request_payload, push_payload, sign_delivery

from mist_core.webhooks import (
    MAX_BODY,
    MAX_DEPTH,
    WebhookMalformed,
    WebhookRefused,
    WebhookTooLarge,
    parse,
    verify,
)

SECRET = "s3cret-for-tests"
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "89abcdef0123456789abcdef0123456789abcdef"
KINDS = ["github", "gitlab", "gitea"]


def delivery(kind: str, event: str, payload: dict, delivery_id: str = "d-1") -> tuple[dict[str, str], bytes]:
    return sign_delivery(kind, SECRET, event, payload, delivery_id)


# --- verify ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_correctly_signed_delivery_is_accepted(kind: str) -> None:
    headers, body = delivery(kind, "push", push_payload(kind, "acme/web", sha=SHA))
    verify(kind, headers, body, SECRET)


@pytest.mark.parametrize("kind", KINDS)
def test_header_names_are_matched_whatever_their_case(kind: str) -> None:
    headers, body = delivery(kind, "push", push_payload(kind, "acme/web", sha=SHA))
    verify(kind, {k.lower(): v for k, v in headers.items()}, body, SECRET)
    verify(kind, {k.upper(): v for k, v in headers.items()}, body, SECRET)


@pytest.mark.parametrize("kind", KINDS)
def test_a_delivery_signed_with_another_secret_is_refused(kind: str) -> None:
    headers, body = sign_delivery(
        kind, "not-the-secret", "push", push_payload(kind, "acme/web", sha=SHA), "d"
    )
    with pytest.raises(WebhookRefused) as caught:
        verify(kind, headers, body, SECRET)
    assert caught.value.status == 401
    assert "does not match" in caught.value.reason


@pytest.mark.parametrize("kind", ["github", "gitea"])
def test_a_body_changed_after_signing_is_refused(kind: str) -> None:
    headers, body = delivery(kind, "push", push_payload(kind, "acme/web", sha=SHA))
    tampered = body.replace(b"acme/web", b"acme/evil")
    with pytest.raises(WebhookRefused, match="does not match"):
        verify(kind, headers, tampered, SECRET)


@pytest.mark.parametrize(
    ("kind", "header"),
    [("github", "X-Hub-Signature-256"), ("gitea", "X-Gitea-Signature"), ("gitlab", "X-Gitlab-Token")],
)
def test_a_delivery_without_its_signature_header_is_refused_and_the_header_is_named(
    kind: str, header: str
) -> None:
    headers, body = delivery(kind, "push", push_payload(kind, "acme/web", sha=SHA))
    del headers[header]
    if kind == "gitea":
        headers.pop("X-Gogs-Signature")
    with pytest.raises(WebhookRefused, match=header):
        verify(kind, headers, body, SECRET)


def test_gitea_is_not_verified_by_the_github_style_header_alone() -> None:
    headers, body = delivery("gitea", "push", push_payload("gitea", "acme/web", sha=SHA))
    del headers["X-Gitea-Signature"]
    with pytest.raises(WebhookRefused, match="X-Gitea-Signature"):
        verify("gitea", headers, body, SECRET)


def test_a_github_signature_without_its_sha256_prefix_is_refused() -> None:
    headers, body = delivery("github", "push", push_payload("github", "acme/web", sha=SHA))
    headers["X-Hub-Signature-256"] = headers["X-Hub-Signature-256"].removeprefix("sha256=")
    with pytest.raises(WebhookRefused, match="sha256="):
        verify("github", headers, body, SECRET)


def test_a_signature_that_is_not_hexadecimal_is_refused_without_a_traceback() -> None:
    headers, body = delivery("gitea", "push", push_payload("gitea", "acme/web", sha=SHA))
    headers["X-Gitea-Signature"] = "zz" * 32
    with pytest.raises(WebhookRefused, match="not a hexadecimal"):
        verify("gitea", headers, body, SECRET)


def test_a_wrong_gitlab_token_is_refused() -> None:
    headers, body = delivery("gitlab", "push", push_payload("gitlab", "acme/web", sha=SHA))
    headers["X-Gitlab-Token"] = SECRET + "x"
    with pytest.raises(WebhookRefused, match="X-Gitlab-Token does not match"):
        verify("gitlab", headers, body, SECRET)


def test_a_non_ascii_gitlab_token_is_refused_not_crashed_on() -> None:
    headers, body = delivery("gitlab", "push", push_payload("gitlab", "acme/web", sha=SHA))
    headers["X-Gitlab-Token"] = "s3crét"
    with pytest.raises(WebhookRefused):
        verify("gitlab", headers, body, SECRET)


@pytest.mark.parametrize("kind", KINDS)
def test_no_delivery_is_trusted_when_no_secret_is_configured(kind: str) -> None:
    headers, body = sign_delivery(kind, "", "push", push_payload(kind, "acme/web", sha=SHA), "d")
    with pytest.raises(WebhookRefused, match="no webhook secret is set"):
        verify(kind, headers, body, "")


@pytest.mark.parametrize("kind", KINDS)
def test_a_body_over_the_limit_is_refused_before_anything_else(kind: str) -> None:
    body = b" " * (MAX_BODY + 1)
    with pytest.raises(WebhookTooLarge) as caught:
        verify(kind, {}, body, SECRET)
    assert caught.value.status == 413
    with pytest.raises(WebhookTooLarge):
        parse(kind, {}, body)


def test_an_unknown_provider_kind_is_refused() -> None:
    with pytest.raises(WebhookRefused, match="not a provider"):
        verify("bitbucket", {}, b"{}", SECRET)  # type: ignore[arg-type]


# --- parse: pushes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_branch_push_gives_branch_commit_message_and_author(kind: str) -> None:
    payload = push_payload(
        kind, "acme/web", ref="refs/heads/main", sha=SHA, message="Fix the footer\n\nDetails."
    )
    event = parse(kind, *delivery(kind, "push", payload, "abc-123"))
    assert event.kind == kind
    assert event.delivery_id == "abc-123"
    assert event.event == "push"
    assert event.repo == "acme/web"
    assert (event.ref, event.branch, event.tag) == ("refs/heads/main", "main", None)
    assert event.sha == SHA
    assert event.deleted is False
    assert event.message == "Fix the footer\n\nDetails."
    assert event.author == "Ada Lovelace <ada@example.com>"


@pytest.mark.parametrize("kind", KINDS)
def test_a_tag_push_gives_the_tag_and_no_branch(kind: str) -> None:
    event_name = "tag_push" if kind == "gitlab" else "push"
    payload = push_payload(kind, "acme/web", ref="refs/tags/v1.2.0", sha=SHA)
    event = parse(kind, *delivery(kind, event_name, payload))
    assert (event.event, event.branch, event.tag, event.sha) == ("push", None, "v1.2.0", SHA)


@pytest.mark.parametrize("kind", KINDS)
def test_a_push_that_deletes_a_branch_has_no_sha_to_deploy(kind: str) -> None:
    payload = push_payload(kind, "acme/web", ref="refs/heads/old", sha=SHA, before=SHA, deleted=True)
    event = parse(kind, *delivery(kind, "push", payload))
    assert event.deleted is True
    assert event.sha is None
    assert event.branch == "old"


def test_a_gitlab_project_in_nested_groups_keeps_its_full_path() -> None:
    payload = push_payload("gitlab", "acme/platform/api", sha=SHA)
    assert parse("gitlab", *delivery("gitlab", "push", payload)).repo == "acme/platform/api"


def test_an_annotated_tag_push_on_gitlab_deploys_the_commit_not_the_tag_object() -> None:
    payload = push_payload("gitlab", "acme/web", ref="refs/tags/v2", sha=SHA)
    payload["after"] = OTHER_SHA  # the tag object
    assert parse("gitlab", *delivery("gitlab", "tag_push", payload)).sha == SHA


def test_a_gitlab_push_with_an_unlisted_commit_still_names_the_pusher() -> None:
    payload = push_payload("gitlab", "acme/web", sha=SHA)
    payload["commits"] = []
    event = parse("gitlab", *delivery("gitlab", "push", payload))
    assert (event.sha, event.message, event.author) == (SHA, None, "Ada Lovelace")


def test_a_gitlab_system_hook_push_is_read_from_object_kind() -> None:
    headers, body = delivery("gitlab", "System Hook", push_payload("gitlab", "acme/web", sha=SHA))
    assert parse("gitlab", headers, body).event == "push"


# --- parse: pull requests -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened"])
def test_pull_request_actions_are_named_alike_for_every_provider(kind: str, action: str) -> None:
    payload = pull_request_payload(
        kind, "acme/web", action=action, number=12, head_sha=SHA, head_ref="feat/x"
    )
    event = parse(kind, *delivery(kind, "pull_request", payload))
    assert event.event == "pull_request"
    assert event.repo == "acme/web"
    assert (event.action, event.number, event.head_sha, event.head_ref) == (action, 12, SHA, "feat/x")
    assert event.title == "Add a login page"
    assert event.merged is False


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("merged", [True, False])
def test_a_closed_pull_request_says_whether_it_was_merged(kind: str, merged: bool) -> None:
    payload = pull_request_payload(kind, "acme/web", action="closed", number=3, head_sha=SHA, merged=merged)
    event = parse(kind, *delivery(kind, "pull_request", payload))
    assert (event.action, event.merged) == ("closed", merged)


def test_gitea_synchronized_is_read_as_synchronize() -> None:
    payload = pull_request_payload("gitea", "acme/web", action="synchronize", number=5, head_sha=SHA)
    assert payload["action"] == "synchronized"
    assert parse("gitea", *delivery("gitea", "pull_request", payload)).action == "synchronize"


def test_a_gitlab_merge_request_update_without_new_commits_is_not_a_synchronize() -> None:
    payload = pull_request_payload("gitlab", "acme/web", action="synchronize", number=5, head_sha=SHA)
    del payload["object_attributes"]["oldrev"]  # a title or label change
    assert parse("gitlab", *delivery("gitlab", "pull_request", payload)).action == "other"


@pytest.mark.parametrize("kind", ["github", "gitea"])
def test_pull_request_actions_mist_does_not_act_on_are_other(kind: str) -> None:
    payload = pull_request_payload(kind, "acme/web", action="labeled", number=5, head_sha=SHA)
    assert parse(kind, *delivery(kind, "pull_request", payload)).action == "other"


# --- parse: pings and other events ----------------------------------------------------------------------


def test_a_github_ping_is_read_with_or_without_a_repository() -> None:
    event = parse("github", *delivery("github", "ping", ping_payload("github", "acme/web")))
    assert (event.event, event.repo) == ("ping", "acme/web")
    app_ping = parse("github", *delivery("github", "ping", ping_payload("github", None)))
    assert (app_ping.event, app_ping.repo) == ("ping", None)


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("github", "issues", "other:issues"),
        ("gitea", "release", "other:release"),
        ("gitlab", "Pipeline Hook", "other:pipeline_hook"),
        ("github", "we\nird<event>", "other:we_ird_event"),
    ],
)
def test_events_mist_does_not_act_on_come_back_as_other(kind: str, name: str, expected: str) -> None:
    headers, body = delivery(kind, "push", {"repository": {"full_name": "acme/web"}, "project": {}})
    for header in ("X-GitHub-Event", "X-Gitea-Event", "X-Gitlab-Event"):
        if header in headers:
            headers[header] = name
    assert parse(kind, headers, body).event == expected


# --- parse: delivery ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "header"),
    [("github", "X-GitHub-Delivery"), ("gitea", "X-Gitea-Delivery"), ("gitlab", "Idempotency-Key")],
)
def test_the_delivery_id_comes_from_the_providers_header(kind: str, header: str) -> None:
    headers, body = delivery(kind, "push", push_payload(kind, "acme/web", sha=SHA), "id-42")
    assert headers[header] == "id-42"
    assert parse(kind, headers, body).delivery_id == "id-42"


def test_an_older_gitlab_without_idempotency_key_is_identified_by_its_event_uuid() -> None:
    headers, body = delivery("gitlab", "push", push_payload("gitlab", "acme/web", sha=SHA))
    del headers["Idempotency-Key"]
    assert parse("gitlab", headers, body).delivery_id == headers["X-Gitlab-Event-UUID"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_delivery_without_an_id_is_refused(kind: str) -> None:
    headers, body = delivery(kind, "push", push_payload(kind, "acme/web", sha=SHA))
    for name in list(headers):
        if "delivery" in name.lower() or "uuid" in name.lower() or name == "Idempotency-Key":
            del headers[name]
    with pytest.raises(WebhookMalformed, match="header to tell it apart") as caught:
        parse(kind, headers, body)
    assert caught.value.status == 400


def test_a_delivery_id_with_control_characters_is_refused() -> None:
    headers, body = delivery("github", "push", push_payload("github", "acme/web", sha=SHA), "abc\x1b[31m")
    with pytest.raises(WebhookMalformed, match="delivery id"):
        parse("github", headers, body)


# --- parse: malformed bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("body", "reason"), [(b"{not json", "not JSON"), (b"[1, 2]", "not an object"), (b"\xff\xfe", "not JSON")]
)
def test_a_body_that_is_not_a_json_object_is_refused_with_the_reason(
    kind: str, body: bytes, reason: str
) -> None:
    headers, _ = delivery(kind, "push", {})
    with pytest.raises(WebhookMalformed, match=reason):
        parse(kind, headers, body)


@pytest.mark.parametrize("kind", KINDS)
def test_a_delivery_without_an_event_header_is_refused(kind: str) -> None:
    headers, body = delivery(kind, "push", push_payload(kind, "acme/web", sha=SHA))
    headers = {
        k: v for k, v in headers.items() if not k.lower().endswith("-event") and "event-type" not in k.lower()
    }
    with pytest.raises(WebhookMalformed, match="Event header"):
        parse(kind, headers, body)


@pytest.mark.parametrize(
    ("kind", "event", "remove", "field"),
    [
        ("github", "push", ("repository", "full_name"), "repository.full_name"),
        ("github", "push", ("ref",), "ref"),
        ("gitea", "push", ("after",), "after"),
        ("gitlab", "push", ("project", "path_with_namespace"), "project.path_with_namespace"),
        ("github", "pull_request", ("pull_request", "head", "sha"), "pull_request.head.sha"),
        ("gitea", "pull_request", ("pull_request", "head", "ref"), "pull_request.head.ref"),
        ("gitlab", "pull_request", ("object_attributes", "iid"), "object_attributes.iid"),
        ("gitlab", "pull_request", ("object_attributes", "last_commit"), "object_attributes.last_commit.id"),
    ],
)
def test_a_payload_missing_a_needed_field_is_refused_naming_the_field(
    kind: str, event: str, remove: tuple[str, ...], field: str
) -> None:
    if event == "push":
        payload = push_payload(kind, "acme/web", sha=SHA)
    else:
        payload = pull_request_payload(kind, "acme/web", action="opened", number=1, head_sha=SHA)
    node = payload
    for key in remove[:-1]:
        node = node[key]
    del node[remove[-1]]
    with pytest.raises(WebhookMalformed, match=field.replace(".", r"\.")):
        parse(kind, *delivery(kind, event, payload))


def test_a_push_whose_after_is_not_a_sha_is_refused() -> None:
    payload = push_payload("github", "acme/web", sha=SHA)
    payload["after"] = "; rm -rf /"
    payload["head_commit"] = None
    with pytest.raises(WebhookMalformed, match="not a commit sha"):
        parse("github", *delivery("github", "push", payload))


def test_a_pull_request_number_of_the_wrong_type_is_refused() -> None:
    payload = pull_request_payload("github", "acme/web", action="opened", number=1, head_sha=SHA)
    payload["number"] = "1"
    payload["pull_request"]["number"] = True
    with pytest.raises(WebhookMalformed, match="positive number at pull_request.number"):
        parse("github", *delivery("github", "pull_request", payload))


def test_refusals_are_reported_as_mist_errors_with_a_problem_body() -> None:
    with pytest.raises(WebhookRefused) as caught:
        parse("github", {"X-GitHub-Event": "push"}, json.dumps({}).encode())
    problem = caught.value.to_problem()
    assert problem["code"] == "webhook_malformed"
    assert problem["status"] == 400


# --- what a signed payload may carry ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "head_ref", ["--upload-pack=touch /tmp/x", "a..b", "feature\x1b[2J", "has space", "x:y", "@{u}"]
)
def test_a_pull_request_whose_head_ref_git_would_refuse_or_misread_is_malformed(
    kind: str, head_ref: str
) -> None:
    payload = pull_request_payload(
        kind, "acme/web", action="opened", number=1, head_sha=SHA, head_ref=head_ref
    )
    with pytest.raises(WebhookMalformed) as caught:
        parse(kind, *delivery(kind, "pull_request", payload))
    assert caught.value.status == 400
    assert "ref Mist does not accept" in caught.value.reason and "\x1b" not in caught.value.reason


@pytest.mark.parametrize("kind", KINDS)
def test_a_push_of_a_ref_git_would_misread_is_malformed(kind: str) -> None:
    payload = push_payload(kind, "acme/web", sha=SHA, ref="refs/heads/--upload-pack=x")
    with pytest.raises(WebhookMalformed, match="ref Mist does not accept"):
        parse(kind, *delivery(kind, "push", payload))


@pytest.mark.parametrize("kind", KINDS)
def test_a_pull_request_from_a_fork_or_an_unknown_head_repository_counts_as_a_fork(kind: str) -> None:
    def read(**fork: object) -> bool:
        payload = pull_request_payload(kind, "acme/web", action="opened", number=1, head_sha=SHA, **fork)
        return parse(kind, *delivery(kind, "pull_request", payload)).from_fork

    assert read() is False
    assert read(fork="mallory/web") is True
    assert read(fork_deleted=True) is True


def test_a_github_pull_request_without_repository_ids_is_compared_by_full_name() -> None:
    payload = pull_request_payload("github", "acme/web", action="opened", number=1, head_sha=SHA)
    for side in ("head", "base"):  # each side its own copy: the stand-in shares one object
        repo = dict(payload["pull_request"][side]["repo"])
        del repo["id"]
        payload["pull_request"][side]["repo"] = repo
    assert parse("github", *delivery("github", "pull_request", payload)).from_fork is False
    payload["pull_request"]["head"]["repo"]["full_name"] = "mallory/web"
    assert parse("github", *delivery("github", "pull_request", payload)).from_fork is True


@pytest.mark.parametrize("kind", KINDS)
def test_a_body_nested_deeper_than_the_bound_is_malformed_without_reading_it(kind: str) -> None:
    payload = push_payload(kind, "acme/web", sha=SHA)
    for depth in (MAX_DEPTH + 1, 200_000):
        body = (json.dumps(payload)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}").encode()
        headers, _ = delivery(kind, "push", payload)
        with pytest.raises(WebhookMalformed, match="levels deep"):
            parse(kind, headers, body)
    # Left open, brackets count as deep as they go; inside strings they do not count at all.
    headers, _ = delivery(kind, "push", payload)
    with pytest.raises(WebhookMalformed, match="levels deep"):
        parse(kind, headers, b'{"x": ' + b"[" * 100_000)
    padded = {**payload, "note": "[{" * 10_000 + '\\" ]]'}
    assert parse(kind, *delivery(kind, "push", padded)).sha == SHA


def test_a_body_exactly_at_the_nesting_bound_is_read() -> None:
    payload = push_payload("github", "acme/web", sha=SHA)
    inner = MAX_DEPTH - 1  # the body itself is the first level
    body = (json.dumps(payload)[:-1] + ', "x": ' + "[" * inner + "]" * inner + "}").encode()
    headers, _ = delivery("github", "push", payload)
    assert parse("github", headers, body).sha == SHA
