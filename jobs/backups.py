"""AVRO backup and restore of Roster's tables, in the backup storage (a folder or S3).

A backup is one consistent snapshot of the tables asked for: ``<table>/<UTC timestamp>.avro``
and, beside it, ``<table>/<UTC timestamp>.json``, its manifest (row count, sha256, schema
fingerprint, Roster version, snapshot time, and the tables of the snapshot). Files stream
through a temporary file, so memory stays flat whatever the table size.

A backup commits by its manifests. In a folder each file is written under a temporary name
(``.<name>.<random>.part``) in its final directory, synced, then renamed into place; on S3 a PUT
is atomic already. Every data file is written first and the manifests last, so a backup exists
only once all of its manifests do. A backup that fails, however it fails, removes everything it
wrote: its data files, its temporary files and the manifests of its other tables. When the
storage failed it (a full disk, a permission, an S3 error) it raises ``BackupError``, saying
where and why; any other error (the database gone, a bug, Ctrl-C) is raised as it is.

Listing trusts file names, never the manifests' contents: a key is ``<table>/<file name>``, and
the manifest is data to check against it. A manifest that does not check out (not JSON, wrong
fields or types, another key or table) lists its file as damaged, with the reason. A backup of
several tables is listed only when every one of its manifests is there. A file without a
manifest is listed only when it is the replaced system's (no ``roster.version`` in its AVRO
metadata, a schema that fits the table); a Roster file without its manifest is a backup that
never committed (one in progress, or one killed mid-way) and is not listed. The default restore,
``latest_backup``, is the newest intact Roster backup: never a damaged or a legacy file.

Retention (``keep``, the ``BACKUP_KEEP`` setting by default) runs only after a backup has
committed: of each table it backed up, the intact Roster backups beyond the ``keep`` newest are
deleted, each snapshot's manifests first and its data files last. A snapshot of several tables
goes only once it is beyond the ``keep`` newest of every table it holds, so that no listed
backup ever loses a sibling. Legacy and damaged files are never deleted, nor counted.

A restore checks the whole file before it touches a table, then replaces the table's rows in
one transaction, through the same ingest pipeline as every other write: readers see the old
rows or the new ones, foreign keys hold, and bad rows are logged as rejections.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import posixpath
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from itertools import islice
from typing import IO, Any, cast

import fastavro
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.db import connection, transaction

from backend import dictionary, hire_summary
from backend.dictionary import Table
from backend.models import MODELS, HiredEmployee, Source
from jobs.avro import SchemaMismatch, check_writer_schema, fingerprint, schema_for
from jobs.ingest import check_rows, in_transaction, store_rows
from jobs.progress import Progress
from jobs.read_ahead import read_ahead
from jobs.summary import JobSummary

logger = logging.getLogger("roster.backups")

CODECS = ("null", "deflate", "snappy", "zstandard", "bzip2", "xz", "lz4")
CHUNK_ROWS = 5000
STAMP = "%Y%m%dT%H%M%S.%fZ"  # a backup's file name: its snapshot time, UTC, to the microsecond
MANIFEST_MAX_BYTES = 1 << 20
HEADER_MAX_BYTES = 256 << 10  # enough for any AVRO header: the schema and the metadata
# What a storage raises when it cannot take a file: a full, read-only or forbidden folder, S3.
STORAGE_ERRORS = (OSError, BotoCoreError, ClientError)
_SAFE_MAKEDIRS: Callable[..., None] = import_module("django.utils._os").safe_makedirs
"""Django's own ``makedirs`` that applies a mode despite the umask (it has no stub)."""


class BackupError(ValueError):
    """A backup or restore that cannot go ahead; nothing was changed."""


