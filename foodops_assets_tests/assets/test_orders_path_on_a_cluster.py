"""The orders path on a Spark cluster through Spark Connect equals the embedded run.

The cluster is real: a standalone master, a worker with one executor, and a
Spark Connect server driving it, each its own process (spark_cluster.py).
Switching is configuration only: the cluster side is ``dagster asset materialize``
with ``FOODOPS_SPARK_REMOTE`` set, nothing else changed.
"""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from deltalake import DeltaTable

from foodops_assets.checks.names import LANDING_SCHEMA
from foodops_assets.lakehouse import tables
from foodops_assets_tests.conftest import REPO_ROOT, Lake, subprocess_env
from foodops_assets_tests.factories import land_reference, line, order, without

D1, D2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)
DAILY = ["orders_raw", "orders_valid", "restaurant_daily_sales", "city_hourly_demand"]
COMPARED = [
    tables.RESTAURANTS,
    tables.DISHES,
    tables.ORDERS_RAW,
    tables.ORDERS_VALID,
    tables.DEAD_LETTER_QUEUE,
    tables.RESTAURANT_DAILY_SALES,
    tables.CITY_HOURLY_DEMAND,
]


def _land(lake: Lake) -> None:
    land_reference(lake)
    for day in (D1, D2):
        good = [
            line(order(n, day=day, dish_id="d-2" if n % 3 == 0 else "d-1", user_id=f"u-{n % 5}"))
            for n in range(1, 61)
        ]
        bad = [
            '{"order_id": "o-bad-1", "price": ',  # malformed JSON
            line(order(101, day=day, price=0)),
            line(order(102, day=day, quantity=0, price=-1)),
            line(without(order(103, day=day), "user_id")),
            line(order(104, day=day, coupon_code="SAVE10")),  # accepted, rescued
            line(order(1, day=day)),  # duplicate
            '{"order_id": "o-105", "quantity": "3"}',  # wrong type
        ]
        lake.land("orders", day, "batch-0001.jsonl", [*good, *bad])
        lake.land("orders", day, "batch-0002.jsonl", [line(order(2, day=day, status="cancelled"))])


def _embedded_run(lake: Lake, spark_resource) -> dict:
    """Reference data, then both days of the daily path in one run, on the embedded Spark."""
    assets = [a for a in lake.definitions().assets if isinstance(a, dg.AssetsDefinition)]
    resources = {"spark": spark_resource, "lakehouse": lake.resource()}
    reference = dg.materialize(assets, selection=["restaurants", "dishes"], resources=resources)
    daily = dg.materialize(
        assets,
        selection=DAILY,
        resources=resources,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: D1.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: D2.isoformat(),
        },
    )
    assert reference.success and daily.success
    return _outcome(
        [*reference.get_asset_materialization_events(), *daily.get_asset_materialization_events()],
        daily.get_asset_check_evaluations(),
    )


def _cli_run(lake: Lake, **env_extra: str) -> dict:
    """The same two runs through ``dagster asset materialize``, configured by env vars only.

    A process runs Spark either embedded or through Spark Connect (pyspark keeps
    the mode per process), so the Connect side runs where users run it: the CLI.
    """
    env = subprocess_env(lake, **env_extra)
    dagster = str(Path(sys.executable).parent / "dagster")
    base = [dagster, "asset", "materialize", "-m", "foodops_assets", "--select"]
    for cmd in (
        [*base, "restaurants,dishes"],
        [*base, ",".join(DAILY), "--partition-range", f"{D1.isoformat()}...{D2.isoformat()}"],
    ):
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}"
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        records = [
            r.event_log_entry
            for run in instance.get_runs()
            for r in instance.get_records_for_run(run.run_id).records
        ]
        materializations = [
            e.dagster_event.event_specific_data
            for e in records
            if e.dagster_event
            and e.dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        ]
        checks = [
            e.dagster_event.event_specific_data
            for e in records
            if e.dagster_event
            and e.dagster_event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ]
    return _outcome(materializations, checks)


def _outcome(materializations, checks) -> dict:
    def materialization(e):
        return getattr(e, "materialization", e)

    return {
        "metadata": {
            (materialization(e).asset_key.to_user_string(), materialization(e).partition): {
                k: v.value for k, v in materialization(e).metadata.items()
            }
            for e in materializations
        },
        "checks": sorted((e.asset_key.to_user_string(), e.check_name, e.passed) for e in checks),
    }


def _table(lake_root: Path, table: tables.TableRef) -> tuple:
    """Every row of the table (every column), in a canonical order, and its schema."""
    delta = DeltaTable(str(lake_root / table.path))
    rows = delta.to_pyarrow_table().to_pylist()
    return str(delta.schema().to_arrow()), sorted(rows, key=repr)


# two full runs, one of them on a one-core cluster: generous on a loaded 2-core machine
@pytest.mark.e2e
@pytest.mark.timeout(2700)
def test_the_orders_path_on_a_spark_cluster_equals_the_embedded_run(
    connect_cluster, spark_resource, tmp_path
):
    landing = tmp_path / "landing"

    def lake(name: str) -> Lake:
        return Lake.under(tmp_path / name, landing=landing)

    embedded, on_cluster = lake("embedded"), lake("cluster")
    _land(embedded)  # one landing zone: the same files, with the same modification times

    local = _embedded_run(embedded, spark_resource)
    tasks_before = connect_cluster.tasks_on_executors()
    remote = _cli_run(on_cluster, FOODOPS_SPARK_REMOTE=connect_cluster.connect_url)

    # the cluster's executor (on the worker, not the driver) ran the jobs
    assert connect_cluster.tasks_on_executors() > tasks_before
    # every table has exactly the same schema and rows, every column compared
    for table in COMPARED:
        assert _table(on_cluster.lake, table) == _table(embedded.lake, table), table.name
    silver = _table(on_cluster.lake, tables.ORDERS_VALID)[1]
    assert len(silver) == 2 * 61 and {r["partition_date"] for r in silver} == {D1, D2}
    # the same checks, all passed, and the same numbers in the metadata; but the data
    # went to Delta differently: the cluster wrote the files, delta-rs committed them
    assert remote["checks"] == local["checks"]
    # all passed but bronze's schema check, which warns on both sides: coupon_code landed
    # and is outside the contract
    assert {(a, c) for a, c, p in remote["checks"] if not p} == {("orders_raw", LANDING_SCHEMA)}
    # the audit-before-publish checks of silver and gold, silver's published_consistency
    # (read back after the write), and bronze's landing schema check
    assert len({(asset, check) for asset, check, _ in remote["checks"]}) == 10
    assert remote["metadata"].keys() == local["metadata"].keys()
    for key, meta in remote["metadata"].items():
        for field in ("dagster/row_count", "bronze_rows", "silver_rows", "dlq_rows", "lines"):
            assert meta.get(field) == local["metadata"][key].get(field), (key, field)
        if "delta_writer" in meta:
            assert (meta["delta_writer"], local["metadata"][key]["delta_writer"]) == (
                "spark_files",
                "arrow",
            )
    for table in COMPARED:
        history = DeltaTable(str(on_cluster.lake / table.path)).history(1)[0]
        assert history["foodops_writer"] == "spark_files", table.name
