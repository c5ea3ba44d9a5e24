"""The one write path every Delta backend shares: guard, then one commit.

:class:`DeltaWriter` is a template. ``write_partitions`` and ``write_table`` run the same
steps for every backend:

1. the partition guard: the predicate is built from typed values of the table's partition
   columns (:func:`..delta.partition_predicate`), or a whole-table write is refused for a
   partitioned table;
2. the table as it is (:meth:`DeltaWriter.table_state`): a table partitioned otherwise is
   refused, and its version is the one a rollback returns to;
3. the schema check: a column a contract widened (int -> long, more decimal digits) makes
   the table take the wider type first (one rewrite commit); any other type change is
   refused; new columns are merged;
4. the drills' fault hook (``FOODOPS_FAULTS``; a no-op in production);
5. the commit metadata (the Dagster run, asset and partitions, the backend, the predicate);
6. :meth:`DeltaWriter.commit`, the backend's own step: one atomic Delta commit;
7. the :class:`..delta.WriteResult` that the asset reports and a rollback undoes.

A backend (one module per ``FOODOPS_DELTA_WRITER`` value, a class named ``Writer``)
implements only ``commit`` and, where it differs, how it reads, what rows it commits and
how it sees the table.

**A commit that loses a race.** Writers and ``lake_maintenance`` share tables without a
lock. A delta-rs backend commits through :meth:`DeltaWriter.commit_over_races`: its commit
goes right on top of the snapshot it read, with no retry inside delta-rs (whose rebase
ignores removes without dataChange: over a compaction of the same partition it would keep
the compacted copy of the old rows beside the new ones). When another commit got in first,
the commits since decide (:meth:`..delta.DeltaStore.commits_since`): maintenance's
(compaction, purge past retention, window properties) and other partitions' let it commit
again on the table as it is now (at most ``WRITE_ATTEMPTS`` times), so maintenance never
makes a writer fail; a change to the same partitions or to the schema fails the write
(:class:`..delta.ConcurrentWriteError`). ``delta_spark`` leaves this to Delta-Spark's own
conflict checks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

import pyarrow as pa
from deltalake.exceptions import CommitFailedError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema, from_arrow_type, to_arrow_schema

from ...drills import faults
from ..delta import (
    ConcurrentWriteError,
    DeltaStore,
    PartitionValues,
    PredicateError,
    RowFilter,
    WriteResult,
    is_widening,
    partition_predicate,
)
from ..tables import TableRef

Rows = DataFrame | pa.Table
# how often a write commits again after losing its commit to commits that let it
WRITE_ATTEMPTS = 5


class RefusedWrite(ValueError):
    """The rows do not fit the table (a column changed type, or the staged files are off):
    nothing was committed."""


@dataclass(frozen=True)
class TableState:
    """A table before a write: its version, partition columns and schema."""

    version: int
    partition_columns: list[str]
    schema: pa.Schema
    snapshot: Any = None  # the delta-rs DeltaTable, for backends that commit with delta-rs


@dataclass(frozen=True)
class Commit:
    """One guarded write, as a backend's ``commit`` receives it."""

    table: TableRef
    where: PartitionValues | None  # None: the whole (unpartitioned) table
    predicate: str | None
    before: TableState | None  # None: the table does not exist yet
    schema: pa.Schema  # the table's schema after the write (current + new columns)
    description: str | None
    metadata: dict[str, str]  # recorded in the Delta commit
    # a drill (FOODOPS_FAULTS=hang_write:<table>): the backend calls it where a write
    # would be killed part-way; it blocks until the process is killed
    hang: Callable[[], None] | None = None


