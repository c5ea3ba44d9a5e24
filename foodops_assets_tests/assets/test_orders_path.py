"""The orders path materialised for real: landing files -> bronze -> silver + DLQ -> gold."""

import datetime as dt
import json
from decimal import Decimal

import dagster as dg
import pytest
from deltalake import DeltaTable

from foodops_assets.checks import names
from foodops_assets.lakehouse.tables import (
    CITY_HOURLY_DEMAND,
    DEAD_LETTER_QUEUE,
    ORDERS_RAW,
    ORDERS_VALID,
    RESTAURANT_DAILY_SALES,
)
from foodops_assets_tests.conftest import materialize
from foodops_assets_tests.factories import land_reference, line, order, without

D1, D2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)
ORDERS_PATH = ["orders_raw", "orders_valid", "restaurant_daily_sales", "city_hourly_demand"]


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _checks(result: dg.ExecuteInProcessResult) -> dict:
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }


def _rows(spark, lake, table, day=None):
    where = {"partition_date": [day]} if day else None
    return lake.read(spark, table, where)


def _land_day(lake, day, good=20, name="batch-0001.jsonl", extra_lines=()):
    records = [
        line(order(n, day=day, dish_id="d-2" if n % 3 == 0 else "d-1")) for n in range(1, good + 1)
    ]
    lake.land("orders", day, name, [*records, *extra_lines])


@pytest.fixture
def reference(lake, spark_resource):
    land_reference(lake)
    materialize(lake, spark_resource, ["restaurants", "dishes"])
    return lake


def test_the_orders_path_end_to_end(reference, spark_resource, spark):
    lake = reference
    bad = [
        '{"order_id": "o-bad-1", "price": ',  # malformed JSON
        line(order(101, day=D2, price=0)),
        line(order(102, day=D2, quantity=0, price=-1)),
        line(without(order(103, day=D2), "user_id")),
        line(order(104, day=D2, coupon_code="SAVE10")),  # accepted, rescued
        line(order(1, day=D2, dish_id="d-1")),  # exact duplicate of order 1
    ]
    _land_day(lake, D2, good=40, extra_lines=bad)
    lake.land("orders", D2, "batch-0002.jsonl", [line(order(2, day=D2))])  # duplicate across files

    result = materialize(lake, spark_resource, ORDERS_PATH, partition_key=D2.isoformat())
    assert result.success

    # bronze keeps every landed line
    assert _rows(spark, lake, ORDERS_RAW, D2).count() == 47
    # silver: 40 good + the one with an extra field, deduplicated
    silver = _rows(spark, lake, ORDERS_VALID, D2)
    assert silver.count() == 41
    assert silver.select("order_id").distinct().count() == 41
    # the DLQ: each rejected record once, with its rules
    dlq = {
        r.raw_record[:40]: r.failed_rules
        for r in _rows(spark, lake, DEAD_LETTER_QUEUE, D2).collect()
    }
    assert sorted(dlq.values()) == sorted(
        [["parseable_record"], ["valid_price"], ["valid_quantity", "valid_price"], ["has_user_id"]]
    )

    meta = _metadata(result, "orders_valid")
    assert (
        meta["bronze_rows"],
        meta["silver_rows"],
        meta["dlq_rows"],
        meta["duplicates_dropped"],
    ) == (47, 41, 4, 2)
    assert (
        meta["bronze_rows"] == meta["silver_rows"] + meta["dlq_rows"] + meta["duplicates_dropped"]
    )
    assert meta["conservation_holds"] is True
    assert meta["dlq_rule/valid_price"] == 2 and meta["dlq_rule/parseable_record"] == 1
    assert meta["dagster/row_count"] == 41
    assert meta["delta_version"] == DeltaTable(lake.store.uri(ORDERS_VALID)).version()
    assert meta["dagster/uri"] == lake.store.uri(ORDERS_VALID)
    schema_columns = [c.name for c in meta["dagster/column_schema"].columns]
    assert schema_columns[:3] == ["order_id", "user_id", "restaurant_id"]
    assert meta["dagster/column_schema"].columns[0].description.startswith("Unique id of the order")
    lineage = meta["dagster/column_lineage"].deps_by_column["price"]
    assert [(d.asset_key.to_user_string(), d.column_name) for d in lineage] == [
        ("orders_raw", "price")
    ]

    # the silver step reports the DLQ table's materialisation, for its partition
    dlq_events = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("dead_letter_queue")
    ]
    assert [e.materialization.partition for e in dlq_events] == [D2.isoformat()]
    assert dlq_events[0].materialization.metadata["dlq_rows"].value == 4

    # every check ran and passed
    checks = _checks(result)
    for check in (
        names.NOT_EMPTY,
        names.DLQ_RATE,
        names.UNIQUE_KEY,
        names.CONSERVATION,
        names.CONTRACT,
        names.KNOWN_RESTAURANTS_AND_DISHES,
    ):
        assert checks[("orders_valid", check)] is True, check
    assert checks[("restaurant_daily_sales", names.REVENUE_RECONCILES)] is True
    assert checks[("city_hourly_demand", names.REVENUE_RECONCILES)] is True

    # gold reconciles with silver to the cent
    silver_revenue = sum(
        (r.quantity * r.price for r in silver.collect() if r.status == "placed"), Decimal("0")
    )
    gold = _rows(spark, lake, RESTAURANT_DAILY_SALES, D2).collect()
    assert sum((r.gross_revenue for r in gold), Decimal("0")) == silver_revenue
    assert (
        sum((r.revenue for r in _rows(spark, lake, CITY_HOURLY_DEMAND, D2).collect()), Decimal("0"))
        == silver_revenue
    )
    assert _metadata(result, "restaurant_daily_sales")["dagster/column_lineage"].deps_by_column[
        "gross_revenue"
    ]


