"""The orders path of one day, four ways, as commands the benchmark times side by side.

- FoodOps: ``dagster asset materialize --select <ORDERS_PATH> --partition D`` (embedded
  default: in-process executor, local[2], arrow writer, every check and all metadata);
- the independent baseline: ``bench/independent_bare.py`` (shares no code with FoodOps);
- Spark Declarative Pipelines: ``spark-pipelines run`` over ``bench/sdp/``;
- the floor: Spark start + the day's orders JSON parsed (``independent_bare.py --floor``).

Also the process helpers of the benchmark suite: :func:`timed` runs a command and samples the
summed RSS of its process tree.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent
ORDERS_PATH = "restaurants,dishes,orders_raw,orders_valid,restaurant_daily_sales,city_hourly_demand"
SDP_SPEC = BENCH / "sdp" / "spark-pipeline.yml"
# the heap every implementation gets (the platform's default, FOODOPS_SPARK_DRIVER_MEMORY)
DRIVER_MEMORY = "3g"


class Timing(NamedTuple):
    seconds: float  # wall
    peak_rss: int  # bytes: the peak of the summed RSS of the process tree
    cpu_seconds: float  # user + system time of every process of the tree


def process_tree(root_pid: int) -> dict[int, tuple[int, int]]:
    """{pid: (RSS bytes, user + system clock ticks)} of root_pid and all its descendants,
    from /proc."""
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, int]] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            pid = int(entry)
            children.setdefault(int(fields[1]), []).append(pid)
            stats[pid] = (int(fields[21]) * page, int(fields[11]) + int(fields[12]))
        except (OSError, ValueError, IndexError):
            continue
    tree, stack = {}, [root_pid]
    while stack:
        pid = stack.pop()
        if pid in stats:
            tree[pid] = stats[pid]
        stack.extend(children.get(pid, []))
    return tree


def timed(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> Timing:
    """Run cmd: its wall seconds, the peak RSS of its process tree and the CPU seconds of the
    tree (every process's last sample, every 0.25 s: CPU seconds move far less than wall
    seconds when other jobs share the cores). Fails loudly."""
    peak = 0
    ticks: dict[int, int] = {}
    start = time.perf_counter()
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                tree = process_tree(proc.pid)
                peak = max(peak, sum(rss for rss, _ in tree.values()))
                ticks.update({pid: cpu for pid, (_, cpu) in tree.items()})
                done.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        done.set()
        sampler.join()
    elapsed = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}); see {log}")
    return Timing(elapsed, peak, sum(ticks.values()) / os.sysconf("SC_CLK_TCK"))


def generate(
    landing: Path, start: dt.date, days: int, orders: int, log: Path, bad_rate: float = 0.02
) -> None:
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
            str(bad_rate),
            "--seed",
            "42",
            "--no-progress",
        ],
        dict(os.environ),
        log,
    )


def instance_env(root: Path, landing: Path, lake: Path, automation: str = "off") -> dict[str, str]:
    """Environment of a fresh Dagster instance under root, reading landing, writing lake."""
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


def materialize_command(
    select: str, partition: str | None = None, rng: str | None = None
) -> list[str]:
    cmd = [str(BIN / "dagster"), "asset", "materialize", "-m", "foodops_assets", "--select", select]
    if partition:
        cmd += ["--partition", partition]
    if rng:
        cmd += ["--partition-range", rng]
    return cmd


def foodops_orders_path(root: Path, landing: Path, day: dt.date, log: Path) -> Timing:
    """FoodOps' orders path in a fresh instance and lake under root."""
    env = instance_env(root, landing, root / "lake")
    return timed(materialize_command(ORDERS_PATH, partition=day.isoformat()), env, log)


def independent_command(landing: Path, lake: Path | None, day: dt.date) -> list[str]:
    cmd = [
        sys.executable,
        str(BENCH / "independent_bare.py"),
        "--landing",
        str(landing),
        "--date",
        day.isoformat(),
        "--driver-memory",
        DRIVER_MEMORY,
    ]
    return [*cmd, "--lake", str(lake)] if lake is not None else [*cmd, "--floor"]


def sdp_command(work: Path, landing: Path, day: dt.date) -> tuple[list[str], dict[str, str]]:
    """Write the run's copy of bench/sdp/spark-pipeline.yml into work (storage, landing, day,
    the flows' path) and return the ``spark-pipelines run`` command and its environment; run
    it with cwd=work (the materialized views land in work/spark-warehouse)."""
    work.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load(SDP_SPEC.read_text())
    spec["storage"] = (work / "sdp-storage").resolve().as_uri()
    spec["configuration"].update(
        {"foodops.bench.landing": str(landing.resolve()), "foodops.bench.date": day.isoformat()}
    )
    # the libraries are found relative to the spec: point the copy back at bench/sdp
    spec["libraries"] = [
        {
            "glob": {
                "include": os.path.relpath(SDP_SPEC.parent / lib["glob"]["include"], work.resolve())
            }
        }
        for lib in spec["libraries"]
    ]
    copy = work / "spark-pipeline.yml"
    copy.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    # PySpark 4.2 hands its local Connect server only the last 10 --conf's: pass few
    cmd = [
        str(BIN / "spark-pipelines"),
        "run",
        "--spec",
        str(copy),
        "--remote",
        "local[2]",
        "--driver-memory",
        DRIVER_MEMORY,
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.ui.showConsoleProgress=false",
    ]
    return cmd, env


def sdp_orders_path(work: Path, landing: Path, day: dt.date, log: Path) -> Timing:
    cmd, env = sdp_command(work, landing, day)
    return timed(cmd, env, log, cwd=work)
