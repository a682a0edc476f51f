"""The operation table (``mist_core.operations``) against the interface and the permission table, and what the
daemon's routes, ``RemoteMist`` and docs/api.md make of it: a row that disagrees with ``MistAPI`` is refused
with a message naming the mistake, the OpenAPI document says what the table says, ``RemoteMist`` builds each
request from its arguments, and the committed docs/api.md is what ``make docs`` writes."""

from __future__ import annotations

import importlib.util
import inspect
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mist_core.api import MistAPI
from mist_core.auth import permissions
from mist_core.client import RemoteMist, _Call
from mist_core.errors import InvalidInput
from mist_core.execs import MEDIA_TYPE
from mist_core.models import AppSpec, DomainSettings, ProjectChanges
from mist_core.operations import (
    EMPTY,
    OPERATIONS,
    ROWS,
    TAIL,
    Row,
    TableError,
    interface_operations,
    op,
    parts,
    resolve_table,
)

ROOT = Path(__file__).resolve().parents[2]


def _rows(name: str, **changes: Any) -> list[Row]:
    """The table with the row of ``name`` changed."""
    return [replace(r, **changes) if r.name == name else r for r in ROWS]


def _refused(rows: list[Row]) -> str:
    with pytest.raises(TableError) as caught:
        resolve_table(rows)
    return str(caught.value)


# ---------------------------------------------------------------------------------------------- agreement


def test_the_table_the_interface_and_the_permission_table_name_the_same_operations() -> None:
    assert list(OPERATIONS) == [r.name for r in ROWS]
    assert sorted(OPERATIONS) == sorted(interface_operations())
    assert sorted(OPERATIONS) == sorted(permissions.PERMISSIONS)


def test_an_operation_of_the_interface_without_a_row_is_refused() -> None:
    message = _refused([r for r in ROWS if r.name != "apps.restart"])
    assert "apps.restart" in message and "no row" in message


def test_a_row_that_names_no_operation_of_the_interface_is_refused() -> None:
    message = _refused([*ROWS, op("apps.frobnicate", "POST", "/projects/{project}/apps/{app}/frobnicate")])
    assert "apps.frobnicate" in message and "names no operation" in message


def test_two_rows_for_one_operation_are_refused() -> None:
    assert "two rows for apps.get" in _refused([*ROWS, op("apps.get", "GET", "/apps/{app_ref}")])


def test_an_operation_without_a_permission_rule_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(permissions.PERMISSIONS, "env.unset")
    assert "env.unset has no rule in the permission table" in _refused(list(ROWS))


def test_a_permission_rule_for_no_operation_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(permissions.PERMISSIONS, "apps.frobnicate", permissions.DEVELOP)
    message = _refused(list(ROWS))
    assert "apps.frobnicate" in message and "permission table" in message


def test_a_path_placeholder_that_names_no_argument_is_refused() -> None:
    message = _refused(_rows("users.get", path="/users/{user}"))
    assert "users.get" in message and "{user}" in message and "names no argument" in message


def test_an_argument_that_cannot_travel_is_refused() -> None:
    # A model has no place in a query string, and a GET has no body.
    message = _refused(_rows("projects.update", method="GET"))
    assert "projects.update" in message and "'changes'" in message and "cannot travel" in message


def test_an_option_for_an_argument_the_method_does_not_have_is_refused() -> None:
    message = _refused(_rows("projects.list", wire={"search": "q"}))
    assert "projects.list" in message and "'search'" in message and "not an argument" in message


def test_two_arguments_under_one_name_are_refused() -> None:
    message = _refused(_rows("projects.list", wire={"query": "limit"}))
    assert "projects.list" in message and "'limit'" in message


def test_two_operations_on_one_route_are_refused() -> None:
    message = _refused(_rows("apps.stop", path="/projects/{project}/apps/{app}/start"))
    assert "apps.start" in message and "apps.stop" in message


def test_a_secret_that_is_no_field_of_the_body_is_refused() -> None:
    message = _refused(_rows("auth.login", secret=frozenset({"password", "pasword"})))
    assert "auth.login" in message and "pasword" in message


def test_a_stream_check_must_name_an_operation_it_can_call() -> None:
    assert "is not an operation" in _refused(_rows("apps.logs", check="apps.peek"))
    assert "needs ['deployment_id']" in _refused(_rows("apps.logs", check="deployments.get"))
    assert "only a stream" in _refused(_rows("apps.get", check="apps.get"))