@dataclass
class BackupFile:
    """One table's backup: where it is and what its manifest says.

    ``legacy``: a file of the replaced system (no manifest; restored only when named).
    ``problem``: why the file cannot be trusted (a damaged manifest, an unreadable file); empty
    for an intact backup. Neither kind is ever the default restore.
    """

    table: str
    key: str
    rows: int
    sha256: str
    schema_fingerprint: str
    roster_version: str
    snapshot_time: str
    codec: str
    size: int = 0
    seconds: float = 0.0
    tables: list[str] = field(default_factory=list)
    legacy: bool = False
    problem: str = ""

    @classmethod
    def without_manifest(
        cls, table: str, key: str, *, size: int, legacy: bool = False, problem: str = ""
    ) -> BackupFile:
        return cls(table, key, -1, "", "", "", "", "", size=size, legacy=legacy, problem=problem)

    def manifest(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("seconds", "legacy", "problem")}

    @property
    def snapshot(self) -> datetime | None:
        """When the snapshot was taken, in UTC: the manifest's time (listing checked it against
        the file's name); for a file without a usable manifest, the time its name holds; None
        when the name holds none (the replaced system's files are named as it chose)."""
        moment = _snapshot(self.snapshot_time)
        return moment.astimezone(UTC) if moment is not None else _stamp_time(self.key)

    @property
    def position(self) -> Position:
        """Where the file sorts in ``list_backups``, which lists the highest position first."""
        return (not self.legacy, posixpath.basename(self.key), self.table)


Position = tuple[bool, str, str]
"""A backup's place in the listing: (a Roster file, its file name, its table)."""


@dataclass(kw_only=True)
class RestoreSummary(JobSummary):
    """A restore of one table: the backup it took, and how many rows the table held before."""

    key: str
    replaced: int = 0


def available_codecs() -> list[str]:
    """The AVRO codecs this machine can write (snappy, zstandard... need their libraries)."""
    usable = []
    for codec in CODECS:
        try:
            fastavro.writer(io.BytesIO(), {"type": "record", "name": "probe", "fields": []}, [{}],
                            codec=codec)  # fmt: skip
        except Exception:  # a missing library shows up only when the codec is used
            continue
        usable.append(codec)
    return usable


def backup_storage() -> Storage:
    return storages["backups"]


def roster_version() -> str:
    try:
        return version("roster")
    except PackageNotFoundError:
        return "unknown"


# --- backup ----------------------------------------------------------------------------------


def backup_tables(
    *,
    tables: list[str] | None = None,
    codec: str = "deflate",
    keep: int | None = None,
    progress: Progress | None = None,
) -> list[BackupFile]:
    """Back up ``tables`` (all by default) from one snapshot, one AVRO file each.

    The data files are written first, the manifests last: the backup exists once they all do.
    Should anything fail, everything it wrote is removed. A storage that cannot take the files
    (a full disk, a permission, S3 refusing) is a ``BackupError`` that says where and why; any
    other error (the database gone, a bug) is raised as it is, for the caller to word.

    Once the backup has committed, ``prune_backups`` keeps the ``keep`` newest intact backups
    of each of its tables (``BACKUP_KEEP`` when None; 0 keeps them all). A backup that failed
    deletes nothing.
    """
    keep = settings.BACKUP_KEEP if keep is None else keep
    if keep < 0:
        raise BackupError(f"keep must be 0 (keep every backup) or more, got {keep}")
    specs = _tables(tables)
    if codec not in available_codecs():
        available = ", ".join(available_codecs())
        raise BackupError(f"codec {codec!r} is not available here; use one of: {available}")
    writes = _Writes(backup_storage())
    try:
        written = _write_snapshot(specs, codec, progress, writes)
        for record in written:
            manifest = json.dumps(record.manifest(), indent=2).encode()
            with writes.file(_manifest_key(record.key)) as out:
                out.write(manifest)
    except BaseException as error:
        left = writes.remove_all()
        if isinstance(error, STORAGE_ERRORS):
            raise BackupError(writes.failure(error, left)) from error
        raise
    if keep:
        prune_backups(
            tables=[record.table for record in written],
            keep=keep,
            spare=[record.key for record in written],
        )
    return written


