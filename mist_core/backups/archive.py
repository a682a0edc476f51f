"""How a backup is stored: the dump's bytes gzip-compressed, then (optionally) encrypted in authenticated
chunks, and checksummed (sha256 of the stored bytes). Everything works on bounded chunks, one pass, so a dump
of any size crosses Mist without ever being whole in memory.

An encrypted backup is ``MISTBK1\\n``, the key id (12 characters), an 8-byte random nonce prefix, then records:
a 4-byte length and an AES-256-GCM ciphertext of at most ``RECORD`` bytes of the compressed stream. Each
record's nonce is the prefix and its number; its associated data is the header and whether it is the last
record, so records cannot be reordered, dropped or cut off at the end without the restore noticing.

``TarManifest`` reads a tar stream as it passes and records every entry (type, size, mode, owner, sha256 of
a file's content, a link's target): what a volume held at backup time, which verification compares with what
a restore of it holds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import MistError
from .keys import BackupKeys

MAGIC = b"MISTBK1\n"
KEY_ID_SIZE = 12
PREFIX_SIZE = 8
HEADER_SIZE = len(MAGIC) + KEY_ID_SIZE + PREFIX_SIZE
RECORD = 1 << 20  # plaintext bytes of one encrypted record
TAG_SIZE = 16
OUT_CHUNK = 1 << 20  # dump bytes handed on at once when unpacking
_LENGTH = struct.Struct(">L")
COMPRESS_LEVEL = 6  # gzip's own default: the same work as `gzip` on the command line


class CorruptBackup(MistError):
    """The stored bytes are not what was written (a wrong checksum, a bad tag, a broken gzip stream)."""


class Packer:
    """Dump bytes in (``feed``), stored bytes out to ``sink``; ``finish`` flushes and returns the stored
    size and sha256. With ``keys``, the compressed stream is encrypted under the current backup key."""

    def __init__(self, sink: Callable[[bytes], None], keys: BackupKeys | None = None) -> None:
        self._sink = sink
        self._zip = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip container
        self._sha = hashlib.sha256()
        self.size = 0
        self.raw_size = 0
        self.key_id: str | None = None
        self._cipher: Any = None
        self._pending = bytearray()
        self._counter = 0
        if keys is not None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self.key_id, key = keys.current()
            self._cipher = AESGCM(key)
            self._header = MAGIC + self.key_id.encode() + os.urandom(PREFIX_SIZE)
            self._emit(self._header)

    def _emit(self, data: bytes) -> None:
        if data:
            self._sha.update(data)
            self.size += len(data)
            self._sink(data)

    def _compressed(self, data: bytes, *, last: bool = False) -> None:
        if self._cipher is None:
            self._emit(data)
            return
        self._pending += data
        while len(self._pending) > RECORD:
            self._emit(self._seal(bytes(self._pending[:RECORD]), False))
            del self._pending[:RECORD]
        if last:
            self._emit(self._seal(bytes(self._pending), True))
            self._pending.clear()

    def _seal(self, chunk: bytes, final: bool) -> bytes:
        nonce = self._header[-PREFIX_SIZE:] + struct.pack(">L", self._counter)
        self._counter += 1
        sealed = self._cipher.encrypt(nonce, chunk, self._header + (b"\x01" if final else b"\x00"))
        return _LENGTH.pack(len(sealed)) + sealed

    def feed(self, data: bytes) -> None:
        self.raw_size += len(data)
        self._compressed(self._zip.compress(data))

    def finish(self) -> tuple[int, str]:
        self._compressed(self._zip.flush(), last=True)
        return self.size, self._sha.hexdigest()


class Unpacker:
    """Stored bytes in (``feed``, any chunking), dump bytes out; ``finish`` checks that the stream ended where
    it should and returns the sha256 of every stored byte fed. Raises ``CorruptBackup`` as soon as the bytes
    are seen to be wrong."""

    def __init__(self, keys: BackupKeys | None, *, encrypted: bool) -> None:
        self._keys = keys
        self._encrypted = encrypted
        self._unzip = zlib.decompressobj(31)
        self._sha = hashlib.sha256()
        self._buf = bytearray()
        self._header: bytes | None = None
        self._cipher: Any = None
        self._counter = 0
        self._final_seen = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The dump bytes in ``data``, in pieces of at most ``OUT_CHUNK`` (a highly compressible dump inflates
        a thousandfold: it is never inflated whole)."""
        self._sha.update(data)
        if not self._encrypted:
            yield from self._inflate(data)
            return
        self._buf += data
        if self._header is None:
            if len(self._buf) < HEADER_SIZE:
                return
            self._open_header(bytes(self._buf[:HEADER_SIZE]))
            del self._buf[:HEADER_SIZE]
        while len(self._buf) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buf)
            if length > RECORD + TAG_SIZE:
                raise CorruptBackup("the backup is corrupted: an encrypted record has an impossible length")
            if len(self._buf) < _LENGTH.size + length:
                break
            sealed = bytes(self._buf[_LENGTH.size : _LENGTH.size + length])
            del self._buf[: _LENGTH.size + length]
            yield from self._inflate(self._open_record(sealed))

    def _open_header(self, header: bytes) -> None:
        if not header.startswith(MAGIC):
            raise CorruptBackup("the backup is corrupted or not encrypted by Mist: its header is wrong")
        key_id = header[len(MAGIC) : len(MAGIC) + KEY_ID_SIZE].decode(errors="replace")
        if self._keys is None:
            raise MistError("the backup is encrypted and no backup key is at hand")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._cipher = AESGCM(self._keys.key(key_id))
        self._header = header

    def _open_record(self, sealed: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if self._final_seen:
            raise CorruptBackup("the backup is corrupted: there is data after its last record")
        assert self._header is not None
        nonce = self._header[-PREFIX_SIZE:] + struct.pack(">L", self._counter)
        self._counter += 1
        for final in (b"\x00", b"\x01"):
            try:
                plain: bytes = self._cipher.decrypt(nonce, sealed, self._header + final)
            except InvalidTag:
                continue
            self._final_seen = final == b"\x01"
            return plain
        raise CorruptBackup(
            f"the backup is corrupted: encrypted record {self._counter} does not authenticate"
        )

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        if self._unzip.eof:
            raise CorruptBackup("the backup is corrupted: there is data after the end of its gzip stream")
        try:
            while data:
                out = self._unzip.decompress(data, OUT_CHUNK)
                data = self._unzip.unconsumed_tail
                if out:
                    yield out
                if self._unzip.eof:
                    if data or self._unzip.unused_data:
                        raise CorruptBackup(
                            "the backup is corrupted: there is data after the end of its gzip stream"
                        )
                    return
        except zlib.error as error:
            raise CorruptBackup(f"the backup is corrupted: its gzip stream is broken ({error})") from None

    def finish(self) -> str:
        if self._encrypted and (self._buf or not self._final_seen):
            raise CorruptBackup("the backup is cut short: its last encrypted record is missing")
        if not self._unzip.eof:
            raise CorruptBackup("the backup is cut short: its gzip stream does not end")
        return self._sha.hexdigest()


# ---------------------------------------------------------------------------------------------- tar manifest

_BLOCK = 512
_REGULAR = (b"0", b"\x00", b"7")
_TYPES = {b"0": "file", b"\x00": "file", b"7": "file", b"1": "hardlink", b"2": "symlink", b"5": "dir"}


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:  # base-256, for values too large for octal
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\x00", 1)[0].strip()
    return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _path(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return "" if name in (".", "") else name.rstrip("/")


class TarManifest:
    """Feed it a tar stream in chunks of any size; ``entries`` maps each path to ``[type, size, mode, uid,
    gid, sha256 or link target]``."""

    def __init__(self) -> None:
        self.entries: dict[str, list[Any]] = {}
        self._buf = bytearray()
        self._state = "header"
        self._left = 0  # bytes of the current member's data still to come
        self._pad = 0  # padding after it
        self._hash: Any = None
        self._current: list[Any] | None = None
        self._meta_kind = b""
        self._next: dict[str, str] = {}  # from a GNU long name or a pax header, for the next entry
        self.ended = False

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n and not self.ended:
            if self._state == "header":
                take = min(_BLOCK - len(self._buf), n - i)
                self._buf += view[i : i + take]
                i += take
                if len(self._buf) == _BLOCK:
                    self._header(bytes(self._buf))
                    self._buf.clear()
            elif self._state == "data":
                take = min(self._left, n - i)
                self._hash.update(view[i : i + take])
                i += take
                self._left -= take
                if not self._left:
                    self._end_data()
            elif self._state == "meta":
                take = min(self._left, n - i)
                self._buf += view[i : i + take]
                i += take
                self._left -= take
                if not self._left:
                    self._end_meta()
            else:  # skip padding
                take = min(self._pad, n - i)
                i += take
                self._pad -= take
                if not self._pad:
                    self._state = "header"

    def _after(self, size: int) -> None:
        self._pad = (-size) % _BLOCK

    def _header(self, block: bytes) -> None:
        if block == bytes(_BLOCK):
            self.ended = True
            return
        kind = block[156:157]
        size = int(self._next.pop("size", _number(block[124:136])))
        if kind in (b"L", b"K", b"x", b"g"):
            self._meta_kind = kind
            self._state, self._left = "meta", size
            self._after(size)
            if not size:
                self._end_meta()
            return
        name = _text(block[0:100])
        prefix = _text(block[345:500]) if block[257:262] == b"ustar" else ""
        if prefix:
            name = prefix + "/" + name
        name = self._next.pop("path", name)
        link = self._next.pop("linkpath", _text(block[157:257]))
        self._next.clear()
        entry: list[Any] = [
            _TYPES.get(kind, "other"),
            size if kind in _REGULAR else 0,
            _number(block[100:108]) & 0o7777,
            _number(block[108:116]),
            _number(block[116:124]),
            link if kind in (b"1", b"2") else None,
        ]
        path = _path(name)
        if kind in _REGULAR:
            self._hash = hashlib.sha256()
            self._current = entry
            self.entries[path] = entry
            self._state, self._left = "data", size
            self._after(size)
            if not size:
                self._end_data()
            return
        if path:  # the volume's own root directory is the restore target's, whatever its mode
            self.entries[path] = entry
        self._pad = size + (-size) % _BLOCK  # whatever such an entry carries is skipped
        self._state = "skip" if self._pad else "header"

    def _end_data(self) -> None:
        assert self._current is not None
        self._current[5] = self._hash.hexdigest()
        self._current = None
        self._state = "skip" if self._pad else "header"

    def _end_meta(self) -> None:
        data = bytes(self._buf)
        self._buf.clear()
        if self._meta_kind == b"L":
            self._next["path"] = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        elif self._meta_kind == b"K":
            self._next["linkpath"] = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        elif self._meta_kind == b"x":
            self._next.update(_pax(data))
        self._state = "skip" if self._pad else "header"

    def encode(self) -> bytes:
        """The manifest as kept with the backup record (gzip-compressed JSON)."""
        return gzip.compress(json.dumps(self.entries, sort_keys=True).encode(), 6)


def _pax(data: bytes) -> dict[str, str]:
    """The records of a pax extended header that matter here: path, linkpath and size."""
    found: dict[str, str] = {}
    i = 0
    while i < len(data):
        space = data.find(b" ", i)
        if space < 0:
            break
        try:
            length = int(data[i:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[space + 1 : i + length - 1]
        key, _, value = record.partition(b"=")
        if key in (b"path", b"linkpath", b"size"):
            found[key.decode()] = value.decode("utf-8", "surrogateescape")
        i += length
    return found


def decode_manifest(blob: bytes) -> dict[str, list[Any]]:
    return dict(json.loads(gzip.decompress(blob)))


def compare_manifests(recorded: dict[str, list[Any]], found: dict[str, list[Any]], *, shown: int = 5) -> str:
    """'' when both list the same entries alike; otherwise what differs (the first few of each kind)."""
    missing = sorted(recorded.keys() - found.keys())
    extra = sorted(found.keys() - recorded.keys())
    changed = sorted(p for p in recorded.keys() & found.keys() if recorded[p] != found[p])
    parts = []
    for what, paths in (("missing", missing), ("not in the backup", extra), ("different", changed)):
        if paths:
            more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
            parts.append(f"{len(paths)} {what}: {', '.join(paths[:shown])}{more}")
    return "; ".join(parts)
