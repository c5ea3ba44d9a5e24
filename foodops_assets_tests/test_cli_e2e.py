"""The commands a user and CI run, as real subprocesses: generate, the Dagster CLI, summary."""

import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from foodops_assets_tests.conftest import REPO_ROOT, subprocess_env

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
DAGSTER = str(BIN / "dagster")
FOODOPS = str(BIN / "foodops")


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
    _run(
        [DAGSTER, "asset", "materialize", "-m", "foodops_assets", "--select", "restaurants,dishes"],
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
            "orders_raw,orders_valid,restaurant_daily_sales,city_hourly_demand",
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

    summary = _run([FOODOPS, "summary"], env).stdout
    assert "silver/orders_valid" in summary and "silver/dead_letter_queue" in summary
    assert "parseable_record" in summary and "valid_price" in summary
    assert "orders_valid              conservation" in summary
    assert "FAILED" not in summary and "NOT RUN" not in summary


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


def test_a_malformed_contract_stops_the_code_location_with_the_reason(lake, tmp_path):
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    for name in ("orders", "restaurants", "dishes"):
        (contracts / f"{name}.yaml").write_text(
            (REPO_ROOT / "resources" / "contracts" / f"{name}.yaml").read_text()
        )
    (contracts / "orders.yaml").write_text(
        (contracts / "orders.yaml").read_text().replace("check: positive", "check: positiv", 1)
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
    assert "orders.yaml" in output and "check 'positiv' is not one of" in output
