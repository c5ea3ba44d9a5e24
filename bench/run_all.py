"""The benchmark suite (`make bench`): every figure of the performance section, one run.

    .venv/bin/python bench/run_all.py [--orders 1000000] [--backfill-orders 50000]
        [--backfill-days 30] [--sensor-files 10000 100000] [--skip backfill,landing]
        [--repeat 3]

Generates its own data with `foodops generate` into a temporary directory and prints one
``name: value`` line per figure, then a short table:

- e2e_seconds_<scale>: the daily graph (reference snapshots, then bronze -> silver -> gold ->
  user/dish features of one partition) through `dagster asset materialize`, embedded default;
- bare_spark_seconds_<scale>: the same transforms and Delta writes as one plain PySpark
  script (bench/bare_spark.py), and overhead_ratio = e2e / bare;
- json_scan_floor_seconds_<scale>: a Spark session reading and counting the day's landing
  JSON (session start included, as in both runs above), and e2e_over_floor;
- rows_per_second: landed lines (orders + deliveries + reviews) / e2e seconds;
- peak_rss_gib: peak summed RSS of the e2e process tree (the CLI, its JVM), sampled /proc;
- sensor_tick_seconds_100k / _10k: bench/sensor_tick.py, a tick with 3 new files;
- backfill_<d>d_single_run_seconds vs _per_partition_seconds at --backfill-orders a day;
- landing_to_silver_seconds: dagster-daemon running, one orders file lands for a new day,
  until its rows are in orders_valid.
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
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent
DAY = dt.date(2025, 6, 15)
DAILY = (
    "orders_raw,orders_valid,deliveries_raw,deliveries_valid,reviews_raw,reviews_valid,"
    "restaurant_daily_sales,city_hourly_demand,delivery_performance_daily,"
    "restaurant_ratings_daily,user_features,dish_features"
)
REFERENCE = "restaurants,dishes"
STEP_RE = re.compile(r'Finished execution of step "([a-z_]+)" in ([0-9.]+)s')


def _scale(n: int) -> str:
    return (
        f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)
    )


def _tree_rss(root_pid: int) -> int:
    """Summed RSS (bytes) of root_pid and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            pid = int(entry)
            children.setdefault(int(fields[1]), []).append(pid)
            rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, int]:
    """Run cmd; (wall seconds, peak RSS of its process tree in bytes). Fails loudly."""
    peak = 0
    start = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(proc.pid))
                done.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        done.set()
        sampler.join()
    elapsed = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}); see {log}")
    return elapsed, peak


def generate(landing: Path, start: dt.date, days: int, orders: int, env, log) -> None:
    files = max(4, orders // 125_000)
    timed(
        [
            str(BIN / "foodops"),
            "generate",
            "--landing-root",
            str(landing),
            "--start",
            start.isoformat(),
            "--days",
            str(days),
            "--orders-per-day",
            str(orders),
            "--files-per-day",
            str(files),
            "--bad-rate",
            "0.02",
            "--seed",
            "42",
            "--no-progress",
        ],
        env,
        log,
    )


def instance_env(root: Path, landing: Path, lake: Path, automation: str = "off") -> dict[str, str]:
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "resources" / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FOODOPS_LANDING_ROOT": str(landing),
        "FOODOPS_LAKE_ROOT": str(lake),
        "FOODOPS_AUTOMATION": automation,
    }


def materialize(env, log, select: str, partition: str | None = None, rng: str | None = None):
    cmd = [str(BIN / "dagster"), "asset", "materialize", "-m", "foodops_assets", "--select", select]
    if partition:
        cmd += ["--partition", partition]
    if rng:
        cmd += ["--partition-range", rng]
    return timed(cmd, env, log)


def landed_lines(landing: Path, day: dt.date) -> int:
    n = 0
    for source in ("orders", "deliveries", "reviews"):
        for f in (landing / source / f"date={day.isoformat()}").glob("*.jsonl"):
            with open(f, "rb") as fh:
                n += sum(1 for line in fh if line.strip())
    return n


