"""An app's live container as the core sees it beyond deploying: what ``describe`` shows of it (secret values
masked), restarting it with the ``restarting`` status, keeping Docker's restart count, and exec sessions into
it (``ExecChannel`` over the engine's interactive exec)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import struct
from datetime import datetime
from typing import Any

from .engine import Engine
from .engine.client import DockerAPIError
from .engine.docker import ExecSession
from .errors import InvalidInput, MistError
from .events import EventBus
from .execs import DEFAULT_SHELL, ExecChannel
from .models import App, ContainerDescription, ContainerEnvVar, ContainerMount
from .store import Store, ts

log = logging.getLogger("mist.containers")

# What one exec command may be: a person's command line, not a payload.
MAX_ARGUMENTS = 1000
MAX_COMMAND_BYTES = 64 * 1024
# How much one read of the exec socket takes.
READ_SIZE = 32 * 1024


# ---------------------------------------------------------------------------------------------- describe


def _moment(value: Any) -> datetime | None:
    if not value or str(value).startswith("0001-01-01"):
        return None
    text = str(value)
    # Docker gives nanoseconds; Python takes microseconds.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return None


def _ports(info: dict[str, Any]) -> list[str]:
    out = []
    for port, bindings in sorted(((info.get("NetworkSettings") or {}).get("Ports") or {}).items()):
        if not bindings:
            out.append(port)
            continue
        for b in bindings:
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{port}")
    return out


def _mounts(info: dict[str, Any]) -> list[ContainerMount]:
    out = []
    for m in info.get("Mounts") or []:
        kind = str(m.get("Type") or "")
        out.append(
            ContainerMount(
                type=kind,
                name=m.get("Name") if kind == "volume" else None,
                # A volume's host path says nothing the name does not; a bind mount is its host path.
                source=m.get("Source") if kind == "bind" else None,
                destination=str(m.get("Destination") or ""),
                read_only=not m.get("RW", True),
            )
        )
    return out


def describe(app: App, info: dict[str, Any], secret_keys: set[str]) -> ContainerDescription:
    """``info`` (Docker's inspect data of the app's live container) as Mist shows it: the value of every
    variable in ``secret_keys`` is masked here, before anything leaves the core."""
    config = info.get("Config") or {}
    state = info.get("State") or {}
    host = info.get("HostConfig") or {}
    env = []
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        secret = key in secret_keys
        env.append(ContainerEnvVar(key=key, value=None if secret else value, secret=secret))
    policy = host.get("RestartPolicy") or {}
    policy_name = policy.get("Name") or None
    if policy_name == "on-failure" and policy.get("MaximumRetryCount"):
        policy_name = f"on-failure:{policy['MaximumRetryCount']}"
    health = state.get("Health") or {}
    return ContainerDescription(
        app=app.ref,
        deployment_id=app.live_deployment_id,
        id=str(info.get("Id") or ""),
        name=str(info.get("Name") or "").lstrip("/"),
        image=str(config.get("Image") or ""),
        image_id=str(info.get("Image") or ""),
        command=[*(info.get("Path") and [str(info["Path"])] or []), *map(str, info.get("Args") or [])],
        working_dir=config.get("WorkingDir") or None,
        user=config.get("User") or None,
        env=env,
        mounts=_mounts(info),
        ports=_ports(info),
        networks=sorted(((info.get("NetworkSettings") or {}).get("Networks") or {}).keys()),
        state=str(state.get("Status") or ""),
        health=health.get("Status") or None,
        restart_policy=policy_name,
        restart_count=int(info.get("RestartCount") or 0),
        exit_code=state.get("ExitCode") if state.get("Status") in ("exited", "dead") else None,
        started_at=_moment(state.get("StartedAt")),
        finished_at=_moment(state.get("FinishedAt")),
    )


async def secret_keys(store: Store, deployment_id: int) -> set[str]:
    """The variables the deployment's config snapshot marks secret."""
    row = await store.one(
        "SELECT json_extract(config, '$.env') AS env FROM deployments WHERE id = ?", (deployment_id,)
    )
    entries = json.loads(row["env"]) if row and row["env"] else []
    return {str(e["key"]) for e in entries if e.get("secret")}


# ---------------------------------------------------------------------------------------------- restarts


async def set_status(store: Store, events: EventBus, app: App, status: str) -> None:
    async with store.write() as w:
        await w.execute("UPDATE apps SET status = ?, updated_at = ? WHERE id = ?", (status, ts(), app.id))
    events.announce("app", "status", project=app.project, app=app.name, state=status)


async def restart(engine: Engine, store: Store, events: EventBus, app: App, name: str, grace: float) -> str:
    """Restart the live container: the app shows ``restarting`` for as long as it takes (the container's
    exit on the way is expected, not a crash), then ``live`` if the container runs again, else ``crashed``.
    Returns that final status; a failed restart is raised after the status is set."""
    await set_status(store, events, app, "restarting")
    try:
        await engine.restart(name, grace=grace)
    except BaseException:
        await set_status(store, events, app, await _running_status(engine, name))
        raise
    return await _running_status(engine, name)


async def _running_status(engine: Engine, name: str) -> str:
    try:
        info = await engine.inspect(name)
    except MistError:
        return "crashed"
    return "live" if info and (info.get("State") or {}).get("Running") else "crashed"


