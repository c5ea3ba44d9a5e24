"""The spark_files writer: Spark writes the Parquet files, delta-rs commits them.

Run on the embedded Spark here (the same code runs through Spark Connect in
test_connect_cluster.py). Both writers must give tables any Delta reader opens,
with identical content and statistics for the same input.
"""

import datetime as dt
import json
import threading
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from foodops_assets.lakehouse.delta import ConcurrentWriteError, PredicateError
from foodops_assets.lakehouse.maintenance import Plan, maintain
from foodops_assets.lakehouse.tables import DEAD_LETTER_QUEUE, TableRef
from foodops_assets.lakehouse.writers import spark_files
from foodops_assets_tests.conftest import Lake

T = TableRef("silver", "things", ("partition_date",))
SNAPSHOT = TableRef("bronze", "snapshot")
D1, D2, D3 = dt.date(2026, 11, 19), dt.date(2026, 11, 20), dt.date(2026, 11, 21)
SCHEMA = (
    "id string, n int, price decimal(18,2), at timestamp, tags array<string>, ok boolean, "
    "note string, partition_date date"
)
LONG = "x" * 70 + "é" * 5  # longer than the 64 characters kept in string statistics


def _ts(day, hour, micros=0):
    return dt.datetime(day.year, day.month, day.day, hour, 0, 0, micros, tzinfo=dt.UTC)


def _rows(day, n, offset=0):
    return [
        (
            f"id-{day.day}-{i + offset}",
            None if i % 5 == 0 else i,
            Decimal(f"{i}.{i % 100:02d}"),
            _ts(day, i % 24, 123456 * (i % 3)),
            None if i % 4 == 0 else [f"t{i % 3}", "x"],
            i % 2 == 0,
            LONG if i % 7 == 0 else (None if i % 6 == 0 else f"note {i}"),
            day,
        )
        for i in range(n)
    ]


def _df(spark, rows, partitions=3):
    # several input partitions, so Spark writes more than one task's output
    return spark.createDataFrame(rows, SCHEMA).repartition(partitions)


def _delta_rs_content(store, table=T):
    data = DeltaTable(store.uri(table)).to_pyarrow_table()
    return data.sort_by(
        [(c, "ascending") for c in ("partition_date", "id") if c in data.schema.names]
    )


def _stats_by_partition(store, table=T) -> dict:
    """Per partition: rows, null counts, min and max of every column, over all its files."""
    out: dict = {}
    for add in pa.table(DeltaTable(store.uri(table)).get_add_actions(flatten=False)).to_pylist():
        key = tuple(sorted((add.get("partition") or {}).items()))
        stats = out.setdefault(key, {"rows": 0, "nulls": {}, "min": {}, "max": {}})
        stats["rows"] += add["num_records"]
        for column, value in (add["null_count"] or {}).items():
            stats["nulls"][column] = stats["nulls"].get(column, 0) + (value or 0)
        for column, value in (add["min"] or {}).items():
            if value is not None:
                stats["min"][column] = min(stats["min"].get(column, value), value)
        for column, value in (add["max"] or {}).items():
            if value is not None:
                stats["max"][column] = max(stats["max"].get(column, value), value)
    return out