def bench_e2e(root: Path, orders: int, log: Path, figures: dict, repeat: int = 1) -> None:
    """e2e, bare and floor over the same landed day; with repeat > 1 they alternate
    (e2e, bare, floor, e2e, ...) and each figure is the median of its repetitions."""
    scale = _scale(orders)
    landing = root / "landing"
    generate(landing, DAY, 1, orders, dict(os.environ), log)
    lines = landed_lines(landing, DAY)
    e2e_s, bare_s, floor_s, peaks = [], [], [], []
    steps: list = []
    for rep in range(repeat):
        env = instance_env(root / f"e2e{rep}", landing, root / f"e2e{rep}" / "lake")
        # one command, one run, one JVM: the reference snapshots (unpartitioned) and the
        # partition's daily assets together, as a user materialising "everything for D" would
        step_log = root / f"e2e{rep}.log"
        e2e, peak = materialize(env, step_log, f"{REFERENCE},{DAILY}", partition=DAY.isoformat())
        steps = STEP_RE.findall(step_log.read_text())
        with open(log, "a") as out:
            out.write(step_log.read_text())
        # the baseline and the JSON floor are the same script over the same data; --floor
        # only reads
        bare_cmd = [
            sys.executable,
            str(BENCH / "bare_spark.py"),
            "--landing",
            str(landing),
            "--lake",
            str(root / f"bare{rep}" / "lake"),
            "--date",
            DAY.isoformat(),
        ]
        bare, _ = timed(bare_cmd, dict(os.environ), log)
        floor, _ = timed([*bare_cmd, "--floor"], dict(os.environ), log)
        e2e_s.append(e2e)
        bare_s.append(bare)
        floor_s.append(floor)
        peaks.append(peak)
        if repeat > 1:
            print(
                f"# repetition {rep + 1}: e2e {e2e:.2f} s, bare {bare:.2f} s, floor {floor:.2f} s, "
                f"ratio {e2e / bare:.3f}",
                flush=True,
            )
    e2e, bare, floor = (statistics.median(v) for v in (e2e_s, bare_s, floor_s))
    figures[f"landed_lines_{scale}"] = lines
    figures[f"e2e_seconds_{scale}"] = round(e2e, 2)
    figures[f"bare_spark_seconds_{scale}"] = round(bare, 2)
    figures["overhead_ratio"] = round(e2e / bare, 2)
    figures[f"json_scan_floor_seconds_{scale}"] = round(floor, 2)
    figures["e2e_over_floor"] = round(e2e / floor, 2)
    figures["rows_per_second"] = round(lines / e2e)
    figures["peak_rss_gib"] = round(max(peaks) / 2**30, 2)
    if repeat > 1:
        figures["repetitions"] = repeat
    print("# e2e steps of the last repetition, slowest first (seconds):", flush=True)
    for name, secs in sorted(steps, key=lambda s: -float(s[1])):
        print(f"#   {name:<28} {float(secs):7.2f}", flush=True)


def bench_sensor(files: list[int], figures: dict, log: Path) -> None:
    sys.path.insert(0, str(BENCH))
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
    generate(landing, first, days, orders, dict(os.environ), log)
    results = {}
    for mode in ("single_run", "per_partition"):
        env = instance_env(root / f"backfill_{mode}", landing, root / f"backfill_{mode}" / "lake")
        ref_s, _ = materialize(env, log, REFERENCE)
        if mode == "single_run":
            s, _ = materialize(env, log, DAILY, rng=f"{first.isoformat()}...{DAY.isoformat()}")
        else:
            s = 0.0
            for i in range(days):
                part_s, _ = materialize(
                    env, log, DAILY, partition=(first + dt.timedelta(days=i)).isoformat()
                )
                s += part_s
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
    generate(landing, history, 2, 500, dict(os.environ), log)
    generate(staging, day, 1, 500, dict(os.environ), log)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--backfill-orders", type=int, default=50_000)
    parser.add_argument("--backfill-days", type=int, default=30)
    parser.add_argument("--sensor-files", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--skip", default="", help="comma list of: e2e,sensor,backfill,landing")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="e2e, bare and floor this many times, alternating; figures are medians",
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    root = Path(tempfile.mkdtemp(prefix="foodops-bench-"))
    log = root / "bench.log"
    print(f"# work dir {root} (log: {log})", flush=True)
    figures: dict = {}
    try:
        steps = [
            ("e2e", lambda: bench_e2e(root, args.orders, log, figures, args.repeat)),
            ("sensor", lambda: bench_sensor(args.sensor_files, figures, log)),
            (
                "backfill",
                lambda: bench_backfill(
                    root, args.backfill_orders, args.backfill_days, log, figures
                ),
            ),
            ("landing", lambda: bench_landing_to_silver(root, log, figures)),
        ]
        for name, step in steps:
            if name in skip:
                continue
            before = set(figures)
            step()
            for k in figures:
                if k not in before:
                    print(f"{k}: {figures[k]}", flush=True)
        print()
        print(f"| {'figure':<44} | {'value':>14} |")
        print(f"|{'-' * 46}|{'-' * 16}|")
        for k, v in figures.items():
            print(f"| {k:<44} | {v!s:>14} |")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
