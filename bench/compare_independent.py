"""The baselines do the same work as FoodOps: their tables, row for row, on a small day.

    .venv/bin/python bench/compare_independent.py [--orders 4000] [--no-sdp] [--keep]

Generates one day (``foodops generate``: bad lines of every kind, exact duplicates, fields
outside the contract), runs FoodOps' orders path (``dagster asset materialize``), the
independent script (``bench/independent_bare.py``) and, unless ``--no-sdp``, the Spark
Declarative Pipeline (``bench/sdp/``), then compares every table of the path with FoodOps':
the restaurants and dishes snapshots, orders bronze (by source_file/source_line), silver,
the dead letters (by source_file/source_line, with their failed_rules and raw record) and
both gold tables. Exits non-zero printing the differing rows when they differ. Run by
``bench/run_all.py`` (``make bench``) before the timed runs, not by ``make test``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from orders_path import foodops_orders_path, generate, independent_command, sdp_orders_path, timed

DAY = dt.date(2025, 6, 15)
LINE = ("source_file", "source_line")
# table -> (path under the lake root, key columns)
TABLES = {
    "restaurants": ("bronze/restaurants", LINE),
    "dishes": ("bronze/dishes", LINE),
    "orders_raw": ("bronze/orders_raw", LINE),
    "orders_valid": ("silver/orders_valid", LINE),
    "dead_letter_queue": ("silver/dead_letter_queue", LINE),
    "restaurant_daily_sales": ("gold/restaurant_daily_sales", ("partition_date", "restaurant_id")),
    "city_hourly_demand": ("gold/city_hourly_demand", ("partition_date", "city", "hour_start")),
}
# the parse error's wording is each implementation's own: whether a line has one must agree
PRESENCE_ONLY = {"_parse_error", "parse_error"}
# rule names are a set: the order they are listed in carries no meaning
AS_SET = {"failed_rules"}
SHOWN = 10  # differing rows shown per table


def _normal(column: str, value):
    if isinstance(value, dt.datetime):
        # Parquet from Spark (SDP) stores timestamps without a zone; they are UTC here
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if column in PRESENCE_ONLY:
        return value is not None
    if isinstance(value, list):
        return tuple(sorted(value)) if column in AS_SET else tuple(value)
    return value


def _rows(table: pa.Table, key: Iterable[str]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for row in table.to_pylist():
        row = {c: _normal(c, v) for c, v in row.items()}
        k = tuple(row[c] for c in key)
        if k in out:
            raise SystemExit(f"two rows with the key {dict(zip(key, k, strict=True))}")
        out[k] = row
    return out


def diff_table(name: str, ours: pa.Table, theirs: pa.Table, key: Iterable[str]) -> list[str]:
    """Lines describing how theirs differs from ours (empty when the same rows)."""
    key = tuple(key)
    problems: list[str] = []
    if set(ours.column_names) != set(theirs.column_names):
        problems.append(
            f"{name}: columns differ: only FoodOps {sorted(set(ours.column_names) - set(theirs.column_names))}, "
            f"only the other {sorted(set(theirs.column_names) - set(ours.column_names))}"
        )
        return problems
    a, b = _rows(ours, key), _rows(theirs, key)
    for k in sorted(set(a) - set(b), key=str)[:SHOWN]:
        problems.append(f"{name}: only in FoodOps: {a[k]}")
    for k in sorted(set(b) - set(a), key=str)[:SHOWN]:
        problems.append(f"{name}: only in the other: {b[k]}")
    differing = [k for k in sorted(set(a) & set(b), key=str) if a[k] != b[k]]
    for k in differing[:SHOWN]:
        cols = {c: (a[k][c], b[k][c]) for c in a[k] if a[k][c] != b[k][c]}
        problems.append(f"{name}: {dict(zip(key, k, strict=True))}: (FoodOps, other) {cols}")
    counts = (len(set(a) - set(b)), len(set(b) - set(a)), len(differing))
    if any(counts):
        problems.append(
            f"{name}: {counts[0]} rows only in FoodOps, {counts[1]} only in the other, "
            f"{counts[2]} differing (of {len(a)})"
        )
    return problems


def delta_reader(lake: Path) -> Callable[[str], pa.Table]:
    return lambda path: DeltaTable(str(lake / path)).to_pyarrow_table()


def warehouse_reader(warehouse: Path) -> Callable[[str], pa.Table]:
    """SDP's materialized views: Parquet tables named after the table (no layer folder)."""
    return lambda path: pq.read_table(warehouse / path.rsplit("/", 1)[-1])


def compare(ours: Callable[[str], pa.Table], theirs: Callable[[str], pa.Table]) -> list[str]:
    problems: list[str] = []
    for name, (path, key) in TABLES.items():
        problems += diff_table(name, ours(path), theirs(path), key)
    return problems


def run(root: Path, log: Path, orders: int = 4000, sdp: bool = True) -> dict[str, int]:
    """Generate a day under root, run the implementations, compare; SystemExit on a
    difference. Returns the rows compared per table."""
    landing = root / "landing"
    # 5 % bad lines and 2.5 % duplicates: every kind of bad order, several times
    generate(landing, DAY, 1, orders, log, bad_rate=0.05)
    foodops_orders_path(root / "foodops", landing, DAY, log)
    timed(independent_command(landing, root / "independent" / "lake", DAY), dict(os.environ), log)
    ours = delta_reader(root / "foodops" / "lake")
    others = {"bench/independent_bare.py": delta_reader(root / "independent" / "lake")}
    if sdp:
        sdp_orders_path(root / "sdp", landing, DAY, log)
        others["Spark Declarative Pipelines (bench/sdp)"] = warehouse_reader(
            root / "sdp" / "spark-warehouse"
        )
    report = []
    for label, theirs in others.items():
        problems = compare(ours, theirs)
        if problems:
            report.append(f"{label} differs from FoodOps:\n  " + "\n  ".join(problems))
    if report:
        raise SystemExit("\n".join(report) + f"\n(work dir {root}, log {log})")
    return {name: ours(path).num_rows for name, (path, _) in TABLES.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--no-sdp", action="store_true", help="compare the script only")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="foodops-compare-"))
    log = root / "compare.log"
    print(f"# work dir {root} (log: {log})", flush=True)
    ok = False
    try:
        rows = run(root, log, args.orders, sdp=not args.no_sdp)
        ok = True
        print("same rows: " + ", ".join(f"{name} {n}" for name, n in rows.items()))
    finally:
        if not args.keep and ok:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
