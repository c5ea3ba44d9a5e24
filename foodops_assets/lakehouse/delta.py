"""Delta tables through delta-rs (the ``deltalake`` package): what every backend shares.

Versions, history, restore, a circuit breaker's rollback, file lists, the Delta log's
statistics, Arrow reads, and the one delta-rs commit (a predicate overwrite) that the
``arrow`` writer and a rollback use. The partition predicate is built here from typed
values and checked against the table's partition columns, so a bad predicate fails
instead of rewriting the table; delta-rs additionally rejects rows that fall outside it.
How rows reach a table (the three backends and the steps they share) is
:mod:`.writers`.

Writers and lake maintenance share tables without a lock. :meth:`DeltaStore.commits_since`
reads the commits that got in before a write's own (:class:`LogCommit`: whether it was
maintenance's, which partitions' data it changed), so that a writer that lost its commit to
commits that cannot have touched its partitions writes again (``writers/base.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from pyarrow import fs as pafs

from ..settings import is_remote_uri
from .tables import TableRef

PartitionValues = Mapping[str, Sequence[dt.date | str]]

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
# the commit-info key every lake_maintenance commit carries (lakehouse/maintenance.py)
MAINTENANCE_COMMIT_KEY = "foodops_maintenance"
# reader features that a plain Parquet read of the file list would get wrong
_UNSAFE_FOR_FILE_READ = {"deletionVectors", "columnMapping", "v2Checkpoint", "typeWidening"}


@dataclass(frozen=True)
class Rollback:
    """What a circuit breaker did to one table."""

    table: str
    live_version: int | None
    rolled_back_from: int | None
    restored_to: int | None
    action: str

    def as_metadata(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "live_version": -1 if self.live_version is None else self.live_version,
            "rolled_back_from": -1 if self.rolled_back_from is None else self.rolled_back_from,
            "restored_to": -1 if self.restored_to is None else self.restored_to,
            "action": self.action,
        }


@dataclass(frozen=True)
class ColumnStats:
    """Rows and per-column null counts of some of a table's files, from the Delta log."""

    rows: int
    nulls: Mapping[str, int]  # only the columns every file has a null count for

    def non_null(self, column: str) -> int | None:
        """Rows with a value in ``column``; None when the log does not say."""
        n = self.nulls.get(column)
        return None if n is None else self.rows - n


class PredicateError(ValueError):
    """A partition predicate that could rewrite more than the named partitions."""


class TableNotMaterialized(LookupError):
    """The Delta table does not exist yet."""


class ConcurrentWriteError(RuntimeError):
    """Another writer committed to the same partitions while this write was running."""


@dataclass(frozen=True)
class LogCommit:
    """One commit of a table's log, as far as a concurrent writer cares."""

    version: int
    operation: str | None
    maintenance: bool  # made by lake_maintenance
    # partition values (column -> value as the log spells it) of every file the commit
    # added or removed with dataChange=true: the data it changed
    data_changed: tuple[Mapping[str, str | None], ...]
    metadata: bool  # a metaData or protocol action (schema, properties, features)

    def lets_write(self, table: TableRef, where: PartitionValues | None) -> bool:
        """Whether a write of ``where`` (None: the whole table) that read the table before
        this commit may commit over it: it changed no data of those partitions and no
        schema, or it is maintenance (which only compacts, purges what is past retention,
        or sets retention properties: the write replaces the partitions whole anyway)."""
        if self.maintenance:
            return True
        if self.metadata:
            return False
        if where is None or not table.is_partitioned:
            return not self.data_changed
        wanted = {c: {partition_text(v) for v in values} for c, values in where.items()}
        return not any(
            all(values.get(c) in vs for c, vs in wanted.items()) for values in self.data_changed
        )

    def describe(self) -> str:
        who = "lake_maintenance" if self.maintenance else "another writer"
        return f"version {self.version} ({self.operation or 'commit'} by {who})"


