"""The account parts of ``LocalMist``: logging in (sessions with rotating refresh tokens, two-factor codes,
lockout), users and their roles, project members, invitations, sessions, API tokens and the master key.

Opaque tokens (refresh, API, invitation, recovery codes) are stored only as SHA-256 hashes; TOTP secrets are
sealed like every other secret. Every change is audited in its own transaction.
"""

from __future__ import annotations

import asyncio
import builtins
import re
from datetime import timedelta
from typing import Any

from .. import auth, validate
from ..api import AuthAPI, InvitesAPI, MembersAPI, SecretsAPI, SessionsAPI, TokensAPI, UsersAPI
from ..auth import lockout, permissions
from ..auth import totp as totp_codes
from ..calls import Caller, audit
from ..errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SetupRequired,
    TooManyAttempts,
    TotpRequired,
    Unauthenticated,
)
from ..models import (
    ApiToken,
    ApiTokenCreated,
    Invite,
    InviteCreated,
    KeyRotation,
    Member,
    ProjectRole,
    RecoveryCodes,
    Role,
    Session,
    SessionInfo,
    SetupStatus,
    TokenScope,
    TotpSetup,
    User,
    UserChanges,
)
from ..store import Row, Store, Writer, now, parse_ts, ts
from ..version import __version__
from .part import Part

SESSION_LIFETIME = timedelta(days=30)  # a session unused (never refreshed) this long ends
ROLES = ("owner", "admin", "developer", "viewer")
PROJECT_ROLES = ("admin", "developer", "viewer")
SCOPES = ("read", "deploy", "admin")
_EMAIL = re.compile(r"[A-Za-z0-9_%+.][A-Za-z0-9_%+.-]{0,63}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63}")
_TOKEN_NAME = re.compile(r"[\w .:@/-]{1,64}")

USER_COLUMNS = (
    "u.id, u.username, u.role, u.email, u.full_name, u.created_at, u.last_login_at, "
    "(u.totp_secret IS NOT NULL) AS totp_enabled"
)


def user_from_row(row: Any) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        role=row["role"],
        email=row["email"],
        full_name=row["full_name"],
        totp_enabled=bool(row["totp_enabled"]),
        created_at=row["created_at"],
        last_login_at=row["last_login_at"],
    )


async def needs_setup(store: Store) -> bool:
    return await store.one("SELECT 1 FROM users LIMIT 1") is None


def _must(row: Row | None) -> Row:
    """A row the caller has just checked exists (in this transaction, or by ``allow``)."""
    assert row is not None
    return row


def _role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidInput(f"{role!r} is not a role: use one of {', '.join(ROLES)}", field="role")
    return role  # type: ignore[return-value]


def _project_role(role: str) -> ProjectRole:
    if role not in PROJECT_ROLES:
        raise InvalidInput(
            f"{role!r} is not a project role: use one of {', '.join(PROJECT_ROLES)}", field="role"
        )
    return role  # type: ignore[return-value]


def _email(email: str) -> str:
    email = email.strip()
    if not _EMAIL.fullmatch(email):
        raise InvalidInput(f"{email!r} is not an email address", field="email")
    return email.lower()


def _may_grant(caller: Caller, role: str) -> None:
    """No one grants a role above their own."""
    if permissions.INSTANCE_RANK[role] > permissions.INSTANCE_RANK[caller.role]:
        raise PermissionDenied(f"you are {caller.role}: you cannot grant the role {role}")


def _account_key(username: str) -> str:
    """The lockout counter of an account (``login_failures.key``)."""
    return f"user:{username.lower()}"


class _CodeRefused(Exception):
    """A login's two-factor or recovery code that it cannot claim: wrong, or used already (perhaps by a
    concurrent login with the same code)."""


def _is_admin(caller: Caller) -> bool:
    return permissions.at_least(caller.role, "admin", permissions.INSTANCE_RANK)


