"""Where CSV files come from: a local file or folder, or an S3 object or prefix.

A source is opened as a binary stream and never read whole into memory. S3 goes through boto3,
which honours ``AWS_ENDPOINT_URL``, so any S3-compatible store works.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote, urlsplit

from backend import dictionary
from jobs.csv_files import UnknownTableError, table_for


class SourceError(ValueError):
    """A source that cannot be read: a bad URI, a missing file, an empty prefix."""


@dataclass(frozen=True)
class SourceFile:
    """One file to load, identified well enough to know whether it changed."""

    uri: str
    name: str
    size: int
    fingerprint: str

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        scheme, bucket, key = _split(self.uri)
        if scheme == "s3":
            body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            try:
                yield body
            finally:
                body.close()
        else:
            with Path(key).open("rb") as stream:
                yield stream


def s3_client():
    """A boto3 S3 client; endpoint, region and credentials come from the usual AWS settings."""
    import boto3

    return boto3.client("s3")


def _split(uri: str) -> tuple[str, str, str]:
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise SourceError(f"{uri!r} names no bucket: expected s3://bucket/key")
        return "s3", parts.netloc, unquote(parts.path.lstrip("/"))
    if parts.scheme == "file":
        return "file", "", unquote(parts.path)
    raise SourceError(f"unsupported source {uri!r}: expected a path or s3://bucket/key")


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{quote(key)}"


def resolve(source: str) -> list[SourceFile]:
    """Expand a file, a folder, ``s3://bucket/key`` or ``s3://bucket/prefix/`` into files."""
    if source.startswith("s3://"):
        return _resolve_s3(source)
    if "://" in source:
        raise SourceError(f"unsupported source {source!r}: expected a path or s3://bucket/key")
    path = Path(source).expanduser()
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv"]
        if not files:
            raise SourceError(f"{source!r} holds no .csv file")
        return [_local(p) for p in files]
    if path.is_file():
        return [_local(path)]
    raise SourceError(f"{source!r} is neither a file nor a folder")


def _local(path: Path) -> SourceFile:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    except OSError as error:
        raise SourceError(f"cannot read {str(path)!r}: {error.strerror}") from None
    resolved = path.resolve()
    return SourceFile(
        uri=resolved.as_uri(),
        name=path.name,
        size=resolved.stat().st_size,
        fingerprint=f"sha256:{digest.hexdigest()}",
    )


def _resolve_s3(source: str) -> list[SourceFile]:
    from botocore.exceptions import BotoCoreError, ClientError

    _, bucket, key = _split(source)
    client = s3_client()
    try:
        if key and not key.endswith("/"):
            head = client.head_object(Bucket=bucket, Key=key)
            return [_s3_file(bucket, key, head["ContentLength"], head["ETag"])]
        files = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for item in page.get("Contents", []):
                if item["Key"].lower().endswith(".csv"):
                    files.append(_s3_file(bucket, item["Key"], item["Size"], item["ETag"]))
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket" or (code in {"404", "NotFound"} and not _bucket_exists(bucket)):
            raise SourceError(f"bucket {bucket!r} does not exist") from None
        if code in {"404", "NoSuchKey", "NotFound"}:
            raise SourceError(f"{source!r} does not exist") from None
        raise SourceError(f"cannot read {source!r}: {code or error}") from None
    except BotoCoreError as error:
        raise SourceError(f"cannot reach S3 for {source!r}: {error}") from None
    if not files:
        raise SourceError(f"{source!r} holds no .csv object")
    return files


def _bucket_exists(bucket: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3_client().head_bucket(Bucket=bucket)
    except ClientError:
        return False
    return True


def _s3_file(bucket: str, key: str, size: int, etag: str) -> SourceFile:
    name = key.rsplit("/", 1)[-1]
    return SourceFile(s3_uri(bucket, key), name, size, "etag:" + etag.strip('"'))


def in_dependency_order(
    files: list[SourceFile], table: str | None = None
) -> list[tuple[SourceFile, dictionary.Table]]:
    """Pair each file with its table, departments first, then jobs, then hired_employees."""
    order = list(dictionary.TABLES)
    paired = []
    for file in files:
        try:
            spec = dictionary.table(table) if table else table_for(file.name)
        except KeyError as error:
            raise UnknownTableError(str(error.args[0])) from None
        paired.append((file, spec))
    return sorted(paired, key=lambda pair: (order.index(pair[1].name), pair[0].uri))
