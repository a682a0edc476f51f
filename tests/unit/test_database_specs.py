"""The per-engine database specs: versions, the environment each official image reads, URLs, link variables,
and commands that carry no secret in their arguments."""

from __future__ import annotations

import base64

import pytest

from mist_core import validate
from mist_core.errors import InvalidInput
from mist_core.models import DatabaseSpec
from mist_core.services import ENGINES, Credentials, engine_spec

CREDS = Credentials(user="main", password="pa ss/wo@rd", database="main", admin_password="r00t-secret")


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_no_command_of_an_engine_carries_a_password_in_its_arguments(name: str) -> None:
    engine = ENGINES[name]
    for make in (engine.dump_command, engine.restore_command, engine.check_command):
        command = make(CREDS, "mist-db-x-main")
        assert all(isinstance(arg, str) for arg in command.argv)
        assert not any(CREDS.password in arg or "r00t-secret" in arg for arg in command.argv), command.argv
    assert not any(CREDS.password in arg for arg in engine.health_command(CREDS))
    assert not any(CREDS.password in arg for arg in engine.shell_command())


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("postgres", "postgresql://main:pa%20ss%2Fwo%40rd@h:5432/main"),
        ("mysql", "mysql://main:pa%20ss%2Fwo%40rd@h:3306/main"),
        ("mariadb", "mysql://main:pa%20ss%2Fwo%40rd@h:3306/main"),
        ("redis", "redis://main:pa%20ss%2Fwo%40rd@h:6379/main"),
        ("mongo", "mongodb://main:pa%20ss%2Fwo%40rd@h:27017/main?authSource=admin"),
    ],
)
def test_the_url_of_each_engine_quotes_the_password(name: str, url: str) -> None:
    assert ENGINES[name].url(CREDS, "h") == url


def test_link_variables_use_the_engine_prefix_or_the_one_given() -> None:
    assert sorted(engine_spec("postgres").link_variables(CREDS, "h")) == [
        "DATABASE_HOST", "DATABASE_NAME", "DATABASE_PASSWORD", "DATABASE_PORT", "DATABASE_URL", "DATABASE_USER",
    ]  # fmt: skip
    assert "REDIS_URL" in engine_spec("redis").link_variables(CREDS, "h")
    assert "MONGO_URL" in engine_spec("mongo").link_variables(CREDS, "h")
    assert engine_spec("redis").link_variables(CREDS, "h", "CACHE")["CACHE_PORT"] == "6379"


def test_each_image_reads_its_documented_environment() -> None:
    assert engine_spec("postgres").container_env(CREDS)["POSTGRES_PASSWORD"] == CREDS.password
    assert engine_spec("mariadb").container_env(CREDS)["MARIADB_ROOT_PASSWORD"] == "r00t-secret"
    assert engine_spec("mysql").container_env(CREDS)["MYSQL_DATABASE"] == "main"
    assert engine_spec("mongo").container_env(CREDS)["MONGO_INITDB_ROOT_USERNAME"] == "main"
    redis = engine_spec("redis")
    assert redis.command(CREDS, "aof") == [
        "redis-server", "--requirepass", CREDS.password, "--appendonly", "yes", "--appendfsync", "everysec",
    ]  # fmt: skip
    assert redis.command(CREDS, "none")[-4:] == ["--appendonly", "no", "--save", ""]
    with pytest.raises(InvalidInput, match="always has a password"):
        redis.command(Credentials("default", "", "0"), "rdb")


def test_versions_default_and_refuse_with_the_allowed_ones() -> None:
    assert validate.database_spec(DatabaseSpec(engine="postgres"), "db").version == "15"
    assert validate.database_spec(DatabaseSpec(engine="redis"), "db").persistence == "rdb"
    with pytest.raises(InvalidInput, match="use one of 6.0, 7.0"):
        validate.database_spec(DatabaseSpec(engine="mongo", version="5.0"), "db")
    with pytest.raises(InvalidInput, match="no database engine 'oracle'"):
        engine_spec("oracle")


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [(None, None), ("", None), ("CACHE", "CACHE"), ("ORDERS_DB", "ORDERS_DB")],
)
def test_link_prefixes_that_make_variable_names(prefix: str | None, expected: str | None) -> None:
    assert validate.link_prefix(prefix) == expected


