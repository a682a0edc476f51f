"""A command running in an app's live container, as the Mist API hands it out: ``ExecChannel`` (bytes in and
out, resize, exit status), and the framing that carries one over a single HTTP request whose body and response
both stream (``POST .../exec``; see docs/api.md).

Every frame is one kind byte, a 4-byte big-endian length and that many bytes. The client's first frame is
``START`` (JSON: the command as an argument list, ``tty``, the terminal's size); then ``INPUT``, ``RESIZE``
(height and width, two 16-bit numbers), ``INPUT_END`` once standard input is closed, and ``PING`` every few
seconds so a quiet session is not taken for a stalled upload. The daemon answers ``STDOUT`` and ``STDERR``
frames, then one ``EXIT`` (JSON ``{"exit_code": N}``) or ``ERROR`` (a problem document) as the last frame."""

from __future__ import annotations

import json
import struct
from abc import ABC, abstractmethod
from typing import Any

MEDIA_TYPE = "application/vnd.mist.exec"

START = b"S"
INPUT = b"I"
INPUT_END = b"E"
RESIZE = b"R"
PING = b"P"
STDOUT = b"1"
STDERR = b"2"
EXIT = b"X"
ERROR = b"!"

CLIENT_KINDS = frozenset({START, INPUT, INPUT_END, RESIZE, PING})
SERVER_KINDS = frozenset({STDOUT, STDERR, EXIT, ERROR})

# No frame is larger: input is what a person types or a pipe delivers in pieces, output is cut into pieces.
MAX_FRAME = 64 * 1024
HEADER = struct.Struct(">cI")
SIZE = struct.Struct(">HH")
# How often the client says it is still there (the daemon closes a request body that stalls for 15 s).
PING_SECONDS = 4.0
DEFAULT_SHELL = ["/bin/sh"]
MISSING_START = "an exec session starts with a start frame: the command, tty and the terminal's size"


class FrameError(ValueError):
    """The other side sent something that is not a frame of this protocol."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_FRAME:
        raise FrameError(f"a frame holds at most {MAX_FRAME} bytes, not {len(payload)}")
    return HEADER.pack(kind, len(payload)) + payload


def frames(kind: bytes, data: bytes) -> list[bytes]:
    """``data`` cut into frames of ``kind`` no larger than ``MAX_FRAME``."""
    return [frame(kind, data[i : i + MAX_FRAME]) for i in range(0, len(data), MAX_FRAME)] or [frame(kind)]


def json_frame(kind: bytes, value: Any) -> bytes:
    return frame(kind, json.dumps(value).encode())


def size_frame(height: int, width: int) -> bytes:
    return frame(RESIZE, SIZE.pack(_dimension(height, "height"), _dimension(width, "width")))


def parse_size(payload: bytes) -> tuple[int, int]:
    if len(payload) != SIZE.size:
        raise FrameError("a resize frame holds a height and a width (two 16-bit numbers)")
    height, width = SIZE.unpack(payload)
    return height, width


def _dimension(value: int, name: str) -> int:
    if not 0 < value < 65536:
        raise FrameError(f"the terminal {name} must be between 1 and 65535, not {value}")
    return value


class FrameReader:
    """Frames out of a byte stream that arrives in pieces of any size."""

    def __init__(self, kinds: frozenset[bytes]) -> None:
        self.kinds = kinds
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += data
        out: list[tuple[bytes, bytes]] = []
        while len(self._buffer) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buffer)
            if kind not in self.kinds:
                raise FrameError(f"unknown frame kind {kind!r}")
            if length > MAX_FRAME:
                raise FrameError(f"a frame of {length} bytes is larger than {MAX_FRAME}")
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            out.append((kind, bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return out

    @property
    def pending(self) -> int:
        return len(self._buffer)


class ExecChannel(ABC):
    """A command running in an app's live container. ``read`` gives its output as it comes, as
    ``(stream, bytes)`` with stream 1 (stdout; everything, with a TTY) or 2 (stderr), and ``None`` once it
    ended; ``exit_code`` is then its exit status. ``close`` ends the session (the command keeps no terminal)."""

    tty: bool

    @abstractmethod
    async def read(self) -> tuple[int, bytes] | None: ...

    @abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abstractmethod
    async def close_input(self) -> None:
        """Standard input is at its end (the command reads EOF)."""

    @abstractmethod
    async def resize(self, height: int, width: int) -> None: ...

    @abstractmethod
    async def exit_code(self) -> int:
        """The command's exit status, once ``read`` returned ``None``."""

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> ExecChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
