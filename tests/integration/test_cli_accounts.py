"""The account commands of ``mist`` as people run them: on an embedded core (a real SQLite file), in this
process (``mist_core.cli.run`` with each command's own streams and environment); as the installed ``mist``
program on a daemon over TLS, for pinning its certificate; and as several processes sharing one credentials
file, for what must hold between processes. Each person has their own config directory, so their saved
sessions are apart, as on separate machines."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from mist_core import clock
from mist_core.cli import run as run_mist

ROOT = Path(__file__).resolve().parents[2]
MIST = Path(sys.executable).parent / "mist"
PASSWORD = "correct horse battery staple"
BOB_PASSWORD = "sturdy violet ladder 42"

Run = Callable[..., subprocess.CompletedProcess[str]]


def totp(secret: str, step_offset: int = 0) -> str:
    """RFC 6238: HMAC-SHA1 of the 30-second step, dynamically truncated to 6 digits."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    step = int(time.time() // 30) + step_offset
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 1_000_000).zfill(6)


def _env(tmp_path: Path, person: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "MIST_CONFIG_DIR": str(tmp_path / f"cfg-{person}"),
        "MIST_GIT_ROOTS": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        **extra,
    }
    env.pop("MIST_TOKEN", None)
    env.pop("MIST_HOST", None)
    return env


def _in_process(argv: list[str], env: dict[str, str], stdin: io.StringIO) -> subprocess.CompletedProcess[str]:
    """``mist ARGV`` run in this process, with ``env`` as its whole environment and its own streams."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run_mist(argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env)
    return subprocess.CompletedProcess(["mist", *argv], code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def as_person(tmp_path: Path) -> Callable[..., Run]:
    """``as_person("bob")`` runs ``mist --embedded`` on the shared data directory with bob's own config."""

    def make(person: str, **extra_env: str) -> Run:
        def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
            return _in_process(
                ["--embedded", "--data", str(tmp_path / "data"), *args],
                {**_env(tmp_path, person, **extra_env), **(env or {})},
                io.StringIO(input or ""),
            )

        return run

    return make