@pytest.mark.parametrize(
    ("prefix", "words"),
    [("cache", "lowercase"), ("CACHE_URL", "part before _URL"), ("CACHE_", "part before _URL"),
     ("9LIVES", "not valid"), ("A-B", "not valid"), ("X" * 65, "not valid")],
)  # fmt: skip
def test_link_prefixes_that_do_not_are_refused_saying_why(prefix: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        validate.link_prefix(prefix)


# ---------------------------------------------------------------------------------------------- after creation


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_the_shell_takes_extra_arguments_as_data_after_the_clients_own(name: str) -> None:
    argv = ENGINES[name].shell_command(["-c", "$(reboot); 'x'"])
    assert argv[-2:] == ["-c", "$(reboot); 'x'"]
    assert not any("reboot" in arg for arg in argv[:-2])


@pytest.mark.parametrize(
    ("name", "current", "version", "words"),
    [
        ("postgres", "15", "16", "major upgrade"),
        ("postgres", "15.99", "14.2", "major upgrade"),
        ("postgres", "15", "150", "no version line"),
        ("mariadb", "10.11", "11.4.2", "major upgrade"),
        ("mariadb", "10.11", "10.1", "no version line"),
        ("redis", "7", "7", "already"),
        ("redis", "7", "7.2-alpine", "is not a Redis version"),
        ("postgres", "15", "15 && rm", "is not a PostgreSQL version"),
    ],
)
def test_an_upgrade_to_another_major_line_or_no_version_is_refused(
    name: str, current: str, version: str, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words):
        ENGINES[name].check_upgrade(current, version)


@pytest.mark.parametrize(
    ("name", "current", "version"),
    [
        ("postgres", "15", "15.6"),
        ("postgres", "15.6", "15.99"),
        ("mariadb", "10.11", "10.11.9"),
        ("redis", "7", "7.2.4"),
    ],
)
def test_a_minor_release_of_the_same_line_is_an_upgrade(name: str, current: str, version: str) -> None:
    assert ENGINES[name].check_upgrade(current, version) == version


def test_the_scram_verifier_is_the_one_postgres_computes() -> None:
    # RFC 7677's example password and salt; a login with the verifier is checked on a real server elsewhere.
    from mist_core.services.databases import scram_sha256

    verifier = scram_sha256("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    assert verifier == (
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    )


@pytest.mark.parametrize("user", ['x"y', "x'y", "a b", "A", "1a", "", "x" * 33, "é", "x`y", "x;y"])
def test_a_user_name_outside_the_strict_pattern_is_refused(user: str) -> None:
    from mist_core.services.databases import check_user_name

    with pytest.raises(InvalidInput, match="is not allowed"):
        check_user_name(ENGINES["postgres"], CREDS, user)


@pytest.mark.parametrize("name", ["postgres", "mysql", "mariadb"])
def test_the_user_commands_carry_the_new_password_in_no_argument(name: str) -> None:
    engine = ENGINES[name]
    new = "n3w-pass-word 'quoted'"
    command = engine.create_user_command(CREDS, "reporter", new)
    assert not any(new in arg or "SCRAM" in arg or "FROM_BASE64" in arg for arg in command.argv), command.argv
    assert new not in command.env["MIST_SQL"]  # a hash (PostgreSQL) or base64 the server decodes (MySQL)
    for made in (command, engine.drop_user_command(CREDS, "reporter"), engine.users_command(CREDS)):
        assert not any(CREDS.password in arg or "r00t-secret" in arg for arg in made.argv), made.argv
