"""DeltaStore.rollback, the circuit breaker's undo, in each situation it can meet (delta-rs only)."""

from __future__ import annotations

import datetime as dt

from foodops_assets.lakehouse.delta import DeltaStore
from foodops_assets.lakehouse.writers import arrow
from foodops_assets_tests.resilience.writers import RACE, rows

D1, D2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)


def _writers(store):
    data = store.to_arrow(RACE)
    return {
        (g["partition_date"], g["writer"]): g["count_all"]
        for g in data.group_by(["partition_date", "writer"])
        .aggregate([([], "count_all")])
        .to_pylist()
    }


def _store(tmp_path):
    store = DeltaStore(str(tmp_path / "lake"))
    for day in (D1, D2):
        arrow.Writer(store).write_partitions(
            rows("good", day, n=5), RACE, {"partition_date": [day]}
        )
    return store


def test_nobody_committed_since_so_the_table_is_restored(tmp_path):
    store = _store(tmp_path)
    bad = arrow.Writer(store).write_partitions(rows("bad", D2, n=7), RACE, {"partition_date": [D2]})
    done = store.rollback(RACE, bad, {"partition_date": [D2]}, reason="check failed")
    assert done.restored_to == bad.previous_version and done.rolled_back_from == bad.version
    assert done.live_version == bad.version + 1 and "restored race to version" in done.action
    assert _writers(store) == {(D1, "good"): 5, (D2, "good"): 5}
    assert store.history(RACE, 1)[0]["foodops_rollback_reason"] == "check failed"


def test_others_committed_elsewhere_so_only_the_partition_is_rewritten(tmp_path):
    store = _store(tmp_path)
    bad = arrow.Writer(store).write_partitions(rows("bad", D2, n=7), RACE, {"partition_date": [D2]})
    arrow.Writer(store).write_partitions(rows("backfill", D1, n=3), RACE, {"partition_date": [D1]})
    done = store.rollback(RACE, bad, {"partition_date": [D2]}, reason="check failed")
    assert "rewrote partition_date IN ('2026-11-20')" in done.action
    # the other writer's newer partition is kept; ours is back to its good rows
    assert _writers(store) == {(D1, "backfill"): 3, (D2, "good"): 5}


def test_somebody_rewrote_the_partition_since_so_nothing_is_touched(tmp_path):
    store = _store(tmp_path)
    bad = arrow.Writer(store).write_partitions(rows("bad", D2, n=7), RACE, {"partition_date": [D2]})
    newer = arrow.Writer(store).write_partitions(
        rows("newer", D2, n=4), RACE, {"partition_date": [D2]}
    )
    done = store.rollback(RACE, bad, {"partition_date": [D2]}, reason="check failed")
    assert done.live_version == newer.version and done.restored_to is None
    assert "not rolled back" in done.action and str(newer.version) in done.action
    assert _writers(store) == {(D1, "good"): 5, (D2, "newer"): 4}
