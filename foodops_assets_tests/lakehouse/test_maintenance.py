"""Table maintenance on real Delta tables (delta-rs, no Spark): compaction keeps the rows,
VACUUM keeps every version of the rollback window and refuses less, purge removes exactly
what expired — from the table, and after the window from the Parquet files on disk."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from foodops_assets.lakehouse import maintenance as m
from foodops_assets.lakehouse.delta import DeltaStore
from foodops_assets.lakehouse.tables import TableRef
from foodops_assets.lakehouse.writers import arrow
from foodops_assets_tests.delta_clock import date_commits, days_ago

T = TableRef("silver", "things", ("partition_date",))
DLQ = TableRef("silver", "dlq", ("partition_date", "source"))
WEEK = 7 * 24
TODAY = dt.datetime.now(dt.UTC).date()


def _rows(day: dt.date, tag: str, n: int = 4, source: str | None = None) -> pa.Table:
    cols = {
        "id": [f"{day}-{source}-{tag}-{i}" for i in range(n)],
        "raw": [f"raw text {day} {source} {tag} {i}" for i in range(n)],
        "partition_date": pa.array([day] * n, pa.date32()),
    }
    if source:
        cols["source"] = [source] * n
    return pa.table(cols)


def _digest(rows: list[dict]) -> str:
    """A hash of a table's rows, independent of file and row order."""
    lines = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _content(store: DeltaStore, table: TableRef, version: int | None = None) -> str:
    return _digest(store.to_arrow(table, version=version).to_pylist())


def _append(store: DeltaStore, table: TableRef, data: pa.Table) -> None:
    """A small file added to a partition (a late file folded in, one Spark task's output)."""
    write_deltalake(store.uri(table), data, mode="append", partition_by=list(table.partition_by))


def _parquet_text(store: DeltaStore, table: TableRef, column: str) -> set[str]:
    """Every value of ``column`` in every Parquet file on disk under the table, whether the
    table still references the file or not: what a thief with the disk would find."""
    values: set[str] = set()
    for path in Path(store.uri(table)).rglob("*.parquet"):
        if "_delta_log" in path.parts:
            continue
        values.update(v for v in pq.read_table(path, columns=[column])[column].to_pylist() if v)
    return values


def test_compaction_keeps_every_row_and_leaves_one_file_per_partition(tmp_path):
    store = DeltaStore(str(tmp_path))
    days = [TODAY - dt.timedelta(days=d) for d in (3, 2, 1)]
    for day in days:
        arrow.Writer(store).write_partitions(_rows(day, "first"), T, {"partition_date": [day]})
        for k in range(4):  # late files folded in
            _append(store, T, _rows(day, f"late{k}", n=2))
    before = _content(store, T)

    report = m.maintain(store, T, m.Plan(window_hours=WEEK, retention_hours=WEEK))

    assert _content(store, T) == before
    assert (report.before.files, report.after.files) == (15, 3)
    assert report.compacted_files == 15 and report.compaction_files_added == 3
    assert report.after.bytes < report.before.bytes
    # nothing is older than the window: every replaced file stays on disk, restorable
    assert report.vacuumed_files == 0
    assert report.after.stored_files == report.before.stored_files + 3
    assert DeltaTable(store.uri(T)).history(1)[0]["operation"] in ("OPTIMIZE", "CHECKPOINT")
    assert report.checkpoint_version == report.version_after
    assert list(Path(store.uri(T), "_delta_log").glob("*.checkpoint.parquet"))


