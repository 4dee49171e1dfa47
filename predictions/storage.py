"""Object storage for model artifacts and batch-job files: one code path, local or S3.

Everything goes through Django's `storages["objects"]` (settings.STORAGES, built from
MLAPI_OBJECT_STORAGE by mlapi/objectstore.py): FileSystemStorage under MLAPI_DATA_DIR, or
django-storages' S3Storage. Both directions stream: `open_read` hands out the object's body as
it arrives (never spooled whole, which S3File would do), `open_write` writes through a buffer
of `PART_BYTES`, as a multipart upload on S3 and a temporary file renamed into place locally.

Errors: a store that cannot be reached raises `StorageUnavailable` (503, Retry-After); a key
that is not there raises `ObjectMissing`. Callers never see botocore's exceptions.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages

from mlapi.exceptions import ServiceUnavailable

ALIAS = "objects"
PART_BYTES = 8 * 1024 * 1024  # multipart part size (S3's minimum is 5 MiB)
READ_BLOCK = 1 << 20


class StorageUnavailable(ServiceUnavailable):
    """The object store cannot be reached (or answers with a server error) right now."""


class ObjectMissing(LookupError):
    """No object under that key."""


def objects() -> Storage:
    """The configured storage for artifacts and job files."""
    return storages[ALIAS]


def is_local(storage: Storage | None = None) -> bool:
    return isinstance(storage or objects(), FileSystemStorage)


def _unavailable(exc: BaseException) -> StorageUnavailable:
    error = StorageUnavailable(
        "Object storage is unavailable; try again shortly.", headers={"Retry-After": "5"}
    )
    error.__cause__ = exc
    return error


def _is_missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return isinstance(exc, FileNotFoundError) or code in {"404", "NoSuchKey", "NotFound"}


@contextlib.contextmanager
def translated_errors(key: str = "") -> Iterator[None]:
    """Map the store's own exceptions to ObjectMissing / StorageUnavailable."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError, OSError) as exc:
        if _is_missing(exc):
            raise ObjectMissing(key) from exc
        raise _unavailable(exc) from exc


def _s3_key(storage: Storage, key: str) -> str:
    """The bucket key for a storage name (the prefix applied, as S3Storage does)."""
    from storages.utils import clean_name

    return storage._normalize_name(clean_name(key))


def _s3_object(storage: Storage, key: str):
    return storage.bucket.Object(_s3_key(storage, key))


def put_bytes(key: str, data: bytes) -> None:
    """Store `data` under `key`, replacing any object there (one PUT on S3)."""
    storage = objects()
    with translated_errors(key):
        if is_local(storage):
            with open_write(key) as out:
                out.write(data)
        else:
            storage.save(key, ContentFile(data))


def read_bytes(key: str) -> bytes:
    with translated_errors(key), open_read(key) as handle:
        return handle.read()


class _Body(io.RawIOBase):
    """An S3 object body as a readable stream; errors mid-way become StorageUnavailable."""

    def __init__(self, body, key: str) -> None:
        self._body, self._key = body, key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        with translated_errors(self._key):
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()
        super().close()


def open_read(key: str) -> BinaryIO:
    """The object as a binary stream, opened now (so a store that is down raises here)."""
    storage = objects()
    with translated_errors(key):
        if is_local(storage):
            return open(storage.path(key), "rb")  # the caller closes it
        body = _s3_object(storage, key).get()["Body"]
    return io.BufferedReader(_Body(body, key), buffer_size=READ_BLOCK)


def iter_read(handle: BinaryIO, block: int = READ_BLOCK) -> Iterator[bytes]:
    """The stream's bytes in blocks, closing it at the end."""
    with handle:
        while data := handle.read(block):
            yield data


