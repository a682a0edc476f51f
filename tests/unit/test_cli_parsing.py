"""The command line's pure parts: the grammar of every command, value parsing (``--since``), table and size
formatting, exit codes; and what a few commands print, driven by an in-memory stand-in for the API."""

from __future__ import annotations

import argparse
import ast
import base64
import io
import json
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from mist_core.cli import run
from mist_core.cli.format import (
    format_pairs,
    format_table,
    human_age,
    human_duration,
    human_size,
    parse_assignment,
    parse_since,
    parse_time,
    split_app_ref,
)
from mist_core.cli.output import exit_code_for
from mist_core.cli.parser import ACTIONS, COMMANDS, UsageError, build_parser, first_command, parse_args
from mist_core.cli.trust import fingerprints_match
from mist_core.credentials import CredentialStore, access_token_expiry
from mist_core.errors import (
    Conflict,
    DaemonUnavailable,
    EngineUnavailable,
    InvalidInput,
    MistError,
    NotFound,
    PermissionDenied,
    SetupRequired,
    TokenExpired,
    TotpRequired,
    Unauthenticated,
)
from mist_core.models import (
    MASK,
    ApiToken,
    ApiTokenCreated,
    App,
    AppSource,
    AppSpec,
    AuditEntry,
    BranchInfo,
    Certificate,
    Deployment,
    DeploymentState,
    Domain,
    DomainSettings,
    EnvVar,
    GitProvider,
    GitProviderSpec,
    Invite,
    InviteCreated,
    KeyRotation,
    LogLine,
    ManifestStart,
    Page,
    Preview,
    PreviewSettings,
    ProxyStatus,
    RecoveryCodes,
    RepoInfo,
    Session,
    SessionInfo,
    SourceChanges,
    TotpSetup,
    User,
    WebhookDelivery,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

# ---------------------------------------------------------------------------------------------- grammar

PARSES = [
    (
        "setup --username admin --password-stdin",
        {"command": "setup", "username": "admin", "password_stdin": True},
    ),
    ("login -u bob", {"command": "login", "username": "bob", "password_stdin": False, "totp": None}),
    (
        "login -u bob --totp 123456 --fingerprint SHA256:ab:cd",
        {"totp": "123456", "fingerprint": "SHA256:ab:cd"},
    ),
    ("passwd --password-stdin", {"command": "passwd", "password_stdin": True, "revoke_tokens": False}),
    ("passwd --revoke-tokens", {"command": "passwd", "revoke_tokens": True}),
    ("2fa enable", {"command": "2fa", "subcommand": "enable"}),
    ("2fa disable --password-stdin", {"subcommand": "disable", "password_stdin": True}),
    (
        "user create bob --role admin --email bob@example.com --password-stdin",
        {"subcommand": "create", "username": "bob", "role": "admin", "email": "bob@example.com"},
    ),
    ("user create bob", {"role": "developer", "email": None, "password_stdin": False}),
    ("user list", {"command": "user", "subcommand": "list"}),
    ("user show bob", {"subcommand": "show", "username": "bob"}),
    ("user set-role bob viewer", {"subcommand": "set-role", "username": "bob", "role": "viewer"}),
    (
        "user delete bob --reassign-to alice -y",
        {"subcommand": "delete", "username": "bob", "reassign_to": "alice", "yes": True},
    ),
    (
        "invite create --username carol --role viewer --project shop --project-role admin --expires-hours 4",
        {
            "subcommand": "create",
            "username": "carol",
            "email": None,
            "role": "viewer",
            "project": "shop",
            "project_role": "admin",
            "expires_hours": 4,
        },
    ),
    ("invite create --email c@example.com", {"role": "developer", "expires_hours": 72, "project_role": None}),
    ("invite list", {"command": "invite", "subcommand": "list"}),
    ("invite revoke 3", {"subcommand": "revoke", "id": 3}),
    (
        "invite accept mist_i_abc --username carol --password-stdin",
        {"subcommand": "accept", "token": "mist_i_abc", "username": "carol", "password_stdin": True},
    ),
    ("member add shop bob developer", {"project": "shop", "username": "bob", "role": "developer"}),
    ("member remove shop bob", {"subcommand": "remove", "project": "shop", "username": "bob"}),
    ("member list shop", {"subcommand": "list", "project": "shop"}),
    ("session list", {"subcommand": "list", "user": None, "all": False}),
    ("session list --user bob", {"user": "bob", "all": False}),
    ("session list --all", {"user": None, "all": True}),
    ("session revoke 9", {"subcommand": "revoke", "id": 9}),
    (
        "token create ci --scope deploy --project shop --expires-days 30",
        {"name": "ci", "scope": "deploy", "project": "shop", "expires_days": 30, "no_expiry": False},
    ),
    ("token create ci --no-expiry", {"scope": "read", "project": None, "no_expiry": True}),
    ("token list --all", {"subcommand": "list", "all": True}),
    ("token revoke 4", {"subcommand": "revoke", "id": 4}),
    ("secrets rotate-key", {"command": "secrets", "subcommand": "rotate-key"}),
    ("logout", {"command": "logout"}),
    ("whoami", {"command": "whoami"}),
    (
        "project create shop --description Store -t a --tag b",
        {"subcommand": "create", "name": "shop", "description": "Store", "tags": ["a", "b"]},
    ),
    ("project list", {"command": "project", "subcommand": "list"}),
    ("project show shop", {"subcommand": "show", "name": "shop"}),
    ("project rename shop store", {"subcommand": "rename", "old": "shop", "new": "store"}),
    ("project tag shop --add x --remove y --add z", {"add": ["x", "z"], "remove": ["y"]}),
    ("project delete shop --yes", {"subcommand": "delete", "name": "shop", "yes": True}),
    (
        "app create shop/web --git /srv/web.git --branch dev --dockerfile d/Dockerfile --context d --port 8080 "
        "--publish 127.0.0.1:18080:8080 --publish 9090 --memory 512m --cpus 0.5 --restart always "
        "--health-path /up --health-interval 1.5 --health-retries 3 --health-start-period 4 "
        "--volume data:/data --start-command 'httpd -f' --build-command make --install-command 'pip install'",
        {
            "app": "shop/web",
            "git_url": "/srv/web.git",
            "branch": "dev",
            "dockerfile": "d/Dockerfile",
            "context": "d",
            "port": 8080,
            "publish": ["127.0.0.1:18080:8080", "9090"],
            "memory": "512m",
            "cpus": 0.5,
            "restart": "always",
            "health_path": "/up",
            "health_interval": 1.5,
            "health_retries": 3,
            "health_start_period": 4.0,
            "volumes": ["data:/data"],
            "start_command": "httpd -f",
            "build_command": "make",
            "install_command": "pip install",
        },
    ),
    ("app create shop/web --git u --health-tcp", {"health_tcp": True, "health_docker": None}),
    ("app create shop/web --git u --health-docker", {"health_docker": True, "health_tcp": None}),
    ("app list --project shop", {"subcommand": "list", "project": "shop"}),
    ("app show shop/web", {"subcommand": "show", "app": "shop/web"}),
    (
        "app set shop/web --port 9000 --clear memory --clear publish",
        {"port": 9000, "clear": ["memory", "publish"], "git_url": None},
    ),
    ("app set shop/web --health-none", {"health_none": True}),
    ("app delete shop/web -y", {"subcommand": "delete", "yes": True}),
    (
        "env set shop/web A=1 B=x=y --secret --build",
        {"assignments": ["A=1", "B=x=y"], "secret": True, "build": True},
    ),
    ("env list shop/web --reveal", {"subcommand": "list", "reveal": True}),
    ("env unset shop/web A B", {"keys": ["A", "B"]}),
    ("env import shop/web - --secret", {"file": "-", "secret": True, "build": False}),
    ("env export shop/web", {"subcommand": "export", "reveal": False}),
    (
        "db create shop/db --engine postgres --version 16 --memory 512m --public-port 15432",
        {
            "subcommand": "create",
            "database": "shop/db",
            "engine": "postgres",
            "db_version": "16",
            "memory": "512m",
            "public_port": 15432,
            "persistence": None,
        },
    ),
    ("db create shop/cache -e redis --persistence aof", {"engine": "redis", "persistence": "aof"}),
    ("db list --project shop", {"subcommand": "list", "project": "shop"}),
    ("db show shop/db", {"subcommand": "show", "database": "shop/db"}),
    ("db delete shop/db --keep-volume -y", {"subcommand": "delete", "keep_volume": True, "yes": True}),
    ("db start shop/db", {"subcommand": "start", "database": "shop/db"}),
    ("db stop shop/db", {"subcommand": "stop", "database": "shop/db"}),
    ("db restart shop/db", {"subcommand": "restart", "database": "shop/db"}),
    ("db logs shop/db -f --tail 5", {"subcommand": "logs", "follow": True, "tail": 5}),
    ("db url shop/db", {"subcommand": "url", "database": "shop/db"}),
    ("db link shop/db shop/web --as ORDERS", {"subcommand": "link", "app": "shop/web", "prefix": "ORDERS"}),
    ("db unlink shop/db shop/web", {"subcommand": "unlink", "app": "shop/web"}),
    # a database after it exists
    ("db shell shop/db", {"subcommand": "shell", "database": "shop/db", "argv": [], "tty": None}),
    (
        "db shell shop/db -T -- -c 'select 1'",
        {"subcommand": "shell", "argv": ["-c", "select 1"], "tty": False},
    ),
    ("db users shop/db", {"subcommand": "users", "database": "shop/db"}),
    (
        "db create-user shop/db reporter --password-stdin",
        {"subcommand": "create-user", "user": "reporter", "password_stdin": True},
    ),
    ("db drop-user shop/db reporter -y", {"subcommand": "drop-user", "user": "reporter", "yes": True}),
    (
        "db update shop/db --memory 1g --cpus 2 --restart always --public-port 15432",
        {"subcommand": "update", "memory": "1g", "cpus": 2.0, "restart": "always", "public_port": 15432},
    ),
    (
        "db update shop/db --no-public-port",
        {"subcommand": "update", "no_public_port": True, "public_port": None},
    ),
    ("db upgrade shop/db --version 15.6", {"subcommand": "upgrade", "db_version": "15.6"}),
    ("deploy shop/web --ref v1.2 --wait", {"command": "deploy", "ref": "v1.2", "wait": True}),
    ("rollback shop/web --to 7 --wait", {"command": "rollback", "to": 7, "wait": True}),
    ("rollback shop/web", {"command": "rollback", "to": None, "wait": False}),
    ("deploy shop/web", {"ref": None, "wait": False}),
    ("deployments shop/web --limit 5", {"command": "deployments", "limit": 5}),
    ("deployment show 12", {"subcommand": "show", "id": 12}),
    ("deployment log 12 -f", {"subcommand": "log", "id": 12, "follow": True}),
    ("cancel 7", {"command": "cancel", "id": 7}),
    ("ps -a", {"command": "ps", "all": True}),
    (
        "logs shop/web -f --tail 50 --since 10m",
        {"command": "logs", "follow": True, "tail": 50, "since": "10m"},
    ),
    ("start shop/web", {"command": "start", "app": "shop/web"}),
    ("stop shop/web", {"command": "stop", "app": "shop/web"}),
    ("restart shop/web", {"command": "restart", "app": "shop/web"}),
    ("exec shop/web", {"command": "exec", "app": "shop/web", "tty": None}),
    (
        "exec -T shop/web -- sh -c 'echo $HOME; ls -l'",
        {
            "command": "exec",
            "app": "shop/web",
            "tty": False,
            "argv": ["sh", "-c", "echo $HOME; ls -l"],
        },
    ),
    (
        "exec shop/web --no-tty -- sleep 5",
        {"command": "exec", "app": "shop/web", "tty": False, "argv": ["sleep", "5"]},
    ),
    ("exec shop/web -t ls -T", {"command": "exec", "app": "shop/web", "tty": True, "argv": ["ls", "-T"]}),
    ("describe shop/web --json", {"command": "describe", "app": "shop/web", "json": True}),
    ("metrics -f", {"command": "metrics", "follow": True}),
    (
        "domain add shop/web shop.example.com --no-https --hsts 600 --www redirect-to-apex --path-prefix /api "
        "--header 'X-A: 1' --header 'X-B: two' --no-security-headers",
        {
            "subcommand": "add",
            "app": "shop/web",
            "domain": "shop.example.com",
            "https": False,
            "hsts": 600,
            "www": "redirect-to-apex",
            "path_prefix": "/api",
            "headers": ["X-A: 1", "X-B: two"],
            "security_headers": False,
        },
    ),
    (
        "domain add shop/web shop.example.com",
        {"https": None, "hsts": None, "www": None, "headers": None, "security_headers": None},
    ),
    (
        "domain set shop/web www.example.com --https --www none --security-headers --remove-header X-A "
        "--clear-headers",
        {
            "subcommand": "set",
            "https": True,
            "www": "none",
            "security_headers": True,
            "remove_header": ["X-A"],
            "clear_headers": True,
        },
    ),
    (
        "domain remove shop/web shop.example.com -y",
        {"subcommand": "remove", "domain": "shop.example.com", "yes": True},
    ),
    ("domain list shop/web", {"command": "domain", "subcommand": "list", "app": "shop/web"}),
    ("cert status", {"command": "cert", "subcommand": "status", "app": None}),
    ("cert status shop/web", {"subcommand": "status", "app": "shop/web"}),
    ("cert renew shop.example.com", {"subcommand": "renew", "domain": "shop.example.com"}),
    (
        "cert upload shop.example.com --cert c.pem --key k.pem",
        {"subcommand": "upload", "domain": "shop.example.com", "cert": "c.pem", "key": "k.pem"},
    ),
    ("proxy status", {"command": "proxy", "subcommand": "status"}),
    ("proxy install", {"command": "proxy", "subcommand": "install"}),
    ("proxy reload", {"command": "proxy", "subcommand": "reload"}),
    (
        "backup list shop/data -n 5",
        {"command": "backup", "subcommand": "list", "subject": "shop/data", "limit": 5},
    ),
    ("backup show 7", {"subcommand": "show", "backup_id": 7}),
    ("backup run shop/data --to here", {"subject": "shop/data", "destination": "here", "wait": True}),
    ("backup verify 7 --no-wait", {"subcommand": "verify", "backup_id": 7, "wait": False}),
    ("backup restore 7 --into copy", {"subcommand": "restore", "target": "copy", "confirm": None}),
    ("backup restore 7 --confirm data", {"subcommand": "restore", "target": None, "confirm": "data"}),
    ("backup delete 7 --yes", {"subcommand": "delete", "backup_id": 7, "yes": True}),
    ("backup schedule list shop", {"subcommand": "schedule", "subaction": "list", "project": "shop"}),
    (
        "backup schedule add shop/data --to here --cron '0 3 * * *' --keep-last 7 --no-verify",
        {"subaction": "add", "cron": "0 3 * * *", "keep_last": 7, "keep_days": None, "verify": False},
    ),
    ("backup schedule remove shop 3", {"subaction": "remove", "project": "shop", "schedule_id": 3}),
    ("backup destination list", {"subcommand": "destination", "subaction": "list"}),
    (
        "backup destination add s3 --bucket b --endpoint http://127.0.0.1:9000 --encrypt",
        {"subaction": "add", "name": "s3", "bucket": "b", "path": None, "encrypt": True},
    ),
    ("backup destination remove here -y", {"subaction": "remove", "name": "here", "yes": True}),
    ("settings list", {"command": "settings", "subcommand": "list"}),
    ("settings get proxy", {"subcommand": "get", "key": "proxy"}),
    ("settings set proxy caddy", {"subcommand": "set", "key": "proxy", "value": "caddy"}),
    ("users", {"command": "users"}),
    (
        "audit --user bob --project shop --action app. --limit 10",
        {"user": "bob", "project": "shop", "action": "app.", "limit": 10, "jsonl": False},
    ),
    (
        "audit --since 2d --until 2024-05-01 --jsonl",
        {"since": "2d", "until": "2024-05-01", "jsonl": True, "limit": None},
    ),
    (
        "app create shop/web --provider tea --repo acme/web --port 8080",
        {"provider": "tea", "repo": "acme/web", "git_url": None, "port": 8080},
    ),
    ("app deploy-key shop/web", {"subcommand": "deploy-key", "app": "shop/web", "regenerate": False}),
    ("app deploy-key shop/web --regenerate", {"regenerate": True}),
    (
        "app source shop/web",
        {
            "subcommand": "source",
            "token_stdin": False,
            "no_token": False,
            "provider": None,
            "unlink": False,
            "deploy_on_push": None,
            "deploy_tags": None,
            "previews": None,
            "preview_env": None,
            "reveal": False,
        },
    ),
    (
        "app source shop/web --token-stdin --provider tea --repo acme/web --webhook-kind gitea "
        "--no-deploy-on-push --deploy-tags --previews --preview-limit 2 --preview-domain pr-{number}.x.dev "
        "--preview-env A=1 --preview-env B=2 --preview-env-unset C --forget-host-keys --new-webhook-secret --reveal",
        {
            "token_stdin": True,
            "provider": "tea",
            "repo": "acme/web",
            "webhook_kind": "gitea",
            "deploy_on_push": False,
            "deploy_tags": True,
            "previews": True,
            "preview_limit": 2,
            "preview_domain": "pr-{number}.x.dev",
            "preview_env": ["A=1", "B=2"],
            "preview_env_unset": ["C"],
            "forget_host_keys": True,
            "new_webhook_secret": True,
            "reveal": True,
        },
    ),
    (
        "app source shop/web --no-token --unlink --deploy-on-push --no-deploy-tags --no-previews",
        {"no_token": True, "unlink": True, "deploy_on_push": True, "deploy_tags": False, "previews": False},
    ),
    (
        "git provider add tea --kind gitea --url https://tea.example.com --api-url https://api.example.com "
        "--token-stdin",
        {
            "command": "git",
            "subcommand": "provider",
            "subaction": "add",
            "name": "tea",
            "kind": "gitea",
            "url": "https://tea.example.com",
            "api_url": "https://api.example.com",
            "token_stdin": True,
            "github_manifest": False,
        },
    ),
    (
        "git provider add gh --kind github --app-id 12 --private-key-file app.pem --webhook-secret-stdin "
        "--installation-id 7 --url https://github.example.com",
        {
            "kind": "github",
            "app_id": 12,
            "private_key_file": "app.pem",
            "webhook_secret_stdin": True,
            "installation_id": 7,
        },
    ),
    (
        "git provider add gh --github-manifest --organization acme",
        {"github_manifest": True, "kind": None, "organization": "acme", "url": None},
    ),
    ("git provider list", {"subcommand": "provider", "subaction": "list"}),
    ("git provider remove tea -y", {"subaction": "remove", "name": "tea", "yes": True}),
    ("git repos tea", {"subcommand": "repos", "provider": "tea"}),
    ("git branches tea acme/web", {"subcommand": "branches", "provider": "tea", "repo": "acme/web"}),
    ("webhooks shop/web -n 5", {"command": "webhooks", "app": "shop/web", "limit": 5}),
    ("webhooks shop/web", {"limit": 20}),
    ("previews shop/web", {"command": "previews", "app": "shop/web"}),
    ("completion zsh", {"command": "completion", "shell": "zsh"}),
    ("completion bash", {"command": "completion", "shell": "bash"}),
]


@pytest.mark.parametrize(("line", "expected"), PARSES, ids=[p[0][:40] for p in PARSES])
def test_every_command_parses_its_arguments(line: str, expected: dict[str, object]) -> None:
    import shlex

    args = parse_args(shlex.split(line))
    for key, value in expected.items():
        assert getattr(args, key) == value, key


def test_every_listed_command_and_subcommand_has_a_parse_case() -> None:
    covered = {tuple(line.split()[:2]) for line, _ in PARSES}
    for name, subs in COMMANDS.items():
        if name == "daemon":
            continue
        if subs:
            for sub in subs:
                assert (name, sub) in covered, f"{name} {sub}"
        else:
            assert any(c[0] == name for c in covered), name


def test_every_action_of_a_subcommand_has_a_parse_case() -> None:
    covered = {tuple(line.split()[:3]) for line, _ in PARSES}
    for (name, sub), actions in ACTIONS.items():
        for action in actions:
            assert (name, sub, action) in covered, f"{name} {sub} {action}"


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--host", "unix:///tmp/m.sock", "project", "list"],
        ["project", "list", "--json", "--host", "unix:///tmp/m.sock"],
        ["project", "--json", "list", "--host=unix:///tmp/m.sock"],
    ],
)
def test_connection_options_are_accepted_before_or_after_the_command(argv: list[str]) -> None:
    args = parse_args(argv)
    assert args.json is True
    assert args.host == "unix:///tmp/m.sock"
    assert args.embedded is False


