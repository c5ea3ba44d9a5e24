"""Partition writes: one atomic, idempotent predicate overwrite, guarded."""

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from foodops_assets.lakehouse.delta import DeltaStore, PredicateError, partition_predicate
from foodops_assets.lakehouse.spark_delta import read_delta, write_partitions
from foodops_assets.lakehouse.tables import DEAD_LETTER_QUEUE, TableRef

T = TableRef("silver", "things", ("partition_date",))
D1, D2, D3 = dt.date(2026, 11, 19), dt.date(2026, 11, 20), dt.date(2026, 11, 21)


def _df(spark, rows):
    return spark.createDataFrame(rows, "id string, n int, partition_date date")


def _content(spark, store, table=T):
    return sorted(tuple(r) for r in read_delta(spark, store, table).collect())


def test_rewriting_a_partition_is_idempotent_and_leaves_other_partitions_alone(spark, tmp_path):
    store = DeltaStore(str(tmp_path))
    write_partitions(
        _df(spark, [("a", 1, D1), ("b", 2, D2), ("c", 3, D3)]),
        store,
        T,
        {"partition_date": [D1, D2, D3]},
    )
    first = write_partitions(
        _df(spark, [("b", 20, D2), ("b2", 21, D2)]), store, T, {"partition_date": [D2]}
    )
    after_first = _content(spark, store)
    second = write_partitions(
        _df(spark, [("b", 20, D2), ("b2", 21, D2)]), store, T, {"partition_date": [D2]}
    )
    assert (
        _content(spark, store)
        == after_first
        == [
            ("a", 1, D1),
            ("b", 20, D2),
            ("b2", 21, D2),
            ("c", 3, D3),
        ]
    )
    assert (first.version, second.version) == (1, 2)
    assert second.previous_version == 1 and second.rows_written == 2
    # each partition write is one commit, with the predicate recorded in the Delta log
    history = DeltaTable(store.uri(T)).history(1)[0]
    assert history["operation"] == "WRITE"
    assert "partition_date" in history["operationParameters"]["predicate"]


def test_a_predicate_on_a_non_partition_column_fails_and_the_table_is_untouched(spark, tmp_path):
    store = DeltaStore(str(tmp_path))
    write_partitions(
        _df(spark, [("a", 1, D1), ("b", 2, D2)]), store, T, {"partition_date": [D1, D2]}
    )
    before = (store.version(T), _content(spark, store))
    with pytest.raises(PredicateError, match="does not match the partition columns"):
        write_partitions(_df(spark, [("a", 9, D1)]), store, T, {"id": ["a"]})
    with pytest.raises(PredicateError, match="must name the partition_date values"):
        write_partitions(
            _df(spark, [("a", 9, D1)]), store, DEAD_LETTER_QUEUE, {"source": ["orders"]}
        )
    assert (store.version(T), _content(spark, store)) == before


def test_rows_outside_the_predicate_are_refused_and_the_table_is_untouched(spark, tmp_path):
    store = DeltaStore(str(tmp_path))
    write_partitions(
        _df(spark, [("a", 1, D1), ("b", 2, D2)]), store, T, {"partition_date": [D1, D2]}
    )
    before = (store.version(T), _content(spark, store))
    with pytest.raises(Exception, match="(?i)invalid data|predicate"):
        # claims to replace D1 but carries a D2 row: would silently destroy D2's old rows
        write_partitions(
            _df(spark, [("a", 9, D1), ("x", 9, D2)]), store, T, {"partition_date": [D1]}
        )
    assert (store.version(T), _content(spark, store)) == before


def test_partition_values_are_validated_never_spliced(spark):
    with pytest.raises(PredicateError, match="not a safe partition value"):
        partition_predicate(DEAD_LETTER_QUEUE, {"partition_date": [D1], "source": ["x' OR '1'='1"]})
    with pytest.raises(PredicateError, match="expected a date"):
        partition_predicate(T, {"partition_date": [dt.datetime(2026, 11, 20, 1)]})
    with pytest.raises(PredicateError, match="not a safe partition value"):
        partition_predicate(T, {"partition_date": ["2026-11-20' OR true OR '"]})
    assert (
        partition_predicate(DEAD_LETTER_QUEUE, {"partition_date": [D2, D1], "source": ["orders"]})
        == "partition_date IN ('2026-11-19', '2026-11-20') AND source IN ('orders')"
    )


def test_dlq_rewrite_replaces_only_that_sources_rows_of_that_partition(spark, tmp_path):
    store = DeltaStore(str(tmp_path))

    def dlq(source, day, raw):
        return spark.createDataFrame([(source, raw)], "source string, raw string").withColumn(
            "partition_date", F.lit(day)
        )

    write_partitions(
        dlq("orders", D1, "o1"),
        store,
        DEAD_LETTER_QUEUE,
        {"partition_date": [D1], "source": ["orders"]},
    )
    write_partitions(
        dlq("reviews", D1, "r1"),
        store,
        DEAD_LETTER_QUEUE,
        {"partition_date": [D1], "source": ["reviews"]},
    )
    write_partitions(
        dlq("orders", D2, "o2"),
        store,
        DEAD_LETTER_QUEUE,
        {"partition_date": [D2], "source": ["orders"]},
    )
    write_partitions(
        dlq("orders", D1, "o1-new"),
        store,
        DEAD_LETTER_QUEUE,
        {"partition_date": [D1], "source": ["orders"]},
    )
    rows = sorted(
        (r.source, r.raw, r.partition_date)
        for r in read_delta(spark, store, DEAD_LETTER_QUEUE).collect()
    )
    assert rows == [("orders", "o1-new", D1), ("orders", "o2", D2), ("reviews", "r1", D1)]


def test_reads_with_a_partition_filter_and_time_travel_restore(spark, tmp_path):
    store = DeltaStore(str(tmp_path))
    write_partitions(
        _df(spark, [("a", 1, D1), ("b", 2, D2)]), store, T, {"partition_date": [D1, D2]}
    )
    write_partitions(_df(spark, [("b", 99, D2)]), store, T, {"partition_date": [D2]})
    only_d2 = read_delta(spark, store, T, {"partition_date": [D2]}).collect()
    assert [(r.id, r.n) for r in only_d2] == [("b", 99)]
    store.restore(T, 0)
    assert _content(spark, store) == [("a", 1, D1), ("b", 2, D2)]
    assert store.version(T) == 2  # a restore is itself a new version


def test_column_stats_sum_the_logs_file_statistics_of_the_named_partitions(tmp_path):
    # bronze's line accounting reads these instead of scanning the table
    store = DeltaStore(str(tmp_path))
    rows = pa.table(
        {
            "id": ["a", None, "c", "d", None],
            "tags": [["x"], None, None, ["y"], ["z"]],
            "partition_date": [D1, D1, D1, D2, D2],
        }
    )
    store.replace_partitions(rows, T, {"partition_date": [D1, D2]})
    store.replace_partitions(rows.slice(3), T, {"partition_date": [D2]})  # a second file

    d1 = store.column_stats(T, {"partition_date": [D1]})
    assert (d1.rows, d1.non_null("id")) == (3, 2)
    both = store.column_stats(T, {"partition_date": [D1, D2]})
    assert (both.rows, both.non_null("id")) == (5, 3)
    assert store.column_stats(T).rows == 5
    # delta-rs keeps no null count for an array: unknown, not zero
    assert both.non_null("tags") is None
    assert store.column_stats(T, {"partition_date": [D3]}).rows == 0
    with pytest.raises(PredicateError):
        store.column_stats(T, {"id": ["a"]})
