"""What a JVM per step costs: the daily graph of one partition through the Dagster CLI,
with the in-process executor (one process, one Spark session per run; the default)
against the multiprocess executor (one process, one Spark session per step).

    .venv/bin/python bench/executor_overhead.py [--orders-per-day N] [--repeat R]

Prints the median wall time of each mode and their ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAY = "2026-11-20"
DAILY = "orders_raw,orders_valid,restaurant_daily_sales,city_hourly_demand"


def _env(root: Path, executor: str) -> dict[str, str]:
    home = root / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "resources" / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "FOODOPS_LANDING_ROOT": str(root / "landing"),
        "FOODOPS_LAKE_ROOT": str(root / "lake"),
        "DAGSTER_HOME": str(home),
        "FOODOPS_EXECUTOR": executor,
    }


def _materialize(env: dict[str, str], select: str, partition: str | None) -> float:
    cmd = [str(BIN / "dagster"), "asset", "materialize", "-m", "foodops_assets", "--select", select]
    if partition:
        cmd += ["--partition", partition]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders-per-day", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="foodops-bench-") as tmp:
        root = Path(tmp)
        subprocess.run(
            [
                str(BIN / "foodops"),
                "generate",
                "--landing-root",
                str(root / "landing"),
                "--start",
                DAY,
                "--days",
                "1",
                "--orders-per-day",
                str(args.orders_per_day),
                "--seed",
                "1",
            ],
            check=True,
            capture_output=True,
        )
        _materialize(_env(root, "in_process"), "restaurants,dishes", None)
        times: dict[str, list[float]] = {"in_process": [], "multiprocess": []}
        for _ in range(args.repeat):  # interleaved, so drift hits both modes alike
            for mode in times:
                times[mode].append(_materialize(_env(root, mode), DAILY, DAY))

    med = {mode: statistics.median(t) for mode, t in times.items()}
    print(
        f"assets per run: {len(DAILY.split(','))}, orders: {args.orders_per_day}, repeats: {args.repeat}"
    )
    for mode, t in times.items():
        print(f"{mode}_seconds: {med[mode]:.1f}  (runs: {', '.join(f'{x:.1f}' for x in t)})")
    print(f"multiprocess_over_in_process: {med['multiprocess'] / med['in_process']:.2f}")


if __name__ == "__main__":
    main()