def test_embedded_and_data_options_parse_anywhere() -> None:
    args = parse_args(["--embedded", "ps", "--data", "/tmp/d"])
    assert args.embedded is True
    assert args.data == "/tmp/d"


def test_connection_options_default_when_not_given() -> None:
    args = parse_args(["users"])
    assert (args.host, args.embedded, args.data, args.json) == (None, False, None, False)


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["app", "create", "shop/web", "--git", "u", "--port", "http"], "port"),
        (["app", "create", "shop/web"], "git_url"),
        (["app", "create", "shop/web", "--git", "u", "--health-tcp", "--health-docker"], "health_docker"),
        (["logs", "shop/web", "--tail", "many"], "tail"),
        (["deployment", "show", "twelve"], "id"),
        (["app", "set", "shop/web", "--clear", "git_url"], "clear"),
        (["completion", "fish"], "shell"),
        (["domain", "add", "shop/web", "a.example.com", "--www", "sideways"], "www"),
        (["domain", "add", "shop/web", "a.example.com", "--www", "none"], "www"),
        (["domain", "add", "shop/web", "a.example.com", "--hsts", "long"], "hsts"),
        (["domain", "add", "shop/web", "a.example.com", "--https"], None),
        (["domain", "set", "shop/web", "a.example.com", "--https", "--no-https"], "https"),
        (["cert", "upload", "a.example.com", "--cert", "c.pem"], "key"),
        (["user", "create", "bob", "--role", "god"], "role"),
        (["user", "set-role", "bob"], "role"),
        (["member", "add", "shop", "bob", "owner"], "role"),
        (["invite", "accept", "mist_i_abc"], "username"),
        (["invite", "create", "--project-role", "boss"], "project_role"),
        (["token", "create", "ci", "--scope", "root"], "scope"),
        (["token", "create", "ci", "--expires-days", "5", "--no-expiry"], "no_expiry"),
        (["session", "list", "--user", "bob", "--all"], "all"),
        (["session", "revoke", "latest"], "id"),
        (["login", "--password", "hunter2"], None),
        (["app", "create", "shop/web", "--provider", "tea"], "repo"),
        (["app", "create", "shop/web", "--repo", "acme/web"], "provider"),
        (["app", "create", "shop/web", "--git", "u", "--provider", "tea", "--repo", "acme/web"], "provider"),
        (["app", "source", "shop/web", "--provider", "tea"], "repo"),
        (["app", "source", "shop/web", "--repo", "acme/web"], "provider"),
        (["app", "source", "shop/web", "--provider", "tea", "--unlink"], "unlink"),
        (["app", "source", "shop/web", "--token-stdin", "--no-token"], "no_token"),
        (["app", "source", "shop/web", "--previews", "--no-previews"], "previews"),
        (["app", "source", "shop/web", "--webhook-kind", "bitbucket"], "webhook_kind"),
        (["app", "source", "shop/web", "--preview-limit", "many"], "preview_limit"),
        (["app", "source", "shop/web", "--token", "glpat-123"], None),
        (["git", "provider", "add", "tea"], None),
        (["git", "provider", "add", "tea", "--kind", "bitbucket"], "kind"),
        (["git", "provider", "add", "gh", "--kind", "github", "--github-manifest"], "github_manifest"),
        (["git", "provider", "add", "tea", "--kind", "gitea", "--token", "abc"], None),
        (["git", "provider"], "subaction"),
        (["git", "branches", "tea"], "repo"),
        (["webhooks", "shop/web", "--limit", "all"], "limit"),
    ],
)
def test_malformed_command_lines_name_the_field(argv: list[str], field: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_args(argv)
    assert caught.value.field == field


def test_a_group_without_its_subcommand_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="required"):
        parse_args(["project"])


