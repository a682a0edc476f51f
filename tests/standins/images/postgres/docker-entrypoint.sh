#!/usr/bin/env bash
# The entrypoint of the postgres:15 stand-in, after the official image's contract: POSTGRES_USER (default
# postgres), POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default: the
# user), PGDATA (default /var/lib/postgresql/data). The cluster is made on the first start only (an empty data
# directory), with password authentication for every network client; later starts keep what is there.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
    # As root: own the data and socket directories, then run the rest as the postgres user.
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != 'trust' ]; then
        echo 'error: database is uninitialized and superuser password is not specified.' >&2
        echo '       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser.' >&2
        exit 1
    fi
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    initdb --username="$user" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
        --auth-local=trust --auth-host="$auth" -D "$PGDATA" ${POSTGRES_INITDB_ARGS:-}
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    if [ "$db" != 'postgres' ]; then
        # A server on the socket only, for the first database, then stopped before the real start.
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
        psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres --set db="$db" \
            <<<'CREATE DATABASE :"db";'
        pg_ctl -D "$PGDATA" -m fast -w stop
    fi
    echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
