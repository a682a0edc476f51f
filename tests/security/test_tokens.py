"""Credentials that must not work: expired, tampered, signed with the wrong algorithm or key, revoked, reused.
Each is sent to the daemon as a bearer token and must be refused with 401 problem+json."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import time
import uuid
from typing import Any

import jwt
import pytest

from .conftest import Daemon, describe, is_problem, strong_password

pytestmark = pytest.mark.docker


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(unb64url(token.split(".")[1]))


def header_of(token: str) -> dict[str, Any]:
    return json.loads(unb64url(token.split(".")[0]))


def hmac_token(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """A JWT signed by hand with HMAC-SHA256, whatever the header says (PyJWT refuses some of these keys)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def assert_refused(d: Daemon, token: str, *, code: str | None = None) -> None:
    response = d.call("GET", "/me", token=token)
    assert response.status_code == 401, describe(response)
    assert is_problem(response), describe(response)
    if code is not None:
        assert response.json()["code"] == code, describe(response)


class Account:
    """A developer account of its own, so revoking its sessions disturbs no other test."""

    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.username = f"tok-{uuid.uuid4().hex[:8]}"
        self.password = strong_password()
        d.create_user(self.username, "developer", self.password)

    def login(self) -> dict[str, Any]:
        return self.d.login(self.username, self.password)


@pytest.fixture
def account(daemon: Daemon) -> Account:
    return Account(daemon)


@pytest.fixture
def session(account: Account) -> dict[str, Any]:
    return account.login()


@pytest.fixture
def owner_id(daemon: Daemon) -> str:
    return str(daemon.owner["user"]["id"])


def test_a_real_access_token_works(daemon: Daemon, session: dict[str, Any]) -> None:
    # The control for every refusal below: the same daemon accepts the genuine token.
    assert daemon.call("GET", "/me", token=session["token"]).status_code == 200


def test_an_expired_access_token_is_refused_as_expired(daemon: Daemon, session: dict[str, Any]) -> None:
    claims = claims_of(session["token"])
    now = int(time.time())
    claims.update(iat=now - 3600, exp=now - 60)
    forged = jwt.encode(claims, daemon.signing_key, algorithm="HS256")
    assert_refused(daemon, forged, code="token_expired")


def test_a_token_whose_claims_were_edited_is_refused(
    daemon: Daemon, session: dict[str, Any], owner_id: str
) -> None:
    header, payload, signature = session["token"].split(".")
    for change in ({"sub": owner_id}, {"exp": int(time.time()) + 86400 * 365}, {"sid": 1}):
        claims = {**claims_of(session["token"]), **change}
        tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
        assert_refused(daemon, tampered)


def test_a_token_with_a_changed_signature_is_refused(daemon: Daemon, session: dict[str, Any]) -> None:
    header, payload, signature = session["token"].split(".")
    raw = bytearray(unb64url(signature))
    raw[0] ^= 0x01
    assert_refused(daemon, f"{header}.{payload}.{b64url(bytes(raw))}")
    assert_refused(daemon, f"{header}.{payload}.")
    assert_refused(daemon, f"{header}.{payload}")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_an_unsigned_token_is_refused(
    daemon: Daemon, session: dict[str, Any], owner_id: str, alg: str
) -> None:
    for claims in (claims_of(session["token"]), {**claims_of(session["token"]), "sub": owner_id}):
        head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        body = b64url(json.dumps(claims).encode())
        assert_refused(daemon, f"{head}.{body}.")
        assert_refused(daemon, f"{head}.{body}")


def test_a_token_signed_with_another_key_is_refused(
    daemon: Daemon, session: dict[str, Any], owner_id: str
) -> None:
    claims = {**claims_of(session["token"]), "sub": owner_id}
    wrong_keys = [
        uuid.uuid4().bytes * 2,
        b"",
        # The key as text (base64) rather than its bytes, and the other obvious mistakes with it.
        base64.b64encode(daemon.signing_key),
        daemon.signing_key.hex().encode(),
        daemon.signing_key[:16],
    ]
    for key in wrong_keys:
        assert_refused(daemon, hmac_token({"alg": "HS256", "typ": "JWT"}, claims, key))