@pytest.mark.parametrize(
    ("argv", "index"),
    [
        ([], None),
        (["--json"], None),
        (["--host", "unix:///x", "--embedded"], None),
        (["daemon", "--tcp", "x"], 0),
        (["--data", "/d", "--json", "daemon"], 3),
        (["--host=unix:///x", "ps"], 1),
        (["--help"], 0),
    ],
)
def test_first_command_finds_the_command_word_after_connection_options(
    argv: list[str], index: int | None
) -> None:
    assert first_command(argv) == index


# ---------------------------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1.5h", timedelta(minutes=90)),
        ("1w", timedelta(days=7)),
    ],
)
def test_since_accepts_durations_counted_back_from_now(text: str, ago: timedelta) -> None:
    assert parse_since(text, now=NOW) == NOW - ago


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-04-30T08:00:00Z", datetime(2024, 4, 30, 8, 0, tzinfo=UTC)),
        ("2024-04-30T10:00:00+02:00", datetime(2024, 4, 30, 8, 0, tzinfo=UTC)),
        ("2024-04-30T08:00:00", datetime(2024, 4, 30, 8, 0, tzinfo=UTC)),
        ("2024-04-30", datetime(2024, 4, 30, tzinfo=UTC)),
    ],
)
def test_since_accepts_iso_8601_times_and_reads_zoneless_ones_as_utc(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "-5m", "", "12x"])
def test_since_refuses_anything_else_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_since(text, now=NOW)
    assert caught.value.field == "since"
    assert "10m" in caught.value.message


def test_assignment_splits_at_the_first_equals_sign() -> None:
    assert parse_assignment("URL=postgres://u:p@h/db?a=b") == ("URL", "postgres://u:p@h/db?a=b")
    assert parse_assignment("EMPTY=") == ("EMPTY", "")


@pytest.mark.parametrize("text", ["NOVALUE", "1ABC=x", "A-B=x", "=x"])
def test_assignment_refuses_malformed_pairs(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_assignment(text)
    assert caught.value.field == "key"


@pytest.mark.parametrize("text", ["web", "shop/", "/web", "a/b/c"])
def test_app_names_must_be_project_slash_app(text: str) -> None:
    with pytest.raises(InvalidInput, match="PROJECT/APP"):
        split_app_ref(text)


# ---------------------------------------------------------------------------------------------- formatting


def test_table_columns_are_aligned_and_lines_have_no_trailing_spaces() -> None:
    text = format_table(["NAME", "APPS", "TAGS"], [("shop", 3, "prod"), ("a-much-longer-name", 12, None)])
    assert text.splitlines() == [
        "NAME                APPS  TAGS",
        "shop                3     prod",
        "a-much-longer-name  12    -",
    ]


def test_table_without_rows_prints_its_header() -> None:
    assert format_table(["ID", "STATE"], []) == "ID  STATE"


def test_table_cells_stay_on_one_line() -> None:
    text = format_table(["ID", "ERROR"], [(1, "build failed\nstep 3")])
    assert text.splitlines()[1] == "1   build failed step 3"


def test_table_refuses_rows_of_the_wrong_width() -> None:
    with pytest.raises(ValueError):
        format_table(["A", "B"], [("only one",)])


def test_pairs_align_their_values() -> None:
    assert format_pairs([("App", "shop/web"), ("Status", None), ("Port", 8080)]).splitlines() == [
        "App     shop/web",
        "Status  -",
        "Port    8080",
    ]


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (512 * 1024**2, "512.0 MiB"),
        (3 * 1024**4, "3.0 TiB"),
        (None, "-"),
    ],
)
def test_sizes_are_shown_in_binary_units(n: int | None, text: str) -> None:
    assert human_size(n) == text


@pytest.mark.parametrize(
    ("ago", "text"),
    [
        (timedelta(seconds=5), "5s"),
        (timedelta(minutes=5, seconds=59), "5m"),
        (timedelta(hours=3), "3h"),
        (timedelta(days=2, hours=23), "2d"),
        (timedelta(seconds=-30), "0s"),
    ],
)
def test_ages_are_shown_in_their_largest_whole_unit(ago: timedelta, text: str) -> None:
    assert human_age(NOW - ago, now=NOW) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(42.4, "42s"), (192, "3m12s"), (7500, "2h05m"), (3 * 86400 + 4 * 3600, "3d4h"), (None, "-")],
)
def test_durations_are_short(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


# ---------------------------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("x"), 2),
        (NotFound("x"), 2),
        (Conflict("x"), 2),
        (PermissionDenied("x"), 2),
        (Unauthenticated("x"), 2),
        (SetupRequired("x"), 2),
        (EngineUnavailable("x"), 1),
        (DaemonUnavailable("x"), 1),
        (MistError("x"), 1),
    ],
)
def test_user_errors_exit_2_and_others_exit_1(error: MistError, code: int) -> None:
    assert exit_code_for(error) == code


# ---------------------------------------------------------------------------------------------- commands
# A stand-in for the API with just the calls these tests make: the real core is exercised by the
# integration tests; here only what the command line does with the results is checked.