def prune_backups(*, tables: list[str], keep: int, spare: Collection[str] = ()) -> list[str]:
    """Delete the intact Roster backups of ``tables`` beyond the ``keep`` newest of each table;
    return the keys deleted.

    A snapshot of several tables is deleted whole, and only once it is beyond the ``keep``
    newest of every table it holds. Legacy and damaged files, a snapshot with a damaged or
    missing part, and the files in ``spare`` (the backup just written) are never deleted. Each
    snapshot loses its manifests first, its data files last: should the storage fail midway,
    what is left is unlisted, never a listed backup with a file missing. A storage error is
    logged and stops the pruning; it never fails the backup that has committed.
    """
    if keep <= 0:
        return []
    listed = list_backups()
    intact = {b.key: b for b in listed if not b.problem and not b.legacy}
    newest: dict[str, list[BackupFile]] = {}
    for backup in intact.values():  # newest first, as listed
        newest.setdefault(backup.table, []).append(backup)
    kept = {_snapshot_keys(b) for files in newest.values() for b in files[:keep]}
    doomed: list[tuple[str, ...]] = []
    for table in dict.fromkeys(tables):
        for backup in newest.get(table, [])[keep:]:
            keys = _snapshot_keys(backup)
            whole = all(key in intact and intact[key].tables == backup.tables for key in keys)
            if keys not in kept and keys not in doomed and whole and not set(keys) & set(spare):
                doomed.append(keys)
    storage, deleted = backup_storage(), []
    for keys in doomed:
        try:
            for key in [*map(_manifest_key, keys), *keys]:
                storage.delete(key)
                deleted.append(key)
        except STORAGE_ERRORS as error:
            logger.error(
                "could not delete an old backup",
                extra={"keys": list(keys), "reason": _reason(error), "deleted": deleted},
            )
            break
    if deleted:
        logger.info("deleted old backups", extra={"keep": keep, "deleted": deleted})
    return deleted


def _snapshot_keys(backup: BackupFile) -> tuple[str, ...]:
    """The data files of the snapshot ``backup`` belongs to, one per table, in table order."""
    name = posixpath.basename(backup.key)
    return tuple(f"{spec.name}/{name}" for spec in _tables(backup.tables))


def _write_snapshot(
    specs: list[Table], codec: str, progress: Progress | None, writes: _Writes
) -> list[BackupFile]:
    """Each table's data file, from one snapshot; their records, not yet their manifests."""
    written: list[BackupFile] = []
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            # Only a transaction's first statement may set its isolation: inside a caller's
            # transaction, the backup reads through that transaction's snapshot instead.
            cursor = connection.cursor()
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = datetime.now(UTC)
        stamp = snapshot.strftime(STAMP)
        names = [spec.name for spec in specs]
        for spec in specs:
            clock = time.perf_counter()
            key = f"{spec.name}/{stamp}.avro"
            with writes.file(key) as out:
                rows = _write_avro(spec, out, codec, snapshot, progress)
                digest, size = _sha256(out)
            written.append(
                BackupFile(
                    table=spec.name,
                    key=key,
                    rows=rows,
                    sha256=digest,
                    schema_fingerprint=fingerprint(schema_for(spec)),
                    roster_version=roster_version(),
                    snapshot_time=snapshot.isoformat(),
                    codec=codec,
                    size=size,
                    seconds=time.perf_counter() - clock,
                    tables=names,
                )
            )
    return written


