"""The delta-rs store: partition predicates, reads, time travel, the log's statistics."""

import datetime as dt

import pyarrow as pa
import pytest

from foodops_assets.lakehouse.delta import PredicateError, partition_predicate
from foodops_assets.lakehouse.tables import DEAD_LETTER_QUEUE
from foodops_assets_tests.lakehouse.things import D1, D2, D3, T, content, things


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


def test_reads_with_a_partition_filter_and_time_travel_restore(spark, lake):
    store, writer = lake.store, lake.writer("arrow")
    writer.write_partitions(
        things(spark, [("a", 1, D1), ("b", 2, D2)]), T, {"partition_date": [D1, D2]}
    )
    writer.write_partitions(things(spark, [("b", 99, D2)]), T, {"partition_date": [D2]})
    only_d2 = lake.read(spark, T, {"partition_date": [D2]}).collect()
    assert [(r.id, r.n) for r in only_d2] == [("b", 99)]
    store.restore(T, 0)
    assert content(spark, lake) == [("a", 1, D1), ("b", 2, D2)]
    assert store.version(T) == 2  # a restore is itself a new version


def test_column_stats_sum_the_logs_file_statistics_of_the_named_partitions(lake):
    # bronze's line accounting reads these instead of scanning the table
    store, writer = lake.store, lake.writer("arrow")
    rows = pa.table(
        {
            "id": ["a", None, "c", "d", None],
            "tags": [["x"], None, None, ["y"], ["z"]],
            "partition_date": [D1, D1, D1, D2, D2],
        }
    )
    writer.write_partitions(rows, T, {"partition_date": [D1, D2]})
    writer.write_partitions(rows.slice(3), T, {"partition_date": [D2]})  # a second file

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
