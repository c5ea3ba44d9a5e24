"""The benchmark suite (`make bench`): every figure of the performance section, one run.

    .venv/bin/python bench/run_all.py [--orders 1000000] [--repeat 3] [--compare-orders 4000]
        [--backfill-orders 50000] [--backfill-days 30] [--sensor-files 10000 100000]
        [--skip compare,orders,sdp,e2e,sensor,backfill,landing] [--keep]

Generates its own data with `foodops generate` into a temporary directory and prints one
``name: value`` line per figure, then a short table. First (``compare``) it checks that the
baselines do the same work as FoodOps: bench/compare_independent.py, on a small day. Then,
over ONE generated day of --orders orders, --repeat times, alternating (FoodOps orders path,
independent script, SDP, floor, whole graph, shared-transforms script), medians:

- orders_path_seconds_<scale>: `dagster asset materialize --select restaurants,dishes,
  orders_raw,orders_valid,restaurant_daily_sales,city_hourly_demand --partition D`, embedded
  default, every check and all metadata;
- independent_bare_seconds_<scale>: the same tables from bench/independent_bare.py, a plain
  PySpark script that shares no code with FoodOps; orders_path_ratio = orders path / it
  (target <= 1.25);
- sdp_seconds_<scale>: the same flows as Spark Declarative Pipelines materialized views
  (`spark-pipelines run`, bench/sdp/), Parquet tables; orders_path_over_sdp (target < 1);
- json_scan_floor_seconds_<scale>: Spark start + the day's orders JSON parsed with the
  contract schema, nothing else;
- *_peak_rss_gib: peak summed RSS of each process tree (the command and its JVMs), sampled
  from /proc every 0.25 s;
- e2e_seconds_<scale>: the whole daily graph (reference snapshots, then bronze -> silver ->
  gold -> user/dish features of the partition), and shared_transforms_seconds_<scale>: the
  same graph as bench/bare_spark.py, a script calling FoodOps' own transforms and writers;
  orchestration_overhead_ratio = e2e / shared (what Dagster, checks and metadata add; blind
  to a slow transform, which both pay); rows_per_second; e2e_peak_rss_gib;
- sensor_tick_seconds_100k / _10k: bench/sensor_tick.py, a tick with 3 new files;
- backfill_<d>d_single_run_seconds vs _per_partition_seconds at --backfill-orders a day;
- landing_to_silver_seconds: dagster-daemon running, one orders file lands for a new day,
  until its rows are in orders_valid.

The per-step times of the FoodOps orders path and of the independent script are printed
beside each other (medians), for the profile.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orders_path import (
    BIN,
    REPO,
    Timing,
    foodops_orders_path,
    generate,
    independent_command,
    instance_env,
    materialize_command,
    sdp_orders_path,
    timed,
)
from profile_steps import step_seconds

BENCH = Path(__file__).resolve().parent
DAY = dt.date(2025, 6, 15)
DAILY = (
    "orders_raw,orders_valid,deliveries_raw,deliveries_valid,reviews_raw,reviews_valid,"
    "restaurant_daily_sales,city_hourly_demand,delivery_performance_daily,"
    "restaurant_ratings_daily,user_features,dish_features"
)
REFERENCE = "restaurants,dishes"
# the independent script's per-step lines ("# orders_raw: 12.34")
SCRIPT_STEP_RE = re.compile(r"^# ([a-z_]+): ([0-9.]+)$", re.M)
GIB = 2**30


def _scale(n: int) -> str:
    return (
        f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)
    )


def materialize(env, log, select: str, partition: str | None = None, rng: str | None = None):
    return timed(materialize_command(select, partition, rng), env, log)


def landed_lines(landing: Path, day: dt.date, sources=("orders", "deliveries", "reviews")) -> int:
    n = 0
    for source in sources:
        for f in (landing / source / f"date={day.isoformat()}").glob("*.jsonl"):
            with open(f, "rb") as fh:
                n += sum(1 for line in fh if line.strip())
    return n


def bench_compare(root: Path, orders: int, log: Path, figures: dict, sdp: bool) -> None:
    """The baselines' tables equal FoodOps' on a small day (SystemExit, with the differing
    rows, when they do not)."""
    from compare_independent import run as compare

    rows = compare(root / "compare", log, orders, sdp=sdp)
    figures["compare_same_rows"] = f"{sum(rows.values())} rows in {len(rows)} tables"


def _median_steps(runs: list[dict[str, float]]) -> dict[str, float]:
    names = [n for n in runs[0]] if runs else []
    return {n: statistics.median(r.get(n, 0.0) for r in runs) for n in names}


def bench_day(
    root: Path, orders: int, log: Path, figures: dict, repeat: int, skip: set[str]
) -> None:
    """The orders path (FoodOps, independent script, SDP, floor) and the whole graph (e2e,
    shared-transforms script) over one landed day, alternating, repeat times; medians."""
    scale = _scale(orders)
    landing = root / "landing"
    generate(landing, DAY, 1, orders, log)
    figures[f"orders_landed_lines_{scale}"] = landed_lines(landing, DAY, ("orders",))
    runs: dict[str, list[float]] = {}
    peaks: dict[str, list[int]] = {}
    cpus: dict[str, list[float]] = {}
    foodops_steps: list[dict[str, float]] = []
    script_steps: list[dict[str, float]] = []

    def record(name: str, result: Timing) -> float:
        runs.setdefault(name, []).append(result.seconds)
        peaks.setdefault(name, []).append(result.peak_rss)
        cpus.setdefault(name, []).append(result.cpu_seconds)
        return result.seconds

    for rep in range(repeat):
        work = root / f"rep{rep}"
        line = []
        load_before = os.getloadavg()[0]
        if "orders" not in skip:
            s = record("orders_path", foodops_orders_path(work / "foodops", landing, DAY, log))
            _, steps = step_seconds(work / "foodops" / "dagster_home")
            foodops_steps.append({**steps, "(outside the run's steps)": s - sum(steps.values())})
            script_log = work / "independent.log"
            work.mkdir(parents=True, exist_ok=True)
            b = record(
                "independent_bare",
                timed(
                    independent_command(landing, work / "independent", DAY),
                    dict(os.environ),
                    script_log,
                ),
            )
            script_steps.append(
                {k: float(v) for k, v in SCRIPT_STEP_RE.findall(script_log.read_text())}
            )
            _append(script_log, log)
            line.append(
                f"orders path {s:.2f} s, independent {b:.2f} s (ratio {s / b:.3f}; CPU "
                f"{cpus['orders_path'][-1]:.0f} s / {cpus['independent_bare'][-1]:.0f} s)"
            )
            if "sdp" not in skip:
                d = record("sdp", sdp_orders_path(work / "sdp", landing, DAY, log))
                line.append(f"SDP {d:.2f} s (CPU {cpus['sdp'][-1]:.0f} s)")
            f = record(
                "json_scan_floor",
                timed(independent_command(landing, None, DAY), dict(os.environ), log),
            )
            line.append(f"floor {f:.2f} s")
        if "e2e" not in skip:
            env = instance_env(work / "e2e", landing, work / "e2e" / "lake")
            e = record(
                "e2e", materialize(env, log, f"{REFERENCE},{DAILY}", partition=DAY.isoformat())
            )
            shared = [
                sys.executable,
                str(BENCH / "bare_spark.py"),
                "--landing",
                str(landing),
                "--lake",
                str(work / "shared" / "lake"),
                "--date",
                DAY.isoformat(),
            ]
            t = record("shared_transforms", timed(shared, dict(os.environ), log))
            line.append(f"e2e {e:.2f} s, shared transforms {t:.2f} s (ratio {e / t:.3f})")
        # a shared machine: the load says how far to trust the seconds (the ratios hold better)
        load = (
            f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        print(f"# repetition {rep + 1}: " + "; ".join(line) + f" ({load})", flush=True)
        # each repetition writes its own lakes (a 1M day is GBs); the Dagster instances and
        # logs stay (bench/profile_steps.py reads them, with --keep)
        for lake in ("foodops/lake", "independent", "sdp/spark-warehouse", "e2e/lake", "shared"):
            shutil.rmtree(work / lake, ignore_errors=True)

    med = {name: statistics.median(v) for name, v in runs.items()}
    gib = {name: round(max(v) / GIB, 2) for name, v in peaks.items()}
    cpu = {name: statistics.median(v) for name, v in cpus.items()}
    if "orders_path" in med:
        s, b, f = med["orders_path"], med["independent_bare"], med["json_scan_floor"]
        figures[f"orders_path_seconds_{scale}"] = round(s, 2)
        figures[f"independent_bare_seconds_{scale}"] = round(b, 2)
        figures["orders_path_ratio"] = round(s / b, 2)
        if "sdp" in med:
            figures[f"sdp_seconds_{scale}"] = round(med["sdp"], 2)
            figures["orders_path_over_sdp"] = round(s / med["sdp"], 2)
        figures[f"json_scan_floor_seconds_{scale}"] = round(f, 2)
        # CPU seconds of each process tree: the same comparison, less sensitive to the load
        for name in ("orders_path", "independent_bare", "sdp"):
            if name in cpu:
                figures[f"{name}_cpu_seconds_{scale}"] = round(cpu[name], 1)
        figures["orders_path_cpu_ratio"] = round(cpu["orders_path"] / cpu["independent_bare"], 2)
        for name in ("orders_path", "independent_bare", "sdp", "json_scan_floor"):
            if name in gib:
                figures[f"{name}_peak_rss_gib"] = gib[name]
    if "e2e" in med:
        e, t = med["e2e"], med["shared_transforms"]
        figures[f"landed_lines_{scale}"] = landed_lines(landing, DAY)
        figures[f"e2e_seconds_{scale}"] = round(e, 2)
        figures[f"shared_transforms_seconds_{scale}"] = round(t, 2)
        figures["orchestration_overhead_ratio"] = round(e / t, 2)
        figures["rows_per_second"] = round(figures[f"landed_lines_{scale}"] / e)
        figures["e2e_peak_rss_gib"] = gib["e2e"]
    figures["repetitions"] = repeat
    if foodops_steps:
        print(f"# orders path steps, median of {repeat} (seconds):", flush=True)
        for name, secs in sorted(_median_steps(foodops_steps).items(), key=lambda s: -s[1]):
            print(f"#   FoodOps      {name:<28} {secs:7.2f}", flush=True)
        for name, secs in _median_steps(script_steps).items():
            if name in ("bronze_rows", "silver_rows", "dlq_rows", "duplicates_dropped"):
                continue
            print(f"#   independent  {name:<28} {secs:7.2f}", flush=True)


def _append(src: Path, log: Path) -> None:
    with open(log, "a") as out:
        out.write(src.read_text())


def bench_sensor(files: list[int], figures: dict, log: Path) -> None:
    from sensor_tick import measure

    for n in files:
        r = measure(n, 500, 5)
        figures[f"sensor_tick_seconds_{_scale(n)}"] = round(r["incremental"], 4)
    small, large = min(files), max(files)
    figures["sensor_tick_ratio"] = round(
        figures[f"sensor_tick_seconds_{_scale(large)}"]
        / figures[f"sensor_tick_seconds_{_scale(small)}"],
        2,
    )


def bench_backfill(root: Path, orders: int, days: int, log: Path, figures: dict) -> None:
    landing = root / "backfill_landing"
    first = DAY - dt.timedelta(days=days - 1)
    generate(landing, first, days, orders, log)
    results = {}
    for mode in ("single_run", "per_partition"):
        env = instance_env(root / f"backfill_{mode}", landing, root / f"backfill_{mode}" / "lake")
        ref_s = materialize(env, log, REFERENCE).seconds
        if mode == "single_run":
            s = materialize(env, log, DAILY, rng=f"{first.isoformat()}...{DAY.isoformat()}").seconds
        else:
            s = 0.0
            for i in range(days):
                day = (first + dt.timedelta(days=i)).isoformat()
                s += materialize(env, log, DAILY, partition=day).seconds
        results[mode] = ref_s + s
        figures[f"backfill_{days}d_{mode}_seconds"] = round(results[mode], 2)
    figures[f"backfill_{days}d_orders_per_day"] = orders
    figures["backfill_per_partition_over_single_run"] = round(
        results["per_partition"] / results["single_run"], 2
    )


def bench_landing_to_silver(root: Path, log: Path, figures: dict, timeout: float = 600) -> None:
    """dagster-daemon running; one orders file (500 orders) lands for a new day: seconds until
    its rows are in orders_valid."""
    from foodops_assets.lakehouse.delta import DeltaStore
    from foodops_assets.lakehouse.tables import ORDERS_VALID

    landing = root / "live_landing"
    # recent days: the automation follows only the last FOODOPS_AUTOMATION_LOOKBACK_DAYS
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    history = day - dt.timedelta(days=2)
    staging = root / "live_staging"
    generate(landing, history, 2, 500, log)
    generate(staging, day, 1, 500, log)
    lake = root / "live" / "lake"
    env = instance_env(root / "live", landing, lake, automation="on")
    env["FOODOPS_LANDING_SETTLE_SECONDS"] = env.get("FOODOPS_LANDING_SETTLE_SECONDS", "5")
    materialize(env, log, REFERENCE)
    materialize(
        env,
        log,
        DAILY,
        rng=f"{history.isoformat()}...{(history + dt.timedelta(days=1)).isoformat()}",
    )
    with open(log, "ab") as out:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    try:
        time.sleep(20)  # let the daemon load the code location and take its first ticks
        src = next((staging / "orders" / f"date={day.isoformat()}").glob("*.jsonl"))
        target_dir = landing / "orders" / f"date={day.isoformat()}"
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp = target_dir / (src.name + ".part")
        shutil.copy(src, tmp)
        landed = time.perf_counter()
        os.rename(tmp, target_dir / src.name)
        store = DeltaStore(str(lake))
        while time.perf_counter() - landed < timeout:
            try:
                hit = store.to_arrow(ORDERS_VALID, {"partition_date": [day]})
                if hit.num_rows and src.name in hit.column("source_file")[0].as_py():
                    figures["landing_to_silver_seconds"] = round(time.perf_counter() - landed, 1)
                    return
            except Exception:  # noqa: BLE001 - not there yet
                pass
            time.sleep(1)
        figures["landing_to_silver_seconds"] = f"not within {timeout:.0f} s"
    finally:
        os.killpg(daemon.pid, 15)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, 9)
            daemon.wait()


SKIPPABLE = ("compare", "orders", "sdp", "e2e", "sensor", "backfill", "landing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each implementation over the same day, alternating; figures are medians",
    )
    parser.add_argument(
        "--compare-orders", type=int, default=4000, help="orders of the comparison's small day"
    )
    parser.add_argument("--backfill-orders", type=int, default=50_000)
    parser.add_argument("--backfill-days", type=int, default=30)
    parser.add_argument("--sensor-files", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--skip", default="", help=f"comma list of: {','.join(SKIPPABLE)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    unknown = skip - set(SKIPPABLE)
    if unknown:
        parser.error(f"--skip: unknown {', '.join(sorted(unknown))}; use {', '.join(SKIPPABLE)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    root = Path(tempfile.mkdtemp(prefix="foodops-bench-"))
    log = root / "bench.log"
    print(f"# work dir {root} (log: {log})", flush=True)
    figures: dict = {}
    steps: list[tuple[str, Callable[[], None]]] = [
        (
            "compare",
            lambda: bench_compare(root, args.compare_orders, log, figures, sdp="sdp" not in skip),
        ),
        ("day", lambda: bench_day(root, args.orders, log, figures, args.repeat, skip)),
        ("sensor", lambda: bench_sensor(args.sensor_files, figures, log)),
        (
            "backfill",
            lambda: bench_backfill(root, args.backfill_orders, args.backfill_days, log, figures),
        ),
        ("landing", lambda: bench_landing_to_silver(root, log, figures)),
    ]
    if {"orders", "e2e"} <= skip:
        skip.add("day")
    try:
        for name, step in steps:
            if name in skip:
                continue
            before = set(figures)
            step()
            for k in figures:
                if k not in before:
                    print(f"{k}: {figures[k]}", flush=True)
        print()
        print(f"| {'figure':<44} | {'value':>26} |")
        print(f"|{'-' * 46}|{'-' * 28}|")
        for k, v in figures.items():
            print(f"| {k:<44} | {v!s:>26} |")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
