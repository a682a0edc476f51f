"""Mist's only door to the Docker Engine: run, stop and remove app containers, read their logs, events and
stats, and prune the images Mist built.

docker-py is synchronous, so every call runs in a thread; streams run in a reader thread of their own (see
``streams``). Mist only ever changes containers, images and networks that carry its ``dev.mist.managed``
label, so an operator's own containers on the same engine are safe from it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import docker
import docker.errors
import requests
from docker.types import LogConfig
from docker.types.daemon import CancellableStream

from ..errors import Conflict, EngineUnavailable, InvalidInput, MistError, NotFound
from ..models import ContainerInfo, ContainerStats, LogLine, Volume
from . import stats as stats_math
from .streams import stream_from_thread

log = logging.getLogger(__name__)

LABEL_MANAGED = "dev.mist.managed"
LABEL_PROJECT = "dev.mist.project"
LABEL_APP = "dev.mist.app"
LABEL_DEPLOYMENT = "dev.mist.deployment"
# Which Mist instance (data directory) made a resource: two instances may share one engine, and each must see
# and clean up only its own containers and images, whose deployment numbers would otherwise collide.
LABEL_INSTANCE = "dev.mist.instance"
NETWORK = "mist"

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# The oldest API Mist needs (one-shot stats); newer engines still serve it, and naming it avoids a version
# round trip every time a client is made.
API_VERSION = "1.41"
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
_ADDRESS_IN_USE = re.compile(r"listen (?:tcp|udp)[46]? (\S+?):(\d+): bind: address already in use")
_LOG_TIMESTAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d) ")

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
    """docker-py ``port_bindings`` from publish specs: ``[ip:]host:container[/proto]`` or ``container``.

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


def parse_log_line(line: bytes) -> tuple[datetime | None, bytes]:
    """Split Docker's ``<RFC 3339 nano timestamp> <text>`` into a UTC datetime and the text."""
    match = _LOG_TIMESTAMP.match(line)
    if not match:
        return None, line
    base, fraction, zone = (g.decode() for g in match.groups(default=b""))
    micros = (fraction + "000000")[:6]
    stamp = datetime.fromisoformat(f"{base}.{micros}{'+00:00' if zone == 'Z' else zone}")
    return stamp.astimezone(UTC), line[match.end() :]


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


def _port_in_use(error: docker.errors.APIError) -> Conflict | None:
    text = str(error.explanation or error)
    match = _PORT_ALLOCATED.search(text) or _ADDRESS_IN_USE.search(text)
    if not match:
        return None
    host, port = match.groups()
    return Conflict(
        f"host port {host}:{port} is already in use: pick another host port in the app's publish "
        "setting, or stop what listens there",
        field="publish",
    )