class _Writes:
    """The files one backup writes, each put in place whole, and removed should it fail.

    In a folder (``FileSystemStorage``): a temporary file in the final directory, synced, then
    ``os.replace``d to its name and the directory synced. In any other storage (S3), where a PUT
    is atomic: a local temporary file, then one ``save``.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.folder = isinstance(storage, FileSystemStorage)
        self.placed: list[str] = []  # keys, in the order they were written
        self.temporary: list[str] = []  # paths of temporary files not yet renamed
        self.current = ""  # the key being written

    @contextmanager
    def file(self, key: str) -> Iterator[IO[bytes]]:
        """A file to fill; stored at ``key`` when the block ends without an error."""
        self.current = key
        if self.folder:
            yield from self._in_folder(key)
        else:
            with tempfile.TemporaryFile() as scratch:
                yield scratch
                scratch.seek(0)
                self._save(key, scratch)
        self.current = ""

    def _in_folder(self, key: str) -> Iterator[IO[bytes]]:
        storage = cast(FileSystemStorage, self.storage)
        path = storage.path(key)
        directory, name = os.path.split(path)
        mode = storage.directory_permissions_mode
        if mode is not None:  # as FileSystemStorage creates folders: the mode despite the umask
            _SAFE_MAKEDIRS(directory, mode, exist_ok=True)
        else:
            os.makedirs(directory, exist_ok=True)
        if os.path.lexists(path):
            raise BackupError(f"{key} exists already in the backup storage")
        temporary = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.part")
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        self.temporary.append(temporary)
        with os.fdopen(os.open(temporary, flags, 0o666), "w+b") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if storage.file_permissions_mode is not None:
            os.chmod(temporary, storage.file_permissions_mode)
        os.replace(temporary, path)
        self.temporary.remove(temporary)
        self.placed.append(key)
        _sync_directory(directory)

    def _save(self, key: str, stream: IO[bytes]) -> None:
        if self.storage.exists(key):
            raise BackupError(f"{key} exists already in the backup storage")
        self.placed.append(key)  # were the answer to a PUT lost, the object may be there
        saved = self.storage.save(key, File(stream, name=posixpath.basename(key)))
        if saved != key:  # renamed: someone wrote the key meanwhile, and that file is theirs
            self.placed[-1] = saved
            raise BackupError(f"{key} exists already in the backup storage")

    def remove_all(self) -> list[str]:
        """Remove what was written, newest first (manifests before data); return what is left.

        What cannot be removed has no manifest, or lacks a sibling's: it is never listed.
        """
        left = []
        for path in self.temporary:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(path)
        for key in reversed(self.placed):
            try:
                self.storage.delete(key)
            except Exception:  # the storage is failing: keep removing the rest
                left.append(key)
        if left:
            logger.error("a failed backup left files behind", extra={"files": left})
        self.temporary, self.placed = [], []
        return left

    def failure(self, error: BaseException, left: list[str]) -> str:
        """One line for a backup the storage failed: where, why, and what is left."""
        where = f" while writing {self.current}" if self.current else ""
        message = f"the backup failed{where}: {_reason(error)}"
        if left:
            return f"{message}; could not remove {', '.join(left)} (never listed)"
        return f"{message}; nothing of it was kept"


def _reason(error: BaseException) -> str:
    """The storage's own words: the system's for a file, S3's code and message for a request."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, ClientError):
        answer = error.response.get("Error", {})
        code, message = answer.get("Code", ""), answer.get("Message", "")
        return f"S3 refused {error.operation_name}: {code}" + (f" ({message})" if message else "")
    return next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)


def _sync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (POSIX: fsync the directory)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_avro(
    spec: Table, out: IO[bytes], codec: str, snapshot: datetime, progress: Progress | None
) -> int:
    columns = spec.column_names
    count = 0

    def records() -> Iterator[dict[str, Any]]:
        """The rows in id order, through a server-side cursor on PostgreSQL (Django's
        ``chunked_cursor``), a chunk per round trip, with no model or ORM work per row."""
        nonlocal count
        quote = connection.ops.quote_name
        select = (
            f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(spec.name)} "
            f"ORDER BY {quote('id')}"
        )
        with connection.chunked_cursor() as cursor:
            cursor.execute(select)
            while chunk := cursor.fetchmany(CHUNK_ROWS):
                count += len(chunk)
                yield from (dict(zip(columns, values)) for values in chunk)  # noqa: B905
                if progress:
                    progress(spec.name, count)

    metadata = {"roster.version": roster_version(), "roster.snapshot": snapshot.isoformat()}
    fastavro.writer(out, schema_for(spec), records(), codec=codec, metadata=metadata)
    if progress:
        progress(spec.name, count)
    return count


def _sha256(stream: IO[bytes]) -> tuple[str, int]:
    stream.seek(0)
    digest, size = hashlib.sha256(), 0
    while block := stream.read(1 << 20):
        digest.update(block)
        size += len(block)
    stream.seek(0)
    return digest.hexdigest(), size


