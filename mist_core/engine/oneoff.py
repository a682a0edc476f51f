"""Short-lived containers whose standard streams carry data through Mist: a backup's dump (its stdout read in
bounded chunks) and a restore (its stdin written in chunks), never whole in memory.

The container is created and attached before it starts, so not a byte of its output is missed; its output is
Docker's multiplexed stream (no TTY), split here into stdout (handed on) and stderr (its tail kept for the
error message). The blocking reads and writes are meant for a worker thread; ``close`` from any thread ends
them.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import MistError, NotFound
from .client import DockerAPIError, socket_of

# How the engine runs one docker-py call off the event loop (``Engine._call``).
Call = Callable[[Callable[[Any], Any]], Awaitable[Any]]

# What Docker reads from the socket at once; bigger reads mean fewer trips through Python.
RECV_SIZE = 1 << 20
# The end of stderr kept to explain a failure.
STDERR_TAIL = 8192
_HEADER = struct.Struct(">BxxxL")


@dataclass
class OneOffSpec:
    """A container that runs one command and exits: its volumes (Docker name, path, read-only), its network
    (``none`` unless it must reach a server), and whether its stdin is fed."""

    name: str
    image: str
    command: list[str]  # an argument list, never a shell string
    labels: dict[str, str] = field(default_factory=dict)
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)
    network: str = "none"
    env: dict[str, str] = field(default_factory=dict)
    stdin: bool = False
    workdir: str | None = None


def create_body(spec: OneOffSpec, labels: dict[str, str]) -> dict[str, Any]:
    binds = [f"{volume}:{path}:{'ro' if ro else 'rw'}" for volume, path, ro in spec.mounts]
    body: dict[str, Any] = {
        "Image": spec.image,
        "Cmd": list(spec.command),
        "Env": [f"{key}={value}" for key, value in spec.env.items()],
        "Labels": labels,
        "Tty": False,
        "OpenStdin": spec.stdin,
        "StdinOnce": spec.stdin,
        "AttachStdin": spec.stdin,
        "AttachStdout": True,
        "AttachStderr": True,
        "HostConfig": {
            "NetworkMode": spec.network,
            "Binds": binds,
            "RestartPolicy": {"Name": "no"},
            # Its output goes through the attached socket; no log file keeps a copy of a whole dump.
            "LogConfig": {"Type": "none", "Config": {}},
        },
    }
    if spec.workdir:
        body["WorkingDir"] = spec.workdir
    return body


class OneOff:
    """A created, attached (not yet started) one-off container. ``await start()``, then read stdout with
    ``read`` or feed stdin with ``write`` / ``close_stdin`` (in a thread), ``await wait()`` for its exit code,
    ``await remove()`` in any case."""

    def __init__(self, call: Call, container_id: str, sock: socket.socket, hijacked: Any) -> None:
        self._call = call
        self.id = container_id
        self._sock = sock
        self._hijacked = hijacked  # docker-py's side of the socket: kept, or collecting it closes the socket
        self._raw = bytearray()  # received, not yet split into frames
        self._frame_left = 0  # payload bytes of the current frame still to come
        self._frame_stream = 1
        self._eof = False
        self._stderr = bytearray()
        self._lock = threading.Lock()

    @property
    def stderr(self) -> str:
        """The end of what the command wrote to stderr (so far)."""
        return bytes(self._stderr).decode(errors="replace").strip()

    async def start(self) -> None:
        try:
            await self._call(lambda api: api.start(self.id))
        except DockerAPIError as error:
            raise MistError(f"the container {self.id[:12]} did not start: {error.explanation}") from error

    def read(self, size: int = RECV_SIZE) -> bytes:
        """Up to ``size`` bytes of stdout (at least one unless the output ended: then b""). Blocking."""
        out = bytearray()
        while len(out) < size:
            if self._frame_left:
                take = min(self._frame_left, len(self._raw), size - len(out))
                if take:
                    piece = self._raw[:take]
                    del self._raw[:take]
                    self._frame_left -= take
                    if self._frame_stream == 2:
                        self._stderr += piece
                        del self._stderr[:-STDERR_TAIL]
                    else:
                        out += piece
                    continue
            elif len(self._raw) >= _HEADER.size:
                self._frame_stream, self._frame_left = _HEADER.unpack_from(self._raw)
                del self._raw[: _HEADER.size]
                continue
            if out and not self._raw:
                break  # hand on what there is rather than wait for more
            if self._eof:
                break
            data = self._recv()
            if not data:
                self._eof = True
            else:
                self._raw += data
        return bytes(out)

    def _recv(self) -> bytes:
        try:
            return self._sock.recv(RECV_SIZE)
        except OSError:
            return b""

    def drain(self) -> None:
        """Read the output to its end, keeping only stderr's tail (a restore's output is not data). Blocking."""
        while self.read():
            pass

    def write(self, data: bytes | memoryview) -> None:
        """Feed ``data`` to the command's stdin. Blocking; raises ``MistError`` when the command stopped
        reading (it exited)."""
        try:
            self._sock.sendall(data)
        except OSError as error:
            raise MistError(f"the container stopped reading its input ({error.strerror or error})") from None

    def close_stdin(self) -> None:
        """End the command's input (it sees end of file); its output can still be read."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    async def wait(self) -> int:
        answer = await self._call(lambda api: api.wait(self.id))
        return int((answer or {}).get("StatusCode", -1))

    def close(self) -> None:
        """End any read or write in progress (from any thread)."""
        with self._lock:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()

    async def remove(self) -> None:
        self.close()
        try:
            await self._call(lambda api: api.remove_container(self.id, force=True, v=False))
        except DockerAPIError as error:
            if error.status != 404:
                raise


async def create(call: Call, spec: OneOffSpec, labels: dict[str, str]) -> OneOff:
    """Create the container and attach to its streams; nothing runs yet. On failure nothing is left."""
    body = create_body(spec, labels)
    try:
        created = await call(lambda api: api.create_container_from_config(body, name=spec.name))
    except DockerAPIError as error:
        if error.image_missing:
            raise NotFound(
                f"image {spec.image} is not on the Docker server: pull it (docker pull {spec.image}) or set "
                "another image"
            ) from error
        raise MistError(f"Docker refused to create container {spec.name}: {error.explanation}") from error
    container_id = str(created["Id"])
    params = {"stdout": 1, "stderr": 1, "stream": 1, "stdin": 1 if spec.stdin else 0}
    try:
        hijacked = await call(lambda api: api.attach_socket(container_id, params=params))
        sock = socket_of(hijacked)
        sock.settimeout(None)
    except BaseException:
        await call(lambda api: api.remove_container(container_id, force=True))
        raise
    return OneOff(call, container_id, sock, hijacked)
