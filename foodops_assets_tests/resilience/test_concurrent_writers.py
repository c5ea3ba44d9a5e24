"""Concurrency, with real processes on one real Delta table (delta-rs' optimistic commits).

- two writers on the SAME partition never leave it mixed: one wins cleanly; the other
  either fails with a clear error (nothing of it committed) or commits after it, whole;
- writers on DIFFERENT partitions (a backfill beside the daily run; two sources' rows of
  the shared dead-letter queue) both commit and corrupt nothing;
- lake maintenance committing while a writer is in the middle of its write never makes
  the writer fail.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import time

from deltalake import write_deltalake

from foodops_assets.lakehouse.delta import DeltaStore
from foodops_assets.lakehouse.maintenance import Plan, maintain
from foodops_assets.lakehouse.writers import arrow
from foodops_assets_tests.resilience.writers import (
    DLQ_LIKE,
    RACE,
    ROWS,
    rows,
    write_at,
    write_held,
)

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


def test_lake_maintenance_committing_under_a_held_writer_never_fails_it(tmp_path):
    """A writer process held in the middle of its Delta write of D2 (``hang_write``) while
    lake maintenance, in this process, commits to the same table: the window properties, a
    purge of D1 (past its retention here) and a compaction of D2's small files. Released,
    the writer's commit loses to those commits (delta-rs: metadata changed, new data in its
    partition); none of them changed its partition's data, so it writes the partition again
    and succeeds, and D2 holds exactly its rows."""
    root = str(tmp_path / "lake")
    store = DeltaStore(root)
    for day in (D1, D2):
        arrow.Writer(store).write_partitions(rows("before", day), RACE, {"partition_date": [day]})
    for k in range(2):  # late files: something to compact
        write_deltalake(store.uri(RACE), rows(f"late{k}", D2, n=10), mode="append")
    marker, release = tmp_path / "held", tmp_path / "release"
    env = {
        "FOODOPS_FAULTS": f"hang_write:{RACE.name}",
        "FOODOPS_FAULT_MARKER": str(marker),
        "FOODOPS_FAULT_RELEASE": str(release),
    }
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    where = {"partition_date": [D2]}
    proc = ctx.Process(target=write_held, args=(root, RACE, "held", where, env, results))
    proc.start()
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.is_alive() and time.time() < deadline, "the writer never got going"
            time.sleep(0.1)
        window = 31 * 24  # longer than Delta's default log retention: a properties commit
        report = maintain(
            store, RACE, Plan(window_hours=window, retention_hours=window, drop_before={None: D2})
        )
        assert report.properties_set and report.compacted_files == 3
        assert [p.partitions for p in report.purges] == [[str(D1)]] and not report.lost_races
        maintained = store.version(RACE)
    finally:
        release.touch()
    writer, status, message = results.get(timeout=120)
    proc.join(timeout=60)

    assert (writer, status, message) == ("held", "ok", "")
    assert _by_partition(store, RACE) == {(D2,): {"held": ROWS}}
    [last] = store.history(RACE, 1)
    assert last["operation"] == "WRITE" and last["version"] == maintained + 1
