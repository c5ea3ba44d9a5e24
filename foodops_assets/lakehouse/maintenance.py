"""Table maintenance with delta-rs: purge what is past retention, compact, vacuum, checkpoint.

One table at a time, no Dagster (``operations/maintenance.py`` schedules it and
reports it). The order, for one table:

1. **window properties**: ``delta.deletedFileRetentionDuration`` and
   ``delta.logRetentionDuration`` are raised to the rollback window when they are
   shorter (one metadata commit, once). A checkpoint drops the remove actions older
   than ``deletedFileRetentionDuration`` (the kernel's checkpoint writer does), so a
   shorter value would let a checkpoint forget files that a restore inside the
   window needs; Delta engines also refuse a VACUUM below it.
2. **purge**: partitions past their retention are deleted (a predicate on partition
   columns only, so whole files are removed and nothing is rewritten) and columns
   past theirs are nulled; one Delta commit per operation, none when nothing expired.
   The bytes stay on storage, restorable, until VACUUM removes them after the window.
3. **compaction**: ``optimize.compact`` bin-packs the small files of each partition
   (Z-order only when asked: see bench/maintenance.py for why it is off).
4. **VACUUM**, the guarded step. delta-rs deletes a file when no version at or after
   ``now - retention_hours`` uses it: a removed file goes when its remove action's
   ``deletionTimestamp`` (the time of the commit that removed it) is older than that,
   an untracked file (a killed writer's leftover) when its modification time is. So
   every version that was live at some moment inside the retention (the one current
   at ``now - retention`` and every later one) keeps all its files. The guard: the
   retention is never below the rollback window (:class:`RetentionTooShort`), the
   table's own ``deletedFileRetentionDuration`` is honoured
   (``enforce_retention_duration=True``), and the vacuum runs in *full* mode, which
   also finds removed files whose remove actions a checkpoint already dropped (a
   *lite* vacuum never would: they would stay on storage for ever).
5. **checkpoint** of the version the steps left, so readers replay one Parquet file
   instead of the JSON commits.

**Writers are not locked out.** ``operations/maintenance.py`` leaves alone a table that
a run in progress writes, but a writer may start right after that check. Delta's
optimistic commits sort it out, and no side fails for good: a writer whose commit loses
to a maintenance commit writes again (``writers.base.DeltaWriter.commit_over_races``: every
maintenance commit carries ``foodops_maintenance``); a maintenance commit that loses to a
writer (delta-rs: "a concurrent transaction deleted data this operation read") raises
:class:`LostRace`, which :func:`maintain` records in its report and goes on: the step is
done at the next run. A lost compaction leaves its new files unreferenced, and a later
VACUUM removes them once older than the retention. VACUUM itself commits nothing a writer
could conflict with and deletes no file a running writer needs: the writer's files are
unreferenced but younger than the retention (a day at least; runs time out after 6
hours), and a ``spark_files`` writer's staging directory (``_foodops_staging``) is hidden
from VACUUM altogether.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError
from pyarrow import fs as pafs

from .delta import MAINTENANCE_COMMIT_KEY, DeltaStore
from .tables import PARTITION_COLUMN, TableRef

DELETED_FILE_RETENTION = "delta.deletedFileRetentionDuration"
LOG_RETENTION = "delta.logRetentionDuration"
# Delta's defaults when a table does not set them
DEFAULT_DELETED_FILE_RETENTION_HOURS = 7 * 24
DEFAULT_LOG_RETENTION_HOURS = 30 * 24

_INTERVAL = re.compile(r"^\s*interval\s+(\d+)\s+([a-z]+?)s?\s*$", re.IGNORECASE)
_UNIT_HOURS = {"week": 168.0, "day": 24.0, "hour": 1.0, "minute": 1 / 60, "second": 1 / 3600}
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_SAFE_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class RetentionTooShort(ValueError):
    """A VACUUM retention shorter than the rollback window: it would delete files that a
    restore inside the window needs."""


@dataclass(frozen=True)
class Race:
    """A maintenance commit that lost to commits that got in first."""

    step: str
    read_version: int  # the version the step had planned on
    beaten_by: list[str]  # the commits since, as Commit.describe() says them

    def describe(self) -> str:
        return f"{self.step} lost to {', '.join(self.beaten_by) or 'a concurrent commit'}"


class LostRace(RuntimeError):
    """A maintenance step's commit lost to a writer; nothing of the step was committed."""

    def __init__(self, race: Race):
        super().__init__(race.describe())
        self.race = race