class _MultipartWriter(io.RawIOBase):
    """Buffer up to PART_BYTES, upload each full buffer as one part; one PUT if it stays small."""

    def __init__(self, obj) -> None:
        self._obj, self._buffer, self._parts, self._upload_id = obj, bytearray(), [], None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._buffer += data
        while len(self._buffer) >= PART_BYTES:
            self._send(bytes(self._buffer[:PART_BYTES]))
            del self._buffer[:PART_BYTES]
        return len(data)

    def _send(self, data: bytes) -> None:
        client, bucket, key = self._obj.meta.client, self._obj.bucket_name, self._obj.key
        if self._upload_id is None:
            self._upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        number = len(self._parts) + 1
        etag = client.upload_part(
            Bucket=bucket, Key=key, UploadId=self._upload_id, PartNumber=number, Body=data
        )["ETag"]
        self._parts.append({"ETag": etag, "PartNumber": number})

    def finish(self) -> None:
        if self._upload_id is None:
            self._obj.put(Body=bytes(self._buffer))
            return
        if self._buffer:
            self._send(bytes(self._buffer))
        self._obj.meta.client.complete_multipart_upload(
            Bucket=self._obj.bucket_name,
            Key=self._obj.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self._obj.meta.client.abort_multipart_upload(
                    Bucket=self._obj.bucket_name, Key=self._obj.key, UploadId=self._upload_id
                )


@contextlib.contextmanager
def open_write(key: str) -> Iterator[BinaryIO]:
    """Write an object as a stream; it appears whole when the block exits, or not at all."""
    storage = objects()
    with translated_errors(key):
        if is_local(storage):
            path = Path(storage.path(key))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                with tmp.open("wb") as out:
                    yield out
                    out.flush()
                    os.fsync(out.fileno())
                tmp.replace(path)
            finally:
                tmp.unlink(missing_ok=True)
            return
        writer = _MultipartWriter(_s3_object(storage, key))
        try:
            yield writer
            writer.finish()
        except BaseException:
            writer.abort()
            raise


def delete(key: str) -> None:
    with contextlib.suppress(ObjectMissing), translated_errors(key):
        objects().delete(key)


def delete_prefix(prefix: str) -> None:
    """Remove every object under `prefix/` (a job's folder)."""
    storage = objects()
    prefix = prefix.rstrip("/")
    with translated_errors(prefix):
        if is_local(storage):
            shutil.rmtree(storage.path(prefix), ignore_errors=True)
        else:
            full = _s3_key(storage, prefix) + "/"
            storage.bucket.objects.filter(Prefix=full).delete()


def list_folders(prefix: str) -> list[str]:
    """The names of the folders directly under `prefix` (e.g. job ids under `jobs`)."""
    with contextlib.suppress(ObjectMissing), translated_errors(prefix):
        return objects().listdir(prefix)[0]
    return []


class ArtifactUnreachable(OSError):
    """A model artifact cannot be read because the store is unavailable (transient)."""


def read_artifact(key: str) -> bytes:
    """A model artifact's bytes; OSError when missing or unreachable (as a file read would)."""
    try:
        return read_bytes(key)
    except ObjectMissing as exc:
        raise FileNotFoundError(f"no artifact at {key}") from exc
    except StorageUnavailable as exc:
        raise ArtifactUnreachable(f"object storage unavailable reading {key}") from exc


def write_artifact(key: str, data: bytes) -> None:
    """Store a model artifact: it appears whole or not at all (temp file + rename locally)."""
    put_bytes(key, data)


def check_object_storage() -> None:
    """Refuse to start on an S3 bucket that does not exist or cannot be reached (clear error)."""
    storage = objects()
    if is_local(storage):
        return
    from botocore.exceptions import BotoCoreError, ClientError

    where = storage.endpoint_url or "AWS S3"
    try:
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchBucket", "NotFound"}:
            raise ImproperlyConfigured(
                f"MLAPI_OBJECT_STORAGE: the bucket {storage.bucket_name!r} does not exist at "
                f"{where}; create it (e.g. `mc mb` or `aws s3 mb`) or fix the URL."
            ) from exc
        raise ImproperlyConfigured(
            f"MLAPI_OBJECT_STORAGE: cannot use the bucket {storage.bucket_name!r} at {where}: "
            f"{code or exc}"
        ) from exc
    except BotoCoreError as exc:
        raise ImproperlyConfigured(
            f"MLAPI_OBJECT_STORAGE: cannot reach {where} ({exc.__class__.__name__})."
        ) from exc
