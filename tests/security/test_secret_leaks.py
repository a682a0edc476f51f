"""Plant secret values the way users do (secret env vars, a password, a TOTP seed and recovery codes, a
certificate key, API, refresh and invitation tokens, a git token in a URL, an S3 destination's keys, the backup
key, a database's password used by backups that dump, check and restore it), then look for them where they
must never be: the raw bytes of the SQLite database and its WAL, the daemon's log, every API response a viewer
can get, what the owner reads of backups and the audit log, and the stored backups."""

from __future__ import annotations

import base64
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from gitutil import init_repo
from images import postgres_image
from moto.server import ThreadedMotoServer

from .conftest import Daemon, describe, self_signed, strong_password, totp_code

pytestmark = pytest.mark.docker


@dataclass
class Planted:
    """Each secret by what it is, with the byte strings that would give it away."""

    values: dict[str, list[bytes]] = field(default_factory=dict)

    def add(self, what: str, *forms: str | bytes) -> None:
        encoded = [f.encode() if isinstance(f, str) else f for f in forms if f]
        self.values.setdefault(what, []).extend(encoded)

    def found_in(self, blob: bytes) -> list[str]:
        return sorted({what for what, forms in self.values.items() for f in forms if f in blob})


@dataclass
class Scene:
    d: Daemon
    project: str
    app: str
    viewers: dict[str, str]  # column -> session token
    planted: Planted
    owner_can_see: str  # a secret env value the owner reads back with reveal, proving the plant worked
    user: str  # the account whose password, TOTP seed and tokens are planted
    backups: list[int]  # a database's backups: one made, verified and restored, one that failed
    backup_dir: Path  # where the local destination keeps them