class _Api:
    def __init__(self, **groups: object) -> None:
        self.__dict__.update(groups)

    async def __aenter__(self) -> _Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _run(argv: list[str], api: object, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(argv, stdin=io.StringIO(stdin), stdout=out, stderr=err, api_factory=lambda args, token: api)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MIST_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("MIST_TOKEN", raising=False)


def _env_api() -> _Api:
    async def list_(app_ref: str, *, reveal: bool = False) -> list[EnvVar]:
        return [
            EnvVar(key="DEBUG", value="1", updated_at=NOW),
            EnvVar(key="API_KEY", value="s3cret" if reveal else None, secret=True, updated_at=NOW),
        ]

    return _Api(env=SimpleNamespace(list=list_))


def test_env_list_masks_secrets() -> None:
    code, out, _ = _run(["env", "list", "shop/web"], _env_api())
    assert code == 0
    assert "s3cret" not in out
    assert MASK in out
    assert out.splitlines()[0].split() == ["KEY", "VALUE", "SECRET", "BUILD", "UPDATED"]


def test_env_list_reveal_shows_secrets() -> None:
    code, out, _ = _run(["env", "list", "shop/web", "--reveal"], _env_api())
    assert code == 0
    assert "s3cret" in out


def test_env_list_json_is_one_document() -> None:
    code, out, _ = _run(["--json", "env", "list", "shop/web"], _env_api())
    assert code == 0
    doc = json.loads(out)
    assert [v["key"] for v in doc] == ["DEBUG", "API_KEY"]
    assert doc[1]["value"] is None


def test_env_set_checks_every_pair_before_setting_any() -> None:
    calls: list[str] = []

    async def set_(
        app_ref: str, key: str, value: str, *, secret: bool = False, build: bool = False
    ) -> EnvVar:
        calls.append(key)
        return EnvVar(key=key, value=value, updated_at=NOW)

    code, _, err = _run(["env", "set", "shop/web", "A=1", "oops"], _Api(env=SimpleNamespace(set=set_)))
    assert code == 2
    assert calls == []
    assert "KEY=VALUE" in err


def test_a_mist_error_prints_one_line_without_traceback() -> None:
    async def get(name: str) -> None:
        raise NotFound("no project named shop: see mist project list")

    code, out, err = _run(["project", "show", "shop"], _Api(projects=SimpleNamespace(get=get)))
    assert code == 2
    assert out == ""
    assert err == "mist: no project named shop: see mist project list\n"


def test_a_mist_error_in_json_mode_is_a_json_document_on_stdout() -> None:
    async def get(name: str) -> None:
        raise InvalidInput("name 'Shop!' may only hold a-z, 0-9 and -", field="name")

    code, out, _ = _run(["project", "show", "Shop!", "--json"], _Api(projects=SimpleNamespace(get=get)))
    assert code == 2
    assert json.loads(out) == {
        "error": {
            "code": "invalid_input",
            "message": "name 'Shop!' may only hold a-z, 0-9 and -",
            "field": "name",
        }
    }


def test_an_engine_outage_exits_1() -> None:
    async def list_(*, all: bool = False) -> list[object]:
        raise EngineUnavailable("the Docker Engine does not answer: is dockerd running?")

    code, _, err = _run(["ps"], _Api(containers=SimpleNamespace(list=list_)))
    assert code == 1
    assert "Docker Engine" in err


def test_unauthenticated_without_a_stored_token_says_to_log_in() -> None:
    async def whoami() -> None:
        raise Unauthenticated("a token is required")

    code, _, err = _run(["whoami"], _Api(auth=SimpleNamespace(whoami=whoami)))
    assert code == 2
    assert "mist login" in err


def test_delete_without_yes_is_refused_when_nobody_can_confirm() -> None:
    deleted: list[str] = []

    async def delete(name: str) -> None:
        deleted.append(name)

    code, _, err = _run(["project", "delete", "shop"], _Api(projects=SimpleNamespace(delete=delete)))
    assert code == 2
    assert "--yes" in err
    assert deleted == []


def _deploy_api(final_state: DeploymentState, error: str | None = None) -> _Api:
    def deployment(state: DeploymentState) -> Deployment:
        return Deployment(
            id=7, app_id=1, project="shop", app="web", state=state, ref="main", created_at=NOW, error=error
        )

    async def deploy(app_ref: str, *, ref: str | None = None) -> Deployment:
        return deployment(DeploymentState.queued)

    async def log(deployment_id: int, *, follow: bool = False, after: int = 0):
        for seq, text in enumerate(["cloning", "building", "done"], start=1):
            if seq > after:
                yield LogLine(seq=seq, ts=NOW, source="pipeline", text=text)

    async def get(deployment_id: int) -> Deployment:
        return deployment(final_state)

    return _Api(apps=SimpleNamespace(deploy=deploy), deployments=SimpleNamespace(log=log, get=get))


def test_deploy_wait_prints_the_log_and_exits_0_when_live() -> None:
    code, out, _ = _run(["deploy", "shop/web", "--wait"], _deploy_api(DeploymentState.live))
    assert code == 0
    assert "pipeline: building" in out
    assert "is live" in out


def test_deploy_wait_exits_1_with_the_error_when_the_deployment_fails() -> None:
    code, _, err = _run(
        ["deploy", "shop/web", "--wait"], _deploy_api(DeploymentState.failed, "health check failed on /up")
    )
    assert code == 1
    assert "health check failed on /up" in err


def test_deploy_wait_json_reports_the_failed_deployment() -> None:
    code, out, _ = _run(
        ["deploy", "shop/web", "--wait", "--json"], _deploy_api(DeploymentState.failed, "boom")
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["error"]["code"] == "deployment_failed"
    assert doc["deployment"]["state"] == "failed"


def test_completion_prints_the_shipped_scripts() -> None:
    code, out, _ = _run(["completion", "bash"], _Api())
    assert code == 0 and "complete -F" in out
    code, out, _ = _run(["completion", "zsh"], _Api())
    assert code == 0 and out.startswith("#compdef mist")


# ---------------------------------------------------------------------------------------------- domains


def _domain(name: str, **settings: object) -> Domain:
    return Domain(id=1, app_id=1, project="shop", app="web", name=name, created_at=NOW, **settings)  # type: ignore[arg-type]


def _domains_api(domains: list[Domain], certificates: list[Certificate], calls: list[tuple]) -> _Api:
    async def list_(app_ref: str) -> list[Domain]:
        return domains

    async def add(app_ref: str, name: str, settings: DomainSettings | None = None) -> Domain:
        calls.append(("add", app_ref, name, settings))
        return _domain(name, **(settings or DomainSettings()).model_dump())

    async def update(app_ref: str, name: str, settings: DomainSettings) -> Domain:
        calls.append(("update", app_ref, name, settings))
        return _domain(name, **settings.model_dump())

    async def certs(app_ref: str | None = None) -> list[Certificate]:
        return certificates

    return _Api(
        domains=SimpleNamespace(list=list_, add=add, update=update),
        certificates=SimpleNamespace(list=certs),
    )


def test_domain_add_maps_the_options_to_domain_settings() -> None:
    calls: list[tuple] = []
    argv = [
        "domain", "add", "shop/web", "shop.example.com", "--hsts", "600", "--www", "redirect-to-www",
        "--path-prefix", "/api", "--header", "X-Robots-Tag: noindex, nofollow", "--no-security-headers",
    ]  # fmt: skip
    code, out, _ = _run(argv, _domains_api([], [], calls))
    assert code == 0
    settings = calls[0][3]
    assert settings == DomainSettings(
        https=True,
        hsts_max_age=600,
        www_redirect="to-www",
        path_prefix="/api",
        headers={"X-Robots-Tag": "noindex, nofollow"},
        security_headers=False,
    )
    assert "Added shop.example.com to shop/web" in out


def test_domain_add_refuses_a_header_without_a_colon_before_calling_the_api() -> None:
    calls: list[tuple] = []
    argv = ["domain", "add", "shop/web", "shop.example.com", "--header", "X-Robots-Tag", "--json"]
    code, out, _ = _run(argv, _domains_api([], [], calls))
    assert code == 2
    assert json.loads(out)["error"]["field"] == "headers"
    assert calls == []


def test_domain_set_changes_only_the_options_given() -> None:
    calls: list[tuple] = []
    current = _domain(
        "shop.example.com", hsts_max_age=600, headers={"X-A": "1", "X-B": "2"}, path_prefix="/api"
    )
    argv = [
        "domain",
        "set",
        "shop/web",
        "shop.example.com",
        "--no-https",
        "--remove-header",
        "x-a",
        "--header",
        "X-C: 3",
    ]
    code, _, _ = _run(argv, _domains_api([current], [], calls))
    assert code == 0
    _, _, name, settings = calls[0]
    assert name == "shop.example.com"
    assert settings == DomainSettings(
        https=False, hsts_max_age=600, path_prefix="/api", headers={"X-B": "2", "X-C": "3"}
    )


def test_domain_set_without_options_or_of_an_unknown_domain_is_refused() -> None:
    calls: list[tuple] = []
    api = _domains_api([_domain("shop.example.com")], [], calls)
    code, _, err = _run(["domain", "set", "shop/web", "shop.example.com"], api)
    assert code == 2 and "nothing to change" in err
    code, _, err = _run(["domain", "set", "shop/web", "other.example.com", "--hsts", "5"], api)
    assert code == 2 and "mist domain list shop/web" in err
    assert calls == []


def test_domain_list_shows_each_domain_with_its_certificate() -> None:
    domains = [
        _domain("a.example.com", hsts_max_age=600, www_redirect="to-apex"),
        _domain("b.example.com", path_prefix="/api"),
        _domain("c.example.com", https=False),
    ]
    certificates = [
        Certificate(
            id=1, domain="a.example.com", status="issued", source="acme", cert_pem="x",
            not_after=NOW + timedelta(days=60), updated_at=NOW,
        ),
        Certificate(
            id=2, domain="b.example.com", status="failed", source="acme", last_error="DNS problem: NXDOMAIN",
            next_attempt_at=NOW + timedelta(minutes=10), updated_at=NOW,
        ),
    ]  # fmt: skip
    code, out, _ = _run(["domain", "list", "shop/web"], _domains_api(domains, certificates, []))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["DOMAIN", "HTTPS", "HSTS", "WWW", "PREFIX", "CERTIFICATE"]
    assert "redirect-to-apex" in lines[1] and "issued, expires 2024-06-30" in lines[1]
    assert "failed: DNS problem: NXDOMAIN; next retry 2024-05-01 12:10:00" in lines[2]
    assert "plain HTTP" in lines[3]

    code, out, _ = _run(["domain", "list", "shop/web", "--json"], _domains_api(domains, certificates, []))
    doc = json.loads(out)
    assert [d["certificate"]["status"] if d["certificate"] else None for d in doc] == [
        "issued",
        "failed",
        None,
    ]


def test_cert_upload_reads_both_files_and_never_prints_the_key(tmp_path) -> None:
    (tmp_path / "c.pem").write_text("CERT PEM")
    (tmp_path / "k.pem").write_text("KEY PEM SECRET")
    seen: list[tuple[str, str, str]] = []

    async def upload(domain: str, cert_pem: str, key_pem: str) -> Certificate:
        seen.append((domain, cert_pem, key_pem))
        return Certificate(
            id=1, domain=domain, status="issued", source="uploaded", cert_pem=cert_pem, serial="ab",
            not_after=NOW, updated_at=NOW,
        )  # fmt: skip

    api = _Api(certificates=SimpleNamespace(upload=upload))
    argv = [
        "cert",
        "upload",
        "a.example.com",
        "--cert",
        str(tmp_path / "c.pem"),
        "--key",
        str(tmp_path / "k.pem"),
    ]
    code, out, err = _run(argv, api)
    assert code == 0
    assert seen == [("a.example.com", "CERT PEM", "KEY PEM SECRET")]
    assert "Uploaded the certificate for a.example.com" in out
    code, out, err = _run([*argv, "--json"], api)
    assert "KEY PEM SECRET" not in out + err
    assert json.loads(out)["source"] == "uploaded"


def test_cert_upload_of_a_missing_file_names_the_option(tmp_path) -> None:
    argv = ["cert", "upload", "a.example.com", "--cert", str(tmp_path / "nope.pem"), "--key", "k", "--json"]
    code, out, _ = _run(argv, _Api())
    assert code == 2
    assert json.loads(out)["error"]["field"] == "cert"


def test_proxy_status_prints_backend_and_addresses() -> None:
    async def status() -> ProxyStatus:
        return ProxyStatus(
            backend="caddy", reachable=False, detail="Caddy does not answer at http://127.0.0.1:2019",
            routes=2, domains=3, http_address="127.0.0.1:8080", https_address="127.0.0.1:8443",
        )  # fmt: skip

    api = _Api(proxy=SimpleNamespace(status=status, reload=status))
    code, out, _ = _run(["proxy", "status"], api)
    assert code == 0
    assert "caddy" in out and "Caddy does not answer" in out and "127.0.0.1:8443" in out
    code, _, _ = _run(["proxy", "reload"], api)
    assert code == 1


# ---------------------------------------------------------------------------------------------- accounts


def _user(name: str = "bob", **fields: object) -> User:
    return User(id=2, username=name, created_at=NOW, **{"role": "developer", **fields})  # type: ignore[arg-type]


def _session(token: str = "access-1", refresh: str | None = "mist_r_1", **fields: object) -> Session:
    return Session(
        token=token, refresh_token=refresh, user=_user(), expires_at=NOW + timedelta(minutes=15), **fields
    )  # type: ignore[arg-type]


def _stored(tmp_path) -> dict:
    return json.loads((tmp_path / "cfg" / "credentials.json").read_text())


def _login_api(calls: list[dict[str, object]], *, needs_totp: bool = False) -> _Api:
    async def login(username: str, password: str, *, totp: str | None = None) -> Session:
        calls.append({"username": username, "password": password, "totp": totp})
        if needs_totp and totp is None:
            raise TotpRequired("bob has two-factor authentication: give the code")
        return _session()

    return _Api(auth=SimpleNamespace(login=login))


def test_login_saves_the_access_and_the_refresh_token_and_keeps_other_keys(tmp_path) -> None:
    path = tmp_path / "cfg" / "credentials.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"embedded:/x": {"certificate": "PEM", "theme": "dark", "token": "old"}}))
    calls: list[dict[str, object]] = []
    argv = ["login", "-u", "bob", "--password-stdin", "--embedded", "--data", "/x"]
    code, out, _ = _run(argv, _login_api(calls), stdin="hunter2 hunter2\n")
    assert code == 0
    assert "Logged in as bob" in out
    assert calls == [{"username": "bob", "password": "hunter2 hunter2", "totp": None}]
    assert _stored(tmp_path)["embedded:/x"] == {
        "certificate": "PEM",
        "theme": "dark",
        "token": "access-1",
        "refresh_token": "mist_r_1",
        "username": "bob",
    }


def test_login_with_totp_passes_the_code() -> None:
    calls: list[dict[str, object]] = []
    argv = ["login", "-u", "bob", "--password-stdin", "--totp", "123456"]
    code, _, _ = _run(argv, _login_api(calls, needs_totp=True), stdin="pw\n")
    assert code == 0
    assert [c["totp"] for c in calls] == ["123456"]


def test_login_without_a_terminal_names_the_totp_option_when_the_account_has_2fa() -> None:
    calls: list[dict[str, object]] = []
    argv = ["login", "-u", "bob", "--password-stdin", "--json"]
    code, out, _ = _run(argv, _login_api(calls, needs_totp=True), stdin="pw\n")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["field"] == "totp" and "--totp" in error["message"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_login_at_a_terminal_asks_for_the_totp_code(monkeypatch) -> None:
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "pw")
    calls: list[dict[str, object]] = []
    out, err = io.StringIO(), io.StringIO()
    code = run(
        ["login", "-u", "bob"],
        stdin=_Tty("654321\n"),
        stdout=out,
        stderr=err,
        api_factory=lambda args, conn: _login_api(calls, needs_totp=True),
    )
    assert code == 0, err.getvalue()
    assert [c["totp"] for c in calls] == [None, "654321"]
    assert "Two-factor code" in err.getvalue()


def test_a_renewed_session_is_saved_over_the_old_pair(tmp_path) -> None:
    path = tmp_path / "cfg" / "credentials.json"
    path.parent.mkdir(parents=True)
    key = "unix:///tmp/m.sock"
    path.write_text(json.dumps({key: {"token": "old", "refresh_token": "mist_r_old", "username": "bob"}}))
    seen = []

    def factory(args, conn):
        seen.append((conn.token, conn.refresh_token))

        async def whoami() -> User:
            conn.on_session(_session("access-2", "mist_r_2"))  # what the API does after renewing
            return _user()

        return _Api(auth=SimpleNamespace(whoami=whoami))

    out, err = io.StringIO(), io.StringIO()
    code = run(["whoami", "--host", key], stdin=io.StringIO(), stdout=out, stderr=err, api_factory=factory)
    assert code == 0, err.getvalue()
    assert seen == [("old", "mist_r_old")]
    assert _stored(tmp_path)[key] == {"token": "access-2", "refresh_token": "mist_r_2", "username": "bob"}


def test_mist_token_is_used_without_the_stored_refresh_token(tmp_path, monkeypatch) -> None:
    path = tmp_path / "cfg" / "credentials.json"
    path.parent.mkdir(parents=True)
    key = "unix:///tmp/m.sock"
    path.write_text(json.dumps({key: {"token": "old", "refresh_token": "mist_r_old", "username": "bob"}}))
    monkeypatch.setenv("MIST_TOKEN", "mist_t_ci")
    seen = []

    def factory(args, conn):
        seen.append((conn.token, conn.refresh_token, conn.on_session))
        return _Api(auth=SimpleNamespace(whoami=lambda: _async(_user())))

    run(
        ["whoami", "--host", key],
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
        api_factory=factory,
    )
    assert seen == [("mist_t_ci", None, None)]


async def _async(value):
    return value


def test_an_ended_session_says_to_log_in_again(tmp_path) -> None:
    path = tmp_path / "cfg" / "credentials.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"unix:///tmp/m.sock": {"token": "old", "username": "bob"}}))

    async def whoami() -> None:
        raise TokenExpired("the access token has expired")

    code, _, err = _run(["whoami", "--host", "unix:///tmp/m.sock"], _Api(auth=SimpleNamespace(whoami=whoami)))
    assert code == 2
    assert "mist login` again" in err


def test_logout_forgets_the_session_but_keeps_the_pinned_certificate(tmp_path) -> None:
    store = CredentialStore(tmp_path / "c.json")
    store.save("https://h:1", "a", "bob", refresh_token="r", certificate="PEM")
    assert store.forget("https://h:1") is True
    assert store.entry("https://h:1") == {"certificate": "PEM"}
    assert store.forget("https://h:1") is False
    store.save("https://h:1", "b", "bob")
    assert store.entry("https://h:1") == {"certificate": "PEM", "token": "b", "username": "bob"}
    store.update_tokens("https://h:1", "c", "r2")
    assert (store.token("https://h:1"), store.refresh_token("https://h:1")) == ("c", "r2")


@pytest.mark.parametrize(
    ("given", "actual", "same"),
    [
        ("SHA256:AB:CD:EF", "SHA256:ab:cd:ef", True),
        ("abcdef", "SHA256:ab:cd:ef", True),
        ("sha256:ab cd ef", "SHA256:ab:cd:ef", True),
        ("SHA256:ab:cd:ee", "SHA256:ab:cd:ef", False),
        ("", "SHA256:ab:cd:ef", False),
        ("SHA256:q0Fz+x", "SHA256:Q0Fz+x", False),
    ],
)
def test_fingerprints_compare_whatever_their_separators_and_case(given: str, actual: str, same: bool) -> None:
    assert fingerprints_match(given, actual) is same


def test_user_create_reads_the_password_from_stdin_and_never_from_argv() -> None:
    seen = []

    async def create(
        username: str, password: str, *, role: str = "developer", email: str | None = None
    ) -> User:
        seen.append((username, password, role, email))
        return _user(username, role=role, email=email)

    api = _Api(users=SimpleNamespace(create=create))
    code, out, _ = _run(
        ["user", "create", "carol", "--role", "viewer", "--password-stdin"], api, stdin="pw\n"
    )
    assert code == 0
    assert seen == [("carol", "pw", "viewer", None)]
    assert out == "Created user carol (viewer)\n"
    code, _, err = _run(["user", "create", "carol"], api)
    assert code == 2 and "--password-stdin" in err


def test_user_list_is_a_table_and_users_is_the_same() -> None:
    async def list_() -> list[User]:
        return [_user("admin", role="owner", totp_enabled=True), _user("bob", email="bob@example.com")]

    api = _Api(users=SimpleNamespace(list=list_))
    _, out, _ = _run(["user", "list"], api)
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "USERNAME", "ROLE", "EMAIL", "2FA", "LAST", "LOGIN", "AGE"]
    assert lines[1].split()[1:5] == ["admin", "owner", "-", "on"]
    assert "bob@example.com" in lines[2]
    assert _run(["users"], api)[1] == out


def test_user_delete_needs_confirmation() -> None:
    deleted = []

    async def delete(username: str, *, reassign_to: str | None = None) -> None:
        deleted.append((username, reassign_to))

    api = _Api(users=SimpleNamespace(delete=delete))
    code, _, err = _run(["user", "delete", "bob"], api)
    assert code == 2 and "--yes" in err and deleted == []
    code, out, _ = _run(["user", "delete", "bob", "--reassign-to", "alice", "--yes"], api)
    assert code == 0 and deleted == [("bob", "alice")]
    assert "now belong to alice" in out


def _token(**fields: object) -> ApiToken:
    return ApiToken(
        **{"id": 4, "name": "ci", "username": "bob", "scope": "deploy", "created_at": NOW, **fields}  # type: ignore[arg-type]
    )


def test_token_create_prints_the_secret_alone_on_stdout_with_a_warning_on_stderr() -> None:
    seen = []

    async def create(
        name: str, *, scope: str = "read", project: str | None = None, expires_days: int | None = 90
    ):
        seen.append((name, scope, project, expires_days))
        return ApiTokenCreated(token="mist_t_secret", info=_token(scope=scope, project=project))

    api = _Api(tokens=SimpleNamespace(create=create))
    code, out, err = _run(
        ["token", "create", "ci", "--scope", "deploy", "--project", "shop", "--no-expiry"], api
    )
    assert code == 0
    assert out == "mist_t_secret\n"
    assert "cannot show it again" in err and "mist_t_secret" not in err
    assert seen == [("ci", "deploy", "shop", None)]
    code, out, _ = _run(["token", "create", "ci", "--json"], api)
    assert json.loads(out)["token"] == "mist_t_secret"
    assert seen[-1] == ("ci", "read", None, 90)
    code, _, err = _run(["token", "create", "ci", "--expires-days", "0"], api)
    assert code == 2 and "--expires-days" in err


def test_token_list_shows_each_tokens_state() -> None:
    async def list_(*, all: bool = False) -> list[ApiToken]:
        return [
            _token(),
            _token(id=5, name="old", expires_at=NOW - timedelta(days=1)),
            _token(id=6, name="gone", revoked_at=NOW),
        ]

    _, out, _ = _run(["token", "list"], _Api(tokens=SimpleNamespace(list=list_)))
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["ID", "NAME", "USER", "SCOPE", "PROJECT"]
    assert lines[1].split()[-1] == "active" and "never" in lines[1]
    assert lines[2].split()[-1] == "expired"
    assert lines[3].split()[-1] == "revoked"


def test_invite_create_needs_someone_to_invite_and_prints_the_token_once() -> None:
    seen = []

    async def create(**kw: object) -> InviteCreated:
        seen.append(kw)
        invite = Invite(
            id=3, username=kw["username"], role=kw["role"], project=kw["project"],  # type: ignore[arg-type]
            project_role=kw["project_role"], created_at=NOW, expires_at=NOW + timedelta(hours=72),  # type: ignore[arg-type]
        )  # fmt: skip
        return InviteCreated(token="mist_i_tok", invite=invite)

    api = _Api(invites=SimpleNamespace(create=create))
    code, _, err = _run(["invite", "create"], api)
    assert code == 2 and "--username" in err and seen == []
    code, out, err = _run(["invite", "create", "-u", "carol", "--project", "shop"], api)
    assert code == 0
    assert out == "mist_i_tok\n"
    assert "invite accept TOKEN --username carol" in err
    assert seen[0]["project_role"] == "developer" and seen[0]["role"] == "developer"


def test_session_list_all_asks_for_everyones_and_marks_the_current_one() -> None:
    seen = []

    async def list_(*, username: str | None = None) -> list[SessionInfo]:
        seen.append(username)
        return [
            SessionInfo(id=1, username="admin", created_at=NOW, expires_at=NOW, source="unix", current=True),
            SessionInfo(id=2, username="bob", created_at=NOW, expires_at=NOW, source="10.0.0.2"),
        ]

    api = _Api(sessions=SimpleNamespace(list=list_))
    _, out, err = _run(["session", "list", "--all"], api)
    _run(["session", "list", "--user", "bob"], api)
    _run(["session", "list"], api)
    assert seen == ["*", "bob", None]
    assert out.splitlines()[1].startswith("1*") and "* this session" in err


def test_2fa_enable_shows_the_secret_reads_the_code_and_prints_recovery_codes() -> None:
    codes = []

    async def totp_setup() -> TotpSetup:
        return TotpSetup(secret="JBSWY3DPEHPK3PXP", uri="otpauth://totp/Mist:bob?secret=JBSWY3DPEHPK3PXP")

    async def totp_enable(code: str) -> RecoveryCodes:
        codes.append(code)
        return RecoveryCodes(codes=["aaaa-bbbb", "cccc-dddd"])

    api = _Api(auth=SimpleNamespace(totp_setup=totp_setup, totp_enable=totp_enable))
    code, out, err = _run(["2fa", "enable"], api, stdin="123456\n")
    assert code == 0
    assert codes == ["123456"]
    assert "JBSWY3DPEHPK3PXP" in out and "otpauth://" in out
    assert "aaaa-bbbb" in out and "not shown again" in err
    code, out, err = _run(["2fa", "enable", "--json"], api, stdin="123456\n")
    assert json.loads(out) == {
        "secret": "JBSWY3DPEHPK3PXP",
        "uri": "otpauth://totp/Mist:bob?secret=JBSWY3DPEHPK3PXP",
        "recovery_codes": ["aaaa-bbbb", "cccc-dddd"],
    }
    assert "JBSWY3DPEHPK3PXP" in err  # shown to the person before the code is asked for
    code, _, err = _run(["2fa", "enable"], api, stdin="")
    assert code == 2 and codes == ["123456", "123456"]


def test_passwd_reads_the_current_then_the_new_password() -> None:
    seen = []

    async def change_password(current: str, new: str, *, revoke_tokens: bool = False) -> None:
        seen.append((current, new, revoke_tokens))

    api = _Api(auth=SimpleNamespace(change_password=change_password))
    code, out, _ = _run(["passwd", "--password-stdin"], api, stdin="old one\nnew one\n")
    assert code == 0 and seen == [("old one", "new one", False)]
    assert "other sessions" in out and "API tokens still work" in out
    code, _, err = _run(["passwd", "--password-stdin"], api, stdin="only one\n")
    assert code == 2 and len(seen) == 1
    code, out, _ = _run(["passwd", "--password-stdin", "--revoke-tokens"], api, stdin="old one\nnew one\n")
    assert code == 0 and seen[-1] == ("old one", "new one", True)
    assert "API tokens revoked" in out


def _entry(i: int) -> AuditEntry:
    return AuditEntry(id=i, ts=NOW - timedelta(minutes=i), actor="admin", action="app.update", project="shop")


def test_audit_jsonl_pages_through_everything_once() -> None:
    entries = [_entry(i) for i in range(1, 1201)]
    calls = []

    async def list_(**kw: object) -> Page[AuditEntry]:
        calls.append(kw)
        offset, limit = int(kw["offset"]), int(kw["limit"])  # type: ignore[call-overload]
        items = entries[offset : offset + limit]
        nxt = offset + len(items) if offset + limit < len(entries) else None
        if len(calls) == 1:  # an entry is written meanwhile: the others move down by one
            entries.insert(0, _entry(9999))
        return Page(items=items, total=len(entries), next_offset=nxt)

    api = _Api(audit=SimpleNamespace(list=list_))
    code, out, _ = _run(["audit", "--jsonl", "--action", "app.", "--since", "2024-04-01"], api)
    assert code == 0
    ids = [json.loads(line)["id"] for line in out.splitlines()]
    assert ids == list(range(1, 1201))
    assert calls[0]["action"] == "app." and calls[0]["since"] == datetime(2024, 4, 1, tzinfo=UTC)
    assert calls[0]["until"] is None
    code, out, _ = _run(["audit", "--jsonl", "--limit", "3"], api)
    assert [json.loads(line)["id"] for line in out.splitlines()] == [9999, 1, 2]


def test_audit_table_and_time_bounds() -> None:
    async def list_(**kw: object) -> Page[AuditEntry]:
        return Page(items=[_entry(1)], total=2, next_offset=1)

    api = _Api(audit=SimpleNamespace(list=list_))
    code, out, err = _run(["audit"], api)
    assert code == 0
    assert out.splitlines()[0].split() == ["ID", "TIME", "ACTOR", "AS", "FROM", "ACTION", "TARGET", "DETAIL"]
    assert "--jsonl" in err
    code, out, _ = _run(["audit", "--since", "1h", "--until", "2h", "--json"], api)
    assert code == 2 and json.loads(out)["error"]["field"] == "since"
    code, out, _ = _run(["audit", "--until", "soon", "--json"], api)
    assert code == 2 and json.loads(out)["error"]["field"] == "until"


def test_until_accepts_the_same_forms_as_since() -> None:
    assert parse_time("2h", "until", now=NOW) == NOW - timedelta(hours=2)
    with pytest.raises(InvalidInput, match="--until"):
        parse_time("tomorrow", "until", now=NOW)


def test_secrets_rotate_key_says_how_many_were_resealed() -> None:
    async def rotate_key() -> KeyRotation:
        return KeyRotation(key_id="k2", resealed=7)

    code, out, _ = _run(["secrets", "rotate-key"], _Api(secrets=SimpleNamespace(rotate_key=rotate_key)))
    assert code == 0 and "7" in out and "k2" in out


def _jwt(exp: datetime) -> str:
    def part(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'sub': '1', 'exp': int(exp.timestamp())})}.c2ln"