class _Accounts(Part):
    async def _user_row(self, username: str) -> Any:
        row = await self.store.one(f"SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?", (username,))
        if row is None:
            raise NotFound(f"there is no user {username!r}", field="username")
        return row

    async def _open_session(self, w: Writer, user_id: int) -> tuple[int, str, str]:
        """A new session row and its first refresh token; returns (id, refresh token, its expiry)."""
        expires = ts(now() + SESSION_LIFETIME)
        session_id = await w.execute(
            "INSERT INTO sessions (user_id, created_at, expires_at, last_used_at, source, user_agent) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, ts(), expires, ts(), self.m.source, (self.m.user_agent or "")[:200] or None),
        )
        refresh = await self._new_refresh(w, session_id)
        return session_id, refresh, expires

    @staticmethod
    async def _new_refresh(w: Writer, session_id: int) -> str:
        refresh = auth.new_token("mist_r_")
        await w.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)",
            (auth.token_hash(refresh), session_id, ts()),
        )
        return refresh

    async def _session(self, user_id: int, session_id: int, refresh: str, refresh_expires: str) -> Session:
        row = await self.store.one(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?", (user_id,))
        user = user_from_row(row)
        token, expires = self.core.access.issue(user_id, session_id)
        session = Session(
            token=token,
            refresh_token=refresh,
            user=user,
            expires_at=expires,
            refresh_expires_at=parse_ts(refresh_expires),
            totp_enrollment_required=(
                not user.totp_enabled and await self.core.setting("require_2fa") == "true"
            ),
        )
        self.m.signed_in(session)
        return session


# ---------------------------------------------------------------------------------------------- auth


class Auth(_Accounts, AuthAPI):
    async def status(self) -> SetupStatus:
        return SetupStatus(needs_setup=await needs_setup(self.store), version=__version__)

    async def setup(self, username: str, password: str) -> Session:
        username = validate.name(username, "username")
        auth.check_password_strength(password, username=username)
        hashed = await asyncio.to_thread(auth.hash_password, password)
        async with self.store.write() as w:
            if await w.one("SELECT 1 FROM users LIMIT 1"):
                raise Conflict("Mist is already set up: log in with `mist login`")
            user_id = await w.execute(
                "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, 'owner', ?)",
                (username, hashed, ts()),
            )
            await audit(w, None, "auth.setup", actor=username, source=self.m.source)
            session_id, refresh, expires = await self._open_session(w, user_id)
        return await self._session(user_id, session_id, refresh, expires)

    def _lock_keys(self, username: str) -> list[tuple[str, int]]:
        """The counters a login attempt adds to: the account's, and the address's (not for the local socket
        or an embedded core, where every caller has the same "address" and one could lock out all)."""
        keys = [(_account_key(username), lockout.ACCOUNT_THRESHOLD)]
        if self.m.source not in ("unix", "local"):
            keys.append((f"source:{self.m.source}", lockout.SOURCE_THRESHOLD))
        return keys

    async def _reserve_attempt(self, keys: list[tuple[str, int]]) -> None:
        """Count a login attempt as failed before its password is checked, in one write transaction, or
        refuse it when a counter is locked. Checking first and counting after the (slow) password check would
        let any number of concurrent guesses through before the first one is counted; this way at most the
        threshold of attempts reach the check, and an attempt that turns out right gives its count back."""
        async with self.store.write() as w:
            for key, threshold in keys:
                row = await w.one(
                    "SELECT failures, locked_until, last_at FROM login_failures WHERE key = ?", (key,)
                )
                until = parse_ts(row["locked_until"]) if row else None
                if until is not None and until > now():
                    wait = int((until - now()).total_seconds()) + 1
                    what = "this account" if key.startswith("user:") else "your address"
                    raise TooManyAttempts(
                        f"too many failed logins for {what}: try again in {wait} s", retry_after=wait
                    )
                recent = (
                    row is not None and (parse_ts(row["last_at"]) or now()) > now() - lockout.FORGET_AFTER
                )
                failures = (row["failures"] if recent and row else 0) + 1
                seconds = lockout.lock_seconds(failures, threshold)
                await w.execute(
                    "INSERT INTO login_failures (key, failures, locked_until, last_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, "
                    "locked_until = excluded.locked_until, last_at = excluded.last_at",
                    (key, failures, ts(now() + timedelta(seconds=seconds)) if seconds else None, ts()),
                )

    @staticmethod
    async def _give_back(w: Writer, keys: list[tuple[str, int]]) -> None:
        """Undo one reserved attempt (it was not a failure): one count less, and no lock below the threshold."""
        for key, threshold in keys:
            await w.execute(
                "UPDATE login_failures SET failures = failures - 1, "
                "locked_until = CASE WHEN failures - 1 >= ? THEN locked_until END WHERE key = ? AND failures > 0",
                (threshold, key),
            )

    async def _not_a_failure(self, keys: list[tuple[str, int]]) -> None:
        async with self.store.write() as w:
            await self._give_back(w, keys)

    async def _audit_failure(self, username: str, reason: str) -> None:
        async with self.store.write() as w:
            await audit(
                w, None, "auth.login_failed", actor=username[:64], source=self.m.source, reason=reason
            )

    async def login(self, username: str, password: str, *, totp: str | None = None) -> Session:
        if len(username) > 200 or len(password) > auth.MAX_PASSWORD_LENGTH:
            raise Unauthenticated("wrong username or password")
        keys = self._lock_keys(username)
        await self._reserve_attempt(keys)
        row = await self.store.one(
            "SELECT id, password_hash, totp_secret, totp_last_step FROM users WHERE username = ?", (username,)
        )
        ok = await asyncio.to_thread(
            auth.verify_password, password, row["password_hash"] if row else auth.DUMMY_HASH
        )
        if row is None or not ok:
            if await needs_setup(self.store):
                await self._not_a_failure(keys)
                raise SetupRequired("no account exists yet: create the first one with `mist setup`")
            await self._audit_failure(username, "password")
            raise Unauthenticated("wrong username or password")
        user_id = int(row["id"])
        step: int | None = None
        if row["totp_secret"]:
            if not totp:
                # The password was right: not a failure, yet no success either (the counter stays).
                await self._not_a_failure(keys)
                raise TotpRequired(
                    "this account uses two-factor authentication: give the code from your authenticator app "
                    "(or a recovery code)"
                )
            secret = self.core.secrets.open(row["totp_secret"], bound_to=f"totp:{user_id}")
            step = totp_codes.verify(secret, totp, last_step=row["totp_last_step"])
        try:
            async with self.store.write() as w:
                # A code works once: it is claimed by a conditional UPDATE in the transaction that opens the
                # session, so of concurrent logins with the same code exactly one gets a session.
                if step is not None:
                    claimed = await w.execute(
                        "UPDATE users SET totp_last_step = ? WHERE id = ? "
                        "AND (totp_last_step IS NULL OR totp_last_step < ?)",
                        (step, user_id, step),
                    )
                    if not claimed:
                        raise _CodeRefused
                elif row["totp_secret"]:
                    claimed = await w.execute(
                        "UPDATE recovery_codes SET used_at = ? "
                        "WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
                        (ts(), user_id, auth.token_hash((totp or "").strip().lower())),
                    )
                    if not claimed:
                        raise _CodeRefused
                # A success clears the account's counter and gives back the address's count.
                await w.execute("DELETE FROM login_failures WHERE key = ?", (_account_key(username),))
                await self._give_back(w, keys[1:])
                await w.execute("UPDATE users SET last_login_at = ? WHERE id = ?", (ts(), user_id))
                session_id, refresh, expires = await self._open_session(w, user_id)
                await audit(w, None, "auth.login", actor=username, source=self.m.source, session=session_id)
        except _CodeRefused:
            await self._audit_failure(username, "two-factor code")
            raise Unauthenticated("the two-factor code is wrong, expired or was used already") from None
        return await self._session(user_id, session_id, refresh, expires)

    async def refresh(self, refresh_token: str) -> Session:
        digest = auth.token_hash(refresh_token)
        reused = False
        async with self.store.write() as w:
            row = await w.one(
                "SELECT r.session_id, r.used_at, s.user_id, s.revoked_at, s.expires_at FROM refresh_tokens r "
                "JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = ?",
                (digest,),
            )
            if row is None or row["revoked_at"] or (parse_ts(row["expires_at"]) or now()) <= now():
                raise Unauthenticated("this session has ended or was revoked: log in again with `mist login`")
            session_id, user_id = int(row["session_id"]), int(row["user_id"])
            if row["used_at"]:
                # Someone holds a copy of a refresh token: end the whole session, for both of them.
                reused = True
                await w.execute(
                    "UPDATE sessions SET revoked_at = ?, revoked_reason = 'refresh token reused' WHERE id = ?",
                    (ts(), session_id),
                )
                await audit(
                    w, None, "session.revoke", actor=None, session=session_id, reason="refresh token reused"
                )
            else:
                await w.execute("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (ts(), digest))
                refresh = await self._new_refresh(w, session_id)
                expires = ts(now() + SESSION_LIFETIME)
                await w.execute(
                    "UPDATE sessions SET last_used_at = ?, expires_at = ? WHERE id = ?",
                    (ts(), expires, session_id),
                )
        if reused:
            self.m.signed_out()
            raise Unauthenticated(
                "this refresh token was used already, so the session was ended for safety: log in again"
            )
        return await self._session(user_id, session_id, refresh, expires)

    async def whoami(self) -> User:
        return (await self.m.allow("auth.whoami")).user

    async def logout(self) -> None:
        caller = await self.m.allow("auth.logout")
        if caller.session_id is not None:
            async with self.store.write() as w:
                await w.execute(
                    "UPDATE sessions SET revoked_at = ?, revoked_reason = 'logged out' WHERE id = ?",
                    (ts(), caller.session_id),
                )
                await audit(w, caller, "auth.logout", session=caller.session_id)
        self.m.signed_out()

    async def _check_password(self, caller: Caller, password: str) -> None:
        row = _must(await self.store.one("SELECT password_hash FROM users WHERE id = ?", (caller.user.id,)))
        if not await asyncio.to_thread(auth.verify_password, password, row["password_hash"]):
            raise PermissionDenied("the password is wrong", field="password")

    async def change_password(self, current: str, new: str, *, revoke_tokens: bool = False) -> None:
        caller = await self.m.allow("auth.change_password")
        await self._check_password(caller, current)
        auth.check_password_strength(new, username=caller.username)
        hashed = await asyncio.to_thread(auth.hash_password, new)
        async with self.store.write() as w:
            await w.execute("UPDATE users SET password_hash = ? WHERE id = ?", (hashed, caller.user.id))
            revoked = await w.execute(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = 'password changed' "
                "WHERE user_id = ? AND revoked_at IS NULL AND id != ?",
                (ts(), caller.user.id, caller.session_id or 0),
            )
            # API tokens are separate credentials (a CI job's, a script's): they end only when asked.
            tokens = 0
            if revoke_tokens:
                tokens = await w.execute(
                    "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                    (ts(), caller.user.id),
                )
            await audit(
                w,
                caller,
                "user.password",
                username=caller.username,
                sessions_revoked=revoked,
                tokens_revoked=tokens,
            )

    async def totp_setup(self) -> TotpSetup:
        caller = await self.m.allow("auth.totp_setup")
        if caller.user.totp_enabled:
            raise Conflict("two-factor authentication is on already: turn it off first to set it up again")
        secret = totp_codes.new_secret()
        sealed = self.core.secrets.seal(secret, bound_to=f"totp-pending:{caller.user.id}")
        async with self.store.write() as w:
            await w.execute("UPDATE users SET totp_pending = ? WHERE id = ?", (sealed, caller.user.id))
        return TotpSetup(secret=secret, uri=totp_codes.uri(secret, caller.username))

    async def totp_enable(self, code: str) -> RecoveryCodes:
        caller = await self.m.allow("auth.totp_enable")
        uid = caller.user.id
        row = _must(await self.store.one("SELECT totp_pending, totp_secret FROM users WHERE id = ?", (uid,)))
        if row["totp_secret"]:
            raise Conflict("two-factor authentication is on already")
        if not row["totp_pending"]:
            raise Conflict(
                "start with `mist 2fa enable` (auth.totp_setup): there is no secret to confirm yet"
            )
        secret = self.core.secrets.open(row["totp_pending"], bound_to=f"totp-pending:{uid}")
        step = totp_codes.verify(secret, code)
        if step is None:
            raise InvalidInput(
                "the code does not match: check the authenticator app's clock and try the next code",
                field="code",
            )
        codes = totp_codes.recovery_codes()
        async with self.store.write() as w:
            await w.execute(
                "UPDATE users SET totp_secret = ?, totp_pending = NULL, totp_last_step = ? WHERE id = ?",
                (self.core.secrets.seal(secret, bound_to=f"totp:{uid}"), step, uid),
            )
            await w.execute("DELETE FROM recovery_codes WHERE user_id = ?", (uid,))
            for c in codes:
                await w.execute(
                    "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)", (uid, auth.token_hash(c))
                )
            await audit(w, caller, "user.2fa_enable", username=caller.username)
        return RecoveryCodes(codes=codes)

    async def totp_disable(self, password: str) -> None:
        caller = await self.m.allow("auth.totp_disable")
        await self._check_password(caller, password)
        async with self.store.write() as w:
            await w.execute(
                "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE id = ?",
                (caller.user.id,),
            )
            await w.execute("DELETE FROM recovery_codes WHERE user_id = ?", (caller.user.id,))
            await audit(w, caller, "user.2fa_disable", username=caller.username)


# ---------------------------------------------------------------------------------------------- users


class Users(_Accounts, UsersAPI):
    async def list(self) -> builtins.list[User]:
        caller = await self.m.allow("users.list")
        if not _is_admin(caller):
            return [user_from_row(await self._user_row(caller.username))]
        rows = await self.store.all(f"SELECT {USER_COLUMNS} FROM users u ORDER BY u.username")
        return [user_from_row(r) for r in rows]

    async def get(self, username: str) -> User:
        caller = await self.m.allow("users.get")
        if username != caller.username and not _is_admin(caller):
            raise NotFound(f"there is no user {username!r}", field="username")
        return user_from_row(await self._user_row(username))

    async def create(
        self, username: str, password: str, *, role: Role = "developer", email: str | None = None
    ) -> User:
        caller = await self.m.allow("users.create")
        username = validate.name(username, "username")
        role = _role(role)
        _may_grant(caller, role)
        email = _email(email) if email else None
        auth.check_password_strength(password, username=username)
        hashed = await asyncio.to_thread(auth.hash_password, password)
        async with self.store.write() as w:
            await _unique_user(w, username, email)
            await w.execute(
                "INSERT INTO users (username, password_hash, role, email, created_at) VALUES (?, ?, ?, ?, ?)",
                (username, hashed, role, email, ts()),
            )
            await audit(w, caller, "user.create", username=username, role=role)
        return user_from_row(await self._user_row(username))

    def _may_manage(self, caller: Caller, target: Any) -> None:
        if permissions.INSTANCE_RANK[target["role"]] > permissions.INSTANCE_RANK[caller.role]:
            raise PermissionDenied(f"{target['username']} is {target['role']}: you are {caller.role}")

    async def update(self, username: str, changes: UserChanges) -> User:
        caller = await self.m.allow("users.update")
        if username != caller.username and not _is_admin(caller):
            raise NotFound(f"there is no user {username!r}", field="username")
        target = await self._user_row(username)
        self._may_manage(caller, target)
        email = target["email"]
        if changes.email is not None:
            email = _email(changes.email) if changes.email else None
        full_name = (
            target["full_name"] if changes.full_name is None else validate.description(changes.full_name)
        )
        async with self.store.write() as w:
            if email and await w.one(
                "SELECT 1 FROM users WHERE email = ? AND id != ?", (email, target["id"])
            ):
                raise Conflict(f"another account uses the email {email}", field="email")
            await w.execute(
                "UPDATE users SET email = ?, full_name = ? WHERE id = ?", (email, full_name, target["id"])
            )
            await audit(
                w,
                caller,
                "user.update",
                username=username,
                before={"email": target["email"], "full_name": target["full_name"]},
                after={"email": email, "full_name": full_name},
            )
        return user_from_row(await self._user_row(username))

    async def set_role(self, username: str, role: Role) -> User:
        caller = await self.m.allow("users.set_role")
        role = _role(role)
        target = await self._user_row(username)
        self._may_manage(caller, target)
        _may_grant(caller, role)
        async with self.store.write() as w:
            if target["role"] == "owner" and role != "owner":
                await _not_last_owner(w, target["id"], f"{username} is the last owner and cannot be demoted")
            await w.execute("UPDATE users SET role = ? WHERE id = ?", (role, target["id"]))
            await audit(w, caller, "user.set_role", username=username, before=target["role"], after=role)
        return user_from_row(await self._user_row(username))

    async def delete(self, username: str, *, reassign_to: str | None = None) -> None:
        caller = await self.m.allow("users.delete")
        target = await self._user_row(username)
        self._may_manage(caller, target)
        if target["id"] == caller.user.id:
            raise Conflict("you cannot delete your own account: ask another admin")
        heir = await self._user_row(reassign_to) if reassign_to else await self._user_row(caller.username)
        if heir["id"] == target["id"]:
            raise InvalidInput(
                "the projects cannot be reassigned to the account being deleted", field="reassign_to"
            )
        async with self.store.write() as w:
            if target["role"] == "owner":
                await _not_last_owner(w, target["id"], f"{username} is the last owner and cannot be deleted")
            projects = await w.all("SELECT id, name FROM projects WHERE owner_id = ?", (target["id"],))
            for p in projects:
                await w.execute("UPDATE projects SET owner_id = ? WHERE id = ?", (heir["id"], p["id"]))
                await w.execute(
                    "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES (?, ?, 'admin', ?) "
                    "ON CONFLICT (project_id, user_id) DO UPDATE SET role = 'admin'",
                    (p["id"], heir["id"], ts()),
                )
            await w.execute("DELETE FROM users WHERE id = ?", (target["id"],))
            await audit(
                w,
                caller,
                "user.delete",
                username=username,
                reassigned_to=heir["username"],
                projects=[p["name"] for p in projects],
            )


async def _unique_user(w: Writer, username: str, email: str | None) -> None:
    if await w.one("SELECT 1 FROM users WHERE username = ?", (username,)):
        raise Conflict(f"a user named {username!r} already exists", field="username")
    if email and await w.one("SELECT 1 FROM users WHERE email = ?", (email,)):
        raise Conflict(f"another account uses the email {email}", field="email")


async def _not_last_owner(w: Writer, user_id: int, message: str) -> None:
    others = await w.one("SELECT 1 FROM users WHERE role = 'owner' AND id != ? LIMIT 1", (user_id,))
    if others is None:
        raise Conflict(message + ": make someone else an owner first")


# ---------------------------------------------------------------------------------------------- members


class Members(_Accounts, MembersAPI):
    async def _project_id(self, project: str) -> int:
        # allow() has checked that it exists
        return int(_must(await self.store.one("SELECT id FROM projects WHERE name = ?", (project,)))["id"])

    async def list(self, project: str) -> builtins.list[Member]:
        await self.m.allow("members.list", project=project)
        rows = await self.store.all(
            "SELECT u.username, m.role, m.added_at FROM project_members m JOIN users u ON u.id = m.user_id "
            "JOIN projects p ON p.id = m.project_id WHERE p.name = ? ORDER BY u.username",
            (project,),
        )
        return [Member(username=r["username"], role=r["role"], added_at=r["added_at"]) for r in rows]

    async def add(self, project: str, username: str, role: ProjectRole) -> Member:
        caller = await self.m.allow("members.add", project=project)
        role = _project_role(role)
        project_id = await self._project_id(project)
        user = await self._user_row(username)
        async with self.store.write() as w:
            before = await w.one(
                "SELECT role FROM project_members WHERE project_id = ? AND user_id = ?",
                (project_id, user["id"]),
            )
            await w.execute(
                "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
                (project_id, user["id"], role, ts()),
            )
            await audit(
                w,
                caller,
                "member.add",
                project=project,
                username=username,
                before=before["role"] if before else None,
                after=role,
            )
        self.core.events.announce("project", "members", project=project)
        return next(m for m in await self.list(project) if m.username == username)

    async def remove(self, project: str, username: str) -> None:
        caller = await self.m.allow("members.remove", project=project)
        project_id = await self._project_id(project)
        user = await self._user_row(username)
        async with self.store.write() as w:
            removed = await w.execute(
                "DELETE FROM project_members WHERE project_id = ? AND user_id = ?", (project_id, user["id"])
            )
            if not removed:
                raise NotFound(f"{username} is not a member of project {project!r}", field="username")
            await audit(w, caller, "member.remove", project=project, username=username)
        self.core.events.announce("project", "members", project=project)


# ---------------------------------------------------------------------------------------------- invites


INVITE_SELECT = (
    "SELECT i.*, p.name AS project, u.username AS created_by_name FROM invites i "
    "LEFT JOIN projects p ON p.id = i.project_id LEFT JOIN users u ON u.id = i.created_by"
)


def _invite(row: Any) -> Invite:
    return Invite(
        id=row["id"],
        username=row["username"],
        email=row["email"],
        role=row["role"],
        project=row["project"],
        project_role=row["project_role"],
        created_by=row["created_by_name"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        accepted_at=row["accepted_at"],
        revoked_at=row["revoked_at"],
    )


class Invites(_Accounts, InvitesAPI):
    async def create(
        self,
        *,
        username: str | None = None,
        email: str | None = None,
        role: Role = "developer",
        project: str | None = None,
        project_role: ProjectRole | None = None,
        expires_hours: int = 72,
    ) -> InviteCreated:
        caller = await self.m.allow("invites.create")
        if not username and not email:
            raise InvalidInput("name the person invited: a username, an email, or both", field="username")
        username = validate.name(username, "username") if username else None
        email = _email(email) if email else None
        role = _role(role)
        _may_grant(caller, role)
        if not 1 <= expires_hours <= 24 * 30:
            raise InvalidInput("an invitation expires after 1 to 720 hours", field="expires_hours")
        project_id = None
        if project:
            await self.m.allow("members.add", project=project)
            project_id = _must(await self.store.one("SELECT id FROM projects WHERE name = ?", (project,)))[
                "id"
            ]
            project_role = _project_role(project_role or "developer")
        elif project_role:
            raise InvalidInput("a project role needs a project", field="project_role")
        token = auth.new_token("mist_i_")
        async with self.store.write() as w:
            await _unique_user(w, username or "", email)
            invite_id = await w.execute(
                "INSERT INTO invites (token_hash, username, email, role, project_id, project_role, created_by, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    auth.token_hash(token),
                    username,
                    email,
                    role,
                    project_id,
                    project_role if project else None,
                    caller.user.id,
                    ts(),
                    ts(now() + timedelta(hours=expires_hours)),
                ),
            )
            await audit(
                w,
                caller,
                "invite.create",
                project=project,
                invite=invite_id,
                username=username,
                email=email,
                role=role,
            )
        row = await self.store.one(INVITE_SELECT + " WHERE i.id = ?", (invite_id,))
        return InviteCreated(token=token, invite=_invite(row))

    async def list(self) -> builtins.list[Invite]:
        await self.m.allow("invites.list")
        rows = await self.store.all(INVITE_SELECT + " ORDER BY i.id DESC")
        return [_invite(r) for r in rows]

    async def revoke(self, invite_id: int) -> None:
        caller = await self.m.allow("invites.revoke")
        async with self.store.write() as w:
            done = await w.execute(
                "UPDATE invites SET revoked_at = ? WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL",
                (ts(), invite_id),
            )
            if not done:
                raise NotFound(f"there is no open invitation {invite_id}", field="invite")
            await audit(w, caller, "invite.revoke", invite=invite_id)

    async def accept(self, token: str, username: str, password: str, *, email: str | None = None) -> Session:
        invalid = Unauthenticated("this invitation is not valid: it was used, revoked or has expired")
        row = await self.store.one(INVITE_SELECT + " WHERE i.token_hash = ?", (auth.token_hash(token),))
        if (
            row is None
            or row["accepted_at"]
            or row["revoked_at"]
            or (parse_ts(row["expires_at"]) or now()) <= now()
        ):
            raise invalid
        username = validate.name(username, "username")
        if row["username"] and row["username"] != username:
            raise PermissionDenied(
                f"this invitation is for the username {row['username']!r}", field="username"
            )
        if row["email"]:
            if not email or _email(email) != row["email"]:
                raise PermissionDenied(
                    "this invitation is for another email: give the invited one", field="email"
                )
        email = row["email"] or (_email(email) if email else None)
        auth.check_password_strength(password, username=username)
        hashed = await asyncio.to_thread(auth.hash_password, password)
        async with self.store.write() as w:
            # One use: the row is claimed in the same transaction that creates the account.
            claimed = await w.execute(
                "UPDATE invites SET accepted_at = ? WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL",
                (ts(), row["id"]),
            )
            if not claimed:
                raise invalid
            await _unique_user(w, username, email)
            user_id = await w.execute(
                "INSERT INTO users (username, password_hash, role, email, created_at) VALUES (?, ?, ?, ?, ?)",
                (username, hashed, row["role"], email, ts()),
            )
            await w.execute("UPDATE invites SET accepted_by = ? WHERE id = ?", (user_id, row["id"]))
            if row["project_id"]:
                await w.execute(
                    "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES (?, ?, ?, ?)",
                    (row["project_id"], user_id, row["project_role"], ts()),
                )
            await audit(
                w,
                None,
                "invite.accept",
                actor=username,
                project=row["project"],
                invite=row["id"],
                role=row["role"],
            )
            session_id, refresh, expires = await self._open_session(w, user_id)
        return await self._session(user_id, session_id, refresh, expires)


# ---------------------------------------------------------------------------------------------- sessions, tokens


class Sessions(_Accounts, SessionsAPI):
    async def list(self, *, username: str | None = None) -> builtins.list[SessionInfo]:
        caller = await self.m.allow("sessions.list")
        clauses = ["s.revoked_at IS NULL", "s.expires_at > ?"]
        params: builtins.list[Any] = [ts()]
        if username is None or username == caller.username:
            clauses.append("s.user_id = ?")
            params.append(caller.user.id)
        elif not _is_admin(caller):
            raise PermissionDenied("only admins see other people's sessions")
        elif username != "*":
            clauses.append("u.username = ?")
            params.append(username)
        rows = await self.store.all(
            "SELECT s.*, u.username FROM sessions s JOIN users u ON u.id = s.user_id WHERE "
            + " AND ".join(clauses)
            + " ORDER BY s.id DESC",
            params,
        )
        return [
            SessionInfo(
                id=r["id"],
                username=r["username"],
                created_at=r["created_at"],
                last_used_at=r["last_used_at"],
                expires_at=r["expires_at"],
                source=r["source"],
                user_agent=r["user_agent"],
                current=r["id"] == caller.session_id,
            )
            for r in rows
        ]

    async def revoke(self, session_id: int) -> None:
        caller = await self.m.allow("sessions.revoke")
        row = await self.store.one(
            "SELECT s.user_id, u.username, u.role FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.id = ? AND s.revoked_at IS NULL",
            (session_id,),
        )
        mine = row is not None and row["user_id"] == caller.user.id
        if row is None or not (mine or _is_admin(caller)):
            raise NotFound(f"there is no open session {session_id}", field="session")
        if not mine and permissions.INSTANCE_RANK[row["role"]] > permissions.INSTANCE_RANK[caller.role]:
            raise PermissionDenied(f"{row['username']} is {row['role']}: you are {caller.role}")
        async with self.store.write() as w:
            await w.execute(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ?",
                (ts(), f"revoked by {caller.username}", session_id),
            )
            await audit(w, caller, "session.revoke", session=session_id, username=row["username"])
        if session_id == caller.session_id:
            self.m.signed_out()


TOKEN_SELECT = (
    "SELECT t.*, u.username, p.name AS project FROM api_tokens t JOIN users u ON u.id = t.user_id "
    "LEFT JOIN projects p ON p.id = t.project_id"
)


def _api_token(row: Any) -> ApiToken:
    return ApiToken(
        id=row["id"],
        name=row["name"],
        username=row["username"],
        scope=row["scope"],
        project=row["project"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


class Tokens(_Accounts, TokensAPI):
    async def create(
        self,
        name: str,
        *,
        scope: TokenScope = "read",
        project: str | None = None,
        expires_days: int | None = 90,
    ) -> ApiTokenCreated:
        caller = await self.m.allow("tokens.create")
        name = name.strip()
        if not _TOKEN_NAME.fullmatch(name):
            raise InvalidInput("a token name is 1 to 64 letters, digits, spaces or . : @ / _ -", field="name")
        if scope not in SCOPES:
            raise InvalidInput(f"{scope!r} is not a scope: use one of {', '.join(SCOPES)}", field="scope")
        if expires_days is not None and not 1 <= expires_days <= 3650:
            raise InvalidInput("a token expires after 1 to 3650 days (or never)", field="expires_days")
        project_id = None
        if project:
            await self.m.project_role(caller, project)
            project_id = _must(await self.store.one("SELECT id FROM projects WHERE name = ?", (project,)))[
                "id"
            ]
        token = auth.new_token("mist_t_")
        expires = ts(now() + timedelta(days=expires_days)) if expires_days else None
        async with self.store.write() as w:
            token_id = await w.execute(
                "INSERT INTO api_tokens (user_id, name, scope, project_id, token_hash, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (caller.user.id, name, scope, project_id, auth.token_hash(token), ts(), expires),
            )
            await audit(w, caller, "token.create", project=project, token=token_id, name=name, scope=scope)
        row = await self.store.one(TOKEN_SELECT + " WHERE t.id = ?", (token_id,))
        return ApiTokenCreated(token=token, info=_api_token(row))

    async def list(self, *, all: bool = False) -> builtins.list[ApiToken]:
        caller = await self.m.allow("tokens.list")
        if all and not _is_admin(caller):
            raise PermissionDenied("only admins see everyone's tokens")
        where = "t.revoked_at IS NULL" + ("" if all else " AND t.user_id = ?")
        rows = await self.store.all(
            TOKEN_SELECT + f" WHERE {where} ORDER BY t.id DESC", () if all else (caller.user.id,)
        )
        return [_api_token(r) for r in rows]

    async def revoke(self, token_id: int) -> None:
        caller = await self.m.allow("tokens.revoke")
        row = await self.store.one(
            "SELECT t.user_id, u.username, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.id = ? AND t.revoked_at IS NULL",
            (token_id,),
        )
        mine = row is not None and row["user_id"] == caller.user.id
        if row is None or not (mine or _is_admin(caller)):
            raise NotFound(f"there is no token {token_id}", field="token")
        if not mine and permissions.INSTANCE_RANK[row["role"]] > permissions.INSTANCE_RANK[caller.role]:
            raise PermissionDenied(f"{row['username']} is {row['role']}: you are {caller.role}")
        async with self.store.write() as w:
            await w.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (ts(), token_id))
            await audit(w, caller, "token.revoke", token=token_id, username=row["username"])


class Secrets(_Accounts, SecretsAPI):
    async def rotate_key(self) -> KeyRotation:
        caller = await self.m.allow("secrets.rotate_key")
        key_id, count = await self.core.rotate_master_key(caller)
        return KeyRotation(key_id=key_id, resealed=count)