@pytest.mark.filterwarnings(
    "ignore::UserWarning"
)  # PyJWT notes the key is short for these; that is the point
@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_a_token_signed_with_the_right_key_and_another_hmac_is_refused(
    daemon: Daemon, session: dict[str, Any], alg: str
) -> None:
    # Only HS256 is Mist's: accepting whatever the header names is how algorithm confusion starts.
    forged = jwt.encode(claims_of(session["token"]), daemon.signing_key, algorithm=alg)
    assert_refused(daemon, forged)


def test_rs256_and_header_confusion_tokens_are_refused(
    daemon: Daemon, session: dict[str, Any], owner_id: str
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    claims = {**claims_of(session["token"]), "sub": owner_id}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_refused(daemon, jwt.encode(claims, rsa_key, algorithm="RS256"))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    assert_refused(daemon, jwt.encode(claims, ec_key, algorithm="ES256"))
    # The header says RS256 and the signature is an HMAC made with the public key's PEM as the secret (the
    # classic confusion), or with the daemon's real signing key.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_pem, daemon.signing_key):
        assert_refused(daemon, hmac_token({"alg": "RS256", "typ": "JWT"}, claims, secret))
    # An embedded key the verifier might be tempted to use.
    jwk = {"alg": "HS256", "typ": "JWT", "jwk": {"kty": "oct", "k": b64url(b"x" * 32)}}
    assert_refused(daemon, hmac_token(jwk, claims, b"x" * 32))
    assert_refused(daemon, hmac_token({"alg": "HS256", "typ": "JWT", "kid": "../../dev/null"}, claims, b""))


def test_tokens_that_are_not_access_tokens_are_refused(daemon: Daemon, session: dict[str, Any]) -> None:
    assert_refused(daemon, session["refresh_token"])  # a refresh token is no bearer token
    assert_refused(daemon, "mist_t_" + uuid.uuid4().hex)
    assert_refused(daemon, "mist_r_" + uuid.uuid4().hex)
    assert_refused(daemon, "not-a-token")
    assert_refused(daemon, "a.b.c")
    assert_refused(daemon, "..")


def test_a_revoked_sessions_access_token_is_refused(
    daemon: Daemon, account: Account, session: dict[str, Any]
) -> None:
    other = account.login()
    ids = [s["id"] for s in daemon.ok("GET", "/sessions", token=other["token"]) if s.get("current")]
    assert len(ids) == 1
    daemon.ok("DELETE", f"/sessions/{ids[0]}", token=session["token"])
    assert_refused(daemon, other["token"])
    response = daemon.call("POST", "/refresh", json={"refresh_token": other["refresh_token"]})
    assert response.status_code == 401 and is_problem(response), describe(response)
    assert daemon.call("GET", "/me", token=session["token"]).status_code == 200


def test_a_revoked_api_token_is_refused(daemon: Daemon, session: dict[str, Any]) -> None:
    created = daemon.create_token(session["token"], "admin")
    assert daemon.call("GET", "/me", token=created["token"]).status_code == 200
    daemon.ok("DELETE", f"/tokens/{created['info']['id']}", token=session["token"])
    assert_refused(daemon, created["token"])


def test_a_changed_api_token_is_refused(daemon: Daemon, session: dict[str, Any]) -> None:
    token = daemon.create_token(session["token"], "read")["token"]
    last = token[-1]
    assert_refused(daemon, token[:-1] + ("A" if last != "A" else "B"))
    assert_refused(daemon, token + "x")
    assert_refused(daemon, token[:-4])


def _expire_api_token(d: Daemon, token_id: int) -> None:
    """Move an API token's expiry into the past in the database (what time would do, without waiting)."""
    with sqlite3.connect(d.data / "mist.db", timeout=30) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        candidates = []
        for table in tables:
            columns = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            if "token" in table and "expires_at" in columns and "scope" in columns:
                candidates.append(table)
        assert len(candidates) == 1, f"cannot tell the API tokens' table among {tables}"
        db.execute(
            f"UPDATE {candidates[0]} SET expires_at = ? WHERE id = ?", ("2000-01-01T00:00:00+00:00", token_id)
        )


def test_an_expired_api_token_is_refused(daemon: Daemon, session: dict[str, Any]) -> None:
    created = daemon.create_token(session["token"], "read")
    assert daemon.call("GET", "/me", token=created["token"]).status_code == 200
    _expire_api_token(daemon, int(created["info"]["id"]))
    assert_refused(daemon, created["token"])


def test_reusing_a_refresh_token_revokes_the_whole_session(daemon: Daemon, session: dict[str, Any]) -> None:
    first = session["refresh_token"]
    renewed = daemon.ok("POST", "/refresh", json={"refresh_token": first})
    assert renewed["refresh_token"] != first
    assert daemon.call("GET", "/me", token=renewed["token"]).status_code == 200

    reuse = daemon.call("POST", "/refresh", json={"refresh_token": first})
    assert reuse.status_code == 401 and is_problem(reuse), describe(reuse)
    # Whoever copied the token and whoever holds the new pair are now both out.
    again = daemon.call("POST", "/refresh", json={"refresh_token": renewed["refresh_token"]})
    assert again.status_code == 401 and is_problem(again), describe(again)
    assert_refused(daemon, renewed["token"])
    assert_refused(daemon, session["token"])


def test_logout_ends_the_access_and_the_refresh_token(daemon: Daemon, session: dict[str, Any]) -> None:
    daemon.ok("POST", "/logout", token=session["token"])
    assert_refused(daemon, session["token"])
    response = daemon.call("POST", "/refresh", json={"refresh_token": session["refresh_token"]})
    assert response.status_code == 401 and is_problem(response), describe(response)


def test_a_password_change_ends_every_other_session(daemon: Daemon, account: Account) -> None:
    mine, other = account.login(), account.login()
    new = strong_password()
    daemon.ok("POST", "/me/password", token=mine["token"], json={"current": account.password, "new": new})
    assert_refused(daemon, other["token"])
    response = daemon.call("POST", "/refresh", json={"refresh_token": other["refresh_token"]})
    assert response.status_code == 401 and is_problem(response), describe(response)
    assert daemon.call("GET", "/me", token=mine["token"]).status_code == 200
    old = daemon.call("POST", "/login", json={"username": account.username, "password": account.password})
    assert old.status_code == 401 and is_problem(old), describe(old)


def test_a_deleted_users_tokens_are_refused(
    daemon: Daemon, account: Account, session: dict[str, Any]
) -> None:
    api_token = daemon.create_token(session["token"], "read")["token"]
    daemon.ok("DELETE", f"/users/{account.username}", token=daemon.owner_token)
    assert_refused(daemon, session["token"])
    assert_refused(daemon, api_token)
    response = daemon.call("POST", "/refresh", json={"refresh_token": session["refresh_token"]})
    assert response.status_code == 401 and is_problem(response), describe(response)


def test_a_password_change_leaves_api_tokens_alone_unless_asked(daemon: Daemon, account: Account) -> None:
    mine = account.login()
    kept = daemon.create_token(mine["token"], "read")["token"]
    new = strong_password()
    daemon.ok("POST", "/me/password", token=mine["token"], json={"current": account.password, "new": new})
    assert daemon.call("GET", "/me", token=kept).status_code == 200


def test_a_password_change_can_revoke_every_api_token_of_the_user(daemon: Daemon, account: Account) -> None:
    mine, other = account.login(), account.login()
    tokens = [daemon.create_token(mine["token"], scope)["token"] for scope in ("read", "deploy", "admin")]
    someone_elses = Account(daemon)
    theirs = daemon.create_token(someone_elses.login()["token"], "read")["token"]
    new = strong_password()
    daemon.ok(
        "POST",
        "/me/password",
        token=mine["token"],
        json={"current": account.password, "new": new, "revoke_tokens": True},
    )
    for token in tokens:
        assert_refused(daemon, token)
    assert_refused(daemon, other["token"])
    assert daemon.call("GET", "/me", token=mine["token"]).status_code == 200  # the session that asked
    assert daemon.ok("GET", "/tokens", token=mine["token"]) == []
    assert daemon.call("GET", "/me", token=theirs).status_code == 200  # nobody else's
    entries = daemon.ok(
        "GET",
        "/audit",
        token=daemon.owner_token,
        params={"actor": account.username, "action": "user.password"},
    )["items"]
    assert entries and entries[0]["detail"]["tokens_revoked"] == 3, entries
