"""The injection corpus (``tests/unit/injection_corpus.py``) sent through the HTTP API to every operation that
takes a field of its kind: each value is refused with a 4xx problem+json or stored as inert data, never a 5xx,
and a canary file that any injected command would create never appears. Then a real deployment of an app
whose stored fields are hostile (env values, build secrets, start command, commit message) runs through git
and Docker, and the canary still does not appear on this machine."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from gitutil import init_repo
from images import busybox_image

from .conftest import Daemon, describe, is_problem, load_corpus, strong_password

pytestmark = pytest.mark.docker

corpus = load_corpus()
CANARY = f"/tmp/mist-canary-{uuid.uuid4().hex}"


def hostile(values: list[str]) -> list[str]:
    """The corpus's values with this run's canary in place of the corpus's fixed one."""
    return [v.replace(corpus.CANARY, CANARY) for v in values]


SHELL = [
    f"; touch {CANARY}",
    f"| touch {CANARY}",
    f"&& touch {CANARY}",
    f"$(touch {CANARY})",
    f"`touch {CANARY}`",
    f"\ntouch {CANARY}",
    f"--upload-pack=touch {CANARY}",
    f"' ; touch {CANARY} ; '",
    f'" ; touch {CANARY} ; "',
]


def p(value: str) -> str:
    """A value as one path segment."""
    return quote(value, safe="")


@dataclass
class Arena:
    d: Daemon
    project: str
    app: str
    repo: Path
    domain: str
    user: str
    user_token: str
    problems: list[str] = field(default_factory=list)
    sent: int = 0

    @property
    def app_path(self) -> str:
        return f"/projects/{self.project}/apps/{self.app}"

    def send(
        self,
        what: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        token: str | None = None,
    ) -> int:
        """One hostile request as the owner (so only validation can refuse it); records what went wrong."""
        self.sent += 1
        try:
            response = self.d.call(
                method, path, token=self.d.owner_token if token is None else token, json=json
            )
        except Exception as exc:  # a dropped connection is a finding too, not a crash of the test
            self.problems.append(f"{what}: {method} {path}: the request failed: {exc!r}")
            return 0
        if response.status_code >= 500:
            self.problems.append(f"{what}: server error {describe(response)}")
        elif response.status_code >= 400 and not is_problem(response):
            self.problems.append(f"{what}: a refusal that is not problem+json: {describe(response)}")
        elif response.status_code in (401, 403):
            self.problems.append(f"{what}: refused as unauthorised, not as bad input: {describe(response)}")
        return response.status_code

    def check(self) -> None:
        assert not Path(CANARY).exists(), f"an injected command ran: {CANARY} exists"
        assert not self.problems, f"{len(self.problems)} problems:\n" + "\n".join(self.problems[:60])


def _unique(prefix: str = "i") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def arena(daemon: Daemon) -> Iterator[Arena]:
    d = daemon
    project = _unique("inj")
    repo = init_repo(d.repos / project, {"README.md": "nothing to build\n"})
    d.ok("POST", "/projects", token=d.owner_token, json={"name": project})
    d.ok("POST", f"/projects/{project}/apps", token=d.owner_token, json={"name": "web", "git_url": str(repo)})
    domain = f"{_unique('inj')}.example.com"
    d.ok(
        "POST",
        f"/projects/{project}/apps/web/domains",
        token=d.owner_token,
        json={"name": domain, "https": False},
    )
    user, password = _unique("inj-u"), strong_password()
    d.create_user(user, "developer", password)
    token = d.login(user, password)["token"]
    canary_existed = Path(corpus.CANARY).exists()
    yield Arena(d, project, "web", repo, domain, user, token)
    assert not Path(CANARY).exists(), f"an injected command ran: {CANARY} exists"
    if not canary_existed:
        assert not Path(corpus.CANARY).exists(), f"an injected command ran: {corpus.CANARY} exists"


def _each(arena: Arena, values: list[str], *senders: Callable[[Arena, str], None]) -> None:
    for value in hostile(values):
        for send in senders:
            send(arena, value)
    arena.check()


def _new_app(a: Arena, **fields: Any) -> None:
    body = {"name": _unique("a"), "git_url": str(a.repo), **fields}
    a.send(f"apps.create {fields!r}", "POST", f"/projects/{a.project}/apps", json=body)


def _update_app(a: Arena, **fields: Any) -> None:
    a.send(f"apps.update {fields!r}", "PATCH", a.app_path, json=fields)


# ---------------------------------------------------------------------------------------------- git


