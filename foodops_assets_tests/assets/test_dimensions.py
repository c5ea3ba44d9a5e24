"""restaurants_history for real: landed snapshots, a real Dagster run, a real Delta table.

The fold's every arrival order is covered on small frames in transforms/test_history.py;
here the asset applies landed files: one commit per snapshot, a late snapshot equal to
the in-order history, a second run that changes nothing, duplicate keys in the DLQ, the
empty-snapshot circuit breaker, and gold joining the version valid at the order's time.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from foodops_assets.checks import names
from foodops_assets.lakehouse.tables import (
    DEAD_LETTER_QUEUE,
    RESTAURANT_DAILY_SALES,
    RESTAURANTS_HISTORY,
)
from foodops_assets.lakehouse.tables import RESTAURANTS as RESTAURANTS_TABLE
from foodops_assets_tests.conftest import Lake, materialize
from foodops_assets_tests.factories import DISHES, RESTAURANTS, line, order

HISTORY = [RESTAURANTS_HISTORY.name]
SPICE, DOSA = RESTAURANTS


def renamed(record: dict, **changes) -> dict:
    return {**record, **changes}


def _meta(result: dg.ExecuteInProcessResult, asset: str = RESTAURANTS_HISTORY.name) -> dict:
    m = result.asset_materializations_for_node(asset)[-1]
    return {k: getattr(v, "value", v) for k, v in m.metadata.items()}


def _versions(lake: Lake) -> list[tuple]:
    rows = lake.store.to_arrow(RESTAURANTS_HISTORY).to_pylist()
    return sorted(
        (
            r["restaurant_id"],
            r["name"],
            r["valid_from"].date().day,
            r["valid_to"].date().day if r["valid_to"] else None,
            r["is_current"],
            r["is_deleted"],
            r["source_file"],
        )
        for r in rows
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_history_applies_each_snapshot_once_and_a_late_one_as_if_in_order(tmp_path, spark_resource):
    s1 = [SPICE, DOSA]
    s2 = [renamed(SPICE, cuisine="Mughlai"), DOSA]  # lands late
    s3 = [renamed(SPICE, name="Spice Hub")]  # Dosa Corner gone
    late = Lake.under(tmp_path)
    late.land("restaurants", None, "snapshot-20261101.jsonl", s1)
    late.land("restaurants", None, "snapshot-20261103.jsonl", s3)
    first = materialize(late, spark_resource, HISTORY)
    meta = _meta(first)
    assert (meta["snapshots_applied"], meta["versions_opened"], meta["versions_closed"]) == (
        2,
        3,
        2,
    )
    assert meta["keys_deleted"] == 1 and meta["conservation_holds"] is True
    assert all(_checks(first).values()) and len(_checks(first)) == 4
    # one Delta commit per applied snapshot
    assert late.store.version(RESTAURANTS_HISTORY) == 1

    late.land("restaurants", None, "snapshot-20261102.jsonl", s2)
    second = materialize(late, spark_resource, HISTORY)
    assert _meta(second)["late_snapshots"] == 1
    # only r-1 changes at the late snapshot's time: r-2's row is confirmed, not rewritten
    assert (_meta(second)["versions_opened"], _meta(second)["rows_unchanged"]) == (1, 1)
    assert late.store.version(RESTAURANTS_HISTORY) == 2

    # the in-order history (every arrival order gives it: transforms/test_history.py)
    assert [v[:6] for v in _versions(late)] == [
        ("r-1", "Spice Hub", 3, None, True, False),
        ("r-1", "Spice Kitchen", 1, 2, False, False),
        ("r-1", "Spice Kitchen", 2, 3, False, False),  # the late snapshot's cuisine
        ("r-2", "Dosa Corner", 1, 3, False, True),  # closed as deleted, not lost
    ]

    # the same snapshots again: nothing applied, no new version, no new commit
    again = materialize(late, spark_resource, HISTORY)
    assert _meta(again)["snapshots_applied"] == 0
    assert late.store.version(RESTAURANTS_HISTORY) == 2
    assert _meta(again)["dagster/row_count"] == 4


def test_duplicate_keys_go_to_the_dlq_and_an_empty_snapshot_needs_the_operator(
    lake, spark_resource
):
    duplicate = renamed(DOSA, name="Dosa Plaza")
    lake.land(
        "restaurants",
        None,
        "snapshot-20261101.jsonl",
        [line(SPICE), line(DOSA), line(duplicate), '{"restaurant_id": "r-9", "name": '],
    )
    result = materialize(lake, spark_resource, HISTORY)
    meta = _meta(result)
    # 4 rows: 1 new version + 3 in the DLQ (both r-2 rows, the unparseable line)
    assert (meta["snapshot_rows"], meta["versions_opened"], meta["dlq_rows"]) == (4, 1, 3)
    assert meta["conservation_holds"] is True
    dlq = lake.store.to_arrow(DEAD_LETTER_QUEUE).to_pylist()
    assert {r["source"] for r in dlq} == {"restaurants"}
    by_line = {r["source_line"]: r["failed_rules"] for r in dlq}
    assert by_line[2] == by_line[3] == ["unique_key_in_snapshot"]
    assert by_line[4][0] == "parseable_record"
    assert [v[:2] for v in _versions(lake)] == [("r-1", "Spice Kitchen")]

    # r-2 lands cleanly later: its first version opens then
    lake.land("restaurants", None, "snapshot-20261102.jsonl", [SPICE, DOSA])
    assert _meta(materialize(lake, spark_resource, HISTORY))["versions_opened"] == 1

    # an empty snapshot would close every restaurant: refused, nothing written
    lake.land("restaurants", None, "snapshot-20261103.jsonl", [])
    version = lake.store.version(RESTAURANTS_HISTORY)
    refused = materialize(lake, spark_resource, HISTORY, raise_on_error=False)
    assert not refused.success
    assert _checks(refused)[names.SNAPSHOT_NOT_EMPTY] is False
    [failure] = refused.get_step_failure_events()
    assert "confirm_empty_snapshots" in failure.step_failure_data.error.message
    assert lake.store.version(RESTAURANTS_HISTORY) == version

    # the operator confirms it by name: every key is closed as deleted
    confirmed = materialize(
        lake,
        spark_resource,
        HISTORY,
        run_config={
            "ops": {
                RESTAURANTS_HISTORY.name: {
                    "config": {"confirm_empty_snapshots": ["snapshot-20261103.jsonl"]}
                }
            }
        },
    )
    assert _meta(confirmed)["keys_deleted"] == 2
    assert [v[4:6] for v in _versions(lake)] == [(False, True), (False, True)]


def test_gold_names_each_day_as_it_was_then(lake, spark_resource, spark):
    """Rename a restaurant on day 3, backfill days 1-4: days 1-2 keep the old name."""
    days = [dt.date(2026, 11, d) for d in (1, 2, 3, 4)]
    lake.land("restaurants", None, "snapshot-20261101.jsonl", [SPICE, DOSA])
    lake.land(
        "restaurants", None, "snapshot-20261103.jsonl", [renamed(SPICE, name="Spice Hub"), DOSA]
    )
    lake.land("dishes", None, "snapshot-20261101.jsonl", DISHES)
    for d in days:
        lake.land("orders", d, "batch-0001.jsonl", [line(order(n, day=d)) for n in (1, 2)])
    assert materialize(
        lake, spark_resource, ["restaurants", "dishes", RESTAURANTS_HISTORY.name]
    ).success
    result = materialize(
        lake,
        spark_resource,
        ["orders_raw", "orders_valid", RESTAURANT_DAILY_SALES.name],
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
    )
    assert result.success
    names_by_day = {
        r.partition_date.day: r.restaurant_name
        for r in lake.read(spark, RESTAURANT_DAILY_SALES).collect()
    }
    assert names_by_day == {1: "Spice Kitchen", 2: "Spice Kitchen", 3: "Spice Hub", 4: "Spice Hub"}
    # the current-snapshot table still says "now"
    assert {r.name for r in lake.read(spark, RESTAURANTS_TABLE).collect()} == {
        "Spice Hub",
        "Dosa Corner",
    }
    lineage = _meta(result, RESTAURANT_DAILY_SALES.name)["dagster/column_lineage"]
    assert {d.asset_key.to_user_string() for d in lineage.deps_by_column["restaurant_name"]} == {
        "restaurants_history",
        "orders_valid",
    }
