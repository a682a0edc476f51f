"""Where backups are written: a local directory, or an S3-compatible bucket (AWS S3, MinIO, Backblaze B2,
Cloudflare R2) through boto3, which is imported only when an S3 destination is used.

Every call here blocks: the backup service runs them in a worker thread. An object is written whole or not at
all: a local file appears under its name only when complete (written beside it, then renamed); an S3 object
is a multipart upload completed at the end, or aborted.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import InvalidInput, MistError, NotFound

READ_CHUNK = 1 << 20
# S3 parts: at least 5 MiB each but the last; 8 MiB parts reach 80 GB within S3's 10,000 parts, and bigger
# dumps get bigger parts (``S3Writer``).
PART_SIZE = 8 << 20
MAX_PARTS = 10_000


class ObjectWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class Destination(Protocol):
    def writer(self, key: str) -> ObjectWriter: ...

    def reader(self, key: str) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...

    def check(self) -> None: ...


# ---------------------------------------------------------------------------------------------- local


class LocalWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._partial = path.with_name(path.name + ".partial")
        fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._partial.unlink()


@dataclass
class LocalDirectory:
    """Backups as files under ``root`` (made 0700 if missing)."""

    root: Path

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise InvalidInput(f"{key!r} is not a path inside the destination")
        return path

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = self.root / ".mist-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise InvalidInput(
                f"cannot write backups to {self.root}: {error.strerror or error}; give a directory Mist may "
                "write to",
                field="path",
            ) from None

    def writer(self, key: str) -> ObjectWriter:
        return LocalWriter(self._path(key))

    def reader(self, key: str) -> Iterator[bytes]:
        try:
            f = open(self._path(key), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise NotFound(f"the backup file {self._path(key)} is missing") from None
        with f:
            while chunk := f.read(READ_CHUNK):
                yield chunk

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()


# ---------------------------------------------------------------------------------------------- S3


@dataclass
class S3Bucket:
    """Backups as objects of ``bucket`` (under ``prefix``) on an S3-compatible service at ``endpoint``."""

    endpoint: str | None
    bucket: str
    region: str
    prefix: str
    access_key: str
    secret_key: str

    def __post_init__(self) -> None:
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3  # only S3 destinations pay for it
                from botocore.config import Config
            except ImportError:
                raise MistError(
                    "S3 backup destinations need boto3, which is not installed: pip install 'mist[s3]'"
                ) from None

            # botocore's debug log prints each request's headers, the access key among them (Authorization):
            # nothing below INFO from it, whatever level the daemon logs at.
            for name in ("botocore", "boto3", "s3transfer"):
                quiet = logging.getLogger(name)
                quiet.setLevel(max(logging.INFO, quiet.getEffectiveLevel()))
            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint or None,
                region_name=self.region,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path" if self.endpoint else "auto"},
                    retries={"max_attempts": 5, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=120,
                ),
            )
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def check(self) -> None:
        try:
            self.client().head_bucket(Bucket=self.bucket)
        except Exception as error:  # noqa: BLE001 - botocore's many errors all mean "cannot use it"
            raise InvalidInput(
                f"cannot reach bucket {self.bucket!r} at {self.endpoint or 'AWS S3'}: {_reason(error)}; check "
                "the endpoint, the bucket's name and region, and the access key",
                field="bucket",
            ) from None

    def writer(self, key: str) -> ObjectWriter:
        return S3Writer(self.client(), self.bucket, self._key(key))

    def reader(self, key: str) -> Iterator[bytes]:
        try:
            answer = self.client().get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as error:  # noqa: BLE001
            if "NoSuchKey" in str(error) or "404" in str(error):
                raise NotFound(f"the backup object {self._key(key)} is missing from {self.bucket}") from None
            raise MistError(f"cannot read {self._key(key)} from {self.bucket}: {_reason(error)}") from None
        body = answer["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        try:
            self.client().delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as error:  # noqa: BLE001
            raise MistError(f"cannot delete {self._key(key)} from {self.bucket}: {_reason(error)}") from None


class S3Writer:
    """A multipart upload: a part goes up each time ``PART_SIZE`` bytes are buffered (one part in memory at
    most); an object smaller than one part is a single put."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._buf = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload: str | None = None
        self._part_size = PART_SIZE

    def write(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= self._part_size:
            self._send(bytes(self._buf))
            self._buf.clear()

    def _send(self, part: bytes) -> None:
        if self._upload is None:
            answer = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload = str(answer["UploadId"])
        number = len(self._parts) + 1
        answer = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload, PartNumber=number, Body=part
        )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})
        if number % 1000 == 0:  # keep within S3's 10,000 parts however long the dump
            self._part_size *= 2

    def commit(self) -> None:
        if self._upload is None:
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buf))
            self._buf.clear()
            return
        if self._buf:
            self._send(bytes(self._buf))
            self._buf.clear()
        self._client.complete_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload, MultipartUpload={"Parts": self._parts}
        )

    def abort(self) -> None:
        self._buf.clear()
        if self._upload is not None:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload)

    @property
    def parts(self) -> int:
        return len(self._parts)


def _reason(error: BaseException) -> str:
    """botocore's message without anything that could hold a credential (its messages never do; a URL's
    query string could)."""
    text = str(error).split("?", 1)[0]
    return text[:300]