def _pem_body(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


@pytest.fixture(scope="module")
def scene(daemon: Daemon) -> Scene:
    d = daemon
    s = uuid.uuid4().hex[:8]
    planted = Planted()
    owner = d.owner_token
    project, app = f"leak-{s}", "web"
    repo = init_repo(d.repos / f"leak-{s}", {"README.md": "nothing to build\n"})
    d.ok("POST", "/projects", token=owner, json={"name": project})
    d.ok("POST", f"/projects/{project}/apps", token=owner, json={"name": app, "git_url": str(repo)})
    app_path = f"/projects/{project}/apps/{app}"

    # Secret env vars, one set directly and one imported from a .env text.
    env_secret = f"envsecret-{uuid.uuid4().hex}"
    d.ok(
        "POST",
        app_path + "/env",
        token=owner,
        json={"key": "DB_PASSWORD", "value": env_secret, "secret": True},
    )
    imported = f"imported-{uuid.uuid4().hex}"
    d.ok(
        "POST", app_path + "/env/import", token=owner, json={"text": f"API_KEY={imported}\n", "secret": True}
    )
    build_secret = f"buildsecret-{uuid.uuid4().hex}"
    d.ok(
        "POST",
        app_path + "/env",
        token=owner,
        json={"key": "NPM_TOKEN", "value": build_secret, "secret": True, "build": True},
    )
    planted.add("secret env var", env_secret)
    planted.add("imported secret env var", imported)
    planted.add("build secret", build_secret)
    # A deployment snapshots the env (and fails at once: the repository has nothing to build).
    d.ok("POST", app_path + "/deploy", token=owner, json={})

    # A git token inside a repository URL, on an app of its own.
    git_token = f"ghp_{uuid.uuid4().hex}"
    response = d.call(
        "POST",
        f"/projects/{project}/apps",
        token=owner,
        json={
            "name": "private",
            "git_url": f"https://x-access-token:{git_token}@git.example.com/org/repo.git",
        },
    )
    if response.is_success:
        planted.add("git token in a URL", git_token)

    # Accounts: a password, a TOTP seed and its recovery codes, a refresh token, an API token.
    user, password = f"leak-u-{s}", strong_password()
    d.create_user(user, "developer", password)
    planted.add("password", password)
    session = d.login(user, password)
    planted.add("refresh token", session["refresh_token"], session["refresh_token"].removeprefix("mist_r_"))
    planted.add("access token", session["token"], session["token"].split(".")[-1])
    setup = d.ok("POST", "/me/totp", token=session["token"])
    seed = setup["secret"]
    raw_seed = base64.b32decode(seed.upper() + "=" * (-len(seed) % 8))
    codes = d.ok("POST", "/me/totp/enable", token=session["token"], json={"code": totp_code(seed)})["codes"]
    planted.add("TOTP seed", seed, raw_seed, raw_seed.hex())
    planted.add("recovery code", *codes)
    api_token = d.create_token(session["token"], "admin")["token"]
    planted.add("API token", api_token, api_token.removeprefix("mist_t_"))
    invite = d.ok("POST", "/invites", token=owner, json={"username": f"leak-inv-{s}", "role": "viewer"})
    planted.add("invitation token", invite["token"])

    # An uploaded certificate's private key.
    domain = f"leak{s}.example.com"
    d.ok("POST", app_path + "/domains", token=owner, json={"name": domain, "https": False})
    cert, key = self_signed(domain)
    d.ok("PUT", f"/certificates/{domain}", token=owner, json={"cert_pem": cert, "key_pem": key})
    from cryptography.hazmat.primitives import serialization

    der = serialization.load_pem_private_key(key.encode(), None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    planted.add("certificate key", *_pem_body(key), der)

    # The keys Mist keeps outside the database must not end up in it either.
    planted.add("signing key", d.signing_key, base64.b64encode(d.signing_key))
    master = (d.data / "master.key").read_bytes().strip()
    planted.add("master key", master)
    try:
        planted.add("master key", base64.b64decode(master, validate=True))
    except ValueError:
        pass

    backups = _plant_backups(d, project, planted)

    # Viewers: an instance viewer and a project viewer, both members of the project.
    viewers = {}
    for column, role in (("instance viewer", "viewer"), ("project viewer", "developer")):
        name, pw = f"leak-v-{uuid.uuid4().hex[:8]}", strong_password()
        d.create_user(name, role, pw)
        d.ok("PUT", f"/projects/{project}/members/{name}", token=owner, json={"role": "viewer"})
        viewers[column] = d.login(name, pw)["token"]
    viewers["read token"] = d.create_token(viewers["project viewer"], "read")["token"]
    return Scene(d, project, app, viewers, planted, env_secret, user, backups, d.root / "backups")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until(d: Daemon, path: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found: dict[str, Any] = d.ok("GET", path, token=d.owner_token)
        if done(found):
            return found
        time.sleep(0.5)
    raise AssertionError(f"{path} did not finish: {found}")


def _plant_backups(d: Daemon, project: str, planted: Planted) -> list[int]:
    """An S3 destination (its keys), an encrypting local one (the backup key), and a PostgreSQL database
    (its password) backed up, verified and restored into a new database, then backed up while it is stopped
    (a failed backup, whose error is shown)."""
    owner = d.owner_token
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        keys = {
            "access_key": f"AKIA{uuid.uuid4().hex[:16].upper()}",
            "secret_key": f"s3secret-{uuid.uuid4().hex}",
        }
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=keys["access_key"],
            aws_secret_access_key=keys["secret_key"],
        ).create_bucket(Bucket="leaks")
        body = {"name": f"s3-{project}", "kind": "s3", "endpoint": endpoint, "bucket": "leaks", **keys}
        d.ok("POST", "/backup-destinations", token=owner, json=body)
        planted.add("S3 access key", keys["access_key"])
        planted.add("S3 secret key", keys["secret_key"])
    finally:
        server.stop()
    destination = f"enc-{project}"
    body = {"name": destination, "kind": "local", "path": str(d.root / "backups"), "encrypt": True}
    d.ok("POST", "/backup-destinations", token=owner, json=body)
    for line in (d.data / "backup.key").read_text().split():
        planted.add("backup key", line, base64.b64decode(line))

    postgres_image()
    db = f"/projects/{project}/databases/pg"
    d.ok("POST", f"/projects/{project}/databases", token=owner, json={"name": "pg", "engine": "postgres"})
    url = d.ok("GET", db + "/url", token=owner)
    url = url if isinstance(url, str) else url["url"]
    password = url.split(":")[2].split("@")[0]
    planted.add("database password", password)

    run = {"name": "pg", "kind": "database", "destination": destination}
    made = d.ok("POST", f"/projects/{project}/backups", token=owner, json=run)["id"]
    backup = _until(d, f"/backups/{made}", lambda b: b["state"] != "running")
    assert backup["state"] == "success", backup
    d.ok("POST", f"/backups/{made}/verify", token=owner, json={})
    backup = _until(d, f"/backups/{made}", lambda b: b["verified"] != "running")
    assert backup["verified"] == "passed", backup
    d.ok("POST", f"/backups/{made}/restore", token=owner, json={"target": "pgcopy"})
    backup = _until(d, f"/backups/{made}", lambda b: b["restore_state"] != "running")
    assert backup["restore_state"] == "success", backup

    d.ok("POST", db + "/stop", token=owner, json={})
    failed = d.ok("POST", f"/projects/{project}/backups", token=owner, json=run)["id"]
    backup = _until(d, f"/backups/{failed}", lambda b: b["state"] != "running")
    assert backup["state"] == "failed" and backup["error"], backup
    return [made, failed]


def test_the_planted_secret_is_readable_by_the_owner(scene: Scene) -> None:
    # The control: the value is stored and revealed to those allowed, so its absence elsewhere means something.
    env = scene.d.ok(
        "GET",
        f"/projects/{scene.project}/apps/{scene.app}/env",
        token=scene.d.owner_token,
        params={"reveal": "true"},
    )
    assert scene.owner_can_see in [v["value"] for v in env]


def _database_files(data: Path) -> list[Path]:
    return sorted(p for p in data.iterdir() if p.name.startswith("mist.db"))


def test_no_planted_secret_is_in_the_database_file_or_its_wal(scene: Scene) -> None:
    files = _database_files(scene.d.data)
    assert any(p.name == "mist.db" for p in files)
    found = {p.name: scene.planted.found_in(p.read_bytes()) for p in files}
    assert not any(found.values()), f"secrets in plain text at rest: {found}"


def test_no_planted_secret_is_in_the_daemons_log(scene: Scene) -> None:
    log = scene.d.log_text().encode()
    assert log, "the daemon wrote nothing at all: the log capture is broken"
    found = scene.planted.found_in(log)
    assert not found, f"secrets in the daemon's log: {found}"


def test_no_planted_secret_is_in_what_the_owner_reads_of_backups_or_the_audit_log(scene: Scene) -> None:
    d = scene.d
    paths = [
        f"/projects/{scene.project}/backups",
        f"/projects/{scene.project}/backup-schedules",
        "/backup-destinations",
        f"/projects/{scene.project}/databases/pg",
        f"/projects/{scene.project}/databases/pgcopy",
        "/databases",
        "/audit",
        *(f"/backups/{backup_id}" for backup_id in scene.backups),
    ]
    problems = []
    for path in paths:
        response = d.call(
            "GET", path, token=d.owner_token, params={"limit": 500} if "audit" in path else None
        )
        assert response.status_code == 200, describe(response)
        found = scene.planted.found_in(response.content)
        if found:
            problems.append(f"GET {path} shows {found}")
    assert not problems, "\n".join(problems)


def test_no_planted_secret_is_in_a_stored_backup(scene: Scene) -> None:
    stored = [p for p in scene.backup_dir.rglob("*") if p.is_file()]
    assert stored, "no backup was stored: the plant did not work"
    found = {p.name: scene.planted.found_in(p.read_bytes()) for p in stored}
    assert not any(found.values()), f"secrets in stored backups: {found}"


def _fill(path: str, scene: Scene, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), "x"), path)