@pytest.mark.parametrize("table_keeps_tombstones_for", [None, "interval 1 days"])
def test_every_version_inside_the_window_still_restores_after_maintenance(
    tmp_path, table_keeps_tombstones_for
):
    """Twelve versions over twenty days; maintenance with a seven-day window. The version
    current seven days ago and every later one restore to exactly their rows; the older
    ones lost their files (so the test proves the boundary, not a vacuum that did nothing).
    A table whose own tombstone retention is shorter than the window gets it raised:
    otherwise the first run's checkpoint would forget the removals of the last week, and
    the second night's VACUUM would take their files for a crashed writer's leftovers."""
    store = DeltaStore(str(tmp_path))
    day = TODAY - dt.timedelta(days=30)
    arrow.Writer(store).write_partitions(_rows(day, "v0"), T, {"partition_date": [day]})
    if table_keeps_tombstones_for:
        DeltaTable(store.uri(T)).alter.set_table_properties(
            {m.DELETED_FILE_RETENTION: table_keeps_tombstones_for}
        )
    while store.version(T) < 11:  # re-runs of the same partition, a late file now and then
        v = store.version(T) + 1
        if v % 3 == 0:
            _append(store, T, _rows(day, f"late{v}", n=1))
        else:
            arrow.Writer(store).write_partitions(_rows(day, f"v{v}"), T, {"partition_date": [day]})
    ages = [20, 18, 16, 14, 12, 10, 8, 6, 5, 3, 2, 1]  # days ago, versions 0..11
    date_commits(store.uri(T), {v: days_ago(a) for v, a in enumerate(ages)})
    expected = {v: _content(store, T, v) for v in range(12)}

    report = m.maintain(store, T, m.Plan(window_hours=WEEK, retention_hours=WEEK))
    # the next night: this VACUUM reads the table through the checkpoint the first run wrote
    m.maintain(store, T, m.Plan(window_hours=WEEK, retention_hours=WEEK))

    # version 6 (8 days old) was current 7 days ago: it and everything after stays
    assert report.oldest_restorable_version == 6
    assert report.vacuumed_files > 0
    if table_keeps_tombstones_for:
        assert report.properties_set == {m.DELETED_FILE_RETENTION: "interval 7 days"}
    for v in range(6, 12):
        store.restore(T, v)
        assert _content(store, T) == expected[v], f"version {v} did not restore its rows"
    # older versions lost the files removed more than a week ago; version 5 survives only
    # because its one file is also version 6's (a file goes when no kept version uses it)
    for v in range(0, 5):
        with pytest.raises(Exception, match="(?i)not found|no such file|object at location"):
            store.to_arrow(T, version=v)
    assert _content(store, T, 5) == expected[5]
    assert report.versions_kept == report.version_after - 6 + 1


def test_vacuum_refuses_a_retention_shorter_than_the_window(tmp_path):
    store = DeltaStore(str(tmp_path))
    day = TODAY - dt.timedelta(days=1)
    for tag in ("a", "b", "c"):
        arrow.Writer(store).write_partitions(_rows(day, tag), T, {"partition_date": [day]})
    date_commits(store.uri(T), {0: days_ago(3), 1: days_ago(2)})
    on_disk = m.stored_files(store, T)

    with pytest.raises(m.RetentionTooShort, match="24 hours is shorter than the rollback window"):
        m.vacuum(store, T, retention_hours=24, window_hours=WEEK)
    with pytest.raises(m.RetentionTooShort):
        m.maintain(store, T, m.Plan(window_hours=WEEK, retention_hours=48))

    assert m.stored_files(store, T) == on_disk
    assert store.version(T) == 2
    for v in (0, 1, 2):
        store.to_arrow(T, version=v)  # all still readable


def test_purge_deletes_exactly_the_expired_partitions_in_one_commit(tmp_path):
    store = DeltaStore(str(tmp_path))
    days = [TODAY - dt.timedelta(days=d) for d in range(40, 25, -1)]  # 40..26 days ago
    for day in days:
        arrow.Writer(store).write_partitions(_rows(day, "x"), T, {"partition_date": [day]})
    cutoff = TODAY - dt.timedelta(days=30)
    kept = [d for d in days if d >= cutoff]
    expected_kept = _digest(
        [r for r in store.to_arrow(T).to_pylist() if r["partition_date"] >= cutoff]
    )
    version = store.version(T)

    report = m.maintain(
        store, T, m.Plan(window_hours=WEEK, retention_hours=WEEK, drop_before={None: cutoff})
    )

    [purge] = report.purges
    assert purge.partitions == [d.isoformat() for d in days if d < cutoff]
    assert purge.rows == 4 * 10 and purge.version == version + 1
    assert sorted(set(store.to_arrow(T)["partition_date"].to_pylist())) == kept
    assert _content(store, T) == expected_kept
    [delete] = [c for c in store.history(T) if c["operation"] == "DELETE"]
    assert delete["version"] == purge.version
    assert json.loads(json.dumps(delete["foodops_maintenance"])) == "purge expired partitions"
    # the purge is itself inside the window: the day before it restores whole
    assert len(store.to_arrow(T, version=version)) == 4 * len(days)
    # nothing left to purge: the next run commits nothing
    again = m.maintain(
        store, T, m.Plan(window_hours=WEEK, retention_hours=WEEK, drop_before={None: cutoff})
    )
    assert again.purges == []