def test_access_token_expiry_is_read_from_a_jwt_and_none_for_anything_else() -> None:
    assert access_token_expiry(_jwt(NOW)) == NOW
    assert access_token_expiry("mist_t_abc") is None
    assert access_token_expiry("a.!!!.c") is None


@pytest.mark.parametrize(("expired", "calls"), [(True, ["anonymous", "old-refreshed"]), (False, ["fresh"])])
def test_a_remote_session_about_to_expire_is_renewed_before_the_command(
    tmp_path, expired: bool, calls: list[str]
) -> None:
    key = "unix:///tmp/m.sock"
    old = _jwt(datetime.now(UTC) + (timedelta(seconds=-5) if expired else timedelta(minutes=10)))
    store = CredentialStore(tmp_path / "cfg" / "credentials.json")
    store.save(key, old, "bob", refresh_token="mist_r_old", certificate="PEM")
    seen: list[str] = []
    spent: list[str] = []

    def factory(args, conn):
        if conn.token is None:
            seen.append("anonymous")
            assert conn.certificate == "PEM"

            async def refresh(refresh_token: str) -> Session:
                spent.append(refresh_token)
                return _session("renewed", "mist_r_new")

            return _Api(auth=SimpleNamespace(refresh=refresh))
        seen.append("old-refreshed" if conn.token == "renewed" else "fresh" if conn.token == old else "?")
        return _Api(auth=SimpleNamespace(whoami=lambda: _async(_user())))

    out, err = io.StringIO(), io.StringIO()
    code = run(["whoami", "--host", key], stdin=io.StringIO(), stdout=out, stderr=err, api_factory=factory)
    assert code == 0, err.getvalue()
    assert seen == calls
    if expired:
        assert spent == ["mist_r_old"]
        assert store.entry(key) == {
            "token": "renewed",
            "refresh_token": "mist_r_new",
            "username": "bob",
            "certificate": "PEM",
        }


