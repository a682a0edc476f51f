"""Mist's only door to the Docker Engine: run, stop and remove app containers, read their logs, events and
stats, and prune the images Mist built.

Every call is one HTTP request on the event loop (``transport``); logs and events are streamed answers
decoded as they arrive (``streams``). Mist only ever changes containers, images and networks that carry its
``dev.mist.managed`` label, so an operator's own containers on the same engine are safe from it.

Each project has its own bridge network and its own volumes, named from the project's uid (``project_network``,
``project_volume``) and labelled with it, so one project's apps can neither reach nor mount another's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from ..errors import Conflict, EngineUnavailable, InvalidInput, MistError, NotFound
from ..models import ContainerInfo, ContainerStats, LogLine, Volume
from . import stats as stats_math
from .streams import JsonLinesDecoder, LogDecoder, parse_log_line
from .transport import DEFAULT_TIMEOUT, DockerAPIError, DockerTransport, path_part

log = logging.getLogger(__name__)

LABEL_MANAGED = "dev.mist.managed"
LABEL_PROJECT = "dev.mist.project"
LABEL_APP = "dev.mist.app"
LABEL_DEPLOYMENT = "dev.mist.deployment"
# Which Mist instance (data directory) made a resource: two instances may share one engine, and each must see
# and clean up only its own containers and images, whose deployment numbers would otherwise collide.
LABEL_INSTANCE = "dev.mist.instance"
# The project's stable random id: names outlive a project (a new project may take a deleted one's name), so
# its network and volumes are told apart by this instead.
LABEL_PROJECT_UID = "dev.mist.project-uid"
LABEL_VOLUME = "dev.mist.volume"  # a volume's name in the app's spec (its Docker name carries the uid too)
# The network of containers deployed before each project had its own; the proxy stays on it so they keep
# being routed until their next deployment.
NETWORK = "mist"

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Container logs are capped so a chatty app cannot fill the server's disk.
LOG_CONFIG = {"max-size": "10m", "max-file": "3"}

MANAGED_FILTER = f"{LABEL_MANAGED}=true"
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
# Concurrent stats requests: Docker holds each until its next collection tick (about a second), so a sweep
# takes one tick per this many containers.
STATS_CONCURRENCY = 64
STATS_TIMEOUT = 10.0

_PUBLISH = re.compile(
    r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):(?P<ip_host>\d{0,5}):|(?P<host>\d{1,5}):)?"
    r"(?P<container>\d{1,5})(?:/(?P<proto>tcp|udp))?$"
)
_PORT_ALLOCATED = re.compile(r"Bind for (\S+?):(\d+) failed: port is already allocated")
# Docker's words when its address pools have no range left for another network.
_POOLS_EXHAUSTED = ("could not find an available, non-overlapping", "non-overlapping ipv4 address pool")
_ADDRESS_IN_USE = re.compile(r"listen (?:tcp|udp)[46]? (\S+?):(\d+): bind: address already in use")


def project_network(project_uid: str) -> str:
    """The Docker network of a project's containers."""
    return f"mist_{project_uid}"


def project_volume(project_uid: str, volume: str) -> str:
    """The Docker volume behind the volume ``volume`` of a project's app spec."""
    return f"mist_{project_uid}_{volume}"


P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class ContainerSpec:
    """Everything needed to create and start one app container."""

    name: str
    image: str
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None  # already split; never a shell string
    publish: list[str] = field(default_factory=list)  # "127.0.0.1:18080:8080", "18080:8080", "8080"
    memory: int | None = None  # bytes; swap is not allowed beyond it
    cpus: float | None = None
    restart: str = "unless-stopped"  # no | always | unless-stopped | on-failure | on-failure:N
    volumes: list[Volume] = field(default_factory=list)  # named volumes mounted at their path
    network: str = NETWORK
    aliases: list[str] = field(default_factory=list)
    # Host directories (Mist's own, e.g. the proxy's configuration; never a user-given path): host -> (path, ro).
    host_dirs: dict[str, tuple[str, bool]] = field(default_factory=dict)
    extra_hosts: dict[str, str] = field(default_factory=dict)  # name -> IP, or "host-gateway"


