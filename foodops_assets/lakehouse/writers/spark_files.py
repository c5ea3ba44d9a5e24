"""The ``spark_files`` Delta writer: the cluster writes the Parquet files, delta-rs commits them.

For a Spark that has no Delta on its classpath (any plain Spark cluster behind
Spark Connect, or the embedded one), this keeps the data off the Dagster
process. A partition write is:

1. the executors write the rows as Parquet into a staging directory inside
   the table, ``<table>/_foodops_staging/<write id>/<partition dirs>/part-*.parquet``
   (hive-style partition directories, as any Delta writer lays them out);
2. the Dagster process checks what was written, reading only file listings
   and Parquet footers: every file lies in one of the partitions being
   replaced (the predicate guard: a row outside them is refused, never
   committed), every file has the DataFrame's schema, and the footers give
   the row counts and the min/max/null-count statistics of the add actions;
3. the files are moved (renamed) into the partition directories and
   delta-rs commits them together with the removal of the partitions' old
   files as ONE Delta commit (``create_write_transaction(mode="overwrite",
   partition_filters=...)``, or ``create_table_with_add_actions`` for a new
   table). The commit goes on top of the snapshot the write read, with no retry
   inside delta-rs; one that loses a race is committed again, the same files, by
   the shared rule (``base.DeltaWriter.commit_over_races``): delta-rs' own rebase
   would keep a compaction's copy of the partition's old rows beside the new ones.

Until step 3 commits, readers see the previous version; a failure at any
step deletes the staged and moved files (a process killed outright leaves
only unreferenced files, which Delta readers never see and VACUUM removes).
Re-running the same write produces the same table content.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema
from deltalake.transaction import AddAction, create_table_with_add_actions
from pyarrow import fs as pafs
from pyspark.sql import DataFrame

from ..delta import DeltaStore, PredicateError, partition_text
from ..tables import TableRef
from .base import Commit, DeltaWriter, RefusedWrite, arrow_schema_of, type_key

STAGING_DIR = "_foodops_staging"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
# the prefix length delta-rs keeps for string statistics
STRING_STATS_PREFIX = 64
_TIMESTAMP_CONF = "spark.sql.parquet.outputTimestampType"


class StagedWriteError(RefusedWrite):
    """What the cluster wrote cannot be committed (wrong partitions or schema)."""


@dataclass(frozen=True)
class StagedFile:
    staged: str  # filesystem path of the file in the staging directory
    relative: str  # path below the table root (partition directories + file name), on disk
    partition_values: dict[str, str | None]
    size: int
    mtime_ms: int


class Writer(DeltaWriter):
    name = "spark_files"

    def commit(self, rows: DataFrame, plan: Commit) -> tuple[int, int]:
        table, store = plan.table, self.store
        missing = [c for c in table.partition_by if c not in rows.columns]
        if missing:
            raise StagedWriteError(f"{table.name}: the rows have no partition column {missing}")
        allowed = {c: {partition_text(v) for v in vs} for c, vs in (plan.where or {}).items()}
        data_schema = pa.schema(
            [f for f in arrow_schema_of(rows) if f.name not in table.partition_by]
        )
        write_id = uuid.uuid4().hex
        fs, table_path = _filesystem(store.uri(table))
        staging = f"{table_path}/{STAGING_DIR}/{write_id}"
        moved: list[str] = []
        committed = False
        try:
            _spark_write(rows, table, _spark_uri(store.uri(table), f"{STAGING_DIR}/{write_id}"))
            staged = _staged_files(fs, staging, table)
            _guard_partitions(staged, table, allowed)
            actions = [_add_action(fs, f, data_schema, table) for f in staged]
            for f in staged:
                target = f"{table_path}/{f.relative}"
                fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
                fs.move(f.staged, target)
                moved.append(target)
            if plan.hang:
                plan.hang()  # a drill: killed with the files in place, before the commit
            metadata = {**plan.metadata, "foodops_write_id": write_id}
            schema = Schema.from_arrow(plan.schema)

            def once(p: Commit) -> int:
                snapshot = p.before.snapshot if p.before else None
                return _commit(
                    store, table, snapshot, actions, schema, allowed, p.description, metadata
                )

            try:
                version = self.commit_over_races(plan, once)
            except Exception:
                # a commit that failed on the way back may still have landed: never
                # delete files that the log now references
                version = _committed(store, table, write_id)
                if version is None:
                    raise
            committed = True
        finally:
            if not committed:
                for path in moved:
                    _delete_file(fs, path)
            # only this write's own directory: the staging root stays, as other writers of the
            # same table (the dead-letter queue's sources) may be staging in it right now
            _delete_dir(fs, staging)
        return version, sum(json.loads(a.stats)["numRecords"] for a in actions)


# -- Spark side -------------------------------------------------------------------------


def _spark_write(df: DataFrame, table: TableRef, target: str) -> None:
    """The executors write the rows as Parquet below ``target`` (nothing reaches this process)."""
    spark = df.sparkSession
    # Delta's timestamp is microseconds since the epoch, UTC; Spark's default is INT96
    previous = spark.conf.get(_TIMESTAMP_CONF, None)
    spark.conf.set(_TIMESTAMP_CONF, "TIMESTAMP_MICROS")
    try:
        # every task writes its own files, in parallel (no shuffle to one writer per
        # partition); "error", not "errorifexists": the Connect client knows only that name
        out = df.write.mode("error").option("compression", "snappy")
        if table.is_partitioned:
            out = out.partitionBy(*table.partition_by)
        out.parquet(target)
    finally:
        if previous is None:
            spark.conf.unset(_TIMESTAMP_CONF)
        else:
            spark.conf.set(_TIMESTAMP_CONF, previous)


def _spark_uri(table_uri: str, relative: str) -> str:
    return f"{table_uri.rstrip('/')}/{relative}"


# -- what the cluster wrote ---------------------------------------------------------------


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), uri.rstrip("/")


def _staged_files(fs: pafs.FileSystem, staging: str, table: TableRef) -> list[StagedFile]:
    infos = fs.get_file_info(pafs.FileSelector(staging, recursive=True, allow_not_found=True))
    files = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(staging) :].lstrip("/")
        name = relative.rsplit("/", 1)[-1]
        if name.startswith((".", "_")):  # _SUCCESS, .crc checksums
            continue
        if not name.endswith(".parquet"):
            raise StagedWriteError(f"unexpected file {relative} in the staging directory")
        files.append(
            StagedFile(
                staged=info.path,
                relative=relative,
                partition_values=_partition_values(relative, table),
                size=info.size or 0,
                mtime_ms=(info.mtime_ns or 0) // 1_000_000,
            )
        )
    return sorted(files, key=lambda f: f.relative)


def _partition_values(relative: str, table: TableRef) -> dict[str, str | None]:
    directories = relative.split("/")[:-1]
    if len(directories) != len(table.partition_by):
        raise StagedWriteError(
            f"{relative}: expected the partition directories {list(table.partition_by)}"
        )
    values: dict[str, str | None] = {}
    for column, directory in zip(table.partition_by, directories, strict=True):
        key, sep, raw = directory.partition("=")
        if not sep or unquote(key) != column:
            raise StagedWriteError(f"{relative}: {directory!r} is not a {column}=<value> directory")
        value = unquote(raw)
        values[column] = None if value == HIVE_NULL else value
    return values


def _guard_partitions(
    staged: Sequence[StagedFile], table: TableRef, allowed: Mapping[str, set[str]]
) -> None:
    """Refuse the write if any row lies outside the partitions being replaced."""
    outside = sorted(
        {
            f"{column}={f.partition_values[column]}"
            for f in staged
            for column, values in allowed.items()
            if f.partition_values[column] not in values
        }
    )
    if outside:
        named = "; ".join(f"{c} IN {sorted(v)}" for c, v in allowed.items())
        raise PredicateError(
            f"refusing to write {table.name}: the rows include partitions outside the ones "
            f"being replaced ({named}): {', '.join(outside)}. Nothing was committed."
        )


def _add_action(
    fs: pafs.FileSystem, f: StagedFile, data_schema: pa.Schema, table: TableRef
) -> AddAction:
    with fs.open_input_file(f.staged) as handle:
        parquet = pq.ParquetFile(handle)
        metadata = parquet.metadata
        file_schema = parquet.schema_arrow
    _check_schema(file_schema, data_schema, f, table)
    return AddAction(
        path="/".join(quote(part, safe="=") for part in f.relative.split("/")),
        size=f.size,
        partition_values=f.partition_values,
        modification_time=f.mtime_ms,
        data_change=True,
        stats=json.dumps(file_stats(metadata, data_schema), separators=(",", ":")),
    )


def _check_schema(
    file_schema: pa.Schema, expected: pa.Schema, f: StagedFile, table: TableRef
) -> None:
    got = [(fld.name, type_key(fld.type)) for fld in file_schema]
    want = [(fld.name, type_key(fld.type)) for fld in expected]
    if got != want:
        raise StagedWriteError(
            f"refusing to write {table.name}: {f.relative} has the columns "
            f"{', '.join(f'{n} {k}' for n, k in got)}; expected "
            f"{', '.join(f'{n} {k}' for n, k in want)}. Nothing was committed."
        )


# -- statistics from the footers ---------------------------------------------------------------


def file_stats(metadata: pq.FileMetaData, data_schema: pa.Schema) -> dict[str, Any]:
    """Delta ``add.stats`` of one Parquet file from its footer, in the form delta-rs writes:
    ``numRecords`` and, per top-level primitive column, ``minValues``/``maxValues``
    (strings cut to 64 characters, timestamps to milliseconds) and ``nullCount``."""
    columns = {
        metadata.schema.column(i).path: i
        for i in range(metadata.num_columns)
        if "." not in metadata.schema.column(i).path
    }
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for field in data_schema:
        index = columns.get(field.name)
        if index is None or _nested(field.type):
            continue
        lo: Any = None
        hi: Any = None
        null_count = 0
        complete = True
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            chunk = group.column(index).statistics
            if chunk is None or not chunk.has_null_count:
                complete = False
                break
            null_count += chunk.null_count
            if chunk.null_count == group.num_rows:
                continue  # all null: no bounds to merge
            if not chunk.has_min_max:
                lo = hi = None
                complete = False
                break
            lo = chunk.min if lo is None else min(lo, chunk.min)
            hi = chunk.max if hi is None else max(hi, chunk.max)
        if not complete and null_count == 0 and lo is None:
            continue
        nulls[field.name] = null_count
        if complete and lo is not None:
            low, high = _stat_value(lo, field.type, "min"), _stat_value(hi, field.type, "max")
            if low is not None:
                mins[field.name] = low
            if high is not None:
                maxs[field.name] = high
    return {
        "numRecords": metadata.num_rows,
        "minValues": mins,
        "maxValues": maxs,
        "nullCount": nulls,
    }


def _nested(t: pa.DataType) -> bool:
    return pa.types.is_nested(t)


def _stat_value(value: Any, t: pa.DataType, bound: str) -> Any:
    if pa.types.is_timestamp(t):
        if not isinstance(value, dt.datetime):
            return None
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
        millis = value.microsecond // 1000
        return f"{text}.{millis:03d}Z" if millis else f"{text}Z"
    if pa.types.is_date(t):
        return value.isoformat()
    if pa.types.is_decimal(t):
        return float(value) if isinstance(value, Decimal) else None
    if pa.types.is_floating(t):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if pa.types.is_boolean(t) or pa.types.is_integer(t):
        return value
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if len(value) <= STRING_STATS_PREFIX:
            return value
        prefix = value[:STRING_STATS_PREFIX]
        if bound == "min":
            return prefix  # a prefix is <= the value
        last = ord(prefix[-1])
        if last >= 0x10FFFF:
            return None
        return prefix[:-1] + chr(last + 1)  # greater than every value with this prefix
    return None  # binary and others: no bounds


# -- the commit ---------------------------------------------------------------------------------


def _commit(
    store: DeltaStore,
    table: TableRef,
    existing: DeltaTable | None,
    actions: list[AddAction],
    schema: Schema,
    allowed: Mapping[str, set[str]],
    description: str | None,
    metadata: Mapping[str, Any],
) -> int:
    """Commit the moved files on ``existing`` (no retry inside delta-rs); the version."""
    if existing is None:
        create_table_with_add_actions(
            store.uri(table),
            schema,
            actions,
            mode="error",
            partition_by=list(table.partition_by) or None,
            name=table.name,
            description=description,
            storage_options=store.storage_options,
            commit_properties=CommitProperties(custom_metadata=dict(metadata)),
        )
        return 0
    properties = CommitProperties(custom_metadata=dict(metadata), max_commit_retries=0)
    filters = [(column, "in", sorted(values)) for column, values in allowed.items()]
    existing.create_write_transaction(
        actions,
        mode="overwrite",
        schema=schema,
        partition_by=list(table.partition_by) or None,
        partition_filters=filters or None,
        commit_properties=properties,
    )
    return existing.version() + 1  # no retry: right on top of the snapshot


def _committed(store: DeltaStore, table: TableRef, write_id: str) -> int | None:
    """The version of this write's commit, if it landed (None when it did not)."""
    try:
        latest = DeltaTable(store.uri(table), storage_options=store.storage_options).history(5)
    except Exception:
        return None
    return next((e["version"] for e in latest if e.get("foodops_write_id") == write_id), None)


def _delete_file(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_file(path)
    except (FileNotFoundError, OSError):
        pass


def _delete_dir(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_dir(path)
    except (FileNotFoundError, OSError):
        pass
