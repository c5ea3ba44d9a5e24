"""The arrow writer: rows through this process as Arrow, delta-rs commits them. Each
partition write is one atomic, idempotent predicate overwrite, guarded."""

import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from foodops_assets.lakehouse.delta import DeltaStore, PredicateError, RowFilter
from foodops_assets.lakehouse.tables import DEAD_LETTER_QUEUE
from foodops_assets_tests.lakehouse.things import D1, D2, D3, T, content, things


def test_rewriting_a_partition_is_idempotent_and_leaves_other_partitions_alone(spark, lake):
    store, writer = lake.store, lake.writer("arrow")
    writer.write_partitions(
        things(spark, [("a", 1, D1), ("b", 2, D2), ("c", 3, D3)]),
        T,
        {"partition_date": [D1, D2, D3]},
    )
    first = writer.write_partitions(
        things(spark, [("b", 20, D2), ("b2", 21, D2)]), T, {"partition_date": [D2]}
    )
    after_first = content(spark, lake)
    second = writer.write_partitions(
        things(spark, [("b", 20, D2), ("b2", 21, D2)]), T, {"partition_date": [D2]}
    )
    assert (
        content(spark, lake)
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


def test_a_predicate_on_a_non_partition_column_fails_and_the_table_is_untouched(spark, lake):
    store, writer = lake.store, lake.writer("arrow")
    writer.write_partitions(
        things(spark, [("a", 1, D1), ("b", 2, D2)]), T, {"partition_date": [D1, D2]}
    )
    before = (store.version(T), content(spark, lake))
    with pytest.raises(PredicateError, match="does not match the partition columns"):
        writer.write_partitions(things(spark, [("a", 9, D1)]), T, {"id": ["a"]})
    with pytest.raises(PredicateError, match="must name the partition_date values"):
        writer.write_partitions(
            things(spark, [("a", 9, D1)]), DEAD_LETTER_QUEUE, {"source": ["orders"]}
        )
    assert (store.version(T), content(spark, lake)) == before


def test_rows_outside_the_predicate_are_refused_and_the_table_is_untouched(spark, lake):
    store, writer = lake.store, lake.writer("arrow")
    writer.write_partitions(
        things(spark, [("a", 1, D1), ("b", 2, D2)]), T, {"partition_date": [D1, D2]}
    )
    before = (store.version(T), content(spark, lake))
    with pytest.raises(Exception, match="(?i)invalid data|predicate"):
        # claims to replace D1 but carries a D2 row: would silently destroy D2's old rows
        writer.write_partitions(
            things(spark, [("a", 9, D1), ("x", 9, D2)]), T, {"partition_date": [D1]}
        )
    assert (store.version(T), content(spark, lake)) == before


def test_dlq_rewrite_replaces_only_that_sources_rows_of_that_partition(spark, lake):
    writer = lake.writer("arrow")

    def dlq(source, day, raw):
        return spark.createDataFrame([(source, raw)], "source string, raw string").withColumn(
            "partition_date", F.lit(day)
        )

    # each write names its own source's rows of one day
    for source, day, raw in (
        ("orders", D1, "o1"),
        ("reviews", D1, "r1"),
        ("orders", D2, "o2"),
        ("orders", D1, "o1-new"),
    ):
        where = {"partition_date": [day], "source": [source]}
        writer.write_partitions(dlq(source, day, raw), DEAD_LETTER_QUEUE, where)
    rows = sorted(
        (r.source, r.raw, r.partition_date) for r in lake.read(spark, DEAD_LETTER_QUEUE).collect()
    )
    assert rows == [("orders", "o1-new", D1), ("orders", "o2", D2), ("reviews", "r1", D1)]


def _create_beside_a_held_writer(tmp_path, held_day, other_day):
    """The first write ever of a table, twice at once: a writer held in the middle of its
    write of ``held_day`` (it read no table) while this process creates the table with
    ``other_day``; then the held writer goes on. (status, message) of the held writer."""
    import multiprocessing as mp
    import time

    from foodops_assets.lakehouse.writers import arrow
    from foodops_assets_tests.resilience.writers import RACE, rows, write_held

    store = DeltaStore(str(tmp_path / "lake"))
    marker, release = tmp_path / "held", tmp_path / "release"
    env = {
        "FOODOPS_FAULTS": f"hang_write:{RACE.name}",
        "FOODOPS_FAULT_MARKER": str(marker),
        "FOODOPS_FAULT_RELEASE": str(release),
    }
    ctx = mp.get_context("spawn")  # no fork of a process that may hold a JVM
    results = ctx.Queue()
    where = {"partition_date": [held_day]}
    proc = ctx.Process(target=write_held, args=(store.lake_root, RACE, "held", where, env, results))
    proc.start()
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.is_alive() and time.time() < deadline, "the held writer never got going"
            time.sleep(0.1)
        assert store.open_if_exists(RACE) is None  # it read no table
        arrow.Writer(store).write_partitions(
            rows("other", other_day), RACE, {"partition_date": [other_day]}
        )
    finally:
        release.touch()
    _, status, message = results.get(timeout=120)
    proc.join(timeout=60)
    return store, status, message


def test_two_writers_creating_a_table_with_one_partition_leave_it_whole(tmp_path):
    """delta-rs' own retry would commit the held writer's rows beside the other's: the
    partition would hold both writers' rows. It fails instead, and says what to do."""
    from foodops_assets_tests.resilience.writers import RACE, ROWS

    store, status, message = _create_beside_a_held_writer(tmp_path, D1, D1)
    assert status == "ConcurrentWriteError"
    assert "another writer committed to race" in message and "Re-run this partition" in message
    data = store.to_arrow(RACE)
    assert data.column("writer").unique().to_pylist() == ["other"]
    assert data.num_rows == ROWS and store.version(RACE) == 0


def test_two_writers_creating_a_table_with_other_partitions_both_commit(tmp_path):
    from foodops_assets_tests.resilience.writers import RACE, ROWS

    store, status, message = _create_beside_a_held_writer(tmp_path, D1, D2)
    assert (status, message) == ("ok", "")
    data = store.to_arrow(RACE)
    by_day = data.group_by(["partition_date", "writer"]).aggregate([([], "count_all")])
    assert sorted(by_day.to_pylist(), key=lambda r: r["partition_date"]) == [
        {"partition_date": D1, "writer": "held", "count_all": ROWS},
        {"partition_date": D2, "writer": "other", "count_all": ROWS},
    ]


@pytest.mark.parametrize("backend", ["arrow", "spark_files"])
def test_a_fold_replaces_only_the_rows_it_names_and_refuses_rows_outside_them(spark, lake, backend):
    resource = lake.resource(backend)
    resource.write_partitions(
        things(spark, [("a", 1, D1), ("b", 2, D1), ("c", 3, D1), ("b", 2, D2)]),
        T,
        {"partition_date": [D1, D2]},
    )
    fold = RowFilter("id", ("b", "d"))
    for _ in range(2):  # replaying the fold replaces its rows again
        write = resource.write_partitions(
            things(spark, [("b", 20, D1), ("d", 4, D1)]),
            T,
            {"partition_date": [D1]},
            rows_where=fold,
        )
        assert content(spark, lake) == [
            ("a", 1, D1),
            ("b", 2, D2),  # the same id in another partition is not named
            ("b", 20, D1),
            ("c", 3, D1),
            ("d", 4, D1),
        ]
    assert write.predicate == "partition_date IN ('2026-11-19') AND (id IN ('b', 'd'))"
    assert write.writer == "arrow"  # a few rows: delta-rs commits them whatever the backend

    before = (lake.store.version(T), content(spark, lake))
    with pytest.raises(Exception, match="(?i)invalid data|predicate"):
        # "c" is not a row the fold names: committing it would leave two rows for c
        resource.write_partitions(
            things(spark, [("c", 9, D1)]), T, {"partition_date": [D1]}, rows_where=fold
        )
    for bad in (RowFilter("id", ("x' OR 'a'='a",)), RowFilter("id) OR (1=1", ("a",))):
        with pytest.raises(PredicateError, match="safely|plain column"):
            resource.write_partitions(
                things(spark, [("a", 9, D1)]), T, {"partition_date": [D1]}, rows_where=bad
            )
    assert (lake.store.version(T), content(spark, lake)) == before
