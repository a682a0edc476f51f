"""A master key rotation re-seals every sealed value, wherever it was copied: a rollback across a rotation
runs with its secrets, and no value in the database still depends on the retired key.

Each test runs its own daemon (a rotation that lost secrets must not break the other tests' daemon).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from gitutil import init_repo

from .conftest import Daemon, self_signed, strong_password, totp_code

pytestmark = pytest.mark.docker

# The app shows the secret it was started with: httpd serves the value of $SECRET_TOKEN as /secret.txt.
SHOW_SECRET_DOCKERFILE = (
    "FROM mist-test/busybox:1\n"
    "COPY index.html /www/index.html\n"
    'CMD ["sh", "-c", "printf %s \\"$SECRET_TOKEN\\" > /www/secret.txt && trap \'exit 0\' TERM; httpd -f -p 8080 -h /www & wait"]\n'
)
# The shape of a sealed value (``v1:<key id>:<base64>``), wherever it is: a column of its own, or a string
# inside a JSON document (nothing in it is escaped by JSON, so it shows as is in the document's text).
SEALED_SHAPE = re.compile(r"v1:([0-9a-f]{12}):([A-Za-z0-9+/]+={0,2})")


def key_id(key: bytes) -> str:
    """A key's id as sealed values carry it (written here so the test does not trust the core's copy)."""
    return hashlib.sha256(b"mist-key-id:" + key).hexdigest()[:12]


def keys_in(path: Path) -> list[bytes]:
    return [base64.b64decode(line) for line in path.read_bytes().split() if line]


def wait_final(d: Daemon, deployment_id: int) -> dict[str, Any]:
    for _ in range(3000):
        state = d.ok("GET", f"/deployments/{deployment_id}", token=d.owner_token)
        if state["state"] in ("live", "failed", "cancelled"):
            return dict(state)
        time.sleep(0.1)
    raise AssertionError(f"deployment {deployment_id} did not finish: {state}")


def deploy_live(d: Daemon, app_path: str, *, rollback_to: int | None = None) -> dict[str, Any]:
    if rollback_to is None:
        queued = d.ok("POST", app_path + "/deploy", token=d.owner_token, json={})
    else:
        queued = d.ok("POST", app_path + "/rollback", token=d.owner_token, json={"to": rollback_to})
    final = wait_final(d, queued["id"])
    log = d.call("GET", f"/deployments/{queued['id']}/log", token=d.owner_token).text
    assert final["state"] == "live", (
        f"deployment {queued['id']} did not go live: {final.get('error')}\n{log[-2000:]}"
    )
    return final


def shown_secret(d: Daemon, app_path: str) -> str:
    """What the live container of the app serves as its secret, asked over HTTP on its own address."""
    name = d.ok("GET", app_path, token=d.owner_token)["container_name"]
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock")
    try:
        networks = client.containers.get(name).attrs["NetworkSettings"]["Networks"]
    finally:
        client.close()
    address = next(n["IPAddress"] for n in networks.values() if n.get("IPAddress"))
    response = httpx.get(f"http://{address}:8080/secret.txt", timeout=10)
    assert response.status_code == 200, f"{name} answered {response.status_code} for /secret.txt"
    return response.text


@dataclass
class Rotated:
    d: Daemon
    app_path: str
    first_deployment: int
    first_secret: str
    old_key: bytes
    new_key: bytes
    rotation: dict[str, Any]


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory, busybox: str) -> Iterator[Rotated]:
    """A daemon holding one sealed value of every kind the API can make, with an app that went live with a
    secret env var, after a master key rotation."""
    d = Daemon(tmp_path_factory.mktemp("rotation"))
    try:
        d.setup_owner()
        owner = d.owner_token
        project = f"rot-{uuid.uuid4().hex[:8]}"
        repo = init_repo(d.repos / project, {"Dockerfile": SHOW_SECRET_DOCKERFILE, "index.html": "ok\n"})
        d.ok("POST", "/projects", token=owner, json={"name": project})
        d.ok(
            "POST",
            f"/projects/{project}/apps",
            token=owner,
            json={
                "name": "web",
                "git_url": str(repo),
                "port": 8080,
                "health": {"type": "http", "path": "/", "interval": 0.2, "retries": 50},
            },
        )
        app_path = f"/projects/{project}/apps/web"
        first_secret = f"before-rotation-{uuid.uuid4().hex}"
        d.ok(
            "POST",
            app_path + "/env",
            token=owner,
            json={"key": "SECRET_TOKEN", "value": first_secret, "secret": True},
        )
        first = deploy_live(d, app_path)
        assert shown_secret(d, app_path) == first_secret

        # The other kinds of sealed values: the app's git token, deploy key and webhook secret, an uploaded
        # certificate's key, a confirmed TOTP seed and one still pending.
        d.ok("PATCH", app_path + "/source", token=owner, json={"token": f"glpat-{uuid.uuid4().hex}"})
        d.ok("POST", app_path + "/source/deploy-key", token=owner, json={})
        domain = f"{project}.example.com"
        d.ok("POST", app_path + "/domains", token=owner, json={"name": domain, "https": False})
        cert, key = self_signed(domain)
        d.ok("PUT", f"/certificates/{domain}", token=owner, json={"cert_pem": cert, "key_pem": key})
        for username, confirm in (("rot-confirmed", True), ("rot-pending", False)):
            password = strong_password()
            d.create_user(username, "developer", password)
            session = d.login(username, password)["token"]
            seed = d.ok("POST", "/me/totp", token=session)["secret"]
            if confirm:
                d.ok("POST", "/me/totp/enable", token=session, json={"code": totp_code(seed)})

        old_key = keys_in(d.data / "master.key")[0]
        rotation = d.ok("POST", "/secrets/rotate-key", token=owner)
        new_keys = keys_in(d.data / "master.key")
        assert len(new_keys) == 1 and new_keys[0] != old_key, "the key file does not hold one new key"
        yield Rotated(d, app_path, int(first["id"]), first_secret, old_key, new_keys[0], rotation)
    finally:
        d.stop()


def test_a_rollback_across_a_key_rotation_goes_live_with_its_secret(rotated: Rotated) -> None:
    d, app_path = rotated.d, rotated.app_path
    second_secret = f"after-rotation-{uuid.uuid4().hex}"
    d.ok(
        "POST",
        app_path + "/env",
        token=d.owner_token,
        json={"key": "SECRET_TOKEN", "value": second_secret, "secret": True},
    )
    deploy_live(d, app_path)
    assert shown_secret(d, app_path) == second_secret

    deploy_live(d, app_path, rollback_to=rotated.first_deployment)

    assert shown_secret(d, app_path) == rotated.first_secret


def _env_in_snapshot(row: dict[str, Any], sealed: str) -> str:
    item = next(e for e in json.loads(row["config"])["env"] if e["value"] == sealed)
    return f"env:{row['app_id']}:{item['key']}"


# What each sealed value is bound to, by where it is stored. Written here rather than read from the core, so
# a sealed value the core starts keeping somewhere new fails this test until someone says what it is.
BINDINGS: dict[tuple[str, str], Callable[[dict[str, Any], str], str]] = {
    ("env_vars", "value"): lambda r, _: f"env:{r['app_id']}:{r['key']}",
    ("deployments", "config"): _env_in_snapshot,
    ("users", "totp_secret"): lambda r, _: f"totp:{r['id']}",
    ("users", "totp_pending"): lambda r, _: f"totp-pending:{r['id']}",
    ("acme_accounts", "key_sealed"): lambda r, _: f"acme-account:{r['id']}",
    ("certificates", "key_sealed"): lambda r, _: f"cert:{r['id']}:key",
    ("git_providers", "token_sealed"): lambda r, _: f"provider:{r['id']}:token",
    ("git_providers", "key_sealed"): lambda r, _: f"provider:{r['id']}:key",
    ("git_providers", "secret_sealed"): lambda r, _: f"provider:{r['id']}:secret",
    ("app_sources", "token_sealed"): lambda r, _: f"source:{r['app_id']}:token",
    ("app_sources", "key_sealed"): lambda r, _: f"source:{r['app_id']}:key",
    ("app_sources", "secret_sealed"): lambda r, _: f"source:{r['app_id']}:secret",
}


def sealed_values(db: Path) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """(table, column, row, sealed value) for every sealed value in any text of any table."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                values = dict(row)
                for column, value in values.items():
                    if isinstance(value, bytes):
                        value = value.decode(errors="replace")
                    if isinstance(value, str):
                        for match in SEALED_SHAPE.finditer(value):
                            yield table, column, values, match.group(0)
    finally:
        conn.close()


