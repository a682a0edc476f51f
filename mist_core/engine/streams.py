"""Decoding Docker's streamed answers as they arrive: container logs (8-byte frame headers unless the
container has a TTY) into ``LogLine``s, and the events stream (one JSON object per line) into dicts.

Both decoders are fed whatever pieces the connection delivers; a frame, a line or a JSON object may be split
across pieces anywhere.
"""

from __future__ import annotations

import json
import re
import struct
from datetime import UTC, datetime
from typing import Any

from ..models import LogLine

_LOG_TIMESTAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d) ")
_FRAME_HEADER = struct.Struct(">BxxxL")
_STREAMS = {1: "stdout", 2: "stderr"}
# A line longer than this is handed out in parts rather than held whole in memory.
MAX_LINE = 1024 * 1024


def parse_log_line(line: bytes) -> tuple[datetime | None, bytes]:
    """Split Docker's ``<RFC 3339 nano timestamp> <text>`` into a UTC datetime and the text."""
    match = _LOG_TIMESTAMP.match(line)
    if not match:
        return None, line
    base, fraction, zone = (g.decode() for g in match.groups(default=b""))
    micros = (fraction + "000000")[:6]
    stamp = datetime.fromisoformat(f"{base}.{micros}{'+00:00' if zone == 'Z' else zone}")
    return stamp.astimezone(UTC), line[match.end() :]


def _log_line(ts: datetime, source: str, stream: str, text: bytes) -> LogLine:
    return LogLine(ts=ts, source=source, stream=stream, text=text.rstrip(b"\r").decode(errors="replace"))  # type: ignore[arg-type]


class LogDecoder:
    """Docker's log stream of one container into ``LogLine``s.

    Without a TTY every frame is ``(stream, length)`` in 8 bytes, then one timestamped message; Docker splits
    a long line into several messages (16 KB each), the first carrying the timestamp the line keeps. With a
    TTY the streams are merged and the bytes come plain, each line starting with its timestamp.
    """

    def __init__(self, source: str, *, tty: bool) -> None:
        self.source = source
        self.tty = tty
        self._buffer = b""
        # Per stream: when the unfinished line started, and its text so far.
        self._pending: dict[str, tuple[datetime, bytes]] = {}

    def feed(self, data: bytes) -> list[LogLine]:
        """The lines completed by ``data``."""
        self._buffer += data
        return self._tty_lines() if self.tty else self._frame_lines()

    def end(self) -> list[LogLine]:
        """What is left when the stream ends: unfinished lines (a truncated frame is dropped)."""
        lines = []
        if self.tty and self._buffer:
            stamp, text = parse_log_line(self._buffer)
            lines.append(_log_line(stamp or datetime.now(UTC), self.source, "stdout", text))
        for stream, (started, rest) in self._pending.items():
            lines.append(_log_line(started, self.source, stream, rest))
        self._buffer = b""
        self._pending.clear()
        return lines

    def _frame_lines(self) -> list[LogLine]:
        lines: list[LogLine] = []
        buffer, offset = self._buffer, 0
        while len(buffer) - offset >= 8:
            kind, length = _FRAME_HEADER.unpack_from(buffer, offset)
            if len(buffer) - offset - 8 < length:
                break
            payload = buffer[offset + 8 : offset + 8 + length]
            offset += 8 + length
            if payload:
                self._message(_STREAMS.get(kind, "stdout"), payload, lines)
        self._buffer = buffer[offset:]
        return lines

    def _message(self, stream: str, payload: bytes, lines: list[LogLine]) -> None:
        stamp, text = parse_log_line(payload)
        started, buffered = self._pending.pop(stream, (stamp or datetime.now(UTC), b""))
        *complete, rest = (buffered + text).split(b"\n")
        for line in complete:
            lines.append(_log_line(started, self.source, stream, line))
        if len(rest) > MAX_LINE:
            lines.append(_log_line(started, self.source, stream, rest))
        elif rest:
            self._pending[stream] = (started, rest)

    def _tty_lines(self) -> list[LogLine]:
        *complete, self._buffer = self._buffer.split(b"\n")
        lines = []
        for line in complete:
            stamp, text = parse_log_line(line)
            lines.append(_log_line(stamp or datetime.now(UTC), self.source, "stdout", text))
        if len(self._buffer) > MAX_LINE:
            stamp, text = parse_log_line(self._buffer)
            lines.append(_log_line(stamp or datetime.now(UTC), self.source, "stdout", text))
            self._buffer = b""
        return lines


class JsonLinesDecoder:
    """Docker's events stream: one JSON object per line, lines split across pieces anywhere."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        *complete, self._buffer = (self._buffer + data).split(b"\n")
        return [self._decode(line) for line in complete if line.strip()]

    def end(self) -> list[dict[str, Any]]:
        rest, self._buffer = self._buffer, b""
        return [self._decode(rest)] if rest.strip() else []

    @staticmethod
    def _decode(line: bytes) -> dict[str, Any]:
        value = json.loads(line)
        if not isinstance(value, dict):
            raise ValueError(f"an event is not a JSON object: {line[:80]!r}")
        return value
