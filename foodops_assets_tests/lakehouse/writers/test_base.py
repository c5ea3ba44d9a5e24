"""The steps every backend shares (writers/base.py): the schema guard, the commit metadata and
the drills' fault hook hold for the arrow and the spark_files writer alike."""

from pathlib import Path

import pytest
from deltalake import DeltaTable

from foodops_assets.drills.faults import InjectedFault
from foodops_assets.lakehouse.writers.base import RefusedWrite
from foodops_assets_tests.lakehouse.things import D1, D2, T

BACKENDS = ["arrow", "spark_files"]


def _files_on_disk(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_schema_guard_new_columns_are_merged_a_changed_type_is_refused(spark, lake, backend):
    store, writer = lake.store, lake.writer(backend)
    base = spark.createDataFrame([("a", 1, D1)], "id string, n int, partition_date date")
    writer.write_partitions(base, T, {"partition_date": [D1]})
    wider = spark.createDataFrame(
        [("b", 2, "new", D2)], "id string, n int, extra string, partition_date date"
    )
    writer.write_partitions(wider, T, {"partition_date": [D2]})
    assert sorted(DeltaTable(store.uri(T)).to_pyarrow_table().to_pylist(), key=str) == [
        {"id": "a", "n": 1, "partition_date": D1, "extra": None},
        {"id": "b", "n": 2, "partition_date": D2, "extra": "new"},
    ]
    before = (store.version(T), _files_on_disk(Path(store.uri(T))))
    retyped = spark.createDataFrame(
        [("c", "three", D1)], "id string, n string, partition_date date"
    )
    with pytest.raises(RefusedWrite, match="column n is int32 in the table"):
        writer.write_partitions(retyped, T, {"partition_date": [D1]})
    assert (store.version(T), _files_on_disk(Path(store.uri(T)))) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_commit_records_the_run_the_backend_and_the_predicate(spark, lake, backend):
    rows = spark.createDataFrame([("a", 1, D1)], "id string, n int, partition_date date")
    meta = {"dagster_run_id": "run-7", "dagster_asset": "things", "dagster_partitions": None}
    lake.writer(backend).write_partitions(rows, T, {"partition_date": [D1]}, commit_metadata=meta)
    entry = DeltaTable(lake.store.uri(T)).history(1)[0]
    assert (entry["dagster_run_id"], entry["dagster_asset"]) == ("run-7", "things")
    assert "dagster_partitions" not in entry  # unset values are left out
    assert entry["foodops_writer"] == backend
    assert entry["foodops_predicate"] == "partition_date IN ('2026-11-19')"


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_drills_fault_hook_reaches_every_backend(spark, lake, backend, monkeypatch):
    writer = lake.writer(backend)
    rows = spark.createDataFrame(
        [("a", 1, D1), ("b", 2, D1)], "id string, n int, partition_date date"
    )
    writer.write_partitions(rows, T, {"partition_date": [D1]})

    monkeypatch.setenv("FOODOPS_FAULTS", "fail_write:things")
    with pytest.raises(InjectedFault, match="fail_write:things"):
        writer.write_partitions(rows, T, {"partition_date": [D1]})
    assert lake.store.version(T) == 0

    monkeypatch.setenv("FOODOPS_FAULTS", "duplicate_write:things")
    doubled = writer.write_partitions(rows, T, {"partition_date": [D1]})
    assert doubled.rows_written == 4
    assert sorted(r["id"] for r in lake.store.to_arrow(T).to_pylist()) == ["a", "a", "b", "b"]