def test_after_a_rotation_every_sealed_value_in_the_database_opens_with_the_new_key_only(
    rotated: Rotated,
) -> None:
    new_id, old_id = key_id(rotated.new_key), key_id(rotated.old_key)
    assert rotated.rotation["key_id"] == new_id
    problems, found = [], set()
    for table, column, row, sealed in sealed_values(rotated.d.data / "mist.db"):
        where = f"{table}.{column} (row {row.get('id', row.get('app_id'))})"
        found.add((table, column))
        _, carried, payload = sealed.split(":", 2)
        if carried != new_id:
            old = " (the retired key)" if carried == old_id else ""
            problems.append(f"{where} holds a value sealed with key {carried}{old}, not {new_id}")
            continue
        binding = BINDINGS.get((table, column))
        if binding is None:
            problems.append(f"{where} holds a sealed value this test does not know: say what it is bound to")
            continue
        raw = base64.b64decode(payload)
        bound_to = binding(row, sealed).encode()
        try:
            AESGCM(rotated.new_key).decrypt(raw[:12], raw[12:], bound_to)
        except InvalidTag:
            problems.append(f"{where} holds a value that does not open with the new key")
        try:
            AESGCM(rotated.old_key).decrypt(raw[:12], raw[12:], bound_to)
            problems.append(f"{where} holds a value that still opens with the retired key")
        except InvalidTag:
            pass
    expected = {
        ("env_vars", "value"),
        ("deployments", "config"),
        ("users", "totp_secret"),
        ("users", "totp_pending"),
        ("certificates", "key_sealed"),
        ("app_sources", "token_sealed"),
        ("app_sources", "key_sealed"),
        ("app_sources", "secret_sealed"),
    }
    assert expected <= found, f"the scan missed planted values in {sorted(expected - found)}"
    assert not problems, "after rotate-key:\n" + "\n".join(sorted(set(problems)))
