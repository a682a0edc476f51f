#!/usr/bin/env bash
# The official mariadb image's health check, in the two tests Mist uses: --connect (the server answers a
# client) and --innodb_initialized (InnoDB is up). It logs in as the healthcheck user the entrypoint made,
# whose credentials are in the data directory.
set -Eeuo pipefail

client=(mariadb --defaults-extra-file=/var/lib/mysql/.my-healthcheck.cnf --skip-column-names --batch)
[ $# -gt 0 ] || set -- --connect
for test in "$@"; do
    case "$test" in
    --connect)
        "${client[@]}" --protocol=tcp -h 127.0.0.1 -e 'SELECT 1' >/dev/null
        ;;
    --innodb_initialized)
        [ "$("${client[@]}" -e "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'InnoDB' \
            AND support IN ('YES', 'DEFAULT', 'ENABLED')")" = 1 ]
        ;;
    *)
        echo "healthcheck.sh: unknown test $test (this stand-in knows --connect and --innodb_initialized)" >&2
        exit 2
        ;;
    esac
done
