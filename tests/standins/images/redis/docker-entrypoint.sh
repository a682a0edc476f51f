#!/usr/bin/env bash
# The entrypoint of the redis:7 stand-in, after the official image's: arguments that start with '-' (or a
# .conf file) go to redis-server; redis-server runs as the redis user in /data; protected mode is off unless
# the arguments say otherwise (the container's network is what protects it, and --requirepass).
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups "$BASH_SOURCE" "$@"
fi

if [ "$1" = 'redis-server' ]; then
    case " $* " in
    *' --protected-mode '*) ;;
    *) set -- "$@" --protected-mode no ;;
    esac
fi

umask 0077
exec "$@"
