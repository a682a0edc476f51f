"""The ``mist`` command as a user runs it, on an embedded core with a real SQLite file, real git repositories
and (for deployments) the real Docker Engine. Commands run in this process (``mist_core.cli.run`` with their
own stdin, stdout, stderr and environment, as a separate process would have); one test starts the installed
``mist`` program itself. Asserts on what the user sees: output, exit codes, the credentials file."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mist_core.cli import run as run_mist

ROOT = Path(__file__).resolve().parents[2]
MIST = Path(sys.executable).parent / "mist"
PASSWORD = "correct horse battery staple"

Run = Callable[..., subprocess.CompletedProcess[str]]


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "MIST_CONFIG_DIR": str(tmp_path / "cfg"),
        "MIST_GIT_ROOTS": str(tmp_path),
        "MIST_METRICS_INTERVAL": "1",
        # The checkout's code, whatever the state of the editable install (for the `mist` program).
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    env.pop("MIST_TOKEN", None)
    env.pop("MIST_HOST", None)
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Run:
    """Runs ``mist --embedded --data <tmp>/data ARGS`` in this process, with its config and allowed git roots
    in tmp."""
    env = _environment(tmp_path)

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["--embedded", "--data", str(tmp_path / "data"), *args]
        stdout, stderr = io.StringIO(), io.StringIO()
        code = run_mist(argv, stdin=io.StringIO(input or ""), stdout=stdout, stderr=stderr, env=env)
        return subprocess.CompletedProcess(["mist", *argv], code, stdout.getvalue(), stderr.getvalue())

    return run


@pytest.fixture
def program(tmp_path: Path) -> Run:
    """Runs the installed ``mist`` program, as a user does, on the same data and config as ``cli``."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MIST), "--embedded", "--data", str(tmp_path / "data"), *args],
            input=input,
            capture_output=True,
            text=True,
            env=_environment(tmp_path),
            timeout=120,
        )

    return run


