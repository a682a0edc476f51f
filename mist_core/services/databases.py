"""One spec per database engine: the official image and its versions, the environment contract of that image,
where it keeps its data, its port, how Docker checks its health, the connection URL and the variables an app
linked to it gets, and the commands that dump, restore, check and open a shell on it.

Every command is an argument list. Secrets never sit in an argument list: a command that needs a password
reads it from its environment (``Command.env``: ``PGPASSWORD``, ``MYSQL_PWD``, ``REDISCLI_AUTH``), which the
caller gives to the process it starts (an exec in the database's container, or a container on its network)
as data. User-chosen names (database, user) are separate arguments, never part of a shell string.
"""

from __future__ import annotations

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

    def shell_command(self) -> list[str]:
        """An interactive client inside the database's own container, logged in as the app's user (it reads
        the credentials from the container's environment, so none is in the command)."""
        raise NotImplementedError


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

    def shell_command(self) -> list[str]:
        # The socket inside the container trusts local users (the official image's pg_hba.conf).
        return ["sh", "-c", 'exec psql -U "$POSTGRES_USER" -d "$POSTGRES_DB"']


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

    def shell_command(self) -> list[str]:
        p = self.env_prefix
        return ["sh", "-c", f'MYSQL_PWD="${p}_PASSWORD" exec {self.client} -u"${p}_USER" "${p}_DATABASE"']


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

    def shell_command(self) -> list[str]:
        return ["redis-cli"]


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

    def shell_command(self) -> list[str]:
        return [
            "sh",
            "-c",
            'exec mongosh -u "$MONGO_INITDB_ROOT_USERNAME" -p "$MONGO_INITDB_ROOT_PASSWORD" '
            '--authenticationDatabase admin "$MONGO_INITDB_DATABASE"',
        ]


ENGINES: dict[str, DatabaseEngine] = {e.name: e for e in (Postgres(), MySQL(), MariaDB(), Redis(), Mongo())}


def engine_spec(name: str) -> DatabaseEngine:
    """The spec of engine ``name``, refused with the list of engines when there is none."""
    try:
        return ENGINES[name]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"there is no database engine {name!r}: use one of {', '.join(ENGINES)}", field="engine"
        ) from None