def _manifest_key(key: str) -> str:
    return key.removesuffix(".avro") + ".json"


# --- listing ---------------------------------------------------------------------------------


def list_backups(
    table: str | None = None, *, after: Position | None = None, first: int | None = None
) -> list[BackupFile]:
    """Backups in the storage, newest first (by file name); the replaced system's files last.

    Keys come from the file names. Each manifest is checked against its file; a damaged one
    lists its file with a ``problem``. A backup of several tables is listed only when all of
    its manifests are there; a Roster file without a manifest (a backup that never committed)
    is not listed.

    A page: the ``first`` backups listed after the ``position`` ``after`` (that of the last
    backup of the previous page), so that backups made or deleted meanwhile never make a page
    repeat or skip another.
    """
    storage = backup_storage()
    names = {spec.name: _file_names(storage, spec.name) for spec in _tables(None)}
    found: list[BackupFile] = []
    for spec in _tables([table] if table else None):
        for name in sorted(names[spec.name]):
            if name.endswith(".avro") and not name.startswith("."):
                described = _describe(storage, spec, name, names)
                if described is not None:
                    found.append(described)
    found.sort(key=lambda backup: backup.position, reverse=True)
    if after is not None:
        found = [backup for backup in found if backup.position < after]
    return found if first is None else found[:first]


def _file_names(storage: Storage, folder: str) -> set[str]:
    try:
        return set(storage.listdir(folder)[1])
    except FileNotFoundError:
        return set()


def _describe(
    storage: Storage, spec: Table, name: str, names: dict[str, set[str]]
) -> BackupFile | None:
    """What the file ``<table>/<name>`` is, checked; None when it is not a listed backup."""
    try:
        key = safe_key(f"{spec.name}/{name}", spec.name)
    except BackupError:  # a name no restore would accept
        return None
    stem = name.removesuffix(".avro")
    if f"{stem}.json" not in names[spec.name]:
        return _without_manifest(storage, spec, key)
    manifest, problem = _load_manifest(storage, key, spec.name)
    if problem:
        return BackupFile.without_manifest(
            spec.name, key, size=_size(storage, key), problem=problem
        )
    if manifest is None:  # removed since the folder was listed
        return _without_manifest(storage, spec, key)
    record = BackupFile(**manifest, key=key)
    if any(f"{stem}.json" not in names.get(other, ()) for other in record.tables):
        return None  # a backup of several tables that never committed, or was partly removed
    return record


def _without_manifest(storage: Storage, spec: Table, key: str) -> BackupFile | None:
    """A file with no manifest: the replaced system's, listed as legacy, or a Roster backup
    that never committed (not listed), or something else (listed with its problem)."""
    size = _size(storage, key)
    try:
        head = _head(storage, key)
    except FileNotFoundError:  # removed since the folder was listed (a failed backup's)
        return None
    except OSError as error:  # S3's errors are the storage's, not this file's: they propagate
        problem = f"no manifest, and the file cannot be read ({error.strerror or error})"
        return BackupFile.without_manifest(spec.name, key, size=size, problem=problem)
    try:
        reader = fastavro.reader(io.BytesIO(head))
        if "roster.version" in reader.metadata:
            return None
        check_writer_schema(spec, reader.writer_schema)
    except SchemaMismatch as error:
        problem = f"no manifest, and not a backup of {spec.name}: {error}"
        return BackupFile.without_manifest(spec.name, key, size=size, problem=problem)
    except Exception as error:  # fastavro raises many kinds for a file that is not AVRO
        problem = f"no manifest, and not a readable AVRO file ({error or type(error).__name__})"
        return BackupFile.without_manifest(spec.name, key, size=size, problem=problem)
    return BackupFile.without_manifest(spec.name, key, size=size, legacy=True)


def _head(storage: Storage, key: str) -> bytes:
    """The first bytes of a file: on S3 a ranged GET (S3File.obj), not the whole object."""
    with storage.open(key, "rb") as stream:
        s3_object = getattr(stream, "obj", None)
        if s3_object is not None:
            body = s3_object.get(Range=f"bytes=0-{HEADER_MAX_BYTES - 1}")["Body"]
            return body.read()
        return stream.read(HEADER_MAX_BYTES)


