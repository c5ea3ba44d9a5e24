"""What the load-time contract-change check costs: every process that loads the code location
(webserver, daemon, each run) compares the five contracts with their existing Delta tables.

    .venv/bin/python bench/contract_check_load.py [--commits N] [--repeat R]

Builds a lake whose eight contract-shaped tables (bronze of five sources, silver of three)
each have N commits (one daily partition each, written with delta-rs and the commit info the
assets record), then times ``build_definitions`` over an empty lake (the baseline: no table
to compare with) and over that lake, and the check alone. Prints medians and the ratio,
measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foodops_assets.checks.contract_changes import (  # noqa: E402
    COMMIT_PRIMARY_KEY,
    check_contract_changes,
    contract_tables,
)
from foodops_assets.contracts import contract_files, load_contract  # noqa: E402
from foodops_assets.definitions import build_definitions  # noqa: E402
from foodops_assets.lakehouse.delta import DeltaStore  # noqa: E402
from foodops_assets.lakehouse.writers import writer  # noqa: E402
from foodops_assets.settings import Settings  # noqa: E402


def _lake(root: Path, commits: int) -> None:
    store = DeltaStore(str(root))
    start = dt.date(2025, 1, 1)
    arrow = writer("arrow", store)
    for name in contract_files():
        contract = load_contract(name)
        meta = {COMMIT_PRIMARY_KEY: ",".join(contract.primary_key)}
        for table, schema in contract_tables(contract):
            for i in range(commits if table.is_partitioned else 1):
                day = start + dt.timedelta(days=i)
                row = pa.table(
                    {
                        f.name: pa.array([day], f.type)
                        if f.name == "partition_date"
                        else pa.nulls(1, f.type)
                        for f in schema
                    }
                )
                if table.is_partitioned:
                    arrow.write_partitions(
                        row, table, {"partition_date": [day]}, commit_metadata=meta
                    )
                else:
                    arrow.write_table(row, table, commit_metadata=meta)


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="foodops-contract-check-") as tmp:
        empty, full = Path(tmp) / "empty", Path(tmp) / "lake"
        _lake(full, args.commits)
        contracts = {n: load_contract(n) for n in contract_files()}
        base = _median(lambda: build_definitions(Settings(lake_root=str(empty))), args.repeat)
        loaded = _median(lambda: build_definitions(Settings(lake_root=str(full))), args.repeat)
        check = _median(lambda: check_contract_changes(contracts, str(full)), args.repeat)
    print(f"tables: 8, commits per daily table: {args.commits}, repeat: {args.repeat}")
    print(f"build_definitions, empty lake (baseline): {base:.3f} s")
    print(f"build_definitions, lake with tables:      {loaded:.3f} s  (ratio {loaded / base:.2f})")
    print(
        f"check_contract_changes alone:             {check:.3f} s  ({check / base:.2f} of baseline)"
    )


if __name__ == "__main__":
    main()
