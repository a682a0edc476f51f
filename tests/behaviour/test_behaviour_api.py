"""What every ``MistAPI`` does, checked against the embedded core and the daemon alike."""

from __future__ import annotations

import asyncio

import pytest

from mist_core.api import MistAPI
from mist_core.errors import Conflict, InvalidInput, MistError, NotFound, Unauthenticated
from mist_core.models import AppChanges, AppSpec, ProjectChanges

OWNER = "owner"  # the account tests/behaviour/conftest.py sets up
PASSWORD = "correct horse battery staple"
GIT_URL = "https://example.com/acme/web.git"


async def first(stream, timeout: float = 10.0):
    """The first item of a stream, then close it (the way a UI stops following)."""
    iterator = stream.__aiter__()
    try:
        return await asyncio.wait_for(iterator.__anext__(), timeout)
    finally:
        await iterator.aclose()


# ---------------------------------------------------------------------------------------------- auth


async def test_fresh_instance_needs_setup(fresh: MistAPI) -> None:
    status = await fresh.auth.status()
    assert status.needs_setup is True
    assert status.version


async def test_setup_creates_the_owner_and_logs_it_in(backend, fresh: MistAPI) -> None:
    session = await fresh.auth.setup(OWNER, PASSWORD)
    assert session.user.username == OWNER
    assert session.user.role == "owner"
    assert session.token
    mist = await backend.reopen(fresh, session.token)
    assert (await mist.auth.whoami()).username == OWNER
    assert (await mist.auth.status()).needs_setup is False


async def test_second_setup_is_refused(mist: MistAPI) -> None:
    with pytest.raises(MistError) as caught:
        await mist.auth.setup("intruder", PASSWORD)
    assert caught.value.status in (403, 409)


async def test_login_with_the_right_password_gives_a_working_token(backend, mist: MistAPI) -> None:
    session = await mist.auth.login(OWNER, PASSWORD)
    other = await backend.reopen(mist, session.token)
    assert (await other.auth.whoami()).username == OWNER


async def test_login_with_a_wrong_password_is_refused(mist: MistAPI) -> None:
    with pytest.raises(Unauthenticated):
        await mist.auth.login(OWNER, "not the password")


async def test_calls_without_a_token_are_refused(backend, mist: MistAPI) -> None:
    anonymous = await backend.reopen(mist, None)
    with pytest.raises(Unauthenticated):
        await anonymous.auth.whoami()
    with pytest.raises(Unauthenticated):
        await anonymous.projects.list()
    with pytest.raises(Unauthenticated):
        await anonymous.projects.create("sneaky")


async def test_a_made_up_token_is_refused(backend, mist: MistAPI) -> None:
    forged = await backend.reopen(mist, "not-a-real-token")
    with pytest.raises(Unauthenticated):
        await forged.apps.list()


async def test_logout_ends_the_session(backend, mist: MistAPI) -> None:
    session = await mist.auth.login(OWNER, PASSWORD)
    mist = await backend.reopen(mist, session.token)
    await mist.auth.logout()
    again = await backend.reopen(mist, session.token)
    with pytest.raises(Unauthenticated):
        await again.auth.whoami()


async def test_users_lists_the_owner(mist: MistAPI) -> None:
    users = await mist.users.list()
    assert [u.username for u in users] == [OWNER]


# ---------------------------------------------------------------------------------------------- projects


async def test_project_create_get_list(mist: MistAPI) -> None:
    created = await mist.projects.create("shop", "the web shop", ["prod"])
    assert created.name == "shop"
    assert created.description == "the web shop"
    assert created.tags == ["prod"]
    assert created.owner == OWNER
    assert (await mist.projects.get("shop")).id == created.id
    page = await mist.projects.list()
    assert [p.name for p in page.items] == ["shop"]
    assert page.total == 1


async def test_project_list_filters_by_query_and_pages(mist: MistAPI) -> None:
    for name in ("alpha", "beta", "alphabet"):
        await mist.projects.create(name)
    found = await mist.projects.list(query="alpha")
    assert sorted(p.name for p in found.items) == ["alpha", "alphabet"]
    first_page = await mist.projects.list(limit=2)
    assert len(first_page.items) == 2
    assert first_page.total == 3
    assert first_page.next_offset == 2
    last_page = await mist.projects.list(limit=2, offset=2)
    assert len(last_page.items) == 1
    assert last_page.next_offset is None