# ---------------------------------------------------------------------------------------------- git providers


def _provider(name: str = "tea", kind: str = "gitea", **fields: object) -> GitProvider:
    base: dict[str, object] = {
        "id": 1,
        "name": name,
        "kind": kind,
        "url": "https://tea.example.com",
        "api_url": "https://tea.example.com",
        "created_at": NOW,
    }
    return GitProvider(**{**base, **fields})  # type: ignore[arg-type]


def _git_api(calls: list[tuple], repos: list[RepoInfo] | None = None) -> _Api:
    async def add_provider(spec: GitProviderSpec) -> GitProvider:
        calls.append(("add", spec))
        return _provider(spec.name, spec.kind, installation_id=spec.installation_id)

    async def github_manifest(name: str, *, url: str = "https://github.com", organization: str | None = None):
        calls.append(("manifest", name, url, organization))
        return ManifestStart(name=name, url="https://mist.example.com/hooks/github/manifest/st", state="st")

    async def providers() -> list[GitProvider]:
        return [_provider(), _provider("gh", "github", app_slug="mist-acme", installation_id=77)]

    async def remove_provider(name: str) -> None:
        calls.append(("remove", name))

    async def repos_(provider: str) -> list[RepoInfo]:
        return repos or []

    async def branches(provider: str, repo: str) -> list[BranchInfo]:
        calls.append(("branches", provider, repo))
        return [BranchInfo(name="main", sha="a" * 40), BranchInfo(name="feature/x", sha="b" * 40)]

    return _Api(
        git=SimpleNamespace(
            add_provider=add_provider,
            github_manifest=github_manifest,
            providers=providers,
            remove_provider=remove_provider,
            repos=repos_,
            branches=branches,
        )
    )


def test_provider_add_reads_the_token_from_stdin_and_never_prints_it() -> None:
    calls: list[tuple] = []
    argv = ["git", "provider", "add", "tea", "--kind", "gitea", "--url", "https://tea.example.com"]
    code, out, err = _run([*argv, "--token-stdin"], _git_api(calls), stdin="tok-123\n")
    assert code == 0, err
    spec = calls[0][1]
    assert (spec.kind, spec.url, spec.token) == ("gitea", "https://tea.example.com", "tok-123")
    assert "Added gitea provider tea" in out
    assert "tok-123" not in out + err
    assert "mist git repos tea" in err


def test_provider_add_without_a_token_or_a_terminal_names_the_option() -> None:
    calls: list[tuple] = []
    argv = ["git", "provider", "add", "tea", "--kind", "gitea", "--url", "https://tea.example.com"]
    code, _, err = _run(argv, _git_api(calls))
    assert code == 2 and calls == []
    assert "--token-stdin" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--kind", "gitlab", "--token-stdin"], ["--url"]),
        (["--kind", "gitea", "--url", "https://t.example.com", "--app-id", "3"], ["--app-id", "GitHub App"]),
        (["--kind", "github", "--private-key-file", "k.pem"], ["--app-id"]),
        (["--kind", "github", "--app-id", "3"], ["--private-key-file"]),
        (["--kind", "gitea", "--url", "https://t.example.com", "--organization", "x"], ["--github-manifest"]),
        (["--github-manifest", "--app-id", "3"], ["--app-id", "--github-manifest"]),
    ],
)
def test_provider_add_refuses_options_that_do_not_fit_the_kind(argv: list[str], words: list[str]) -> None:
    calls: list[tuple] = []
    code, _, err = _run(["git", "provider", "add", "p", *argv], _git_api(calls), stdin="tok\n")
    assert code == 2 and calls == []
    assert all(w in err for w in words), err