@pytest.fixture
def admin(as_person: Callable[..., Run]) -> Run:
    run = as_person("admin")
    result = run("setup", "--username", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    return run


@pytest.fixture
def bob(admin: Run, as_person: Callable[..., Run]) -> Run:
    """A developer, logged in on their own config."""
    created = admin("user", "create", "bob", "--password-stdin", input=BOB_PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    run = as_person("bob")
    login = run("login", "--username", "bob", "--password-stdin", input=BOB_PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    return run


def _json(result: subprocess.CompletedProcess[str]) -> object:
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def _credentials(tmp_path: Path, person: str) -> dict[str, dict[str, str]]:
    return json.loads((tmp_path / f"cfg-{person}" / "credentials.json").read_text())


def _error(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 2, result.stdout + result.stderr
    return _json(result)["error"]  # type: ignore[index,no-any-return]


# ---------------------------------------------------------------------------------------------- users


def test_user_create_list_show_set_role_and_delete(admin: Run) -> None:
    created = admin(
        "user", "create", "bob", "--role", "viewer", "--email", "bob@example.com", "--password-stdin", "--json",
        input=BOB_PASSWORD + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert _json(created)["role"] == "viewer"  # type: ignore[index]
    assert BOB_PASSWORD not in created.stdout + created.stderr

    table = admin("user", "list").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "USERNAME", "ROLE", "EMAIL"]
    assert [line.split()[1] for line in table[1:]] == ["admin", "bob"]
    assert "bob@example.com" in admin("user", "show", "bob").stdout

    assert admin("user", "set-role", "bob", "admin").stdout.strip() == "bob is now admin"
    assert _json(admin("user", "show", "bob", "--json"))["role"] == "admin"  # type: ignore[index]

    assert "--yes" in admin("user", "delete", "bob").stderr
    assert admin("user", "delete", "bob", "--yes").returncode == 0
    assert [u["username"] for u in _json(admin("user", "list", "--json"))] == ["admin"]  # type: ignore[index,union-attr]
    assert _error(admin("user", "show", "bob", "--json"))["code"] == "not_found"


def test_user_create_refuses_a_short_or_common_password_naming_the_field(admin: Run) -> None:
    for password in ("short", "password1234"):
        error = _error(admin("user", "create", "bob", "--password-stdin", "--json", input=password + "\n"))
        assert error["field"] == "password", error


def test_a_developer_cannot_manage_accounts_or_make_themselves_admin(bob: Run) -> None:
    assert _error(bob("user", "set-role", "bob", "admin", "--json"))["code"] == "permission_denied"
    refused = bob("user", "create", "eve", "--password-stdin", input="another long password\n")
    assert refused.returncode == 2 and refused.stderr.startswith("mist: ")
    assert _json(bob("whoami", "--json"))["role"] == "developer"  # type: ignore[index]


def test_the_last_owner_cannot_be_demoted(admin: Run) -> None:
    error = _error(admin("user", "set-role", "admin", "developer", "--json"))
    assert error["code"] in ("conflict", "invalid_input"), error


# ---------------------------------------------------------------------------------------------- invites


def test_an_invitation_creates_the_account_logs_it_in_and_works_once(
    admin: Run, as_person: Callable[..., Run], tmp_path: Path
) -> None:
    assert admin("project", "create", "shop").returncode == 0
    created = admin(
        "invite", "create", "--username", "carol", "--role", "viewer", "--project", "shop",
        "--project-role", "viewer",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert "invite accept TOKEN --username carol" in created.stderr
    listed = _json(admin("invite", "list", "--json"))
    assert [(i["username"], i["role"], i["project"]) for i in listed] == [("carol", "viewer", "shop")]  # type: ignore[index,union-attr]

    carol = as_person("carol")
    wrong_name = carol(
        "invite", "accept", token, "--username", "mallory", "--password-stdin", input=PASSWORD + "\n"
    )
    assert wrong_name.returncode == 2
    accepted = carol(
        "invite", "accept", token, "--username", "carol", "--password-stdin", input=PASSWORD + "\n"
    )
    assert accepted.returncode == 0, accepted.stderr
    assert _credentials(tmp_path, "carol")[f"embedded:{(tmp_path / 'data').resolve()}"]["username"] == "carol"
    me = _json(carol("whoami", "--json"))
    assert (me["username"], me["role"]) == ("carol", "viewer")  # type: ignore[index]
    assert [p["name"] for p in _json(carol("project", "list", "--json"))] == ["shop"]  # type: ignore[index,union-attr]

    again = as_person("dave")(
        "invite", "accept", token, "--username", "carol", "--password-stdin", input=PASSWORD + "\n"
    )
    assert again.returncode == 2


def test_a_revoked_invitation_is_refused(admin: Run, as_person: Callable[..., Run]) -> None:
    created = admin("invite", "create", "--email", "erin@example.com", "--json")
    invite = _json(created)
    assert admin("invite", "revoke", str(invite["invite"]["id"])).returncode == 0  # type: ignore[index]
    states = admin("invite", "list").stdout
    assert "revoked" in states
    accepted = as_person("erin")(
        "invite", "accept", invite["token"], "--username", "erin", "--email", "erin@example.com",  # type: ignore[index]
        "--password-stdin", input=PASSWORD + "\n",
    )  # fmt: skip
    assert accepted.returncode == 2


def test_an_admin_cannot_invite_an_owner(admin: Run, as_person: Callable[..., Run]) -> None:
    admin("user", "create", "ann", "--role", "admin", "--password-stdin", input=BOB_PASSWORD + "\n")
    ann = as_person("ann")
    assert ann("login", "-u", "ann", "--password-stdin", input=BOB_PASSWORD + "\n").returncode == 0
    assert (
        _error(ann("invite", "create", "-u", "zed", "--role", "owner", "--json"))["code"]
        == "permission_denied"
    )


# ---------------------------------------------------------------------------------------------- members


def test_members_see_their_project_and_nothing_once_removed(admin: Run, bob: Run) -> None:
    assert admin("project", "create", "shop").returncode == 0
    assert _json(bob("project", "list", "--json")) == []
    assert _error(bob("project", "show", "shop", "--json"))["code"] == "not_found"

    added = admin("member", "add", "shop", "bob", "viewer")
    assert added.stdout.strip() == "bob is now viewer of shop", added.stderr
    members = admin("member", "list", "shop").stdout.splitlines()
    assert members[0].split() == ["USERNAME", "ROLE", "ADDED"]
    assert any(line.split()[:2] == ["bob", "viewer"] for line in members[1:])
    assert [p["name"] for p in _json(bob("project", "list", "--json"))] == ["shop"]  # type: ignore[index,union-attr]
    assert _error(bob("project", "tag", "shop", "--add", "x", "--json"))["code"] == "permission_denied"

    assert admin("member", "remove", "shop", "bob").returncode == 0
    assert _error(bob("project", "show", "shop", "--json"))["code"] == "not_found"


# ---------------------------------------------------------------------------------------------- tokens


def test_an_api_token_works_through_mist_token_within_its_scope_until_revoked(admin: Run) -> None:
    assert admin("project", "create", "shop").returncode == 0
    created = admin("token", "create", "ci", "--scope", "read")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("mist_t_")
    assert "cannot show it again" in created.stderr

    with_token = {"MIST_TOKEN": secret}
    assert [p["name"] for p in _json(admin("project", "list", "--json", env=with_token))] == ["shop"]  # type: ignore[index,union-attr]
    refused = admin("project", "create", "other", "--json", env=with_token)
    assert _error(refused)["code"] == "permission_denied"

    listed = _json(admin("token", "list", "--json"))
    assert [(t["name"], t["scope"]) for t in listed] == [("ci", "read")]  # type: ignore[index,union-attr]
    assert secret not in admin("token", "list").stdout
    assert admin("token", "revoke", str(listed[0]["id"])).returncode == 0  # type: ignore[index]
    after = admin("project", "list", env=with_token)
    assert after.returncode == 2
    assert _json(admin("token", "list", "--json")) == []


def test_a_token_bound_to_a_project_reaches_nothing_else(admin: Run) -> None:
    admin("project", "create", "shop")
    admin("project", "create", "blog")
    secret = admin("token", "create", "deployer", "--scope", "deploy", "--project", "shop").stdout.strip()
    env = {"MIST_TOKEN": secret}
    assert admin("project", "show", "shop", env=env).returncode == 0
    assert _error(admin("project", "show", "blog", "--json", env=env))["code"] in (
        "not_found",
        "permission_denied",
    )


# ---------------------------------------------------------------------------------------------- sessions


def test_sessions_are_listed_and_a_revoked_one_must_log_in_again(
    admin: Run, as_person: Callable[..., Run]
) -> None:
    laptop = as_person("admin-laptop")
    assert laptop("login", "-u", "admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0
    sessions = _json(admin("session", "list", "--json"))
    assert len(sessions) == 2  # type: ignore[arg-type]
    other = next(s for s in sessions if not s["current"])  # type: ignore[union-attr]
    table = admin("session", "list")
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "USER", "FROM"]

    assert admin("session", "revoke", str(other["id"])).returncode == 0  # type: ignore[index]
    ended = laptop("whoami")
    assert ended.returncode == 2
    assert "mist login" in ended.stderr
    assert len(_json(admin("session", "list", "--json"))) == 1  # type: ignore[arg-type]


def test_a_developer_sees_only_their_own_sessions(admin: Run, bob: Run) -> None:
    assert {s["username"] for s in _json(bob("session", "list", "--json"))} == {"bob"}  # type: ignore[index,union-attr]
    assert bob("session", "list", "--all").returncode == 2
    everyone = _json(admin("session", "list", "--all", "--json"))
    assert {s["username"] for s in everyone} == {"admin", "bob"}  # type: ignore[index,union-attr]


def test_an_expired_access_token_is_renewed_silently_and_saved(
    as_person: Callable[..., Run], tmp_path: Path
) -> None:
    run = as_person("admin", MIST_ACCESS_TOKEN_SECONDS="1")
    assert run("setup", "-u", "admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0
    key = f"embedded:{(tmp_path / 'data').resolve()}"
    before = _credentials(tmp_path, "admin")[key]
    clock.advance(2)  # past the access token's one second
    result = run("whoami", "--json")
    assert result.returncode == 0, result.stderr
    after = _credentials(tmp_path, "admin")[key]
    assert after["token"] != before["token"]
    assert after["refresh_token"] != before["refresh_token"]
    assert after["username"] == "admin"
    clock.advance(2)
    assert run("whoami").returncode == 0  # the renewed refresh token works in its turn


def test_passwd_changes_the_password_and_ends_the_other_sessions(
    admin: Run, bob: Run, as_person: Callable[..., Run]
) -> None:
    phone = as_person("bob-phone")
    assert phone("login", "-u", "bob", "--password-stdin", input=BOB_PASSWORD + "\n").returncode == 0
    new = "quiet amber harbor 77"
    wrong = bob("passwd", "--password-stdin", input=f"not it at all\n{new}\n")
    assert wrong.returncode == 2
    changed = bob("passwd", "--password-stdin", input=f"{BOB_PASSWORD}\n{new}\n")
    assert changed.returncode == 0, changed.stderr
    assert bob("whoami").returncode == 0
    assert phone("whoami").returncode == 2
    assert phone("login", "-u", "bob", "--password-stdin", input=BOB_PASSWORD + "\n").returncode == 2
    assert phone("login", "-u", "bob", "--password-stdin", input=new + "\n").returncode == 0


# ---------------------------------------------------------------------------------------------- 2fa


class _Authenticator(io.StringIO):
    """What a person types into ``mist 2fa enable``: once it asks, the current code for the secret it showed
    on ``shown`` (its stdout), read there as the person would read it."""

    def __init__(self, shown: io.StringIO) -> None:
        super().__init__()
        self.shown = shown
        self.secret = ""

    def readline(self, size: int | None = -1) -> str:
        for line in self.shown.getvalue().splitlines():
            if line.startswith("Secret"):
                self.secret = line.split()[-1]
            if line.startswith("URI"):
                assert line.split()[-1].startswith("otpauth://totp/")
        assert self.secret, "the code was asked for before the secret was shown"
        return totp(self.secret) + "\n"


def _enable_2fa(tmp_path: Path, person: str) -> tuple[str, list[str]]:
    """``mist 2fa enable`` driven like a person: read the secret it shows, answer with the current code."""
    stdout, stderr = io.StringIO(), io.StringIO()
    authenticator = _Authenticator(stdout)
    code = run_mist(
        ["--embedded", "--data", str(tmp_path / "data"), "2fa", "enable"],
        stdin=authenticator,
        stdout=stdout,
        stderr=stderr,
        env=_env(tmp_path, person),
    )
    assert code == 0, stderr.getvalue()
    assert authenticator.secret
    codes = [line.strip() for line in stdout.getvalue().splitlines() if line.startswith("  ")]
    return authenticator.secret, codes


def test_2fa_enable_then_login_needs_the_code(admin: Run, tmp_path: Path) -> None:
    secret, recovery = _enable_2fa(tmp_path, "admin")
    assert recovery, "no recovery codes printed"
    assert _json(admin("whoami", "--json"))["totp_enabled"] is True  # type: ignore[index]

    assert admin("logout").returncode == 0
    without = admin("login", "-u", "admin", "--password-stdin", "--json", input=PASSWORD + "\n")
    error = _error(without)
    assert error["field"] == "totp" and "--totp" in error["message"]
    bad = admin("login", "-u", "admin", "--password-stdin", "--totp", "000000", input=PASSWORD + "\n")
    assert bad.returncode == 2
    # The enabling code's step is used up: the next step's code is valid (one step of drift is allowed).
    good = admin("login", "-u", "admin", "--password-stdin", "--totp", totp(secret, 1), input=PASSWORD + "\n")
    assert good.returncode == 0, good.stderr

    assert admin("logout").returncode == 0
    recovered = admin(
        "login", "-u", "admin", "--password-stdin", "--totp", recovery[0], input=PASSWORD + "\n"
    )
    assert recovered.returncode == 0, recovered.stderr
    again = (
        admin("logout"),
        admin("login", "-u", "admin", "--password-stdin", "--totp", recovery[0], input=PASSWORD + "\n"),
    )
    assert again[1].returncode == 2  # a recovery code works once

    assert (
        admin(
            "login", "-u", "admin", "--password-stdin", "--totp", recovery[1], input=PASSWORD + "\n"
        ).returncode
        == 0
    )
    assert admin("2fa", "disable", "--password-stdin", input="wrong password here\n").returncode == 2
    disabled = admin("2fa", "disable", "--password-stdin", input=PASSWORD + "\n")
    assert disabled.returncode == 0, disabled.stderr
    assert admin("logout").returncode == 0
    assert admin("login", "-u", "admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0


# ---------------------------------------------------------------------------------------------- audit


def test_audit_filters_by_user_action_and_time_and_exports_json_lines(admin: Run, bob: Run) -> None:
    assert bob("project", "create", "bobs").returncode == 0
    assert admin("project", "create", "shop").returncode == 0
    assert admin("member", "add", "shop", "bob", "developer").returncode == 0

    by_bob = _json(admin("audit", "--user", "bob", "--json"))
    assert by_bob and {e["actor"] for e in by_bob} == {"bob"}  # type: ignore[union-attr,index]
    projects = _json(admin("audit", "--action", "project.", "--json"))
    assert {e["project"] for e in projects} == {"bobs", "shop"}  # type: ignore[union-attr,index]
    assert all(e["action"].startswith("project.") for e in projects)  # type: ignore[union-attr,index]
    in_shop = _json(admin("audit", "--project", "shop", "--json"))
    assert {e["action"] for e in in_shop} >= {"project.create", "member.add"}  # type: ignore[union-attr,index]
    assert _json(admin("audit", "--until", "1h", "--json")) == []
    recent = _json(admin("audit", "--since", "1h", "--json"))
    everything = _json(admin("audit", "--limit", "1000", "--json"))
    assert len(recent) == len(everything) > 0  # type: ignore[arg-type]

    exported = admin("audit", "--jsonl")
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [e["id"] for e in lines] == [e["id"] for e in everything]  # type: ignore[union-attr,index]
    assert all({"ts", "actor", "action", "source"} <= set(e) for e in lines)
    assert [
        json.loads(x)["actor"] for x in admin("audit", "--jsonl", "--user", "bob").stdout.splitlines()
    ] == [
        e["actor"]
        for e in by_bob  # type: ignore[union-attr,index]
    ]
    table = admin("audit", "--limit", "2")
    assert table.stdout.splitlines()[0].split()[:4] == ["ID", "TIME", "ACTOR", "AS"]
    assert len(table.stdout.splitlines()) == 3

    bad = _error(admin("audit", "--since", "yesterday", "--json"))
    assert bad["field"] == "since"


def test_a_developer_sees_no_audit_entries_of_projects_they_do_not_administer(admin: Run, bob: Run) -> None:
    admin("project", "create", "secret-plans")
    seen = bob("audit", "--jsonl")
    assert "secret-plans" not in seen.stdout


# ---------------------------------------------------------------------------------------------- secrets


def test_secrets_rotate_key_reseals_what_is_stored_and_values_survive(
    admin: Run, git_repo: Callable[..., Path]
) -> None:
    repo = git_repo({"Dockerfile": "FROM scratch\n"})
    assert admin("project", "create", "shop").returncode == 0
    assert admin("app", "create", "shop/web", "--git", str(repo)).returncode == 0
    assert admin("env", "set", "shop/web", "API_KEY=s3cret-value", "--secret").returncode == 0
    rotated = admin("secrets", "rotate-key", "--json")
    assert rotated.returncode == 0, rotated.stderr
    rotation = _json(rotated)
    assert rotation["resealed"] >= 1 and rotation["key_id"]  # type: ignore[index,operator]
    assert "s3cret-value" not in rotated.stdout
    values = {v["key"]: v["value"] for v in _json(admin("env", "list", "shop/web", "--reveal", "--json"))}  # type: ignore[index,union-attr]
    assert values == {"API_KEY": "s3cret-value"}
    second = _json(admin("secrets", "rotate-key", "--json"))
    assert second["key_id"] != rotation["key_id"]  # type: ignore[index]


def test_only_an_owner_rotates_the_key(bob: Run) -> None:
    assert _error(bob("secrets", "rotate-key", "--json"))["code"] == "permission_denied"


# ---------------------------------------------------------------------------------------------- tls


def _daemon_answers(sock: Path) -> bool:
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://mist") as c:
            return c.get("/v1/setup", timeout=2).status_code == 200
    except (httpx.HTTPError, OSError):
        return False


@pytest.fixture
def tls_daemon(tmp_path: Path, unused_tcp_port: int) -> Iterator[tuple[str, Path]]:
    """A daemon serving TLS on 127.0.0.1 with the self-signed certificate it makes, and access tokens that
    last 20 s, less than the 30 s before expiry at which a command renews its session first: every command
    renews it; (https URL, socket)."""
    sock = tmp_path / "run" / "mist.sock"
    listen = f"127.0.0.1:{unused_tcp_port}"
    cmd = [
        sys.executable, "-m", "mist_core.daemon", "--data", str(tmp_path / "daemon"), "--socket", str(sock),
        "--listen", listen,
    ]  # fmt: skip
    # Not shorter: a token that expired between a command's renewal and its call would be renewed again by
    # the connection itself, outside the lock, racing the other commands.
    env = _env(tmp_path, "daemon", MIST_ACCESS_TOKEN_SECONDS="20")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while not _daemon_answers(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the daemon did not start: {proc.communicate(timeout=10)[1].decode()}")
            time.sleep(0.1)
        yield f"https://{listen}", sock
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_login_over_tls_pins_the_daemons_self_signed_certificate(
    tls_daemon: tuple[str, Path], tmp_path: Path
) -> None:
    from mist_core.client import fetch_certificate

    url, sock = tls_daemon

    def mist(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MIST), *args],
            input=input,
            capture_output=True,
            text=True,
            env=_env(tmp_path, "remote"),
            timeout=60,
        )

    assert (
        mist(
            "--host", f"unix://{sock}", "setup", "-u", "admin", "--password-stdin", input=PASSWORD + "\n"
        ).returncode
        == 0
    )
    _, fingerprint = fetch_certificate(url)

    unknown = mist("--host", url, "login", "-u", "admin", "--password-stdin", "--json", input=PASSWORD + "\n")
    error = _error(unknown)
    assert error["field"] == "fingerprint" and fingerprint in error["message"]
    wrong = "SHA256:" + ":".join(["00"] * 32)
    mismatch = mist(
        "--host",
        url,
        "login",
        "-u",
        "admin",
        "--password-stdin",
        "--fingerprint",
        wrong,
        input=PASSWORD + "\n",
    )
    assert mismatch.returncode == 2 and fingerprint in mismatch.stderr
    assert url not in (
        _credentials(tmp_path, "remote") if (tmp_path / "cfg-remote" / "credentials.json").exists() else {}
    )

    trusted = mist(
        "--host", url, "login", "-u", "admin", "--password-stdin", "--fingerprint", fingerprint.upper(),
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert trusted.returncode == 0, trusted.stderr
    entry = _credentials(tmp_path, "remote")[url]
    assert entry["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert entry["refresh_token"].startswith("mist_r_")

    me = mist("--host", url, "whoami", "--json")
    assert me.returncode == 0, me.stderr
    assert _json(me)["username"] == "admin"  # type: ignore[index]

    # Commands started together, all renewing the session first, renew it one after the other, and the
    # session lives on.
    together = [
        subprocess.Popen(
            [str(MIST), "--host", url, "whoami", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(tmp_path, "remote"),
        )  # fmt: skip
        for _ in range(3)
    ]
    results = [p.communicate(timeout=60) for p in together]
    assert [p.returncode for p in together] == [0, 0, 0], results
    renewed = _credentials(tmp_path, "remote")[url]
    assert renewed["refresh_token"] != entry["refresh_token"]
    assert renewed["certificate"] == entry["certificate"]
    assert mist("--host", url, "whoami").returncode == 0

    # Logging in again needs no fingerprint: the pinned certificate is checked instead.
    again = mist("--host", url, "login", "-u", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert again.returncode == 0, again.stderr
    assert mist("--host", url, "logout").returncode == 0
    assert "certificate" in _credentials(tmp_path, "remote")[url]


# ---------------------------------------------------------------------------------------------- shared store


def _waiting_for_a_lock(pid: int) -> bool:
    """Whether process ``pid`` is blocked on a file lock: ``/proc/locks`` lists waiters after ``->``."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[5] == str(pid):
            return True
    return False


def test_the_tui_saves_a_login_only_once_a_cli_renewal_has_released_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "cfg-ada" / "credentials.json"
    path.parent.mkdir(mode=0o700)
    save = (
        "import sys; from pathlib import Path; from mist_tui.config import Credentials; "
        "Credentials(Path(sys.argv[1])).save('unix:///tui.sock', 'tui-token', 'ada', 'mist_r_tui')"
    )
    lock = os.open(path.with_name("credentials.json.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what a `mist` command holds while it renews its session
        tui = subprocess.Popen([sys.executable, "-c", save, str(path)], env=_env(tmp_path, "ada"))
        while tui.poll() is None and not _waiting_for_a_lock(tui.pid):
            time.sleep(0.01)
        assert tui.poll() is None, "the TUI wrote credentials.json while a CLI held its lock"
        assert not path.exists()
    finally:
        os.close(lock)
    assert tui.wait(timeout=60) == 0
    assert _credentials(tmp_path, "ada")["unix:///tui.sock"]["refresh_token"] == "mist_r_tui"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@dataclass
class ShortTokenDaemon:
    """A daemon on a Unix socket whose access tokens live 20 s, so every `mist` command renews its session
    first (the renewal margin is 30 s). It is reached under two host names, its socket and a link to it, and
    signs tokens with ``signing_key`` (so a test can make an expired copy of one)."""

    host: str
    other_host: str
    signing_key: bytes


@pytest.fixture
def short_token_daemon(tmp_path: Path) -> Iterator[ShortTokenDaemon]:
    sock = tmp_path / "run" / "mist.sock"
    key = os.urandom(32)
    cmd = [
        sys.executable,
        "-m",
        "mist_core.daemon",
        "--data",
        str(tmp_path / "daemon"),
        "--socket",
        str(sock),
    ]
    env = _env(
        tmp_path,
        "daemon",
        MIST_ACCESS_TOKEN_SECONDS="20",
        MIST_AUTH_RATE="100000/10000",
        MIST_SIGNING_KEY=base64.b64encode(key).decode(),
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while not _daemon_answers(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the daemon did not start: {proc.communicate(timeout=10)[1].decode()}")
            time.sleep(0.1)
        link = tmp_path / "link.sock"
        link.symlink_to(sock)
        yield ShortTokenDaemon(f"unix://{sock}", f"unix://{link}", key)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def _remote(tmp_path: Path, person: str) -> Run:
    """``mist ARGS`` (no --embedded) with ``person``'s config: for a daemon named by --host."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MIST), *args],
            input=input,
            capture_output=True,
            text=True,
            env=_env(tmp_path, person),
            timeout=60,
        )

    return run


ROTATIONS = 40

# The CLI: one `mist whoami` after another, in one process; each renews the session of its host first.
CLI_ROTATING = """
import sys
from mist_core.cli import main
host, rounds = sys.argv[1], int(sys.argv[2])
for _ in range(rounds):
    if main(["--host", host, "whoami", "--json"]) != 0:
        sys.exit(1)
"""

# The TUI: renew the session of its host and keep the new pair the way the app does when its connection
# renewed an expired access token (MistApp.session_renewed).
TUI_ROTATING = """
import asyncio, sys
from mist_core.client import RemoteMist
from mist_tui.__main__ import connect
from mist_tui.app import MistApp
from mist_tui.config import Config, Credentials, Target
host, rounds = sys.argv[1], int(sys.argv[2])
credentials = Credentials()
app = MistApp(connect, Config(), target=Target("daemon", host), credentials=credentials)

async def refresh(refresh_token):
    async with RemoteMist(host) as api:
        return await api.auth.refresh(refresh_token)

for _ in range(rounds):
    app.session_renewed(asyncio.run(refresh(credentials.refresh_token(host))))
"""


def test_a_cli_and_a_tui_rotating_their_sessions_at_once_lose_neither_refresh_token(
    short_token_daemon: ShortTokenDaemon, tmp_path: Path
) -> None:
    cli_host, tui_host = short_token_daemon.host, short_token_daemon.other_host
    mist = _remote(tmp_path, "ada")
    setup = mist("--host", cli_host, "setup", "-u", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert setup.returncode == 0, setup.stderr
    login = mist("--host", tui_host, "login", "-u", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    before = _credentials(tmp_path, "ada")

    rotating = [
        subprocess.Popen(
            [sys.executable, "-c", script, host, str(ROTATIONS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(tmp_path, "ada"),
        )
        for script, host in ((CLI_ROTATING, cli_host), (TUI_ROTATING, tui_host))
    ]
    outcomes = [p.communicate(timeout=300) for p in rotating]
    assert [p.returncode for p in rotating] == [0, 0], [(out[-1000:], err[-1000:]) for out, err in outcomes]

    after = _credentials(tmp_path, "ada")
    for host in (cli_host, tui_host):
        assert after[host]["refresh_token"] != before[host]["refresh_token"]
        # The stored refresh token is the last one issued: it still renews the session.
        with httpx.Client(transport=httpx.HTTPTransport(uds=cli_host[len("unix://") :])) as client:
            renewed = client.post(
                "http://mist/v1/refresh", json={"refresh_token": after[host]["refresh_token"]}
            )
        assert renewed.status_code == 200, renewed.text


# The TUI's connect screen: it reads the saved session of the host, then connects with it (here, once the test
# has let a `mist` command renew that session in between).
TUI_CONNECTING = """
import argparse, asyncio, sys
from mist_tui.__main__ import choose_target, connect
from mist_tui.app import MistApp
from mist_tui.config import Config, Credentials
host = sys.argv[1]
credentials = Credentials()
target = choose_target(argparse.Namespace(embedded=False, host=host, data_dir=None), Config(), credentials)
print("read the saved session", flush=True)
sys.stdin.readline()

async def main():
    app = MistApp(connect, Config(), credentials=credentials)
    api = await app.use(target)
    try:
        print((await api.auth.whoami()).username)
    finally:
        await api.close()

asyncio.run(main())
"""


def test_a_tui_connecting_while_a_cli_renews_the_same_saved_session_keeps_the_session(
    short_token_daemon: ShortTokenDaemon, tmp_path: Path
) -> None:
    host = short_token_daemon.host
    mist = _remote(tmp_path, "ada")
    assert (
        mist("--host", host, "setup", "-u", "admin", "--password-stdin", input=PASSWORD + "\n").returncode
        == 0
    )
    # The saved access token has expired since (an expired copy, signed like the daemon's own).
    path = tmp_path / "cfg-ada" / "credentials.json"
    stored = json.loads(path.read_text())
    claims = jwt.decode(stored[host]["token"], options={"verify_signature": False})
    now = int(time.time())
    expired = {**claims, "iat": now - 120, "exp": now - 60}
    stored[host]["token"] = jwt.encode(expired, short_token_daemon.signing_key, algorithm="HS256")
    path.write_text(json.dumps(stored))

    tui = subprocess.Popen(
        [sys.executable, "-c", TUI_CONNECTING, host],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path, "ada"),
    )
    assert tui.stdout is not None and tui.stdin is not None
    try:
        assert tui.stdout.readline() == "read the saved session\n"
        renewed = mist("--host", host, "whoami", "--json")  # spends the refresh token the TUI read
        assert renewed.returncode == 0, renewed.stdout + renewed.stderr
        out, err = tui.communicate("\n", timeout=60)
    finally:
        if tui.poll() is None:
            tui.kill()
    assert tui.returncode == 0, err[-2000:]
    assert out.strip() == "admin"
    again = mist("--host", host, "whoami", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
