"""What lake maintenance buys: files, bytes and read time before and after, as ratios.

    .venv/bin/python bench/maintenance.py [--rows-per-day 20000] [--days 30] [--files-per-day 8]
                                          [--reruns 30] [--repeat 5] [--keep]

Two silver-orders-like tables (the columns of orders_valid, generated rows), written
through the project's own DeltaStore and maintained by ``lakehouse/maintenance.py`` with
the default seven-day window:

1. **re-runs**: one partition written ``--reruns`` times (predicate overwrites, as a
   re-run, a late file or a backfill does), one re-run a day over the last month (the
   commits dated like that: ``foodops_assets_tests/delta_clock.py``). Figures: files and
   bytes on storage, JSON commits replayed to open the table, time to open it and read
   the partition — before and after maintenance.
2. **a 30-day window** of ``--days`` partitions, each written as ``--files-per-day`` files
   (the ``spark_files`` writer's one file per task, or late files folded in): files a
   reader opens and time to read the whole window (what gold and the ML features read)
   before and after compaction; then what is on storage right after and a week later.
3. **Z-order**: the compacted window Z-ordered on ``city`` (a column a dashboard might
   filter by; no FoodOps reader does, they all select partitions): its cost, and a
   ``city = ...`` read of the window against the compacted table.

Reads are timed on a copy of the table as it was before maintenance and on the table
after, alternated ``--repeat`` times (medians), so a busy machine slows both alike.
Prints ``name: value`` lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from foodops_assets.lakehouse import maintenance as m
from foodops_assets.lakehouse.delta import DeltaStore
from foodops_assets.lakehouse.tables import TableRef
from foodops_assets.lakehouse.writers import arrow

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' Delta clock dates the commits
from foodops_assets_tests.delta_clock import date_commits, days_ago  # noqa: E402

WEEK_HOURS = 7 * 24
CITIES = ["Pune", "Mumbai", "Delhi", "Bengaluru", "Chennai", "Hyderabad", "Kolkata", "Jaipur"]
TODAY = dt.datetime.now(dt.UTC).date()


def orders(day: dt.date, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    seconds = np.sort(rng.integers(0, 86_400, n))
    return pa.table(
        {
            "order_id": [f"o-{day:%Y%m%d}-{seed}-{i}" for i in range(n)],
            "user_id": [f"u-{u}" for u in rng.integers(0, n, n)],
            "restaurant_id": [f"r-{r}" for r in rng.integers(0, 400, n)],
            "dish_id": [f"d-{d}" for d in rng.integers(0, 4000, n)],
            "quantity": pa.array(rng.integers(1, 5, n), pa.int32()),
            "price": pa.array(
                [Decimal(int(p)) / 100 for p in rng.integers(5_000, 90_000, n)],
                pa.decimal128(10, 2),
            ),
            "order_time": pa.array(
                [start + dt.timedelta(seconds=int(s)) for s in seconds], pa.timestamp("us", "UTC")
            ),
            "city": pa.array(rng.choice(CITIES, n)),
            "payment_method": pa.array(rng.choice(["upi", "card", "cash", "wallet"], n)),
            "status": pa.array(rng.choice(["placed", "cancelled"], n, p=[0.93, 0.07])),
            "source_file": [f"orders/date={day}/batch-{seed % 8:04d}.jsonl"] * n,
            "source_line": pa.array(np.arange(1, n + 1), pa.int64()),
            "partition_date": pa.array([day] * n, pa.date32()),
        }
    )


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def alternate(before, after, repeat: int) -> tuple[float, float]:
    """Median seconds of two reads, alternated (a loaded machine slows both alike)."""
    b, a = [], []
    for _ in range(repeat):
        b.append(median_seconds(before, 1))
        a.append(median_seconds(after, 1))
    return statistics.median(b), statistics.median(a)


def json_commits(uri: str) -> int:
    """JSON commits a reader replays to open the table (those after the last checkpoint)."""
    dt_ = DeltaTable(uri)
    log = Path(uri, "_delta_log")
    checkpoints = [int(p.name.split(".")[0]) for p in log.glob("*.checkpoint.parquet")]
    since = max(checkpoints, default=-1)
    return sum(1 for v in range(since + 1, dt_.version() + 1) if (log / f"{v:020d}.json").exists())


def reruns(root: Path, args) -> None:
    table = TableRef("silver", "reruns", ("partition_date",))
    store = DeltaStore(str(root))
    day = TODAY - dt.timedelta(days=args.reruns + 1)
    for k in range(args.reruns):  # one re-run a day, the last one yesterday
        arrow.Writer(store).write_partitions(
            orders(day, args.rows_per_day, k), table, {"partition_date": [day]}
        )
    uri = store.uri(table)
    date_commits(uri, {v: days_ago(args.reruns - v) for v in range(args.reruns)})
    before_copy = root / "reruns_before"
    shutil.copytree(uri, before_copy)
    before = m.footprint(store, table)
    commits_before = json_commits(uri)

    report = m.maintain(store, table, m.Plan(WEEK_HOURS, WEEK_HOURS))

    def read(path):
        return lambda: DeltaTable(str(path)).to_pyarrow_table(
            filters=[("partition_date", "=", day)]
        )

    t_before, t_after = alternate(read(before_copy), read(uri), args.repeat)
    after = report.after
    print(f"reruns_partition_rewrites: {args.reruns}")
    print(f"reruns_files_on_storage_before: {before.stored_files}")
    print(f"reruns_files_on_storage_after: {after.stored_files}")
    print(f"reruns_bytes_on_storage_before: {before.stored_bytes}")
    print(f"reruns_bytes_on_storage_after: {after.stored_bytes}")
    print(f"reruns_bytes_ratio_after_over_before: {after.stored_bytes / before.stored_bytes:.3f}")
    print(f"reruns_files_read_before_after: {before.files} / {after.files}")
    print(f"reruns_versions_kept: {report.versions_kept} (of {report.version_after + 1})")
    print(f"reruns_json_commits_replayed_before_after: {commits_before} / {json_commits(uri)}")
    print(f"reruns_read_seconds_before: {t_before:.4f}")
    print(f"reruns_read_seconds_after: {t_after:.4f}")
    print(f"reruns_read_ratio_after_over_before: {t_after / t_before:.3f}")
    print(f"reruns_maintenance_seconds: {report.duration_seconds:.2f}")


def window(root: Path, args) -> None:
    table = TableRef("silver", "window", ("partition_date",))
    store = DeltaStore(str(root))
    uri = store.uri(table)
    days = [TODAY - dt.timedelta(days=d) for d in range(args.days, 0, -1)]
    per_file = args.rows_per_day // args.files_per_day
    seed = 0
    for day in days:
        arrow.Writer(store).write_partitions(
            orders(day, per_file, seed), table, {"partition_date": [day]}
        )
        for _ in range(args.files_per_day - 1):
            seed += 1
            write_deltalake(uri, orders(day, per_file, seed), mode="append")
    before_copy = root / "window_before"
    shutil.copytree(uri, before_copy)
    before = m.footprint(store, table)

    report = m.maintain(store, table, m.Plan(WEEK_HOURS, WEEK_HOURS))

    def read(path, **kw):
        return lambda: DeltaTable(str(path)).to_pyarrow_table(**kw)

    t_before, t_after = alternate(read(before_copy), read(uri), args.repeat)
    after = report.after
    print(f"window_days: {args.days}")
    print(f"window_files_read_before: {before.files}")
    print(f"window_files_read_after: {after.files}")
    print(f"window_files_ratio_after_over_before: {after.files / before.files:.3f}")
    print(f"window_bytes_read_before: {before.bytes}")
    print(f"window_bytes_read_after: {after.bytes}")
    print(f"window_bytes_ratio_after_over_before: {after.bytes / before.bytes:.3f}")
    print(f"window_read_seconds_before: {t_before:.4f}")
    print(f"window_read_seconds_after: {t_after:.4f}")
    print(f"window_read_ratio_after_over_before: {t_after / t_before:.3f}")
    print(f"window_maintenance_seconds: {report.duration_seconds:.2f}")
    print(
        f"window_bytes_on_storage_before_right_after: {before.stored_bytes} / "
        f"{after.stored_bytes} (the compacted small files stay for the rollback window)"
    )

    # Z-order on city, against the compacted table, for a city filter over the window
    zordered = root / "window_zorder"
    shutil.copytree(uri, zordered)
    start = time.perf_counter()
    DeltaTable(str(zordered)).optimize.z_order(["city"])
    z_seconds = time.perf_counter() - start
    by_city = [("city", "=", "Pune")]
    t_compact, t_z = alternate(
        read(uri, filters=by_city), read(zordered, filters=by_city), args.repeat
    )
    print(
        f"zorder_city_seconds: {z_seconds:.2f} (compaction of the same window: {report.seconds['compact']:.2f})"
    )
    print(f"zorder_city_filter_read_seconds_compacted: {t_compact:.4f}")
    print(f"zorder_city_filter_read_seconds_zordered: {t_z:.4f}")
    print(f"zorder_city_filter_read_ratio: {t_z / t_compact:.3f}")
    z_bytes = sum(DeltaTable(str(zordered)).get_add_actions(flatten=True)["size_bytes"].to_pylist())
    print(f"zorder_bytes_ratio_to_compacted: {z_bytes / after.bytes:.3f}")
    t_plain_c, t_plain_z = alternate(read(uri), read(zordered), args.repeat)
    print(f"zorder_window_read_ratio: {t_plain_z / t_plain_c:.3f} (no filter, as FoodOps reads)")

    # a week and a day later: the small files' removals are older than the window
    date_commits(uri, {v: days_ago(8) for v in range(store.version(table) + 1)})
    later = m.maintain(store, table, m.Plan(WEEK_HOURS, WEEK_HOURS))
    print(
        f"window_bytes_on_storage_a_week_later: {later.after.stored_bytes} "
        f"(ratio to before: {later.after.stored_bytes / before.stored_bytes:.3f}; "
        f"{later.vacuumed_files} files vacuumed)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--files-per-day", type=int, default=8)
    parser.add_argument("--reruns", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="foodops-maintenance-bench-"))
    try:
        reruns(root, args)
        window(root, args)
    finally:
        if args.keep:
            print(f"work dir: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