@dataclass(frozen=True)
class WriteResult:
    """What one write committed: the version it made and the one before (for a rollback)."""

    table_uri: str
    version: int
    previous_version: int | None
    rows_written: int
    predicate: str | None
    partitions: list[str] = field(default_factory=list)
    # which backend wrote it: arrow (delta-rs from Arrow), spark_files, delta_spark
    writer: str = "arrow"


def partition_predicate(table: TableRef, where: PartitionValues) -> str:
    """SQL predicate selecting exactly the given partitions of ``table``.

    Only partition columns are allowed, every value is validated (dates are
    formatted from ``datetime.date``; strings must be plain identifiers), and
    the first partition column must be constrained.
    """
    if not table.is_partitioned:
        raise PredicateError(f"table {table.name} is not partitioned: replace it whole instead")
    unknown = [c for c in where if c not in table.partition_by]
    if unknown:
        raise PredicateError(
            f"predicate on {', '.join(unknown)} does not match the partition columns of "
            f"{table.name} ({', '.join(table.partition_by)}): refusing to rewrite the table"
        )
    if table.partition_by[0] not in where:
        raise PredicateError(
            f"a write to {table.name} must name the {table.partition_by[0]} values it replaces"
        )
    clauses = []
    for column in table.partition_by:
        if column not in where:
            continue
        values = list(where[column])
        if not values:
            raise PredicateError(f"empty value list for {column} of {table.name}")
        literals = sorted({_literal(column, v) for v in values})
        clauses.append(f"{column} IN ({', '.join(literals)})")
    return " AND ".join(clauses)


# a fold's row values: printable, with no quote or backslash (the one quoting that Spark SQL
# and delta-rs' SQL read alike), and a bounded list (the predicate is SQL text)
_ROW_VALUE = re.compile(r"^[^'\\\x00-\x1f\x7f]{1,1024}$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
ROW_FILTER_MAX_VALUES = 20_000


@dataclass(frozen=True)
class RowFilter:
    """The rows of a write's partitions that it replaces, by the values of one column: a
    fold (DESIGN.md decision 3) replaces one landing file's rows (``source_file``) or the
    rows of some business keys, and keeps the rest of the partition. ``or_null``: also the
    rows where the column is null. No value and no null: the write replaces nothing."""

    column: str
    values: tuple[str, ...]
    or_null: bool = False

    def predicate(self) -> str:
        """The SQL clause, every value checked (:class:`PredicateError` otherwise)."""
        if not _COLUMN.match(self.column):
            raise PredicateError(f"{self.column!r} is not a plain column name")
        if len(self.values) > ROW_FILTER_MAX_VALUES:
            raise PredicateError(
                f"{len(self.values)} values of {self.column}: more than "
                f"{ROW_FILTER_MAX_VALUES}, replace the whole partition instead"
            )
        bad = [v for v in self.values if not isinstance(v, str) or not _ROW_VALUE.match(v)]
        if bad:
            raise PredicateError(
                f"{self.column} value {bad[0]!r} cannot be written into a predicate safely "
                "(a quote, a backslash or a control character): replace the whole partition"
            )
        clauses = []
        if self.values:
            literals = ", ".join(f"'{v}'" for v in sorted(set(self.values)))
            clauses.append(f"{self.column} IN ({literals})")
        if self.or_null:
            clauses.append(f"{self.column} IS NULL")
        return f"({' OR '.join(clauses) or 'false'})"


def _literal(column: str, value: dt.date | str) -> str:
    if isinstance(value, dt.datetime):
        raise PredicateError(f"{column}: expected a date, got a datetime {value!r}")
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str) and _SAFE_VALUE.match(value):
        return f"'{value}'"
    raise PredicateError(f"{column}: value {value!r} is not a safe partition value")


