#!/usr/bin/env bash
# Make sure a Docker Engine answers at /var/run/docker.sock: install Debian's docker.io when it is missing,
# start the engine when it is not running (root only), and wait until it answers.
# Environment: DOCKERD_LOG (default /var/log/mist-dockerd.log), DOCKERD_TIMEOUT (seconds, default 60),
# DOCKERD_FLAGS (extra dockerd arguments, split on spaces).
set -euo pipefail

SOCKET=/var/run/docker.sock
PIDFILE=/var/run/docker.pid
DOCKER=/usr/bin/docker
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/mist-dockerd.log}"
DOCKERD_TIMEOUT="${DOCKERD_TIMEOUT:-60}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

is_root() { [ "$(id -u)" -eq 0 ]; }

# The engine Mist uses is the one on this socket, whatever DOCKER_HOST or a docker context says.
answers() { "$DOCKER" --host "unix://$SOCKET" info >/dev/null 2>&1; }

if [ ! -x "$DOCKER" ] || ! command -v dockerd >/dev/null 2>&1; then
    if ! is_root; then
        echo "Docker is not installed (no $DOCKER or dockerd)." >&2
        echo "Install it as root: sudo apt-get install docker.io   (or: sudo make docker)" >&2
        exit 1
    fi
    "$here/ensure-system-packages.sh" docker.io
fi

if answers; then
    echo "docker: engine answers at $SOCKET ($("$DOCKER" --host "unix://$SOCKET" version --format '{{.Server.Version}}'))"
    exit 0
fi

if ! is_root; then
    if [ -S "$SOCKET" ]; then
        echo "Docker Engine at $SOCKET does not answer to $(id -un): either it is stopped, or you may not" >&2
        echo "use its socket. Start it as root (sudo make docker, or sudo systemctl start docker) and add" >&2
        echo "yourself to the docker group (sudo adduser $(id -un) docker, then log in again)." >&2
    else
        echo "No Docker Engine is running (no $SOCKET). Start it as root: sudo make docker" >&2
        echo "(or sudo systemctl start docker), then run this again." >&2
    fi
    exit 1
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    echo "docker: starting docker.service"
    systemctl start docker.service || true
fi

if ! answers; then
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        # An engine that is still starting (or another start in progress): wait for it, start no second one.
        echo "docker: dockerd is running but not answering yet; waiting"
    else
        echo "docker: starting dockerd (log: $DOCKERD_LOG)"
        mkdir -p "$(dirname "$DOCKERD_LOG")"
        flags="${DOCKERD_FLAGS:-}"
        # Docker's default address pools hold about 30 bridge networks; every Mist project gets one, and the
        # test suite makes many at once. Unless the admin chose pools, give the engine room for 256.
        if ! grep -qs '"default-address-pools"' /etc/docker/daemon.json \
            && [[ "$flags" != *default-address-pool* ]]; then
            flags="$flags --default-address-pool base=10.200.0.0/16,size=24"
        fi
        # shellcheck disable=SC2086  # the flags are a list on purpose
        setsid nohup dockerd $flags >>"$DOCKERD_LOG" 2>&1 </dev/null &
        started=$!
    fi
fi

deadline=$((SECONDS + DOCKERD_TIMEOUT))
until answers; do
    exited=""
    if [ -n "${started:-}" ] && ! kill -0 "$started" 2>/dev/null; then
        exited="dockerd exited before answering."
    fi
    if [ -n "$exited" ] || [ "$SECONDS" -ge "$deadline" ]; then
        echo "${exited:-Docker Engine did not answer at $SOCKET within ${DOCKERD_TIMEOUT} s.}" >&2
        if [ -f "$DOCKERD_LOG" ]; then
            echo "Last lines of $DOCKERD_LOG:" >&2
            tail -n 20 "$DOCKERD_LOG" >&2
        elif [ -d /run/systemd/system ]; then
            echo "See: journalctl -u docker.service" >&2
        fi
        exit 1
    fi
    sleep 1
done

echo "docker: engine answers at $SOCKET ($("$DOCKER" --host "unix://$SOCKET" version --format '{{.Server.Version}}'))"
