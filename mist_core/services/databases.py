"""One spec per database engine: the official image and its versions, the environment contract of that image,
where it keeps its data, its port, how Docker checks its health, the connection URL and the variables an app
linked to it gets, and the commands that dump, restore, check and open a shell on it.

Every command is an argument list. Secrets never sit in an argument list: a command that needs a password
reads it from its environment (``Command.env``: ``PGPASSWORD``, ``MYSQL_PWD``, ``REDISCLI_AUTH``), which the
caller gives to the process it starts (an exec in the database's container, or a container on its network)
as data. User-chosen names (database, user) are separate arguments, never part of a shell string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal
from urllib.parse import quote

from ..errors import InvalidInput

EngineName = Literal["postgres", "mysql", "mariadb", "redis", "mongo"]
Persistence = Literal["rdb", "aof", "none"]


@dataclass(frozen=True)
class Credentials:
    """Who an app is and what it opens: ``user``/``password`` on ``database``; ``admin_password`` is the
    superuser's where the engine has a separate one (MySQL's and MariaDB's root)."""

    user: str
    password: str = field(repr=False)
    database: str
    admin_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Command:
    """A command to run: ``argv`` (no shell), and ``env``, the secrets it reads, for its environment only."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict, repr=False)


class DatabaseEngine:
    """What Mist knows of one engine. Subclasses fill the class attributes and the methods."""

    name: ClassVar[str]
    title: ClassVar[str]
    repository: ClassVar[str]  # the official image, without the tag
    default_version: ClassVar[str]
    versions: ClassVar[tuple[str, ...]]  # each a major line: a change between two is a major upgrade
    port: ClassVar[int]
    data_dir: ClassVar[str]
    variable: ClassVar[str]  # the default prefix of the linked variables: DATABASE_URL, REDIS_URL...
    reserved: ClassVar[frozenset[str]] = frozenset()  # names the engine keeps for itself
    # Whether the test suite runs this engine against a real server (a stand-in built from Debian's packages).
    tested_here: ClassVar[bool] = True
    # Restoring replaces files of the data directory: the server must be stopped (Redis).
    restore_needs_stop: ClassVar[bool] = False

    def image(self, version: str) -> str:
        return f"{self.repository}:{version}"

    def check_version(self, version: str | None) -> str:
        """``version`` (default: the engine's default), refused with the allowed ones when it is not one."""
        if version is None or version == "":
            return self.default_version
        if version not in self.versions:
            raise InvalidInput(
                f"{self.title} version {version!r} is not one Mist offers: use one of {', '.join(self.versions)}",
                field="version",
            )
        return version

    def credentials_for(self, name: str, password: str, admin_password: str | None) -> Credentials:
        """The user and database a new database of this ``name`` gets."""
        identifier = name.replace("-", "_")
        return Credentials(identifier, password, identifier, admin_password)

    def needs_admin_password(self) -> bool:
        return False

    def container_env(self, creds: Credentials) -> dict[str, str]:
        """The environment the official image reads on its first start."""
        raise NotImplementedError

    def command(self, creds: Credentials, persistence: Persistence | None) -> list[str] | None:
        """The container's command (None: the image's own)."""
        return None

    def health_command(self, creds: Credentials) -> list[str]:
        """Docker's HEALTHCHECK test (``["CMD", ...]``); it never carries a secret (Docker shows it)."""
        raise NotImplementedError

    def scheme(self) -> str:
        raise NotImplementedError

    def url(self, creds: Credentials, host: str, port: int | None = None) -> str:
        user = quote(creds.user, safe="")
        password = quote(creds.password, safe="")
        return (
            f"{self.scheme()}://{user}:{password}@{host}:{port or self.port}/{quote(creds.database, safe='')}"
        )

    def link_variables(self, creds: Credentials, host: str, prefix: str | None = None) -> dict[str, str]:
        """What a linked app gets: ``<PREFIX>_URL`` and the parts of it (all of them stored as secrets)."""
        p = prefix or self.variable
        return {
            f"{p}_URL": self.url(creds, host),
            f"{p}_HOST": host,
            f"{p}_PORT": str(self.port),
            f"{p}_USER": creds.user,
            f"{p}_PASSWORD": creds.password,
            f"{p}_NAME": creds.database,
        }

    def dump_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        """Writes a dump of the database to standard output."""
        raise NotImplementedError

    def restore_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        """Reads a dump (``dump_command``'s output) from standard input into the database."""
        raise NotImplementedError

    def check_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        """Prints what the database holds (row counts of every table, key count...), to compare after a
        restore."""
        raise NotImplementedError

    def shell_command(self, args: Sequence[str] = ()) -> list[str]:
        """An interactive client inside the database's own container, logged in as the app's user (it reads
        the credentials from the container's environment, so none is in the command); ``args`` go to the
        client after its own, as separate arguments."""
        raise NotImplementedError

    # ------------------------------------------------------------------ users (see "Users" below)

    # Whether Mist manages this engine's users (``mist db users``); the reason when it does not.
    users_refusal: ClassVar[str | None] = None

    def users_command(self, creds: Credentials) -> Command:
        """Prints the users of the server, one ``name|kind`` a line (kind: ``superuser`` or ``user``)."""
        raise NotImplementedError

    def create_user_command(self, creds: Credentials, user: str, password: str) -> Command:
        """Makes ``user`` (checked by ``check_user_name``) with ``password`` (checked by ``check_password``),
        with the rights on the database that its apps' user has on its rows."""
        raise NotImplementedError

    def drop_user_command(self, creds: Credentials, user: str) -> Command:
        """Removes ``user``; what it owns goes to the database's own user."""
        raise NotImplementedError

    def reserved_users(self, creds: Credentials) -> frozenset[str]:
        """Users Mist never makes or removes: the engine's own, and the database's (its linked apps use it)."""
        return self.reserved | {creds.user}

    # ------------------------------------------------------------------ versions

    def major_line(self, version: str) -> str | None:
        """The major line (one of ``versions``) ``version`` belongs to: ``15.6`` is PostgreSQL's 15, ``10.11.9``
        MariaDB's 10.11; None for a version of no line Mist offers."""
        for line in sorted(self.versions, key=len, reverse=True):
            if version == line or version.startswith(line + "."):
                return line
        return None

    def check_upgrade(self, current: str, version: str) -> str:
        """``version`` checked as a minor upgrade of a database running ``current``: a release of the same
        major line; a change of line is refused with the steps to take instead."""
        version = version.strip() if isinstance(version, str) else version
        if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
            raise InvalidInput(
                f"{version!r} is not a {self.title} version: give its number, such as {self.default_version}"
                f" or a minor release of it ({self.default_version}.1)",
                field="version",
            )
        line, new_line = self.major_line(current), self.major_line(version)
        if new_line is None:
            raise InvalidInput(
                f"{self.title} {version} is of no version line Mist offers: use one of {', '.join(self.versions)}"
                " or a minor release of one",
                field="version",
            )
        if new_line != line:
            raise InvalidInput(
                f"{self.title} {current} to {version} is a major upgrade, which needs the data dumped and "
                f"restored: create a new database with --version {new_line}, copy the data into it with the "
                f"engine's own tools (a dump of this one, restored there), link the apps to it, then delete "
                "this one",
                field="version",
            )
        if version == current:
            raise InvalidInput(f"the database runs {self.title} {current} already", field="version")
        return version


_VERSION_RE = re.compile(r"[0-9]{1,4}(\.[0-9]{1,4}){0,2}")

# ---------------------------------------------------------------------------------------------- users

# A user name Mist makes or removes: the same strict pattern on every engine (and quoted as an identifier as
# well, whatever the pattern already rules out).
USER_RE = re.compile(r"[a-z_][a-z0-9_]{0,31}")
PASSWORD_MIN = 12
PASSWORD_MAX = 128


def check_user_name(engine: DatabaseEngine, creds: Credentials, user: str) -> str:
    """``user`` when it is a name Mist may make or remove on this database, else a clear refusal."""
    if not isinstance(user, str) or not USER_RE.fullmatch(user):
        raise InvalidInput(
            f"user name {user!r} is not allowed: use lowercase letters, digits and '_', starting with a "
            "letter or '_', at most 32 characters",
            field="user",
        )
    if user == creds.user:
        raise InvalidInput(
            f"{user!r} is the database's own user (its linked apps log in with it): Mist neither makes it "
            "again nor removes it",
            field="user",
        )
    if user in engine.reserved_users(creds) or user.startswith("pg_"):
        raise InvalidInput(f"{engine.title} keeps the user name {user!r} for itself", field="user")
    return user


def check_password(password: str) -> str:
    """A password given for a new user: printable ASCII (the same bytes on every client and every engine's
    hashing), long enough to resist guessing."""
    if not isinstance(password, str) or not (PASSWORD_MIN <= len(password) <= PASSWORD_MAX):
        raise InvalidInput(
            f"the password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long", field="password"
        )
    if not all(" " <= ch <= "~" for ch in password):
        raise InvalidInput(
            "the password may hold printable ASCII characters only (letters, digits, punctuation, spaces)",
            field="password",
        )
    return password


def _quote_identifier(name: str, quote_char: str) -> str:
    return quote_char + name.replace(quote_char, quote_char * 2) + quote_char


def scram_sha256(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of ``password`` (RFC 5802/7677, as ``CREATE ROLE ... PASSWORD``
    takes it ready made): the server stores it as it is, and the password itself never reaches it."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


_SCRAM_RE = re.compile(r"SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+")


def _sql_on_stdin(client: list[str]) -> list[str]:
    """The client run with the SQL of ``MIST_SQL`` (its environment) on its standard input: the SQL, which
    may carry a password's hash, is in no argument list; the client's own arguments follow as data."""
    return ["sh", "-c", 'printf "%s\\n" "$MIST_SQL" | "$@"', "sh", *client]


class Postgres(DatabaseEngine):
    name = "postgres"
    title = "PostgreSQL"
    repository = "postgres"
    default_version = "15"
    versions = ("13", "14", "15", "16", "17")
    port = 5432
    data_dir = "/var/lib/postgresql/data"
    variable = "DATABASE"
    reserved = frozenset({"template0", "template1"})

    def container_env(self, creds: Credentials) -> dict[str, str]:
        return {
            "POSTGRES_USER": creds.user,
            "POSTGRES_PASSWORD": creds.password,
            "POSTGRES_DB": creds.database,
            "PGDATA": self.data_dir,
        }

    def health_command(self, creds: Credentials) -> list[str]:
        # Over TCP: the server of the first start listens on its socket only, until the cluster is made.
        return [
            "CMD",
            "pg_isready",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            creds.user,
            "-d",
            creds.database,
        ]

    def scheme(self) -> str:
        return "postgresql"

    def _client(self, tool: str, creds: Credentials, host: str) -> list[str]:
        return [tool, "-h", host, "-p", str(self.port), "-U", creds.user, "-d", creds.database]

    def dump_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        return Command([*self._client("pg_dump", creds, host), "-Fc"], {"PGPASSWORD": creds.password})

    def restore_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        argv = [
            *self._client("pg_restore", creds, host),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--exit-on-error",
        ]
        return Command(argv, {"PGPASSWORD": creds.password})

    def check_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        # Every table of the user's schemas with its exact row count, one "schema.table|count" a line.
        sql = (
            "SELECT table_schema || '.' || table_name, (xpath('/row/c/text()', query_to_xml(format("
            "'SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text "
            "FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
        argv = [*self._client("psql", creds, host), "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]
        return Command(argv, {"PGPASSWORD": creds.password})

    def shell_command(self, args: Sequence[str] = ()) -> list[str]:
        # The socket inside the container trusts local users (the official image's pg_hba.conf).
        return ["sh", "-c", 'exec psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" "$@"', "psql", *args]

    def _sql(self, creds: Credentials, sql: str, *, tuples: bool = False) -> Command:
        client = [*self._client("psql", creds, "127.0.0.1"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        if tuples:
            client += ["-At", "-F", "|"]
        return Command(_sql_on_stdin(client), {"PGPASSWORD": creds.password, "MIST_SQL": sql})

    def users_command(self, creds: Credentials) -> Command:
        sql = (
            "SELECT rolname, CASE WHEN rolsuper THEN 'superuser' ELSE 'user' END FROM pg_roles "
            "WHERE rolcanlogin AND rolname !~ '^pg_' ORDER BY 1;"
        )
        return self._sql(creds, sql, tuples=True)

    def reserved_users(self, creds: Credentials) -> frozenset[str]:
        return super().reserved_users(creds) | {"postgres", "public"}

    def create_user_command(self, creds: Credentials, user: str, password: str) -> Command:
        verifier = scram_sha256(check_password(password))
        assert _SCRAM_RE.fullmatch(verifier) and USER_RE.fullmatch(user)
        u, owner, db = (_quote_identifier(n, '"') for n in (user, creds.user, creds.database))
        rows = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"
        sql = "\n".join(
            [
                "BEGIN;",
                f"CREATE ROLE {u} LOGIN PASSWORD '{verifier}';",
                f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {u};",
                f"GRANT USAGE, CREATE ON SCHEMA public TO {u};",
                f"GRANT {rows} ON ALL TABLES IN SCHEMA public TO {u};",
                f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {u};",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT {rows} ON TABLES TO {u};",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
                f"GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {u};",
                "COMMIT;",
            ]
        )
        return self._sql(creds, sql)

    def drop_user_command(self, creds: Credentials, user: str) -> Command:
        assert USER_RE.fullmatch(user)
        u, owner = _quote_identifier(user, '"'), _quote_identifier(creds.user, '"')
        sql = f"BEGIN;\nREASSIGN OWNED BY {u} TO {owner};\nDROP OWNED BY {u};\nDROP ROLE {u};\nCOMMIT;"
        return self._sql(creds, sql)


class MySQL(DatabaseEngine):
    name = "mysql"
    title = "MySQL"
    repository = "mysql"
    default_version = "8.0"
    versions = ("8.0", "8.4")
    port = 3306
    data_dir = "/var/lib/mysql"
    variable = "DATABASE"
    reserved = frozenset({"root", "mysql", "sys", "information_schema", "performance_schema"})
    tested_here = False  # Debian has no MySQL server
    env_prefix: ClassVar[str] = "MYSQL"
    client: ClassVar[str] = "mysql"
    dump_tool: ClassVar[str] = "mysqldump"

    def needs_admin_password(self) -> bool:
        return True

    def container_env(self, creds: Credentials) -> dict[str, str]:
        p = self.env_prefix
        return {
            f"{p}_ROOT_PASSWORD": creds.admin_password or "",
            f"{p}_USER": creds.user,
            f"{p}_PASSWORD": creds.password,
            f"{p}_DATABASE": creds.database,
        }

    def health_command(self, creds: Credentials) -> list[str]:
        # mysqladmin ping succeeds when the server answers, even if it refuses the login: no password needed.
        return ["CMD", "mysqladmin", "ping", "-h", "127.0.0.1", "--silent"]

    def scheme(self) -> str:
        return "mysql"

    def _root(self, tool: str, creds: Credentials, host: str) -> list[str]:
        return [tool, "-h", host, "-P", str(self.port), "-u", "root"]

    def dump_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        argv = [
            *self._root(self.dump_tool, creds, host),
            "--single-transaction",
            "--routines",
            "--events",
            "--triggers",
            # The database as an argument, not --databases: the dump then names no database (no CREATE
            # DATABASE, no USE), so it restores into whichever database the restore names.
            creds.database,
        ]
        return Command(argv, {"MYSQL_PWD": creds.admin_password or ""})

    def restore_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        # The dump drops and makes its tables in the database named here.
        argv = [*self._root(self.client, creds, host), "-D", creds.database]
        return Command(argv, {"MYSQL_PWD": creds.admin_password or ""})

    def check_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        # Exact row counts (information_schema's are estimates for InnoDB), one "table<TAB>count" a line.
        sql = (
            "SET @q = (SELECT COALESCE(GROUP_CONCAT(CONCAT('SELECT ', QUOTE(table_name), ', COUNT(*) FROM `', "
            "REPLACE(table_name, '`', '``'), '`') ORDER BY table_name SEPARATOR ' UNION ALL '), "
            "'SELECT NULL, 0 FROM DUAL WHERE FALSE') FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'); "
            "PREPARE counts FROM @q; EXECUTE counts; DEALLOCATE PREPARE counts;"
        )
        argv = [*self._root(self.client, creds, host), "-N", "-B", "-D", creds.database, "-e", sql]
        return Command(argv, {"MYSQL_PWD": creds.admin_password or ""})

    def shell_command(self, args: Sequence[str] = ()) -> list[str]:
        p = self.env_prefix
        script = f'MYSQL_PWD="${p}_PASSWORD" exec {self.client} -u"${p}_USER" "${p}_DATABASE" "$@"'
        return ["sh", "-c", script, self.client, *args]

    def _sql(self, creds: Credentials, sql: str) -> Command:
        client = [*self._root(self.client, creds, "127.0.0.1"), "-N", "-B"]
        return Command(_sql_on_stdin(client), {"MYSQL_PWD": creds.admin_password or "", "MIST_SQL": sql})

    def reserved_users(self, creds: Credentials) -> frozenset[str]:
        return super().reserved_users(creds) | {"healthcheck", "public", "mariadb_sys"}

    def users_command(self, creds: Credentials) -> Command:
        sql = (
            "SELECT DISTINCT CONCAT(User, '|', IF(User = 'root', 'superuser', 'user')) FROM mysql.user "
            "WHERE User NOT IN ('', 'mariadb.sys', 'mysql', 'healthcheck', 'PUBLIC', 'mysql.sys', "
            "'mysql.session', 'mysql.infoschema') ORDER BY 1;"
        )
        return self._sql(creds, sql)

    def create_user_command(self, creds: Credentials, user: str, password: str) -> Command:
        assert USER_RE.fullmatch(user)
        # The password travels base64-encoded (a safe alphabet) and the server quotes it as a literal itself.
        encoded = base64.b64encode(check_password(password).encode()).decode()
        u, db = _quote_identifier(user, "`"), _quote_identifier(creds.database, "`")
        sql = "\n".join(
            [
                f"SET @mist_password = CONVERT(FROM_BASE64('{encoded}') USING utf8mb4);",
                f"SET @mist_sql = CONCAT('CREATE USER {u}@`%` IDENTIFIED BY ', QUOTE(@mist_password));",
                "PREPARE mist_user FROM @mist_sql;",
                "EXECUTE mist_user;",
                "DEALLOCATE PREPARE mist_user;",
                "SET @mist_password = NULL, @mist_sql = NULL;",
                f"GRANT ALL PRIVILEGES ON {db}.* TO {u}@`%`;",
            ]
        )
        return self._sql(creds, sql)

    def drop_user_command(self, creds: Credentials, user: str) -> Command:
        assert USER_RE.fullmatch(user)
        sql = "\n".join(
            [
                "SET @mist_sql = (SELECT CONCAT('DROP USER ', GROUP_CONCAT(CONCAT(QUOTE(User), '@', QUOTE(Host)))) "
                f"FROM mysql.user WHERE User = '{user}');",
                "PREPARE mist_user FROM @mist_sql;",
                "EXECUTE mist_user;",
                "DEALLOCATE PREPARE mist_user;",
            ]
        )
        return self._sql(creds, sql)


class MariaDB(MySQL):
    name = "mariadb"
    title = "MariaDB"
    repository = "mariadb"
    default_version = "10.11"
    versions = ("10.11", "11.4")
    tested_here = True
    env_prefix = "MARIADB"
    # MariaDB 11 images have only the mariadb-* names.
    client = "mariadb"
    dump_tool = "mariadb-dump"

    def health_command(self, creds: Credentials) -> list[str]:
        return ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]


class Redis(DatabaseEngine):
    name = "redis"
    title = "Redis"
    repository = "redis"
    default_version = "7"
    versions = ("7",)
    port = 6379
    data_dir = "/data"
    variable = "REDIS"
    restore_needs_stop = True

    def credentials_for(self, name: str, password: str, admin_password: str | None) -> Credentials:
        return Credentials("default", password, "0")

    def container_env(self, creds: Credentials) -> dict[str, str]:
        # redis-cli inside the container logs in by itself (health check, shell).
        return {"REDISCLI_AUTH": creds.password}

    def command(self, creds: Credentials, persistence: Persistence | None) -> list[str] | None:
        if not creds.password:
            raise InvalidInput("a Redis database always has a password", field="password")
        argv = ["redis-server", "--requirepass", creds.password]
        match persistence or "rdb":
            case "rdb":
                argv += ["--appendonly", "no", "--save", "3600 1 300 100 60 10000"]
            case "aof":
                argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
            case "none":
                argv += ["--appendonly", "no", "--save", ""]
        return argv

    def health_command(self, creds: Credentials) -> list[str]:
        return ["CMD", "redis-cli", "ping"]

    def scheme(self) -> str:
        return "redis"

    def url(self, creds: Credentials, host: str, port: int | None = None) -> str:
        return f"redis://{creds.user}:{quote(creds.password, safe='')}@{host}:{port or self.port}/{creds.database}"

    def dump_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        return Command(
            ["redis-cli", "-h", host, "-p", str(self.port), "--rdb", "-"], {"REDISCLI_AUTH": creds.password}
        )

    def restore_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        # With the server stopped and its volume at /data: the dump becomes the file it loads on start (with
        # AOF on, Redis loads the AOF instead: restore with the persistence set to rdb, then change it back).
        return Command(["sh", "-c", "cat > /data/dump.rdb.new && mv /data/dump.rdb.new /data/dump.rdb"])

    def check_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        return Command(
            ["redis-cli", "-h", host, "-p", str(self.port), "dbsize"], {"REDISCLI_AUTH": creds.password}
        )

    users_refusal = (
        "a Redis database has one user, default, whose password its linked apps get: Mist does not manage "
        "Redis ACL users"
    )

    def shell_command(self, args: Sequence[str] = ()) -> list[str]:
        # REDISCLI_AUTH is in the container's environment: redis-cli logs in with it.
        return ["redis-cli", *args]


class Mongo(DatabaseEngine):
    name = "mongo"
    title = "MongoDB"
    repository = "mongo"
    default_version = "7.0"
    versions = ("6.0", "7.0")
    port = 27017
    data_dir = "/data/db"
    variable = "MONGO"
    reserved = frozenset({"admin", "local", "config"})
    tested_here = False  # Debian has no MongoDB

    def container_env(self, creds: Credentials) -> dict[str, str]:
        return {
            "MONGO_INITDB_ROOT_USERNAME": creds.user,
            "MONGO_INITDB_ROOT_PASSWORD": creds.password,
            "MONGO_INITDB_DATABASE": creds.database,
        }

    def health_command(self, creds: Credentials) -> list[str]:
        return ["CMD", "mongosh", "--quiet", "--eval", "db.adminCommand('ping').ok"]

    def scheme(self) -> str:
        return "mongodb"

    def url(self, creds: Credentials, host: str, port: int | None = None) -> str:
        return super().url(creds, host, port) + "?authSource=admin"

    def _uri_command(self, tool: str, *args: str) -> list[str]:
        # The Mongo tools take a password only in their arguments or a config file: the URI comes from the
        # environment into the tool's arguments inside the container, never into a request or a log.
        return ["sh", "-c", f'exec {tool} --uri="$MIST_MONGO_URI" "$@"', tool, *args]

    def dump_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        return Command(self._uri_command("mongodump", "--archive"), {"MIST_MONGO_URI": self.url(creds, host)})

    def restore_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        argv = self._uri_command("mongorestore", "--archive", "--drop")
        return Command(argv, {"MIST_MONGO_URI": self.url(creds, host)})

    def check_command(self, creds: Credentials, host: str = "127.0.0.1") -> Command:
        script = "db.getCollectionNames().sort().forEach(c => print(c + '\\t' + db.getCollection(c).countDocuments()))"
        argv = ["sh", "-c", 'exec mongosh "$MIST_MONGO_URI" --quiet --eval "$1"', "mongosh", script]
        return Command(argv, {"MIST_MONGO_URI": self.url(creds, host)})

    users_refusal = (
        "Mist does not manage MongoDB users: open mist db shell and use db.createUser() and db.dropUser()"
    )

    def shell_command(self, args: Sequence[str] = ()) -> list[str]:
        # mongosh takes a password only in its arguments: the shell connects from a script that reads it from
        # the container's environment instead.
        connect = (
            "db = connect('mongodb://' + encodeURIComponent(process.env.MONGO_INITDB_ROOT_USERNAME) + ':' + "
            "encodeURIComponent(process.env.MONGO_INITDB_ROOT_PASSWORD) + '@127.0.0.1:27017/' + "
            "(process.env.MONGO_INITDB_DATABASE || 'test') + '?authSource=admin')"
        )
        return ["mongosh", "--nodb", "--quiet", "--shell", "--eval", connect, *args]


ENGINES: dict[str, DatabaseEngine] = {e.name: e for e in (Postgres(), MySQL(), MariaDB(), Redis(), Mongo())}


def engine_spec(name: str) -> DatabaseEngine:
    """The spec of engine ``name``, refused with the list of engines when there is none."""
    try:
        return ENGINES[name]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"there is no database engine {name!r}: use one of {', '.join(ENGINES)}", field="engine"
        ) from None
