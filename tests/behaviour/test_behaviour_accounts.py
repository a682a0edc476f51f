"""Accounts, roles, sessions, tokens and two-factor login, checked against the embedded core and the daemon."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mist_core.api import MistAPI
from mist_core.auth.totp import totp_now
from mist_core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    TotpRequired,
    Unauthenticated,
)
from mist_core.models import AppSpec, UserChanges

from .conftest import OWNER, PASSWORD, Backend

GIT_URL = "https://example.com/acme/web.git"
DEV_PASSWORD = "a developer's own passphrase"


class Users:
    """Handles on one instance for several people at once."""

    def __init__(self, backend: Backend, owner: MistAPI) -> None:
        self.backend = backend
        self.owner = owner

    async def handle(self, token: str | None = None) -> MistAPI:
        if self.backend.kind == "local":
            return owner_core(self.owner).api(token)
        from mist_core.client import RemoteMist

        api = RemoteMist(f"unix://{self.backend.socket_path}", token)
        self.backend._opened.append(api)
        return api

    async def login(self, username: str, password: str = DEV_PASSWORD, **kw: str) -> MistAPI:
        api = await self.handle()
        await api.auth.login(username, password, **kw)
        return api

    async def person(self, username: str, role: str = "developer") -> MistAPI:
        await self.owner.users.create(username, DEV_PASSWORD, role=role)  # type: ignore[arg-type]
        return await self.login(username)


def owner_core(api: MistAPI):  # type: ignore[no-untyped-def]
    return api.core  # type: ignore[attr-defined]


@pytest.fixture
async def people(backend: Backend, mist: MistAPI) -> Users:
    return Users(backend, mist)


# ---------------------------------------------------------------------------------------------- sessions


async def test_login_gives_an_access_token_and_a_one_use_refresh_token(people: Users) -> None:
    api = await people.handle()
    session = await api.auth.login(OWNER, PASSWORD)
    assert (
        session.token.count(".") == 2
        and session.refresh_token
        and session.refresh_token.startswith("mist_r_")
    )
    renewed = await (await people.handle()).auth.refresh(session.refresh_token)
    assert renewed.refresh_token != session.refresh_token
    assert (await (await people.handle(renewed.token)).auth.whoami()).username == OWNER
    # The old refresh token again: someone copied it, so the whole session ends, the new pair with it.
    with pytest.raises(Unauthenticated, match="used already"):
        await (await people.handle()).auth.refresh(session.refresh_token)
    with pytest.raises(Unauthenticated):
        await (await people.handle()).auth.refresh(renewed.refresh_token or "")
    with pytest.raises(Unauthenticated):
        await (await people.handle(renewed.token)).auth.whoami()


async def test_logout_ends_the_session(people: Users) -> None:
    api = await people.handle()
    session = await api.auth.login(OWNER, PASSWORD)
    await api.auth.logout()
    with pytest.raises(Unauthenticated):
        await (await people.handle(session.token)).auth.whoami()
    with pytest.raises(Unauthenticated):
        await (await people.handle()).auth.refresh(session.refresh_token or "")


async def test_sessions_are_listed_and_revoked_and_a_password_change_ends_the_others(people: Users) -> None:
    first = await people.login(OWNER, PASSWORD)
    second = await people.login(OWNER, PASSWORD)
    sessions = await first.sessions.list()
    assert len(sessions) >= 3 and sum(s.current for s in sessions) == 1
    current = next(s for s in sessions if s.current)
    await first.auth.change_password(PASSWORD, "another long passphrase")
    with pytest.raises(Unauthenticated):
        await second.auth.whoami()
    assert [s.id for s in await first.sessions.list()] == [current.id]
    with pytest.raises(PermissionDenied, match="password is wrong"):
        await first.auth.change_password("not it at all", "yet another passphrase")


async def test_wrong_passwords_lock_the_account_out(people: Users) -> None:
    await people.owner.users.create("dana", DEV_PASSWORD)
    api = await people.handle()
    for _ in range(5):
        with pytest.raises(Unauthenticated, match="wrong username or password"):
            await api.auth.login("dana", "wrong password here")
    with pytest.raises(TooManyAttempts, match="try again in"):
        await api.auth.login("dana", DEV_PASSWORD)  # even the right password, until the lock ends
    entries = await people.owner.audit.list(action="auth.login_failed")
    assert entries.total == 5 and entries.items[0].actor == "dana"


async def test_common_and_short_passwords_are_refused(people: Users) -> None:
    for password, message in (
        ("short", "too short"),
        ("qwerty123456", "most common"),
        ("aaaaaaaaaaaaaaaa", "most common"),
        ("erin-erin-erin-2026", "contains the username"),
    ):
        with pytest.raises(InvalidInput, match=message):
            await people.owner.users.create("erin", password)
    with pytest.raises(NotFound):
        await people.owner.users.get("erin")


# ---------------------------------------------------------------------------------------------- two-factor


async def test_two_factor_login_needs_a_fresh_code_or_a_recovery_code(people: Users) -> None:
    dev = await people.person("dev")
    setup = await dev.auth.totp_setup()
    assert setup.uri.startswith("otpauth://totp/Mist:dev?")
    with pytest.raises(InvalidInput, match="does not match"):
        await dev.auth.totp_enable("000000" if totp_now(setup.secret) != "000000" else "111111")
    code = totp_now(setup.secret)
    codes = (await dev.auth.totp_enable(code)).codes
    assert len(codes) == 10 and (await dev.auth.whoami()).totp_enabled

    api = await people.handle()
    with pytest.raises(TotpRequired):
        await api.auth.login("dev", DEV_PASSWORD)
    # The code that enabled it was used: it does not work a second time.
    with pytest.raises(Unauthenticated, match="two-factor code"):
        await api.auth.login("dev", DEV_PASSWORD, totp=code)
    await api.auth.login("dev", DEV_PASSWORD, totp=codes[0])
    assert (await api.auth.whoami()).username == "dev"
    with pytest.raises(Unauthenticated):
        await (await people.handle()).auth.login("dev", DEV_PASSWORD, totp=codes[0])

    await dev.auth.totp_disable(DEV_PASSWORD)
    await (await people.handle()).auth.login("dev", DEV_PASSWORD)


async def test_required_two_factor_lets_a_user_only_enrol(people: Users) -> None:
    dev = await people.person("dev")
    await people.owner.settings.set("require_2fa", "true")
    session = await (await people.handle()).auth.login("dev", DEV_PASSWORD)
    assert session.totp_enrollment_required
    dev = await people.handle(session.token)
    with pytest.raises(PermissionDenied, match="requires two-factor"):
        await dev.projects.list()
    setup = await dev.auth.totp_setup()
    await dev.auth.totp_enable(totp_now(setup.secret))
    assert (await dev.projects.list()).total == 0


# ---------------------------------------------------------------------------------------------- roles


async def test_members_see_their_projects_and_nobody_else_does(people: Users) -> None:
    owner = people.owner
    await owner.projects.create("shop")
    await owner.projects.create("secret-plans")
    await owner.apps.create("shop/web", AppSpec(git_url=GIT_URL))
    await owner.apps.create("secret-plans/web", AppSpec(git_url=GIT_URL))
    viewer = await people.person("val", role="viewer")
    dev = await people.person("dev")
    await owner.members.add("shop", "val", "viewer")
    await owner.members.add("shop", "dev", "developer")

    assert [p.name for p in (await viewer.projects.list()).items] == ["shop"]
    assert [a.ref for a in (await dev.apps.list()).items] == ["shop/web"]
    with pytest.raises(NotFound, match="no project 'secret-plans'"):
        await dev.projects.get("secret-plans")
    with pytest.raises(NotFound, match="no app 'secret-plans/web'"):
        await dev.apps.get("secret-plans/web")
    with pytest.raises(NotFound):
        await dev.env.set("secret-plans/web", "X", "1")

    await dev.env.set("shop/web", "API_KEY", "s3cr3t-value", secret=True)
    with pytest.raises(PermissionDenied):
        await viewer.env.set("shop/web", "X", "1")
    with pytest.raises(PermissionDenied, match="secret values"):
        await viewer.env.list("shop/web", reveal=True)
    assert [v.value for v in await viewer.env.list("shop/web")] == [None]
    with pytest.raises(PermissionDenied):
        await viewer.env.export_dotenv("shop/web", reveal=True)
    with pytest.raises(PermissionDenied):
        await dev.apps.delete("shop/web")
    with pytest.raises(PermissionDenied):
        await viewer.projects.create("mine")
    # A developer's own project: they administer it.
    await dev.projects.create("mine")
    assert [m.role for m in await dev.members.list("mine")] == ["admin"]


async def test_no_one_grants_more_than_they_hold_and_the_last_owner_stays(people: Users) -> None:
    admin = await people.person("ada", role="admin")
    with pytest.raises(PermissionDenied, match="cannot grant the role owner"):
        await admin.users.create("olga", DEV_PASSWORD, role="owner")
    with pytest.raises(PermissionDenied, match="cannot grant the role owner"):
        await admin.invites.create(username="olga", role="owner")
    with pytest.raises(PermissionDenied):
        await admin.users.set_role(OWNER, "viewer")
    with pytest.raises(Conflict, match="last owner"):
        await people.owner.users.set_role(OWNER, "admin")
    dev = await people.person("dev")
    with pytest.raises(PermissionDenied):
        await dev.users.create("x-user", DEV_PASSWORD, role="viewer")
    assert [u.username for u in await dev.users.list()] == ["dev"]


async def test_deleting_a_user_hands_their_projects_on(people: Users) -> None:
    dev = await people.person("dev")
    await dev.projects.create("devs-project")
    await people.owner.users.delete("dev", reassign_to=OWNER)
    project = await people.owner.projects.get("devs-project")
    assert project.owner == OWNER and OWNER in project.members
    with pytest.raises(Unauthenticated):
        await dev.auth.whoami()
    with pytest.raises(Conflict, match="your own account"):
        await people.owner.users.delete(OWNER)


async def test_profiles_change_and_emails_are_unique(people: Users) -> None:
    dev = await people.person("dev")
    user = await dev.users.update("dev", UserChanges(email="Dev@Example.com", full_name="Dev Eloper"))
    assert (user.email, user.full_name) == ("dev@example.com", "Dev Eloper")
    with pytest.raises(Conflict, match="email"):
        await people.owner.users.update(OWNER, UserChanges(email="dev@example.com"))
    with pytest.raises(NotFound):
        await dev.users.update(OWNER, UserChanges(full_name="Not Me"))


# ---------------------------------------------------------------------------------------------- invitations


async def test_an_invitation_is_one_use_and_bound_to_its_name(people: Users) -> None:
    await people.owner.projects.create("shop")
    created = await people.owner.invites.create(
        username="ivy", role="viewer", project="shop", project_role="developer"
    )
    anonymous = await people.handle()
    with pytest.raises(PermissionDenied, match="for the username 'ivy'"):
        await anonymous.invites.accept(created.token, "mallory", DEV_PASSWORD)
    session = await anonymous.invites.accept(created.token, "ivy", DEV_PASSWORD)
    assert session.user.role == "viewer"
    ivy = await people.handle(session.token)
    # An instance viewer is read-only everywhere, whatever the project role.
    assert [(m.username, m.role) for m in await ivy.members.list("shop")] == [
        ("ivy", "developer"),
        (OWNER, "admin"),
    ]
    with pytest.raises(PermissionDenied):
        await ivy.apps.create("shop/web", AppSpec(git_url=GIT_URL))
    with pytest.raises(Unauthenticated, match="not valid"):
        await (await people.handle()).invites.accept(created.token, "ivy2", DEV_PASSWORD)
    invites = await people.owner.invites.list()
    assert invites[0].accepted_at is not None and invites[0].created_by == OWNER


async def test_an_email_invitation_needs_that_email_and_can_be_revoked(people: Users) -> None:
    created = await people.owner.invites.create(email="new@example.com")
    anonymous = await people.handle()
    with pytest.raises(PermissionDenied, match="another email"):
        await anonymous.invites.accept(created.token, "newbie", DEV_PASSWORD, email="other@example.com")
    await people.owner.invites.revoke(created.invite.id)
    with pytest.raises(Unauthenticated):
        await anonymous.invites.accept(created.token, "newbie", DEV_PASSWORD, email="new@example.com")


# ---------------------------------------------------------------------------------------------- API tokens


async def test_api_tokens_are_scoped_bound_and_revocable(people: Users) -> None:
    owner = people.owner
    await owner.projects.create("shop")
    await owner.projects.create("other")
    await owner.apps.create("shop/web", AppSpec(git_url=GIT_URL))
    read = await owner.tokens.create("ci-read", scope="read")
    assert read.token.startswith("mist_t_") and read.info.scope == "read"
    reader = await people.handle(read.token)
    assert (await reader.apps.get("shop/web")).name == "web"
    with pytest.raises(PermissionDenied, match="scope"):
        await reader.apps.deploy("shop/web")
    with pytest.raises(PermissionDenied):
        await reader.env.list("shop/web", reveal=True)

    bound = await owner.tokens.create("shop-deploy", scope="deploy", project="shop", expires_days=1)
    deployer = await people.handle(bound.token)
    assert [p.name for p in (await deployer.projects.list()).items] == ["shop"]
    with pytest.raises(NotFound):
        await deployer.projects.get("other")
    with pytest.raises(PermissionDenied):
        await deployer.env.set("shop/web", "X", "1")
    with pytest.raises(PermissionDenied):
        await deployer.tokens.create("escalate", scope="admin")

    assert {t.name for t in await owner.tokens.list()} == {"ci-read", "shop-deploy"}
    await owner.tokens.revoke(read.info.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        await (await people.handle(read.token)).apps.list()
    entries = await owner.audit.list(action="token.")
    assert [e.action for e in entries.items] == ["token.revoke", "token.create", "token.create"]
    assert read.token not in str(entries.model_dump())


# ---------------------------------------------------------------------------------------------- audit, secrets


async def test_the_audit_log_says_who_as_what_from_where_and_filters(people: Users) -> None:
    await people.owner.projects.create("shop")
    dev = await people.person("dev")
    await people.owner.members.add("shop", "dev", "developer")
    await dev.apps.create("shop/web", AppSpec(git_url=GIT_URL))
    page = await people.owner.audit.list(actor="dev")
    entry = page.items[0]
    assert (entry.action, entry.actor_role, entry.project) == ("app.create", "developer", "shop")
    assert entry.source in ("local", "unix")
    member = (await people.owner.audit.list(action="member.")).items[0]
    assert member.detail["after"] == "developer" and member.detail["before"] is None
    assert (await people.owner.audit.list(since=entry.ts, action="app.")).total == 1
    assert (await people.owner.audit.list(until=entry.ts, action="app.")).total == 0
    # A developer sees only what they did themselves.
    assert {e.actor for e in (await dev.audit.list()).items} == {"dev"}


async def test_rotating_the_master_key_keeps_every_secret(people: Users, backend: Backend) -> None:
    owner = people.owner
    await owner.projects.create("shop")
    await owner.apps.create("shop/web", AppSpec(git_url=GIT_URL))
    await owner.env.set("shop/web", "API_KEY", "kept across rotation", secret=True)
    setup = await owner.auth.totp_setup()
    await owner.auth.totp_enable(totp_now(setup.secret))
    key_file = Path(backend.data_dir) / "master.key"
    before = key_file.read_bytes()
    rotation = await owner.secrets.rotate_key()
    assert rotation.resealed == 2
    after = key_file.read_bytes().split()
    assert len(after) == 1 and after[0] not in before.split() and len(base64.b64decode(after[0])) == 32
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert [v.value for v in await owner.env.list("shop/web", reveal=True)] == ["kept across rotation"]
    dev = await people.person("dev", role="admin")
    with pytest.raises(PermissionDenied, match="owner"):
        await dev.secrets.rotate_key()