# ---------------------------------------------------------------------------------------------- derived


def test_arguments_are_placed_from_the_signature() -> None:
    def placed(name: str) -> list[tuple[str, str, str]]:
        return [(a.name, a.where, a.wire) for a in OPERATIONS[name].arguments]

    assert placed("apps.deploy") == [("app_ref", "app", "project/app"), ("ref", "body", "ref")]
    assert placed("apps.create") == [("app_ref", "project+name", "project/app"), ("spec", "spread", "spec")]
    assert placed("projects.update") == [("name", "path", "name"), ("changes", "model", "changes")]
    assert placed("git.branches") == [("provider", "path", "name"), ("repo", "query", "repo")]
    assert placed("certificates.list") == [("app_ref", "query", "app")]
    assert OPERATIONS["apps.delete"].status == 204 and OPERATIONS["apps.get"].status == 200
    assert OPERATIONS["apps.logs"].stream and not OPERATIONS["apps.get"].stream
    assert OPERATIONS["apps.deploy"].body_optional and not OPERATIONS["env.set"].body_optional


def test_the_bodies_never_show_a_secret_in_a_repr() -> None:
    seen = 0
    for operation in OPERATIONS.values():
        model = operation.body_model
        if model is None or not operation.row.secret:
            continue
        # Required fields get a value (every one of them is a string here), secret ones a recognisable one.
        values = {name: f"sentinel-{name}" for name, _, default in operation.body_fields if default is EMPTY}
        values |= {name: f"sentinel-{name}" for name in operation.row.secret}
        body = model.model_validate(values)
        for name in operation.row.secret:
            assert f"sentinel-{name}" not in repr(body), (operation.name, name)
            assert getattr(body, name) == f"sentinel-{name}"
        seen += 1
    assert seen >= 9


def test_every_body_field_that_carries_a_credential_is_secret() -> None:
    # A new operation taking a password or a key must say so in its row, or this fails.
    credential = re.compile(r"password|token|totp|code|current|new|key_pem|private_key|webhook_secret")
    for operation in OPERATIONS.values():
        for name, annotation, _ in operation.body_fields:
            if credential.fullmatch(name) and str in (annotation, *getattr(annotation, "__args__", ())):
                assert name in operation.row.secret, f"{operation.name}: {name} is not in its row's secret"


def test_the_tail_codec_turns_every_line_into_all_and_back() -> None:
    default = inspect.signature(parts()["apps"].logs).parameters["tail"].default
    assert TAIL.decode(None) == default == 200
    assert TAIL.encode(None) == "all" and TAIL.decode("all") is None
    assert TAIL.decode(TAIL.encode(5)) == 5
    with pytest.raises(InvalidInput):
        TAIL.decode("-1")


