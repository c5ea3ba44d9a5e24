"""Crash safety, with a real killed process: ``dagster asset materialize`` (a real
subprocess) is SIGKILLed while it streams a silver partition into Delta; every table stays
readable, silver at its previous version; the next ``dagster asset materialize`` of the
partition on the same Dagster instance succeeds (the killed run, still marked started,
holds nothing it waits for) and its tables equal a clean run's. (Re-execution from failure is in test_rollback_restore_replay.py,
on that module's lake.)
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
from foodops_assets_tests.conftest import REPO_ROOT, Lake, materialize, subprocess_env
from foodops_assets_tests.factories import line, order

DAY = dt.date(2026, 11, 20)
DAGSTER = str(Path(sys.executable).parent / "dagster")
SECRET = "dapi-not-a-real-token-4242"


def _lake(root: Path, landing: Path | None = None) -> Lake:
    return Lake.under(root, landing=landing)


def _content(lake: Lake, table) -> list[tuple]:
    where = {"partition_date": [DAY]}
    rows = lake.store.to_arrow(table, where).to_pylist()
    return sorted(tuple(sorted((k, repr(v)) for k, v in r.items())) for r in rows)


@pytest.mark.e2e
def test_a_run_killed_mid_write_leaves_the_previous_version_and_the_rerun_equals_a_clean_run(
    tmp_path, spark_resource, with_reference
):
    lake = with_reference(_lake(tmp_path / "crash"))
    lake.land("orders", DAY, "batch-0001.jsonl", [line(order(n, day=DAY)) for n in range(1, 21)])
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

    # the next run of the partition, from a shell on the same Dagster instance (no daemon:
    # nothing marks the killed run failed), succeeds: no lock of the killed run holds it
    with (tmp_path / "rerun.log").open("w") as rerun_log:
        rerun = subprocess.run(
            [DAGSTER, "asset", "materialize", "-m", "foodops_assets", "--select",
             "orders_raw,orders_valid", "--partition", DAY.isoformat()],
            cwd=REPO_ROOT, env=subprocess_env(lake, DATABRICKS_TOKEN=SECRET), stdout=rerun_log,
            stderr=subprocess.STDOUT, timeout=900,
        )  # fmt: skip
    assert rerun.returncode == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    with dg.DagsterInstance.from_config(str(lake.root / "dagster_home")) as instance:
        killed, again = instance.get_runs(limit=2)[::-1]
        assert killed.status == dg.DagsterRunStatus.STARTED  # still, as far as Dagster knows
        assert again.status == dg.DagsterRunStatus.SUCCESS
        assert again.tags["dagster/partition"] == killed.tags["dagster/partition"]
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
    # no secret from the environment reached the runs' output
    assert SECRET not in (tmp_path / "killed-run.log").read_text()
    assert SECRET not in (tmp_path / "rerun.log").read_text()


@pytest.mark.parametrize("run_id", ["not-a-run"])
def test_rerun_of_an_unknown_run_says_so(tmp_path, monkeypatch, run_id):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    out = CliRunner().invoke(foodops, ["rerun", run_id])
    assert out.exit_code != 0 and f"no run {run_id}" in out.output