def test_hostile_git_urls_are_refused_or_inert(arena: Arena) -> None:
    _each(
        arena,
        corpus.GIT_URLS + corpus.UNICODE + SHELL,
        lambda a, v: _new_app(a, git_url=v),
        lambda a, v: _update_app(a, git_url=v),
    )


def test_hostile_refs_are_refused_or_inert(arena: Arena) -> None:
    def deploy(a: Arena, v: str) -> None:
        a.send(f"apps.deploy ref={v!r}", "POST", a.app_path + "/deploy", json={"ref": v})

    _each(
        arena,
        corpus.REFS + corpus.UNICODE + SHELL,
        lambda a, v: _new_app(a, branch=v),
        lambda a, v: _update_app(a, branch=v),
        deploy,
    )


# ---------------------------------------------------------------------------------------------- paths


def test_hostile_dockerfile_and_context_paths_are_refused_or_inert(arena: Arena) -> None:
    _each(
        arena,
        corpus.PATHS + corpus.UNICODE_INVISIBLE + SHELL,
        lambda a, v: _new_app(a, dockerfile=v),
        lambda a, v: _update_app(a, dockerfile=v),
        lambda a, v: _new_app(a, context=v),
        lambda a, v: _update_app(a, context=v),
    )


def test_hostile_volumes_are_refused_or_inert(arena: Arena) -> None:
    _each(
        arena,
        corpus.PATHS + corpus.UNICODE_INVISIBLE + SHELL,
        lambda a, v: _new_app(a, volumes=[{"name": "data", "path": v}]),
        lambda a, v: _update_app(a, volumes=[{"name": "data", "path": v}]),
    )
    _each(
        arena,
        corpus.VOLUME_NAMES + corpus.NAMES,
        lambda a, v: _new_app(a, volumes=[{"name": v, "path": "/data"}]),
        lambda a, v: _update_app(a, volumes=[{"name": v, "path": "/data"}]),
    )


def test_hostile_health_paths_and_commands_are_refused_or_inert(arena: Arena) -> None:
    values = corpus.PATHS + corpus.HEADER_VALUES + corpus.UNICODE_INVISIBLE + SHELL
    _each(
        arena,
        values,
        lambda a, v: _update_app(a, health={"type": "http", "path": v}),
        lambda a, v: _update_app(a, start_command=v),
        lambda a, v: _update_app(a, build_command=v),
        lambda a, v: _update_app(a, install_command=v),
        lambda a, v: _update_app(a, publish=[v]),
        lambda a, v: _update_app(a, restart=v),
    )


# ---------------------------------------------------------------------------------------------- names


def test_hostile_names_are_refused_or_inert(arena: Arena) -> None:
    def project(a: Arena, v: str) -> None:
        a.send(f"projects.create {v!r}", "POST", "/projects", json={"name": v})

    def rename(a: Arena, v: str) -> None:
        scratch = _unique("inj-r")
        a.d.ok("POST", "/projects", token=a.d.owner_token, json={"name": scratch})
        a.send(f"projects.update name={v!r}", "PATCH", f"/projects/{scratch}", json={"name": v})

    def app(a: Arena, v: str) -> None:
        a.send(
            f"apps.create name={v!r}",
            "POST",
            f"/projects/{a.project}/apps",
            json={"name": v, "git_url": str(a.repo)},
        )

    def user(a: Arena, v: str) -> None:
        body = {"username": v, "password": strong_password(), "role": "viewer"}
        a.send(f"users.create {v!r}", "POST", "/users", json=body)

    def invite(a: Arena, v: str) -> None:
        a.send(f"invites.create {v!r}", "POST", "/invites", json={"username": v, "role": "viewer"})

    def member(a: Arena, v: str) -> None:
        a.send(f"members.add {v!r}", "PUT", f"/projects/{a.project}/members/{p(v)}", json={"role": "viewer"})

    def in_paths(a: Arena, v: str) -> None:
        for path in (f"/projects/{p(v)}", f"/projects/{a.project}/apps/{p(v)}", f"/users/{p(v)}"):
            a.send(f"GET {path}", "GET", path)

    def describe_project(a: Arena, v: str) -> None:
        a.send(
            f"projects.update description/tags {v!r}",
            "PATCH",
            f"/projects/{a.project}",
            json={"description": v, "tags": [v]},
        )

    _each(
        arena,
        corpus.NAMES + corpus.UNICODE + SHELL,
        project,
        rename,
        app,
        user,
        invite,
        member,
        in_paths,
        describe_project,
    )