class Engine:
    """An async face on one Docker Engine, limited to what Mist manages."""

    def __init__(self, base_url: str | None = None, *, instance: str | None = None) -> None:
        self.base_url = base_url or os.environ.get("MIST_DOCKER_HOST") or DEFAULT_DOCKER_HOST
        self.instance = instance
        # The label filter that selects what this engine object may see and touch.
        self.scope = [MANAGED_FILTER] + ([f"{LABEL_INSTANCE}={instance}"] if instance else [])
        self._client: docker.APIClient | None = None
        self._host_memory: int | None = None
        # The previous CPU reading of each running container, by id: one-shot stats have none of their own.
        self._cpu_readings: dict[str, tuple[int, int, int]] = {}
        self._stats_pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------------------------------ plumbing

    @property
    def api(self) -> docker.APIClient:
        if self._client is None:
            try:
                self._client = docker.APIClient(base_url=self.base_url, version=API_VERSION, max_pool_size=32)
            except docker.errors.DockerException as error:
                raise InvalidInput(
                    f"{self.base_url!r} is not a Docker Engine address ({error}): set MIST_DOCKER_HOST to "
                    "unix:///path/docker.sock or tcp://host:port",
                    field="MIST_DOCKER_HOST",
                ) from error
        return self._client

    def unavailable(self) -> EngineUnavailable:
        return EngineUnavailable(
            f"the Docker Engine does not answer at {self.base_url}: start it (make docker) or set MIST_DOCKER_HOST"
        )

    def _guarded(self, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return call(*args, **kwargs)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            raise self.unavailable() from error
        except docker.errors.APIError as error:
            # What the methods did not turn into a precise error: still a MistError, with Docker's words.
            raise MistError(f"the Docker Engine refused the request: {error.explanation or error}") from error
        except docker.errors.DockerException as error:
            # docker-py's own wrapping of "cannot connect" (from its transports).
            if "connect" in str(error).lower():
                raise self.unavailable() from error
            raise MistError(f"Docker client error: {error}") from error

    async def _call(self, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(self._guarded, call, *args, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._stats_pool is not None:
            self._stats_pool.shutdown(wait=False, cancel_futures=True)
            self._stats_pool = None

    # ------------------------------------------------------------------------------------------ engine

    async def ping(self) -> None:
        """Raise ``EngineUnavailable`` unless the engine answers."""
        await self._call(lambda: self.api.ping())

    async def ensure_network(self, name: str = NETWORK) -> None:
        """Create the bridge network ``name`` (labelled as Mist's) unless it exists."""
        await self._call(self._ensure_network, name)

    def _ensure_network(self, name: str) -> None:
        api = self.api
        if any(net.get("Name") == name for net in api.networks(names=[name])):
            return
        try:
            api.create_network(name, driver="bridge", labels={LABEL_MANAGED: "true"}, check_duplicate=True)
        except docker.errors.APIError as error:
            if error.status_code != 409:  # created meanwhile by someone else: fine
                raise

    def _ensure_volume(self, volume: Volume, labels: dict[str, str]) -> None:
        api = self.api
        try:
            api.inspect_volume(volume.name)
            return
        except docker.errors.NotFound:
            pass
        volume_labels = {LABEL_MANAGED: "true"}
        volume_labels.update(
            {k: v for k, v in labels.items() if k in (LABEL_PROJECT, LABEL_APP, LABEL_INSTANCE)}
        )
        api.create_volume(volume.name, labels=volume_labels)

    # ------------------------------------------------------------------------------------------ containers

    async def run(self, spec: ContainerSpec) -> RunningContainer:
        """Create and start a container; on any failure nothing is left behind."""
        return await self._call(self._run, spec)

    def _run(self, spec: ContainerSpec) -> RunningContainer:
        api = self.api
        port_bindings = parse_publish(list(spec.publish))
        policy = restart_policy(spec.restart)
        for volume in spec.volumes:
            self._ensure_volume(volume, spec.labels)
        binds = {v.name: {"bind": v.path, "mode": "rw"} for v in spec.volumes}
        binds.update(
            {
                host: {"bind": path, "mode": "ro" if ro else "rw"}
                for host, (path, ro) in spec.host_dirs.items()
            }
        )
        host_config = api.create_host_config(
            port_bindings=port_bindings or None,
            binds=binds or None,
            extra_hosts=dict(spec.extra_hosts) or None,
            mem_limit=spec.memory,
            memswap_limit=spec.memory,
            nano_cpus=round(spec.cpus * 1e9) if spec.cpus else None,
            restart_policy=policy,
            network_mode=spec.network,
            log_config=LogConfig(type=LogConfig.types.JSON, config=LOG_CONFIG),
        )
        networking = api.create_networking_config(
            {spec.network: api.create_endpoint_config(aliases=list(spec.aliases) or None)}
        )
        labels = {**spec.labels, LABEL_MANAGED: "true"}
        if self.instance:
            labels[LABEL_INSTANCE] = self.instance
        try:
            created = api.create_container(
                image=spec.image,
                command=list(spec.command) if spec.command else None,
                name=spec.name,
                environment=dict(spec.env),
                labels=labels,
                ports=[tuple(key.split("/")) for key in port_bindings] or None,
                host_config=host_config,
                networking_config=networking,
                detach=True,
            )
        except docker.errors.ImageNotFound as error:
            raise NotFound(f"image {spec.image} does not exist: build the app again") from error
        except docker.errors.NotFound as error:
            raise NotFound(
                f"cannot create container {spec.name}: {error.explanation}; "
                f"check that network {spec.network} exists (ensure_network)"
            ) from error
        except docker.errors.APIError as error:
            if error.status_code == 409:
                raise Conflict(
                    f"a container named {spec.name} already exists: remove it first or choose another name"
                ) from error
            raise MistError(f"Docker refused to create container {spec.name}: {error.explanation}") from error
        container_id = created["Id"]
        try:
            api.start(container_id)
            info = api.inspect_container(container_id)
        except docker.errors.APIError as error:
            self._remove_quietly(container_id)
            raise _port_in_use(error) or MistError(
                f"container {spec.name} did not start: {error.explanation}"
            ) from error
        except BaseException:
            self._remove_quietly(container_id)
            raise
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        ip = (networks.get(spec.network) or {}).get("IPAddress") or None
        return RunningContainer(id=container_id, name=spec.name, ip=ip)

    def _remove_quietly(self, container: str) -> None:
        try:
            self.api.remove_container(container, force=True)
        except Exception:  # noqa: BLE001 - best effort cleanup after a failure that is already reported
            log.warning("could not remove container %s after a failed start", container, exc_info=True)

    def _managed(self, name: str) -> dict[str, Any] | None:
        """The container's inspect data, None if missing; refuses a container Mist did not make."""
        try:
            info = self.api.inspect_container(name)
        except docker.errors.NotFound:
            return None
        labels = (info.get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL_MANAGED) != "true":
            raise Conflict(
                f"container {name} is not managed by Mist (it lacks the label {LABEL_MANAGED}=true): "
                "Mist leaves it alone; manage it with docker directly"
            )
        return info

    async def stop(self, name: str, grace: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds. A missing container is not an error."""

        def stop() -> None:
            if self._managed(name) is None:
                return
            try:
                self.api.stop(name, timeout=math.ceil(grace))
            except docker.errors.NotFound:
                pass

        await self._call(stop)

    async def start(self, name: str) -> None:
        def start() -> None:
            if self._managed(name) is None:
                raise NotFound(f"container {name} does not exist: deploy the app again")
            try:
                self.api.start(name)
            except docker.errors.APIError as error:
                raise _port_in_use(error) or MistError(
                    f"container {name} did not start: {error.explanation}"
                ) from error

        await self._call(start)

    async def restart(self, name: str, grace: float = 10) -> None:
        def restart() -> None:
            if self._managed(name) is None:
                raise NotFound(f"container {name} does not exist: deploy the app again")
            self.api.restart(name, timeout=math.ceil(grace))

        await self._call(restart)

    async def remove(self, name: str) -> None:
        """Force-remove a Mist container. A missing one is not an error; one without Mist's label is refused."""

        def remove() -> None:
            if self._managed(name) is None:
                return
            try:
                self.api.remove_container(name, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as error:
                if error.status_code == 409 and "already in progress" in str(error.explanation):
                    return
                raise

        await self._call(remove)

    async def inspect(self, name: str) -> dict[str, Any] | None:
        """Docker's inspect data of a container, or None if it does not exist."""

        def inspect() -> dict[str, Any] | None:
            try:
                return self.api.inspect_container(name)
            except docker.errors.NotFound:
                return None

        return await self._call(inspect)

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
        rows = await self._call(lambda: self.api.containers(all=all, filters={"label": labels}))
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
        async for line in stream_from_thread(
            lambda: self._guarded(self._open_logs, name, follow, tail, since), thread_name=f"mist-logs-{name}"
        ):
            yield line

    def _open_logs(
        self, name: str, follow: bool, tail: int | None, since: datetime | None
    ) -> CancellableStream:
        api = self.api
        try:
            tty = bool(api.inspect_container(name)["Config"].get("Tty"))
        except docker.errors.NotFound as error:
            raise NotFound(f"container {name} does not exist: is the app deployed?") from error
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": 1,
            "follow": int(follow),
            "tail": "all" if tail is None else str(max(tail, 0)),
        }
        if since is not None:
            params["since"] = _unix_time(since)
        # docker-py's logs() drops which stream a frame came from; the raw response keeps it.
        response = api._get(api._url("/containers/{0}/logs", name), params=params, stream=True)
        try:
            api._raise_for_status(response)
        except docker.errors.NotFound as error:
            raise NotFound(f"container {name} does not exist: is the app deployed?") from error
        api._disable_socket_timeout(api._get_raw_response_socket(response))
        return CancellableStream(_log_lines(response.raw, name, tty), response)

    async def events(self, *, since: datetime | None = None) -> AsyncIterator[dict[str, Any]]:
        """Docker's container events (start, die, restart, oom, health_status...) for Mist's containers,
        as Docker sends them, until the caller stops iterating. ``since`` replays the recent past first."""

        def open_events() -> CancellableStream:
            return self.api.events(
                since=_unix_time(since) if since is not None else None,
                decode=True,
                filters={"type": "container", "label": self.scope},
            )

        async for event in stream_from_thread(lambda: self._guarded(open_events), thread_name="mist-events"):
            yield event

    # ------------------------------------------------------------------------------------------ stats

    async def stats(self) -> list[ContainerStats]:
        """CPU, memory and network of every running Mist container.

        Docker answers a stats request at its next collection tick (about a second), whichever container
        it is for, so the requests run concurrently and a sweep costs about one tick. Containers seen before
        get a one-shot reading and their CPU share since this engine's previous reading; a new container gets
        Docker's two-reading answer, which carries its own previous reading.
        """
        rows = await self._call(
            lambda: self.api.containers(filters={"label": self.scope, "status": ["running"]})
        )
        if not rows:
            self._cpu_readings.clear()
            return []
        if self._host_memory is None:
            info = await self._call(lambda: self.api.info())
            self._host_memory = int(info.get("MemTotal") or 0) or None
        readings = await self._read_all_stats([(row["Id"], row["Id"] in self._cpu_readings) for row in rows])
        previous, self._cpu_readings = self._cpu_readings, {}
        result = []
        for row in rows:
            raw = readings.get(row["Id"])
            if raw is None:  # gone between the listing and the reading
                continue
            cid = row["Id"]
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
        if self.base_url.startswith("unix://"):
            gate = asyncio.Semaphore(STATS_CONCURRENCY)
            socket_path = self.base_url[len("unix://") :]

            async def read(cid: str, seen: bool) -> dict[str, Any] | None:
                async with gate:
                    return await _unix_stats(socket_path, cid, seen)

            results = await asyncio.gather(*(read(cid, seen) for cid, seen in containers))
        else:
            loop = asyncio.get_running_loop()
            pool = self._stats_executor()
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, self._read_stats, cid, seen) for cid, seen in containers)
            )
        return {cid: raw for (cid, _), raw in zip(containers, results, strict=True) if raw is not None}

    def _stats_executor(self) -> ThreadPoolExecutor:
        # Its own threads: a sweep parks one thread per container for up to a tick, which must not starve
        # the default executor that every other engine call uses.
        if self._stats_pool is None:
            self._stats_pool = ThreadPoolExecutor(
                max_workers=STATS_CONCURRENCY, thread_name_prefix="mist-stats"
            )
        return self._stats_pool

    def _read_stats(self, container_id: str, seen: bool) -> dict[str, Any] | None:
        try:
            return self._guarded(self.api.stats, container_id, stream=False, one_shot=True if seen else None)
        except MistError as error:
            log.debug("no stats for %s: %s", container_id, error)
            return None

    # ------------------------------------------------------------------------------------------ images

    async def image_exists(self, tag: str) -> bool:
        def exists() -> bool:
            try:
                self.api.inspect_image(tag)
                return True
            except docker.errors.NotFound:
                return False

        return await self._call(exists)

    async def remove_image(self, tag: str) -> None:
        """Remove (untag) one of Mist's images. A missing image is not an error; another's is refused."""
        await self._call(self._remove_image, tag)

    def _remove_image(self, tag: str) -> None:
        api = self.api
        try:
            info = api.inspect_image(tag)
        except docker.errors.NotFound:
            return
        labels = (info.get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL_MANAGED) != "true":
            raise Conflict(
                f"image {tag} was not built by Mist (it lacks the label {LABEL_MANAGED}=true): "
                "Mist leaves it alone; remove it with docker directly"
            )
        try:
            api.remove_image(tag)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if error.status_code == 409:
                raise Conflict(
                    f"image {tag} is still used by a container: remove the container first"
                ) from error
            raise

    async def prune_app_images(self, project: str, app: str, keep: int, protect: set[str]) -> list[str]:
        """Remove an app's images beyond the ``keep`` newest deployments. Never removes one in ``protect``
        (tags or ids), one used by any container, or one without Mist's labels. Returns the removed tags."""
        return await self._call(self._prune_app_images, project, app, keep, protect)

    def _prune_app_images(self, project: str, app: str, keep: int, protect: set[str]) -> list[str]:
        api = self.api
        images = api.images(
            filters={"label": [*self.scope, f"{LABEL_PROJECT}={project}", f"{LABEL_APP}={app}"]}
        )
        numbered = [
            (deployment, image)
            for image in images
            if (deployment := _int_label(image.get("Labels") or {}, LABEL_DEPLOYMENT)) is not None
        ]
        numbered.sort(key=lambda pair: pair[0], reverse=True)
        in_use = {c.get("ImageID") for c in api.containers(all=True)}
        removed: list[str] = []
        for _, image in numbered[max(keep, 0) :]:
            tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
            if image["Id"] in in_use or image["Id"] in protect or protect.intersection(tags):
                continue
            for tag in tags or [image["Id"]]:
                try:
                    api.remove_image(tag)
                    removed.append(tag)
                except docker.errors.NotFound:
                    continue
                except docker.errors.APIError as error:
                    # A container created meanwhile, or a child image: keep it and carry on.
                    log.info("kept image %s: %s", tag, error.explanation)
        return removed

    async def remove_deployment_leftovers(self, deployment_id: int) -> None:
        """Remove the containers of a deployment and its image (unless a container still uses it)."""

        def remove() -> None:
            api = self.api
            label = [*self.scope, f"{LABEL_DEPLOYMENT}={deployment_id}"]
            for row in api.containers(all=True, filters={"label": label}):
                self._remove_quietly(row["Id"])
            in_use = {c.get("ImageID") for c in api.containers(all=True)}
            for image in api.images(filters={"label": label}):
                if image["Id"] in in_use:
                    continue
                for tag in [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"] or [image["Id"]]:
                    try:
                        api.remove_image(tag)
                    except docker.errors.APIError as error:
                        log.info("kept image %s: %s", tag, error.explanation)

        await self._call(remove)


async def _unix_stats(socket_path: str, container_id: str, seen: bool) -> dict[str, Any] | None:
    """One stats request straight over the engine's Unix socket.

    The sampler asks for every container every few seconds; a bare HTTP/1.0 exchange on the event loop costs
    about a third of the CPU of docker-py's requests stack in a thread, which matters with a hundred apps.
    """
    query = "stream=0&one-shot=1" if seen else "stream=0"
    request = f"GET /v{API_VERSION}/containers/{container_id}/stats?{query} HTTP/1.0\r\nHost: docker\r\n\r\n"
    writer = None
    try:
        async with asyncio.timeout(STATS_TIMEOUT):
            reader, writer = await asyncio.open_unix_connection(socket_path)
            writer.write(request.encode())
            response = await reader.read()
    except (OSError, TimeoutError) as error:
        log.debug("no stats for %s: %s", container_id, error)
        return None
    finally:
        if writer is not None:
            writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        log.debug("no stats for %s: %s", container_id, head[:200])
        return None
    try:
        raw = json.loads(body)
    except ValueError:
        return None
    return raw if isinstance(raw, dict) else None


def _read_exactly(raw: Any, size: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        chunk = raw.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _log_lines(raw: Any, source: str, tty: bool) -> Iterator[LogLine]:
    """LogLines from Docker's log stream: 8-byte frame headers (stream, length) unless the container has
    a TTY. Each frame is one timestamped message; a message without a newline is continued by the next."""
    if tty:
        yield from _tty_log_lines(raw, source)
        return
    pending: dict[str, tuple[datetime, bytes]] = {}
    names = {1: "stdout", 2: "stderr"}
    while True:
        header = _read_exactly(raw, 8)
        if len(header) < 8:
            break
        kind, length = struct.unpack(">BxxxL", header)
        payload = _read_exactly(raw, length)
        if not payload:
            continue
        stream = names.get(kind, "stdout")
        stamp, text = parse_log_line(payload)
        started, buffered = pending.pop(stream, (stamp or datetime.now(UTC), b""))
        *complete, rest = (buffered + text).split(b"\n")
        for line in complete:
            yield _log_line(started, source, stream, line)
        if rest:
            pending[stream] = (started, rest)
    for stream, (started, rest) in pending.items():
        yield _log_line(started, source, stream, rest)


def _tty_log_lines(raw: Any, source: str) -> Iterator[LogLine]:
    # A TTY merges the streams and Docker sends plain bytes: every line starts with its timestamp.
    read = raw.read1 if hasattr(raw, "read1") else raw.read
    buffered = b""
    while chunk := read(65536):
        *complete, buffered = (buffered + chunk).split(b"\n")
        for line in complete:
            stamp, text = parse_log_line(line)
            yield _log_line(stamp or datetime.now(UTC), source, "stdout", text)
    if buffered:
        stamp, text = parse_log_line(buffered)
        yield _log_line(stamp or datetime.now(UTC), source, "stdout", text)


def _log_line(ts: datetime, source: str, stream: str, text: bytes) -> LogLine:
    return LogLine(ts=ts, source=source, stream=stream, text=text.rstrip(b"\r").decode(errors="replace"))  # type: ignore[arg-type]
