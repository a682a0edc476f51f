"""API tokens bound to one project, held by powerful users, against a real daemon and real containers: every
list such a token may call holds only its project's things although other projects have plenty, and nothing
about the instance is within its reach, whatever its scope and whoever its user.

The permission matrix (``test_permission_matrix``) checks every operation for these tokens; this file checks
what the lists show and what a refusal says.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from gitutil import init_repo
from images import busybox_image

from .conftest import Daemon, describe, is_problem, self_signed, strong_password

pytestmark = pytest.mark.docker

DEADLINE_POLLS = 600  # waits poll every 0.1 s; this many polls before giving up (no assertion on time)


def _hex() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class Bound:
    """Projects P (the binding) and Q (with the same people and as much in it), and the bound tokens."""

    d: Daemon
    p: str
    q: str
    admin: str  # an instance admin, member of nothing
    dev: str  # an instance developer, developer in P and in Q
    sessions: dict[str, str]
    tokens: dict[str, str]  # "admin/admin", "admin/read", "dev/deploy" -> a token bound to P
    domains: dict[str, str]  # project -> a domain of its app, with an uploaded certificate

    def owner(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.d.ok(method, path, token=self.d.owner_token, **kwargs)

    def as_token(self, key: str, method: str, path: str, **kwargs: Any) -> Any:
        return self.d.ok(method, path, token=self.tokens[key], **kwargs)


def _wait(what: str, done: Callable[[], bool]) -> None:
    for _ in range(DEADLINE_POLLS):
        if done():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def _deploy_live(b: Bound, project: str, repo: str) -> str:
    """A running app of ``project`` (busybox httpd), with a domain and an uploaded certificate."""
    app = f"web-{_hex()}"
    b.owner(
        "POST",
        f"/projects/{project}/apps",
        json={
            "name": app,
            "git_url": repo,
            "port": 8080,
            "health": {"type": "tcp", "interval": 0.2, "retries": 50},
        },
    )
    deployment = b.owner("POST", f"/projects/{project}/apps/{app}/deploy", json={})

    def final() -> bool:
        return b.owner("GET", f"/deployments/{deployment['id']}")["state"] in ("live", "failed", "cancelled")

    _wait(f"the deployment of {project}/{app}", final)
    state = b.owner("GET", f"/deployments/{deployment['id']}")
    assert state["state"] == "live", state.get("error")
    domain = f"{app}.{project}.example.com"
    b.owner("POST", f"/projects/{project}/apps/{app}/domains", json={"name": domain, "https": False})
    cert, key = self_signed(domain)
    b.owner("PUT", f"/certificates/{domain}", json={"cert_pem": cert, "key_pem": key})
    b.domains[project] = domain
    return app


@pytest.fixture(scope="module")
def bound(daemon: Daemon) -> Iterator[Bound]:
    d = daemon
    busybox_image()
    s = _hex()
    p, q = f"bt-p-{s}", f"bt-q-{s}"
    admin, dev = f"bt-admin-{s}", f"bt-dev-{s}"
    passwords = {admin: strong_password(), dev: strong_password()}
    d.create_user(admin, "admin", passwords[admin])
    d.create_user(dev, "developer", passwords[dev])
    sessions = {name: d.login(name, password)["token"] for name, password in passwords.items()}
    b = Bound(d, p, q, admin, dev, sessions, {}, {})
    for project in (p, q):
        b.owner("POST", "/projects", json={"name": project})
        b.owner("PUT", f"/projects/{project}/members/{dev}", json={"role": "developer"})
    repo = init_repo(
        d.repos / f"bt-{s}",
        {
            "Dockerfile": (
                "FROM mist-test/busybox:1\n"
                "COPY index.html /www/index.html\n"
                'CMD ["sh", "-c", "trap \'exit 0\' TERM; httpd -f -p 8080 -h /www & wait"]\n'
            ),
            "index.html": "ok\n",
        },
    )
    apps = {project: _deploy_live(b, project, str(repo)) for project in (p, q)}
    # What the tokens' own users did elsewhere: their sessions act in Q.
    for user in (admin, dev):
        d.ok(
            "POST",
            f"/projects/{q}/apps/{apps[q]}/env",
            token=sessions[user],
            json={"key": f"BT_{_hex().upper()}", "value": "q"},
        )
        d.ok(
            "POST",
            f"/projects/{p}/apps/{apps[p]}/env",
            token=sessions[user],
            json={"key": f"BT_{_hex().upper()}", "value": "p"},
        )
    for key, user, scope in (
        ("admin/admin", admin, "admin"),
        ("admin/read", admin, "read"),
        ("dev/deploy", dev, "deploy"),
    ):
        b.tokens[key] = str(d.create_token(sessions[user], scope, p)["token"])
    try:
        yield b
    finally:
        for project in (p, q):
            for app in b.owner("GET", "/apps", params={"project": project, "limit": 1000})["items"]:
                d.call("DELETE", f"/projects/{project}/apps/{app['name']}", token=d.owner_token)


TOKENS = ("admin/admin", "admin/read", "dev/deploy")


@pytest.mark.parametrize("key", TOKENS)
def test_a_bound_tokens_lists_hold_only_its_projects_things(bound: Bound, key: str) -> None:
    b = bound
    # Controls: unbound, the same lists hold Q's things (so an empty Q could not pass for filtering).
    assert {b.p, b.q} <= {x["name"] for x in b.owner("GET", "/projects", params={"limit": 1000})["items"]}
    assert b.q in {c["project"] for c in b.owner("GET", "/containers")}
    assert b.domains[b.q] in {c["domain"] for c in b.owner("GET", "/certificates")}
    assert b.q in {e["project"] for e in b.owner("GET", "/audit", params={"limit": 1000})["items"]}

    projects = b.as_token(key, "GET", "/projects", params={"limit": 1000})
    assert [x["name"] for x in projects["items"]] == [b.p] and projects["total"] == 1

    apps = b.as_token(key, "GET", "/apps", params={"limit": 1000})["items"]
    assert apps and {a["project"] for a in apps} == {b.p}

    containers = b.as_token(key, "GET", "/containers")
    assert containers and {c["project"] for c in containers} == {b.p}

    certificates = b.as_token(key, "GET", "/certificates")
    assert [c["domain"] for c in certificates] == [b.domains[b.p]]

    audit = b.as_token(key, "GET", "/audit", params={"limit": 1000})["items"]
    assert audit and {e["project"] for e in audit} == {b.p}, [(e["project"], e["action"]) for e in audit]
    # Not even what the token's own user did in Q.
    assert b.as_token(key, "GET", "/audit", params={"project": b.q})["items"] == []

    def sampled_both() -> bool:
        return {b.p, b.q} <= {c["project"] for c in b.owner("GET", "/metrics")["containers"]}

    _wait("a metrics sample with the containers of both projects", sampled_both)
    sample = b.as_token(key, "GET", "/metrics")
    assert sample["system"] and {c["project"] for c in sample["containers"]} == {b.p}
    history = b.as_token(key, "GET", "/metrics/history", params={"seconds": 300})
    assert history and all({c["project"] for c in s["containers"]} <= {b.p} for s in history)


@pytest.mark.parametrize("key", TOKENS)
def test_a_bound_tokens_event_stream_tells_only_of_its_project(bound: Bound, key: str) -> None:
    b = bound
    apps = {
        project: b.owner("GET", "/apps", params={"project": project})["items"][0]["name"]
        for project in (b.p, b.q)
    }
    stop = threading.Event()

    def change_q_then_p() -> None:
        # Pairs of changes, Q's first, until the reader has heard enough: the stream subscribes to the bus a
        # moment after it opens, so the first pair may come too early to be heard at all.
        with httpx.Client(
            transport=httpx.HTTPTransport(uds=str(b.d.sock)), base_url="http://mist", timeout=60
        ) as client:
            headers = {"Authorization": f"Bearer {b.d.owner_token}"}
            while not stop.is_set():
                for project in (b.q, b.p):
                    path = f"/v1/projects/{project}/apps/{apps[project]}/env"
                    body = {"key": f"BT_{_hex().upper()}", "value": "1"}
                    client.post(path, json=body, headers=headers).raise_for_status()
                stop.wait(0.2)

    heard: list[dict[str, Any]] = []
    changer = threading.Thread(target=change_q_then_p)
    headers = {"Authorization": f"Bearer {b.tokens[key]}"}
    with b.d.http.stream("GET", "/v1/events", headers=headers) as stream:
        assert stream.status_code == 200
        changer.start()
        try:
            for line in stream.iter_lines():
                if not line.startswith("data: "):
                    continue
                heard.append(json.loads(line.removeprefix("data: ")))
                # The bus keeps the order: a second P change was published after the first was heard, and its
                # Q change just before it, so by now any of Q's that reached this stream has been read.
                if sum(e["kind"] == "env" and e["project"] == b.p for e in heard) >= 2:
                    break
        finally:
            stop.set()
            changer.join()
    assert all(e["project"] == b.p for e in heard), heard


INSTANCE_CALLS: list[tuple[str, str, str, Any]] = [
    ("create a user", "POST", "/users", {"username": "bt-new-{s}", "password": "{pw}", "role": "admin"}),
    ("promote a user", "PUT", "/users/{dev}/role", {"role": "admin"}),
    ("invite an admin", "POST", "/invites", {"username": "bt-inv-{s}", "role": "admin"}),
    ("change a setting", "PUT", "/settings/images_per_app", {"value": "7"}),
    ("list the users", "GET", "/users", None),
    ("read a setting", "GET", "/settings/images_per_app", None),
    ("create a project", "POST", "/projects", {"name": "bt-n-{s}"}),
    ("mint a token", "POST", "/tokens", {"name": "bt-{s}", "scope": "admin"}),
    ("list the sessions", "GET", "/sessions", None),
    ("rotate the master key", "POST", "/secrets/rotate-key", None),
    ("read the proxy status", "GET", "/proxy", None),
    ("list the git providers", "GET", "/git/providers", None),
]


def _instance_state(b: Bound) -> Any:
    return (
        sorted((u["username"], u["role"]) for u in b.owner("GET", "/users")),
        sorted(i["id"] for i in b.owner("GET", "/invites")),
        b.owner("GET", "/settings/images_per_app")["value"],
        sorted(x["name"] for x in b.owner("GET", "/projects", params={"limit": 1000})["items"]),
    )


@pytest.mark.parametrize("what,method,path,body", INSTANCE_CALLS, ids=[c[0] for c in INSTANCE_CALLS])
def test_an_instance_admins_admin_token_bound_to_a_project_cannot_touch_the_instance_and_says_why(
    bound: Bound, what: str, method: str, path: str, body: Any
) -> None:
    b = bound
    s, pw = _hex(), strong_password()
    if body is not None:
        body = json.loads(json.dumps(body).replace("{s}", s).replace("{pw}", pw))
    before = _instance_state(b)
    response = b.d.call(method, path.replace("{dev}", b.dev), token=b.tokens["admin/admin"], json=body)
    assert response.status_code == 403 and is_problem(response), f"{what}: {describe(response)}"
    assert f"bound to project {b.p!r}" in response.json()["detail"], describe(response)
    assert _instance_state(b) == before, what
    # The token still works for what it may do: say whose it is.
    assert b.d.call("GET", "/me", token=b.tokens["admin/admin"]).json()["username"] == b.admin