def test_an_expired_dead_letter_is_gone_from_the_table_and_from_the_files_after_the_window(
    tmp_path,
):
    """Per-source retention on the shared DLQ: orders rows are kept 30 days, reviews 10.
    The purge removes them from the table at once; their Parquet files stay on disk,
    restorable, for the rollback window; the VACUUM after the window removes the bytes."""
    store = DeltaStore(str(tmp_path))
    for age in (35, 20, 5):
        day = TODAY - dt.timedelta(days=age)
        for source in ("orders", "reviews"):
            arrow.Writer(store).write_partitions(
                _rows(day, "dead", source=source),
                DLQ,
                {"partition_date": [day], "source": [source]},
            )
    date_commits(store.uri(DLQ), {v: days_ago(40 - v) for v in range(6)})
    old_orders, old_reviews = TODAY - dt.timedelta(days=35), TODAY - dt.timedelta(days=20)
    expired_text = {
        r["raw"]
        for r in store.to_arrow(DLQ).to_pylist()
        if r["partition_date"] == old_orders
        or (r["source"] == "reviews" and r["partition_date"] == old_reviews)
    }
    live_text = {r["raw"] for r in store.to_arrow(DLQ).to_pylist()} - expired_text
    assert len(expired_text) == 12 and len(live_text) == 12
    plan = m.Plan(
        window_hours=WEEK,
        retention_hours=WEEK,
        drop_before={
            "orders": TODAY - dt.timedelta(days=30),
            "reviews": TODAY - dt.timedelta(days=10),
        },
    )

    first = m.maintain(store, DLQ, plan)

    [purge] = first.purges
    assert purge.partitions == [
        f"{old_orders}/orders",
        f"{old_orders}/reviews",
        f"{old_reviews}/reviews",
    ]
    assert {r["raw"] for r in store.to_arrow(DLQ).to_pylist()} == live_text
    # gone from the table, but its files are still needed by a restore inside the window
    assert expired_text <= _parquet_text(store, DLQ, "raw")

    # a week and a day later (the same table, its commits dated back eight days)
    date_commits(store.uri(DLQ), {v: days_ago(8) for v in range(6, store.version(DLQ) + 1)})
    second = m.maintain(store, DLQ, plan)

    assert second.vacuumed_files == 3 and second.vacuumed_bytes > 0
    on_disk = _parquet_text(store, DLQ, "raw")
    assert not (expired_text & on_disk), "expired dead letters are still on disk"
    assert live_text <= on_disk
    assert {r["raw"] for r in store.to_arrow(DLQ).to_pylist()} == live_text


def test_raw_text_past_retention_is_nulled_and_its_bytes_go_after_the_window(tmp_path):
    """Bronze keeps its rows (silver's lineage) but not the raw text of an old line."""
    store = DeltaStore(str(tmp_path))
    bronze = TableRef("bronze", "things_raw", ("partition_date",))
    old, recent = TODAY - dt.timedelta(days=40), TODAY - dt.timedelta(days=3)
    for day in (old, recent):
        rows = _rows(day, "line").set_column(
            1, "raw", pa.array([f"rescued {day} {i}" if i % 2 else None for i in range(4)])
        )
        arrow.Writer(store).write_partitions(rows, bronze, {"partition_date": [day]})
    date_commits(store.uri(bronze), {0: days_ago(40), 1: days_ago(3)})
    ids_before = sorted(store.to_arrow(bronze)["id"].to_pylist())
    plan = m.Plan(
        window_hours=WEEK,
        retention_hours=WEEK,
        null_before={"raw": TODAY - dt.timedelta(days=30)},
    )

    [purge] = m.maintain(store, bronze, plan).purges

    assert (purge.operation, purge.partitions, purge.rows) == ("null raw", [str(old)], 2)
    rows = store.to_arrow(bronze).to_pylist()
    assert sorted(r["id"] for r in rows) == ids_before  # every line is still accounted for
    assert [r["raw"] for r in rows if r["partition_date"] == old] == [None] * 4
    assert {r["raw"] for r in rows if r["partition_date"] == recent} == {
        None,
        f"rescued {recent} 1",
        f"rescued {recent} 3",
    }
    assert f"rescued {old} 1" in _parquet_text(store, bronze, "raw")  # restorable for now
    date_commits(store.uri(bronze), {v: days_ago(8) for v in range(2, store.version(bronze) + 1)})
    m.maintain(store, bronze, plan)
    assert not any(str(old) in v for v in _parquet_text(store, bronze, "raw"))
    assert f"rescued {recent} 1" in _parquet_text(store, bronze, "raw")


