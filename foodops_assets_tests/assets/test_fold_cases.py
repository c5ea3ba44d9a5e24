"""Folds of files and runs nobody designed for: each folds or rebuilds the day, says which,
and the day ends as a full rebuild of the same landing zone (see test_fold.py)."""

from __future__ import annotations

import os

import dagster as dg

from foodops_assets.assets.fold import FOLD, FULL
from foodops_assets.lakehouse.tables import ORDERS_VALID
from foodops_assets_tests.assets.test_fold import (
    DAY,
    FOLDED,
    _clock,
    _content,
    _land,
    _materialize,
    _mode,
    _rebuilt_content,
    _text,
)
from foodops_assets_tests.conftest import Lake, materialize
from foodops_assets_tests.factories import land_reference, line, order


def test_after_a_run_killed_between_bronze_and_silver_the_next_file_rebuilds_the_day(
    lake, spark_resource, spark
):
    land_reference(lake)
    with dg.instance_for_test() as instance:
        materialize(lake, spark_resource, ["restaurants", "dishes"], instance=instance)
        _land(lake, "batch-a.jsonl", [(n, "valid", 0) for n in range(1, 5)])
        first = _materialize(lake, spark_resource, instance, FOLDED)
        assert _mode(first, "orders_valid") == FULL  # nothing to fold into yet
        # batch-b is folded into bronze, and the run dies before silver
        _land(lake, "batch-b.jsonl", [(n, "valid", 1) for n in range(3, 7)])
        killed = materialize(
            lake,
            spark_resource,
            ["orders_raw"],
            partition_key=DAY.isoformat(),
            instance=instance,
            tags=FOLDED,
        )
        assert _mode(killed, "orders_raw") == FOLD
        _land(lake, "batch-c.jsonl", [(7, "valid", 0), (1, "rule", 0)])
        result = _materialize(lake, spark_resource, instance, FOLDED)
        assert _mode(result, "orders_raw") == FOLD
        # silver never saw batch-b: folding batch-c alone would lose it
        assert _mode(result, "orders_valid") == FULL
        [silver] = [
            e
            for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey("orders_valid")
        ]
        reason = silver.materialization.metadata["ingest_reason"].value
        assert "changed since orders_valid read it" in reason

    assert _content(spark, lake) == _rebuilt_content(lake, spark_resource, spark)
    silver = {r["order_id"]: r["quantity"] for r in lake.read(spark, ORDERS_VALID).collect()}
    assert silver == {"o-1": 1, "o-2": 1, "o-3": 2, "o-4": 2, "o-5": 2, "o-6": 2, "o-7": 1}


def _land_bytes(lake: Lake, name: str, data: bytes) -> None:
    path = lake.landing / "orders" / f"date={DAY.isoformat()}" / name
    path.write_bytes(data)
    stamp = (1_700_000_000 + next(_clock)) * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_files_nobody_designed_for_fold_or_rebuild_to_the_same_day(lake, spark_resource, spark):
    """A zero-byte file, a file name and business keys that cannot go into a Delta predicate
    safely (a quote), keys outside ASCII, a file of bad lines only whose keys collide with
    silver's, binary garbage: each either folds or rebuilds the day, says which, and the
    day ends as a full rebuild of the same landing zone."""
    land_reference(lake)
    with dg.instance_for_test() as instance:
        materialize(lake, spark_resource, ["restaurants", "dishes"], instance=instance)
        _land(lake, "batch-a.jsonl", [(n, "valid", 0) for n in range(1, 5)])
        _materialize(lake, spark_resource, instance)

        def fold(name: str, data: bytes) -> tuple[str, str]:
            _land_bytes(lake, name, data)
            result = _materialize(lake, spark_resource, instance, FOLDED)
            return _mode(result, "orders_raw"), _mode(result, "orders_valid")

        def text(*lines: str) -> bytes:
            return "".join(f"{x}\n" for x in lines).encode()

        assert fold("batch-b.jsonl", b"") == (FOLD, FOLD)
        # a quote in the file name: no predicate names the file safely, so the day is rebuilt
        assert fold("batch-c'x.jsonl", text(_text(5, "valid", 1), _text(1, "valid", 2))) == (
            FULL,
            FULL,
        )
        assert fold(
            "batch-d.jsonl",
            text(_text(2, "rule", 0), _text(3, "broken", 0), _text(2, "missing", 0)),
        ) == (FOLD, FOLD)
        quoted = line(order(7, day=DAY, order_id="o-'7"))
        accented = line(order(8, day=DAY, order_id="o-\u00fc8"))
        # bronze folds the file; a key with a quote cannot be named, so silver rebuilds
        assert fold("batch-e.jsonl", text(quoted, accented)) == (FOLD, FULL)
        assert fold("batch-f.jsonl", b"\x00\x01\xff{garbage\n\x00\n") == (FOLD, FOLD)
        assert fold("batch-g.jsonl", text(accented, _text(4, "valid", 3))) == (FOLD, FOLD)

    assert _content(spark, lake) == _rebuilt_content(lake, spark_resource, spark)
    silver = {r["order_id"]: r["quantity"] for r in lake.read(spark, ORDERS_VALID).collect()}
    assert silver == {
        "o-1": 3,
        "o-2": 1,
        "o-3": 1,
        "o-4": 4,
        "o-5": 2,
        "o-'7": 2,
        "o-\u00fc8": 2,
    }
