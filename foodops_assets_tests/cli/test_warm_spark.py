"""``foodops ui`` (its default ``--warm-spark``): one Spark Connect server for every launched run,
stopped with the UI.

The real CLI, the real ``dagster dev`` with its daemon, the real Spark Connect server from the
installed pyspark: a file lands, the orders sensor's run reaches silver on the warm Spark (its
materialisation says the executors wrote the Parquet files, as on any remote Spark, where an
embedded run would collect them to Arrow), and stopping the UI stops the server.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import time

import dagster as dg
import pytest
from deltalake import DeltaTable

from foodops_assets.automation import warm_runs
from foodops_assets.lakehouse.spark import SparkConnectUnreachable, _check_reachable
from foodops_assets.lakehouse.tables import ORDERS_VALID
from foodops_assets_tests.cli.test_ui_browser import foodops_ui
from foodops_assets_tests.conftest import materialize, subprocess_env
from foodops_assets_tests.factories import land_reference, line, order

pytestmark = pytest.mark.e2e

D = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
WAIT_SECONDS = 420


def _orders_valid_materialisations(instance) -> list:
    records = instance.fetch_materializations(dg.AssetKey(ORDERS_VALID.name), limit=10).records
    return [r.asset_materialization for r in records]


def test_runs_launched_by_the_ui_attach_to_the_warm_spark_and_it_stops_with_the_ui(
    lake, spark_resource
):
    env = subprocess_env(lake, FOODOPS_AUTOMATION="on", FOODOPS_LANDING_SETTLE_SECONDS="1")
    env.pop("FOODOPS_SPARK_REMOTE", None)
    land_reference(lake)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert materialize(lake, spark_resource, ["restaurants", "dishes"], instance=instance)
        with foodops_ui(env, lake.root, args=["--warm-spark"]) as (_, ui, log):
            [url] = re.findall(r"warm Spark on (sc://127\.0\.0\.1:\d+)", log.read_text())
            _check_reachable(url, 10)  # the server answers while the UI runs

            lake.land("orders", D, "batch-0001.jsonl", [line(order(n, day=D)) for n in range(1, 9)])
            deadline = time.monotonic() + WAIT_SECONDS
            while not _orders_valid_materialisations(instance):
                assert ui.poll() is None, log.read_text()[-4000:]
                assert time.monotonic() < deadline, f"no silver:\n{log.read_text()[-4000:]}"
                time.sleep(2)
            [silver] = _orders_valid_materialisations(instance)
            assert silver.partition == D.isoformat()
            # an embedded run collects the rows to Arrow; a run on the Spark Connect server
            # has its executors write the Parquet files (FOODOPS_DELTA_WRITER=auto)
            assert silver.metadata["delta_writer"].value == "spark_files"
            table = DeltaTable(str(lake.lake / ORDERS_VALID.path)).to_pyarrow_table()
            assert sorted(table.column("order_id").to_pylist()) == [f"o-{n}" for n in range(1, 9)]
            # the run started in a standby of the warm run worker, which had opened its
            # session on the warm Spark before the file landed (no process start, no session)
            [record] = instance.fetch_materializations(
                dg.AssetKey(ORDERS_VALID.name), limit=1
            ).records
            run = instance.get_run_by_id(record.run_id)
            assert run.tags[warm_runs.WORKER_TAG] == warm_runs.WARM
            started = [e.message for e in instance.all_logs(run.run_id) if e.message]
            assert any("a standby of the warm run worker" in m for m in started), started
            worker = warm_runs.socket_path(env["DAGSTER_HOME"])
            assert os.path.exists(worker)

            ui.send_signal(signal.SIGTERM)
            assert ui.wait(timeout=120) == 0
        with pytest.raises(SparkConnectUnreachable):
            _check_reachable(url, 3)  # stopped with the UI
        assert not os.path.exists(worker)  # and the warm run worker with it