def _lost(step: str, store: DeltaStore, table: TableRef, read_version: int) -> LostRace:
    commits = store.commits_since(table, read_version)
    return LostRace(Race(step, read_version, [c.describe() for c in commits]))


@dataclass(frozen=True)
class Footprint:
    """What a table costs: the files a reader opens, and what lies on storage."""

    files: int  # data files of the current version
    bytes: int
    stored_files: int  # every data file under the table (older versions, leftovers)
    stored_bytes: int


@dataclass(frozen=True)
class Purge:
    """One purge commit (or its plan, in a dry run)."""

    operation: str  # "delete partitions" or "null <column>"
    predicate: str
    partitions: list[str]  # partition_date[/source] values touched
    rows: int  # rows deleted, or values nulled
    version: int | None  # the Delta commit; None in a dry run or when nothing expired


@dataclass(frozen=True)
class Plan:
    """What maintenance does to one table."""

    window_hours: int  # every version live inside this many hours stays restorable
    retention_hours: int  # VACUUM retention (>= window_hours)
    # partitions whose partition_date is before the date are deleted; keyed by the value of
    # the table's second partition column (the dead-letter queue's source), None = all rows
    drop_before: Mapping[str | None, dt.date] = field(default_factory=dict)
    # column -> partitions before the date have it set to null (raw text past its retention)
    null_before: Mapping[str, dt.date] = field(default_factory=dict)
    zorder: tuple[str, ...] = ()
    target_file_bytes: int | None = None  # None: delta.targetFileSize, or delta-rs' 100 MB


@dataclass(frozen=True)
class Report:
    """What maintenance did to one table (the metadata of its observation)."""

    table: str
    dry_run: bool
    before: Footprint
    after: Footprint
    purges: list[Purge]
    compacted_files: int  # files rewritten into larger ones
    compaction_files_added: int
    vacuumed_files: int
    vacuumed_bytes: int
    retention_hours: int
    window_hours: int
    properties_set: dict[str, str]
    lost_races: list[Race]  # steps a writer's commit beat: done at the next run
    version_before: int
    version_after: int
    oldest_restorable_version: int
    checkpoint_version: int | None
    seconds: dict[str, float]

    @property
    def versions_kept(self) -> int:
        return self.version_after - self.oldest_restorable_version + 1

    @property
    def duration_seconds(self) -> float:
        return round(sum(self.seconds.values()), 3)


def check_retention(retention_hours: float, window_hours: float, what: str = "") -> None:
    if retention_hours < window_hours:
        raise RetentionTooShort(
            f"{what or 'VACUUM'} retention of {retention_hours:g} hours is shorter than the "
            f"rollback window of {window_hours:g} hours: it would delete files that a restore "
            "inside the window needs"
        )


def interval_hours(value: str | None) -> float | None:
    """Hours of a Delta interval property (``interval 7 days``); None when unset or unknown."""
    if not value:
        return None
    m = _INTERVAL.match(value)
    if not m or m.group(2).lower() not in _UNIT_HOURS:
        return None
    return int(m.group(1)) * _UNIT_HOURS[m.group(2).lower()]


def _interval(hours: int) -> str:
    return f"interval {hours // 24} days" if hours % 24 == 0 else f"interval {hours} hours"


# -- reading a table's state --------------------------------------------------------------


def _open(store: DeltaStore, table: TableRef, version: int | None = None) -> DeltaTable:
    return store._open(table, version)


def footprint(store: DeltaStore, table: TableRef) -> Footprint:
    actions = pa.table(_open(store, table).get_add_actions(flatten=True))
    stored = stored_files(store, table)
    return Footprint(
        files=actions.num_rows,
        bytes=int(pc.sum(actions["size_bytes"]).as_py() or 0),
        stored_files=len(stored),
        stored_bytes=sum(stored.values()),
    )