def _files_on_disk(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_arrow_and_spark_files_give_the_same_table(spark, tmp_path):
    lakes = {w: Lake.under(tmp_path / w) for w in ("arrow", "spark_files")}
    arrow, files = lakes["arrow"].store, lakes["spark_files"].store
    first = _df(spark, _rows(D1, 40) + _rows(D2, 30))
    second = _df(spark, _rows(D2, 25, offset=100))
    for writer, lake in lakes.items():
        w1 = lake.writer(writer).write_partitions(first, T, {"partition_date": [D1, D2]})
        w2 = lake.writer(writer).write_partitions(second, T, {"partition_date": [D2]})
        assert (w1.writer, w2.writer) == (writer, writer)
        assert (w1.version, w2.version, w2.previous_version) == (0, 1, 0)
        assert (w1.rows_written, w2.rows_written) == (70, 25)

    # any Delta reader opens both: delta-rs ...
    assert _delta_rs_content(files).equals(_delta_rs_content(arrow))
    assert _delta_rs_content(files).num_rows == 65
    assert DeltaTable(files.uri(T)).schema() == DeltaTable(arrow.uri(T)).schema()
    assert DeltaTable(files.uri(T)).metadata().partition_columns == ["partition_date"]
    # ... and Spark through the snapshot's file list
    assert sorted(lakes["spark_files"].read(spark, T).collect()) == sorted(
        lakes["arrow"].read(spark, T).collect()
    )
    # the add actions carry the same statistics, read from the Parquet footers
    assert _stats_by_partition(files) == _stats_by_partition(arrow)
    d2 = _stats_by_partition(files)[(("partition_date", D2),)]
    assert d2["rows"] == 25 and d2["nulls"]["n"] == 5 and d2["min"]["price"] == Decimal("0.00")
    assert len(d2["max"]["note"]) == 64  # long strings are cut as delta-rs cuts them


def test_rows_collected_for_the_arrow_writer_are_written_as_the_dataframe_would_be(spark, tmp_path):
    # silver collects its rows once (pandera checks them) and writes those same rows
    df = _df(spark, _rows(D1, 40) + _rows(D2, 30))
    collected, direct = Lake.under(tmp_path / "rows"), Lake.under(tmp_path / "df")
    rows = collected.resource(delta_writer="arrow").rows_for_write(df)
    assert isinstance(rows, pa.Table) and rows.num_rows == 70
    # the cluster writes, nothing collected
    assert collected.resource(delta_writer="spark_files").rows_for_write(df) is df

    where = {"partition_date": [D1, D2]}
    w = collected.writer("arrow").write_partitions(rows, T, where)
    direct.writer("arrow").write_partitions(df, T, where)
    assert (w.writer, w.version, w.rows_written) == ("arrow", 0, 70)
    assert _delta_rs_content(collected.store).equals(_delta_rs_content(direct.store))
    # delta-rs's predicate guard holds for collected rows too: D2 rows are refused under D1
    with pytest.raises(Exception, match="(?i)invalid data|predicate"):
        collected.writer("arrow").write_partitions(rows, T, {"partition_date": [D1]})
    assert DeltaTable(collected.store.uri(T)).version() == 0


def test_a_spark_files_write_is_one_idempotent_commit_of_only_the_named_partitions(spark, lake):
    store = lake.store
    lake.writer("spark_files").write_partitions(
        _df(spark, _rows(D1, 10) + _rows(D2, 10) + _rows(D3, 10)),
        T,
        {"partition_date": [D1, D2, D3]},
    )
    table_dir = Path(store.uri(T))
    d1_files = sorted(p.name for p in (table_dir / "partition_date=2026-11-19").glob("*.parquet"))
    redo = _df(spark, _rows(D2, 7, offset=50))
    first = lake.writer("spark_files").write_partitions(
        redo, T, {"partition_date": [D2]}, commit_metadata={"dagster_run_id": "run-1"}
    )
    after_first = _delta_rs_content(store)
    second = lake.writer("spark_files").write_partitions(redo, T, {"partition_date": [D2]})

    assert _delta_rs_content(store).equals(after_first)
    assert after_first.num_rows == 27
    assert pc.count_distinct(after_first["partition_date"]).as_py() == 3
    assert (first.version, second.version) == (1, 2)
    # D1 was neither rewritten nor touched
    assert sorted(p.name for p in (table_dir / "partition_date=2026-11-19").glob("*.parquet")) == (
        d1_files
    )
    # one commit per write, recording who made it and what it replaced
    entry = DeltaTable(store.uri(T)).history(2)[1]
    assert entry["version"] == 1 and entry["operation"] == "WRITE"
    assert entry["dagster_run_id"] == "run-1"
    assert entry["foodops_writer"] == "spark_files"
    assert entry["foodops_predicate"] == "partition_date IN ('2026-11-20')"
    # the staging directory is gone; the files live in the partition directories
    assert list((table_dir / spark_files.STAGING_DIR).iterdir()) == []
    referenced = pa.table(DeltaTable(store.uri(T)).get_add_actions()).column("path").to_pylist()
    assert all(f.startswith("partition_date=") for f in referenced)


def test_rows_outside_the_named_partitions_are_refused_and_nothing_is_left_behind(spark, lake):
    store = lake.store
    lake.writer("spark_files").write_partitions(
        _df(spark, _rows(D1, 5) + _rows(D2, 5)), T, {"partition_date": [D1, D2]}
    )
    table_dir = Path(store.uri(T))
    before = (store.version(T), _delta_rs_content(store), _files_on_disk(table_dir))
    # claims to replace D1 but carries a D2 row: would silently destroy D2's old rows
    with pytest.raises(PredicateError, match=r"outside the ones being replaced.*2026-11-20"):
        lake.writer("spark_files").write_partitions(
            _df(spark, _rows(D1, 3) + _rows(D2, 1)), T, {"partition_date": [D1]}
        )
    # a null partition value is outside every partition too
    with pytest.raises(PredicateError, match="__HIVE_DEFAULT_PARTITION__|None"):
        lake.writer("spark_files").write_partitions(
            _df(spark, _rows(D1, 2)).withColumn("partition_date", F.lit(None).cast("date")),
            T,
            {"partition_date": [D1]},
        )
    # a predicate on anything but the partition columns is refused before Spark runs
    with pytest.raises(PredicateError, match="does not match the partition columns"):
        lake.writer("spark_files").write_partitions(_df(spark, _rows(D1, 2)), T, {"id": ["a"]})
    assert store.version(T) == before[0]
    assert _delta_rs_content(store).equals(before[1])
    assert _files_on_disk(table_dir) == before[2]  # no staged or stray files


def test_a_failed_commit_deletes_the_written_files(spark, lake, monkeypatch):
    store = lake.store
    lake.writer("spark_files").write_partitions(
        _df(spark, _rows(D1, 5)), T, {"partition_date": [D1]}
    )
    table_dir = Path(store.uri(T))
    before = (store.version(T), _files_on_disk(table_dir))

    def lost_connection(*args, **kwargs):  # the log store went away before the commit
        raise OSError("connection reset while committing")

    monkeypatch.setattr(spark_files, "_commit", lost_connection)
    with pytest.raises(OSError, match="connection reset"):
        lake.writer("spark_files").write_partitions(
            _df(spark, _rows(D1, 8, offset=10)), T, {"partition_date": [D1]}
        )
    assert (store.version(T), _files_on_disk(table_dir)) == before


def test_dlq_rewrite_of_one_source_and_an_empty_write(spark, lake):
    store = lake.store

    def dlq(source, day, raws):
        return spark.createDataFrame(
            [(source, r) for r in raws], "source string, raw string"
        ).withColumn("partition_date", F.lit(day))

    def write(df, day, source):
        return lake.writer("spark_files").write_partitions(
            df, DEAD_LETTER_QUEUE, {"partition_date": [day], "source": [source]}
        )

    write(dlq("orders", D1, ["o1", "o2"]), D1, "orders")
    write(dlq("reviews", D1, ["r1"]), D1, "reviews")
    write(dlq("orders", D1, ["o1-new"]), D1, "orders")
    rows = sorted(
        (r["source"], r["raw"])
        for r in DeltaTable(store.uri(DEAD_LETTER_QUEUE)).to_pyarrow_table().to_pylist()
    )
    assert rows == [("orders", "o1-new"), ("reviews", "r1")]
    # a run whose source had no rejects empties exactly its own rows
    empty = write(dlq("orders", D1, []), D1, "orders")
    assert empty.rows_written == 0
    rows = [
        r["raw"] for r in DeltaTable(store.uri(DEAD_LETTER_QUEUE)).to_pyarrow_table().to_pylist()
    ]
    assert rows == ["r1"]


def test_an_unpartitioned_table_is_replaced_whole(spark, lake):
    store = lake.store
    lake.writer("spark_files").write_table(
        spark.createDataFrame([("r-1", "A")], "id string, name string"), SNAPSHOT
    )
    result = lake.writer("spark_files").write_table(
        spark.createDataFrame([("r-1", "A2"), ("r-2", "B")], "id string, name string"), SNAPSHOT
    )
    assert (result.version, result.rows_written) == (1, 2)
    assert sorted(
        r["name"] for r in DeltaTable(store.uri(SNAPSHOT)).to_pyarrow_table().to_pylist()
    ) == [
        "A2",
        "B",
    ]
    with pytest.raises(PredicateError, match="is partitioned"):
        lake.writer("spark_files").write_table(_df(spark, _rows(D1, 1)), T)


def test_file_stats_follow_delta_rs_for_timestamps_and_decimals(tmp_path):
    data = pa.table(
        {
            "at": pa.array([_ts(D1, 1, 123456), _ts(D1, 2)], pa.timestamp("us", tz="UTC")),
            "price": pa.array([Decimal("1.50"), Decimal("20.25")], pa.decimal128(18, 2)),
            "tags": pa.array([["a"], None], pa.list_(pa.string())),
        }
    )
    import pyarrow.parquet as pq

    pq.write_table(data, tmp_path / "f.parquet")
    stats = spark_files.file_stats(pq.read_metadata(tmp_path / "f.parquet"), data.schema)
    assert stats == {
        "numRecords": 2,
        "minValues": {"at": "2026-11-19T01:00:00.123Z", "price": 1.5},
        "maxValues": {"at": "2026-11-19T02:00:00Z", "price": 20.25},
        "nullCount": {"at": 0, "price": 0},
    }
    assert json.dumps(stats)  # JSON as the Delta log needs it


@pytest.mark.parametrize(
    "meanwhile", ["maintenance", "maintenance, 31-day window", "other partition", "same partition"]
)
def test_a_held_write_commits_over_maintenance_and_other_partitions_never_over_its_own(
    spark, lake, tmp_path, monkeypatch, meanwhile
):
    """A spark_files write held with its files written and moved, not committed
    (``hang_write``), while others commit to the table. delta-rs alone would commit it over
    a compaction of its partition and keep the compacted old rows beside the new ones (it
    ignores removes without dataChange), so the commit must decide itself."""
    store = lake.store
    files = lake.writer("spark_files")
    files.write_partitions(_df(spark, _rows(D1, 12)), T, {"partition_date": [D1]})
    files.write_partitions(_df(spark, _rows(D2, 6)), T, {"partition_date": [D2]})
    marker, release = tmp_path / "held", tmp_path / "release"
    monkeypatch.setenv("FOODOPS_FAULTS", f"hang_write:{T.name}")
    monkeypatch.setenv("FOODOPS_FAULT_MARKER", str(marker))
    monkeypatch.setenv("FOODOPS_FAULT_RELEASE", str(release))
    new = _df(spark, _rows(D1, 8, offset=100))
    outcome: list = []

    def held_write():
        try:
            outcome.append(files.write_partitions(new, T, {"partition_date": [D1]}))
        except Exception as exc:  # noqa: BLE001 - the test reads it
            outcome.append(exc)

    writer = threading.Thread(target=held_write)
    writer.start()
    try:
        deadline = time.time() + 300
        while not marker.exists():
            assert writer.is_alive() and time.time() < deadline
            time.sleep(0.1)
        monkeypatch.delenv("FOODOPS_FAULTS")  # the writers below are not held
        if meanwhile.startswith("maintenance"):
            # compaction (of D1's files too), vacuum, checkpoint; a 31-day window also sets
            # the window properties first (longer than Delta's default log retention)
            hours = 31 * 24 if "31-day" in meanwhile else 7 * 24
            report = maintain(store, T, Plan(window_hours=hours, retention_hours=hours))
            assert report.compacted_files > 1 and not report.lost_races
            assert bool(report.properties_set) == ("31-day" in meanwhile)
        else:
            day = D2 if meanwhile == "other partition" else D1
            other = pa.table({"id": ["other"], "partition_date": [day]})
            lake.writer("arrow").write_partitions(other, T, {"partition_date": [day]})
        committed_meanwhile = store.version(T)
    finally:
        release.touch()
        writer.join(timeout=300)
    [result] = outcome

    d1 = sorted(r["id"] for r in store.to_arrow(T, {"partition_date": [D1]}).to_pylist())
    if meanwhile == "same partition":
        assert isinstance(result, ConcurrentWriteError)
        assert f"version {committed_meanwhile} (WRITE by another writer)" in str(result)
        assert d1 == ["other"] and store.version(T) == committed_meanwhile
        return
    # exactly the new rows: none of the compacted old ones, nothing lost
    assert d1 == sorted(f"id-{D1.day}-{i + 100}" for i in range(8))
    assert result.version == committed_meanwhile + 1
    assert result.previous_version == committed_meanwhile
    d2 = store.to_arrow(T, {"partition_date": [D2]}).num_rows
    assert d2 == (1 if meanwhile == "other partition" else 6)
    if "31-day" in meanwhile:  # the properties it set stay
        config = DeltaTable(store.uri(T)).metadata().configuration
        assert config["delta.logRetentionDuration"] == "interval 31 days"