def test_hostile_usernames_at_login_are_refused(tmp_path: Path) -> None:
    # A daemon of its own: failed logins lock the source address out, and every test here shares "unix".
    d = Daemon(tmp_path)
    try:
        d.setup_owner()
        problems = []
        for value in hostile(corpus.NAMES + corpus.UNICODE + corpus.EMAILS + SHELL):
            response = d.call("POST", "/login", json={"username": value, "password": "x" * 12})
            if response.status_code not in (401, 422, 429) or not is_problem(response):
                problems.append(describe(response))
        assert not problems, "\n".join(problems)
        assert not Path(CANARY).exists(), f"an injected command ran: {CANARY} exists"
    finally:
        d.stop()


def test_hostile_emails_and_profiles_are_refused_or_inert(arena: Arena) -> None:
    def user(a: Arena, v: str) -> None:
        body = {"username": _unique("inj-e"), "password": strong_password(), "role": "viewer", "email": v}
        a.send(f"users.create email={v!r}", "POST", "/users", json=body)

    def invite(a: Arena, v: str) -> None:
        a.send(f"invites.create email={v!r}", "POST", "/invites", json={"email": v, "role": "viewer"})

    def profile(a: Arena, v: str) -> None:
        a.send(
            f"users.update {v!r}",
            "PATCH",
            f"/users/{a.user}",
            json={"email": v, "full_name": v},
            token=a.user_token,
        )

    _each(arena, corpus.EMAILS + corpus.HEADER_VALUES + corpus.UNICODE + SHELL, user, invite, profile)


# ---------------------------------------------------------------------------------------------- env


def test_hostile_env_var_names_are_refused_or_inert(arena: Arena) -> None:
    def set_(a: Arena, v: str) -> None:
        a.send(f"env.set {v!r}", "POST", a.app_path + "/env", json={"key": v, "value": "1"})

    def import_(a: Arena, v: str) -> None:
        a.send(f"env.import {v!r}", "POST", a.app_path + "/env/import", json={"text": f"{v}=1\n"})

    def unset(a: Arena, v: str) -> None:
        a.send(f"env.unset {v!r}", "DELETE", a.app_path + f"/env/{p(v)}")

    _each(arena, corpus.ENV_KEYS + corpus.UNICODE + SHELL, set_, import_, unset)


def test_hostile_env_values_are_stored_as_given(arena: Arena) -> None:
    # Values are data: whatever is accepted comes back byte for byte, never interpreted.
    values = [v for v in hostile(SHELL + corpus.HEADER_VALUES[:6]) if "\x00" not in v]
    for n, value in enumerate(values):
        status = arena.send(
            f"env.set value={value!r}", "POST", arena.app_path + "/env", json={"key": f"V{n}", "value": value}
        )
        if status == 200:
            stored = {
                v["key"]: v["value"]
                for v in arena.d.ok("GET", arena.app_path + "/env", token=arena.d.owner_token)
            }
            if stored.get(f"V{n}") != value:
                arena.problems.append(f"env value {value!r} came back as {stored.get(f'V{n}')!r}")
    arena.check()


# ---------------------------------------------------------------------------------------------- domains


def test_hostile_domains_are_refused_or_inert(arena: Arena) -> None:
    def add(a: Arena, v: str) -> None:
        a.send(f"domains.add {v!r}", "POST", a.app_path + "/domains", json={"name": v, "https": False})

    def in_paths(a: Arena, v: str) -> None:
        a.send(f"domains.update {v!r}", "PUT", a.app_path + f"/domains/{p(v)}", json={"https": False})
        a.send(f"domains.remove {v!r}", "DELETE", a.app_path + f"/domains/{p(v)}")
        a.send(f"certificates.renew {v!r}", "POST", f"/certificates/{p(v)}/renew")
        a.send(
            f"certificates.upload {v!r}",
            "PUT",
            f"/certificates/{p(v)}",
            json={"cert_pem": "x", "key_pem": "y"},
        )

    def redirect_and_prefix(a: Arena, v: str) -> None:
        a.send(
            f"domains.update path_prefix={v!r}",
            "PUT",
            a.app_path + f"/domains/{a.domain}",
            json={"https": False, "path_prefix": v},
        )

    _each(arena, corpus.DOMAINS + corpus.UNICODE + SHELL, add, in_paths, redirect_and_prefix)


def test_hostile_response_headers_are_refused_or_inert(arena: Arena) -> None:
    def value(a: Arena, v: str) -> None:
        a.send(
            f"domains.update header value {v!r}",
            "PUT",
            a.app_path + f"/domains/{a.domain}",
            json={"https": False, "headers": {"X-Mist-Test": v}},
        )

    def name(a: Arena, v: str) -> None:
        a.send(
            f"domains.update header name {v!r}",
            "PUT",
            a.app_path + f"/domains/{a.domain}",
            json={"https": False, "headers": {v: "1"}},
        )

    _each(arena, corpus.HEADER_VALUES + corpus.UNICODE_INVISIBLE + SHELL, value)
    _each(arena, corpus.HEADER_NAMES + SHELL, name)