def test_provider_add_github_reads_the_key_file_and_the_webhook_secret(tmp_path) -> None:
    calls: list[tuple] = []
    pem = tmp_path / "app.pem"
    pem.write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n")
    argv = ["git", "provider", "add", "gh", "--kind", "github", "--app-id", "12"]
    argv += ["--private-key-file", str(pem), "--webhook-secret-stdin", "--installation-id", "7"]
    code, out, err = _run(argv, _git_api(calls), stdin="hook-secret\n")
    assert code == 0, err
    spec = calls[0][1]
    assert (spec.app_id, spec.installation_id, spec.webhook_secret) == (12, 7, "hook-secret")
    assert spec.private_key == pem.read_text() and spec.token is None
    assert "hook-secret" not in out + err and "MIIE" not in out + err
    (tmp_path / "notes.txt").write_text("no key here")
    argv[argv.index(str(pem))] = str(tmp_path / "notes.txt")
    code, _, err = _run(argv, _git_api(calls), stdin="hook-secret\n")
    assert code == 2 and "holds no private key" in err


def test_provider_add_github_manifest_prints_the_address_to_open() -> None:
    calls: list[tuple] = []
    argv = ["git", "provider", "add", "gh", "--github-manifest", "--organization", "acme"]
    code, out, err = _run(argv, _git_api(calls))
    assert code == 0, err
    assert calls == [("manifest", "gh", "https://github.com", "acme")]
    assert out == "https://mist.example.com/hooks/github/manifest/st\n"
    assert "browser" in err and "mist git provider list" in err
    code, out, _ = _run([*argv, "--json"], _git_api(calls))
    assert json.loads(out)["url"] == "https://mist.example.com/hooks/github/manifest/st"


def test_provider_list_and_remove() -> None:
    calls: list[tuple] = []
    code, out, _ = _run(["git", "provider", "list"], _git_api(calls))
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "URL", "APP", "INSTALLATION", "WEBHOOK", "AGE"]
    assert lines[2].split()[:5] == ["gh", "github", "https://tea.example.com", "mist-acme", "77"]
    code, _, err = _run(["git", "provider", "remove", "tea"], _git_api(calls))
    assert code == 2 and "--yes" in err and calls == []
    code, out, _ = _run(["git", "provider", "remove", "tea", "--yes"], _git_api(calls))
    assert code == 0 and calls == [("remove", "tea")] and "Removed git provider tea" in out


def test_repos_and_branches_are_tables() -> None:
    calls: list[tuple] = []
    repos = [RepoInfo(full_name="acme/web", clone_url="https://tea.example.com/acme/web.git", private=True)]
    code, out, _ = _run(["git", "repos", "tea"], _git_api(calls, repos))
    assert out.splitlines()[0].split() == ["REPO", "DEFAULT", "BRANCH", "PRIVATE", "CLONE", "URL"]
    assert out.splitlines()[1].split() == ["acme/web", "main", "yes", "https://tea.example.com/acme/web.git"]
    code, out, _ = _run(["git", "branches", "tea", "acme/web"], _git_api(calls))
    assert code == 0 and calls == [("branches", "tea", "acme/web")]
    assert out.splitlines()[2].split() == ["feature/x", "b" * 12]
    code, out, _ = _run(["git", "branches", "tea", "acme/web", "--json"], _git_api(calls))
    assert json.loads(out)[0] == {"name": "main", "sha": "a" * 40}


# ---------------------------------------------------------------------------------------------- app sources


def _app(ref: str = "shop/web", git_url: str = "https://tea.example.com/acme/web.git", **spec: object) -> App:
    project, name = ref.split("/")
    return App(
        id=1,
        project=project,
        name=name,
        spec=AppSpec(git_url=git_url, **spec),  # type: ignore[arg-type]
        created_at=NOW,
        updated_at=NOW,
    )


def _apps_api(calls: list[tuple], source: AppSource, *, fail_link: bool = False) -> _Api:
    created: dict[str, App] = {}

    async def create(app_ref: str, spec: AppSpec) -> App:
        calls.append(("create", app_ref, spec))
        created[app_ref] = _app(app_ref, **spec.model_dump(exclude={"health", "volumes"}))
        return created[app_ref]

    async def get(app_ref: str) -> App:
        return created.get(app_ref) or _app(app_ref)

    async def delete(app_ref: str) -> None:
        calls.append(("delete", app_ref))

    async def set_source(app_ref: str, changes: SourceChanges) -> AppSource:
        calls.append(("set_source", app_ref, changes))
        if fail_link:
            raise NotFound("there is no git provider 'tea': see `mist git provider list`", field="provider")
        return source

    async def source_(app_ref: str, *, reveal: bool = False) -> AppSource:
        calls.append(("source", app_ref, reveal))
        return source.model_copy(update={"webhook_secret": "s3cret-hook" if reveal else None})

    async def deploy_key(app_ref: str, *, regenerate: bool = False) -> AppSource:
        calls.append(("deploy_key", app_ref, regenerate))
        return source

    repos = [
        RepoInfo(
            full_name="acme/web", clone_url="https://tea.example.com/acme/web.git", default_branch="trunk"
        )
    ]
    api = _git_api(calls, repos)
    api.apps = SimpleNamespace(
        create=create,
        get=get,
        delete=delete,
        set_source=set_source,
        source=source_,
        deploy_key=deploy_key,
    )
    return api


HOOK = "https://mist.example.com/hooks/abc"


def test_app_create_from_a_provider_repo_uses_its_clone_url_and_links_it() -> None:
    calls: list[tuple] = []
    argv = ["app", "create", "shop/web", "--provider", "tea", "--repo", "ACME/web.git", "--port", "8080"]
    code, out, err = _run(argv, _apps_api(calls, AppSource(webhook_url=HOOK)))
    assert code == 0, err
    create = calls[0]
    assert create[0] == "create" and create[2].git_url == "https://tea.example.com/acme/web.git"
    assert create[2].branch == "trunk" and create[2].port == 8080  # the repository's default branch
    assert calls[1] == ("set_source", "shop/web", SourceChanges(provider="tea", repo="acme/web"))
    assert "Created app shop/web" in out and "mist deploy shop/web" in out


def test_app_create_from_an_unknown_repo_creates_nothing_and_says_where_to_look() -> None:
    calls: list[tuple] = []
    argv = ["app", "create", "shop/web", "--provider", "tea", "--repo", "acme/nope"]
    code, _, err = _run(argv, _apps_api(calls, AppSource()))
    assert code == 2 and calls == []
    assert "acme/nope" in err and "mist git repos tea" in err


def test_app_create_takes_the_app_back_when_linking_fails() -> None:
    calls: list[tuple] = []
    argv = ["app", "create", "shop/web", "--provider", "tea", "--repo", "acme/web", "--branch", "dev"]
    code, _, err = _run(argv, _apps_api(calls, AppSource(), fail_link=True))
    assert code == 2 and "mist git provider list" in err
    assert calls[0][2].branch == "dev"
    assert [c[0] for c in calls] == ["create", "set_source", "delete"]


def _host_key_line() -> tuple[str, str]:
    from mist_core.sources.keys import generate_deploy_key

    key = generate_deploy_key("host")
    kind, blob, _ = key.public_openssh.split()
    return f"[git.example.com]:2222 {kind} {blob}", key.fingerprint


def test_deploy_key_prints_the_key_alone_on_stdout_and_what_to_do_on_stderr() -> None:
    calls: list[tuple] = []
    known, fingerprint = _host_key_line()
    source = AppSource(
        auth="deploy_key",
        deploy_key="ssh-ed25519 AAAAC3Nza mist-shop-web",
        deploy_key_fingerprint="SHA256:abc",
        known_hosts=known,
    )
    code, out, err = _run(["app", "deploy-key", "shop/web", "--regenerate"], _apps_api(calls, source))
    assert code == 0, err
    assert calls[0] == ("deploy_key", "shop/web", True)
    assert out == "ssh-ed25519 AAAAC3Nza mist-shop-web\n"
    assert "SHA256:abc" in err and "read access only" in err
    assert f"[git.example.com]:2222  ssh-ed25519  {fingerprint}" in err
    # The app fetches over https: the key would not be used until its URL is an ssh one.
    assert "mist app set shop/web --git git@HOST:OWNER/NAME.git" in err
    code, out, _ = _run(["app", "deploy-key", "shop/web", "--json"], _apps_api(calls, source))
    assert json.loads(out)["deploy_key_fingerprint"] == "SHA256:abc"


def test_app_source_without_options_shows_it_and_reveal_asks_for_the_secret() -> None:
    calls: list[tuple] = []
    source = AppSource(
        auth="provider", provider="tea", repo="acme/web", webhook_kind="gitea", webhook_url=HOOK
    )
    code, out, err = _run(["app", "source", "shop/web"], _apps_api(calls, source))
    assert code == 0, err
    assert [c for c in calls if c[0] == "set_source"] == []
    pairs = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert pairs["Auth"] == "git provider"
    assert pairs["Webhook URL"] == HOOK
    assert "hidden" in pairs["Webhook secret"] and "s3cret-hook" not in out
    assert pairs["Deploy on push"] == "yes (branch main)"
    code, out, _ = _run(["app", "source", "shop/web", "--reveal"], _apps_api(calls, source))
    assert "s3cret-hook" in out and calls[-1] == ("source", "shop/web", True)
    code, out, _ = _run(["app", "source", "shop/web", "--json"], _apps_api(calls, source))
    assert json.loads(out)["webhook_url"] == HOOK and json.loads(out)["webhook_secret"] is None


def test_app_source_without_a_public_url_says_how_to_get_a_webhook() -> None:
    code, out, _ = _run(["app", "source", "shop/web"], _apps_api([], AppSource()))
    assert "mist settings set public_url" in out