def test_rematerialising_a_partition_gives_the_same_content_and_leaves_others_untouched(
    reference, spark_resource, spark
):
    lake = reference
    _land_day(lake, D1, good=5)
    _land_day(lake, D2, good=12, extra_lines=[line(order(13, day=D2, price=0))])
    for day in (D1, D2):
        assert materialize(lake, spark_resource, ORDERS_PATH, partition_key=day.isoformat()).success

    def snapshot(table):
        rows = sorted(tuple(r) for r in _rows(spark, lake, table).collect())
        d1_files = sorted(f for f in lake.store.files(table) if "2026-11-19" in f)
        return rows, d1_files

    before = {
        t.name: snapshot(t)
        for t in (
            ORDERS_RAW,
            ORDERS_VALID,
            DEAD_LETTER_QUEUE,
            RESTAURANT_DAILY_SALES,
            CITY_HOURLY_DEMAND,
        )
    }
    versions = {t: lake.store.version(t) for t in (ORDERS_RAW, ORDERS_VALID)}
    assert materialize(lake, spark_resource, ORDERS_PATH, partition_key=D2.isoformat()).success
    after = {
        t.name: snapshot(t)
        for t in (
            ORDERS_RAW,
            ORDERS_VALID,
            DEAD_LETTER_QUEUE,
            RESTAURANT_DAILY_SALES,
            CITY_HOURLY_DEMAND,
        )
    }
    assert after == before  # same rows, and D1's data files were not even rewritten
    assert {t: lake.store.version(t) for t in versions} == {t: v + 1 for t, v in versions.items()}