@pytest.fixture
def owner(cli: Run) -> Run:
    result = cli("setup", "--username", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    return cli


SITE = {
    "Dockerfile": (
        "FROM mist-test/busybox:1\n"
        "COPY index.html /www/index.html\n"
        'CMD ["sh", "-c", "trap \'exit 0\' TERM; httpd -f -p 8080 -h /www & wait"]\n'
    ),
    "index.html": "hello from mist\n",
}


@pytest.fixture
def repo(git_repo: Callable[..., Path]) -> Path:
    """A git repository whose Dockerfile serves a page with busybox httpd on port 8080."""
    return git_repo(SITE)


def _json(result: subprocess.CompletedProcess[str]) -> object:
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------------------------- accounts


def test_setup_stores_a_token_readable_only_by_the_user(program: Run, tmp_path: Path) -> None:
    """Through the installed ``mist`` program, as a user runs it."""
    result = program("setup", "--username", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "admin" in result.stdout
    creds = tmp_path / "cfg" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert stat.S_IMODE(creds.parent.stat().st_mode) == 0o700
    stored = json.loads(creds.read_text())
    key = f"embedded:{(tmp_path / 'data').resolve()}"
    assert stored[key]["username"] == "admin"
    assert stored[key]["token"]
    assert "admin" in program("whoami").stdout


def test_whoami_after_setup_names_the_owner(owner: Run) -> None:
    result = owner("whoami", "--json")
    assert result.returncode == 0, result.stderr
    assert _json(result)["username"] == "admin"
    assert _json(result)["role"] == "owner"


def test_setup_twice_is_refused(owner: Run) -> None:
    result = owner("setup", "--username", "other", "--password-stdin", input=PASSWORD + "\n")
    assert result.returncode == 2
    assert result.stderr.startswith("mist: ")
    assert "Traceback" not in result.stderr


def test_login_with_the_wrong_password_is_refused(owner: Run) -> None:
    result = owner("login", "--username", "admin", "--password-stdin", input="not the password\n")
    assert result.returncode == 2
    assert result.stderr.startswith("mist: ")


def test_logout_then_commands_ask_to_log_in_and_login_works_again(owner: Run) -> None:
    assert owner("logout").returncode == 0
    refused = owner("project", "list")
    assert refused.returncode == 2
    assert "mist login" in refused.stderr
    login = owner("login", "--username", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    assert owner("project", "list").returncode == 0


def test_password_is_required_when_stdin_is_not_a_terminal(cli: Run) -> None:
    result = cli("setup", "--username", "admin", input="")
    assert result.returncode == 2
    assert "--password-stdin" in result.stderr


# ---------------------------------------------------------------------------------------------- projects


def test_project_create_then_list_as_json_and_table(owner: Run) -> None:
    created = owner("project", "create", "shop", "--description", "The shop", "--tag", "prod")
    assert created.returncode == 0, created.stderr
    listed = owner("project", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    projects = _json(listed)
    assert [p["name"] for p in projects] == ["shop"]
    assert projects[0]["tags"] == ["prod"]
    table = owner("project", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "APPS", "TAGS", "OWNER", "AGE"]
    assert table[1].split()[:4] == ["shop", "0", "prod", "admin"]


def test_project_with_a_taken_name_is_a_conflict(owner: Run) -> None:
    owner("project", "create", "shop")
    result = owner("--json", "project", "create", "shop")
    assert result.returncode == 2
    assert _json(result)["error"]["code"] == "conflict"


def test_project_rename_tag_and_delete(owner: Run) -> None:
    owner("project", "create", "shop", "--tag", "a")
    assert owner("project", "rename", "shop", "store").returncode == 0
    tagged = owner("project", "tag", "store", "--add", "b", "--remove", "a", "--json")
    assert _json(tagged)["tags"] == ["b"]
    refused = owner("project", "delete", "store")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert owner("project", "delete", "store", "--yes").returncode == 0
    missing = owner("project", "show", "store", "--json")
    assert missing.returncode == 2
    assert _json(missing)["error"]["code"] == "not_found"


# ---------------------------------------------------------------------------------------------- apps


@pytest.fixture
def shop(owner: Run) -> Run:
    assert owner("project", "create", "shop").returncode == 0
    return owner


BAD_APPS = [
    (["--port", "99999"], "port"),
    (["--port", "eighty"], "port"),
    (["--memory", "lots"], "memory"),
    (["--cpus", "-1"], "cpus"),
    (["--restart", "sometimes"], "restart"),
    (["--publish", "not-a-port"], "publish"),
    (["--volume", "nocolon"], "volumes"),
    (["--health-path", "no-slash"], "health"),
    (["--branch", "-evil"], "branch"),
]


@pytest.mark.parametrize(("options", "field"), BAD_APPS, ids=[" ".join(o) for o, _ in BAD_APPS])
def test_app_create_refuses_bad_input_naming_the_field(
    shop: Run, repo: Path, options: list[str], field: str
) -> None:
    result = shop("app", "create", "shop/web", "--git", str(repo), *options, "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    error = _json(result)["error"]
    assert error["code"] == "invalid_input"
    assert (error["field"] or "").startswith(field), error
    assert shop("app", "list", "--json").stdout.strip() == "[]"


def test_app_create_refuses_a_git_path_outside_the_allowed_roots(shop: Run) -> None:
    result = shop("app", "create", "shop/web", "--git", "/etc")
    assert result.returncode == 2
    assert "git" in result.stderr.lower()


def test_app_create_refuses_a_name_without_its_project(shop: Run, repo: Path) -> None:
    result = shop("app", "create", "web", "--git", str(repo))
    assert result.returncode == 2
    assert "PROJECT/APP" in result.stderr


def test_app_create_show_and_set(shop: Run, repo: Path) -> None:
    created = shop(
        "app", "create", "shop/web", "--git", str(repo), "--port", "8080", "--memory", "64m",
        "--health-path", "/", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    app = _json(created)
    assert app["spec"]["port"] == 8080
    assert app["spec"]["memory"] == 64 * 1024**2
    assert app["spec"]["health"]["type"] == "http"
    shown = shop("app", "show", "shop/web")
    assert "64.0 MiB" in shown.stdout
    changed = shop("app", "set", "shop/web", "--health-retries", "3", "--clear", "memory", "--json")
    assert changed.returncode == 0, changed.stderr
    spec = _json(changed)["spec"]
    assert spec["memory"] is None
    assert spec["health"] == {**app["spec"]["health"], "retries": 3}


# ---------------------------------------------------------------------------------------------- env


@pytest.fixture
def web(shop: Run, repo: Path) -> Run:
    assert shop("app", "create", "shop/web", "--git", str(repo), "--port", "8080").returncode == 0
    return shop


def test_env_secrets_are_masked_until_revealed(web: Run) -> None:
    assert web("env", "set", "shop/web", "DEBUG=1", "GREETING=a=b").returncode == 0
    secret = web("env", "set", "shop/web", "API_KEY=s3cret-value", "--secret")
    assert secret.returncode == 0, secret.stderr
    assert "s3cret-value" not in secret.stdout
    listed = web("env", "list", "shop/web")
    assert "s3cret-value" not in listed.stdout
    assert "GREETING  a=b" in listed.stdout.replace("   ", "  ") or "a=b" in listed.stdout
    revealed = web("env", "list", "shop/web", "--reveal", "--json")
    values = {v["key"]: v["value"] for v in _json(revealed)}
    assert values == {"DEBUG": "1", "GREETING": "a=b", "API_KEY": "s3cret-value"}
    exported = web("env", "export", "shop/web")
    assert "DEBUG=1" in exported.stdout
    assert "s3cret-value" not in exported.stdout
    assert "s3cret-value" in web("env", "export", "shop/web", "--reveal").stdout


def test_env_import_from_stdin_and_unset(web: Run) -> None:
    imported = web("env", "import", "shop/web", "-", input="A=1\nB=two\n")
    assert imported.returncode == 0, imported.stderr
    assert web("env", "unset", "shop/web", "A").returncode == 0
    keys = [v["key"] for v in _json(web("env", "list", "shop/web", "--json"))]
    assert keys == ["B"]


def test_env_set_refuses_a_malformed_pair(web: Run) -> None:
    result = web("env", "set", "shop/web", "NOEQUALS", "--json")
    assert result.returncode == 2
    assert _json(result)["error"]["field"] == "key"


# ---------------------------------------------------------------------------------------------- domains


def test_domain_add_list_set_and_remove(web: Run) -> None:
    added = web(
        "domain", "add", "shop/web", "shop.example.com", "--hsts", "600", "--www", "redirect-to-apex",
        "--header", "X-Robots-Tag: noindex", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    domain = _json(added)
    assert (domain["name"], domain["www_redirect"], domain["hsts_max_age"]) == (
        "shop.example.com",
        "to-apex",
        600,
    )
    assert domain["headers"] == {"X-Robots-Tag": "noindex"}

    listed = web("domain", "list", "shop/web")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split() == ["DOMAIN", "HTTPS", "HSTS", "WWW", "PREFIX", "CERTIFICATE"]
    assert row.startswith("shop.example.com") and "redirect-to-apex" in row

    changed = web("domain", "set", "shop/web", "shop.example.com", "--path-prefix", "/api", "--json")
    assert changed.returncode == 0, changed.stderr
    assert _json(changed)["path_prefix"] == "/api"
    assert _json(changed)["headers"] == {"X-Robots-Tag": "noindex"}

    refused = web("domain", "remove", "shop/web", "shop.example.com")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert web("domain", "remove", "shop/web", "shop.example.com", "--yes").returncode == 0
    assert _json(web("domain", "list", "shop/web", "--json")) == []


def test_domain_errors_name_the_field_and_the_other_app(web: Run, repo: Path) -> None:
    bad = web("domain", "add", "shop/web", "not a domain", "--json")
    assert bad.returncode == 2
    assert _json(bad)["error"]["code"] == "invalid_input"
    assert web("app", "create", "shop/api", "--git", str(repo)).returncode == 0
    assert web("domain", "add", "shop/web", "taken.example.com").returncode == 0
    clash = web("domain", "add", "shop/api", "taken.example.com")
    assert clash.returncode == 2
    assert "shop/web" in clash.stderr


def test_cert_status_upload_and_proxy_status(web: Run, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    assert web("domain", "add", "shop/web", "tls.example.com").returncode == 0
    status = web("cert", "status", "shop/web", "--json")
    assert status.returncode == 0, status.stderr
    assert all(c["status"] == "pending" for c in _json(status))

    def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("tls.example.com")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_text(key_pem(key))
    (tmp_path / "other.pem").write_text(key_pem(other))

    upload = ["cert", "upload", "tls.example.com", "--cert", str(tmp_path / "cert.pem"), "--key"]
    mismatch = web(*upload, str(tmp_path / "other.pem"))
    assert mismatch.returncode == 2
    assert "does not match" in mismatch.stderr
    accepted = web(*upload, str(tmp_path / "key.pem"), "--json")
    assert accepted.returncode == 0, accepted.stderr
    assert "PRIVATE KEY" not in accepted.stdout
    assert _json(accepted)["source"] == "uploaded"
    table = web("cert", "status")
    assert "tls.example.com" in table.stdout and "uploaded" in table.stdout
    assert "tls.example.com" in web("domain", "list", "shop/web").stdout

    proxy = web("proxy", "status", "--json")
    assert proxy.returncode == 0, proxy.stderr
    assert _json(proxy)["backend"] == "traefik"


# ---------------------------------------------------------------------------------------------- admin


def test_settings_list_get_set(owner: Run) -> None:
    listed = _json(owner("settings", "list", "--json"))
    assert listed, "no settings"
    key = listed[0]["key"]
    got = owner("settings", "get", key, "--json")
    assert _json(got)["key"] == key
    refused = owner("settings", "set", key, "not a valid value at all", "--json")
    assert refused.returncode == 2
    assert _json(refused)["error"]["code"] == "invalid_input"
    unknown = owner("settings", "get", "no_such_setting")
    assert unknown.returncode == 2


def test_users_and_audit_show_what_happened(owner: Run) -> None:
    owner("project", "create", "shop")
    users = _json(owner("users", "--json"))
    assert [u["username"] for u in users] == ["admin"]
    audit = _json(owner("audit", "--action", "project.", "--json"))
    assert any(e["action"] == "project.create" and e["project"] == "shop" for e in audit)


def test_completion_scripts_are_printed(cli: Run) -> None:
    assert "complete -F _mist mist" in cli("completion", "bash").stdout
    assert cli("completion", "zsh").stdout.startswith("#compdef mist")


# ---------------------------------------------------------------------------------------------- deploy


@pytest.mark.docker
def test_deploy_wait_goes_live_and_the_app_answers(cli: Run, busybox: str, repo: Path) -> None:
    assert cli("setup", "--username", "admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0
    project = f"cli{uuid.uuid4().hex[:8]}"
    assert cli("project", "create", project).returncode == 0
    ref = f"{project}/web"
    created = cli("app", "create", ref, "--git", str(repo), "--port", "8080", "--health-path", "/")
    assert created.returncode == 0, created.stderr
    try:
        deployed = cli("deploy", ref, "--wait")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "is live" in deployed.stdout
        history = _json(cli("deployments", ref, "--json"))
        assert history[0]["state"] == "live"
        log = cli("deployment", "log", str(history[0]["id"]))
        assert log.returncode == 0 and log.stdout.strip()
        ps = _json(cli("ps", "--json"))
        assert any(c["project"] == project and c["state"] == "running" for c in ps)
    finally:
        cli("app", "delete", ref, "--yes")


@pytest.mark.docker
def test_deploy_wait_exits_1_when_the_build_fails(
    cli: Run, busybox: str, git_repo: Callable[..., Path]
) -> None:
    path = git_repo({"Dockerfile": "FROM mist-test/busybox:1\nRUN exit 3\n"})
    assert cli("setup", "--username", "admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0
    project = f"cli{uuid.uuid4().hex[:8]}"
    cli("project", "create", project)
    ref = f"{project}/broken"
    assert cli("app", "create", ref, "--git", str(path)).returncode == 0
    try:
        deployed = cli("deploy", ref, "--wait", "--json")
        assert deployed.returncode == 1
        doc = json.loads(deployed.stdout)
        assert doc["deployment"]["state"] == "failed"
    finally:
        cli("app", "delete", ref, "--yes")


# ---------------------------------------------------------------------------------------------- headless

# An interpreter where Textual and the TUI cannot be imported, as on a server with only the core installed.
WITHOUT_TEXTUAL = """
import importlib.abc, runpy, sys


class NoTerminalUI(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("textual", "mist_tui"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTerminalUI())
runpy.run_module("mist_core.cli", run_name="__main__", alter_sys=True)
"""


def test_python_m_mist_core_cli_runs_commands_without_textual(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MIST_CONFIG_DIR": str(tmp_path / "cfg"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    env.pop("MIST_TOKEN", None)
    env.pop("MIST_HOST", None)

    def headless(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT_TEXTUAL, "--embedded", "--data", str(tmp_path / "data"), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    setup = headless("setup", "--username", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert setup.returncode == 0, setup.stderr
    assert json.loads(headless("whoami", "--json").stdout)["username"] == "admin"
    bare = headless()
    assert bare.returncode == 2
    assert "give a command (mist --help lists them)" in bare.stderr
    assert "Traceback" not in bare.stderr