@dataclass(frozen=True)
class RunningContainer:
    id: str
    name: str
    ip: str | None  # on the spec's network; the host reaches it directly on Linux


def parse_publish(specs: list[str]) -> dict[str, list[int | tuple[str, int] | None]]:
    """Port bindings by ``port/proto`` from publish specs: ``[ip:]host:container[/proto]`` or ``container``.

    A bare container port (or ``ip::container``) is published on a host port Docker picks.
    """
    bindings: dict[str, list[int | tuple[str, int] | None]] = {}
    for spec in specs:
        match = _PUBLISH.match(spec.strip())
        if not match:
            raise InvalidInput(
                f"publish spec {spec!r} is not valid: write HOST_PORT:CONTAINER_PORT, "
                "IP:HOST_PORT:CONTAINER_PORT or CONTAINER_PORT (optionally with /tcp or /udp)",
                field="publish",
            )
        host = match["host"] or match["ip_host"]
        ports = [int(p) for p in (host, match["container"]) if p]
        if any(not 1 <= p <= 65535 for p in ports):
            raise InvalidInput(f"publish spec {spec!r} has a port outside 1-65535", field="publish")
        key = f"{match['container']}/{match['proto'] or 'tcp'}"
        binding: int | tuple[str, int] | None
        if not host:
            binding = (match["ip"].strip("[]"), 0) if match["ip"] else None
        elif match["ip"]:
            binding = (match["ip"].strip("[]"), int(host))
        else:
            binding = int(host)
        bindings.setdefault(key, []).append(binding)
    return bindings


def restart_policy(restart: str) -> dict[str, Any]:
    """Docker's RestartPolicy for ``no``, ``always``, ``unless-stopped``, ``on-failure`` or ``on-failure:N``."""
    name, _, retries = restart.partition(":")
    if name not in RESTART_POLICIES or (retries and (name != "on-failure" or not retries.isdigit())):
        raise InvalidInput(
            f"restart policy {restart!r} is not valid: use no, always, unless-stopped, on-failure "
            "or on-failure:N",
            field="restart",
        )
    policy: dict[str, Any] = {"Name": name}
    if retries:
        policy["MaximumRetryCount"] = int(retries)
    return policy


def _unix_time(moment: datetime) -> str:
    """Docker's ``seconds.nanoseconds`` form; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    whole = math.floor(seconds)
    return f"{whole}.{round((seconds - whole) * 1e9):09d}"


def _created_at(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed, _ = parse_log_line(str(value).encode() + b" ")
    return parsed or datetime.now(UTC)


def _format_ports(ports: list[dict[str, Any]]) -> list[str]:
    shown: list[str] = []
    for port in ports or []:
        inside = f"{port.get('PrivatePort')}/{port.get('Type', 'tcp')}"
        if port.get("PublicPort"):
            shown.append(f"{port.get('IP') or '0.0.0.0'}:{port['PublicPort']}->{inside}")
        else:
            shown.append(inside)
    return sorted(set(shown))


def _int_label(labels: dict[str, str], key: str) -> int | None:
    try:
        return int(labels.get(key, ""))
    except ValueError:
        return None


def _port_in_use(error: DockerAPIError) -> Conflict | None:
    match = _PORT_ALLOCATED.search(error.explanation) or _ADDRESS_IN_USE.search(error.explanation)
    if not match:
        return None
    host, port = match.groups()
    return Conflict(
        f"host port {host}:{port} is already in use: pick another host port in the app's publish "
        "setting, or stop what listens there",
        field="publish",
    )


def _port_binding(binding: int | tuple[str, int] | None) -> dict[str, str]:
    if binding is None:
        return {"HostIp": "", "HostPort": ""}
    if isinstance(binding, tuple):
        return {"HostIp": binding[0], "HostPort": str(binding[1])}
    return {"HostIp": "", "HostPort": str(binding)}


def create_body(spec: ContainerSpec, labels: dict[str, str]) -> dict[str, Any]:
    """The ``POST /containers/create`` body for ``spec``: detached, no TTY, on the spec's network only, with
    capped json-file logs. Options the spec leaves unset are left out, so Docker's defaults apply."""
    port_bindings = parse_publish(list(spec.publish))
    host_config: dict[str, Any] = {
        "NetworkMode": spec.network,
        "RestartPolicy": restart_policy(spec.restart),
        "LogConfig": {"Type": "json-file", "Config": dict(LOG_CONFIG)},
    }
    if port_bindings:
        host_config["PortBindings"] = {
            key: [_port_binding(b) for b in bindings] for key, bindings in port_bindings.items()
        }
    binds = [f"{v.name}:{v.path}:rw" for v in spec.volumes]
    binds += [f"{host}:{path}:{'ro' if ro else 'rw'}" for host, (path, ro) in spec.host_dirs.items()]
    if binds:
        host_config["Binds"] = binds
    if spec.extra_hosts:
        host_config["ExtraHosts"] = [f"{name}:{ip}" for name, ip in sorted(spec.extra_hosts.items())]
    if spec.memory:
        # Swap equal to the limit: no swap beyond it.
        host_config["Memory"] = spec.memory
        host_config["MemorySwap"] = spec.memory
    if spec.cpus:
        host_config["NanoCpus"] = round(spec.cpus * 1e9)
    endpoint: dict[str, Any] = {"Aliases": list(spec.aliases)} if spec.aliases else {}
    body: dict[str, Any] = {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in spec.env.items()],
        "Labels": labels,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "NetworkDisabled": False,
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": {spec.network: endpoint}},
    }
    if spec.command:
        body["Cmd"] = list(spec.command)
    if port_bindings:
        body["ExposedPorts"] = {key: {} for key in port_bindings}
    return body


