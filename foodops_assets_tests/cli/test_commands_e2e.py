"""The commands a user and CI run, as real subprocesses: generate, the Dagster CLI (`dagster`
and `dg`), summary."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from foodops_assets.definitions import DAILY_ASSETS, ML_ASSETS
from foodops_assets_tests.conftest import REPO_ROOT, subprocess_env

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
DAGSTER = str(BIN / "dagster")
DG = str(BIN / "dg")
FOODOPS = str(BIN / "foodops")


def dg_env(lake) -> dict[str, str]:
    # dg compares the active virtual environment with the project's (.venv)
    return {**subprocess_env(lake), "VIRTUAL_ENV": str(BIN.parent)}


def _run(cmd, env, timeout=600):
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def test_generate_materialize_and_summarise_through_the_cli(lake):
    env = subprocess_env(lake)
    _run(
        [
            FOODOPS,
            "generate",
            "--landing-root",
            str(lake.landing),
            "--start",
            "2026-11-19",
            "--days",
            "3",
            "--orders-per-day",
            "400",
            "--files-per-day",
            "2",
            "--bad-rate",
            "0.02",
            "--seed",
            "5",
        ],
        env,
    )
    # the reference job of make run: the newest snapshots and their histories
    _run(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "foodops_assets",
            "--select",
            "restaurants,dishes,restaurants_history,dishes_history",
        ],
        env,
    )
    # the main job: a 3-day range in a single run
    proc = _run(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "foodops_assets",
            "--select",
            ",".join(DAILY_ASSETS),
            "--partition-range",
            "2026-11-19...2026-11-21",
        ],
        env,
    )
    assert proc.stderr.count("RUN_START") == 1  # one run for the whole range

    versions = {}
    for path in (
        "bronze/orders_raw",
        "silver/orders_valid",
        "silver/dead_letter_queue",
        "gold/restaurant_daily_sales",
        "gold/city_hourly_demand",
        "bronze/deliveries_raw",
        "bronze/reviews_raw",
        "silver/deliveries_valid",
        "silver/reviews_valid",
        "gold/delivery_performance_daily",
        "gold/restaurant_ratings_daily",
        "bronze/restaurants",
        "bronze/dishes",
    ):
        table = DeltaTable(str(lake.lake / path))
        versions[path] = table.version()
        assert table.count() > 0, path
    partitions = {
        p["partition_date"] for p in DeltaTable(str(lake.lake / "silver/orders_valid")).partitions()
    }
    assert partitions == {"2026-11-19", "2026-11-20", "2026-11-21"}

    # what CI runs: one asset, one partition, roots pointing anywhere
    _run(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "foodops_assets",
            "--select",
            "orders_valid",
            "--partition",
            "2026-11-20",
        ],
        env,
    )
    assert (
        DeltaTable(str(lake.lake / "silver/orders_valid")).version()
        == versions["silver/orders_valid"] + 1
    )

    # the same through dg, beside the dagster CLI: bronze and silver of one day, one run
    proc = _run(
        [DG, "launch", "--assets", "orders_raw,orders_valid", "--partition", "2026-11-21"],
        dg_env(lake),
    )
    assert proc.stderr.count("RUN_SUCCESS") == 1
    for path, writes in (("bronze/orders_raw", 1), ("silver/orders_valid", 2)):
        assert DeltaTable(str(lake.lake / path)).version() == versions[path] + writes, path

    summary = _run([FOODOPS, "summary"], env).stdout
    assert "silver/orders_valid" in summary and "silver/dead_letter_queue" in summary
    assert "parseable_record" in summary and "valid_price" in summary
    assert "orders_valid              conservation" in summary
    assert "FAILED" not in summary
    # every check ran except the ML layer's, whose assets this run did not select
    # (make run materialises them as of the last day; test_ml.py runs them)
    not_run = {line.split()[0] for line in summary.splitlines() if "NOT RUN" in line}
    assert not_run <= set(ML_ASSETS)
    # the generator's bad deliveries and reviews reach the DLQ too, under their own source
    [records] = [line for line in summary.splitlines() if line.startswith("records: ")]
    assert "deliveries" in records and "orders" in records and "reviews" in records
    # fields outside the contracts: schema changes are reported as warnings, not failures
    assert "orders_raw                landing_schema_matches_contract   WARN" in summary

    # a late file: the plan of runs that rebuild it and what reads it downstream
    plan = _run([FOODOPS, "late-data", "--source", "reviews", "--date", "2026-11-19"], env).stdout
    assert (
        "dagster asset materialize -m foodops_assets --select reviews_raw,reviews_valid "
        "--partition 2026-11-19" in plan
    )
    # what reads reviews through a window is rebuilt from the late day on; the ratings' 30-day
    # and the ML features' 14-day windows share a run only while both reach yesterday
    rebuilds = [x for x in plan.splitlines() if "--partition-range 2026-11-19..." in x]
    for asset in ("dish_features", "restaurant_ratings_daily", "user_features"):
        assert any(asset in x for x in rebuilds), (asset, plan)


def test_a_bad_partition_key_fails_with_a_clear_message(lake):
    env = subprocess_env(lake)
    proc = subprocess.run(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "foodops_assets",
            "--select",
            "orders_raw",
            "--partition",
            "2026-02-30",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "2026-02-30" in proc.stderr + proc.stdout


def test_definitions_load_the_way_the_cli_loads_them(lake):
    proc = _run([DAGSTER, "definitions", "validate", "-w", "workspace.yaml"], subprocess_env(lake))
    assert "Validation successful for code location foodops" in proc.stderr + proc.stdout


def test_dg_checks_and_lists_the_definitions(lake):
    env = dg_env(lake)
    proc = _run([DG, "check", "defs"], env)
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr
    listed = json.loads(_run([DG, "list", "defs", "--json"], env).stdout)
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert set(assets) >= set(DAILY_ASSETS) | set(ML_ASSETS) | {"dead_letter_queue"}
    assert assets["orders_valid"]["group_name"] == "silver"
    assert {c["key"] for c in listed["asset_checks"]} >= {
        "orders_valid:conservation",
        "orders_valid:published_consistency",
    }
    assert {j["name"] for j in listed["jobs"]} >= {"foodops_daily", "foodops_ml", "dlq_replay"}
    assert {s["name"] for s in listed["sensors"]} >= {
        "orders_file_arrivals",
        "foodops_freshness_alert",
        "foodops_partition_deadlines",
    }
    assert sorted(s["name"] for s in listed["schedules"]) == [
        "foodops_daily_backstop",
        "foodops_lake_maintenance",
    ]


def test_a_malformed_contract_stops_the_code_location_with_the_reason(lake, tmp_path):
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    for name in ("orders", "deliveries", "reviews", "restaurants", "dishes"):
        (contracts / f"{name}.odcs.yaml").write_text(
            (REPO_ROOT / "resources" / "contracts" / f"{name}.odcs.yaml").read_text()
        )
    (contracts / "orders.odcs.yaml").write_text(
        (contracts / "orders.odcs.yaml").read_text().replace("check: positive", "check: positiv", 1)
    )
    env = subprocess_env(lake, FOODOPS_CONTRACTS_DIR=str(contracts))
    proc = subprocess.run(
        [DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "orders.odcs.yaml" in output and "check 'positiv' is not one of" in output
