"""Every validator in ``mist_core.validate``: good values come back normalised, bad ones raise InvalidInput
naming the field and the problem, and every string in the injection corpus is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mist_core import validate
from mist_core.errors import InvalidInput
from mist_core.models import AppChanges, AppSpec, HealthCheck, Volume

try:
    from tests.unit import injection_corpus as corpus
except ImportError:  # tests/ is not a package: pytest puts this directory on sys.path instead
    import injection_corpus as corpus  # type: ignore[no-redef]


def refused(func, *args, **kwargs) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        func(*args, **kwargs)
    return caught.value


@pytest.fixture
def roots(tmp_path: Path) -> list[Path]:
    root = tmp_path / "repos"
    (root / "app").mkdir(parents=True)
    return [root]


# ---------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("value", ["a", "web", "my-app-2", "0", "a" * 40, "9lives"])
def test_name_accepts_lowercase_dns_labels(value):
    assert validate.name(value) == value


def test_name_with_uppercase_says_use_lowercase():
    err = refused(validate.name, "MyApp", "project")
    assert err.field == "project"
    assert "use lowercase" in err.message
    assert "'myapp'" in err.message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty"),
        ("-a", "'-'"),
        ("a-", "'-'"),
        ("a_b", "'_'"),
        ("a" * 41, "41 characters"),
        ("a.b", "'.'"),
    ],
)
def test_name_refusal_says_what_is_wrong(value, problem):
    err = refused(validate.name, value, "app")
    assert err.field == "app"
    assert problem in err.message


def test_name_refuses_non_text():
    assert refused(validate.name, 42).field == "name"


def test_name_message_truncates_huge_values():
    err = refused(validate.name, "x" * 100_000 + "!")
    assert len(err.message) < 300


def test_app_ref_splits_project_and_app():
    assert validate.app_ref("shop/web") == ("shop", "web")


@pytest.mark.parametrize("value", ["shop", "shop/web/x", "/web", "Shop/web", "shop/"])
def test_app_ref_refuses_malformed(value):
    err = refused(validate.app_ref, value)
    assert err.field in ("app", "project")


def test_tags_are_deduplicated_and_sorted():
    assert validate.tags(["prod", "eu", "prod"]) == ["eu", "prod"]


def test_tags_limit_is_twenty():
    assert len(validate.tags([f"t{i}" for i in range(20)])) == 20
    err = refused(validate.tags, [f"t{i}" for i in range(21)])
    assert "at most 20" in err.message


def test_tags_refuse_bad_tag_and_plain_string():
    assert refused(validate.tags, ["ok", "Not Ok"]).field == "tag"
    assert refused(validate.tags, "prod").field == "tags"


def test_description_allows_unicode_text_up_to_500():
    assert validate.description("Café 🙂 — a shop") == "Café 🙂 — a shop"
    assert validate.description("x" * 500) == "x" * 500


@pytest.mark.parametrize("value", ["x" * 501, "line\nbreak", "tab\there", "a\x1b[31m", "rtl\u202etxt"])
def test_description_refuses_long_or_control_text(value):
    assert refused(validate.description, value).field == "description"


# ---------------------------------------------------------------------------------------------- git URLs


@pytest.mark.parametrize(
    "value",
    [
        "https://github.com/org/repo.git",
        "https://github.com:443/org/repo",
        "https://x-access-token:ghp_abc123@github.com/org/repo.git",
        "https://gitlab.example.com/group/sub/repo.git",
        "https://[2001:db8::1]/repo.git",
        "ssh://git@github.com/org/repo.git",
        "ssh://git@github.com:2222/org/repo.git",
        "ssh://host.example/srv/git/repo",
        "git@github.com:org/repo.git",
        "deploy@10.0.0.5:/srv/git/repo.git",
        "http://127.0.0.1:8080/repo.git",
        "http://localhost/repo.git",
        "git://127.0.0.1/repo",
        "https://github.com/org/my%20repo",
    ],
)
def test_git_url_accepts_remote_urls_unchanged(value):
    assert validate.git_url(value) == value


def test_git_url_lowercases_the_scheme():
    assert validate.git_url("HTTPS://github.com/o/r") == "https://github.com/o/r"


def test_git_url_accepts_local_paths_inside_allowed_roots(roots):
    repo = roots[0] / "app"
    assert validate.git_url(str(repo), allowed_roots=roots) == f"file://{repo}"
    assert validate.git_url(f"file://{repo}/", allowed_roots=roots) == f"file://{repo}"
    assert validate.git_url(f"{repo}//./", allowed_roots=roots) == f"file://{repo}"


def test_git_url_refuses_local_paths_when_no_roots_are_allowed(roots):
    err = refused(validate.git_url, str(roots[0] / "app"))
    assert err.field == "git_url"
    assert "not enabled" in err.message


def test_git_url_refuses_paths_outside_allowed_roots(roots, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    err = refused(validate.git_url, str(outside), allowed_roots=roots)
    assert "outside" in err.message


def test_git_url_resolves_symlinks_before_checking_roots(roots, tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    link = roots[0] / "innocent"
    link.symlink_to(outside)
    err = refused(validate.git_url, str(link), allowed_roots=roots)
    assert "outside" in err.message


def test_git_url_accepts_symlink_that_stays_inside_roots(roots):
    link = roots[0] / "alias"
    link.symlink_to(roots[0] / "app")
    assert validate.git_url(str(link), allowed_roots=roots) == f"file://{link}"


def test_git_url_refuses_dotdot_in_local_paths(roots):
    err = refused(validate.git_url, f"{roots[0]}/app/../app", allowed_roots=roots)
    assert "'..'" in err.message


def test_git_url_allows_plain_http_only_on_loopback():
    assert validate.git_url("http://127.0.0.1/r") == "http://127.0.0.1/r"
    err = refused(validate.git_url, "http://example.com/r")
    assert "127.0.0.1" in err.message and "https://" in err.message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("--upload-pack=touch /tmp/x", "option"),
        ("ext::sh -c touch", "remote helper"),
        ("fd::3", "remote helper"),
        ("https://github.com/a;b", "';'"),
        ("https://", "no host"),
        ("ftp://host/r", "'ftp'"),
        ("ssh://u:p@host/r", "password"),
        ("https://github.com/", "no repository path"),
        ("relative/dir", "absolute path"),
    ],
)
def test_git_url_refusal_names_the_problem(value, problem):
    err = refused(validate.git_url, value)
    assert err.field == "git_url"
    assert problem in err.message


def test_git_url_error_does_not_show_the_token():
    err = refused(validate.git_url, "https://user:s3cr3t-token@github.com/a/b;x")
    assert "s3cr3t-token" not in err.message


def test_redact_url_masks_passwords_and_token_users():
    assert validate.redact_url("https://user:tok@github.com/a") == "https://user:***@github.com/a"
    assert validate.redact_url("https://ghp_abc@github.com/a") == "https://***@github.com/a"
    assert validate.redact_url("ssh://git@github.com/a") == "ssh://git@github.com/a"
    assert validate.redact_url("https://github.com/a") == "https://github.com/a"
    assert validate.redact_url("git@github.com:a/b") == "git@github.com:a/b"


def test_redact_url_masks_every_url_in_a_line():
    line = "fatal: unable to access 'https://me:hunter22@git.example/r/': 403"
    assert "hunter22" not in validate.redact_url(line)
    assert "https://me:***@git.example/r/" in validate.redact_url(line)


# ---------------------------------------------------------------------------------------------- refs


@pytest.mark.parametrize(
    "value",
    [
        "main",
        "feature/login-form",
        "v1.2.3",
        "release-2024.01",
        "refs/heads/main",
        "refs/pull/12/head",
        "HEAD",
        "fix#123",
        "deadbee",
        "0123456789abcdef0123456789abcdef01234567",
        "a" * 200,
    ],
)
def test_git_ref_accepts_branches_tags_and_shas(value):
    assert validate.git_ref(value) == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-b", "option"),
        ("a..b", "'..'"),
        ("x@{1}", "'@{'"),
        ("a\\b", "'\\\\'"),
        ("a b", "space"),
        ("a~1", "'~'"),
        ("a^", "'^'"),
        ("a:b", "':'"),
        ("a?", "'?'"),
        ("a*", "'*'"),
        ("a[", "'['"),
        ("main.lock", ".lock"),
        ("main/", "'/'"),
        ("main.", "ends with '.'"),
        (".hidden", "starting with '.'"),
        ("a" * 201, "201 characters"),
        ("", "empty"),
        ("@", "'@' alone"),
        ("a\x01", "control"),
    ],
)
def test_git_ref_refusal_names_the_problem(value, problem):
    err = refused(validate.git_ref, value, "branch")
    assert err.field == "branch"
    assert problem in err.message


def test_is_sha_recognises_7_to_40_hex_digits():
    assert validate.is_sha("abcdef0")
    assert validate.is_sha("a" * 40)
    assert not validate.is_sha("abcdef")
    assert not validate.is_sha("a" * 41)
    assert not validate.is_sha("ABCDEF0")
    assert not validate.is_sha("main")


# ---------------------------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Dockerfile", "Dockerfile"),
        ("./a//b", "a/b"),
        ("", "."),
        (".", "."),
        ("./", "."),
        ("docker/prod.Dockerfile", "docker/prod.Dockerfile"),
        ("a/./b/", "a/b"),
    ],
)
def test_repo_path_normalises(value, expected):
    assert validate.repo_path(value, "dockerfile") == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [("/etc/passwd", "absolute"), ("a/../../b", "'..'"), ("a\x00", "control"), ("a\\b", "backslash")],
)
def test_repo_path_refusal_names_field_and_problem(value, problem):
    err = refused(validate.repo_path, value, "context")
    assert err.field == "context"
    assert problem in err.message


# ---------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (65535, 65535), ("8080", 8080)])
def test_port_accepts_1_to_65535(value, expected):
    assert validate.port(value) == expected


@pytest.mark.parametrize("value", [0, 65536, -1, "http", True, 80.5, "8080 "])
def test_port_refuses_out_of_range_and_non_numbers(value):
    if value == "8080 ":
        assert validate.port(value) == 8080  # surrounding spaces are forgiven
        return
    assert refused(validate.port, value).field == "port"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8080", "8080"),
        ("18080:8080", "18080:8080"),
        ("127.0.0.1:18080:8080", "127.0.0.1:18080:8080"),
        ("127.0.0.1:18080:8080/tcp", "127.0.0.1:18080:8080"),
        ("53:53/UDP", "53:53/udp"),
        ("[::1]:8080:80", "[::1]:8080:80"),
        ("[0:0:0:0:0:0:0:1]:8080:80", "[::1]:8080:80"),
        ("0.0.0.0:80:80", "0.0.0.0:80:80"),
    ],
)
def test_publish_normalises(value, expected):
    assert validate.publish(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "80:80:80:80",
        "999.1.1.1:80:80",
        "::1:80:80",
        "80/sctp",
        "a:80",
        "80:0",
        "70000",
        "[::1]80:80",
        "80 :80",
    ],
)
def test_publish_refuses_malformed(value):
    assert refused(validate.publish, value).field == "publish"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512m", 512 * 1024**2),
        ("1g", 1024**3),
        ("1G", 1024**3),
        ("256MiB", 256 * 1024**2),
        ("1.5g", int(1.5 * 1024**3)),
        ("6m", 6 * 1024**2),
        (104857600, 104857600),
        ("104857600", 104857600),
        ("1t", 1024**4),
    ],
)
def test_memory_parses_binary_units(value, expected):
    assert validate.memory(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [("5m", "minimum"), (1024, "minimum"), ("2t", "maximum"), ("lots", "not a size"), ("1x", "not a size")],
)
def test_memory_refusal_names_the_problem(value, problem):
    err = refused(validate.memory, value)
    assert err.field == "memory"
    assert problem in err.message


@pytest.mark.parametrize(
    ("value", "expected"), [(0.5, 0.5), (2, 2.0), ("1.5", 1.5), (0.01, 0.01), (1024, 1024.0)]
)
def test_cpus_accepts_range(value, expected):
    assert validate.cpus(value) == expected


@pytest.mark.parametrize("value", [0, 0.001, 1025, "nan", "inf", "many", True])
def test_cpus_refuses_out_of_range(value):
    assert refused(validate.cpus, value).field == "cpus"


@pytest.mark.parametrize(
    "value", ["no", "always", "unless-stopped", "on-failure", "on-failure:1", "on-failure:100"]
)
def test_restart_policy_accepts_docker_policies(value):
    assert validate.restart_policy(value) == value


@pytest.mark.parametrize("value", ["", "never", "on-failure:0", "on-failure:101", "Always", "on-failure:x"])
def test_restart_policy_refuses_others(value):
    err = refused(validate.restart_policy, value)
    assert err.field == "restart"
    assert "unless-stopped" in err.message


# ---------------------------------------------------------------------------------------------- env


@pytest.mark.parametrize("value", ["A", "_", "DATABASE_URL", "a1", "x" * 128])
def test_env_key_accepts_identifiers(value):
    assert validate.env_key(value) == value


def test_env_key_refusal_says_what_is_allowed():
    err = refused(validate.env_key, "1ABC")
    assert err.field == "key"
    assert "letters, digits and '_'" in err.message


def test_env_value_allows_anything_but_nul_up_to_64k():
    assert validate.env_value("multi\nline $HOME `x`") == "multi\nline $HOME `x`"
    assert validate.env_value("x" * 65536) == "x" * 65536
    assert "NUL" in refused(validate.env_value, "a\x00b").message
    assert refused(validate.env_value, "x" * 65537).field == "value"


# ---------------------------------------------------------------------------------------------- volumes


def test_volume_normalises_path():
    assert validate.volume("data", "/var/lib//app/") == Volume(name="data", path="/var/lib/app")


@pytest.mark.parametrize(
    ("vol_name", "path", "problem"),
    [
        ("data", "relative", "not absolute"),
        ("data", "/", "'/'"),
        ("data", "/proc/self", "/proc"),
        ("data", "/sys", "/sys"),
        ("data", "/dev/sda", "/dev"),
        ("data", "/a/../etc", "'..'"),
        ("data", "/a:b", "':'"),
        ("-data", "/a", "volume name"),
        ("da ta", "/a", "volume name"),
        ("x" * 65, "/a", "volume name"),
    ],
)
def test_volume_refusal_names_the_problem(vol_name, path, problem):
    err = refused(validate.volume, vol_name, path)
    assert err.field == "volumes"
    assert problem in err.message


def test_volume_spec_parses_name_and_path():
    assert validate.volume_spec("pgdata:/var/lib/postgresql/data") == Volume(
        name="pgdata", path="/var/lib/postgresql/data"
    )
    assert "name:/path" in refused(validate.volume_spec, "pgdata").message


# ---------------------------------------------------------------------------------------------- health


def test_health_path_accepts_paths_with_query():
    assert validate.health_path("/healthz?full=1") == "/healthz?full=1"


@pytest.mark.parametrize("value", ["healthz", "/a b", "/\x00", "/caf\u00e9", "/" + "a" * 512])
def test_health_path_refuses_bad_paths(value):
    assert refused(validate.health_path, value).field == "health.path"


def test_health_checks_ranges():
    ok = HealthCheck(type="http", path="/up", interval=0.1, timeout=600, retries=1000, start_period=0)
    assert validate.health(ok) == ok
    for field, value in [("interval", 0.05), ("timeout", 601), ("retries", 0), ("start_period", 3601)]:
        bad = ok.model_copy(update={field: value})
        assert refused(validate.health, bad).field == f"health.{field}"


# ---------------------------------------------------------------------------------------------- commands


def test_command_accepts_quoted_arguments():
    assert validate.command("  gunicorn -b '0.0.0.0:8000' app:app ", "start_command") == (
        "gunicorn -b '0.0.0.0:8000' app:app"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "empty"), ("   ", "empty"), ("a\nb", "one line"), ("a\x00", "one line"), ("echo 'open", "quotes")],
)
def test_command_refusal_names_field_and_problem(value, problem):
    err = refused(validate.command, value, "build_command")
    assert err.field == "build_command"
    assert problem in err.message


def test_command_is_limited_to_4k():
    assert refused(validate.command, "x" * 4097, "start_command").field == "start_command"


# ---------------------------------------------------------------------------------------------- app specs


def test_app_spec_normalises_every_field(roots):
    spec = AppSpec(
        git_url=str(roots[0] / "app"),
        branch="main",
        dockerfile="./docker//Dockerfile",
        context="./",
        port=8080,
        publish=["127.0.0.1:18080:8080/tcp", "127.0.0.1:18080:8080"],
        start_command=" ./run ",
        memory=256 * 1024**2,
        cpus=0.5,
        restart="on-failure:3",
        volumes=[Volume(name="data", path="/data/")],
    )
    clean = validate.app_spec(spec, allowed_roots=roots)
    assert clean.git_url == f"file://{roots[0] / 'app'}"
    assert clean.dockerfile == "docker/Dockerfile"
    assert clean.context == "."
    assert clean.publish == ["127.0.0.1:18080:8080"]
    assert clean.start_command == "./run"
    assert clean.volumes == [Volume(name="data", path="/data")]


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"git_url": "ext::sh"}, "git_url"),
        ({"branch": "--force"}, "branch"),
        ({"dockerfile": "../Dockerfile"}, "dockerfile"),
        ({"context": "/etc"}, "context"),
        ({"port": 0}, "port"),
        ({"publish": ["x"]}, "publish"),
        ({"start_command": "a\nb"}, "start_command"),
        ({"install_command": "'"}, "install_command"),
        ({"memory": 10}, "memory"),
        ({"cpus": 9999.0}, "cpus"),
        ({"restart": "sometimes"}, "restart"),
        ({"health": HealthCheck(retries=0)}, "health.retries"),
        ({"volumes": [Volume(name="a", path="/x"), Volume(name="a", path="/y")]}, "volumes"),
        ({"volumes": [Volume(name="a", path="/x"), Volume(name="b", path="/x/")]}, "volumes"),
    ],
)
def test_app_spec_errors_name_the_field(update, field):
    spec = AppSpec(git_url="https://github.com/o/r").model_copy(update=update)
    assert refused(validate.app_spec, spec).field == field


def test_apply_changes_merges_then_validates():
    spec = AppSpec(git_url="https://github.com/o/r", port=80, memory=512 * 1024**2)
    changed = validate.apply_changes(spec, AppChanges(branch="dev", memory="1g", publish=["8080:80"]))
    assert changed.branch == "dev"
    assert changed.memory == 1024**3
    assert changed.publish == ["8080:80"]
    assert changed.port == 80
    assert spec.branch == "main"


def test_apply_changes_clear_resets_to_defaults():
    spec = AppSpec(
        git_url="https://github.com/o/r", port=80, branch="dev", volumes=[Volume(name="d", path="/d")]
    )
    cleared = validate.apply_changes(spec, AppChanges(clear=["port", "branch", "volumes"]))
    assert cleared.port is None
    assert cleared.branch == "main"
    assert cleared.volumes == []


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        (AppChanges(clear=["colour"]), "clear", "unknown field 'colour'"),
        (AppChanges(clear=["git_url"]), "clear", "cannot be cleared"),
        (AppChanges(port=80, clear=["port"]), "port", "both set and cleared"),
        (AppChanges(memory="lots"), "memory", "not a size"),
        (AppChanges(branch="a..b"), "branch", "'..'"),
    ],
)
def test_apply_changes_refusals(changes, field, problem):
    err = refused(validate.apply_changes, AppSpec(git_url="https://github.com/o/r"), changes)
    assert err.field == field
    assert problem in err.message


# ---------------------------------------------------------------------------------------------- dotenv


def test_parse_dotenv_understands_common_syntax():
    text = (
        "# settings\n"
        "\n"
        "export A=1\n"
        "B = spaced # trailing comment\n"
        "C=a#not-a-comment\n"
        'D="quoted # kept \\"q\\" \\\\ \\n"\n'
        "E='single $X \\n'\n"
        "F=\n"
        'G="multi\n'
        'line"\n'
        "H=https://u:p@host/x?y=1\r\n"
    )
    assert validate.parse_dotenv(text) == [
        ("A", "1"),
        ("B", "spaced"),
        ("C", "a#not-a-comment"),
        ("D", 'quoted # kept "q" \\ \n'),
        ("E", "single $X \\n"),
        ("F", ""),
        ("G", "multi\nline"),
        ("H", "https://u:p@host/x?y=1"),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("A=1\nnot a pair\n", 2),
        ("A=1\n\n1BAD=x\n", 3),
        ('A="unterminated\n', 1),
        ("A='x' trailing\n", 1),
        ("A-B=1", 1),
    ],
)
def test_parse_dotenv_reports_the_bad_line(text, line):
    err = refused(validate.parse_dotenv, text)
    assert err.message.startswith(f"line {line}:")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "plain",
        "with space",
        " lead and trail ",
        'quote " and \\ backslash',
        "new\nline\r\ttab",
        "'single'",
        "#hash",
        "a # b",
        "$HOME `x` $(y)",
        "unicode café 🙂",
        "=equals=",
        "\\n literal",
    ],
)
def test_format_dotenv_round_trips(value):
    items = [("KEY", value), ("OTHER", "x")]
    assert validate.parse_dotenv(validate.format_dotenv(items)) == items


# ---------------------------------------------------------------------------------------------- corpus


def test_corpus_is_big_enough():
    assert sum(len(values) for values in corpus.ALL.values()) >= 200
    assert all(corpus.ALL.values())


@pytest.mark.parametrize("value", corpus.GIT_URLS + corpus.UNICODE)
def test_hostile_git_urls_are_refused(value, roots):
    assert refused(validate.git_url, value, allowed_roots=roots).field == "git_url"


@pytest.mark.parametrize("value", corpus.REFS + corpus.UNICODE_INVISIBLE)
def test_hostile_refs_are_refused(value):
    assert refused(validate.git_ref, value).field == "ref"


@pytest.mark.parametrize("value", corpus.PATHS + corpus.UNICODE_INVISIBLE)
def test_hostile_repo_paths_are_refused(value):
    assert refused(validate.repo_path, value, "dockerfile").field == "dockerfile"


@pytest.mark.parametrize("value", corpus.NAMES + corpus.UNICODE)
def test_hostile_names_are_refused(value):
    assert refused(validate.name, value).field == "name"


@pytest.mark.parametrize("value", corpus.ENV_KEYS + corpus.UNICODE)
def test_hostile_env_keys_are_refused(value):
    assert refused(validate.env_key, value).field == "key"


@pytest.mark.parametrize("value", corpus.UNICODE_INVISIBLE)
def test_invisible_characters_are_refused_in_shown_text(value):
    assert refused(validate.description, value).field == "description"
    assert refused(validate.command, value, "start_command").field == "start_command"
    assert refused(validate.health_path, "/" + value).field == "health.path"


def test_publish_accepts_an_address_with_a_host_port_docker_picks():
    assert validate.publish("127.0.0.1::8083") == "127.0.0.1::8083"
    assert validate.publish("[::1]::80/udp") == "[::1]::80/udp"


def test_port_bindings_are_what_docker_expects_for_each_publish_form():
    specs = ["127.0.0.1:18080:8080", "18081:8081", "8082", "127.0.0.1::8083", "53:53/udp", "[::1]:8084:84"]
    assert validate.port_bindings(specs) == {
        "8080/tcp": [("127.0.0.1", 18080)],
        "8081/tcp": [18081],
        "8082/tcp": [None],
        "8083/tcp": [("127.0.0.1", 0)],
        "53/udp": [53],
        "84/tcp": [("::1", 8084)],
    }


@pytest.mark.parametrize("bad", ["", "http", "1:2:3:4", "99999:80", "0", "127.0.0.1:80", "80/sctp", ":80"])
def test_port_bindings_refuse_what_publish_refuses(bad):
    assert refused(validate.port_bindings, [bad]).field == "publish"


def test_restart_policies_map_to_docker():
    assert validate.restart_policy_for_docker("unless-stopped") == {"Name": "unless-stopped"}
    assert validate.restart_policy_for_docker("no") == {"Name": "no"}
    assert validate.restart_policy_for_docker("on-failure:5") == {
        "Name": "on-failure",
        "MaximumRetryCount": 5,
    }
    for bad in ("sometimes", "always:3", "on-failure:x", "on-failure:0"):
        assert refused(validate.restart_policy_for_docker, bad).field == "restart"