def test_app_source_changes_only_what_is_given_and_merges_preview_settings() -> None:
    calls: list[tuple] = []
    current = AppSource(previews=PreviewSettings(enabled=False, limit=3, env={"KEEP": "1", "DROP": "2"}))
    argv = ["app", "source", "shop/web", "--token-stdin", "--no-deploy-on-push", "--previews"]
    argv += ["--preview-limit", "5", "--preview-env", "NEW=x=y", "--preview-env-unset", "DROP"]
    argv += ["--webhook-kind", "gitlab", "--new-webhook-secret"]
    code, out, err = _run(argv, _apps_api(calls, current), stdin="glpat-abc\n")
    assert code == 0, err
    changes = next(c[2] for c in calls if c[0] == "set_source")
    assert changes == SourceChanges(
        token="glpat-abc",
        webhook_kind="gitlab",
        deploy_on_push=False,
        previews=PreviewSettings(enabled=True, limit=5, env={"KEEP": "1", "NEW": "x=y"}),
        new_webhook_secret=True,
    )
    assert "glpat-abc" not in out + err
    assert "Updated the source of shop/web" in err and "--reveal" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--no-token"], SourceChanges(token="")),
        (["--unlink"], SourceChanges(provider="")),
        (["--provider", "tea", "--repo", "acme/web"], SourceChanges(provider="tea", repo="acme/web")),
        (["--forget-host-keys", "--deploy-tags"], SourceChanges(forget_known_hosts=True, deploy_tags=True)),
    ],
)
def test_app_source_options_map_to_source_changes(argv: list[str], expected: SourceChanges) -> None:
    calls: list[tuple] = []
    code, _, err = _run(["app", "source", "shop/web", *argv], _apps_api(calls, AppSource()))
    assert code == 0, err
    assert [c[2] for c in calls if c[0] == "set_source"] == [expected]


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["--preview-limit", "0"], "--preview-limit"),
        (["--preview-env", "not-an-assignment"], "KEY=VALUE"),
        (["--token-stdin"], "token"),
    ],
)
def test_app_source_refuses_bad_values_before_changing_anything(argv: list[str], word: str) -> None:
    calls: list[tuple] = []
    code, _, err = _run(["app", "source", "shop/web", *argv], _apps_api(calls, AppSource()), stdin="\n")
    assert code == 2 and word in err
    assert [c for c in calls if c[0] == "set_source"] == []


def test_app_show_adds_the_webhook_url() -> None:
    calls: list[tuple] = []
    api = _apps_api(calls, AppSource(webhook_url=HOOK))
    code, out, _ = _run(["app", "show", "shop/web"], api)
    assert code == 0
    assert out.splitlines()[0].split() == ["App", "shop/web"]
    assert out.splitlines()[-1].split() == ["Webhook", HOOK]
    code, out, _ = _run(["app", "show", "shop/web", "--json"], api)
    doc = json.loads(out)
    assert doc["webhook_url"] == HOOK and doc["spec"]["git_url"] == "https://tea.example.com/acme/web.git"


def test_app_show_works_for_someone_who_may_not_see_the_source() -> None:
    api = _apps_api([], AppSource())

    async def refused(app_ref: str, *, reveal: bool = False) -> AppSource:
        raise PermissionDenied("you may not see the source of shop/web")

    api.apps.source = refused
    code, out, _ = _run(["app", "show", "shop/web"], api)
    assert code == 0 and out.splitlines()[-1].split() == ["Webhook", "-"]


# ---------------------------------------------------------------------------------------------- deliveries


def test_webhooks_is_a_table_of_deliveries_with_what_was_done() -> None:
    seen = []

    async def list_(app_ref: str, *, limit: int = 50) -> list[WebhookDelivery]:
        seen.append(limit)
        return [
            WebhookDelivery(
                id=2, event="push", received_at=NOW, outcome="deployed", reason="queued deployment 9",
                ref="refs/heads/main", sha="c" * 40, deployment_id=9,
            ),
            WebhookDelivery(
                id=1, event="pull_request", received_at=NOW, outcome="refused",
                reason="the signature does not match", pr_number=7, ref="feature/x",
            ),
        ]  # fmt: skip

    code, out, _ = _run(["webhooks", "shop/web", "-n", "5"], _Api(webhooks=SimpleNamespace(list=list_)))
    assert code == 0 and seen == [5]
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "EVENT", "OUTCOME", "REF", "COMMIT", "DEPLOYMENT", "REASON"]
    assert lines[1].split()[2:] == ["push", "deployed", "main", "c" * 8, "9", "queued", "deployment", "9"]
    assert "PR #7 (feature/x)" in lines[2] and lines[2].endswith("the signature does not match")
    code, _, err = _run(["webhooks", "shop/web", "-n", "0"], _Api(webhooks=SimpleNamespace(list=list_)))
    assert code == 2 and "--limit" in err


def test_previews_is_a_table_of_pull_requests_and_their_apps() -> None:
    async def list_(app_ref: str) -> list[Preview]:
        return [
            Preview(
                app="shop/web-pr-7", parent="shop/web", number=7, head_ref="feature/x", head_sha="d" * 40,
                url="https://pr-7.shop.example.com", created_at=NOW, updated_at=NOW,
            )
        ]  # fmt: skip

    code, out, _ = _run(["previews", "shop/web"], _Api(previews=SimpleNamespace(list=list_)))
    assert code == 0
    assert out.splitlines()[0].split() == ["PR", "APP", "HEAD", "URL", "UPDATED"]
    assert out.splitlines()[1].split()[:5] == [
        "7",
        "shop/web-pr-7",
        "feature/x",
        "d" * 8,
        "https://pr-7.shop.example.com",
    ]


# ---------------------------------------------------------------------------------------------- structure


def _relative_imports(path: Path) -> set[str]:
    """The sibling modules a module of ``mist_core.cli`` imports (``from .x import ...``, ``from . import x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
    return found


def test_no_command_module_imports_another_and_all_share_one_context_module() -> None:
    from mist_core.cli import entry

    package = Path(entry.__file__).parent
    command_modules = {
        path.stem for path in package.glob("*.py") if "command = CommandTable()" in path.read_text()
    }
    assert {"projects", "apps", "env", "deployments", "runtime", "domains", "accounts", "sources"} <= (
        command_modules
    )
    for name in command_modules:
        imported = _relative_imports(package / f"{name}.py")
        assert not imported & command_modules, f"{name} imports {sorted(imported & command_modules)}"
        assert "context" in imported, name
        assert "entry" not in imported, name


def test_every_command_of_the_grammar_has_one_handler_and_every_handler_a_command() -> None:
    from mist_core.cli.entry import all_handlers, handler_for

    handlers = all_handlers()

    grammar: set[tuple[str, str | None]] = set()
    for name, subs in COMMANDS.items():
        if name in ("daemon", "completion"):  # handled before any command runs
            continue
        for sub in subs or [None]:
            actions = ACTIONS.get((name, sub)) if sub else None
            grammar.update((name, f"{sub} {a}") for a in actions) if actions else grammar.add((name, sub))
    assert set(handlers) == grammar
    for key, handler in handlers.items():  # each found through the modules named for its first word
        assert handler_for(key) is handler, key


def test_a_command_imports_only_its_own_module() -> None:
    code = (
        "import json, sys\n"
        "from mist_core.cli.entry import handler_for\n"
        "handler_for(('deploy', None))\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('mist_core.cli.')]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(result.stdout))
    assert "mist_core.cli.deployments" in loaded
    assert not loaded & {f"mist_core.cli.{m}" for m in ("accounts", "apps", "sources", "domains")}


@pytest.mark.parametrize(
    ("argv", "tui"),
    [
        ([], True),
        (["--host", "unix:///x", "--json"], True),
        (["--embedded", "--data", "/d"], True),
        (["--help"], False),
        (["project", "list"], False),
        (["--json", "daemon"], False),
    ],
)
def test_mist_opens_the_tui_only_without_a_command(argv: list[str], tui: bool) -> None:
    from mist_tui.launch import opens_the_tui

    assert opens_the_tui(argv) is tui


def test_the_tui_gets_the_connection_options_under_its_own_names() -> None:
    from mist_tui.launch import tui_arguments

    assert tui_arguments(["--json", "--data", "/d", "--host=unix:///x"]) == [
        "--data-dir",
        "/d",
        "--host=unix:///x",
    ]
    assert tui_arguments(["--data=/d", "--embedded"]) == ["--data-dir=/d", "--embedded"]


def test_the_core_never_imports_the_terminal_ui() -> None:
    import mist_core

    package = Path(mist_core.__file__).parent
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (
                isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args
            ):
                names = [getattr(node.args[0], "value", "")]
            assert not any(str(n).split(".")[0] in ("mist_tui", "textual") for n in names), path


# ---------------------------------------------------------------------------------------------- completions


def _completion_scripts() -> dict[str, str]:
    from mist_core.cli.entry import completion_script

    return {shell: completion_script(shell) for shell in ("bash", "zsh")}


def _grammar() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """Every parser of the command line with the words that reach it."""
    found = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        found.append((path, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])

    walk(build_parser(), [])
    return found


def test_completion_scripts_know_every_command_and_subcommand() -> None:
    scripts = _completion_scripts()
    bash_commands = re.search(r'local commands="([^"]*)"', scripts["bash"])
    assert bash_commands is not None
    zsh_commands = set(re.findall(r"^\s*'([\w-]+):", scripts["zsh"], re.MULTILINE))
    for path, _parser in _grammar():
        if len(path) == 1:
            assert path[0] in bash_commands.group(1).split(), f"bash: {path[0]}"
            assert path[0] in zsh_commands, f"zsh: {path[0]}"
        elif len(path) > 1:
            # A sub-command is offered in a list of the words of its level, in both scripts.
            parent = next(p for words, p in _grammar() if words == path[:-1])
            names = next(a for a in parent._actions if isinstance(a, argparse._SubParsersAction)).choices
            words = " ".join(names)
            assert words in scripts["bash"], f"bash: {' '.join(path[:-1])} -> {words}"
            assert words in scripts["zsh"], f"zsh: {' '.join(path[:-1])} -> {words}"


def test_completion_scripts_know_every_option() -> None:
    scripts = _completion_scripts()
    for path, parser in _grammar():
        for action in parser._actions:
            for option in action.option_strings:
                if not option.startswith("--") or option in ("--help", "--version"):
                    continue
                pattern = re.compile(rf"(?<![\w-]){re.escape(option)}(?![\w-])")
                for shell, text in scripts.items():
                    assert pattern.search(text), f"{shell}: mist {' '.join(path)} {option}"


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        (["mist", "gi"], ["git"]),
        (["mist", "git", ""], ["provider", "repos", "branches"]),
        (["mist", "git", "provider", ""], ["add", "list", "remove"]),
        (["mist", "git", "provider", "add", "gh", "--kind", ""], ["github", "gitlab", "gitea"]),
        (["mist", "app", "source", "shop/web", "--no-de"], ["--no-deploy-on-push", "--no-deploy-tags"]),
        (["mist", "audit", "--j"], ["--json", "--jsonl"]),
        (["mist", "token", "create", "ci", "--scope", ""], ["read", "deploy", "admin"]),
    ],
)
def test_bash_completion_offers_the_next_words(words: list[str], offered: list[str]) -> None:
    from mist_core.cli.entry import COMPLETIONS_DIR

    script = (
        f"source {shlex.quote(str(COMPLETIONS_DIR / 'mist.bash'))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        '_mist; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == offered
