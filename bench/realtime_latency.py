"""Landing -> silver and landing -> gold latency of late orders files, FoodOps beside a
Structured Streaming script, in one run.

    .venv/bin/python bench/realtime_latency.py [--day-orders 2000] [--files 5]
        [--orders-per-file 250] [--keep]

One day D (yesterday, UTC) of ``--day-orders`` orders is generated with ``foodops generate``
and already processed by each implementation; then ``--files`` new orders files of
``--orders-per-file`` orders (1 % bad lines) land one after another into
``orders/date=D/``, each written in a staging directory and ``rename``d in (an atomic landing).
For each file, from the rename until:

- silver: every valid order of the file is in ``silver/orders_valid`` of D;
- gold: ``gold/restaurant_daily_sales`` of D counts them (orders + cancelled_orders equals
  the rows of silver's D).

The next file lands when the previous one is in gold (or after ``--timeout`` seconds).
The implementations run one after the other (never beside each other on the cores):

- FoodOps: ``foodops ui`` (webserver + daemon) on a fresh instance with the default settings
  (``foodops``: a warm Spark Connect server and the warm run worker's standbys), and again
  with ``foodops ui --no-warm-spark`` (``foodops_embedded``: each run starts its own JVM)
  (file-arrival sensor, declarative automation), after D was materialised with
  ``dagster asset materialize`` and the sensor's first look at D has finished;
- the baseline: ``bench/realtime_streaming.py`` (Spark Structured Streaming, a 1 s trigger,
  the independent script's rules, delta-rs commits; imports nothing from ``foodops_assets``),
  after its first micro-batch took D's files.

Idle cost: with nothing landing, the CPU share (of one core) and the summed RSS of each
process tree over ``--idle-seconds``. Prints ``name: value`` lines; the tables are polled with
``deltalake`` (``--poll`` seconds), which adds at most that much to each figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.compute as pc
from deltalake import DeltaTable
from orders_path import BIN, REPO, generate, instance_env, materialize_command, process_tree, timed

BENCH = Path(__file__).resolve().parent
ORDERS_PATH = "restaurants,dishes,orders_raw,orders_valid,restaurant_daily_sales,city_hourly_demand"


# -- the landed files ---------------------------------------------------------------------------
def new_orders(
    landing: Path, day: dt.date, file_no: int, n: int, rng: random.Random
) -> tuple[str, set[str]]:
    """A file's text: ``n`` orders of dishes of the landed snapshot, ids never used before,
    1 % of them bad (no order_id, or a negative quantity). Returns (text, valid order ids)."""
    snapshot = max((landing / "dishes").glob("*.jsonl"), key=lambda p: p.name)
    dishes = [json.loads(line) for line in snapshot.read_text().splitlines() if line.strip()]
    dishes = [d for d in dishes if d.get("dish_id") and d.get("restaurant_id")]
    lines, valid = [], set()
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    for i in range(n):
        dish = rng.choice(dishes)
        order = {
            "order_id": f"o-{day:%Y%m%d}-rt{file_no:02d}-{i:05d}",
            "user_id": f"u-rt-{rng.randrange(5000):05d}",
            "restaurant_id": dish["restaurant_id"],
            "dish_id": dish["dish_id"],
            "quantity": rng.choice((1, 1, 1, 2, 3)),
            "price": float(dish["list_price"]),
            "order_time": (start + dt.timedelta(seconds=rng.randrange(86_000))).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "city": "Bengaluru",
            "payment_method": "upi",
            "status": "cancelled" if rng.random() < 0.04 else "placed",
        }
        bad = rng.random() < 0.01
        if bad:
            if rng.random() < 0.5:
                order.pop("order_id")
            else:
                order["quantity"] = -1
        else:
            valid.add(order["order_id"])
        lines.append(json.dumps(order))
    return "\n".join(lines) + "\n", valid


def land(text: str, staging: Path, directory: Path, name: str) -> float:
    """Write ``text`` in staging, then rename it into ``directory``; the time of the rename."""
    staged = staging / name
    with open(staged, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(staged, directory / name)
    return time.time()


# -- what the lake says -------------------------------------------------------------------------
def _day_rows(uri: str, day: dt.date, columns: list[str]):
    try:
        table = DeltaTable(uri)
    except Exception:  # not created yet
        return None
    return table.to_pyarrow_table(filters=[("partition_date", "=", day)], columns=columns)


def silver_ids(lake: Path, day: dt.date) -> set[str]:
    rows = _day_rows(f"{lake}/silver/orders_valid", day, ["order_id"])
    return set(rows.column("order_id").to_pylist()) if rows is not None else set()


def silver_count(lake: Path, day: dt.date) -> int:
    rows = _day_rows(f"{lake}/silver/orders_valid", day, ["order_id"])
    return rows.num_rows if rows is not None else 0


def gold_count(lake: Path, day: dt.date) -> int:
    rows = _day_rows(f"{lake}/gold/restaurant_daily_sales", day, ["orders", "cancelled_orders"])
    if rows is None or rows.num_rows == 0:
        return 0
    return int(pc.sum(rows.column("orders")).as_py() or 0) + int(
        pc.sum(rows.column("cancelled_orders")).as_py() or 0
    )


def wait_until(
    condition: Callable[[], bool], timeout: float, poll: float, since: float | None = None
) -> float | None:
    """Seconds from ``since`` (default: now) until ``condition`` held (polled every ``poll``
    seconds), or None when it did not hold within ``timeout`` seconds of ``since``."""
    start = time.time() if since is None else since
    while time.time() - start < timeout:
        if condition():
            return time.time() - start
        time.sleep(poll)
    return None


# -- the run ----------------------------------------------------------------------------------
def measure_files(
    name: str,
    landing: Path,
    lake: Path,
    day: dt.date,
    files: list[tuple[str, set[str]]],
    staging: Path,
    timeout: float,
    poll: float,
) -> list[tuple[float | None, float | None]]:
    """Land the files one after another; (to silver, to gold) seconds of each."""
    directory = landing / "orders" / f"date={day.isoformat()}"
    out = []
    for i, (text, valid) in enumerate(files):
        landed = land(text, staging, directory, f"late-{i:02d}.jsonl")
        to_silver = wait_until(
            lambda ids=valid: ids <= silver_ids(lake, day), timeout, poll, landed
        )
        to_gold = None
        if to_silver is not None:
            to_gold = wait_until(
                lambda: gold_count(lake, day) >= silver_count(lake, day), timeout, poll, landed
            )
        out.append((to_silver, to_gold))
        shown = lambda s: "timeout" if s is None else f"{s:.1f}s"  # noqa: E731
        print(f"# {name} file {i}: silver {shown(to_silver)}, gold {shown(to_gold)}", flush=True)
    return out


def idle_cost(pid: int, seconds: float) -> tuple[float, float]:
    """(CPU share of one core, peak summed RSS in GiB) of the process tree of ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    before = process_tree(pid)
    peak = 0
    end = time.time() + seconds
    while time.time() < end:
        tree = process_tree(pid)
        peak = max(peak, sum(rss for rss, _ in tree.values()))
        time.sleep(0.5)
    after = process_tree(pid)
    used = sum(cpu - before.get(p, (0, 0))[1] for p, (_, cpu) in after.items())
    return used / tick / seconds, peak / 2**30


