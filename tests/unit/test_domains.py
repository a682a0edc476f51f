"""Domain names, custom response headers and domain options are validated; domains are stored per app and a
name can belong to one app only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mist_core.domains import (
    DomainOptions,
    add_domain,
    get_domain,
    list_domains,
    remove_domain,
    update_domain,
    validate_domain,
    validate_header_name,
    validate_header_value,
    validate_headers,
    validate_path_prefix,
)
from mist_core.errors import Conflict, InvalidInput, NotFound
from mist_core.store import Store, ts

try:
    from tests.unit.injection_corpus import DOMAINS, HEADER_VALUES
except ImportError:  # run from inside tests/
    from injection_corpus import DOMAINS, HEADER_VALUES  # type: ignore[no-redef]


@pytest.mark.parametrize("value", DOMAINS)
def test_every_hostile_domain_in_the_corpus_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        validate_domain(value)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("app.example.com", "app.example.com"),
        ("App.Example.COM", "app.example.com"),
        ("example.com.", "example.com"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("日本語.jp", "xn--wgv71a119e.jp"),
        ("a-b.c-d.example", "a-b.c-d.example"),
    ],
)
def test_valid_domains_are_stored_lowercase_in_their_ascii_form(given: str, stored: str) -> None:
    assert validate_domain(given) == stored


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("localhost", "single label"),
        ("1.2.3.4", "IP address"),
        ("example.123", "ends in a number"),
        ("ab--cd.com", "DNS reserves"),
        ("a_b.com", "letters, digits and '-'"),
        ("https://a.com", "no scheme"),
        ("\u0440\u0430ypal.com", "mixes the scripts"),
        ("a." + "b" * 250 + ".com", "characters"),
    ],
)
def test_refused_domains_say_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_domain(value)


def test_a_wildcard_is_refused_with_the_reason_unless_allowed() -> None:
    with pytest.raises(InvalidInput, match="DNS-01"):
        validate_domain("*.example.com")
    assert validate_domain("*.Example.com", allow_wildcard=True) == "*.example.com"
    with pytest.raises(InvalidInput):
        validate_domain("a.*.example.com", allow_wildcard=True)


@pytest.mark.parametrize("value", HEADER_VALUES)
def test_every_hostile_header_value_in_the_corpus_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        validate_header_value(value, "X-Test")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("X Bad", "HTTP token"),
        ("X-Bad:", "HTTP token"),
        ("X-\u00e9", "HTTP token"),
        ("Connection", "hop-by-hop"),
        ("transfer-encoding", "hop-by-hop"),
        ("Strict-Transport-Security", "HSTS option"),
        ("Location", "redirect"),
        ("X-" + "a" * 100, "too long"),
    ],
)
def test_header_names_that_are_malformed_hop_by_hop_or_owned_by_mist_are_refused(
    name: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_header_name(name)


def test_headers_are_sorted_and_duplicates_differing_in_case_refused() -> None:
    assert validate_headers({"X-B": "2", "x-a": "1", "X-Robots-Tag": ""}) == {
        "x-a": "1",
        "X-B": "2",
        "X-Robots-Tag": "",
    }
    with pytest.raises(InvalidInput, match="twice"):
        validate_headers({"X-A": "1", "x-a": "2"})
    with pytest.raises(InvalidInput, match="whitespace"):
        validate_headers({"X-A": " padded"})


@pytest.mark.parametrize(
    ("value", "result"), [("", ""), ("/", ""), ("/api", "/api"), ("/api/v1/", "/api/v1")]
)
def test_path_prefixes_are_normalised(value: str, result: str) -> None:
    assert validate_path_prefix(value) == result


@pytest.mark.parametrize("value", ["api", "/a//b", "/a/../b", "/a b", "/a`b", "/a)||Host(`x", "/%2e"])
def test_path_prefixes_with_unsafe_segments_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        validate_path_prefix(value)


async def _store(tmp_path: Path) -> Store:
    store = await Store.open(tmp_path / "mist.db")
    async with store.write() as w:
        await w.execute(
            "INSERT INTO projects (id, name, created_at, updated_at) VALUES (1, 'shop', ?, ?)", (ts(), ts())
        )
        for app_id, name in ((1, "web"), (2, "admin")):
            await w.execute(
                "INSERT INTO apps (id, project_id, name, spec, created_at, updated_at) VALUES (?, 1, ?, ?, ?, ?)",
                (app_id, name, json.dumps({"git_url": "https://example.com/r.git"}), ts(), ts()),
            )
    return store


async def test_domains_are_added_listed_updated_and_removed_per_app(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:
        added = await add_domain(
            store,
            1,
            "Shop.Example.com",
            DomainOptions(hsts_max_age=600, headers={"X-Robots-Tag": "noindex"}, path_prefix="/app/"),
        )
        assert (added.name, added.project, added.app) == ("shop.example.com", "shop", "web")
        assert added.path_prefix == "/app" and added.headers == {"X-Robots-Tag": "noindex"}
        await add_domain(store, 1, "api.example.com", DomainOptions(https=False))
        assert [d.name for d in await list_domains(store, 1)] == ["api.example.com", "shop.example.com"]
        assert await list_domains(store, 2) == []

        updated = await update_domain(store, 1, "shop.example.com", DomainOptions(security_headers=False))
        assert (updated.security_headers, updated.hsts_max_age, updated.headers) == (False, 0, {})
        assert (await get_domain(store, "shop.example.com")).app_id == 1

        removed = await remove_domain(store, 1, "api.example.com")
        assert removed.name == "api.example.com"
        assert [d.name for d in await list_domains(store, 1)] == ["shop.example.com"]
        with pytest.raises(NotFound, match="mist domain list"):
            await remove_domain(store, 1, "api.example.com")
    finally:
        await store.close()


async def test_a_domain_used_by_another_app_is_refused_naming_that_app(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:
        await add_domain(store, 1, "example.com", DomainOptions(www_redirect="to-apex"))
        with pytest.raises(Conflict, match="shop/web"):
            await add_domain(store, 2, "example.com")
        # The www name answers with a redirect for shop/web, so it is taken too.
        with pytest.raises(Conflict, match="shop/web"):
            await add_domain(store, 2, "www.example.com")
        with pytest.raises(Conflict, match="already a domain of shop/web"):
            await add_domain(store, 1, "EXAMPLE.com")
    finally:
        await store.close()


async def test_domains_go_when_their_app_is_deleted(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:
        await add_domain(store, 2, "admin.example.com")
        async with store.write() as w:
            await w.execute("DELETE FROM apps WHERE id = 2")
        assert await store.scalar("SELECT COUNT(*) FROM domains") == 0
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("example.com", DomainOptions(https=False, hsts_max_age=60), "HSTS needs HTTPS"),
        ("example.com", DomainOptions(hsts_max_age=-1), "out of range"),
        ("example.com", DomainOptions(hsts_max_age=10**9), "out of range"),
        ("www.example.com", DomainOptions(www_redirect="to-apex"), "add the apex example.com"),
        ("example.com", DomainOptions(www_redirect="to-www"), "add www.example.com"),
        ("example.com", DomainOptions(www_redirect="sideways"), "to-apex, to-www"),  # type: ignore[arg-type]
        ("example.com", DomainOptions(headers={"Set\r\nX": "1"}), "HTTP token"),
    ],
)
async def test_inconsistent_options_are_refused_before_anything_is_stored(
    tmp_path: Path, name: str, options: DomainOptions, message: str
) -> None:
    store = await _store(tmp_path)
    try:
        with pytest.raises(InvalidInput, match=message):
            await add_domain(store, 1, name, options)
        assert await list_domains(store, 1) == []
    finally:
        await store.close()


async def test_adding_a_domain_to_a_missing_app_is_not_found(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:
        with pytest.raises(NotFound):
            await add_domain(store, 99, "example.com")
    finally:
        await store.close()
