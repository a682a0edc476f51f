"""Runs the Traefik proxy container Mist supervises: ``traefik:v3`` publishing the HTTP and HTTPS addresses of
the settings, reading the file-provider directory Mist writes (read-only), with its dashboard and API off. It
sits on the ``mist`` network (containers deployed before projects had their own networks) and on every
project's network, and dials apps by container name there. Also tells whether it runs and answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from ..engine import LABEL_MANAGED, ContainerSpec, Engine
from ..errors import InvalidInput, MistError

TRAEFIK_IMAGE = "traefik:v3"
PROXY_CONTAINER = "mist-proxy"
MOUNT = "/etc/traefik/mist"  # where the container sees Mist's traefik directory
CHALLENGE_HOST = "host.docker.internal"  # the host, from inside the container (Docker's host-gateway)
ANSWER_TIMEOUT = 3.0  # seconds to wait for an entry point to accept a connection


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


async def connect_proxy(engine: Engine, networks: Iterable[str]) -> list[str]:
    """Attach the Traefik container, when it exists, to the ``networks`` it is not on yet, so it can dial the
    apps there. Returns those it was attached to. A container of that name that Mist did not make is left
    alone."""
    info = await engine.inspect(PROXY_CONTAINER)
    labels = ((info or {}).get("Config") or {}).get("Labels") or {}
    if info is None or labels.get(LABEL_MANAGED) != "true":
        return []
    on = set((info.get("NetworkSettings") or {}).get("Networks") or {})
    attached = []
    for network in networks:
        if network not in on and await engine.connect(PROXY_CONTAINER, network):
            attached.append(network)
    return attached


def dial_address(address: str) -> tuple[str, int]:
    """Where to connect to reach a listening address: ``0.0.0.0`` (or no host) is reached on 127.0.0.1,
    ``[::]`` on ::1."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise InvalidInput(f"{address!r} is not [host]:port")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


async def _answers(address: str) -> str | None:
    """None when something accepts a TCP connection at ``address``, else why not."""
    host, port = dial_address(address)
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"no answer within {ANSWER_TIMEOUT:g} s"
    except OSError as err:
        return err.strerror or str(err)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None


async def traefik_health(engine: Engine, http_address: str, https_address: str) -> tuple[bool, str]:
    """Whether Traefik serves: its container runs and both entry points accept connections; with what is
    wrong, and the command that fixes it, when not."""
    fix = "start it with `mist proxy install`"
    try:
        info = await engine.inspect(PROXY_CONTAINER)
    except MistError as err:  # the engine is down or refuses
        return False, f"cannot tell whether Traefik runs: {err.message}"
    if info is None:
        return False, f"Traefik is not running (there is no container {PROXY_CONTAINER}): {fix}"
    state = info.get("State") or {}
    if not state.get("Running"):
        return False, (
            f"Traefik is not running (container {PROXY_CONTAINER} is {state.get('Status') or 'stopped'}): {fix}"
        )
    for address in (http_address, https_address):
        why = await _answers(address)
        if why is not None:
            return False, (
                f"Traefik is not answering on {address} ({why}): see `docker logs {PROXY_CONTAINER}`, or run "
                "`mist proxy install` again"
            )
    return True, f"Traefik runs and answers on {http_address} and {https_address}"
