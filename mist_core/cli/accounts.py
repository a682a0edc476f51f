"""The commands about who may do what: logins, accounts, invitations, project members, sessions, API tokens,
two-factor authentication, the audit log and the master key of stored secrets."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

from .. import clock
from ..errors import InvalidInput, TotpRequired, Unauthenticated
from ..models import ApiToken, AuditEntry, Invite, Session, SessionInfo, User
from .context import CommandTable, Context, confirm_deletion
from .format import format_pairs, format_table, human_age, human_time, parse_time
from .output import EXIT_FAILURE, EXIT_OK, Text

command = CommandTable()

# ---------------------------------------------------------------------------------------------- input


def _ask(ctx: Context, prompt: str, field: str) -> str:
    """One line typed at the terminal, or the next line of stdin when a script drives the command."""
    answer = ctx.ask(prompt)
    if not answer:
        raise InvalidInput(f"nothing was given for the {field}: type it when asked", field=field)
    return answer


def _secret_line(ctx: Context, prompt: str) -> str:
    """A password: from the next line of stdin with ``--password-stdin``, else asked at the terminal with no
    echo. Never from the command line, where ``ps`` and the shell history would keep it."""
    if ctx.args.password_stdin:
        return ctx.stdin.readline().rstrip("\r\n")
    if ctx.stdin.isatty():
        return getpass.getpass(prompt)
    raise InvalidInput(
        "no password given: pipe it in with --password-stdin, or run the command in a terminal",
        field="password",
    )


def read_password(ctx: Context, *, confirm: bool, what: str = "Password") -> str:
    """A password, typed twice at a terminal when ``confirm`` (a new password)."""
    password = _secret_line(ctx, f"{what}: ")
    if confirm and not ctx.args.password_stdin and getpass.getpass(f"{what} (again): ") != password:
        raise InvalidInput("the two passwords differ: type the same password twice", field="password")
    if not password:
        raise InvalidInput("the password is empty: give a password", field="password")
    return password


def read_username(ctx: Context) -> str:
    if ctx.args.username:
        return str(ctx.args.username)
    if ctx.stdin.isatty() and not ctx.args.password_stdin:
        name = ctx.ask("Username: ")
        if name:
            return name
    raise InvalidInput("no username given: pass --username NAME", field="username")


def _totp_code(ctx: Context, username: str) -> str:
    if ctx.stdin.isatty() and not ctx.args.password_stdin:
        return _ask(ctx, "Two-factor code (or a recovery code): ", "totp")
    raise InvalidInput(
        f"{username} has two-factor authentication: give the code of the authenticator app with --totp CODE",
        field="totp",
    )


# ---------------------------------------------------------------------------------------------- sessions


def save_session(ctx: Context, session: Session) -> None:
    """Keep a new login for this host, with the certificate the user chose to trust, if any."""
    ctx.credentials.save(
        ctx.host,
        session.token,
        session.user.username,
        refresh_token=session.refresh_token,
        certificate=ctx.certificate,
    )


def _logged_in(ctx: Context, session: Session, verb: str) -> int:
    save_session(ctx, session)
    ctx.out.result(
        {
            "host": ctx.host,
            "user": session.user,
            "expires_at": session.expires_at,
            "totp_enrollment_required": session.totp_enrollment_required,
        },
        f"{verb} {session.user.username} on {ctx.host}",
    )
    if session.totp_enrollment_required:
        ctx.out.note(
            "This instance requires two-factor authentication: run `mist 2fa enable` now "
            "(until then only your own account can be managed)."
        )
    return EXIT_OK


@command("setup")
async def cmd_setup(ctx: Context) -> int:
    username = read_username(ctx)
    password = read_password(ctx, confirm=True)
    session = await ctx.api.auth.setup(username, password)
    return _logged_in(ctx, session, "Created owner account")


@command("login")
async def cmd_login(ctx: Context) -> int:
    username = read_username(ctx)
    password = read_password(ctx, confirm=False)
    code = ctx.args.totp
    try:
        if code:
            session = await ctx.api.auth.login(username, password, totp=code)
        else:
            session = await ctx.api.auth.login(username, password)
    except TotpRequired:
        if code:
            raise
        session = await ctx.api.auth.login(username, password, totp=_totp_code(ctx, username))
    return _logged_in(ctx, session, "Logged in as")


@command("logout")
async def cmd_logout(ctx: Context) -> int:
    try:
        await ctx.api.auth.logout()
    except Unauthenticated:
        pass  # an expired session is as good as logged out; still forget it below
    forgot = ctx.credentials.forget(ctx.host)
    ctx.out.result(
        {"host": ctx.host, "logged_out": True},
        f"Logged out of {ctx.host}" if forgot else f"No stored session for {ctx.host}",
    )
    return EXIT_OK


def user_pairs(user: User) -> list[tuple[str, object]]:
    return [
        ("User", user.username),
        ("Role", user.role),
        ("Email", user.email),
        ("Full name", user.full_name or None),
        ("Two-factor", "on" if user.totp_enabled else "off"),
        ("Last login", human_time(user.last_login_at) if user.last_login_at else None),
        ("Since", human_time(user.created_at)),
    ]


@command("whoami")
async def cmd_whoami(ctx: Context) -> int:
    user = await ctx.api.auth.whoami()
    pairs = user_pairs(user)
    ctx.out.pairs(user, lambda: [*pairs[:2], ("Host", ctx.host), *pairs[2:]])
    return EXIT_OK


@command("passwd")
async def cmd_passwd(ctx: Context) -> int:
    if ctx.args.password_stdin:
        current = ctx.stdin.readline().rstrip("\r\n")
        new = ctx.stdin.readline().rstrip("\r\n")
    elif ctx.stdin.isatty():
        current = getpass.getpass("Current password: ")
        new = getpass.getpass("New password: ")
        if getpass.getpass("New password (again): ") != new:
            raise InvalidInput("the two new passwords differ: type the same password twice", field="new")
    else:
        raise InvalidInput(
            "no password given: pipe the current and the new password (one per line) with "
            "--password-stdin, or run the command in a terminal",
            field="password",
        )
    if not current or not new:
        raise InvalidInput(
            "give the current password, then the new one (with --password-stdin: one per line)",
            field="password",
        )
    revoke_tokens = bool(ctx.args.revoke_tokens)
    await ctx.api.auth.change_password(current, new, revoke_tokens=revoke_tokens)
    ctx.out.result(
        {"password_changed": True, "tokens_revoked": revoke_tokens},
        "Password changed; your other sessions have been ended and your API tokens revoked"
        if revoke_tokens
        else "Password changed; your other sessions have been ended (your API tokens still work)",
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- 2fa


@command("2fa", "enable")
async def cmd_2fa_enable(ctx: Context) -> int:
    setup = await ctx.api.auth.totp_setup()
    # The person needs the secret before answering, whatever the mode: with --json, where stdout holds one
    # document written at the end, it goes to stderr.
    ctx.out.aside(format_pairs([("Secret", setup.secret), ("URI", setup.uri)]))
    ctx.out.note(
        "Add the secret to your authenticator app (or make a QR code of the URI), then type the code it shows."
    )
    code = _ask(ctx, "Code: ", "code")
    recovery = await ctx.api.auth.totp_enable(code)
    ctx.out.result(
        {"secret": setup.secret, "uri": setup.uri, "recovery_codes": recovery.codes},
        Text("Two-factor authentication is on. Recovery codes (each works once in place of a code):")
        .lines(f"  {one}" for one in recovery.codes)
        .note("Keep the recovery codes somewhere safe now: they are not shown again."),
    )
    return EXIT_OK


@command("2fa", "disable")
async def cmd_2fa_disable(ctx: Context) -> int:
    await ctx.api.auth.totp_disable(read_password(ctx, confirm=False))
    ctx.out.result({"totp_enabled": False}, "Two-factor authentication is off")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- users


def users_table(users: list[User]) -> str:
    rows = [
        (
            u.id,
            u.username,
            u.role,
            u.email,
            "on" if u.totp_enabled else "off",
            human_age(u.last_login_at) if u.last_login_at else None,
            human_age(u.created_at),
        )
        for u in users
    ]
    return format_table(["ID", "USERNAME", "ROLE", "EMAIL", "2FA", "LAST LOGIN", "AGE"], rows)


@command("user", "create")
async def cmd_user_create(ctx: Context) -> int:
    a = ctx.args
    password = read_password(ctx, confirm=True)
    user = await ctx.api.users.create(a.username, password, role=a.role, email=a.email)
    ctx.out.result(user, f"Created user {user.username} ({user.role})")
    return EXIT_OK


@command("user", "list")
@command("users")
async def cmd_user_list(ctx: Context) -> int:
    users = await ctx.api.users.list()
    ctx.out.result(users, lambda: users_table(users))
    return EXIT_OK


@command("user", "show")
async def cmd_user_show(ctx: Context) -> int:
    user = await ctx.api.users.get(ctx.args.username)
    ctx.out.pairs(user, lambda: user_pairs(user))
    return EXIT_OK


@command("user", "set-role")
async def cmd_user_set_role(ctx: Context) -> int:
    user = await ctx.api.users.set_role(ctx.args.username, ctx.args.role)
    ctx.out.result(user, f"{user.username} is now {user.role}")
    return EXIT_OK


@command("user", "delete")
async def cmd_user_delete(ctx: Context) -> int:
    a = ctx.args
    if not confirm_deletion(ctx, "the account", a.username):
        return EXIT_FAILURE
    await ctx.api.users.delete(a.username, reassign_to=a.reassign_to)
    ctx.out.result(
        {"deleted": a.username, "reassigned_to": a.reassign_to},
        f"Deleted user {a.username}; the projects it owned now belong to {a.reassign_to or 'you'}",
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- invites


def invite_state(invite: Invite, now: datetime | None = None) -> str:
    now = now or clock.now()
    if invite.accepted_at:
        return "accepted"
    if invite.revoked_at:
        return "revoked"
    expires = invite.expires_at if invite.expires_at.tzinfo else invite.expires_at.replace(tzinfo=UTC)
    return "expired" if expires <= now else "open"


def _invitee(invite: Invite) -> str:
    return invite.username or invite.email or "-"


@command("invite", "create")
async def cmd_invite_create(ctx: Context) -> int:
    a = ctx.args
    if not a.username and not a.email:
        raise InvalidInput(
            "an invitation is for one person: give the --username they will take or their --email",
            field="username",
        )
    if a.project_role and not a.project:
        raise InvalidInput("--project-role needs --project: the project they join", field="project_role")
    if a.expires_hours < 1:
        raise InvalidInput("--expires-hours must be 1 or more", field="expires_hours")
    created = await ctx.api.invites.create(
        username=a.username,
        email=a.email,
        role=a.role,
        project=a.project,
        project_role=(a.project_role or "developer") if a.project else None,
        expires_hours=a.expires_hours,
    )
    inv = created.invite
    joins = f", {inv.project_role} of {inv.project}" if inv.project else ""
    host = "" if ctx.host.startswith(("embedded:", "unix:")) else f" --host {ctx.host}"
    name = inv.username or "NAME"
    ctx.out.result(
        created,
        Text()
        .note(
            f"Invitation {inv.id} for {_invitee(inv)} as {inv.role}{joins}, "
            f"until {human_time(inv.expires_at)} UTC:"
        )
        .line(created.token)
        .note(
            f"Hand the token to them; they run: mist{host} invite accept TOKEN --username {name}\n"
            "It works once and is not shown again."
        ),
    )
    return EXIT_OK


@command("invite", "list")
async def cmd_invite_list(ctx: Context) -> int:
    invites = await ctx.api.invites.list()
    now = clock.now()
    ctx.out.table(
        invites,
        ["ID", "FOR", "ROLE", "PROJECT", "BY", "EXPIRES", "STATE"],
        lambda i: (
            i.id,
            _invitee(i),
            i.role,
            f"{i.project} ({i.project_role})" if i.project else None,
            i.created_by,
            human_time(i.expires_at),
            invite_state(i, now),
        ),
    )
    return EXIT_OK


@command("invite", "revoke")
async def cmd_invite_revoke(ctx: Context) -> int:
    await ctx.api.invites.revoke(ctx.args.id)
    ctx.out.result({"revoked": ctx.args.id}, f"Revoked invitation {ctx.args.id}")
    return EXIT_OK


@command("invite", "accept")
async def cmd_invite_accept(ctx: Context) -> int:
    a = ctx.args
    password = read_password(ctx, confirm=True)
    session = await ctx.api.invites.accept(a.token, a.username, password, email=a.email)
    return _logged_in(ctx, session, "Created the account")


# ---------------------------------------------------------------------------------------------- members


@command("member", "add")
async def cmd_member_add(ctx: Context) -> int:
    a = ctx.args
    member = await ctx.api.members.add(a.project, a.username, a.role)
    ctx.out.result(member, f"{member.username} is now {member.role} of {a.project}")
    return EXIT_OK


@command("member", "remove")
async def cmd_member_remove(ctx: Context) -> int:
    a = ctx.args
    await ctx.api.members.remove(a.project, a.username)
    ctx.out.result({"removed": a.username, "project": a.project}, f"Removed {a.username} from {a.project}")
    return EXIT_OK


@command("member", "list")
async def cmd_member_list(ctx: Context) -> int:
    members = await ctx.api.members.list(ctx.args.project)
    ctx.out.table(
        members,
        ["USERNAME", "ROLE", "ADDED"],
        lambda m: (m.username, m.role, human_age(m.added_at) if m.added_at else None),
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- sessions


def sessions_table(sessions: list[SessionInfo]) -> str:
    rows = [
        (
            f"{s.id}*" if s.current else s.id,
            s.username,
            s.source,
            s.user_agent,
            human_age(s.created_at),
            human_age(s.last_used_at) if s.last_used_at else None,
            human_time(s.expires_at),
        )
        for s in sessions
    ]
    return format_table(["ID", "USER", "FROM", "CLIENT", "STARTED", "LAST USED", "EXPIRES"], rows)


@command("session", "list")
async def cmd_session_list(ctx: Context) -> int:
    a = ctx.args
    sessions = await ctx.api.sessions.list(username="*" if a.all else a.user)
    text = Text(sessions_table(sessions))
    if any(s.current for s in sessions):
        text.note("* this session")
    ctx.out.result(sessions, text)
    return EXIT_OK


@command("session", "revoke")
async def cmd_session_revoke(ctx: Context) -> int:
    await ctx.api.sessions.revoke(ctx.args.id)
    ctx.out.result({"revoked": ctx.args.id}, f"Ended session {ctx.args.id}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- tokens


def token_state(token: ApiToken, now: datetime | None = None) -> str:
    now = now or clock.now()
    if token.revoked_at:
        return "revoked"
    if token.expires_at is not None:
        expires = token.expires_at if token.expires_at.tzinfo else token.expires_at.replace(tzinfo=UTC)
        if expires <= now:
            return "expired"
    return "active"


def tokens_table(tokens: list[ApiToken]) -> str:
    now = clock.now()
    rows = [
        (
            t.id,
            t.name,
            t.username,
            t.scope,
            t.project or "(all)",
            human_time(t.expires_at) if t.expires_at else "never",
            human_age(t.last_used_at) if t.last_used_at else None,
            token_state(t, now),
        )
        for t in tokens
    ]
    return format_table(["ID", "NAME", "USER", "SCOPE", "PROJECT", "EXPIRES", "LAST USED", "STATE"], rows)


@command("token", "create")
async def cmd_token_create(ctx: Context) -> int:
    a = ctx.args
    expires_days = None if a.no_expiry else a.expires_days
    if expires_days is not None and expires_days < 1:
        raise InvalidInput("--expires-days must be 1 or more (or --no-expiry)", field="expires_days")
    created = await ctx.api.tokens.create(a.name, scope=a.scope, project=a.project, expires_days=expires_days)
    info = created.info
    reach = f"project {info.project}" if info.project else "every project you reach"
    until = f"expires {human_time(info.expires_at)} UTC" if info.expires_at else "never expires"
    ctx.out.result(
        created,
        Text()
        .note(f"Created API token {info.id} {info.name!r}: scope {info.scope}, {reach}, {until}:")
        .line(created.token)
        .note(
            "Copy it now: Mist keeps only its hash and cannot show it again. "
            "Scripts pass it as MIST_TOKEN=... or the header Authorization: Bearer ..."
        ),
    )
    return EXIT_OK


@command("token", "list")
async def cmd_token_list(ctx: Context) -> int:
    tokens = await ctx.api.tokens.list(all=ctx.args.all)
    ctx.out.result(tokens, lambda: tokens_table(tokens))
    return EXIT_OK


@command("token", "revoke")
async def cmd_token_revoke(ctx: Context) -> int:
    await ctx.api.tokens.revoke(ctx.args.id)
    ctx.out.result({"revoked": ctx.args.id}, f"Revoked API token {ctx.args.id}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- audit

AUDIT_PAGE = 500


def _detail(detail: dict[str, object]) -> str | None:
    return " ".join(f"{k}={v}" for k, v in detail.items()) or None


def audit_table(entries: list[AuditEntry]) -> str:
    rows = [
        (
            e.id,
            human_time(e.ts),
            e.actor or "(system)",
            e.actor_role,
            e.source,
            e.action,
            "/".join(p for p in (e.project, e.app) if p) or None,
            _detail(e.detail),
        )
        for e in entries
    ]
    return format_table(["ID", "TIME", "ACTOR", "AS", "FROM", "ACTION", "TARGET", "DETAIL"], rows)


@command("audit")
async def cmd_audit(ctx: Context) -> int:
    a = ctx.args
    if a.limit is not None and a.limit < 1:
        raise InvalidInput("--limit must be 1 or more", field="limit")
    since = parse_time(a.since, "since") if a.since else None
    until = parse_time(a.until, "until") if a.until else None
    if since and until and since > until:
        raise InvalidInput(
            f"--since ({human_time(since)}) is after --until ({human_time(until)}): swap them", field="since"
        )
    filters = {"actor": a.user, "project": a.project, "action": a.action, "since": since, "until": until}
    if a.jsonl:
        await _export_audit(ctx, filters, a.limit)
        return EXIT_OK
    page = await ctx.api.audit.list(**filters, limit=a.limit or 50)  # type: ignore[arg-type]
    text = Text(audit_table(page.items))
    if page.next_offset is not None:
        text.note(f"(the newest {len(page.items)}; more with --limit N, or all with --jsonl)")
    ctx.out.result(page.items, text)
    return EXIT_OK


async def _export_audit(ctx: Context, filters: dict[str, object], limit: int | None) -> None:
    """Every matching entry, newest first, one JSON object per line, page after page."""
    # Entries written during the export land on the first page and push the others down: an entry may come
    # again on the next page, never go missing. The ids already written drop the repeats.
    seen: set[int] = set()
    offset = 0
    while limit is None or len(seen) < limit:
        size = AUDIT_PAGE if limit is None else min(AUDIT_PAGE, limit - len(seen))
        page = await ctx.api.audit.list(**filters, limit=size, offset=offset)  # type: ignore[arg-type]
        for entry in page.items:
            if entry.id not in seen and (limit is None or len(seen) < limit):
                seen.add(entry.id)
                ctx.out.record(entry)
        if page.next_offset is None or not page.items:
            return
        offset = page.next_offset


# ---------------------------------------------------------------------------------------------- secrets


@command("secrets", "rotate-key")
async def cmd_secrets_rotate_key(ctx: Context) -> int:
    rotation = await ctx.api.secrets.rotate_key()
    ctx.out.result(
        rotation,
        f"Re-encrypted {rotation.resealed} stored secrets under the new master key {rotation.key_id}",
    )
    return EXIT_OK
