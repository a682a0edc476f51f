"""Fuzzing the HTTP API from its own OpenAPI document (schemathesis), with a valid admin token and with none:
no answer is a 5xx, every 4xx is ``application/problem+json``, and without a token nothing but the public
operations answers 2xx.

Streams (SSE) are left out (they never end), and so is whatever would deploy or start a container for real.
Generation is derandomized, so a run is repeatable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from mist_core.execs import MEDIA_TYPE as EXEC_MEDIA_TYPE
from mist_core.execs import START, frame

from .conftest import Daemon, describe, is_problem, strong_password

pytestmark = pytest.mark.docker

EXAMPLES_WITH_TOKEN = 25
EXAMPLES_WITHOUT_TOKEN = 6

# Would deploy, or replace the proxy container every Mist on this engine shares.
NEVER = [
    ("POST", r"/v1/projects/\{[^}]+\}/apps/\{[^}]+\}/deploy"),
    ("POST", r"/v1/projects/\{[^}]+\}/apps/\{[^}]+\}/rollback"),
    ("POST", r"/v1/proxy/install"),
]
# Would end the fuzzer's own credential halfway through the run (tried without a token only).
NOT_WITH_TOKEN = [
    ("POST", r"/v1/logout"),
    ("DELETE", r"/v1/tokens/\{[^}]+\}"),
    ("DELETE", r"/v1/sessions/\{[^}]+\}"),
]
PUBLIC = [
    ("GET", r"/v1/setup"),
    ("POST", r"/v1/setup"),
    ("POST", r"/v1/login"),
    ("POST", r"/v1/refresh"),
    ("POST", r"/v1/invites/accept"),
]


@schemathesis.serializer(EXEC_MEDIA_TYPE)
def _exec_frames(ctx: Any, value: Any) -> bytes:
    """An exec session's body: what the document describes is its first (START) frame."""
    return frame(START, json.dumps(value).encode())


def _matches(rules: list[tuple[str, str]], method: str, path: str) -> bool:
    return any(method.upper() == m and re.fullmatch(p, path) for m, p in rules)


def _is_stream(operation: dict[str, Any]) -> bool:
    for response in operation.get("responses", {}).values():
        if "text/event-stream" in (response.get("content") or {}):
            return True
    return False


@dataclass
class Fuzzer:
    d: Daemon
    spec: dict[str, Any]
    admin_token: str
    problems: list[str] = field(default_factory=list)
    sent: int = 0

    def operations(self, *, with_token: bool) -> list[tuple[str, str]]:
        chosen = []
        for path, item in self.spec["paths"].items():
            for method, operation in item.items():
                if method not in ("get", "post", "put", "patch", "delete") or _is_stream(operation):
                    continue
                if _matches(NEVER, method, path) or (with_token and _matches(NOT_WITH_TOKEN, method, path)):
                    continue
                chosen.append((method.upper(), path))
        return chosen

    def send(self, case: Any, token: str | None) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://mist")
        headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request: dict[str, Any] = {"headers": headers, "params": kwargs.get("params")}
        if "json" in kwargs:
            request["json"] = kwargs["json"]
        elif "data" in kwargs:
            data = kwargs["data"]
            request["content" if isinstance(data, bytes | str) else "data"] = data
        url = kwargs["url"].removeprefix("http://mist")
        self.sent += 1
        try:
            response = self.d.http.request(kwargs["method"], url, **request)
        except Exception as exc:
            self.problems.append(f"{kwargs['method']} {url}: the request failed ({exc!r}); {case!r}")
            return
        where = f"{describe(response)}\n    sent: {case!r}"
        if response.status_code >= 500:
            self.problems.append(f"server error: {where}")
        elif response.status_code >= 400 and not is_problem(response):
            self.problems.append(f"a refusal that is not problem+json: {where}")
        elif token is None and response.is_success and not _matches(PUBLIC, case.method, case.path):
            self.problems.append(f"answered without a token: {where}")

    def run(self, *, with_token: bool, examples: int) -> None:
        schema = schemathesis.openapi.from_dict(self.spec)
        token = self.admin_token if with_token else None
        for method, path in self.operations(with_token=with_token):
            operation = schema[path][method]
            strategies = []
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    strategies.append(operation.as_strategy(generation_mode=mode))
                except Exception:  # nothing negative to say about an operation without inputs
                    continue

            @hypothesis.settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=st.one_of(strategies))
            def fuzz(case: Any) -> None:
                self.send(case, token)

            fuzz()


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    # A daemon of its own: the fuzzer changes settings, makes users and projects at random.
    d = Daemon(tmp_path_factory.mktemp("fuzz"))
    try:
        d.setup_owner()
        password = strong_password()
        d.create_user("fuzz-admin", "admin", password)
        session = d.login("fuzz-admin", password)
        token = d.create_token(session["token"], "admin")["token"]
        # Something to find for the operations that take a project or an app.
        d.ok("POST", "/projects", token=token, json={"name": "fuzz"})
        d.ok(
            "POST", "/projects/fuzz/apps", token=token, json={"name": "web", "git_url": str(d.repos / "none")}
        )
        spec = d.ok("GET", "/openapi.json")
        yield Fuzzer(d, spec, token)
    finally:
        d.stop()


def test_the_openapi_document_lists_the_account_operations(fuzzer: Fuzzer) -> None:
    paths = fuzzer.spec["paths"]
    for path in (
        "/v1/login",
        "/v1/refresh",
        "/v1/users",
        "/v1/tokens",
        "/v1/sessions",
        "/v1/invites",
        "/v1/audit",
    ):
        assert path in paths, f"{path} is not in the OpenAPI document"


def test_fuzzing_with_an_admin_token_finds_no_server_error_and_only_problem_json_refusals(
    fuzzer: Fuzzer,
) -> None:
    fuzzer.run(with_token=True, examples=EXAMPLES_WITH_TOKEN)
    assert fuzzer.sent > 100
    assert not fuzzer.problems, f"{len(fuzzer.problems)} problems:\n" + "\n".join(fuzzer.problems[:40])
    # The fuzzer's credential outlived the run (so every request above was authenticated).
    assert fuzzer.d.call("GET", "/me", token=fuzzer.admin_token).status_code == 200


def test_fuzzing_without_a_token_finds_no_server_error_and_nothing_answers_but_the_public_operations(
    fuzzer: Fuzzer,
) -> None:
    fuzzer.problems.clear()
    fuzzer.run(with_token=False, examples=EXAMPLES_WITHOUT_TOKEN)
    assert not fuzzer.problems, f"{len(fuzzer.problems)} problems:\n" + "\n".join(fuzzer.problems[:40])
