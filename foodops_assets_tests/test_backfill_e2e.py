"""A date range through the CLI is ONE run and gives the same tables as day-by-day runs."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from foodops_assets_tests.conftest import REPO_ROOT, Lake, materialize, subprocess_env
from foodops_assets_tests.factories import land_reference, line, order

pytestmark = pytest.mark.e2e

DAGSTER = str(Path(sys.executable).parent / "dagster")
DAYS = [dt.date(2026, 11, 18) + dt.timedelta(days=i) for i in range(3)]
SELECTION = "orders_raw,orders_valid"
TABLES = ("bronze/orders_raw", "silver/orders_valid", "silver/dead_letter_queue")


def _rows(lake_dir: Path, table: str) -> list[tuple]:
    data = DeltaTable(str(lake_dir / table)).to_pyarrow_table()
    columns = sorted(data.column_names)
    return sorted(
        tuple(str(v) for v in row)
        for row in zip(*(data.column(c).to_pylist() for c in columns), strict=True)
    )


def test_a_three_day_partition_range_is_one_run_equal_to_three_single_day_runs(
    lake, spark_resource
):
    land_reference(lake)
    for day in DAYS:
        good = [
            line(order(n, day=day, dish_id="d-2" if n % 3 == 0 else "d-1")) for n in range(1, 13)
        ]
        # one reject a day (under the 10% DLQ circuit breaker): a bad price, or broken JSON
        bad = [line(order(99, day=day, price=0)) if day != DAYS[1] else '{"order_id": "o-x", ']
        lake.land("orders", day, "batch-0001.jsonl", good + bad + [good[0]])  # a duplicate too
    assert materialize(lake, spark_resource, ["restaurants", "dishes"]).success

    # the day-by-day lake: same landing zone, same reference tables, its own Delta tables
    singles = Lake.under(lake.root, landing=lake.landing, lake="lake-singles")
    for ref in ("bronze/restaurants", "bronze/dishes"):
        shutil.copytree(lake.lake / ref, singles.lake / ref)
    for day in DAYS:
        result = materialize(
            singles, spark_resource, SELECTION.split(","), partition_key=day.isoformat()
        )
        assert result.success

    env = subprocess_env(lake)
    proc = subprocess.run(
        [
            DAGSTER, "asset", "materialize", "-m", "foodops_assets", "--select", SELECTION,
            "--partition-range", f"{DAYS[0].isoformat()}...{DAYS[-1].isoformat()}",
        ],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-6000:]

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        [run] = instance.get_runs()  # the whole range: a single run
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert (
        run.tags["dagster/asset_partition_range_start"],
        run.tags["dagster/asset_partition_range_end"],
    ) == (DAYS[0].isoformat(), DAYS[-1].isoformat())

    for table in TABLES:
        ranged, single = _rows(lake.lake, table), _rows(singles.lake, table)
        assert ranged == single, table
        assert ranged, table
    partitions = {p["partition_date"] for p in DeltaTable(str(lake.lake / TABLES[1])).partitions()}
    assert partitions == {d.isoformat() for d in DAYS}
    # each day: 12 valid orders, 1 reject, 1 duplicate dropped
    assert len(_rows(lake.lake, "silver/orders_valid")) == 3 * 12
    assert len(_rows(lake.lake, "silver/dead_letter_queue")) == 3