def stored_files(store: DeltaStore, table: TableRef) -> dict[str, int]:
    """Every data file on storage under the table (path relative to the table -> bytes);
    the log and hidden folders (``_delta_log``, a writer's ``_foodops_staging``) are not data."""
    uri = store.uri(table)
    if "://" in uri:
        fs, root = pafs.FileSystem.from_uri(uri)
    else:
        fs, root = pafs.LocalFileSystem(), uri.rstrip("/")
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    out = {}
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(root) :].lstrip("/")
        if any(part.startswith(("_", ".")) for part in relative.split("/")):
            continue
        out[relative] = info.size or 0
    return out


def oldest_restorable_version(
    store: DeltaStore, table: TableRef, window_hours: float, now: dt.datetime
) -> int:
    """The oldest version a restore inside the window may ask for: the one that was
    current at ``now - window`` (every later one was live inside the window too)."""
    cutoff_ms = (now - dt.timedelta(hours=window_hours)).timestamp() * 1000
    history = [(c["version"], c.get("timestamp", 0)) for c in store.history(table)]
    before = [v for v, ts in history if ts <= cutoff_ms]
    return max(before) if before else min(v for v, _ in history)


# -- the steps ----------------------------------------------------------------------------


def ensure_window_properties(
    store: DeltaStore,
    table: TableRef,
    hours: int,
    *,
    dry_run: bool = False,
    commit_metadata: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Raise the table's tombstone and log retention to ``hours`` where they are shorter
    (one commit); returns the properties set (or that would be set)."""
    config = _open(store, table).metadata().configuration
    wanted = {}
    for key, default in (
        (DELETED_FILE_RETENTION, DEFAULT_DELETED_FILE_RETENTION_HOURS),
        (LOG_RETENTION, DEFAULT_LOG_RETENTION_HOURS),
    ):
        current = interval_hours(config.get(key))
        if (default if current is None else current) < hours:
            wanted[key] = _interval(hours)
    if wanted and not dry_run:
        dt_ = _open(store, table)
        try:
            dt_.alter.set_table_properties(
                wanted, commit_properties=_commit(commit_metadata, "set rollback window")
            )
        except CommitFailedError:
            raise _lost("properties", store, table, dt_.version()) from None
    return wanted


def delete_partitions(
    store: DeltaStore,
    table: TableRef,
    before: Mapping[str | None, dt.date],
    *,
    dry_run: bool = False,
    commit_metadata: Mapping[str, Any] | None = None,
) -> Purge | None:
    """Delete every partition whose ``partition_date`` is before its cutoff, in one commit.

    ``before`` maps a value of the table's second partition column (the DLQ's ``source``)
    to its cutoff, or ``None`` to one cutoff for the whole table. Only partition columns
    are named, so whole files are removed (no rewrite)."""
    if not before:
        return None
    clauses = []
    for value, cutoff in sorted(before.items(), key=lambda kv: str(kv[0])):
        date_clause = f"{PARTITION_COLUMN} < {_date(cutoff)}"
        if value is None:
            clauses.append(date_clause)
            continue
        if len(table.partition_by) < 2:
            raise ValueError(f"{table.name} has no second partition column to select {value!r}")
        clauses.append(f"({table.partition_by[1]} = {_text(value)} AND {date_clause})")
    predicate = " OR ".join(clauses)

    def expired(action: Mapping[str, Any]) -> bool:
        day = action[f"partition.{PARTITION_COLUMN}"]
        if None in before:
            return day < before[None]
        value = action[f"partition.{table.partition_by[1]}"]
        return value in before and day < before[value]

    files = [a for a in _add_actions(store, table) if expired(a)]
    if not files:
        return None
    partitions = sorted({_partition_label(table, a) for a in files})
    rows = sum(a.get("num_records") or 0 for a in files)
    version = None
    if not dry_run:
        dt_ = _open(store, table)
        try:
            dt_.delete(
                predicate, commit_properties=_commit(commit_metadata, "purge expired partitions")
            )
        except CommitFailedError:
            raise _lost("purge", store, table, dt_.version()) from None
        version = store.version(table)
    return Purge("delete partitions", predicate, partitions, rows, version)


def null_column(
    store: DeltaStore,
    table: TableRef,
    column: str,
    before: dt.date,
    *,
    dry_run: bool = False,
    commit_metadata: Mapping[str, Any] | None = None,
) -> Purge | None:
    """Set ``column`` to null in the partitions before ``before`` (one commit; only the
    files holding a value are rewritten)."""
    if not _SAFE_COLUMN.match(column):
        raise ValueError(f"{column!r} is not a plain column name")
    predicate = f"{PARTITION_COLUMN} < {_date(before)} AND {column} IS NOT NULL"
    files = [
        a
        for a in _add_actions(store, table)
        if a[f"partition.{PARTITION_COLUMN}"] < before and _non_null(a, column) != 0
    ]
    if not files:
        return None
    partitions = sorted({_partition_label(table, a) for a in files})
    counted = [_non_null(a, column) for a in files]
    rows = sum(n for n in counted if n is not None)
    version = None
    if not dry_run:
        dt_ = _open(store, table)
        try:
            metrics = dt_.update(
                updates={column: "NULL"},
                predicate=predicate,
                commit_properties=_commit(commit_metadata, f"purge expired {column}"),
            )
        except CommitFailedError:
            raise _lost(f"null {column}", store, table, dt_.version()) from None
        rows = int(metrics.get("num_updated_rows", rows))
        version = store.version(table) if rows else None
    return Purge(f"null {column}", predicate, partitions, rows, version)


def compact(
    store: DeltaStore,
    table: TableRef,
    *,
    zorder: Sequence[str] = (),
    target_file_bytes: int | None = None,
    dry_run: bool = False,
    commit_metadata: Mapping[str, Any] | None = None,
    version: int | None = None,
) -> tuple[int, int]:
    """Compact (or Z-order) small files of the table as of ``version`` (default: the
    latest); returns (files rewritten, files written). A dry run counts the files that
    share a partition with another small file. Raises :class:`LostRace` when a commit
    since that version removed files it read (a writer's): nothing is committed."""
    dt_ = _open(store, table, version)
    if dry_run:
        target = target_file_bytes or 100 * 1024 * 1024
        small: dict[str, int] = {}
        for a in _add_actions(store, table):
            if (a.get("size_bytes") or 0) < target:
                label = _partition_label(table, a)
                small[label] = small.get(label, 0) + 1
        return sum(n for n in small.values() if n > 1), 0
    props = _commit(commit_metadata, "z-order" if zorder else "compact")
    try:
        if zorder:
            metrics = dt_.optimize.z_order(
                list(zorder), target_size=target_file_bytes, commit_properties=props
            )
        else:
            metrics = dt_.optimize.compact(target_size=target_file_bytes, commit_properties=props)
    except CommitFailedError:
        raise _lost("compact", store, table, dt_.version()) from None
    return int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"])


def vacuum(
    store: DeltaStore,
    table: TableRef,
    retention_hours: int,
    window_hours: int,
    *,
    dry_run: bool = False,
    commit_metadata: Mapping[str, Any] | None = None,
) -> tuple[int, int]:
    """Delete the files no version of the last ``retention_hours`` uses; returns (files,
    bytes). Refuses a retention shorter than the rollback window."""
    check_retention(retention_hours, window_hours)
    sizes = stored_files(store, table)
    deleted = _open(store, table).vacuum(
        retention_hours=retention_hours,
        dry_run=dry_run,
        enforce_retention_duration=True,
        full=True,
        commit_properties=_commit(commit_metadata, "vacuum"),
    )
    root = store.uri(table).rstrip("/")
    relative = [p.removeprefix(root).lstrip("/") if p.startswith(root) else p for p in deleted]
    return len(relative), sum(sizes.get(p, 0) for p in relative)


def maintain(
    store: DeltaStore,
    table: TableRef,
    plan: Plan,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    commit_metadata: Mapping[str, Any] | None = None,
) -> Report:
    """Window properties, purge, compaction, VACUUM and checkpoint of one table. A step
    whose commit a writer beats is reported in ``lost_races`` and the others go on (all
    but the properties: when they lose, the rest waits for the next run too)."""
    check_retention(plan.retention_hours, plan.window_hours)
    now = now or dt.datetime.now(dt.UTC)
    seconds: dict[str, float] = {}
    races: list[Race] = []

    def timed(step: str, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except LostRace as lost:  # a writer got in first: the step is done next time
            races.append(lost.race)
            return None
        finally:
            seconds[step] = round(seconds.get(step, 0) + time.perf_counter() - start, 3)

    meta = commit_metadata or {}
    version_before = store.version(table)
    before = footprint(store, table)
    # the table may keep removed files longer than asked (its own property, or Delta's
    # default of 7 days when unset): honour it, delta-rs would refuse less anyway
    configured = interval_hours(
        _open(store, table).metadata().configuration.get(DELETED_FILE_RETENTION)
    )
    retention = max(
        plan.retention_hours,
        int(DEFAULT_DELETED_FILE_RETENTION_HOURS if configured is None else configured),
    )
    props = timed(
        "properties",
        ensure_window_properties,
        store,
        table,
        retention,
        dry_run=dry_run,
        commit_metadata=meta,
    )
    purges: list[Purge] = []
    compacted = vacuumed = (0, 0)
    checkpoint_version = None
    # the checkpoint (and so VACUUM) relies on the window properties: without them, the
    # whole table waits for the next run
    if props is not None:
        deleted = timed(
            "purge", delete_partitions, store, table, plan.drop_before, dry_run=dry_run,
            commit_metadata=meta,
        )  # fmt: skip
        purges += [deleted] if deleted else []
        for column, cutoff in sorted(plan.null_before.items()):
            nulled = timed(
                "purge", null_column, store, table, column, cutoff, dry_run=dry_run,
                commit_metadata=meta,
            )  # fmt: skip
            purges += [nulled] if nulled else []
        compacted = timed(
            "compact",
            compact,
            store,
            table,
            zorder=plan.zorder,
            target_file_bytes=plan.target_file_bytes,
            dry_run=dry_run,
            commit_metadata=meta,
        ) or (0, 0)
        vacuumed = timed(
            "vacuum",
            vacuum,
            store,
            table,
            retention,
            plan.window_hours,
            dry_run=dry_run,
            commit_metadata=meta,
        )
        if not dry_run:
            checkpointed = _open(store, table)
            timed("checkpoint", checkpointed.create_checkpoint)
            checkpoint_version = checkpointed.version()
    return Report(
        table=table.name,
        dry_run=dry_run,
        before=before,
        after=footprint(store, table),
        purges=purges,
        compacted_files=compacted[0],
        compaction_files_added=compacted[1],
        vacuumed_files=vacuumed[0],
        vacuumed_bytes=vacuumed[1],
        retention_hours=retention,
        window_hours=plan.window_hours,
        properties_set=props or {},
        lost_races=races,
        version_before=version_before,
        version_after=store.version(table),
        oldest_restorable_version=oldest_restorable_version(store, table, retention, now),
        checkpoint_version=checkpoint_version,
        seconds=seconds,
    )


# -- helpers ------------------------------------------------------------------------------


def _add_actions(store: DeltaStore, table: TableRef) -> list[dict[str, Any]]:
    return pa.table(_open(store, table).get_add_actions(flatten=True)).to_pylist()


def _non_null(action: Mapping[str, Any], column: str) -> int | None:
    """Values in ``column`` of one file, from its statistics (None: unknown, assume some)."""
    rows, nulls = action.get("num_records"), action.get(f"null_count.{column}")
    return None if rows is None or nulls is None else rows - nulls


def _partition_label(table: TableRef, action: Mapping[str, Any]) -> str:
    values = [action.get(f"partition.{c}") for c in table.partition_by]
    return "/".join(v.isoformat() if isinstance(v, dt.date) else str(v) for v in values)


def _date(value: dt.date) -> str:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValueError(f"expected a date, got {value!r}")
    return f"'{value.isoformat()}'"


def _text(value: str) -> str:
    if not isinstance(value, str) or not _SAFE_VALUE.match(value):
        raise ValueError(f"{value!r} is not a safe partition value")
    return f"'{value}'"


def _commit(metadata: Mapping[str, Any] | None, operation: str) -> CommitProperties:
    custom = {k: str(v) for k, v in (metadata or {}).items() if v is not None}
    return CommitProperties(custom_metadata={**custom, MAINTENANCE_COMMIT_KEY: operation})
