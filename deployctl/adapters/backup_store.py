"""Where backups are kept: a folder on the machine running deployctl, or an S3 prefix
(boto3, imported lazily; credentials from boto3's own chain: env, profile, instance role,
never an argument). Both hold flat names under one location: `<id>.sql.gz` and its
manifest `<id>.json`, written last so that an interrupted backup is never listed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol

MISSING = ("404", "NoSuchKey", "NotFound")


class BackupStore(Protocol):
    where: str  # for messages: the folder, or s3://bucket/prefix

    def put(self, name: str, source: Path) -> None: ...
    def put_bytes(self, name: str, data: bytes) -> None: ...
    def fetch(self, name: str, target: Path) -> None:
        """FileNotFoundError when there is no such object."""
    def read(self, name: str) -> bytes | None: ...
    def names(self) -> list[str]: ...
    def delete(self, name: str) -> None: ...


class DirStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def _ready(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)  # dumps hold the data: not world-readable
        return self.path

    def put(self, name: str, source: Path) -> None:
        # copy to a temp name, then rename: a reader never sees half a file
        temp = self._ready() / f".{name}.part"
        shutil.copyfile(source, temp)
        os.chmod(temp, 0o600)
        os.replace(temp, self.path / name)

    def put_bytes(self, name: str, data: bytes) -> None:
        temp = self._ready() / f".{name}.part"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, self.path / name)

    def fetch(self, name: str, target: Path) -> None:
        shutil.copyfile(self.path / name, target)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.is_file() and not p.name.startswith("."))

    def delete(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)


class HostStore:
    """A folder on a host, through its connector: where scheduled backups are written (by the
    scheduler's job on that host, plan/data/backup_schedule.py); read here to list and restore."""

    def __init__(self, conn, path: str) -> None:  # type: ignore[no-untyped-def]
        self.conn, self.path = conn, path.rstrip("/")
        self.where = f"{conn.host}:{self.path}"

    def _at(self, name: str) -> str:
        return f"{self.path}/{name}"

    def put(self, name: str, source: Path) -> None:
        self.conn.put_file(self._at(name), source.read_bytes(), mode=0o600)

    def put_bytes(self, name: str, data: bytes) -> None:
        self.conn.put_file(self._at(name), data, mode=0o600)

    def fetch(self, name: str, target: Path) -> None:
        data = self.conn.read_file(self._at(name))
        if data is None:
            raise FileNotFoundError(name)
        target.write_bytes(data)

    def read(self, name: str) -> bytes | None:
        return self.conn.read_file(self._at(name))

    def names(self) -> list[str]:
        from .connector import check

        if not self.conn.run(["test", "-d", self.path]).ok:
            return []  # no scheduled backup ran yet
        return sorted(n for n in check(self.conn, ["ls", "-1", self.path]).splitlines() if n and not n.startswith("."))

    def delete(self, name: str) -> None:
        self.conn.run(["rm", "-f", self._at(name)])


class S3Store:
    def __init__(self, bucket: str, prefix: str, region: str | None) -> None:
        self.bucket, self.prefix, self.region = bucket, prefix.strip("/"), region
        self.where = f"s3://{bucket}/{self.prefix}"
        self._client = None

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _s3(self):  # type: ignore[no-untyped-def]
        from .aws import client

        if self._client is None:
            self._client = client("s3", self.region)
        return self._client

    def _calling(self, action: str):  # type: ignore[no-untyped-def]
        from .aws import _calling

        return _calling(f"S3 {action} in {self.where}", self.region, f"s3:{action} on {self.bucket}")

    def put(self, name: str, source: Path) -> None:
        with self._calling("PutObject"):
            self._s3().upload_file(str(source), self.bucket, self._key(name))

    def put_bytes(self, name: str, data: bytes) -> None:
        with self._calling("PutObject"):
            self._s3().put_object(Bucket=self.bucket, Key=self._key(name), Body=data)

    def fetch(self, name: str, target: Path) -> None:
        from botocore.exceptions import ClientError

        with self._calling("GetObject"):
            try:
                self._s3().download_file(self.bucket, self._key(name), str(target))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in MISSING:
                    raise FileNotFoundError(name) from None
                raise

    def read(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._calling("GetObject"):
            try:
                return self._s3().get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in MISSING:
                    return None
                raise

    def names(self) -> list[str]:
        out: list[str] = []
        with self._calling("ListObjectsV2"):
            pages = self._s3().get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(""))
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self._key("")):]
                    if name and "/" not in name:
                        out.append(name)
        return sorted(out)

    def delete(self, name: str) -> None:
        with self._calling("DeleteObject"):
            self._s3().delete_object(Bucket=self.bucket, Key=self._key(name))


def open_store(location: str, root: Path, region: str | None) -> BackupStore:
    """s3://bucket/prefix, or a folder (relative: to deploy.toml's folder)."""
    if location.startswith("s3://"):
        from ..plan.data.backups import split_s3

        bucket, prefix = split_s3(location)
        return S3Store(bucket, prefix, region)
    path = Path(location).expanduser()
    return DirStore(path if path.is_absolute() else root / path)
