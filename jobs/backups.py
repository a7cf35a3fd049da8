"""AVRO backup and restore of Roster's tables, in the backup storage (a folder or S3).

A backup is one consistent snapshot of the tables asked for: ``<table>/<UTC timestamp>.avro``
and, beside it, ``<table>/<UTC timestamp>.json``, its manifest (row count, sha256, schema
fingerprint, Roster version, snapshot time). Files stream through a temporary file, so memory
stays flat whatever the table size.

A restore checks the whole file before it touches a table, then replaces the table's rows in
one transaction, through the same ingest pipeline as every other write: readers see the old
rows or the new ones, foreign keys hold, and bad rows are logged as rejections.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from itertools import islice
from typing import IO, Any

import fastavro
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import connection, transaction

from backend import dictionary
from backend.dictionary import Table
from backend.models import MODELS, HiredEmployee, Source
from jobs.avro import SchemaMismatch, check_writer_schema, fingerprint, schema_for
from jobs.ingest import check_rows, in_transaction, store_rows
from jobs.read_ahead import read_ahead

CODECS = ("null", "deflate", "snappy", "zstandard", "bzip2", "xz", "lz4")
CHUNK_ROWS = 5000


class BackupError(ValueError):
    """A backup or restore that cannot go ahead; nothing was changed."""


@dataclass
class BackupFile:
    """One table's backup: where it is and what its manifest says."""

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

    def manifest(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "seconds"}


@dataclass
class RestoreSummary:
    table: str
    key: str
    read: int = 0
    inserted: int = 0
    rejected: int = 0
    replaced: int = 0
    seconds: float = 0.0


Progress = Callable[[str, int], None]


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
    *, tables: list[str] | None = None, codec: str = "deflate", progress: Progress | None = None
) -> list[BackupFile]:
    """Back up ``tables`` (all by default) from one snapshot, one AVRO file each."""
    specs = _tables(tables)
    if codec not in available_codecs():
        available = ", ".join(available_codecs())
        raise BackupError(f"codec {codec!r} is not available here; use one of: {available}")
    storage = backup_storage()
    written: list[BackupFile] = []
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            # Only a transaction's first statement may set its isolation: inside a caller's
            # transaction, the backup reads through that transaction's snapshot instead.
            cursor = connection.cursor()
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = datetime.now(UTC)
        stamp = snapshot.strftime("%Y%m%dT%H%M%S.%fZ")
        for spec in specs:
            clock = time.perf_counter()
            with tempfile.TemporaryFile() as scratch:
                rows = _write_avro(spec, scratch, codec, snapshot, progress)
                digest, size = _sha256(scratch)
                key = f"{spec.name}/{stamp}.avro"
                record = BackupFile(
                    table=spec.name,
                    key=key,
                    rows=rows,
                    sha256=digest,
                    schema_fingerprint=fingerprint(schema_for(spec)),
                    roster_version=roster_version(),
                    snapshot_time=snapshot.isoformat(),
                    codec=codec,
                    size=size,
                )
                scratch.seek(0)
                _save(storage, key, scratch)
            manifest = json.dumps(record.manifest(), indent=2).encode()
            with tempfile.TemporaryFile() as scratch:
                scratch.write(manifest)
                scratch.seek(0)
                _save(storage, _manifest_key(key), scratch)
            record.seconds = time.perf_counter() - clock
            written.append(record)
    return written


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


def _save(storage: Storage, key: str, stream: IO[bytes]) -> None:
    saved = storage.save(key, File(stream, name=posixpath.basename(key)))
    if saved != key:  # a clash would have been renamed: keys are per microsecond, so it's a bug
        storage.delete(saved)
        raise BackupError(f"{key} exists already in the backup storage")


def _manifest_key(key: str) -> str:
    return key.removesuffix(".avro") + ".json"


# --- listing ---------------------------------------------------------------------------------


def list_backups(table: str | None = None) -> list[BackupFile]:
    """Backups in the storage, newest first, with their manifests (where there is one).

    Files without a manifest (the replaced system's backups) have no snapshot time: they come
    last, so that a restore's default, the latest backup, is always one of Roster's.
    """
    storage = backup_storage()
    found: list[BackupFile] = []
    for spec in _tables([table] if table else None):
        try:
            _, names = storage.listdir(spec.name)
        except FileNotFoundError:
            continue
        for name in names:
            if name.endswith(".avro"):
                found.append(_describe(storage, f"{spec.name}/{name}", spec.name))
    return sorted(
        found, key=lambda b: (bool(b.snapshot_time), b.key.split("/", 1)[1], b.table), reverse=True
    )


def _describe(storage: Storage, key: str, table: str) -> BackupFile:
    manifest = _read_manifest(storage, key)
    if manifest is not None:
        fields = BackupFile.__dataclass_fields__
        return BackupFile(**{k: v for k, v in manifest.items() if k in fields})
    return BackupFile(table, key, -1, "", "", "", "", "", size=storage.size(key))


def _read_manifest(storage: Storage, key: str) -> dict[str, Any] | None:
    name = _manifest_key(key)
    if not storage.exists(name):
        return None
    with storage.open(name, "rb") as stream:
        try:
            manifest = json.loads(stream.read(1 << 20))
        except ValueError:
            raise BackupError(f"the manifest {name} is not valid JSON") from None
    return manifest if isinstance(manifest, dict) else None


def latest_backup(table: str) -> str:
    backups = list_backups(table)
    if not backups:
        raise BackupError(f"there is no backup of {table} in the backup storage")
    return backups[0].key


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
            summaries = {spec.name: RestoreSummary(spec.name, keys[spec.name]) for spec in specs}
            for spec in reversed(specs):  # children first; the keys are checked at commit
                summaries[spec.name].replaced = _empty(spec)
            for spec in specs:  # parents first
                files[spec.name].seek(0)
                _refill(spec, files[spec.name], checked[spec.name], summaries[spec.name], progress)
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
    manifest = _read_manifest(backup_storage(), key)
    digest, _ = _sha256(file)
    if manifest and manifest.get("sha256") and manifest["sha256"] != digest:
        raise BackupError(f"{key} does not match its manifest's sha256: the file is damaged")
    intact = bool(manifest and manifest.get("sha256"))
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
    rows = manifest.get("rows") if manifest else None
    if isinstance(rows, int) and not isinstance(rows, bool) and rows != count:
        raise BackupError(f"{key} holds {count} rows but its manifest says {rows}")
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
            summary.read += outcome.received
            summary.inserted += outcome.inserted
            summary.rejected += outcome.rejected
            if progress:
                progress(spec.name, summary.read)
    if summary.read != checked.rows:  # the check found them; a safety net, not a check
        raise BackupError(
            f"{summary.key}: read {summary.read} rows, but the check counted {checked.rows}; "
            "nothing was changed"
        )
    summary.seconds = time.perf_counter() - clock


def _records(file: IO[bytes], key: str) -> Iterator[dict[str, Any]]:
    try:
        yield from fastavro.reader(file)
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
