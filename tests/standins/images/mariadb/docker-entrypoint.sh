#!/usr/bin/env bash
# The entrypoint of the mariadb:10.11 stand-in, after the official image's contract: MARIADB_ROOT_PASSWORD
# (or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD), MARIADB_ROOT_HOST (default '%'),
# MARIADB_DATABASE, MARIADB_USER and MARIADB_PASSWORD, each also as MYSQL_*. The data directory
# /var/lib/mysql is initialised on the first start only; the server listens on 3306 on every interface.
set -Eeuo pipefail

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

if [ "${1:0:1}" = '-' ]; then
    set -- mariadbd "$@"
fi

is_server() { [ "$1" = 'mariadbd' ] || [ "$1" = 'mysqld' ]; }

if is_server "$1" && [ "$(id -u)" = '0' ]; then
    mkdir -p "$DATADIR" /run/mysqld
    chown -R mysql:mysql "$DATADIR" /run/mysqld
    exec setpriv --reuid=mysql --regid=mysql --init-groups "$BASH_SOURCE" "$@"
fi

# MARIADB_X wins over MYSQL_X.
env_or_alias() {
    local name="MARIADB_$1" alias="MYSQL_$1"
    printf '%s' "${!name:-${!alias:-}}"
}

# A value inside a single-quoted SQL string literal.
sql_string() {
    local value=${1//\\/\\\\}
    value=${value//$'\n'/\\n}
    printf '%s' "${value//\'/\\\'}"
}

# A name inside backquotes.
sql_name() {
    printf '%s' "${1//\`/\`\`}"
}

initialise() {
    local root_password allow_empty random_root root_host database user password
    root_password=$(env_or_alias ROOT_PASSWORD)
    allow_empty=$(env_or_alias ALLOW_EMPTY_ROOT_PASSWORD)
    random_root=$(env_or_alias RANDOM_ROOT_PASSWORD)
    root_host=$(env_or_alias ROOT_HOST)
    root_host=${root_host:-%}
    database=$(env_or_alias DATABASE)
    user=$(env_or_alias USER)
    password=$(env_or_alias PASSWORD)
    if [ -z "$root_password" ] && [ -z "$allow_empty" ] && [ -z "$random_root" ]; then
        echo 'error: database is uninitialized and password option is not specified' >&2
        echo '       You need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ROOT_PASSWORD_HASH,' >&2
        echo '       MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD' >&2
        exit 1
    fi
    if [ -n "$random_root" ]; then
        root_password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
        echo "GENERATED ROOT PASSWORD: $root_password"
    fi
    if [ "$user" = 'root' ]; then
        echo 'error: MARIADB_USER="root" is the root user already: set MARIADB_ROOT_PASSWORD instead' >&2
        exit 1
    fi

    echo 'Initializing database files'
    mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
        --skip-test-db --skip-log-bin --default-time-zone=SYSTEM >/dev/null
    echo 'Database files initialized'

    mariadbd --skip-networking --socket="$SOCKET" --skip-log-bin --default-time-zone=SYSTEM \
        --wsrep_on=OFF --loose-innodb_buffer_pool_load_at_startup=0 &
    local pid=$!
    for _ in $(seq 60); do
        if mariadb --protocol=socket --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
            break
        fi
        sleep 0.5
    done

    local health_password sql
    health_password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    sql="SET @@SESSION.SQL_LOG_BIN=0;
DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');
SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$(sql_string "$root_password")');
CREATE USER 'healthcheck'@'127.0.0.1' IDENTIFIED BY '$health_password';
CREATE USER 'healthcheck'@'::1' IDENTIFIED BY '$health_password';
CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY '$health_password';
GRANT USAGE ON *.* TO 'healthcheck'@'127.0.0.1', 'healthcheck'@'::1', 'healthcheck'@'localhost';"
    if [ "$root_host" != 'localhost' ]; then
        sql+="
CREATE USER 'root'@'$(sql_string "$root_host")' IDENTIFIED BY '$(sql_string "$root_password")';
GRANT ALL ON *.* TO 'root'@'$(sql_string "$root_host")' WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@'$(sql_string "$root_host")' WITH GRANT OPTION;"
    fi
    if [ -n "$database" ]; then
        sql+="
CREATE DATABASE IF NOT EXISTS \`$(sql_name "$database")\`;"
    fi
    if [ -n "$user" ] && [ -n "$password" ]; then
        sql+="
CREATE USER '$(sql_string "$user")'@'%' IDENTIFIED BY '$(sql_string "$password")';"
        if [ -n "$database" ]; then
            sql+="
GRANT ALL ON \`$(sql_name "$database")\`.* TO '$(sql_string "$user")'@'%';"
        fi
    fi
    mariadb --protocol=socket --socket="$SOCKET" -uroot --binary-mode <<<"$sql"
    printf '[mariadb-client]\nport=3306\nsocket=%s\nuser=healthcheck\npassword=%s\n' \
        "$SOCKET" "$health_password" >"$DATADIR/.my-healthcheck.cnf"
    chmod 600 "$DATADIR/.my-healthcheck.cnf"

    kill "$pid"
    wait "$pid" || true
    echo 'MariaDB init process done. Ready for start up.'
}

if is_server "$1" && [ ! -d "$DATADIR/mysql" ]; then
    initialise
fi

exec "$@"
