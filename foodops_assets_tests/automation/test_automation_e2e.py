"""The platform runs itself: a real Dagster instance and daemon, sensors on.

One daemon start checks the chain a user relies on: a file lands -> the orders sensor
requests bronze and silver for its partition in one run -> the silver table gains the
rows -> declarative automation requests what follows silver (gold); the reference
sensors do not reload snapshots bronze already holds; the runs carry the run timeout tag.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import dagster as dg
import pytest
from deltalake import DeltaTable

from foodops_assets_tests.conftest import materialize, subprocess_env
from foodops_assets_tests.factories import land_reference, line, order
from foodops_assets_tests.processes import dagster_daemon

pytestmark = pytest.mark.e2e

D = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
WAIT_SECONDS = 420


def _runs(instance) -> list[dg.DagsterRun]:
    return list(instance.get_runs())


def test_a_landed_file_reaches_silver_in_the_sensor_run_and_gold_through_automation(
    lake, spark_resource
):
    env = subprocess_env(
        lake,
        FOODOPS_SENSOR_INTERVAL_SECONDS="5",
        FOODOPS_LANDING_SETTLE_SECONDS="1",
        FOODOPS_AUTOMATION="on",
    )
    home = env["DAGSTER_HOME"]
    with dg.DagsterInstance.from_config(home) as instance:
        _flow(lake, spark_resource, env, instance)


def _flow(lake, spark_resource, env, instance):
    # the reference data was loaded before (same instance): its sensors must not reload it
    land_reference(lake)
    assert materialize(lake, spark_resource, ["restaurants", "dishes"], instance=instance).success

    with dagster_daemon(env, lake.root) as daemon:
        path = lake.land(
            "orders", D, "batch-0001.jsonl", [line(order(n, day=D)) for n in range(1, 13)]
        )
        past = time.time() - 5
        os.utime(path, (past, past))

        deadline = time.monotonic() + WAIT_SECONDS
        silver = None
        while time.monotonic() < deadline:
            assert daemon.poll() is None, (lake.root / "dagster-daemon.log").read_text()[-4000:]
            event = instance.get_latest_materialization_event(dg.AssetKey("orders_valid"))
            if event is not None and event.dagster_event.partition == D.isoformat():
                silver = event
                break
            failed = [r for r in _runs(instance) if r.status == dg.DagsterRunStatus.FAILURE]
            assert not failed, [r.run_id for r in failed]
            time.sleep(3)
        assert silver is not None, (
            f"no orders_valid {D} within {WAIT_SECONDS}s; runs: "
            f"{[(r.job_name, r.status, dict(r.tags)) for r in _runs(instance)]}\n"
            + (lake.root / "dagster-daemon.log").read_text()[-4000:]
        )
        # declarative automation takes over after silver: a run for the orders gold of D
        gold = None
        while gold is None and time.monotonic() < deadline:
            gold = next(
                (
                    r
                    for r in _runs(instance)
                    if r.tags.get("foodops/trigger") == "automation"
                    and dg.AssetKey("restaurant_daily_sales") in (r.asset_selection or ())
                    and r.tags.get("dagster/partition") == D.isoformat()
                ),
                None,
            )
            time.sleep(2)
        assert gold is not None, (
            f"automation requested no gold for {D} within {WAIT_SECONDS}s; runs: "
            f"{[(r.job_name, r.status, dict(r.tags)) for r in _runs(instance)]}"
        )
        runs = {r.run_id: r for r in _runs(instance)}

    # the silver table gained the landed rows
    table = DeltaTable(str(lake.lake / "silver" / "orders_valid")).to_pyarrow_table()
    assert sorted(table.column("order_id").to_pylist()) == sorted(f"o-{n}" for n in range(1, 13))

    bronze_run = next(
        r for r in runs.values() if r.tags.get("dagster/sensor_name") == "orders_file_arrivals"
    )
    assert bronze_run.status == dg.DagsterRunStatus.SUCCESS
    assert bronze_run.tags["dagster/partition"] == D.isoformat()
    assert bronze_run.asset_selection == {dg.AssetKey("orders_raw"), dg.AssetKey("orders_valid")}
    assert bronze_run.tags["dagster/max_runtime"] == "7200"
    # silver came from the sensor's own run (one process, one JVM), and only from it
    assert silver.run_id == bronze_run.run_id
    assert not [
        r
        for r in runs.values()
        if dg.AssetKey("orders_valid") in (r.asset_selection or ())
        and r.run_id != bronze_run.run_id
    ]
    assert gold.tags["dagster/max_runtime"] == "7200"
    # the snapshot sensors saw snapshots that bronze already holds: no reload
    assert not [
        r for r in runs.values() if r.tags.get("foodops/source") in ("restaurants", "dishes")
    ]
    # exactly one bronze run for the file, however many ticks passed
    assert [r.tags.get("dagster/sensor_name") for r in runs.values()].count(
        "orders_file_arrivals"
    ) == 1
