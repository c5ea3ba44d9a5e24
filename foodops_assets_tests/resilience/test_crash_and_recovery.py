"""Crash safety and recovery from failure, with a real killed process and a real instance.

- crash: ``dagster asset materialize`` (a real subprocess) is SIGKILLed while it streams a
  silver partition into Delta; every table stays readable, silver at its previous version;
  the next run of the partition succeeds and its tables equal a clean run's;
- recovery: a run whose gold step fails is re-executed from failure (``foodops rerun``, the
  UI's Re-execute > From failure): only the failed step runs; what succeeded is not recomputed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from foodops_assets.cli import main as foodops
from foodops_assets.lakehouse.tables import (
    DEAD_LETTER_QUEUE,
    DISHES,
    ORDERS_RAW,
    ORDERS_VALID,
    RESTAURANTS,
)
from foodops_assets.recovery import reconstructable_job
from foodops_assets.settings import Settings
from foodops_assets_tests.conftest import REPO_ROOT, Lake, materialize, subprocess_env
from foodops_assets_tests.factories import land_reference, line, order

DAY = dt.date(2026, 11, 20)
DAGSTER = str(Path(sys.executable).parent / "dagster")
SECRET = "dapi-not-a-real-token-4242"


def _lake(root: Path, landing: Path | None = None) -> Lake:
    landing = landing or root / "landing"
    return Lake(
        root,
        landing,
        root / "lake",
        Settings(landing_root=str(landing), lake_root=str(root / "lake")),
    )


def _content(lake: Lake, table) -> list[tuple]:
    where = {"partition_date": [DAY]}
    rows = lake.store.to_arrow(table, where).to_pylist()
    return sorted(tuple(sorted((k, repr(v)) for k, v in r.items())) for r in rows)


def test_a_run_killed_mid_write_leaves_the_previous_version_and_the_rerun_equals_a_clean_run(
    tmp_path, spark_resource
):
    lake = _lake(tmp_path / "crash")
    land_reference(lake)
    lake.land("orders", DAY, "batch-0001.jsonl", [line(order(n, day=DAY)) for n in range(1, 21)])
    materialize(lake, spark_resource, ["restaurants", "dishes"])
    materialize(lake, spark_resource, ["orders_raw", "orders_valid"], partition_key=DAY.isoformat())
    tables = (RESTAURANTS, DISHES, ORDERS_RAW, ORDERS_VALID, DEAD_LETTER_QUEUE)
    before = {
        t.name: (lake.store.version(t), _content(lake, t) if t.is_partitioned else None)
        for t in tables
    }

    # late data, then a run that is killed while it streams orders_valid into Delta
    lake.land(
        "orders",
        DAY,
        "batch-0002.jsonl",
        [line(order(n, day=DAY, price=7.5)) for n in range(15, 41)]
        + [line(order(99, day=DAY, quantity=0))],
    )
    marker = tmp_path / "hanging"
    env = subprocess_env(
        lake,
        FOODOPS_FAULTS="hang_write:orders_valid",
        FOODOPS_FAULT_MARKER=str(marker),
        DATABRICKS_TOKEN=SECRET,
    )
    log = (tmp_path / "killed-run.log").open("w")
    proc = subprocess.Popen(
        [DAGSTER, "asset", "materialize", "-m", "foodops_assets", "--select",
         "orders_raw,orders_valid", "--partition", DAY.isoformat()],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 300
        while not marker.exists():
            assert proc.poll() is None, (tmp_path / "killed-run.log").read_text()[-3000:]
            assert time.time() < deadline, "the run never reached the orders_valid write"
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert "hanging in the write of orders_valid" in marker.read_text()

    # every table is readable; silver is exactly where it was
    for t in tables:
        lake.store.to_arrow(t)
    assert lake.store.version(ORDERS_VALID) == before["orders_valid"][0]
    assert _content(lake, ORDERS_VALID) == before["orders_valid"][1]
    # bronze and the DLQ, written before the kill, are whole new versions (or untouched)
    for t in (ORDERS_RAW, DEAD_LETTER_QUEUE):
        assert lake.store.version(t) in (before[t.name][0], before[t.name][0] + 1)

    # the next run of the partition succeeds ...
    rerun = materialize(
        lake, spark_resource, ["orders_raw", "orders_valid"], partition_key=DAY.isoformat()
    )
    assert rerun.success
    # ... and its tables equal a clean run's (same landing files, a fresh lake)
    clean = _lake(tmp_path / "clean", landing=lake.landing)
    for t in (RESTAURANTS, DISHES):  # the same reference snapshots, without another run
        shutil.copytree(lake.store.uri(t), clean.store.uri(t))
    materialize(
        clean, spark_resource, ["orders_raw", "orders_valid"], partition_key=DAY.isoformat()
    )
    for t in (ORDERS_RAW, ORDERS_VALID, DEAD_LETTER_QUEUE):
        assert _content(lake, t) == _content(clean, t), t.name
    assert len(_content(lake, ORDERS_VALID)) == 40 and len(_content(lake, DEAD_LETTER_QUEUE)) == 1
    # no secret from the environment reached the run's output
    assert SECRET not in (tmp_path / "killed-run.log").read_text()


def test_re_execution_from_failure_runs_only_the_failed_step(tmp_path, spark_resource, monkeypatch):
    lake = _lake(tmp_path / "recovery")
    land_reference(lake)
    lake.land("orders", DAY, "batch-0001.jsonl", [line(order(n, day=DAY)) for n in range(1, 21)])
    materialize(lake, spark_resource, ["restaurants", "dishes"])
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for var, value in {
        "FOODOPS_LANDING_ROOT": str(lake.landing),
        "FOODOPS_LAKE_ROOT": str(lake.lake),
        "DAGSTER_HOME": str(home),
        "DATABRICKS_TOKEN": SECRET,
        "FOODOPS_FAULTS": "fail_write:restaurant_daily_sales",
    }.items():
        monkeypatch.setenv(var, value)
    selection = ["orders_raw", "orders_valid", "restaurant_daily_sales", "city_hourly_demand"]
    with dg.DagsterInstance.get() as instance:
        failed = dg.execute_job(
            reconstructable_job("__ASSET_JOB"),
            instance=instance,
            asset_selection=[dg.AssetKey(a) for a in selection],
            tags={"dagster/partition": DAY.isoformat()},
            raise_on_error=False,
        )
        assert not failed.success
        first_run = failed.run_id
        failure = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
        assert [e.step_key for e in failure] == ["restaurant_daily_sales"]
        assert "injected fault" in failure[0].step_failure_data.error.to_string()
        silver_version = lake.store.version(ORDERS_VALID)

    # the fault is fixed; the operator re-executes from failure
    monkeypatch.delenv("FOODOPS_FAULTS")
    out = CliRunner().invoke(foodops, ["rerun", first_run])
    assert out.exit_code == 0, out.output
    assert "SUCCESS" in out.output
    new_run = out.output.split("re-execution run ")[1].split(":")[0]

    with dg.DagsterInstance.get() as instance:
        started = {
            r.dagster_event.step_key
            for r in instance.all_logs(new_run)
            if r.dagster_event and r.dagster_event.event_type_value == "STEP_START"
        }
        assert started == {"restaurant_daily_sales"}
        run = instance.get_run_by_id(new_run)
        assert run.parent_run_id == first_run and run.tags["dagster/partition"] == DAY.isoformat()
        # the silver table was not recomputed
        assert lake.store.version(ORDERS_VALID) == silver_version
        # no secret in the event log of either run (messages, metadata, errors)
        for run_id in (first_run, new_run):
            for record in instance.all_logs(run_id):
                assert SECRET not in str(record)
    assert lake.store.to_arrow(RESTAURANTS).num_rows == 2


@pytest.mark.parametrize("run_id", ["not-a-run"])
def test_rerun_of_an_unknown_run_says_so(tmp_path, monkeypatch, run_id):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    out = CliRunner().invoke(foodops, ["rerun", run_id])
    assert out.exit_code != 0 and f"no run {run_id}" in out.output