def test_no_planted_secret_is_in_any_response_a_viewer_can_get(scene: Scene) -> None:
    d = scene.d
    spec = d.ok("GET", "/openapi.json")
    deployments = d.ok("GET", f"/projects/{scene.project}/apps/{scene.app}/deployments", token=d.owner_token)
    domain = d.ok("GET", f"/projects/{scene.project}/apps/{scene.app}/domains", token=d.owner_token)[0][
        "name"
    ]
    values = {
        "project": scene.project,
        "name": scene.project,
        "app": scene.app,
        "deployment_id": str(deployments["items"][0]["id"]),
        "key": "DB_PASSWORD",
        "domain": domain,
        "username": scene.user,
        "backup_id": str(scene.backups[0]),
        "database": "pg",
    }
    endless = {"/v1/events", "/v1/metrics/stream"}
    problems = []
    reached = 0
    for path, item in spec["paths"].items():
        get = item.get("get")
        if not get:
            continue
        flags = [p["name"] for p in get.get("parameters", []) if p.get("in") == "query"]
        variants: list[dict[str, Any]] = [{}]
        variants += [{flag: "true"} for flag in ("reveal", "all") if flag in flags]
        if "username" in flags:
            variants.append({"username": "*"})
        apps = [scene.app, "private"] if "{app}" in path else [scene.app]
        for who, token in scene.viewers.items():
            for params, app in ((v, a) for v in variants for a in apps):
                url = _fill(path, scene, {**values, "app": app}).removeprefix("/v1")
                headers = {"Authorization": f"Bearer {token}"}
                with d.http.stream("GET", "/v1" + url, params=params, headers=headers) as response:
                    body = b""
                    for chunk in response.iter_bytes():
                        body += chunk
                        if path in endless and len(body) > 0:
                            break
                reached += response.status_code == 200
                found = scene.planted.found_in(body)
                if found:
                    problems.append(
                        f"{who}: GET {url} {params or ''} -> {response.status_code} shows {found}"
                    )
    assert reached > 10, "the walk reached almost nothing: the viewers' credentials do not work"
    assert not problems, "\n".join(problems)


