"""Runs the Traefik proxy container Mist supervises: ``traefik:v3`` on the ``mist`` network, publishing the
HTTP and HTTPS addresses of the settings, reading the file-provider directory Mist writes (read-only), with
its dashboard and API off."""

from __future__ import annotations

from pathlib import Path

from ..engine import LABEL_MANAGED, ContainerSpec
from ..errors import InvalidInput

TRAEFIK_IMAGE = "traefik:v3"
PROXY_CONTAINER = "mist-proxy"
MOUNT = "/etc/traefik/mist"  # where the container sees Mist's traefik directory
CHALLENGE_HOST = "host.docker.internal"  # the host, from inside the container (Docker's host-gateway)


def publish_spec(address: str, container_port: int) -> str:
    """A proxy address setting (``:80``, ``127.0.0.1:8080``) as a publish spec for ``container_port``."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise InvalidInput(f"{address!r} is not [host]:port")
    return f"{host}:{port}:{container_port}" if host else f"{port}:{container_port}"


def traefik_spec(*, traefik_dir: Path, http_address: str, https_address: str) -> ContainerSpec:
    return ContainerSpec(
        name=PROXY_CONTAINER,
        image=TRAEFIK_IMAGE,
        labels={LABEL_MANAGED: "true", "dev.mist.role": "proxy"},
        command=[
            f"--providers.file.directory={MOUNT}/dynamic",
            "--providers.file.watch=true",
            "--entrypoints.web.address=:80",
            "--entrypoints.websecure.address=:443",
            "--api.dashboard=false",
            "--api.insecure=false",
            "--log.level=INFO",
        ],
        publish=[publish_spec(http_address, 80), publish_spec(https_address, 443)],
        restart="unless-stopped",
        host_dirs={str(traefik_dir): (MOUNT, True)},
        extra_hosts={CHALLENGE_HOST: "host-gateway"},
    )
