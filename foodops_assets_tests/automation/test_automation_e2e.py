"""The platform runs itself: a real Dagster instance and daemon, sensors on.

One daemon start checks the chain a user relies on: a file lands -> the orders sensor
requests bronze, silver and the orders gold for its partition in one run -> the silver
and gold tables gain the rows -> declarative automation ticks after that run and requests
nothing for the day: not silver or gold again, and not the ML features (they run once a
day, after FOODOPS_ML_CRON, never on the latency path of a file); the reference sensors do not reload
snapshots bronze already holds; the runs carry the run timeout tag.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from deltalake import DeltaTable

from foodops_assets.automation.conditions import AUTOMATION_SENSOR
from foodops_assets_tests.conftest import materialize, subprocess_env
from foodops_assets_tests.factories import land_reference, line, order
from foodops_assets_tests.processes import dagster_daemon

pytestmark = pytest.mark.e2e

D = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
WAIT_SECONDS = 420
ML = {dg.AssetKey(name) for name in ("user_features", "dish_features", "dish_recommendations")}


def _finished_ticks(instance, sensor: str, after: float) -> list:
    """The sensor's ticks that started after ``after`` and finished (requested or skipped)."""
    [state] = [
        s
        for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        if s.instigator_name == sensor
    ]
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
    return [t for t in ticks if t.status in (TickStatus.SUCCESS, TickStatus.SKIPPED)]


def _runs(instance) -> list[dg.DagsterRun]:
    return list(instance.get_runs())


def _covers(run: dg.DagsterRun, day: dt.date) -> bool:
    """The run is for ``day``: its partition, or a range holding it (a single-run backfill)."""
    tags, key = run.tags, day.isoformat()
    if "dagster/partition" in tags:
        return tags["dagster/partition"] == key
    first = tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/asset_partition_range_end")
    return bool(first and last) and first <= key <= last


def test_a_landed_file_reaches_silver_and_gold_in_the_sensor_run_and_automation_follows(
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
        gold = None
        while time.monotonic() < deadline:
            assert daemon.poll() is None, (lake.root / "dagster-daemon.log").read_text()[-4000:]
            event = instance.get_latest_materialization_event(dg.AssetKey("restaurant_daily_sales"))
            if event is not None and event.dagster_event.partition == D.isoformat():
                gold = event
                break
            failed = [r for r in _runs(instance) if r.status == dg.DagsterRunStatus.FAILURE]
            assert not failed, [r.run_id for r in failed]
            time.sleep(3)
        assert gold is not None, (
            f"no restaurant_daily_sales {D} within {WAIT_SECONDS}s; runs: "
            f"{[(r.job_name, r.status, dict(r.tags)) for r in _runs(instance)]}\n"
            + (lake.root / "dagster-daemon.log").read_text()[-4000:]
        )
        silver = instance.get_latest_materialization_event(dg.AssetKey("orders_valid"))
        # declarative automation evaluates after the sensor's run: two of its ticks that began
        # after the run ended, and nothing follows for D (the ML features wait for their daily
        # cron, FOODOPS_ML_CRON; the other silver tables have no bronze of D)
        ended = instance.get_run_record_by_id(gold.run_id).end_time
        ticks = []
        while len(ticks) < 2 and time.monotonic() < deadline:
            ticks = _finished_ticks(instance, AUTOMATION_SENSOR, after=ended)
            time.sleep(2)
        assert len(ticks) >= 2, (
            f"the automation did not tick twice within {WAIT_SECONDS}s after the sensor's run"
        )
        followed = [r for r in _runs(instance) if r.tags.get("foodops/trigger") == "automation"]
        assert not [r for r in followed if _covers(r, D)], [
            (dict(r.tags), r.asset_selection) for r in followed
        ]
        assert not [r for r in followed if ML & set(r.asset_selection or ())]
        runs = {r.run_id: r for r in _runs(instance)}

    # the silver table gained the landed rows
    table = DeltaTable(str(lake.lake / "silver" / "orders_valid")).to_pyarrow_table()
    assert sorted(table.column("order_id").to_pylist()) == sorted(f"o-{n}" for n in range(1, 13))

    bronze_run = next(
        r for r in runs.values() if r.tags.get("dagster/sensor_name") == "orders_file_arrivals"
    )
    assert bronze_run.status == dg.DagsterRunStatus.SUCCESS
    assert bronze_run.tags["dagster/partition"] == D.isoformat()
    assert bronze_run.asset_selection == {
        dg.AssetKey("orders_raw"),
        dg.AssetKey("orders_valid"),
        dg.AssetKey("restaurant_daily_sales"),
        dg.AssetKey("city_hourly_demand"),
    }
    assert bronze_run.tags["dagster/max_runtime"] == "7200"
    # the daemon queued it through the instance's lane coordinator (resources/dagster.yaml)
    assert bronze_run.tags["foodops/lane/orders"] == D.isoformat()
    # silver and gold came from the sensor's own run (one process, one JVM), and only from it
    assert silver.run_id == bronze_run.run_id == gold.run_id
    assert not [
        r
        for r in runs.values()
        if {dg.AssetKey("orders_valid"), dg.AssetKey("restaurant_daily_sales")}
        & set(r.asset_selection or ())
        and r.run_id != bronze_run.run_id
    ]
    # gold counts the landed orders (its reconciliation with silver passed before it published)
    sales = DeltaTable(str(lake.lake / "gold" / "restaurant_daily_sales")).to_pyarrow_table()
    placed = sum(sales.column("orders").to_pylist()) + sum(
        sales.column("cancelled_orders").to_pylist()
    )
    assert placed == 12
    # the snapshot sensors saw snapshots that bronze already holds: no reload
    assert not [
        r for r in runs.values() if r.tags.get("foodops/source") in ("restaurants", "dishes")
    ]
    # exactly one bronze run for the file, however many ticks passed
    assert [r.tags.get("dagster/sensor_name") for r in runs.values()].count(
        "orders_file_arrivals"
    ) == 1