def test_a_tripped_circuit_breaker_writes_nothing_and_stops_downstream(
    reference, spark_resource, spark, instance
):
    lake = reference
    _land_day(lake, D2, good=10)
    assert materialize(lake, spark_resource, ORDERS_PATH, partition_key=D2.isoformat()).success
    silver_before = (
        lake.store.version(ORDERS_VALID),
        sorted(tuple(r) for r in _rows(spark, lake, ORDERS_VALID).collect()),
    )
    dlq_version = lake.store.version(DEAD_LETTER_QUEUE)
    gold_version = lake.store.version(RESTAURANT_DAILY_SALES)

    # a producer bug: a late batch of garbage pushes the DLQ rate far above 10%
    lake.land("orders", D2, "batch-0002.jsonl", ['{"broken": '] * 10)
    result = materialize(
        lake,
        spark_resource,
        ORDERS_PATH,
        partition_key=D2.isoformat(),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    checks = _checks(result)
    assert checks[("orders_valid", names.DLQ_RATE)] is False
    assert checks[("orders_valid", names.CONSERVATION)] is True
    failure = result.failure_data_for_node("orders_valid")
    assert (
        "Circuit breaker tripped" in failure.error.message
        and "dlq_rate_below_threshold" in failure.error.message
    )

    # bronze recorded the landed lines; silver, DLQ and gold are untouched
    assert _rows(spark, lake, ORDERS_RAW, D2).count() == 20
    assert (
        lake.store.version(ORDERS_VALID),
        sorted(tuple(r) for r in _rows(spark, lake, ORDERS_VALID).collect()),
    ) == silver_before
    assert lake.store.version(DEAD_LETTER_QUEUE) == dlq_version
    assert lake.store.version(RESTAURANT_DAILY_SALES) == gold_version
    started = {
        e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START
    }
    assert started == {"orders_raw", "orders_valid"}  # gold never ran on the bad data

    # the check's evidence is in the event log for the UI
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("orders_valid"), names.DLQ_RATE)]
    )
    evaluation = next(iter(record.values())).event.dagster_event.event_specific_data
    assert evaluation.metadata["dlq_rate"].value == pytest.approx(10 / 20)

    # an operator who accepts the batch raises the threshold for one run
    result = materialize(
        lake,
        spark_resource,
        ORDERS_PATH,
        partition_key=D2.isoformat(),
        run_config={"ops": {"orders_valid": {"config": {"max_dlq_rate": 0.6}}}},
    )
    assert result.success
    assert _rows(spark, lake, DEAD_LETTER_QUEUE, D2).count() == 10


def test_zero_valid_records_trips_the_not_empty_breaker(reference, spark_resource, spark):
    lake = reference
    lake.land("orders", D2, "batch-0001.jsonl", [line(order(1, day=D2, price=0))])
    result = materialize(
        lake,
        spark_resource,
        ["orders_raw", "orders_valid"],
        partition_key=D2.isoformat(),
        raise_on_error=False,
        run_config={"ops": {"orders_valid": {"config": {"max_dlq_rate": 1.0}}}},
    )
    assert not result.success
    assert _checks(result)[("orders_valid", names.NOT_EMPTY)] is False
    assert not lake.store.exists(ORDERS_VALID)


def test_orders_pointing_to_unknown_dishes_fail_referential_integrity(reference, spark_resource):
    lake = reference
    _land_day(
        lake,
        D2,
        good=10,
        extra_lines=[
            line(order(50, day=D2, dish_id="d-404")),
            line(order(51, day=D2, dish_id="d-3")),
        ],
    )
    result = materialize(
        lake,
        spark_resource,
        ["orders_raw", "orders_valid"],
        partition_key=D2.isoformat(),
        raise_on_error=False,
    )
    assert not result.success
    [evaluation] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == names.KNOWN_RESTAURANTS_AND_DISHES
    ]
    assert not evaluation.passed
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["unknown_dish"] == 1
    assert meta["dish_not_on_menu"] == 1  # d-3 is on r-2's menu, the order says r-1


def test_a_missing_landing_directory_fails_with_a_message_that_says_what_to_fix(
    lake, spark_resource
):
    result = materialize(
        lake, spark_resource, ["orders_raw"], partition_key=D2.isoformat(), raise_on_error=False
    )
    assert not result.success
    message = result.failure_data_for_node("orders_raw").error.message
    assert f"orders/date={D2.isoformat()}" in message
    assert "FOODOPS_LANDING_ROOT" in message


def test_reference_snapshots_newest_wins(lake, spark_resource, spark):
    land_reference(lake)
    lake.land(
        "restaurants",
        None,
        "snapshot-20261120.jsonl",
        [
            {
                "restaurant_id": "r-7",
                "name": "New",
                "cuisine": "Pizza",
                "city": "Pune",
                "latitude": 1.0,
                "longitude": 2.0,
                "onboarded_date": "2026-11-20",
            }
        ],
    )
    result = materialize(lake, spark_resource, ["restaurants"])
    from foodops_assets.lakehouse.tables import RESTAURANTS

    assert [r.restaurant_id for r in lake.read(spark, RESTAURANTS).collect()] == ["r-7"]
    assert _metadata(result, "restaurants")["snapshot_file"].endswith("snapshot-20261120.jsonl")
    assert (
        json.loads(json.dumps(_metadata(result, "restaurants")["rule_failures/has_restaurant_id"]))
        == 0
    )