def _size(storage: Storage, key: str) -> int:
    try:
        return storage.size(key)
    except OSError:
        return 0


def _load_manifest(storage: Storage, key: str, table: str) -> tuple[dict[str, Any] | None, str]:
    """The manifest of the file ``key``, checked: (fields for BackupFile, "") when it holds,
    (None, what is wrong) when it is damaged, (None, "") when there is none."""
    name = _manifest_key(key)
    try:
        with storage.open(name, "rb") as stream:
            data = stream.read(MANIFEST_MAX_BYTES + 1)
    except FileNotFoundError:
        return None, ""
    except OSError as error:
        return None, f"the manifest {name} cannot be read ({error.strerror or error})"
    if len(data) > MANIFEST_MAX_BYTES:
        return None, f"the manifest {name} is larger than {MANIFEST_MAX_BYTES} bytes"
    try:
        manifest = json.loads(data)
    except ValueError:
        return None, f"the manifest {name} is not valid JSON"
    problem = _manifest_problem(manifest, key, table)
    if problem:
        return None, f"the manifest {name} {problem}"
    fields = {k: manifest[k] for k in _MANIFEST_FIELDS if k != "key"}
    fields["tables"] = list(manifest.get("tables", [table]))
    return fields, ""


# What a manifest must hold. ``tables`` came later: without it, a manifest is one table's.
_MANIFEST_FIELDS: dict[str, type] = {
    "table": str,
    "key": str,
    "rows": int,
    "sha256": str,
    "schema_fingerprint": str,
    "roster_version": str,
    "snapshot_time": str,
    "codec": str,
    "size": int,
}