def _refusals(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """An engine answer the method did not turn into a precise error still becomes a MistError, with
    Docker's words."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except DockerAPIError as error:
            raise MistError(f"the Docker Engine refused the request: {error.explanation}") from error

    return guarded


class Engine:
    """An async face on one Docker Engine, limited to what Mist manages."""

    def __init__(self, base_url: str | None = None, *, instance: str | None = None) -> None:
        self.base_url = base_url or os.environ.get("MIST_DOCKER_HOST") or DEFAULT_DOCKER_HOST
        self.instance = instance
        # The label filter that selects what this engine object may see and touch.
        self.scope = [MANAGED_FILTER] + ([f"{LABEL_INSTANCE}={instance}"] if instance else [])
        self.http = DockerTransport(self.base_url)
        self._host_memory: int | None = None
        # The previous CPU reading of each running container, by id: one-shot stats have none of their own.
        self._cpu_readings: dict[str, tuple[int, int, int]] = {}
        # Docker's duplicate check is not atomic: concurrent creates of one name make several networks of that
        # name. One core per data directory, so a lock per name here is enough.
        self._network_locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------------------------------------ plumbing

    def unavailable(self) -> EngineUnavailable:
        return self.http.unavailable()

    def close(self) -> None:
        """Nothing stays open between calls (streams close with their readers); kept for symmetry."""
        self._cpu_readings.clear()

    async def _containers(
        self, *, all: bool = False, labels: list[str] | None = None, **filters: list[str]
    ) -> Any:
        query_filters: dict[str, list[str]] = dict(filters)
        if labels is not None:
            query_filters["label"] = labels
        params: dict[str, Any] = {"all": all}
        if query_filters:
            params["filters"] = query_filters
        return await self.http.request("GET", "/containers/json", params=params) or []

    async def _images(self, labels: list[str]) -> Any:
        return await self.http.request("GET", "/images/json", params={"filters": {"label": labels}}) or []

    async def _inspect_container(self, name: str) -> dict[str, Any] | None:
        try:
            info = await self.http.request("GET", f"/containers/{path_part(name)}/json")
        except DockerAPIError as error:
            if error.status == 404:
                return None
            raise
        return info if isinstance(info, dict) else None

    async def _inspect_image(self, tag: str) -> dict[str, Any] | None:
        try:
            info = await self.http.request("GET", f"/images/{path_part(tag)}/json")
        except DockerAPIError as error:
            if error.status == 404:
                return None
            raise
        return info if isinstance(info, dict) else None

    async def _delete_image(self, tag: str) -> None:
        await self.http.request("DELETE", f"/images/{path_part(tag)}")

    # ------------------------------------------------------------------------------------------ engine

    @_refusals
    async def ping(self) -> None:
        """Raise ``EngineUnavailable`` unless the engine answers."""
        await self.http.request("GET", "/_ping")

    async def _inspect_network(self, name: str) -> dict[str, Any] | None:
        try:
            info = await self.http.request("GET", f"/networks/{path_part(name)}")
        except DockerAPIError as error:
            if error.status == 404:
                return None
            raise
        # Docker also finds a network by an id prefix: only an exact name is this one.
        if not isinstance(info, dict) or info.get("Name") != name:
            return None
        return info

    def _owned_by(self, labels: dict[str, str], owner: dict[str, str]) -> bool:
        """Whether a resource's labels say Mist made it (for this instance, and for ``owner``'s labels)."""
        wanted = {LABEL_MANAGED: "true", **owner}
        if self.instance:
            wanted[LABEL_INSTANCE] = self.instance
        return all(labels.get(key) == value for key, value in wanted.items())

    @_refusals
    async def ensure_network(
        self, name: str = NETWORK, labels: dict[str, str] | None = None, owner: dict[str, str] | None = None
    ) -> bool:
        """Create the bridge network ``name`` (labelled as Mist's, with ``labels``) unless it exists; True when
        it was created. With ``owner`` (labels), an existing network must be this instance's and carry them: a
        project's network is never one that someone else made under its name."""
        async with self._network_locks.setdefault(name, asyncio.Lock()):
            return await self._ensure_network(name, labels, owner)

    async def _ensure_network(
        self, name: str, labels: dict[str, str] | None, owner: dict[str, str] | None
    ) -> bool:
        info = await self._inspect_network(name)
        if info is not None:
            if owner is not None and not self._owned_by(info.get("Labels") or {}, owner):
                raise Conflict(
                    f"a Docker network named {name} exists but Mist did not make it for this project: Mist "
                    f"will not put the project's apps on it; remove it (docker network rm {name}) and deploy "
                    "again"
                )
            return False
        network_labels = {**(labels or {}), LABEL_MANAGED: "true"}
        if self.instance and owner is not None:
            network_labels[LABEL_INSTANCE] = self.instance
        body = {"Name": name, "Driver": "bridge", "CheckDuplicate": True, "Labels": network_labels}
        try:
            await self.http.request("POST", "/networks/create", body=body)
        except DockerAPIError as error:
            if error.status == 409:  # created meanwhile by another process: check it
                await self._ensure_network(name, labels, owner)
                return False
            if any(words in error.explanation.lower() for words in _POOLS_EXHAUSTED):
                raise MistError(
                    f"the Docker Engine has no address range left for network {name} (each Mist project has "
                    "its own network, and Docker's default pools hold about 30): add larger pools to "
                    '/etc/docker/daemon.json, e.g. "default-address-pools": [{"base": "10.200.0.0/16", '
                    '"size": 24}], restart Docker, and deploy again'
                ) from error
            raise
        return True

    @_refusals
    async def networks(self, labels: list[str]) -> list[str]:
        """The names of this instance's Mist networks that carry ``labels`` (``key`` or ``key=value``)."""
        params = {"filters": {"label": [*self.scope, *labels]}}
        rows = await self.http.request("GET", "/networks", params=params) or []
        return sorted(str(row["Name"]) for row in rows)

    @_refusals
    async def connect(self, container: str, network: str) -> bool:
        """Attach a Mist container to a network, unless it is on it already; True when it was attached."""
        info = await self._managed(container)
        if info is None:
            raise NotFound(f"container {container} does not exist")
        if network in ((info.get("NetworkSettings") or {}).get("Networks") or {}):
            return False
        try:
            await self.http.request(
                "POST", f"/networks/{path_part(network)}/connect", body={"Container": container}
            )
        except DockerAPIError as error:
            if "already exists" not in error.explanation:  # attached meanwhile
                raise
        return True

    @_refusals
    async def disconnect(self, container: str, network: str) -> None:
        """Detach a container from a network. Either one missing, or not attached, is not an error."""
        try:
            await self.http.request(
                "POST",
                f"/networks/{path_part(network)}/disconnect",
                body={"Container": container, "Force": True},
            )
        except DockerAPIError as error:
            if error.status not in (404, 403, 409):  # 403/409: not attached
                raise

    @_refusals
    async def remove_network(self, name: str, owner: dict[str, str]) -> None:
        """Remove a network Mist made for ``owner`` (labels). A missing one is not an error; one that is not
        Mist's or still has containers is refused, naming them."""
        info = await self._inspect_network(name)
        if info is None:
            return
        if not self._owned_by(info.get("Labels") or {}, owner):
            raise Conflict(
                f"Docker network {name} was not made by Mist for this project: Mist leaves it alone; "
                "remove it with docker directly"
            )
        attached = sorted(str(c.get("Name")) for c in (info.get("Containers") or {}).values())
        if attached:
            raise Conflict(
                f"Docker network {name} still has containers attached ({', '.join(attached)}): remove or "
                f"disconnect them (docker network disconnect {name} CONTAINER) and try again"
            )
        try:
            await self.http.request("DELETE", f"/networks/{path_part(name)}")
        except DockerAPIError as error:
            if error.status != 404:
                raise

    async def _volume_labels(self, name: str) -> dict[str, str] | None:
        try:
            info = await self.http.request("GET", f"/volumes/{path_part(name)}")
        except DockerAPIError as error:
            if error.status == 404:
                return None
            raise
        return dict((info or {}).get("Labels") or {})

    @_refusals
    async def volumes(self, labels: list[str]) -> list[str]:
        """The names of this instance's Mist volumes that carry ``labels`` (``key`` or ``key=value``)."""
        params = {"filters": {"label": [*self.scope, *labels]}}
        answer = await self.http.request("GET", "/volumes", params=params) or {}
        return sorted(str(v["Name"]) for v in answer.get("Volumes") or [])

    @_refusals
    async def volume_labels(self, name: str) -> dict[str, str] | None:
        """The labels of Docker volume ``name``, or None if there is no such volume."""
        return await self._volume_labels(name)

    @_refusals
    async def ensure_volume(self, name: str, labels: dict[str, str], owner: dict[str, str]) -> bool:
        """Create Docker volume ``name`` with ``labels`` (and Mist's), unless it exists; True when created.

        An existing volume must carry Mist's labels for this instance and ``owner``'s labels: Mist never
        mounts a volume it did not make, nor one it made for another project."""
        found = await self._volume_labels(name)
        created = found is None
        existing = found or {}
        if created:
            volume_labels = {**labels, LABEL_MANAGED: "true"}
            if self.instance:
                volume_labels[LABEL_INSTANCE] = self.instance
            # Docker answers a create of an existing name with that volume, whatever its labels: made by
            # someone else since the look above, it is refused all the same.
            answer = await self.http.request(
                "POST", "/volumes/create", body={"Name": name, "Labels": volume_labels}
            )
            existing = dict((answer or {}).get("Labels") or {})
        if not self._owned_by(existing, owner):
            raise Conflict(
                f"a Docker volume named {name} already exists and Mist did not make it for this project: "
                "Mist will not mount it. If its data belongs to this app, copy it into a new volume; "
                f"otherwise remove it (docker volume rm {name}) and deploy again",
                field="volumes",
            )
        return created

    # ------------------------------------------------------------------------------------------ containers

    @_refusals
    async def run(self, spec: ContainerSpec) -> RunningContainer:
        """Create and start a container; on any failure nothing is left behind."""
        labels = {**spec.labels, LABEL_MANAGED: "true"}
        if self.instance:
            labels[LABEL_INSTANCE] = self.instance
        body = create_body(spec, labels)  # validates the spec before anything is made
        volume_labels = {
            k: v
            for k, v in labels.items()
            if k in (LABEL_PROJECT, LABEL_PROJECT_UID, LABEL_APP, LABEL_INSTANCE)
        }
        for volume in spec.volumes:
            await self.ensure_volume(volume.name, volume_labels, owner={})
        try:
            created = await self.http.request(
                "POST", "/containers/create", params={"name": spec.name}, body=body
            )
        except DockerAPIError as error:
            if error.image_missing:
                raise NotFound(f"image {spec.image} does not exist: build the app again") from error
            if error.status == 404:
                raise NotFound(
                    f"cannot create container {spec.name}: {error.explanation}; "
                    f"check that network {spec.network} exists (ensure_network)"
                ) from error
            if error.status == 409:
                raise Conflict(
                    f"a container named {spec.name} already exists: remove it first or choose another name"
                ) from error
            raise MistError(f"Docker refused to create container {spec.name}: {error.explanation}") from error
        container_id = created["Id"]
        try:
            await self.http.request("POST", f"/containers/{container_id}/start")
            info = await self._inspect_container(container_id) or {}
        except DockerAPIError as error:
            await self._remove_quietly(container_id)
            raise _port_in_use(error) or MistError(
                f"container {spec.name} did not start: {error.explanation}"
            ) from error
        except BaseException:
            await self._remove_quietly(container_id)
            raise
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        ip = (networks.get(spec.network) or {}).get("IPAddress") or None
        return RunningContainer(id=container_id, name=spec.name, ip=ip)

    async def _remove_container(self, container: str) -> None:
        await self.http.request("DELETE", f"/containers/{path_part(container)}", params={"force": True})

    async def _remove_quietly(self, container: str) -> None:
        try:
            await self._remove_container(container)
        except Exception:  # noqa: BLE001 - best effort cleanup after a failure that is already reported
            log.warning("could not remove container %s after a failed start", container, exc_info=True)

    async def _managed(self, name: str) -> dict[str, Any] | None:
        """The container's inspect data, None if missing; refuses a container Mist did not make."""
        info = await self._inspect_container(name)
        if info is None:
            return None
        labels = (info.get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL_MANAGED) != "true":
            raise Conflict(
                f"container {name} is not managed by Mist (it lacks the label {LABEL_MANAGED}=true): "
                "Mist leaves it alone; manage it with docker directly"
            )
        return info

    @_refusals
    async def stop(self, name: str, grace: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds. A missing container is not an error."""
        if await self._managed(name) is None:
            return
        seconds = math.ceil(grace)
        try:
            await self.http.request(
                "POST",
                f"/containers/{path_part(name)}/stop",
                params={"t": seconds},
                timeout=DEFAULT_TIMEOUT + seconds,
            )
        except DockerAPIError as error:
            if error.status != 404:
                raise

    @_refusals
    async def start(self, name: str) -> None:
        if await self._managed(name) is None:
            raise NotFound(f"container {name} does not exist: deploy the app again")
        try:
            await self.http.request("POST", f"/containers/{path_part(name)}/start")
        except DockerAPIError as error:
            raise _port_in_use(error) or MistError(
                f"container {name} did not start: {error.explanation}"
            ) from error

    @_refusals
    async def restart(self, name: str, grace: float = 10) -> None:
        if await self._managed(name) is None:
            raise NotFound(f"container {name} does not exist: deploy the app again")
        seconds = math.ceil(grace)
        await self.http.request(
            "POST",
            f"/containers/{path_part(name)}/restart",
            params={"t": seconds},
            timeout=DEFAULT_TIMEOUT + seconds,
        )

    @_refusals
    async def remove(self, name: str) -> None:
        """Force-remove a Mist container. A missing one is not an error; one without Mist's label is refused."""
        if await self._managed(name) is None:
            return
        try:
            await self._remove_container(name)
        except DockerAPIError as error:
            if error.status == 404:
                return
            if error.status == 409 and "already in progress" in error.explanation:
                return
            raise

    @_refusals
    async def inspect(self, name: str) -> dict[str, Any] | None:
        """Docker's inspect data of a container, or None if it does not exist."""
        return await self._inspect_container(name)

    @_refusals
    async def list_containers(
        self,
        *,
        all: bool = False,
        project: str | None = None,
        app: str | None = None,
        deployment: int | None = None,
    ) -> list[ContainerInfo]:
        """Mist's containers (running ones unless ``all``), optionally of one project, app or deployment."""
        labels = list(self.scope)
        if project is not None:
            labels.append(f"{LABEL_PROJECT}={project}")
        if app is not None:
            labels.append(f"{LABEL_APP}={app}")
        if deployment is not None:
            labels.append(f"{LABEL_DEPLOYMENT}={deployment}")
        rows = await self._containers(all=all, labels=labels)
        return [self._container_info(row) for row in rows]

    @staticmethod
    def _container_info(row: dict[str, Any]) -> ContainerInfo:
        labels = row.get("Labels") or {}
        names = row.get("Names") or [row.get("Id", "")[:12]]
        return ContainerInfo(
            id=row["Id"],
            name=names[0].lstrip("/"),
            project=labels.get(LABEL_PROJECT),
            app=labels.get(LABEL_APP),
            deployment_id=_int_label(labels, LABEL_DEPLOYMENT),
            image=row.get("Image", ""),
            state=row.get("State", ""),
            status=row.get("Status", ""),
            ports=_format_ports(row.get("Ports") or []),
            created_at=_created_at(row.get("Created", 0)),
        )

    # ------------------------------------------------------------------------------------------ streams

    async def logs(
        self,
        name: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        since: datetime | None = None,
    ) -> AsyncIterator[LogLine]:
        """A container's output, one ``LogLine`` per line, stdout and stderr kept apart, with Docker's
        timestamps. With ``follow`` it goes on until the caller stops iterating or the container is removed.
        """
        missing = f"container {name} does not exist: is the app deployed?"
        try:
            info = await self._inspect_container(name)
        except DockerAPIError as error:
            raise MistError(f"the Docker Engine refused the request: {error.explanation}") from error
        if info is None:
            raise NotFound(missing)
        decoder = LogDecoder(name, tty=bool((info.get("Config") or {}).get("Tty")))
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": 1,
            "follow": int(follow),
            "tail": "all" if tail is None else str(max(tail, 0)),
        }
        if since is not None:
            params["since"] = _unix_time(since)
        body = self.http.stream("GET", f"/containers/{path_part(name)}/logs", params=params)
        try:
            async for piece in body:
                for line in decoder.feed(piece):
                    yield line
        except DockerAPIError as error:
            if error.status == 404:
                raise NotFound(missing) from error
            raise MistError(f"the Docker Engine refused the request: {error.explanation}") from error
        finally:
            await body.aclose()
        for line in decoder.end():
            yield line

    async def events(self, *, since: datetime | None = None) -> AsyncIterator[dict[str, Any]]:
        """Docker's container events (start, die, restart, oom, health_status...) for Mist's containers,
        as Docker sends them, until the caller stops iterating. ``since`` replays the recent past first."""
        params: dict[str, Any] = {"filters": {"type": ["container"], "label": self.scope}}
        if since is not None:
            params["since"] = _unix_time(since)
        decoder = JsonLinesDecoder()
        body = self.http.stream("GET", "/events", params=params)
        try:
            async for piece in body:
                for event in decoder.feed(piece):
                    yield event
        except DockerAPIError as error:
            raise MistError(f"the Docker Engine refused the request: {error.explanation}") from error
        except ValueError as error:
            raise MistError(f"the Docker Engine sent an event Mist cannot read: {error}") from error
        finally:
            await body.aclose()

    # ------------------------------------------------------------------------------------------ stats

    @_refusals
    async def stats(self) -> list[ContainerStats]:
        """CPU, memory and network of every running Mist container.

        Docker answers a stats request at its next collection tick (about a second), whichever container
        it is for, so the requests run concurrently and a sweep costs about one tick. Containers seen before
        get a one-shot reading and their CPU share since this engine's previous reading; a new container gets
        Docker's two-reading answer, which carries its own previous reading.
        """
        rows = await self._containers(labels=self.scope, status=["running"])
        if not rows:
            self._cpu_readings.clear()
            return []
        if self._host_memory is None:
            info = await self.http.request("GET", "/info") or {}
            self._host_memory = int(info.get("MemTotal") or 0) or None
        readings = await self._read_all_stats([(row["Id"], row["Id"] in self._cpu_readings) for row in rows])
        previous, self._cpu_readings = self._cpu_readings, {}
        result = []
        for row in rows:
            cid = row["Id"]
            raw = readings.pop(cid, None)
            if raw is None:  # gone between the listing and the reading
                continue
            current = stats_math.cpu_reading(raw)
            if current is not None:
                self._cpu_readings[cid] = current
            before = previous.get(cid) or stats_math.cpu_reading({"cpu_stats": raw.get("precpu_stats")})
            sample = stats_math.container_stats(
                (row.get("Names") or ["/" + cid[:12]])[0].lstrip("/"),
                row.get("Labels") or {},
                raw,
                before,
                host_memory=self._host_memory,
                project_label=LABEL_PROJECT,
                app_label=LABEL_APP,
            )
            result.append(sample)
        return result

    async def _read_all_stats(self, containers: list[tuple[str, bool]]) -> dict[str, dict[str, Any]]:
        """Raw stats by container id, all requested at once. ``(id, seen)``: a seen container gets a
        one-shot reading. Containers that vanished or failed are left out."""
        gate = asyncio.Semaphore(STATS_CONCURRENCY)

        async def read(cid: str, seen: bool) -> dict[str, Any] | None:
            async with gate:
                return await self._read_stats(cid, seen)

        results = await asyncio.gather(*(read(cid, seen) for cid, seen in containers))
        return {cid: raw for (cid, _), raw in zip(containers, results, strict=True) if raw is not None}

    async def _read_stats(self, container_id: str, seen: bool) -> dict[str, Any] | None:
        params: dict[str, Any] = {"stream": False}
        if seen:
            params["one-shot"] = True
        try:
            raw = await self.http.request(
                "GET", f"/containers/{container_id}/stats", params=params, timeout=STATS_TIMEOUT
            )
        except (DockerAPIError, MistError) as error:
            log.debug("no stats for %s: %s", container_id, error)
            return None
        return raw if isinstance(raw, dict) else None

    # ------------------------------------------------------------------------------------------ images

    @_refusals
    async def image_exists(self, tag: str) -> bool:
        return await self._inspect_image(tag) is not None

    @_refusals
    async def remove_image(self, tag: str) -> None:
        """Remove (untag) one of Mist's images. A missing image is not an error; another's is refused."""
        info = await self._inspect_image(tag)
        if info is None:
            return
        labels = (info.get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL_MANAGED) != "true":
            raise Conflict(
                f"image {tag} was not built by Mist (it lacks the label {LABEL_MANAGED}=true): "
                "Mist leaves it alone; remove it with docker directly"
            )
        try:
            await self._delete_image(tag)
        except DockerAPIError as error:
            if error.status == 404:
                return
            if error.status == 409:
                raise Conflict(
                    f"image {tag} is still used by a container: remove the container first"
                ) from error
            raise

    @_refusals
    async def prune_app_images(self, project: str, app: str, keep: int, protect: set[str]) -> list[str]:
        """Remove an app's images beyond the ``keep`` newest deployments. Never removes one in ``protect``
        (tags or ids), one used by any container, or one without Mist's labels. Returns the removed tags."""
        images = await self._images([*self.scope, f"{LABEL_PROJECT}={project}", f"{LABEL_APP}={app}"])
        numbered = [
            (deployment, image)
            for image in images
            if (deployment := _int_label(image.get("Labels") or {}, LABEL_DEPLOYMENT)) is not None
        ]
        numbered.sort(key=lambda pair: pair[0], reverse=True)
        in_use = {c.get("ImageID") for c in await self._containers(all=True)}
        removed: list[str] = []
        for _, image in numbered[max(keep, 0) :]:
            tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
            if image["Id"] in in_use or image["Id"] in protect or protect.intersection(tags):
                continue
            for tag in tags or [image["Id"]]:
                try:
                    await self._delete_image(tag)
                    removed.append(tag)
                except DockerAPIError as error:
                    # Gone already, a container created meanwhile, or a child image: keep it and carry on.
                    if error.status != 404:
                        log.info("kept image %s: %s", tag, error.explanation)
        return removed

    @_refusals
    async def remove_deployment_leftovers(self, deployment_id: int) -> None:
        """Remove the containers of a deployment and its image (unless a container still uses it)."""
        label = [*self.scope, f"{LABEL_DEPLOYMENT}={deployment_id}"]
        for row in await self._containers(all=True, labels=label):
            await self._remove_quietly(row["Id"])
        in_use = {c.get("ImageID") for c in await self._containers(all=True)}
        for image in await self._images(label):
            if image["Id"] in in_use:
                continue
            for tag in [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"] or [image["Id"]]:
                try:
                    await self._delete_image(tag)
                except DockerAPIError as error:
                    log.info("kept image %s: %s", tag, error.explanation)