async def test_project_update_renames_and_retags(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    updated = await mist.projects.update("shop", ProjectChanges(name="store", tags=["a", "b"]))
    assert updated.name == "store"
    assert updated.tags == ["a", "b"]
    with pytest.raises(NotFound):
        await mist.projects.get("shop")


async def test_project_duplicate_name_is_a_conflict(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    with pytest.raises(Conflict):
        await mist.projects.create("shop")


async def test_project_bad_name_is_invalid_input_naming_the_field(mist: MistAPI) -> None:
    with pytest.raises(InvalidInput) as caught:
        await mist.projects.create("Not A Name!")
    assert caught.value.field is not None and "name" in caught.value.field


async def test_unknown_project_is_not_found(mist: MistAPI) -> None:
    with pytest.raises(NotFound):
        await mist.projects.get("nope")


async def test_project_delete_is_refused_while_it_has_apps(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    await mist.apps.create("shop/web", AppSpec(git_url=GIT_URL))
    with pytest.raises(Conflict) as caught:
        await mist.projects.delete("shop")
    assert "app" in caught.value.message
    await mist.apps.delete("shop/web")
    await mist.projects.delete("shop")
    with pytest.raises(NotFound):
        await mist.projects.get("shop")


# ---------------------------------------------------------------------------------------------- apps


async def test_app_create_get_list(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    app = await mist.apps.create("shop/web", AppSpec(git_url=GIT_URL, port=8080))
    assert (app.project, app.name, app.status) == ("shop", "web", "new")
    assert app.spec.port == 8080
    assert (await mist.apps.get("shop/web")).id == app.id
    page = await mist.apps.list(project="shop")
    assert [a.ref for a in page.items] == ["shop/web"]
    assert (await mist.projects.get("shop")).app_count == 1


async def test_app_list_searches_across_projects(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    await mist.projects.create("blog")
    await mist.apps.create("shop/web", AppSpec(git_url=GIT_URL))
    await mist.apps.create("shop/worker", AppSpec(git_url=GIT_URL))
    await mist.apps.create("blog/web", AppSpec(git_url=GIT_URL))
    assert (await mist.apps.list()).total == 3
    assert sorted(a.ref for a in (await mist.apps.list(query="web")).items) == ["blog/web", "shop/web"]


async def test_app_update_changes_the_spec(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    await mist.apps.create("shop/web", AppSpec(git_url=GIT_URL, port=8080))
    updated = await mist.apps.update("shop/web", AppChanges(branch="release", port=9090))
    assert updated.spec.branch == "release"
    assert updated.spec.port == 9090
    assert (await mist.apps.get("shop/web")).spec.port == 9090


async def test_app_with_a_port_out_of_range_is_refused_naming_the_field(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    with pytest.raises(InvalidInput) as caught:
        await mist.apps.create("shop/web", AppSpec(git_url=GIT_URL, port=70000))
    assert caught.value.field is not None and "port" in caught.value.field


async def test_app_with_a_bad_git_url_is_refused_naming_the_field(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    with pytest.raises(InvalidInput) as caught:
        await mist.apps.create("shop/web", AppSpec(git_url="ext::sh -c touch% /tmp/pwned"))
    assert caught.value.field is not None and "git_url" in caught.value.field


async def test_app_in_an_unknown_project_is_not_found(mist: MistAPI) -> None:
    with pytest.raises(NotFound):
        await mist.apps.create("nowhere/web", AppSpec(git_url=GIT_URL))


async def test_app_duplicate_name_is_a_conflict(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    await mist.apps.create("shop/web", AppSpec(git_url=GIT_URL))
    with pytest.raises(Conflict):
        await mist.apps.create("shop/web", AppSpec(git_url=GIT_URL))


async def test_app_delete_forgets_it(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    await mist.apps.create("shop/web", AppSpec(git_url=GIT_URL))
    await mist.apps.delete("shop/web")
    with pytest.raises(NotFound):
        await mist.apps.get("shop/web")


# ---------------------------------------------------------------------------------------------- env


@pytest.fixture
async def app_ref(mist: MistAPI) -> str:
    await mist.projects.create("shop")
    await mist.apps.create("shop/web", AppSpec(git_url=GIT_URL))
    return "shop/web"


async def test_env_secret_values_are_masked_unless_revealed(mist: MistAPI, app_ref: str) -> None:
    await mist.env.set(app_ref, "LOG_LEVEL", "debug")
    await mist.env.set(app_ref, "DB_PASSWORD", "hunter2", secret=True)
    masked = {v.key: v for v in await mist.env.list(app_ref)}
    assert masked["LOG_LEVEL"].value == "debug"
    assert masked["DB_PASSWORD"].value is None
    assert masked["DB_PASSWORD"].secret is True
    revealed = {v.key: v.value for v in await mist.env.list(app_ref, reveal=True)}
    assert revealed == {"LOG_LEVEL": "debug", "DB_PASSWORD": "hunter2"}


async def test_revealing_secret_values_leaves_an_audit_entry(mist: MistAPI, app_ref: str) -> None:
    await mist.env.set(app_ref, "DB_PASSWORD", "hunter2", secret=True)
    await mist.env.list(app_ref)
    assert (await mist.audit.list(action="env.reveal")).items == []
    await mist.env.list(app_ref, reveal=True)
    await mist.env.export_dotenv(app_ref, reveal=True)
    entries = (await mist.audit.list(action="env.reveal")).items
    assert [(e.actor, e.project) for e in entries] == [(OWNER, "shop"), (OWNER, "shop")]
    assert all("hunter2" not in e.model_dump_json() for e in entries)


async def test_env_unset_removes_the_variable(mist: MistAPI, app_ref: str) -> None:
    await mist.env.set(app_ref, "A", "1")
    await mist.env.unset(app_ref, "A")
    assert await mist.env.list(app_ref) == []


async def test_env_bad_key_is_refused(mist: MistAPI, app_ref: str) -> None:
    with pytest.raises(InvalidInput):
        await mist.env.set(app_ref, "NOT A KEY", "x")


async def test_env_import_and_export_round_trip(mist: MistAPI, app_ref: str) -> None:
    imported = await mist.env.import_dotenv(app_ref, "A=1\nB=two words\n# a comment\n")
    assert sorted(v.key for v in imported) == ["A", "B"]
    await mist.env.set(app_ref, "TOKEN", "s3cret", secret=True)
    exported = await mist.env.export_dotenv(app_ref)
    assert "A=1" in exported
    assert "s3cret" not in exported
    assert "s3cret" in await mist.env.export_dotenv(app_ref, reveal=True)


async def test_env_import_with_one_bad_line_sets_nothing(mist: MistAPI, app_ref: str) -> None:
    with pytest.raises(InvalidInput):
        await mist.env.import_dotenv(app_ref, "GOOD=1\nthis line is not an assignment\n")
    assert await mist.env.list(app_ref) == []


# ---------------------------------------------------------------------------------------------- settings


async def test_settings_list_get_and_set(mist: MistAPI) -> None:
    keys = {s.key for s in await mist.settings.list()}
    assert "images_per_app" in keys
    changed = await mist.settings.set("images_per_app", "5")
    assert changed.value == "5"
    assert (await mist.settings.get("images_per_app")).value == "5"


async def test_setting_a_bad_value_is_refused_with_the_allowed_range(mist: MistAPI) -> None:
    with pytest.raises(InvalidInput) as caught:
        await mist.settings.set("images_per_app", "lots")
    assert "images_per_app" in caught.value.message


async def test_unknown_setting_is_refused(mist: MistAPI) -> None:
    with pytest.raises((InvalidInput, NotFound)):
        await mist.settings.get("no_such_setting")


# ---------------------------------------------------------------------------------------------- deployments


async def test_new_app_has_no_deployments(mist: MistAPI, app_ref: str) -> None:
    page = await mist.deployments.list(app_ref)
    assert page.items == []
    assert page.total == 0


async def test_unknown_deployment_is_not_found(mist: MistAPI) -> None:
    with pytest.raises(NotFound):
        await mist.deployments.get(999999)
    with pytest.raises(NotFound):
        async for _ in mist.deployments.log(999999):
            pass


# ---------------------------------------------------------------------------------------------- runtime


@pytest.mark.docker
async def test_containers_list_holds_only_mist_containers(mist: MistAPI) -> None:
    containers = await mist.containers.list(all=True)
    assert all(c.project is not None for c in containers)


@pytest.mark.docker
async def test_metrics_current_describes_the_machine(mist: MistAPI) -> None:
    sample = await mist.metrics.current()
    assert sample.system.cpu_count >= 1
    assert sample.system.memory_total > 0


@pytest.mark.docker
async def test_metrics_stream_yields_a_sample(mist: MistAPI) -> None:
    sample = await first(mist.metrics.stream())
    assert sample.system.memory_total > 0
    history = await mist.metrics.history(seconds=300)
    assert isinstance(history, list)


async def test_event_stream_sees_a_project_created(mist: MistAPI) -> None:
    stream = mist.events.stream().__aiter__()
    try:
        waiting = asyncio.ensure_future(stream.__anext__())
        # Give the subscription time to register before the change it must see.
        await asyncio.sleep(0.3)
        await mist.projects.create("shop")
        event = await asyncio.wait_for(waiting, 10)
        while event.kind != "project":
            event = await asyncio.wait_for(stream.__anext__(), 10)
        assert event.project == "shop"
    finally:
        await stream.aclose()


async def test_audit_records_who_created_a_project(mist: MistAPI) -> None:
    await mist.projects.create("shop")
    page = await mist.audit.list(action="project.")
    assert any(e.action == "project.create" and e.actor == OWNER for e in page.items)