def wait_idle(home: Path, quiet: float, timeout: float) -> None:
    """Until no run of the instance has been queued or in progress for ``quiet`` seconds."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        busy = [
            dg.DagsterRunStatus.QUEUED,
            dg.DagsterRunStatus.NOT_STARTED,
            dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED,
        ]
        calm_since = time.time()
        end = time.time() + timeout
        while time.time() < end:
            if instance.get_runs(filters=dg.RunsFilter(statuses=busy), limit=1):
                calm_since = time.time()
            elif time.time() - calm_since >= quiet:
                return
            time.sleep(1.0)
    raise SystemExit(f"the instance at {home} never became idle")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_foodops(args, work: Path, source: Path, day: dt.date, files, log: Path, warm=True):
    name = "foodops" if warm else "foodops_embedded"
    root = work / name
    landing = root / "landing"
    shutil.copytree(source, landing)
    env = instance_env(root, landing, root / "lake", automation="on")
    timed(materialize_command(ORDERS_PATH, partition=day.isoformat()), env, log)
    port = str(args.port)
    with open(log, "ab") as out:
        ui = subprocess.Popen(
            [str(BIN / "foodops"), "ui", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", port]
            + ([] if warm else ["--no-warm-spark"]),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # the sensor's first look sees D's files as new: let that run (and automation) finish
        wait_idle(Path(env["DAGSTER_HOME"]), quiet=args.quiet, timeout=1800)
        cpu, rss = idle_cost(ui.pid, args.idle_seconds)
        staging = root / "staging"
        staging.mkdir()
        latencies = measure_files(
            name, landing, root / "lake", day, files, staging, args.timeout, args.poll
        )
        # the last run is still reporting after its gold landed: let it end before the stop
        wait_idle(Path(env["DAGSTER_HOME"]), quiet=5, timeout=600)
    finally:
        stop(ui)
    return latencies, cpu, rss


def run_streaming(args, work: Path, source: Path, day: dt.date, files, log: Path):
    root = work / "streaming"
    landing = root / "landing"
    lake = root / "lake"
    shutil.copytree(source, landing)
    expected = None
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "realtime_streaming.py"),
                "--landing",
                str(landing),
                "--lake",
                str(lake),
                "--date",
                day.isoformat(),
            ],
            env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ready = wait_until(
            lambda: gold_count(lake, day) >= silver_count(lake, day) > 0, 1800, args.poll
        )
        if ready is None:
            raise SystemExit(f"the streaming script never processed D's files; see {log}")
        expected = silver_count(lake, day)
        print(f"# streaming: first micro-batch in {ready:.1f}s ({expected} orders)", flush=True)
        cpu, rss = idle_cost(proc.pid, args.idle_seconds)
        staging = root / "staging"
        staging.mkdir()
        latencies = measure_files(
            "streaming", landing, lake, day, files, staging, args.timeout, args.poll
        )
    finally:
        stop(proc)
    return latencies, cpu, rss


def summary(name: str, latencies, cpu: float, rss: float) -> dict[str, float | None]:
    figures: dict[str, float | None] = {}
    for i, layer in enumerate(("silver", "gold")):
        seen = [lat[i] for lat in latencies if lat[i] is not None]
        lost = len(latencies) - len(seen)
        figures[f"{name}_to_{layer}_p50_seconds"] = statistics.median(seen) if seen else None
        figures[f"{name}_to_{layer}_max_seconds"] = max(seen) if seen else None
        figures[f"{name}_to_{layer}_timeouts"] = lost
    figures[f"{name}_idle_cpu_share"] = cpu
    figures[f"{name}_idle_rss_gib"] = rss
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day-orders", type=int, default=2000)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--orders-per-file", type=int, default=250)
    parser.add_argument("--timeout", type=float, default=600.0, help="per file, seconds")
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--quiet", type=float, default=45.0, help="idle instance: no run for this long"
    )
    parser.add_argument("--port", type=int, default=3377)
    parser.add_argument("--skip", default="", help="foodops,foodops_embedded,streaming")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    work = Path(tempfile.mkdtemp(prefix="foodops-realtime-"))
    log = work / "bench.log"
    print(f"# work dir {work}; log {log}", flush=True)
    try:
        source = work / "landing"
        generate(source, day, 1, args.day_orders, log, bad_rate=0.01)
        rng = random.Random(7)
        files = [new_orders(source, day, i, args.orders_per_file, rng) for i in range(args.files)]
        figures: dict[str, float | None] = {"day_orders": args.day_orders, "files": args.files}
        runs = {
            "foodops": run_foodops,
            "foodops_embedded": lambda *a: run_foodops(*a, warm=False),
            "streaming": run_streaming,
        }
        for name, run in runs.items():
            if name not in skip:
                figures.update(summary(name, *run(args, work, source, day, files, log)))
        for layer in ("silver", "gold"):
            theirs = figures.get(f"streaming_to_{layer}_p50_seconds")
            for name in ("foodops", "foodops_embedded"):
                ours = figures.get(f"{name}_to_{layer}_p50_seconds")
                if ours and theirs:
                    figures[f"{name}_to_{layer}_p50_ratio"] = ours / theirs
        for key, value in figures.items():
            shown = (
                "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else value
            )
            print(f"{key}: {shown}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