def test_hostile_values_in_http_headers_of_requests_are_harmless(arena: Arena) -> None:
    for v in hostile(corpus.HEADER_VALUES + SHELL):
        if "\n" in v or "\r" in v or "\x00" in v:
            continue  # the HTTP client itself refuses to send these
        for header in ("User-Agent", "X-Forwarded-For", "Authorization"):
            try:
                response = arena.d.http.get("/v1/me", headers={header: v.encode()})
            except Exception as exc:
                arena.problems.append(f"header {header}={v!r}: the request failed: {exc!r}")
                continue
            if response.status_code >= 500:
                arena.problems.append(f"header {header}={v!r}: {describe(response)}")
    arena.check()


def test_hostile_settings_are_refused_or_inert(arena: Arena) -> None:
    keys = ["acme_email", "acme_ca_bundle", "proxy_http_address", "images_per_app"]

    before = {key: arena.d.ok("GET", f"/settings/{key}", token=arena.d.owner_token)["value"] for key in keys}

    def setting(a: Arena, v: str) -> None:
        for key in keys:
            a.send(f"settings.set {key}={v!r}", "PUT", f"/settings/{key}", json={"value": v})

    try:
        _each(arena, corpus.PATHS[:10] + corpus.EMAILS[:6] + SHELL, setting)
    finally:
        for key, value in before.items():
            arena.d.ok("PUT", f"/settings/{key}", token=arena.d.owner_token, json={"value": value})


# ---------------------------------------------------------------------------------------------- a real deployment


def test_a_deployment_of_an_app_with_hostile_stored_fields_runs_nothing_on_the_host(
    daemon: Daemon, arena: Arena
) -> None:
    d = daemon
    busybox_image()
    shell = f"$(touch {CANARY}) `touch {CANARY}` ; touch {CANARY} && touch {CANARY} | touch {CANARY}"
    repo = init_repo(
        d.repos / _unique("inj-deploy"),
        {
            "Dockerfile": (
                "FROM mist-test/busybox:1\n"
                "ARG HOSTILE\n"
                "COPY index.html /www/index.html\n"
                'CMD ["sh", "-c", "trap \'exit 0\' TERM; httpd -f -p 8080 -h /www & wait"]\n'
            ),
            "index.html": "ok\n",
        },
        message=shell,
    )
    app = _unique("h")
    path = f"/projects/{arena.project}/apps/{app}"
    owner = d.owner_token
    d.ok(
        "POST",
        f"/projects/{arena.project}/apps",
        token=owner,
        json={
            "name": app,
            "git_url": str(repo),
            "port": 8080,
            "health": {"type": "tcp", "interval": 0.2, "retries": 50},
            # Run inside the container by its own shell: the canary is a path on the host, out of its reach.
            "start_command": f"sh -c 'trap \"exit 0\" TERM; touch {CANARY}; httpd -f -p 8080 -h /www & wait'",
        },
    )
    d.ok("POST", path + "/env", token=owner, json={"key": "HOSTILE", "value": shell})
    d.ok("POST", path + "/env", token=owner, json={"key": "HOSTILE_SECRET", "value": shell, "secret": True})
    d.ok("POST", path + "/env", token=owner, json={"key": "HOSTILE", "value": shell, "build": True})
    d.ok(
        "POST",
        path + "/env",
        token=owner,
        json={"key": "HOSTILE_BUILD_SECRET", "value": shell, "secret": True, "build": True},
    )
    d.ok("POST", path + "/domains", token=owner, json={"name": f"{app}.example.com", "https": False})
    try:
        deployment = d.ok("POST", path + "/deploy", token=owner, json={})
        final = {"live", "failed", "cancelled"}
        for _ in range(1200):
            state = d.ok("GET", f"/deployments/{deployment['id']}", token=owner)
            if state["state"] in final:
                break
            time.sleep(0.1)
        log = d.call("GET", f"/deployments/{deployment['id']}/log", token=owner).text
        assert state["state"] == "live", (
            f"the deployment did not go live: {state.get('error')}\n{log[-2000:]}"
        )
        assert not Path(CANARY).exists(), f"an injected command ran on the host: {CANARY} exists"
        # The commit message with the payload is shown as text.
        assert state["commit_message"] and "touch" in state["commit_message"]
        d.ok("POST", path + "/restart", token=owner)
        assert not Path(CANARY).exists(), f"an injected command ran on the host: {CANARY} exists"
    finally:
        d.call("DELETE", path, token=owner)