def test_a_dry_run_changes_nothing_and_says_what_would_go(tmp_path):
    store = DeltaStore(str(tmp_path))
    day = TODAY - dt.timedelta(days=40)
    arrow.Writer(store).write_partitions(_rows(day, "a"), T, {"partition_date": [day]})
    _append(store, T, _rows(day, "b"))
    files, version = m.stored_files(store, T), store.version(T)

    report = m.maintain(
        store,
        T,
        m.Plan(window_hours=WEEK, retention_hours=WEEK, drop_before={None: TODAY}),
        dry_run=True,
    )

    assert report.purges[0].partitions == [str(day)] and report.purges[0].version is None
    assert report.compacted_files == 2
    assert (store.version(T), m.stored_files(store, T)) == (version, files)


def test_a_compaction_a_writer_beats_commits_nothing_and_says_who_won(tmp_path):
    """Maintenance planned the compaction on a version; a writer replaced the partition
    before it committed (it started after maintenance looked at the runs in progress)."""
    store = DeltaStore(str(tmp_path))
    day = TODAY - dt.timedelta(days=1)
    for tag in ("a", "b", "c"):  # small files to compact
        _append(store, T, _rows(day, tag))
    planned_on = store.version(T)
    written = arrow.Writer(store).write_partitions(_rows(day, "new"), T, {"partition_date": [day]})

    with pytest.raises(m.LostRace) as lost:
        m.compact(store, T, version=planned_on, commit_metadata={"dagster_run_id": "r"})

    assert lost.value.race == m.Race(
        "compact", planned_on, [f"version {written.version} (WRITE by another writer)"]
    )
    # nothing of the compaction was committed: the partition is the writer's, whole
    assert store.version(T) == written.version
    assert _content(store, T) == _digest(_rows(day, "new").to_pylist())
    # ... and the compacted file it wrote is a leftover VACUUM removes after the retention
    assert len(m.stored_files(store, T)) == 3 + 1 + 1


def test_vacuum_keeps_the_files_of_a_write_in_progress_and_removes_a_killed_ones(tmp_path):
    """Files a running writer has written but not committed yet are unreferenced, like a
    killed write's leftovers: VACUUM tells them apart by age only (a run lasts hours at
    most, the retention is a day at least), and never looks into the spark_files writer's
    staging directory."""
    store = DeltaStore(str(tmp_path))
    day = TODAY - dt.timedelta(days=1)
    arrow.Writer(store).write_partitions(_rows(day, "a"), T, {"partition_date": [day]})
    table = Path(store.uri(T))
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).timestamp()

    def parquet(relative: str, mtime: float | None = None) -> str:
        path = table / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_rows(day, "x").drop_columns(["partition_date"]), path)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return relative

    writing = parquet(f"partition_date={day}/part-being-written.parquet")
    moved = parquet(f"partition_date={day}/part-moved-not-committed.parquet", time.time() - 3600)
    staged = parquet(f"_foodops_staging/w1/partition_date={day}/part-00000.parquet", old)
    staging_now = parquet(f"_foodops_staging/w2/partition_date={day}/part-00000.parquet")
    killed = parquet(f"partition_date={day}/part-killed-a-month-ago.parquet", old)

    files, _ = m.vacuum(store, T, retention_hours=WEEK, window_hours=WEEK)

    assert files == 1
    on_disk = {str(p.relative_to(table)) for p in table.rglob("*.parquet")}
    assert killed not in on_disk
    assert {writing, moved, staged, staging_now} <= on_disk
