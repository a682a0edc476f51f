"""The stored form of a backup (gzip, chunked AES-GCM, sha256), the tar manifest and retention rules: pure
logic, on bytes and dates made here."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime, timedelta

import pytest

from mist_core.backups.archive import OUT_CHUNK, CorruptBackup, Packer, TarManifest, Unpacker
from mist_core.backups.keys import BackupKeys
from mist_core.backups.retention import to_prune
from mist_core.models import BackupRetention


def pack(data: bytes, keys: BackupKeys | None, chunk: int = 70_000) -> tuple[bytes, str]:
    out = bytearray()
    packer = Packer(out.extend, keys)
    for i in range(0, len(data), chunk):
        packer.feed(data[i : i + chunk])
    _, checksum = packer.finish()
    return bytes(out), checksum


def unpack(stored: bytes, keys: BackupKeys | None, chunk: int = 50_000) -> tuple[bytes, str, int]:
    unpacker = Unpacker(keys, encrypted=keys is not None)
    out, biggest = bytearray(), 0
    for i in range(0, len(stored), chunk):
        for piece in unpacker.feed(stored[i : i + chunk]):
            biggest = max(biggest, len(piece))
            out += piece
    return bytes(out), unpacker.finish(), biggest


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_packed_dump_unpacks_to_the_same_bytes_with_the_same_checksum(encrypted: bool) -> None:
    keys = BackupKeys(bytes(range(32))) if encrypted else None
    data = b"".join(i.to_bytes(4, "big") for i in range(800_000))
    stored, checksum = pack(data, keys)
    restored, seen, _ = unpack(stored, keys)
    assert restored == data and seen == checksum


def test_a_very_compressible_dump_is_never_inflated_whole() -> None:
    stored, _ = pack(b"y\n" * (40 * OUT_CHUNK), None, chunk=OUT_CHUNK)
    assert len(stored) < OUT_CHUNK
    restored, _, biggest = unpack(stored, None, chunk=len(stored))
    assert len(restored) == 80 * OUT_CHUNK and biggest <= OUT_CHUNK


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_changed_or_cut_off_backup_is_refused(encrypted: bool) -> None:
    keys = BackupKeys(bytes(range(32))) if encrypted else None
    stored, checksum = pack(bytes(range(256)) * 20_000, keys)
    flipped = bytearray(stored)
    flipped[len(flipped) // 2] ^= 1
    with pytest.raises(CorruptBackup):
        _, seen, _ = unpack(bytes(flipped), keys)
        assert seen == checksum  # (an unencrypted flip that inflates still fails the checksum)
        raise CorruptBackup("checksum")
    with pytest.raises(CorruptBackup, match="cut short|broken"):
        unpack(stored[: len(stored) - 40], keys)


def test_an_encrypted_backup_does_not_open_with_another_key() -> None:
    stored, _ = pack(b"secret data" * 1000, BackupKeys(b"\x01" * 32))
    assert b"secret data" not in stored
    with pytest.raises(Exception, match="backup key"):
        unpack(stored, BackupKeys(b"\x02" * 32))


def test_the_manifest_lists_every_entry_with_the_sha256_of_files_long_names_and_links() -> None:
    buffer = io.BytesIO()
    long_name = "d" * 150 + "/f.txt"
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("./a.txt", b"a"), (long_name, b"long"), ("./big", b"x" * 100_000)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./l")
        link.type, link.linkname = tarfile.SYMTYPE, "a.txt"
        tar.addfile(link)
    manifest = TarManifest()
    data = buffer.getvalue()
    for i in range(0, len(data), 333):
        manifest.feed(data[i : i + 333])
    assert manifest.ended
    assert set(manifest.entries) == {"a.txt", long_name, "big", "l"}
    assert manifest.entries["a.txt"][5] == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    assert manifest.entries["l"][0] == "symlink" and manifest.entries["l"][5] == "a.txt"
    assert manifest.entries["big"][1] == 100_000


def test_retention_keeps_the_union_of_its_rules() -> None:
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    daily = [(i, now - timedelta(days=i)) for i in range(60)]  # one backup a day, id = days ago
    assert to_prune(daily, BackupRetention(), now) == []
    kept = {i for i, _ in daily} - set(to_prune(daily, BackupRetention(last=3), now))
    assert kept == {0, 1, 2}
    kept = {i for i, _ in daily} - set(to_prune(daily, BackupRetention(last=2, monthly=2), now))
    assert kept == {0, 1, 31}  # the newest of March (day 0) and of February (the 28th, 31 days ago)
    kept = {i for i, _ in daily} - set(to_prune(daily, BackupRetention(days=5), now))
    assert kept == {0, 1, 2, 3, 4, 5}
