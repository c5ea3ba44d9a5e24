"""What a file-arrival sensor tick costs as the landing zone grows.

    .venv/bin/python bench/sensor_tick.py [--files 10000 100000] [--days 500] [--repeat 5]

For each size, lands N one-line files spread over --days date= directories (aged, as
if landed long ago), takes the first (full) tick, then lands 3 new files (two days) and
times the next tick through the real sensor definition (build_sensor_context +
evaluate_tick). Prints ``name: value`` lines: the full-listing tick, the incremental
tick (median of --repeat, each with 3 new files), the directories it opened, and the
ratio of the incremental tick at the largest size to the smallest.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from foodops_assets.definitions import build_definitions
from foodops_assets.lakehouse.arrivals import load_cursor, scan_daily
from foodops_assets.settings import Settings

FIRST_DAY = dt.date(2025, 1, 1)


def _land(landing: Path, days: int, files: int) -> None:
    past = time.time() - 3600
    per_day = files // days
    for d in range(days):
        directory = landing / "orders" / f"date={(FIRST_DAY + dt.timedelta(days=d)).isoformat()}"
        directory.mkdir(parents=True)
        for i in range(per_day):
            path = directory / f"batch-{i:05d}.jsonl"
            path.write_text('{"order_id": "o"}\n')
            os.utime(path, (past, past))
        os.utime(directory, (past, past))


def _tick(repo, cursor, instance):
    sensor = repo.get_sensor_def("orders_file_arrivals")
    with dg.build_sensor_context(cursor=cursor, repository_def=repo, instance=instance) as context:
        start = time.perf_counter()
        data = sensor.evaluate_tick(context)
        return time.perf_counter() - start, data


def measure(files: int, days: int, repeat: int) -> dict[str, float]:
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="foodops-sensor-bench-"))
        landing = Path(tmp) / "landing"
        _land(landing, days, files)
        settings = Settings(
            landing_root=str(landing), lake_root=str(Path(tmp) / "lake"), landing_settle_seconds=0
        )
        repo = build_definitions(settings).get_repository_def()
        instance = stack.enter_context(dg.instance_for_test())
        full, data = _tick(repo, None, instance)
        assert len(data.run_requests) == days, len(data.run_requests)
        cursor = data.cursor
        incremental, opened = [], []
        past = time.time() - 60
        for r in range(repeat):
            for k, d in enumerate((3 + r, 3 + r, 100 + r)):
                day = FIRST_DAY + dt.timedelta(days=d)
                directory = landing / "orders" / f"date={day.isoformat()}"
                path = directory / f"new-{r}-{k}.jsonl"
                path.write_text('{"order_id": "n"}\n')
                os.utime(path, (past, past))
                os.utime(directory, (past, past))
            scan = scan_daily(
                "orders", str(landing / "orders"), load_cursor(cursor), settle_seconds=0
            )
            opened.append(scan.directories_listed)
            seconds, data = _tick(repo, cursor, instance)
            assert len(data.run_requests) == 2, data.run_requests
            cursor = data.cursor
            incremental.append(seconds)
        return {
            "full": full,
            "incremental": statistics.median(incremental),
            "opened": statistics.median(opened),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--days", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for files in args.files:
        r = measure(files, args.days, args.repeat)
        results[files] = r
        print(f"files_{files}_first_tick_seconds: {r['full']:.3f}")
        print(f"files_{files}_tick_with_3_new_files_seconds: {r['incremental']:.4f}")
        print(f"files_{files}_date_directories_opened: {r['opened']:.0f} of {args.days}")
    small, large = min(results), max(results)
    ratio = results[large]["incremental"] / results[small]["incremental"]
    print(f"incremental_tick_ratio_{large}_vs_{small}: {ratio:.2f}")


if __name__ == "__main__":
    main()
