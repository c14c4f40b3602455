"""One storage interface for a local directory and for S3 (or MinIO, SeaweedFS).

Keys are ``/``-separated paths relative to the store root. A key can never leave the store:
absolute keys and ``.``/``..`` segments are rejected. Writes are atomic: a reader sees the old
object or the new one, never half of one (temp file plus rename locally; one PUT or a completed
multipart upload on S3, which S3 makes visible only once complete).

S3 settings come from the standard AWS environment, never from the config: credentials
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), ``AWS_ENDPOINT_URL`` (MinIO), ``AWS_REGION``.
Transient errors are retried by botocore with exponential backoff: ``AWS_RETRY_MODE`` (default
``standard``) and ``AWS_MAX_ATTEMPTS`` (default 8, about 30 s of retrying when a server is down).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from sd1job.errors import UserError


class StoreError(UserError, RuntimeError):
    """A storage operation failed; the message names the object."""


class MissingObjectError(StoreError):
    """The object does not exist."""


class InvalidKeyError(StoreError, ValueError):
    """The key would escape the store or is malformed."""


def check_key(key: str) -> str:
    """Return the key if it is a safe relative path inside the store, else raise InvalidKeyError."""
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"store key {key!r} is empty")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKeyError(f"store key {key!r} must be a relative path")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidKeyError(f"store key {key!r} has an empty, '.' or '..' segment")
    return key


def join_key(*parts: str) -> str:
    """Join key segments with '/', checking the result."""
    return check_key("/".join(p.strip("/") for p in parts if p))


class Store(ABC):
    """Read, write, list and check objects by key."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object's bytes; MissingObjectError if absent."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Replace the object atomically."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys of every object under ``prefix`` (a folder-like prefix)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if it exists."""

    @abstractmethod
    def url(self, key: str = "") -> str:
        """A human-readable location of the key, for messages."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix``."""
        for key in self.list(prefix):
            self.delete(key)

    def read_text(self, key: str) -> str:
        """The object decoded as UTF-8."""
        return self.read_bytes(key).decode("utf-8")

    def write_text(self, key: str, text: str) -> None:
        """Write UTF-8 text atomically."""
        self.write_bytes(key, text.encode("utf-8"))

    def read_json(self, key: str) -> Any:
        """The object parsed as JSON; StoreError naming the object if it is not JSON."""
        try:
            return json.loads(self.read_bytes(key))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise StoreError(f"{self.url(key)}: not valid JSON: {error}") from None

    def write_json(self, key: str, value: Any) -> None:
        """Write a JSON document atomically (indented, keys in insertion order)."""
        self.write_text(key, json.dumps(value, indent=2, allow_nan=False) + "\n")


class LocalStore(Store):
    """A directory on the local file system."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if self.root != path and self.root not in path.parents:
            raise InvalidKeyError(f"store key {key!r} resolves outside the store")
        return path

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise MissingObjectError(f"{path}: no such object") from None
        except IsADirectoryError:
            raise MissingObjectError(f"{path}: is a directory, not an object") from None
        except OSError as error:
            raise StoreError(f"{path}: cannot read: {error.strerror}") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _remove_orphaned_temp_files(path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                keys.append(path.relative_to(self.root).as_posix())
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)


def _remove_orphaned_temp_files(path: Path) -> None:
    """Delete temp files of ``path`` left by writers that were killed (their process is gone)."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        pid = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            leftover.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class S3Store(Store):
    """A bucket and prefix on S3 or an S3-compatible server."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self._client = client or make_s3_client()

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, key: str, action: str, error: Exception) -> StoreError:
        from botocore.exceptions import ClientError

        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return MissingObjectError(f"{self.url(key)}: no such object")
            if code == "NoSuchBucket":
                return StoreError(f"{self.url(key)}: bucket {self.bucket!r} does not exist")
            return StoreError(f"{self.url(key)}: cannot {action}: {code or error}")
        return StoreError(f"{self.url(key)}: cannot {action}: {type(error).__name__}: {error}")

    def read_bytes(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read()
        except InvalidKeyError:
            raise
        except Exception as error:  # botocore raises several unrelated exception families
            raise self._fail(key, "read", error) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            # upload_fileobj uses one PUT, or a multipart upload that S3 only makes visible when
            # complete (and that s3transfer aborts on failure): never a torn object.
            self._client.upload_fileobj(io.BytesIO(data), self.bucket, self._key(key))
        except InvalidKeyError:
            raise
        except Exception as error:
            raise self._fail(key, "write", error) from None

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except InvalidKeyError:
            raise
        except Exception as error:
            failure = self._fail(key, "check", error)
            if isinstance(failure, MissingObjectError):
                return False
            raise failure from None

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        except Exception as error:
            raise self._fail(prefix, "list", error) from None
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except InvalidKeyError:
            raise
        except Exception as error:
            raise self._fail(key, "delete", error) from None

    def url(self, key: str = "") -> str:
        path = "/".join(p for p in (self.prefix, key) if p)
        return f"s3://{self.bucket}/{path}"


def make_s3_client() -> Any:
    """A boto3 S3 client configured from the standard AWS environment, with retries."""
    import boto3
    from botocore.config import Config as BotoConfig

    retries = {
        "mode": os.environ.get("AWS_RETRY_MODE", "standard"),
        "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", "8")),
    }
    config = BotoConfig(
        retries=retries,
        connect_timeout=float(os.environ.get("SD1JOB_S3_CONNECT_TIMEOUT", "5")),
        read_timeout=float(os.environ.get("SD1JOB_S3_READ_TIMEOUT", "60")),
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client("s3", config=config)


def open_store(location: str) -> Store:
    """Open ``s3://bucket/prefix``, ``file:///dir`` or a plain local directory."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://") :].partition("/")
        if not bucket:
            raise StoreError(f"store {location!r}: s3 store needs a bucket")
        return S3Store(bucket, prefix)
    if location.startswith("file://"):
        location = location[len("file://") :]
    elif "://" in location:
        raise StoreError(f"store {location!r}: unknown scheme; use a directory or s3://bucket/prefix")
    return LocalStore(location)