class DeltaStore:
    """Delta tables under one lake root, read and written with delta-rs."""

    def __init__(self, lake_root: str, storage_options: Mapping[str, str] | None = None):
        self.lake_root = lake_root.rstrip("/")
        self.storage_options = dict(storage_options or {}) or None

    # -- locations -----------------------------------------------------------------
    def uri(self, table: TableRef) -> str:
        return f"{self.lake_root}/{table.path}"

    def _open(self, table: TableRef, version: int | None = None) -> DeltaTable:
        try:
            return DeltaTable(
                self.uri(table), version=version, storage_options=self.storage_options
            )
        except TableNotFoundError:
            raise TableNotMaterialized(
                f"Delta table {table.name} does not exist at {self.uri(table)}: "
                f"materialize the asset {table.name} first"
            ) from None

    def exists(self, table: TableRef) -> bool:
        return DeltaTable.is_deltatable(self.uri(table), storage_options=self.storage_options)

    def version(self, table: TableRef) -> int | None:
        return self._open(table).version() if self.exists(table) else None

    def history(self, table: TableRef, limit: int | None = None) -> list[dict[str, Any]]:
        return self._open(table).history(limit)

    def arrow_schema(self, table: TableRef) -> pa.Schema:
        return pa.schema(self._open(table).schema().to_arrow())

    def log_schema(self, table: TableRef) -> pa.Schema | None:
        """The table's current schema, None when there is no table."""
        state = self.schema_and_commit_with(table, key=None)
        return state[0] if state else None

    def schema_and_commit_with(
        self, table: TableRef, key: str | None, limit: int = 50
    ) -> tuple[pa.Schema, dict[str, Any] | None] | None:
        """The table's current schema and the newest of its last ``limit`` commits whose
        commit info carries ``key`` (one table load; None when there is no table)."""
        try:
            dt_ = DeltaTable(self.uri(table), storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        schema = pa.schema(dt_.schema().to_arrow())
        if key is None:
            return schema, None
        # the newest commit is normally a write that carries it; look further back only
        # past commits that do not (a restore, a rollback)
        commits = dt_.history(1)
        if not any(key in c for c in commits):
            commits = dt_.history(limit)
        return schema, next((c for c in commits if key in c), None)

    def widen_types(
        self, table: TableRef, rows: pa.Schema, commit_metadata: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """Before a write of ``rows`` to an existing table: if ``rows`` widens a column
        (:func:`is_widening`), rewrite the table once with the wider types — one commit,
        the same rows, every old value cast up — so that the write that follows (and any
        Delta reader) sees one type. delta-rs's ``schema_mode="merge"`` would cast the new
        rows down to the old type instead (or refuse a decimal), so it cannot do this.
        Returns ``{column: "old -> new"}``, empty when nothing widens."""
        current = self.log_schema(table)
        if current is None:
            return {}
        new_types = {f.name: f.type for f in rows}
        widened = {
            f.name: new_types[f.name]
            for f in current
            if f.name in new_types and is_widening(f.type, new_types[f.name])
        }
        if not widened:
            return {}
        target = pa.schema(
            [pa.field(f.name, widened.get(f.name, f.type), f.nullable) for f in current]
        )
        dataset = self._open(table).to_pyarrow_dataset()
        batches = (
            batch.select(target.names).cast(target)
            for batch in dataset.scanner(columns=target.names).to_batches()
        )
        changes = {c: f"{current.field(c).type} -> {t}" for c, t in widened.items()}
        write_deltalake(
            self.uri(table),
            pa.RecordBatchReader.from_batches(target, batches),
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=list(table.partition_by) or None,
            name=table.name,
            storage_options=self.storage_options,
            commit_properties=_commit_properties(
                {
                    **(commit_metadata or {}),
                    "foodops_migration": "widen "
                    + ", ".join(f"{c} {t}" for c, t in sorted(changes.items())),
                }
            ),
        )
        return changes

    def open_if_exists(self, table: TableRef) -> DeltaTable | None:
        """The current snapshot of ``table``, or None when it has not been written yet."""
        try:
            return DeltaTable(self.uri(table), storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def commits_since(self, table: TableRef, version: int) -> list[LogCommit]:
        """The commits after ``version``, read from the table's JSON log."""
        uri = self.uri(table)
        fs, root = pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)
        commits = []
        for v in range(version + 1, self._open(table).version() + 1):
            with fs.open_input_stream(f"{root.rstrip('/')}/_delta_log/{v:020d}.json") as f:
                entries = [json.loads(line) for line in f.read().decode().splitlines() if line]
            info = next((e["commitInfo"] for e in entries if "commitInfo" in e), {})
            changed = tuple(
                action.get("partitionValues") or {}
                for e in entries
                for kind in ("add", "remove")
                if (action := e.get(kind)) is not None and action.get("dataChange", True)
            )
            commits.append(
                LogCommit(
                    version=v,
                    operation=info.get("operation"),
                    maintenance=MAINTENANCE_COMMIT_KEY in info,
                    data_changed=changed,
                    metadata=any("metaData" in e or "protocol" in e for e in entries),
                )
            )
        return commits

    # -- the delta-rs commit (the arrow writer's, and a rollback's) ----------------
    def overwrite(
        self,
        data: pa.Table | pa.RecordBatchReader,
        table: TableRef,
        predicate: str | None,
        *,
        description: str | None = None,
        commit_metadata: Mapping[str, Any] | None = None,
        on: DeltaTable | None = None,
        create: bool = False,
    ) -> int:
        """Replace the rows ``predicate`` selects (the whole table when None) with ``data``
        in one delta-rs commit; the new version. Callers guard the predicate
        (:func:`partition_predicate`); delta-rs also refuses rows outside it.

        ``on``: the snapshot the write read (a writer's). The commit then goes right on top
        of it, with no retry inside delta-rs, and a lost commit raises delta-rs'
        ``CommitFailedError`` for the writer to decide (``writers/base.py``).

        ``create``: the writer read no table, so this commit creates it, with no retry
        inside delta-rs either: when another writer created the table meanwhile, delta-rs'
        retry would add these rows beside the other writer's even in the same partition (a
        partition neither wrote whole). The lost commit raises ``CommitFailedError`` for the
        writer to decide, as with ``on``."""
        if on is not None:
            properties = _commit_properties(commit_metadata) or CommitProperties()
            properties.max_commit_retries = 0
            read = on.version()
            write_deltalake(
                on,
                data,
                mode="overwrite",
                predicate=predicate,
                partition_by=list(table.partition_by) or None,
                schema_mode="merge",
                name=table.name,
                description=description,
                commit_properties=properties,
            )
            return read + 1  # no retry: right on top of the snapshot
        properties = _commit_properties(commit_metadata)
        if create:
            properties = properties or CommitProperties()
            properties.max_commit_retries = 0
        try:
            write_deltalake(
                self.uri(table),
                data,
                mode="overwrite",
                predicate=predicate,
                partition_by=list(table.partition_by) or None,
                schema_mode="merge",
                name=table.name,
                description=description,
                storage_options=self.storage_options,
                commit_properties=properties,
            )
        except CommitFailedError as exc:
            if create:
                raise
            raise ConcurrentWriteError(
                f"another writer committed to {table.name} ({predicate}) while this write was "
                f"running, so this write was not committed and readers see the other "
                f"writer's partition whole. Re-run this partition once the other run has "
                f"finished (Delta said: {exc})"
            ) from None
        return self._open(table).version()

    def merge_rows(
        self,
        table: TableRef,
        upserts: pa.Table,
        deletes: pa.Table,
        match_on: Sequence[str],
        *,
        commit_metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """One atomic commit that deletes the rows matching ``deletes`` and inserts or
        replaces ``upserts`` (rows match on the columns ``match_on``): a delta-rs MERGE.
        The commit is made even when there is nothing to change (an empty commit carrying
        ``commit_metadata``), so every call leaves exactly one version; the new version.
        A table that does not exist yet is created by the commit (``deletes`` must then be
        empty). Unpartitioned tables only (the history tables)."""
        if table.is_partitioned:
            raise PredicateError(f"merge_rows writes unpartitioned tables; {table.name} is not")
        properties = _commit_properties(commit_metadata) or CommitProperties()
        current = self.open_if_exists(table)
        if current is None:
            if deletes.num_rows:
                raise TableNotMaterialized(f"{table.name} does not exist: nothing to delete")
            write_deltalake(
                self.uri(table),
                upserts,
                mode="error",
                name=table.name,
                storage_options=self.storage_options,
                commit_properties=properties,
            )
            return self._open(table).version()
        if not upserts.num_rows and not deletes.num_rows:
            current.create_write_transaction(
                [],
                mode="append",
                schema=current.schema(),
                partition_by=None,
                commit_properties=properties,
            )
            return self._open(table).version()
        columns = upserts.schema.names
        action = "_foodops_merge_action"
        source = pa.concat_tables(
            [
                upserts.append_column(action, pa.array(["upsert"] * upserts.num_rows, pa.string())),
                deletes.select(columns)
                .cast(upserts.schema)
                .append_column(action, pa.array(["delete"] * deletes.num_rows, pa.string())),
            ]
        )
        values = {c: f"s.`{c}`" for c in columns}
        (
            current.merge(
                source,
                " AND ".join(f"t.`{c}` = s.`{c}`" for c in match_on),
                source_alias="s",
                target_alias="t",
                commit_properties=properties,
            )
            .when_matched_delete(predicate=f"s.{action} = 'delete'")
            .when_matched_update(updates=values, predicate=f"s.{action} = 'upsert'")
            .when_not_matched_insert(updates=values, predicate=f"s.{action} = 'upsert'")
            .execute()
        )
        return self._open(table).version()

    def restore(
        self, table: TableRef, version: int, commit_metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._open(table).restore(
            version, commit_properties=_commit_properties(commit_metadata)
        )

    def rollback(
        self,
        table: TableRef,
        write: WriteResult,
        where: PartitionValues | None,
        *,
        reason: str,
        commit_metadata: Mapping[str, Any] | None = None,
    ) -> Rollback:
        """Put readers back on what ``table`` held before ``write`` (a circuit breaker).

        - nobody committed since: restore the table to the version before the write;
        - others committed since, but not to these partitions: rewrite only these
          partitions with their rows of the version before the write (one commit);
        - somebody rewrote these partitions since: change nothing and say so (their
          data is newer than ours and is not ours to undo).
        """
        meta = {**(commit_metadata or {}), "foodops_rollback_reason": reason[:500]}
        current = self.version(table)
        if current is None or current < write.version:
            return Rollback(table.name, current, write.version, None, "nothing to undo")
        if current == write.version and write.previous_version is not None:
            self.restore(table, write.previous_version, meta)
            return Rollback(
                table.name,
                self.version(table),
                write.version,
                write.previous_version,
                f"restored {table.name} to version {write.previous_version}: {reason}",
            )
        if where is None:
            return Rollback(
                table.name,
                current,
                write.version,
                None,
                f"{table.name} changed after version {write.version} (now {current}); "
                "not rolled back: restore it by hand (restore_delta_table job)",
            )
        touched = self._later_writers_of(table, write.version, where)
        if touched:
            return Rollback(
                table.name,
                current,
                write.version,
                None,
                f"not rolled back: version(s) {', '.join(map(str, touched))} rewrote the same "
                f"partitions after the bad write {write.version}; readers see that newer data",
            )
        if write.previous_version is None:
            old = pa.Table.from_batches([], schema=self.arrow_schema(table))
        else:
            old = self.to_arrow(table, where, version=write.previous_version)
        restored = self.overwrite(
            old, table, partition_predicate(table, where), commit_metadata=meta
        )
        return Rollback(
            table.name,
            restored,
            write.version,
            write.previous_version,
            f"rewrote {partition_predicate(table, where)} of {table.name} with its rows of "
            f"version {write.previous_version} (others had committed since): {reason}",
        )

    def _later_writers_of(self, table: TableRef, version: int, where: PartitionValues) -> list[int]:
        first = list(where[table.partition_by[0]])
        needles = [v.isoformat() if isinstance(v, dt.date) else str(v) for v in first]
        later = []
        for commit in self.history(table):
            v = commit.get("version")
            if v is None or v <= version:
                continue
            params = commit.get("operationParameters") or {}
            text = " ".join(str(x) for x in params.values())
            if commit.get("operation") == "RESTORE" or any(n in text for n in needles):
                later.append(v)
        return sorted(later)

    # -- reads ---------------------------------------------------------------------
    def to_arrow(
        self, table: TableRef, where: PartitionValues | None = None, version: int | None = None
    ) -> pa.Table:
        dt_ = self._open(table, version)
        filters = partition_filters(table, where)
        return pa.table(dt_.to_pyarrow_table(filters=filters or None))

    def files(self, table: TableRef, where: PartitionValues | None = None) -> list[str]:
        dt_ = self._open(table)
        filters = partition_filters(table, where)
        return dt_.file_uris(file_pruning_predicate=filters or None)

    def column_stats(
        self, table: TableRef, where: PartitionValues | None = None
    ) -> ColumnStats | None:
        """Rows and null counts of the current snapshot's files in ``where``, summed from the
        file statistics in the Delta log (no data is read). None when a file has no row
        count; a column some file has no null count for (e.g. an array) is left out."""
        partition_filters(table, where)  # validated like any partition selection
        actions = pa.table(self._open(table).get_add_actions(flatten=True)).to_pylist()
        wanted = {k: {partition_text(v) for v in values} for k, values in (where or {}).items()}
        files = [
            a
            for a in actions
            if all(partition_text(a.get(f"partition.{k}")) in vs for k, vs in wanted.items())
        ]
        if any(a.get("num_records") is None for a in files):
            return None
        columns = {
            k.removeprefix("null_count.") for a in files for k in a if k.startswith("null_count.")
        }
        nulls = {
            c: sum(a[f"null_count.{c}"] for a in files)
            for c in columns
            if all(a.get(f"null_count.{c}") is not None for a in files)
        }
        return ColumnStats(sum(a["num_records"] for a in files), nulls)

    def can_read_files_directly(self, table: TableRef) -> bool:
        features = set(self._open(table).protocol().reader_features or [])
        return not (features & _UNSAFE_FOR_FILE_READ)

    def is_local(self) -> bool:
        return not is_remote_uri(self.lake_root)


def is_widening(old: pa.DataType, new: pa.DataType) -> bool:
    """A column type change every stored value survives unchanged: a signed integer to a
    wider one (int -> long), a decimal to one with at least as many integer digits and
    at least the same scale (e.g. decimal(10,2) -> decimal(12,2))."""
    if pa.types.is_signed_integer(old) and pa.types.is_signed_integer(new):
        return new.bit_width > old.bit_width
    if pa.types.is_decimal(old) and pa.types.is_decimal(new):
        return (
            (new.precision, new.scale) != (old.precision, old.scale)
            and new.scale >= old.scale
            and new.precision - new.scale >= old.precision - old.scale
        )
    return False


def partition_filters(table: TableRef, where: PartitionValues | None) -> list[tuple[str, str, Any]]:
    """delta-rs filters for a partition selection, validated like write predicates."""
    out: list[tuple[str, str, Any]] = []
    for column, values in (where or {}).items():
        if column not in table.partition_by:
            raise PredicateError(f"{column} is not a partition column of {table.name}")
        for value in values:
            _literal(column, value)
        out.append((column, "in", list(values)))
    return out


def partition_text(value: Any) -> str | None:
    """A partition value as the log spells it (dates as ISO text), for comparisons."""
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _commit_properties(metadata: Mapping[str, Any] | None) -> CommitProperties | None:
    if not metadata:
        return None
    return CommitProperties(custom_metadata={k: v for k, v in metadata.items() if v is not None})