# ---------------------------------------------------------------------------------------------- the daemon


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    from mist_core.server.app import create_app

    class NoCore:
        def api(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("not called")

    return create_app(NoCore()).openapi()


def test_the_openapi_document_describes_every_operation_as_the_table_says(openapi: dict[str, Any]) -> None:
    routes = {
        route["operationId"]: (method.upper(), path, route)
        for path, item in openapi["paths"].items()
        for method, route in item.items()
    }
    assert sorted(routes) == sorted(OPERATIONS)
    for name, operation in OPERATIONS.items():
        method, path, route = routes[name]
        assert (method, path) == (operation.method, "/v1" + operation.path), name
        assert str(operation.status) in route["responses"], name
        where = {(p["name"], p["in"]): p for p in route.get("parameters", [])}
        expected = {(a.wire, "query") for a in operation.placed("query")}
        expected |= {(w, "path") for w in re.findall(r"\{([^}]+)\}", operation.path)}
        assert set(where) == expected, name
        for a in operation.placed("query"):
            assert where[a.wire, "query"].get("required", False) == (a.required and a.codec is None), name
        body = route.get("requestBody")
        assert (body is not None) == (operation.body_model is not None), name
        if operation.duplex:
            # The frames of a session: required, even when its start frame may be empty.
            assert body["required"] and list(body["content"]) == [MEDIA_TYPE], name
            assert list(route["responses"]["200"]["content"]) == [MEDIA_TYPE], name
            continue
        if body is not None:
            assert bool(body.get("required")) != operation.body_optional, name
        content = route["responses"][str(operation.status)].get("content", {})
        if operation.stream:
            assert list(content) == ["text/event-stream"], name
        elif operation.returns is str:
            assert list(content) == ["text/plain"], name
        elif operation.returns is not None:
            assert "$ref" in str(content["application/json"]["schema"]), name


def test_the_openapi_document_types_query_parameters_and_body_fields(openapi: dict[str, Any]) -> None:
    audit = openapi["paths"]["/v1/audit"]["get"]
    types = {p["name"]: p["schema"] for p in audit["parameters"]}
    assert types["limit"]["type"] == "integer" and types["limit"]["default"] == 100
    assert {"type": "string", "format": "date-time"} in types["since"]["anyOf"]
    schemas = openapi["components"]["schemas"]
    body = schemas["TokensCreateRequest"]
    assert body["required"] == ["name"] and body["additionalProperties"] is False
    assert body["properties"]["scope"]["enum"] == ["read", "deploy", "admin"]
    assert body["properties"]["expires_days"]["default"] == 90
    create = schemas["AppsCreateRequest"]
    assert "name" in create["required"] and "git_url" in create["required"]


# ---------------------------------------------------------------------------------------------- the client


def test_remote_mist_has_every_method_of_the_interface_with_its_signature() -> None:
    remote = RemoteMist("unix:///nonexistent/mist.sock")
    assert isinstance(remote, MistAPI)
    for name in OPERATIONS:
        part, method = name.split(".")
        interface = getattr(parts()[part], method)
        implemented = getattr(getattr(remote, part), method)
        assert inspect.signature(implemented) == inspect.signature(interface).replace(
            parameters=list(inspect.signature(interface).parameters.values())[1:]
        ), name
        assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(interface), name


def _request(name: str, *args: Any, **kwargs: Any) -> tuple[str, dict[str, Any], Any]:
    return _Call(OPERATIONS[name]).request(args, kwargs)


def test_remote_requests_are_built_from_the_arguments() -> None:
    assert _request("apps.deploy", "shop/web") == ("/v1/projects/shop/apps/web/deploy", {}, {"ref": None})
    assert _request("apps.logs", "shop/web", tail=None, follow=True) == (
        "/v1/projects/shop/apps/web/logs",
        {"follow": "true", "tail": "all"},
        None,
    )
    assert _request("projects.list", query="we") == (
        "/v1/projects",
        {"q": "we", "limit": 100, "offset": 0},
        None,
    )
    assert _request("apps.create", "shop/web", AppSpec(git_url="https://example.com/a.git")) == (
        "/v1/projects/shop/apps",
        {},
        {"name": "web", "git_url": "https://example.com/a.git"},
    )
    assert _request("domains.add", "shop/web", "example.com", DomainSettings(https=False))[2] == {
        "name": "example.com",
        "https": False,
    }
    # Only the fields given travel, so a partial update changes only them.
    assert _request("projects.update", "shop", ProjectChanges(description="d"))[2] == {"description": "d"}
    # ``null`` is "never expires", so it is sent rather than left out.
    assert _request("tokens.create", "ci", expires_days=None)[2]["expires_days"] is None
    assert _request("deployments.get", 12) == ("/v1/deployments/12", {}, None)


def test_remote_names_are_escaped_so_they_cannot_reach_another_route() -> None:
    assert _request("domains.remove", "shop/web", "..")[0] == "/v1/projects/shop/apps/web/domains/%2E%2E"
    assert _request("users.get", "a/b?c")[0] == "/v1/users/a%2Fb%3Fc"


@pytest.mark.parametrize("name", ["apps.get", "certificates.list", "apps.create"])
def test_a_malformed_app_name_is_refused_before_anything_is_sent(name: str) -> None:
    args: tuple[Any, ...] = ("web",) if name != "apps.create" else ("web", AppSpec(git_url="x"))
    with pytest.raises(InvalidInput) as caught:
        _request(name, *args)
    assert caught.value.field == "app" and "project/app" in caught.value.message


# ---------------------------------------------------------------------------------------------- the docs


def test_docs_api_md_is_what_make_docs_writes() -> None:
    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "scripts" / "api_docs.py")
    assert spec is not None and spec.loader is not None
    api_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api_docs)
    committed = (ROOT / "docs" / "api.md").read_text()
    assert api_docs.render(committed) == committed, "docs/api.md is not up to date: run `make docs`"
    for name in OPERATIONS:
        assert committed.count(f"| `{name}` |") == 1, name
