"""The per-engine database specs: versions, the environment each official image reads, URLs, link variables,
and commands that carry no secret in their arguments."""

from __future__ import annotations

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
