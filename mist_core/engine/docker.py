"""Mist's only door to the Docker Engine: run, stop and remove app containers, read their logs, events and
stats, pull images, run commands in containers, and prune the images Mist built.

Calls go through docker-py on a bounded pool of threads (``client``), with the API version negotiated with
the engine; logs and events are streamed answers decoded as they arrive and shared between their followers
(``streams``). Mist only ever changes containers, images and networks that carry its ``dev.mist.managed``
label, so an operator's own containers on the same engine are safe from it.

Each project has its own bridge network and its own volumes, named from the project's uid (``project_network``,
``project_volume``) and labelled with it, so one project's apps can neither reach nor mount another's.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .. import validate
from ..errors import Conflict, EngineUnavailable, MistError, NotFound
from ..models import ContainerInfo, ContainerStats, LogLine, Volume
from . import oneoff
from . import stats as stats_math
from .client import DockerAPIError, EngineConnection, interrupt, socket_of
from .streams import JsonLinesDecoder, LogDecoder, StreamHub, parse_log_line

if TYPE_CHECKING:
    import docker

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
LABEL_DATABASE = "dev.mist.database"  # a managed database's container and volume: the database's name
LABEL_VOLUME = "dev.mist.volume"  # a volume's name in the app's spec (its Docker name carries the uid too)
# The network of containers deployed before each project had its own; the proxy stays on it so they keep
# being routed until their next deployment.
NETWORK = "mist"

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# The events and log streams a follower gets are shared; these say which ones are being read.
EVENTS_STREAM = "events"
# Container logs are capped so a chatty app cannot fill the server's disk.
LOG_CONFIG = {"max-size": "10m", "max-file": "3"}

MANAGED_FILTER = f"{LABEL_MANAGED}=true"
# A container seen for the first time has no earlier CPU reading: a second one-shot reading this long after
# the first gives its CPU share at once (Docker's own two-reading answer holds a thread for a second or two).
FIRST_READING_GAP = 1.0
# Lines of an exec's output kept in memory; more is cut (an exec is for short commands).
EXEC_OUTPUT_MAX = 1024 * 1024
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
    # Docker's HEALTHCHECK: the test (["CMD", ...]) and its interval, timeout, retries and start period.
    healthcheck: list[str] | None = None
    health_timing: tuple[float, float, int, float] = (3.0, 5.0, 3, 120.0)


@dataclass(frozen=True)
class RunningContainer:
    id: str
    name: str
    ip: str | None  # on the spec's network; the host reaches it directly on Linux


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
    port_bindings = validate.port_bindings(spec.publish)
    host_config: dict[str, Any] = {
        "NetworkMode": spec.network,
        "RestartPolicy": validate.restart_policy_for_docker(spec.restart),
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
    if spec.healthcheck:
        interval, timeout, retries, start_period = spec.health_timing
        body["Healthcheck"] = {
            "Test": list(spec.healthcheck),
            "Interval": round(interval * 1e9),
            "Timeout": round(timeout * 1e9),
            "Retries": retries,
            "StartPeriod": round(start_period * 1e9),
        }
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


@dataclass(frozen=True)
class ExecResult:
    """What a command run in a container left: its exit code, and its output (stdout and stderr as one)."""

    exit_code: int
    output: str


@dataclass
class ExecSession:
    """An interactive command in a container, with a TTY: ``socket`` carries the terminal both ways (write
    keystrokes, read the screen), ``resize`` follows the user's window, ``exit_code`` is known once it ended.
    Blocking socket: use it from a thread, or hand its file descriptor to the event loop."""

    id: str
    socket: socket.socket
    _engine: Engine
    _connection: Any = None  # docker-py's side of the socket: kept, or collecting it would close the socket

    async def resize(self, height: int, width: int) -> None:
        await self._engine._call(lambda api: api.exec_resize(self.id, height=height, width=width))

    async def inspect(self) -> dict[str, Any]:
        """Docker's view of the exec: ``Running``, ``ExitCode``, ``Pid`` (on the engine's host)."""
        info: dict[str, Any] = await self._engine._call(lambda api: api.exec_inspect(self.id))
        return info

    async def exit_code(self) -> int | None:
        info = await self.inspect()
        return None if info.get("Running") else info.get("ExitCode")

    def close(self) -> None:
        self.socket.close()


@dataclass(frozen=True)
class SwarmInfo:
    """What the engine says of Docker Swarm: ``state`` is ``inactive``, ``pending``, ``active``, ``error``
    or ``locked``; the rest is known when this engine is part of a swarm."""

    state: str
    node_id: str | None
    node_address: str | None
    is_manager: bool
    cluster_id: str | None
    nodes: int | None
    managers: int | None
    error: str | None


class Engine:
    """An async face on one Docker Engine, limited to what Mist manages."""

    def __init__(self, base_url: str | None = None, *, instance: str | None = None) -> None:
        self.base_url = (
            base_url
            or os.environ.get("MIST_DOCKER_HOST")
            or os.environ.get("DOCKER_HOST")
            or DEFAULT_DOCKER_HOST
        )
        self.instance = instance
        # The label filter that selects what this engine object may see and touch.
        self.scope = [MANAGED_FILTER] + ([f"{LABEL_INSTANCE}={instance}"] if instance else [])
        self.connection = EngineConnection(
            self.base_url, ssh_config=os.environ.get("MIST_DOCKER_SSH_CONFIG") or None
        )
        self._host_memory: int | None = None
        # The previous CPU reading of each running container, by id: one-shot stats have none of their own.
        self._cpu_readings: dict[str, tuple[int, int, int]] = {}
        # Docker's duplicate check is not atomic: concurrent creates of one name make several networks of that
        # name. One core per data directory, so a lock per name here is enough.
        self._network_locks: dict[str, asyncio.Lock] = {}
        # The engine streams being read, shared by their followers: the events, and each followed container's
        # logs (by container id and the name its lines are labelled with).
        self._hubs: dict[Any, StreamHub[Any]] = {}

    # ------------------------------------------------------------------------------------------ plumbing

    @property
    def api_version(self) -> str | None:
        """The API version negotiated with the engine (None before the first call)."""
        return self.connection.api_version

    def unavailable(self) -> EngineUnavailable:
        return self.connection.unavailable()

    def close(self) -> None:
        """Stop the streams being read and the call threads, and close the connections."""
        for hub in list(self._hubs.values()):
            hub.close()
        self._hubs.clear()
        self._cpu_readings.clear()
        self.connection.close()

    async def _call(self, call: Callable[[docker.APIClient], R]) -> R:
        return await self.connection.call(call)

    async def _containers(
        self, *, all: bool = False, labels: list[str] | None = None, **filters: list[str]
    ) -> Any:
        query_filters: dict[str, list[str]] = dict(filters)
        if labels is not None:
            query_filters["label"] = labels
        return await self._call(lambda api: api.containers(all=all, filters=query_filters or None)) or []

    async def _images(self, labels: list[str]) -> Any:
        return await self._call(lambda api: api.images(filters={"label": labels})) or []

    async def _inspect(self, inspect: Callable[[docker.APIClient], Any]) -> dict[str, Any] | None:
        try:
            info = await self._call(inspect)
        except DockerAPIError as error:
            if error.status == 404:
                return None
            raise
        return info if isinstance(info, dict) else None

    async def _inspect_container(self, name: str) -> dict[str, Any] | None:
        return await self._inspect(lambda api: api.inspect_container(name))

    async def _inspect_image(self, tag: str) -> dict[str, Any] | None:
        return await self._inspect(lambda api: api.inspect_image(tag))

    async def _delete_image(self, tag: str) -> None:
        await self._call(lambda api: api.remove_image(tag))

    # ------------------------------------------------------------------------------------------ engine

    @_refusals
    async def ping(self) -> None:
        """Raise ``EngineUnavailable`` unless the engine answers (and speaks an API Mist can use)."""
        await self._call(lambda api: api.ping())

    @_refusals
    async def version(self) -> dict[str, Any]:
        """The engine's ``/version`` answer, with ``NegotiatedAPIVersion``: the API version Mist speaks."""
        answer = dict(await self._call(lambda api: api.version()))
        answer["NegotiatedAPIVersion"] = self.connection.api_version
        return answer

    @_refusals
    async def swarm_info(self) -> SwarmInfo:
        """Whether this engine is part of a Docker Swarm, and as what."""
        swarm = (await self._call(lambda api: api.info())).get("Swarm") or {}
        cluster = swarm.get("Cluster") or {}
        return SwarmInfo(
            state=str(swarm.get("LocalNodeState") or "inactive"),
            node_id=swarm.get("NodeID") or None,
            node_address=swarm.get("NodeAddr") or None,
            is_manager=bool(swarm.get("ControlAvailable")),
            cluster_id=cluster.get("ID") or None,
            nodes=swarm.get("Nodes"),
            managers=swarm.get("Managers"),
            error=swarm.get("Error") or None,
        )

    async def _inspect_network(self, name: str) -> dict[str, Any] | None:
        info = await self._inspect(lambda api: api.inspect_network(name))
        # Docker also finds a network by an id prefix: only an exact name is this one.
        if info is None or info.get("Name") != name:
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
        try:
            await self._call(
                lambda api: api.create_network(
                    name, driver="bridge", check_duplicate=True, labels=network_labels
                )
            )
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
        rows = await self._call(lambda api: api.networks(filters={"label": [*self.scope, *labels]})) or []
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
            await self._call(lambda api: api.connect_container_to_network(container, network))
        except DockerAPIError as error:
            if "already exists" not in error.explanation:  # attached meanwhile
                raise
        return True

    @_refusals
    async def disconnect(self, container: str, network: str) -> None:
        """Detach a container from a network. Either one missing, or not attached, is not an error."""
        try:
            await self._call(
                lambda api: api.disconnect_container_from_network(container, network, force=True)
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
            await self._call(lambda api: api.remove_network(name))
        except DockerAPIError as error:
            if error.status != 404:
                raise

    async def _volume_labels(self, name: str) -> dict[str, str] | None:
        info = await self._inspect(lambda api: api.inspect_volume(name))
        return None if info is None else dict(info.get("Labels") or {})

    @_refusals
    async def volumes(self, labels: list[str]) -> list[str]:
        """The names of this instance's Mist volumes that carry ``labels`` (``key`` or ``key=value``)."""
        answer = await self._call(lambda api: api.volumes(filters={"label": [*self.scope, *labels]})) or {}
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
            answer = await self._call(lambda api: api.create_volume(name, labels=volume_labels))
            existing = dict((answer or {}).get("Labels") or {})
        if not self._owned_by(existing, owner):
            raise Conflict(
                f"a Docker volume named {name} already exists and Mist did not make it for this project: "
                "Mist will not mount it. If its data belongs to this app, copy it into a new volume; "
                f"otherwise remove it (docker volume rm {name}) and deploy again",
                field="volumes",
            )
        return created

    @_refusals
    async def remove_volume(self, name: str, owner: dict[str, str]) -> None:
        """Remove a volume Mist made for ``owner`` (labels). A missing one is not an error; one that is not
        Mist's is refused, and so is one a container still uses (naming the containers)."""
        found = await self._volume_labels(name)
        if found is None:
            return
        if not self._owned_by(found, owner):
            raise Conflict(
                f"Docker volume {name} was not made by Mist for this project: Mist leaves it alone"
            )
        users = await self.containers_using(name)
        if users:
            raise Conflict(f"Docker volume {name} is used by {', '.join(users)}: remove them first")
        try:
            await self._call(lambda api: api.remove_volume(name))
        except DockerAPIError as error:
            if error.status != 404:
                raise

    @_refusals
    async def containers_using(self, volume: str, *, running: bool = False) -> list[str]:
        """The names of the containers (running ones only with ``running``) that mount Docker volume
        ``volume``."""
        rows = await self._containers(all=not running, volume=[volume])
        return sorted((row.get("Names") or ["/" + row["Id"][:12]])[0].lstrip("/") for row in rows)

    @_refusals
    async def one_off(self, spec: oneoff.OneOffSpec) -> oneoff.OneOff:
        """Create a short-lived container (labelled as Mist's) attached to its streams, not yet started: a
        backup's dump or a restore runs in one."""
        labels = {**spec.labels, LABEL_MANAGED: "true"}
        if self.instance:
            labels[LABEL_INSTANCE] = self.instance
        return await oneoff.create(self._call, spec, labels)

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
            created = await self._call(lambda api: api.create_container_from_config(body, name=spec.name))
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
            await self._call(lambda api: api.start(container_id))
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
        await self._call(lambda api: api.remove_container(container, force=True))

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
            # docker-py waits its own timeout plus the grace period for the answer.
            await self._call(lambda api: api.stop(name, timeout=seconds))
        except DockerAPIError as error:
            if error.status != 404:
                raise

    @_refusals
    async def start(self, name: str) -> None:
        if await self._managed(name) is None:
            raise NotFound(f"container {name} does not exist: deploy the app again")
        try:
            await self._call(lambda api: api.start(name))
        except DockerAPIError as error:
            raise _port_in_use(error) or MistError(
                f"container {name} did not start: {error.explanation}"
            ) from error

    @_refusals
    async def restart(self, name: str, grace: float = 10) -> None:
        if await self._managed(name) is None:
            raise NotFound(f"container {name} does not exist: deploy the app again")
        seconds = math.ceil(grace)
        await self._call(lambda api: api.restart(name, timeout=seconds))

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
            database=labels.get(LABEL_DATABASE),
        )

    # ------------------------------------------------------------------------------------------ exec

    async def _exec_create(
        self, name: str, command: list[str], *, tty: bool, stdin: bool, env: dict[str, str] | None = None
    ) -> str:
        if not command:
            raise MistError("there is no command to run: give the command and its arguments")
        if await self._managed(name) is None:
            raise NotFound(f"container {name} does not exist: is the app deployed?")
        try:
            created = await self._call(
                lambda api: api.exec_create(
                    name, list(command), stdin=stdin, tty=tty, stdout=True, stderr=True, environment=env
                )
            )
        except DockerAPIError as error:
            if error.status == 409:
                raise Conflict(f"container {name} is not running: start the app first") from error
            raise
        return str(created["Id"])

    @_refusals
    async def exec(self, name: str, command: list[str], *, env: dict[str, str] | None = None) -> ExecResult:
        """Run ``command`` (an argument list, no shell) in a running Mist container and wait for it: its exit
        code and its output, stdout and stderr together as they arrive (at most ``EXEC_OUTPUT_MAX``
        bytes are kept). ``env`` is added to the command's environment (the engine's API carries it as data:
        the way to hand a command a password)."""
        exec_id = await self._exec_create(name, command, tty=False, stdin=False, env=env)

        def run(api: docker.APIClient) -> bytes:
            kept = bytearray()
            for piece in api.exec_start(exec_id, stream=True):
                if len(kept) < EXEC_OUTPUT_MAX:
                    kept += piece[: EXEC_OUTPUT_MAX - len(kept)]
            return bytes(kept)

        output = await self._call(run)
        info = await self._call(lambda api: api.exec_inspect(exec_id))
        code = info.get("ExitCode")
        return ExecResult(
            exit_code=int(code) if code is not None else -1, output=output.decode(errors="replace")
        )

    @_refusals
    async def exec_interactive(self, name: str, command: list[str], *, tty: bool = True) -> ExecSession:
        """Start ``command`` in a running Mist container with standard input and (by default) a TTY, for a
        person at a terminal: the session's socket carries what they type and what the command shows. Without
        a TTY, Docker frames the output by stream (stdout, stderr) on the socket."""
        exec_id = await self._exec_create(name, command, tty=tty, stdin=True)
        hijacked = await self._call(lambda api: api.exec_start(exec_id, tty=tty, socket=True))
        sock = socket_of(hijacked)
        sock.settimeout(None)
        return ExecSession(id=exec_id, socket=sock, _engine=self, _connection=hijacked)

    # ------------------------------------------------------------------------------------------ streams

    def _hub(
        self,
        key: Any,
        path: str,
        params: dict[str, Any],
        decoder: Any,
        *,
        name: str,
        shared: bool,
    ) -> StreamHub[Any]:
        """The hub reading ``path``: the shared one under ``key`` if it is being read (and ``shared``), else
        a new one (registered under ``key`` when shared)."""
        if shared and (hub := self._hubs.get(key)) is not None and not hub.closed:
            return hub

        def forget(done: StreamHub[Any]) -> None:
            if self._hubs.get(key) is done:
                del self._hubs[key]

        hub = StreamHub(
            lambda: self.connection.open_stream(path, params),
            decoder,
            name=name,
            translate=self.connection.translate,
            interrupt=interrupt,
            on_close=forget if shared else None,
        )
        if shared:
            self._hubs[key] = hub
        return hub

    async def _read(self, hub: StreamHub[Any]) -> AsyncIterator[Any]:
        queue = await hub.join()
        try:
            async for item in hub.items(queue):
                yield item
        finally:
            hub.leave(queue)

    async def logs(
        self,
        name: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        since: datetime | None = None,
    ) -> AsyncIterator[LogLine]:
        """A container's output, one ``LogLine`` per line, stdout and stderr kept apart, with Docker's
        timestamps. With ``follow`` it goes on until the caller stops iterating or the container stops.

        Followers of one container share one engine stream of its new lines; each reads the lines from
        before it came (``tail``, ``since``) on its own first.
        """
        missing = f"container {name} does not exist: is the app deployed?"
        try:
            info = await self._inspect_container(name)
        except DockerAPIError as error:
            raise MistError(f"the Docker Engine refused the request: {error.explanation}") from error
        if info is None:
            raise NotFound(missing)
        tty = bool((info.get("Config") or {}).get("Tty"))
        path = f"/containers/{info['Id']}/logs"
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1}
        past = {**params, "follow": 0, "tail": "all" if tail is None else str(max(tail, 0))}
        if since is not None:
            past["since"] = _unix_time(since)
        try:
            if not follow:
                history = self._hub(None, path, past, LogDecoder(name, tty=tty), name=name, shared=False)
                async for line in self._read(history):
                    yield line
                return
            live = self._hub(
                ("logs", info["Id"], name),
                path,
                {**params, "follow": 1, "tail": "0"},
                LogDecoder(name, tty=tty),
                name=name,
                shared=True,
            )
            queue = await live.join()
            try:
                # Joined first, then the past: a line written in between is in both, and is given once.
                last: datetime | None = None
                at_last: set[tuple[str, str]] = set()
                history = self._hub(None, path, past, LogDecoder(name, tty=tty), name=name, shared=False)
                async for line in self._read(history):
                    if line.ts != last:
                        last, at_last = line.ts, set()
                    at_last.add((line.stream, line.text))
                    yield line
                async for line in live.items(queue):
                    if since is not None and line.ts < since.astimezone(UTC):
                        continue
                    if last is not None and (
                        line.ts < last or (line.ts == last and (line.stream, line.text) in at_last)
                    ):
                        continue
                    yield line
            finally:
                live.leave(queue)
        except DockerAPIError as error:
            if error.status == 404:
                raise NotFound(missing) from error
            raise MistError(f"the Docker Engine refused the request: {error.explanation}") from error

    async def events(self, *, since: datetime | None = None) -> AsyncIterator[dict[str, Any]]:
        """Docker's container events (start, die, restart, oom, health_status...) for Mist's containers,
        as Docker sends them, until the caller stops iterating. ``since`` replays the recent past first.

        Readers without ``since`` share one engine stream."""
        filters = {"type": ["container"], "label": self.scope}
        params: dict[str, Any] = {"filters": json.dumps(filters, separators=(",", ":"))}
        if since is not None:
            params["since"] = _unix_time(since)
        hub = self._hub(
            EVENTS_STREAM, "/events", params, JsonLinesDecoder(), name="events", shared=since is None
        )
        try:
            async for event in self._read(hub):
                yield event
        except DockerAPIError as error:
            raise MistError(f"the Docker Engine refused the request: {error.explanation}") from error
        except ValueError as error:
            raise MistError(f"the Docker Engine sent an event Mist cannot read: {error}") from error

    # ------------------------------------------------------------------------------------------ stats

    @_refusals
    async def stats(self) -> list[ContainerStats]:
        """CPU, memory and network of every running Mist container.

        Every reading is a one-shot one (Docker answers at its next collection tick, without waiting for a
        second one), all requested at once on the engine's stats threads. A container's CPU share comes from its reading
        and the one before: the last sweep's, or, for a container seen for the first time, a second reading
        ``FIRST_READING_GAP`` after the first.
        """
        rows = await self._containers(labels=self.scope, status=["running"])
        if not rows:
            self._cpu_readings.clear()
            return []
        if self._host_memory is None:
            info = await self._call(lambda api: api.info()) or {}
            self._host_memory = int(info.get("MemTotal") or 0) or None
        ids = [row["Id"] for row in rows]
        previous, self._cpu_readings = self._cpu_readings, {}
        readings = await self._read_all_stats(ids)
        new = [cid for cid in ids if cid not in previous and cid in readings]
        if new:
            for cid in new:
                reading = stats_math.cpu_reading(readings[cid])
                if reading is not None:
                    previous[cid] = reading
            await asyncio.sleep(FIRST_READING_GAP)
            readings.update(await self._read_all_stats(new))
        result = []
        for row in rows:
            cid = row["Id"]
            raw = readings.pop(cid, None)
            if raw is None:  # gone between the listing and the reading
                continue
            current = stats_math.cpu_reading(raw)
            if current is not None:
                self._cpu_readings[cid] = current
            sample = stats_math.container_stats(
                (row.get("Names") or ["/" + cid[:12]])[0].lstrip("/"),
                row.get("Labels") or {},
                raw,
                previous.get(cid),
                host_memory=self._host_memory,
                project_label=LABEL_PROJECT,
                app_label=LABEL_APP,
            )
            result.append(sample)
        return result

    async def _read_all_stats(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """One-shot raw stats by container id; containers that vanished or failed are left out."""
        results = await asyncio.gather(*(self._read_stats(cid) for cid in ids))
        return {cid: raw for cid, raw in zip(ids, results, strict=True) if raw is not None}

    async def _read_stats(self, container_id: str) -> dict[str, Any] | None:
        try:
            raw = await self.connection.call(
                lambda api: api.stats(container_id, stream=False, one_shot=True), stats=True
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
    async def pull(
        self,
        image: str,
        auth: dict[str, str] | None = None,
        *,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        """Pull ``image`` (``name[:tag]`` or ``name@digest``; ``latest`` when no tag is given) from its
        registry. ``auth`` (``username``, ``password``, optionally ``serveraddress``) goes to the engine as
        data in the request, never through a file or a process's arguments. ``on_progress`` gets Docker's
        status lines (from a worker thread)."""
        _check_reference(image)

        def run(api: docker.APIClient) -> None:
            for event in api.pull(image, stream=True, decode=True, auth_config=auth):
                if "error" in event:
                    raise DockerAPIError(500, str(event.get("error") or "the pull failed"))
                if on_progress is not None and event.get("status"):
                    on_progress(" ".join(str(event[k]) for k in ("id", "status") if event.get(k)))

        try:
            await self._call(run)
        except DockerAPIError as error:
            if error.status in (401, 403) or "unauthorized" in error.explanation.lower():
                raise MistError(
                    f"the registry refused to give image {image}: {error.explanation}. Check the registry "
                    "user name and password (or token) for it"
                ) from error
            raise NotFound(
                f"cannot pull image {image}: {error.explanation}. Check the image's name and tag, that the "
                "registry is reachable from this server, and its credentials"
            ) from error

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


def _check_reference(image: str) -> None:
    """Refuse what cannot be an image reference before it reaches the engine."""
    if not image or any(ch.isspace() or not ch.isprintable() for ch in image) or image.startswith("-"):
        raise MistError(f"{image!r} is not an image reference: write name[:tag] or name@sha256:digest")
