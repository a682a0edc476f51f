"""The command line's pure parts: the grammar of every command, value parsing (``--since``), table and size
formatting, exit codes; and what a few commands print, driven by an in-memory stand-in for the API."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
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
    split_app_ref,
)
from mist_core.cli.output import exit_code_for
from mist_core.cli.parser import COMMANDS, UsageError, first_command, parse_args
from mist_core.errors import (
    Conflict,
    DaemonUnavailable,
    EngineUnavailable,
    InvalidInput,
    MistError,
    NotFound,
    PermissionDenied,
    SetupRequired,
    Unauthenticated,
)
from mist_core.models import (
    MASK,
    Certificate,
    Deployment,
    DeploymentState,
    Domain,
    DomainSettings,
    EnvVar,
    LogLine,
    ProxyStatus,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

# ---------------------------------------------------------------------------------------------- grammar

PARSES = [
    (
        "setup --username admin --password-stdin",
        {"command": "setup", "username": "admin", "password_stdin": True},
    ),
    ("login -u bob", {"command": "login", "username": "bob", "password_stdin": False}),
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
    ("settings list", {"command": "settings", "subcommand": "list"}),
    ("settings get proxy", {"subcommand": "get", "key": "proxy"}),
    ("settings set proxy caddy", {"subcommand": "set", "key": "proxy", "value": "caddy"}),
    ("users", {"command": "users"}),
    (
        "audit --user bob --project shop --action app. --limit 10",
        {"user": "bob", "project": "shop", "action": "app.", "limit": 10},
    ),
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
