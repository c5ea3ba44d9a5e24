"""Concurrency, with real processes on one real Delta table (delta-rs' optimistic commits).

- two writers on the SAME partition never leave it mixed: one wins cleanly; the other
  either fails with a clear error (nothing of it committed) or commits after it, whole;
- writers on DIFFERENT partitions (a backfill beside the daily run; two sources' rows of
  the shared dead-letter queue) both commit and corrupt nothing.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import time

from foodops_assets.lakehouse.delta import DeltaStore
from foodops_assets.lakehouse.writers import arrow
from foodops_assets_tests.resilience.writers import DLQ_LIKE, RACE, ROWS, rows, write_at

D1, D2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)


def _race(lake_root, table, jobs):
    """Start one process per (writer, where) and let them write at the same instant."""
    ctx = mp.get_context("spawn")  # no fork of a process that may hold a JVM
    results = ctx.Queue()
    start = time.time() + 3  # every process imported and ready by then
    procs = [
        ctx.Process(target=write_at, args=(lake_root, table, w, where, start, results))
        for w, where in jobs
    ]
    for p in procs:
        p.start()
    outcomes = {}
    for _ in procs:
        writer, status, message = results.get(timeout=120)
        outcomes[writer] = (status, message)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


def _by_partition(store, table, cols=("partition_date",)):
    data = store.to_arrow(table)
    groups = data.group_by([*cols, "writer"]).aggregate([([], "count_all")]).to_pylist()
    out: dict = {}
    for g in groups:
        out.setdefault(tuple(g[c] for c in cols), {})[g["writer"]] = g["count_all"]
    return out


def test_two_writers_on_one_partition_never_mix_it(tmp_path):
    root = str(tmp_path / "lake")
    store = DeltaStore(root)
    arrow.Writer(store).write_partitions(rows("before", D1), RACE, {"partition_date": [D1]})
    outcomes = _race(root, RACE, [("A", {"partition_date": [D1]}), ("B", {"partition_date": [D1]})])

    [(writers_in_partition)] = [_by_partition(store, RACE)[(D1,)]]
    # exactly one writer's rows, whole
    assert len(writers_in_partition) == 1, writers_in_partition
    [(winner, count)] = writers_in_partition.items()
    assert winner in ("A", "B") and count == ROWS
    loser = "B" if winner == "A" else "A"
    assert outcomes[winner][0] == "ok"
    status, message = outcomes[loser]
    if status != "ok":
        # the other failed clearly and committed nothing
        assert status == "ConcurrentWriteError"
        assert "another writer committed to race" in message
        assert "Re-run this partition" in message
    # every version of the table is readable
    for commit in store.history(RACE):
        store.to_arrow(RACE, version=commit["version"])


def test_writers_on_other_partitions_both_commit(tmp_path):
    root = str(tmp_path / "lake")
    store = DeltaStore(root)
    for day in (D1, D2):
        arrow.Writer(store).write_partitions(rows("before", day), RACE, {"partition_date": [day]})
    for source in ("orders", "reviews"):
        arrow.Writer(store).write_partitions(
            rows("before", D2, source), DLQ_LIKE, {"partition_date": [D2], "source": [source]}
        )
    # at the same instant: a backfill rewrites D1 while the daily run writes D2, and two
    # silver steps replace their own source's rows of the shared DLQ for the same day
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    start = time.time() + 3
    jobs = [
        (RACE, "backfill", {"partition_date": [D1]}),
        (RACE, "daily", {"partition_date": [D2]}),
        (DLQ_LIKE, "orders_valid", {"partition_date": [D2], "source": ["orders"]}),
        (DLQ_LIKE, "reviews_valid", {"partition_date": [D2], "source": ["reviews"]}),
    ]
    procs = [
        ctx.Process(target=write_at, args=(root, table, w, where, start, results))
        for table, w, where in jobs
    ]
    for p in procs:
        p.start()
    outcomes = {}
    for _ in procs:
        writer, status, message = results.get(timeout=120)
        outcomes[writer] = status
    for p in procs:
        p.join(timeout=60)
    assert outcomes == {w: "ok" for _, w, _ in jobs}
    assert _by_partition(store, RACE) == {(D1,): {"backfill": ROWS}, (D2,): {"daily": ROWS}}
    assert _by_partition(store, DLQ_LIKE, ("partition_date", "source")) == {
        (D2, "orders"): {"orders_valid": ROWS},
        (D2, "reviews"): {"reviews_valid": ROWS},
    }
