"""Folding landed files into a day that is already materialised (DESIGN.md decisions 3, 5).

A file that lands in a day bronze and silver already hold does not need the whole day
re-read and re-validated: its lines are parsed alone and folded in, with the result a full
rebuild of the day would give.

- **Bronze** replaces the rows of the new or changed files only (predicate
  ``source_file IN (...)``): bronze is one row per landed line, so a file's rows depend on
  that file alone. A file landed again under its name replaces its own rows.
- **Silver** re-classifies only the bronze rows whose destination can change: the folded
  files' lines and every line of the day that shares a business key with them (or with a
  silver row that came from them). The contract's rules are per record and deduplication
  is per key, so every other line keeps its destination. Silver replaces the rows of those
  keys, the DLQ the rows of those files, each in one atomic commit keyed so that replaying
  the fold replaces them again. The audit runs on the re-classified rows before anything is
  published (the DLQ rate and the non-empty check on the day's totals), and the read-back
  check on the published rows of those keys and files.

A fold happens only when the run asks for it (the ``foodops/ingest=fold`` tag, which the
file-arrival sensors put on their runs) and only when it is exactly equivalent: one day,
nothing but the folded files changed in bronze since silver last read it, silver and the
DLQ unchanged since silver's last write, the same contract version, a single-column
string business key and no rule that looks records up in another table. Anything else is a
full rebuild of the partition, and the step logs why. ``dagster asset materialize
--partition``, backfills and replays are always full rebuilds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

import dagster as dg
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..contracts import Contract
from ..lakehouse.delta import DeltaStore, PartitionValues, PredicateError, RowFilter
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.tables import DEAD_LETTER_QUEUE, TableRef

FOLD_TAG = "foodops/ingest"
FOLD = "fold"
FULL = "full"
# materialisation metadata of bronze and silver
INGEST_MODE = "ingest_mode"
FOLDED_FILES = "folded_files"
BRONZE_VERSION_READ = "bronze_version_read"


def wants_fold(context: dg.AssetExecutionContext, days: Sequence[dt.date]) -> str | None:
    """Why this run is a full rebuild whatever the tables hold; None when it may fold."""
    if context.run.tags.get(FOLD_TAG) != FOLD:
        return f"a full rebuild (the run has no {FOLD_TAG}={FOLD} tag)"
    if len(days) != 1:
        return "a full rebuild: a fold takes one day"
    return None


# -- bronze ---------------------------------------------------------------------------------


def bronze_fold_files(
    session: SparkSession,
    lakehouse: LakehouseResource,
    table: TableRef,
    day: dt.date,
    landed: Sequence,
) -> tuple[tuple[str, ...], str | None]:
    """(the landed files of ``day`` that bronze does not hold as they are now, why not a
    fold). A file is held when bronze has rows from it with its modification time; a file
    bronze holds that is no longer landed, or a day bronze does not hold yet, needs a full
    rebuild."""
    if not lakehouse.store.exists(table):
        return (), "a full rebuild: the first ingestion"
    held: dict[str, set[int]] = {}
    for r in (
        lakehouse.read(session, table, {"partition_date": [day]})
        .select("source_file", F.unix_millis("ingested_at").alias("ms"))
        .distinct()
        .collect()
    ):
        held.setdefault(r["source_file"], set()).add(r["ms"])
    if not held:
        return (), f"a full rebuild: bronze holds no line of {day.isoformat()} yet"
    now = {f.path: f.mtime_ns // 1_000_000 for f in landed}
    gone = sorted(set(held) - set(now))
    if gone:
        return (), (
            f"a full rebuild: {len(gone)} file(s) bronze holds are no longer landed "
            f"(first: {gone[0]})"
        )
    changed = tuple(sorted(p for p, ms in now.items() if held.get(p) != {ms}))
    if not changed:
        return (), "a full rebuild: no landed file is new or changed"
    if len(changed) == len(now):
        return (), "a full rebuild: every landed file is new or changed"
    try:
        RowFilter("source_file", changed).predicate()
    except PredicateError as exc:
        return (), f"a full rebuild: {exc}"
    return changed, None


# -- silver ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SilverFold:
    """The bronze rows a silver fold re-classifies, and what its writes replace."""

    day: dt.date
    files: tuple[str, ...]
    key: str
    keys: tuple[str, ...]
    null_key: bool  # a folded line has no key: the day's keyless lines are re-classified
    bronze: DataFrame  # the affected bronze rows

    @property
    def silver_rows(self) -> RowFilter:
        return RowFilter(self.key, self.keys, self.null_key)

    @property
    def dlq_rows(self) -> RowFilter:
        return RowFilter("source_file", self.files)

    def from_files(self) -> Column:
        return rows_from_files(self.files)

    def of_keys(self) -> Column:
        cond = F.col(self.key).isin(list(self.keys))
        return cond | F.col(self.key).isNull() if self.null_key else cond


def silver_fold(
    context: dg.AssetExecutionContext,
    session: SparkSession,
    lakehouse: LakehouseResource,
    contract: Contract,
    bronze_table: TableRef,
    silver_table: TableRef,
    days: Sequence[dt.date],
    bronze: DataFrame,
) -> tuple[SilverFold | None, str]:
    """The fold of this run's folded bronze files into silver, or None and why not."""
    why = wants_fold(context, days)
    if why:
        return None, why
    day = days[0]
    if len(contract.primary_key) != 1 or contract.references:
        return None, (
            f"a full rebuild: {contract.name} records are looked up in other tables or keyed "
            "on several columns"
        )
    key = contract.primary_key[0]
    if not isinstance(bronze.schema[key].dataType, T.StringType):
        return None, f"a full rebuild: {key} is not a string"
    folded = _latest_metadata(context, bronze_table, day, this_run=True)
    if folded is None or folded.get(INGEST_MODE) != FOLD:
        return None, f"a full rebuild: {bronze_table.name} was not folded in this run"
    files = tuple(folded.get(FOLDED_FILES) or ())
    if not files:
        return None, f"a full rebuild: {bronze_table.name} names no folded file"
    previous = _latest_metadata(context, silver_table, day)
    if previous is None:
        return None, f"a full rebuild: {silver_table.name} {day.isoformat()} was never written"
    if str(previous.get("contract_version")) != str(contract.version):
        return None, f"a full rebuild: the {contract.name} contract changed since the last write"
    try:
        read, silver_v, dlq_v = (
            int(previous[BRONZE_VERSION_READ]),
            int(previous["delta_version"]),
            int(previous["dlq_delta_version"]),
        )
    except (KeyError, TypeError, ValueError):
        return None, "a full rebuild: the last write of the day does not say what it read"
    store = lakehouse.store
    where = {"partition_date": [day]}
    try:
        bronze_changes = _data_changes(store, bronze_table, read, where)
        # this run's fold is the only change (a fold of files without a line changes no
        # data: a zero-byte file)
        if set(bronze_changes) - {int(folded["delta_version"])}:
            return None, (
                f"a full rebuild: {bronze_table.name} {day.isoformat()} changed since "
                f"{silver_table.name} read it at version {read} (versions {bronze_changes})"
            )
        if _data_changes(store, silver_table, silver_v, where) or _data_changes(
            store, DEAD_LETTER_QUEUE, dlq_v, {**where, "source": [contract.name]}
        ):
            return None, (
                f"a full rebuild: {silver_table.name} or the DLQ of {day.isoformat()} changed "
                "since the last write (a restore, a replay, a killed run)"
            )
    except (OSError, ValueError) as exc:  # a log entry gone (cleaned up): cannot tell
        return None, f"a full rebuild: cannot read the tables' logs back ({exc})"

    new_keys = bronze.where(rows_from_files(files)).select(key).distinct()
    try:
        replaced = (
            lakehouse.read(session, silver_table, where).where(rows_from_files(files)).select(key)
        )
        rows = new_keys.unionByName(replaced).distinct().collect()
    except Exception as exc:  # noqa: BLE001 - silver unreadable: rebuild it
        return None, f"a full rebuild: {silver_table.name} cannot be read ({exc})"
    keys = tuple(sorted(r[0] for r in rows if r[0] is not None))
    null_key = any(r[0] is None for r in rows)
    try:
        RowFilter(key, keys, null_key).predicate()
    except PredicateError as exc:
        return None, f"a full rebuild: {exc}"
    fold = SilverFold(day, files, key, keys, null_key, bronze)
    return replace(fold, bronze=bronze.where(fold.from_files() | fold.of_keys())), (
        f"a fold of {len(files)} file(s): {len(keys)} business key(s) re-classified"
    )


def rows_from_files(files: Sequence[str]) -> Column:
    """The rows that came from ``files``."""
    return F.col("source_file").isin(list(files))


def _data_changes(
    store: DeltaStore, table: TableRef, since: int, where: PartitionValues
) -> list[int]:
    """Versions after ``since`` that changed data of ``where`` (maintenance does not)."""
    return [c.version for c in store.commits_since(table, since) if not c.lets_write(table, where)]


def _latest_metadata(
    context: dg.AssetExecutionContext, table: TableRef, day: dt.date, this_run: bool = False
) -> dict | None:
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(table.name), asset_partitions=[day.isoformat()]
        ),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    if this_run and records[0].run_id != context.run.run_id:
        return None
    return {k: getattr(v, "value", v) for k, v in records[0].asset_materialization.metadata.items()}