def test_every_stored_secret_still_works_after_a_master_key_rotation(tmp_path: Path) -> None:
    # A daemon of its own: a rotation that loses secrets must not break the other tests' daemon.
    d = Daemon(tmp_path)
    try:
        d.setup_owner()
        owner = d.owner_token
        d.ok("POST", "/projects", token=owner, json={"name": "rot"})
        d.ok("POST", "/projects/rot/apps", token=owner, json={"name": "web", "git_url": str(d.repos / "web")})
        app = "/projects/rot/apps/web"
        value = f"rotated-{uuid.uuid4().hex}"
        d.ok("POST", app + "/env", token=owner, json={"key": "SECRET", "value": value, "secret": True})
        webhook_secret = d.ok("GET", app + "/source", token=owner, params={"reveal": "true"}).get(
            "webhook_secret"
        )
        domain = "rot.example.com"
        d.ok("POST", app + "/domains", token=owner, json={"name": domain, "https": False})
        cert, key = self_signed(domain)
        d.ok("PUT", f"/certificates/{domain}", token=owner, json={"cert_pem": cert, "key_pem": key})
        password = strong_password()
        d.create_user("rot-user", "developer", password)
        session = d.login("rot-user", password)
        seed = d.ok("POST", "/me/totp", token=session["token"])["secret"]
        d.ok("POST", "/me/totp/enable", token=session["token"], json={"code": totp_code(seed)})
        api_token = d.create_token(owner, "read")["token"]

        rotation = d.ok("POST", "/secrets/rotate-key", token=owner)

        problems = []
        env = d.call("GET", app + "/env", token=owner, params={"reveal": "true"})
        if env.status_code != 200 or value not in env.text:
            problems.append(f"the secret env var: {describe(env)}")
        source = d.call("GET", app + "/source", token=owner, params={"reveal": "true"})
        if source.status_code != 200 or (webhook_secret and webhook_secret not in source.text):
            problems.append(f"the webhook secret: {describe(source)}")
        certificates = d.call("GET", "/certificates", token=owner)
        if certificates.status_code != 200 or domain not in certificates.text:
            problems.append(f"the uploaded certificate: {describe(certificates)}")
        # The code of the next step: the one of this step was used up by enabling.
        login = d.call(
            "POST",
            "/login",
            json={"username": "rot-user", "password": password, "totp": totp_code(seed, at=time.time() + 30)},
        )
        if login.status_code != 200:
            problems.append(f"a login with the TOTP seed: {describe(login)}")
        if d.call("GET", "/me", token=api_token).status_code != 200:
            problems.append("the API token stopped working")
        if rotation["resealed"] < 4:
            problems.append(
                f"only {rotation['resealed']} secrets were resealed (env var, webhook, key, seed)"
            )
        assert not problems, "after rotate-key:\n" + "\n".join(problems)
    finally:
        d.stop()