class DeltaWriter(ABC):
    """Writes Delta tables under one lake root; each write is one atomic commit."""

    name: ClassVar[str]

    def __init__(self, store: DeltaStore, spark: SparkSession | None = None):
        self.store = store
        self.spark = spark  # the session the rows come from (a backend may ask it things)

    # -- the shared steps ------------------------------------------------------------------
    def write_partitions(
        self,
        rows: Rows,
        table: TableRef,
        where: PartitionValues,
        *,
        description: str | None = None,
        commit_metadata: Mapping[str, Any] | None = None,
        rows_where: RowFilter | None = None,
    ) -> WriteResult:
        """Replace exactly the partitions in ``where`` with ``rows`` (one Delta commit); with
        ``rows_where``, only those partitions' rows it selects (a fold: every row of
        ``rows`` must be one it selects, or the commit is refused)."""
        predicate = partition_predicate(table, where)
        if rows_where is not None:
            predicate = f"{predicate} AND {rows_where.predicate()}"
        return self._write(rows, table, where, predicate, description, commit_metadata)

    def write_table(
        self,
        rows: Rows,
        table: TableRef,
        *,
        description: str | None = None,
        commit_metadata: Mapping[str, Any] | None = None,
    ) -> WriteResult:
        """Replace the whole content of an unpartitioned table (one Delta commit)."""
        if table.is_partitioned:
            raise PredicateError(
                f"table {table.name} is partitioned: replace named partitions, never the whole table"
            )
        return self._write(rows, table, None, None, description, commit_metadata)

    def _write(
        self,
        rows: Rows,
        table: TableRef,
        where: PartitionValues | None,
        predicate: str | None,
        description: str | None,
        commit_metadata: Mapping[str, Any] | None,
    ) -> WriteResult:
        if self.spark is None and isinstance(rows, DataFrame):
            self.spark = rows.sparkSession
        before = self.table_state(table)
        if before is not None and before.partition_columns != list(table.partition_by):
            raise PredicateError(
                f"{self.store.uri(table)} is partitioned by {before.partition_columns}, "
                f"expected {list(table.partition_by)}: refusing to write"
            )
        if isinstance(rows, DataFrame):
            rows = self.rows_for_write(rows)
        if before is not None:
            # a contract that widened a column (int -> long, more decimal digits): the table
            # takes the wider type first; rows narrower than the table are cast up to it
            if self.widen(table, arrow_schema_of(rows), commit_metadata):
                before = self.table_state(table)
            rows = cast_up_to(rows, before.schema)
        schema = merged_schema(before.schema if before else None, arrow_schema_of(rows), table)
        rows, hang = _drill(rows, table, where)
        metadata = {k: str(v) for k, v in (commit_metadata or {}).items() if v is not None}
        metadata["foodops_writer"] = self.name
        if predicate:
            metadata["foodops_predicate"] = predicate
        plan = Commit(table, where, predicate, before, schema, description, metadata, hang)
        version, rows_written = self.commit(rows, plan)
        return WriteResult(
            table_uri=self.store.uri(table),
            version=version,
            # the version right under this write's commit (maintenance's or another
            # partition's, when they got in first): what a rollback returns to
            previous_version=version - 1 if before else None,
            rows_written=rows_written,
            predicate=predicate,
            partitions=[str(v) for v in where[table.partition_by[0]]] if where else [],
            writer=self.name,
        )

    # -- what a backend implements ---------------------------------------------------------
    @abstractmethod
    def commit(self, rows: Rows, plan: Commit) -> tuple[int, int]:
        """Commit ``rows`` as ``plan`` says, in one atomic Delta commit that replaces only
        ``plan.predicate``'s partitions; (the new version, rows written)."""

    def commit_over_races(self, plan: Commit, commit_once: Callable[[Commit], int]) -> int:
        """``commit_once(plan)``: the backend's delta-rs commit on ``plan.before`` (no retry
        inside delta-rs; a table it creates when ``plan.before`` is None), returning the
        version committed. When it loses its commit
        (``CommitFailedError``) only to commits that let it (:meth:`..delta.LogCommit.
        lets_write`), it runs again on the table as it is now, without the drill's hang;
        otherwise, or after ``WRITE_ATTEMPTS`` attempts, :class:`..delta.ConcurrentWriteError`."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return commit_once(plan)
            except CommitFailedError as exc:
                self._check_lost_commit(plan, exc, attempt)
                before = self.table_state(plan.table)
                plan = replace(plan, before=before, hang=None)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _check_lost_commit(self, plan: Commit, error: CommitFailedError, attempt: int) -> None:
        """Returns when every commit since ``plan.before`` lets the write commit over it and
        attempts are left; raises :class:`..delta.ConcurrentWriteError` otherwise, and
        ``error`` itself when nobody committed."""
        table = plan.table
        what = plan.predicate or "whole table"
        # a write that read no table raced the writer that created it: the creation (the
        # table's metadata) lets it, the rows it committed decide like any other commit's
        read = plan.before.version if plan.before else -1
        commits = self.store.commits_since(table, read)
        if not commits:  # nobody committed: not a race, delta-rs' own error
            raise error
        if plan.before is None:
            commits[0] = replace(commits[0], metadata=False)
        blocking = [c for c in commits if not c.lets_write(table, plan.where)]
        if not blocking and attempt < WRITE_ATTEMPTS:
            return
        if blocking:
            beaten_by = ", ".join(c.describe() for c in blocking)
            raise ConcurrentWriteError(
                f"another writer committed to {table.name} ({what}) while this write was "
                f"running ({beaten_by}), so this write was not committed and readers see the "
                f"other writer's partition whole. Re-run this partition once the other run "
                f"has finished (Delta said: {error})"
            ) from None
        raise ConcurrentWriteError(
            f"the write of {table.name} ({what}) lost its commit {attempt} times in a row "
            f"(last to {', '.join(c.describe() for c in commits)}): nothing of it was "
            "committed. Re-run this partition"
        ) from None

    def widen(
        self, table: TableRef, incoming: pa.Schema, commit_metadata: Mapping[str, Any] | None
    ) -> bool:
        """Rewrite ``table`` once in the wider types ``incoming`` brings (one commit, the
        same rows; :meth:`..delta.DeltaStore.widen_types`); whether it did."""
        return bool(self.store.widen_types(table, incoming, commit_metadata))

    def rows_for_write(self, df: DataFrame) -> Rows:
        """``df`` as this backend commits it (the arrow writer collects it; others keep it)."""
        return df

    def table_state(self, table: TableRef) -> TableState | None:
        """The table before the write, from the Delta log (delta-rs); None when new."""
        snapshot = self.store.open_if_exists(table)
        if snapshot is None:
            return None
        return TableState(
            version=snapshot.version(),
            partition_columns=list(snapshot.metadata().partition_columns),
            schema=pa.schema(snapshot.schema().to_arrow()),
            snapshot=snapshot,
        )

    def read(
        self, spark: SparkSession, table: TableRef, where: PartitionValues | None = None
    ) -> DataFrame:
        """The current snapshot of ``table`` (optionally only some partitions).

        Spark reads the Parquet files of the snapshot that delta-rs lists; tables using
        reader features a plain Parquet read would get wrong (deletion vectors, column
        mapping) are read through Arrow instead."""
        store = self.store
        schema = from_arrow_schema(store.arrow_schema(table))
        if not store.can_read_files_directly(table):
            return spark.createDataFrame(store.to_arrow(table, where))
        files = store.files(table, where)
        if not files:
            return spark.createDataFrame([], schema)
        df = spark.read.schema(schema).option("basePath", store.uri(table)).parquet(*files)
        return df.select(*[f.name for f in schema.fields])


# -- the schema check ------------------------------------------------------------------------


def arrow_schema_of(rows: Rows) -> pa.Schema:
    return rows.schema if isinstance(rows, pa.Table) else spark_arrow_schema(rows.schema)


def spark_arrow_schema(schema: T.StructType) -> pa.Schema:
    """A Spark schema as Delta stores it (timestamps in UTC)."""
    return to_arrow_schema(schema, error_on_duplicated_field_names_in_struct=True, timezone="UTC")


def cast_up_to(rows: Rows, table_schema: pa.Schema) -> Rows:
    """``rows`` with the columns the table stores in a wider type cast up to it (the values
    are unchanged; the written files then carry the table's type)."""
    current = {f.name: f.type for f in table_schema}
    incoming = arrow_schema_of(rows)
    wider = {
        f.name: current[f.name]
        for f in incoming
        if is_widening(f.type, current.get(f.name, f.type))
    }
    if not wider:
        return rows
    if isinstance(rows, pa.Table):
        return rows.cast(
            pa.schema([pa.field(f.name, wider.get(f.name, f.type), f.nullable) for f in incoming])
        )
    return rows.select(
        *[
            F.col(c).cast(from_arrow_type(wider[c])).alias(c) if c in wider else F.col(c)
            for c in rows.columns
        ]
    )


def merged_schema(current: pa.Schema | None, incoming: pa.Schema, table: TableRef) -> pa.Schema:
    """The table schema after the write: the current one plus any new columns (as
    ``schema_mode="merge"`` and ``mergeSchema`` do); a changed column type is refused."""
    if current is None:
        return incoming
    by_name = {f.name: f for f in current}
    merged = list(current)
    for field in incoming:
        old = by_name.get(field.name)
        if old is None:
            merged.append(field)
        elif not _same_type(old.type, field.type):
            raise RefusedWrite(
                f"refusing to write {table.name}: column {field.name} is {old.type} in the table "
                f"but {field.type} in the rows"
            )
    return pa.schema(merged)


def type_key(t: pa.DataType) -> str:
    """A type's identity for the schema check: list item names, nullability, the name of a
    timestamp's zone (Delta's timestamps are UTC) and string offsets aside."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{type_key(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ", ".join(f"{f.name}: {type_key(f.type)}" for f in t) + ">"
    if pa.types.is_map(t):
        return f"map<{type_key(t.key_type)}, {type_key(t.item_type)}>"
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}, tz]" if t.tz else f"timestamp_ntz[{t.unit}]"
    return str(t)


def _same_type(table_type: pa.DataType, rows_type: pa.DataType) -> bool:
    # a column of nulls only (Spark's NullType) takes the table's type
    return pa.types.is_null(rows_type) or type_key(table_type) == type_key(rows_type)


# -- the drills' one hook ----------------------------------------------------------------------


def _drill(
    rows: Rows, table: TableRef, where: PartitionValues | None = None
) -> tuple[Rows, Callable[[], None] | None]:
    """``FOODOPS_FAULTS`` at the write of ``table`` (unset in production: nothing happens):
    fail before anything is written, commit every row twice, or block part-way (the
    backend's commit blocks where it would be killed: mid-stream, or before its commit).
    ``hang_write`` may name one partition (``hang_write:<table>@<YYYY-MM-DD>``): only a
    write that includes it blocks."""
    faults.fail_if_injected(table.name)
    if faults.active(f"duplicate_write:{table.name}"):
        rows = pa.concat_tables([rows, rows]) if isinstance(rows, pa.Table) else rows.union(rows)
    if faults.active(f"hang_write:{table.name}"):
        return rows, partial(faults.hang, table.name)
    for day in (where or {}).get(table.partition_by[0] if table.partition_by else "", []):
        if faults.active(f"hang_write:{table.name}@{day}"):
            return rows, partial(faults.hang, f"{table.name}@{day}")
    return rows, None