async def record_restart_count(
    engine: Engine, store: Store, events: EventBus, name: str, deployment_id: int, project: str, app: str
) -> None:
    """Keep Docker's restart count of a live container with its deployment, and announce a change."""
    try:
        info = await engine.inspect(name)
    except MistError as err:
        log.debug("restart count of %s: %s", name, err)
        return
    if info is None:
        return
    count = int(info.get("RestartCount") or 0)
    async with store.write() as w:
        row = await w.one(
            "SELECT COALESCE(json_extract(config, '$.restart_count'), 0) AS n FROM deployments WHERE id = ?",
            (deployment_id,),
        )
        if row is None or row["n"] == count:
            return
        await w.execute(
            "UPDATE deployments SET config = json_set(config, '$.restart_count', ?) WHERE id = ?",
            (count, deployment_id),
        )
    events.announce(
        "app", "restarts", project=project, app=app, deployment_id=deployment_id, restart_count=count
    )


# ---------------------------------------------------------------------------------------------- exec


def exec_command(command: list[str] | None) -> list[str]:
    """The command an exec runs (default: a shell), checked: an argument list, never a shell string."""
    if command is None or command == []:
        return list(DEFAULT_SHELL)
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        raise InvalidInput(
            "the command must be a list of strings (the program and its arguments)", field="command"
        )
    if not command[0]:
        raise InvalidInput("the command's program is empty: name the program to run", field="command")
    if len(command) > MAX_ARGUMENTS:
        raise InvalidInput(f"the command has more than {MAX_ARGUMENTS} arguments", field="command")
    if sum(len(a.encode()) for a in command) > MAX_COMMAND_BYTES:
        raise InvalidInput(f"the command is longer than {MAX_COMMAND_BYTES} bytes", field="command")
    if any("\x00" in a for a in command):
        raise InvalidInput("an argument of the command holds a NUL character", field="command")
    return command


def terminal_size(height: int | None, width: int | None) -> tuple[int, int] | None:
    if height is None and width is None:
        return None
    if height is None or width is None:
        raise InvalidInput(
            "give the terminal's height and width together", field="height" if height is None else "width"
        )
    for value, name in ((height, "height"), (width, "width")):
        if not 0 < value < 65536:
            raise InvalidInput(f"the terminal {name} must be between 1 and 65535, not {value}", field=name)
    return height, width


class EngineExecChannel(ExecChannel):
    """An exec session on the engine's hijacked socket. Without a TTY, Docker puts an 8-byte header before
    each piece of output (which stream, how long); with one, the output is the terminal's bytes as they are."""

    def __init__(
        self, session: ExecSession, *, tty: bool, engine: Engine | None = None, name: str = ""
    ) -> None:
        self.session = session
        self.engine = engine
        self.name = name
        self.tty = tty
        self._sock: socket.socket = session.socket
        self._sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._ended = False
        self._closed = False

    async def read(self) -> tuple[int, bytes] | None:
        while True:
            if not self.tty and len(self._buffer) >= 8:
                stream, length = struct.unpack_from(">BxxxI", self._buffer)
                if len(self._buffer) >= 8 + length:
                    data = bytes(self._buffer[8 : 8 + length])
                    del self._buffer[: 8 + length]
                    return (2 if stream == 2 else 1), data
            if self._ended:
                return None
            try:
                data = await self._loop.sock_recv(self._sock, READ_SIZE)
            except OSError:
                data = b""
            if not data:
                self._ended = True
                continue
            if self.tty:
                return 1, data
            self._buffer += data

    async def write(self, data: bytes) -> None:
        if data:
            await self._loop.sock_sendall(self._sock, data)

    async def close_input(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    async def resize(self, height: int, width: int) -> None:
        size = terminal_size(height, width)
        if self.tty and size is not None:
            # An exec that could not start (no such program) is gone from the engine already; what went
            # wrong comes on its output.
            with contextlib.suppress(MistError, DockerAPIError):
                await self.session.resize(*size)

    async def exit_code(self) -> int:
        # Docker marks the exec finished a moment after its output ends.
        for _ in range(50):
            code = await self.session.exit_code()
            if code is not None:
                return int(code)
            await asyncio.sleep(0.05)
        return -1

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.session.close()
            # Docker leaves an exec running when its connection closes (a terminal's too): a session that
            # ends before its command did (the person went away) takes the command with it.
            if self.engine is not None and not self._ended:
                try:
                    await stop_exec(self.engine, self.name, self.session)
                except Exception as err:  # noqa: BLE001 - the session is over whatever this says
                    log.warning("could not stop the exec in %s: %s", self.name, err)


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (host pids), from this host's /proc."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    queue.extend(int(c) for c in f.read().split())
    return found


def _container_pid(host_pid: int) -> int | None:
    """The pid ``host_pid`` has in its container's pid namespace (the last of NSpid)."""
    try:
        with open(f"/proc/{host_pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


async def stop_exec(engine: Engine, name: str, session: ExecSession) -> None:
    """Kill a still-running exec and what it started. Docker has no call for it: the exec's process is found
    through the engine's host pid in /proc (the engine is on this machine), then killed by ``kill`` run in
    the container, with the container's own permissions; where the image has no ``kill``, from here."""
    info = await session.inspect()
    if not info.get("Running") or not info.get("Pid"):
        return
    host_pids = _process_tree(int(info["Pid"]))
    inside = [p for p in map(_container_pid, host_pids) if p is not None]
    if not inside:
        log.warning("the exec in %s is still running and its processes are not visible here", name)
        return
    with contextlib.suppress(MistError, DockerAPIError):
        if (await engine.exec(name, ["kill", "-KILL", *map(str, inside)])).exit_code == 0:
            return
    for pid in host_pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


async def open_exec(
    engine: Engine, app: App, name: str, command: list[str] | None, *, tty: bool, size: tuple[int, int] | None
) -> EngineExecChannel:
    """Start ``command`` (checked by ``exec_command``) in the app's live container ``name``."""
    session = await engine.exec_interactive(name, exec_command(command), tty=tty)
    channel = EngineExecChannel(session, tty=tty, engine=engine, name=name)
    if size is not None and tty:
        await channel.resize(*size)
    return channel