def _manifest_problem(manifest: Any, key: str, table: str) -> str:
    """'' when ``manifest`` describes the file at ``key`` of ``table``; else what is wrong."""
    if not isinstance(manifest, dict):
        return f"holds {_json_kind(manifest)}, not an object"
    for name, kind in _MANIFEST_FIELDS.items():
        if name not in manifest:
            return f"has no {name!r}"
        value = manifest[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"has {_json_kind(value)} for {name!r}, not {_json_kind(kind())}"
    if manifest["table"] != table:
        return f"is for the table {manifest['table']!r:.80}, not {table}"
    if manifest["key"] != key:
        return f"names the file {manifest['key']!r:.200}, not {key}"
    if manifest["rows"] < 0 or manifest["size"] < 0:
        return "has a negative 'rows' or 'size'"
    if not re.fullmatch(r"[0-9a-f]{64}", manifest["sha256"]):
        return "has a 'sha256' that is not 64 hex digits"
    stamp = _stamp_time(key)
    if stamp is None or _snapshot(manifest["snapshot_time"]) != stamp:
        return f"has a 'snapshot_time' {manifest['snapshot_time']!r:.80} that is not its file's"
    tables = manifest.get("tables", [table])
    if (
        not isinstance(tables, list)
        or not all(isinstance(name, str) and name in dictionary.TABLES for name in tables)
        or len(set(tables)) != len(tables)
        or table not in tables
    ):
        return f"has a 'tables' that is not a list of tables with {table}: {tables!r:.200}"
    return ""


def _json_kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    kinds.update({list: "an array", dict: "an object", type(None): "null"})
    return kinds.get(type(value), type(value).__name__)


def _snapshot(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _stamp_time(key: str) -> datetime | None:
    """The snapshot time a backup's file name says, or None for another name."""
    try:
        return datetime.strptime(posixpath.basename(key), f"{STAMP}.avro").replace(tzinfo=UTC)
    except ValueError:
        return None


def latest_backup(table: str) -> str:
    """The key of ``table``'s newest intact Roster backup: never a damaged or legacy file."""
    listed = list_backups(table)
    for backup in listed:
        if not backup.problem and not backup.legacy:
            return safe_key(backup.key, table)
    if listed:
        raise BackupError(
            f"there is no intact Roster backup of {table} to restore by default, only "
            f"{len(listed)} damaged or replaced-system file(s); name the one to restore"
        )
    raise BackupError(f"there is no backup of {table} in the backup storage")


# --- restore ---------------------------------------------------------------------------------


def safe_key(key: str, table: str) -> str:
    """A key inside the backup storage, for ``table``: no ``..``, no absolute paths."""
    normal = posixpath.normpath(key.replace("\\", "/"))
    if key.startswith(("/", "\\")) or normal.startswith("..") or "/../" in f"/{key}/":
        raise BackupError(f"{key!r} leaves the backup storage; give a key such as {table}/….avro")
    if not normal.startswith(f"{table}/") or not normal.endswith(".avro"):
        raise BackupError(f"{key!r} is not a backup of {table}: expected {table}/<timestamp>.avro")
    return normal


def restore_tables(
    *,
    tables: list[str],
    backups: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> list[RestoreSummary]:
    """Replace each table's rows with its backup, all in one transaction.

    Every file is fetched and checked first (a compatible schema, the manifest's checksum and
    row count, every block readable to the end). Tables are emptied children first and filled
    parents first, so the foreign keys hold; a restore that would orphan hired employees fails
    and changes nothing.
    """
    specs = _tables(tables)
    backups = backups or {}
    storage = backup_storage()
    keys = {
        spec.name: safe_key(backups[spec.name], spec.name)
        if backups.get(spec.name)
        else latest_backup(spec.name)
        for spec in specs
    }
    with _fetched(storage, keys) as files:
        checked = {spec.name: _verify(spec, keys[spec.name], files[spec.name]) for spec in specs}

        def replace() -> dict[str, RestoreSummary]:  # repeatable, should a deadlock undo it
            summaries = {
                spec.name: RestoreSummary(table=spec.name, key=keys[spec.name]) for spec in specs
            }
            # The hires summary is rebuilt once, at the end (backend/hire_summary.py).
            rewrites_hires = dictionary.HIRED_EMPLOYEES.name in summaries
            with hire_summary.rebuilt_after() if rewrites_hires else nullcontext():
                for spec in reversed(specs):  # children first; the keys are checked at commit
                    summaries[spec.name].replaced = _empty(spec)
                for spec in specs:  # parents first
                    files[spec.name].seek(0)
                    _refill(
                        spec, files[spec.name], checked[spec.name], summaries[spec.name], progress
                    )
                _check_orphans()
            return summaries

        summaries = in_transaction(replace)
    return [summaries[spec.name] for spec in specs]


class _fetched:
    """Download each backup to a temporary file, and remove them all afterwards."""

    def __init__(self, storage: Storage, keys: dict[str, str]) -> None:
        self.storage, self.keys = storage, keys
        self.files: dict[str, IO[bytes]] = {}

    def __enter__(self) -> dict[str, IO[bytes]]:
        try:
            for table, key in self.keys.items():
                if not self.storage.exists(key):
                    raise BackupError(f"no backup {key!r} in the backup storage")
                scratch = tempfile.TemporaryFile()
                self.files[table] = scratch
                with self.storage.open(key, "rb") as source:
                    while block := source.read(1 << 20):
                        scratch.write(block)
                scratch.seek(0)
        except BaseException:
            self.__exit__()
            raise
        return self.files

    def __exit__(self, *exc: object) -> None:
        for scratch in self.files.values():
            scratch.close()


def _verify(spec: Table, key: str, file: IO[bytes]) -> _Checked:
    """Check the file before anything changes: checksum, schema, and every block to its end.

    When the manifest's sha256 matches, the file is byte for byte the one the backup wrote, so
    reading its blocks (decompressed, each with its sync marker) and adding up their record
    counts is enough; the refill decodes the records, once. Other files have every record
    decoded here first.
    """
    manifest, problem = _load_manifest(backup_storage(), key, spec.name)
    if problem:
        raise BackupError(f"{key} cannot be checked: {problem}")
    digest, _ = _sha256(file)
    if manifest is not None and manifest["sha256"] != digest:
        raise BackupError(f"{key} does not match its manifest's sha256: the file is damaged")
    intact = manifest is not None
    try:
        reader = fastavro.reader(file)
        renames = check_writer_schema(spec, reader.writer_schema)
        ours = "roster.version" in reader.metadata
        if intact:
            file.seek(0)
            count = sum(block.num_records for block in fastavro.block_reader(file))
        else:
            count = sum(1 for _ in reader)
    except SchemaMismatch as error:
        raise BackupError(f"{key}: {error}") from None
    except Exception as error:  # fastavro raises many kinds for a damaged file
        raise BackupError(
            f"{key} is not a readable AVRO file ({error or type(error).__name__})"
        ) from None
    finally:
        file.seek(0)
    if manifest is None and ours:  # a file cut at a block boundary still reads to its "end"
        raise BackupError(
            f"{key} is a Roster backup without its manifest {_manifest_key(key)}: "
            "whether it is complete cannot be checked"
        )
    if manifest is not None and manifest["rows"] != count:
        raise BackupError(f"{key} holds {count} rows but its manifest says {manifest['rows']}")
    renamed = {old: new for old, new in renames.items() if old != new}
    return _Checked(renamed, count)


@dataclass(frozen=True)
class _Checked:
    """What the check of a file found: legacy field names to rename, and its row count."""

    renames: dict[str, str]
    rows: int


def _refill(
    spec: Table,
    file: IO[bytes],
    checked: _Checked,
    summary: RestoreSummary,
    progress: Progress | None,
) -> None:
    """Decode and check the next chunk in a helper thread while this one is stored."""
    clock = time.perf_counter()
    renames, for_copy = checked.renames, connection.vendor == "postgresql"
    records = _records(file, summary.key)
    if renames:
        records = ({renames.get(k, k): v for k, v in record.items()} for record in records)
    chunks = (
        check_rows(table=spec, rows=chunk, copy_lines=for_copy)
        for chunk in iter(lambda: list(islice(records, CHUNK_ROWS)), [])
    )
    with read_ahead(chunks) as ready:
        for chunk in ready:
            outcome = store_rows(
                chunk,
                positions=range(summary.read + 1, summary.read + len(chunk.raws) + 1),
                source=Source.RESTORE,
                uri=summary.key,
            )
            summary.add(outcome)
            if progress:
                progress(spec.name, summary.read)
    if summary.read != checked.rows:  # the check found them; a safety net, not a check
        raise BackupError(
            f"{summary.key}: read {summary.read} rows, but the check counted {checked.rows}; "
            "nothing was changed"
        )
    summary.seconds = time.perf_counter() - clock


def _records(file: IO[bytes], key: str) -> Iterator[dict[str, Any]]:
    try:  # the writer's schema was checked: a record schema, so each record is a dict
        yield from cast(Iterator[dict[str, Any]], fastavro.reader(file))
    except Exception as error:  # a damaged block: the transaction rolls back
        raise BackupError(
            f"{key} is not a readable AVRO file ({error or type(error).__name__}); "
            "nothing was changed"
        ) from None


def _empty(spec: Table) -> int:
    """Delete every row (MVCC: readers still see them until the commit), not TRUNCATE."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(spec.name)}")
        return cursor.rowcount


def _check_orphans() -> None:
    """No hired employee may point at a department or job that the restore took away."""
    for column in dictionary.HIRED_EMPLOYEES.foreign_keys:
        parents = MODELS[column.references].objects.values("id")
        orphans = HiredEmployee.objects.exclude(**{f"{column.name}__in": parents}).count()
        if orphans:
            raise BackupError(
                f"the restore would orphan {orphans} hired employees whose {column.name} is "
                f"not in the restored {column.references}; nothing was changed "
                f"(restore hired_employees too, or use --all)"
            )


def _tables(names: list[str] | None) -> list[Table]:
    """Tables by name, in dependency order; all of them when ``names`` is empty."""
    if not names:
        return list(dictionary.TABLES.values())
    try:
        wanted = {dictionary.table(name).name for name in names}
    except KeyError as error:
        raise BackupError(str(error.args[0])) from None
    return [spec for name, spec in dictionary.TABLES.items() if name in wanted]
