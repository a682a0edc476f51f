#!/usr/bin/env bash
# Install the Debian packages Mist's tests use, only those that are missing (apt-get runs only then).
# Usage: ensure-system-packages.sh [PACKAGE...]   (no arguments: the test suite's list)
set -euo pipefail

DEFAULT_PACKAGES=(
    docker.io git busybox-static debootstrap caddy pebble tmux ca-certificates
    # git over ssh: the client Mist runs, and the sshd the tests start on a port of their own.
    openssh-client openssh-server
    # a security test compiles a shared object that a host process must never preload
    gcc libc6-dev
    # `make venv` builds the virtualenv with Debian's python3.
    python3 python3-venv
)

if [ "$#" -gt 0 ]; then
    packages=("$@")
else
    packages=("${DEFAULT_PACKAGES[@]}")
fi

missing=()
for pkg in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    if [ "$status" != "installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "system packages: all present (${packages[*]})"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "system packages missing: ${missing[*]}" >&2
    echo "install them as root: sudo apt-get install ${missing[*]}   (or: sudo make system-packages)" >&2
    exit 1
fi

echo "system packages: installing ${missing[*]}"

# Packages such as caddy and docker.io start a service when installed; the tests start their own (on ports
# they choose), so nothing may start behind their back. policy-rc.d is honoured by invoke-rc.d and
# deb-systemd-invoke; ours is removed afterwards, a pre-existing one is left alone.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
# needrestart (pulled in by docker.io) would otherwise restart running services, dockerd included.
export NEEDRESTART_SUSPEND=1
apt-get update -q
# Recommends stay on: docker.io needs apparmor where the kernel enables AppArmor (Debian's default).
apt-get install -y -q "${missing[@]}"
