"""Deliveries and reviews materialised for real, next to orders: landing -> bronze ->
silver + DLQ -> gold, checks included, one partition, a range, and a late file."""

import datetime as dt

import dagster as dg
import pytest

from foodops_assets.checks import names
from foodops_assets.datagen.generator import generate
from foodops_assets.definitions import DAILY_ASSETS, ML_ASSETS, REFERENCE_ASSETS
from foodops_assets.lakehouse.tables import (
    DEAD_LETTER_QUEUE,
    DELIVERIES_RAW,
    DELIVERIES_VALID,
    DELIVERY_PERFORMANCE_DAILY,
    ORDERS_VALID,
    RESTAURANT_RATINGS_DAILY,
    REVIEWS_VALID,
    TABLES,
)
from foodops_assets.operations.late_data import Step, replan
from foodops_assets.transforms.gold import (
    DELIVERY_PERFORMANCE_DAILY_SCHEMA,
    RESTAURANT_RATINGS_DAILY_SCHEMA,
)
from foodops_assets_tests.conftest import Lake, materialize
from foodops_assets_tests.factories import delivery, land_reference, line, order, review, without

D1, D2, D3 = dt.date(2026, 11, 18), dt.date(2026, 11, 19), dt.date(2026, 11, 20)


def _config(max_dlq_rate=0.5, max_orphan_rate=None) -> dict:
    """Launchpad overrides for the crafted inputs, which are mostly bad records."""
    config = {"max_dlq_rate": max_dlq_rate}
    if max_orphan_rate is not None:
        config["max_orphan_rate"] = max_orphan_rate
    return {
        "ops": {
            "deliveries_valid": {"config": config},
            "reviews_valid": {"config": config},
        }
    }


def _range_tags(first: dt.date, last: dt.date) -> dict:
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


def _metadata(result: dg.ExecuteInProcessResult, asset: str, partition: dt.date) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(asset)
        and e.materialization.partition == partition.isoformat()
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _evaluations(result: dg.ExecuteInProcessResult) -> dict:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def _rows(spark, lake, table, day=None):
    where = {"partition_date": [day]} if day else None
    return lake.read(spark, table, where)


@pytest.fixture
def reference(lake, spark_resource):
    land_reference(lake)
    materialize(lake, spark_resource, ["restaurants", "dishes"])
    return lake


# -- one partition, crafted ----------------------------------------------------------------
def _delivered(n: int, minutes: int, city: str = "Pune", **overrides) -> dict:
    delivered_at = dt.datetime(2026, 11, 19, 13, 0) + dt.timedelta(minutes=minutes)
    return delivery(
        n,
        day=D2,
        city=city,
        assigned_at=f"{D2}T13:00:00Z",
        picked_up_at=f"{D2}T13:05:00Z",
        delivered_at=delivered_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **overrides,
    )


BAD_DELIVERIES = {
    "parseable_record": '{"delivery_id": "dl-bad", "distance_km": ',
    "has_delivery_id": line(without(delivery(100, day=D2), "delivery_id")),
    "has_order_id": line(delivery(101, day=D2, order_id="")),
    "has_rider_id": line(delivery(102, day=D2, rider_id=None)),
    "has_city": line(without(delivery(103, day=D2), "city")),
    "valid_delivery_status": line(delivery(104, day=D2, status="lost", delivered_at=None)),
    "assigned_at_in_window": line(
        delivery(
            105,
            day=D2,
            assigned_at="2026-12-01T10:00:00Z",
            picked_up_at=None,
            delivered_at=None,
            status="cancelled",
        )
    ),
    "delivered_at_iff_delivered": line(delivery(106, day=D2, status="failed")),
    "timestamps_ordered": line(delivery(107, day=D2, picked_up_at=f"{D2}T11:00:00Z")),
    "non_negative_distance": line(delivery(108, day=D2, distance_km=-2.0)),
}

BAD_REVIEWS = {
    "parseable_record": '{"review_id": "rv-bad", "rating": ',
    "has_review_id": line(without(review(201, day=D2), "review_id")),
    "has_order_id": line(review(202, day=D2, order_id=None)),
    "has_user_id": line(review(203, day=D2, user_id="")),
    "has_restaurant_id": line(review(204, day=D2, restaurant_id=" ")),
    "valid_rating": line(review(205, day=D2, rating=6)),
    "review_time_in_window": line(review(206, day=D2, review_time="2026-12-01T00:00:00Z")),
    # order o-7 was placed at 12:07 on D2
    "review_after_order": line(review(207, day=D2, order_id="o-7", review_time=f"{D2}T12:00:00Z")),
}


def _land_crafted_day(lake) -> None:
    lake.land("orders", D2, "batch-0001.jsonl", [line(order(n, day=D2)) for n in range(1, 21)])
    deliveries = [
        # Pune: ten delivered in 10, 20, ..., 100 minutes, five cancelled, one failed
        *[_delivered(n, 10 * n) for n in range(1, 11)],
        *[
            delivery(n, day=D2, status="cancelled", picked_up_at=None, delivered_at=None)
            for n in range(11, 16)
        ],
        delivery(16, day=D2, status="failed", delivered_at=None),
        # Mumbai: 30, 40, 50 and 60 minutes (the last with a field outside the contract) ...
        _delivered(17, 30, "Mumbai"),
        _delivered(18, 40, "Mumbai"),
        _delivered(19, 50, "Mumbai"),
        _delivered(20, 60, "Mumbai", tip_amount=20),
        # ... and 35 minutes for an order nobody knows (yet): kept, reported
        _delivered(999, 35, "Mumbai"),
    ]
    lake.land(
        "deliveries",
        D2,
        "batch-0001.jsonl",
        [*map(line, deliveries), line(deliveries[4]), *BAD_DELIVERIES.values()],
    )
    reviews = [
        review(n, day=D2, restaurant_id="r-1" if n <= 12 else "r-2", rating=n % 5 + 1)
        for n in range(1, 21)
    ] + [review(998, day=D2, restaurant_id="r-2", rating=5)]  # its order is unknown
    lake.land(
        "reviews",
        D2,
        "batch-0001.jsonl",
        [*map(line, reviews), line(reviews[2]), *BAD_REVIEWS.values()],
    )


def test_deliveries_and_reviews_end_to_end_with_every_rule_and_metric(
    reference, spark_resource, spark
):
    lake = reference
    _land_crafted_day(lake)
    result = materialize(
        lake, spark_resource, DAILY_ASSETS, partition_key=D2.isoformat(), run_config=_config()
    )
    assert result.success

    # the DLQ: each rejected record once, with the exact rule it broke, per source
    dlq = _rows(spark, lake, DEAD_LETTER_QUEUE, D2).collect()
    by_source = {}
    for row in dlq:
        by_source.setdefault(row.source, []).append(row.failed_rules)
    assert sorted(by_source["deliveries"]) == sorted([[r] for r in BAD_DELIVERIES])
    assert sorted(by_source["reviews"]) == sorted([[r] for r in BAD_REVIEWS])
    assert "orders" not in by_source
    [after_order] = [r for r in dlq if r.failed_rules == ["review_after_order"]]
    assert '"order_id":"o-7"' in after_order.raw_record  # replayable
    dlq_events = [
        e.materialization.metadata["source"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("dead_letter_queue")
    ]
    assert sorted(dlq_events) == ["deliveries", "orders", "reviews"]

    # conservation, for all three sources: bronze = silver + DLQ + duplicates
    expected = {
        "orders_valid": (20, 20, 0, 0),
        "deliveries_valid": (32, 21, 10, 1),
        "reviews_valid": (30, 21, 8, 1),
    }
    for asset, numbers in expected.items():
        meta = _metadata(result, asset, D2)
        got = tuple(
            meta[k] for k in ("bronze_rows", "silver_rows", "dlq_rows", "duplicates_dropped")
        )
        assert got == numbers, asset
        assert meta["conservation_holds"] is True
    meta = _metadata(result, "deliveries_valid", D2)
    assert meta["dlq_rule/timestamps_ordered"] == 1 and meta["orphans/orders"] == 1
    assert _metadata(result, "reviews_valid", D2)["dlq_rule/review_after_order"] == 1

    # every check of the new assets ran; the blocking ones passed
    checks = _evaluations(result)
    for asset in ("deliveries_valid", "reviews_valid"):
        for check in (
            names.NOT_EMPTY,
            names.DLQ_RATE,
            names.UNIQUE_KEY,
            names.CONSERVATION,
            names.CONTRACT,
            names.KNOWN_ORDERS,
        ):
            assert checks[(asset, check)].passed, (asset, check)
    for asset, check in (
        ("delivery_performance_daily", names.DELIVERIES_RECONCILE),
        ("delivery_performance_daily", names.DELIVERY_METRICS_SANE),
        ("restaurant_ratings_daily", names.REVIEWS_RECONCILE),
        ("restaurant_ratings_daily", names.RATINGS_SANE),
    ):
        assert checks[(asset, check)].passed, (asset, check)

    # an orphan within the tolerance is reported with its ids, not ignored
    known = {
        k: v.value for k, v in checks[("deliveries_valid", names.KNOWN_ORDERS)].metadata.items()
    }
    assert (known["orphans"], known["valid_rows"]) == (1, 21)
    assert known["sample_orphans"] == [
        {"delivery_id": "dl-999", "order_id": "o-999", "partition_date": D2.isoformat()}
    ]
    assert known["reference_partitions"] == "orders_valid 2026-11-17...2026-11-19"
    reviews_known = checks[("reviews_valid", names.KNOWN_ORDERS)].metadata
    assert reviews_known["sample_orphans"].value[0]["review_id"] == "rv-998"

    # schema change on bronze: a WARN with the column diff; the line is kept and rescued
    drift = checks[("deliveries_raw", names.LANDING_SCHEMA)]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert drift.metadata["added_fields"].value == {"tip_amount": 1}
    assert drift.metadata["missing_fields"].value == []
    assert "| + tip_amount | added | 1 |" in drift.metadata["column_diff"].value
    assert checks[("orders_raw", names.LANDING_SCHEMA)].passed
    assert checks[("reviews_raw", names.LANDING_SCHEMA)].passed
    [rescued] = _rows(spark, lake, DELIVERIES_RAW, D2).where("delivery_id = 'dl-20'").collect()
    assert rescued._extra_fields == ["tip_amount"] and '"tip_amount": 20' in rescued._rescued_data
    assert _rows(spark, lake, DELIVERIES_VALID, D2).where("delivery_id = 'dl-20'").count() == 1

    # gold: delivery performance, by hand
    perf = {r.city: r for r in _rows(spark, lake, DELIVERY_PERFORMANCE_DAILY, D2).collect()}
    assert sorted(perf) == ["Mumbai", "Pune"]
    pune = perf["Pune"]
    assert (pune.deliveries, pune.delivered, pune.cancelled, pune.failed) == (16, 10, 5, 1)
    assert pune.avg_delivery_minutes == pytest.approx(55.0)
    assert pune.p50_delivery_minutes == pytest.approx(55.0)  # 50 + 0.5 * 10
    assert pune.p90_delivery_minutes == pytest.approx(91.0)  # rank 8.1: 90 + 0.1 * 10
    assert pune.max_delivery_minutes == pytest.approx(100.0)
    assert (pune.on_time_deliveries, pune.on_time_sla_minutes) == (4, 45.0)
    assert pune.on_time_rate == pytest.approx(0.4)
    assert pune.cancellation_rate == pytest.approx(5 / 16)
    mumbai = perf["Mumbai"]  # 30 35 40 50 60
    assert (mumbai.deliveries, mumbai.delivered, mumbai.cancelled) == (5, 5, 0)
    assert mumbai.avg_delivery_minutes == pytest.approx(43.0)
    assert mumbai.p50_delivery_minutes == pytest.approx(40.0)
    assert mumbai.p90_delivery_minutes == pytest.approx(56.0)  # rank 3.6: 50 + 0.6 * 10
    assert mumbai.on_time_rate == pytest.approx(3 / 5)
    # one number per run for the UI's plot: p90 over every delivered delivery (an element)
    assert _metadata(result, "delivery_performance_daily", D2)["p90_delivery_minutes"] == 90.0

    # gold: ratings, by hand (only D2 exists inside the rolling window)
    ratings = {
        r.restaurant_id: r for r in _rows(spark, lake, RESTAURANT_RATINGS_DAILY, D2).collect()
    }
    assert sorted(ratings) == ["r-1", "r-2"]
    r1 = ratings["r-1"]  # ratings 2 3 4 5 1 2 3 4 5 1 2 3
    assert (r1.reviews, r1.rolling_30d_reviews, r1.restaurant_name) == (12, 12, "Spice Kitchen")
    assert r1.avg_rating == pytest.approx(35 / 12) == r1.rolling_30d_avg_rating
    r2 = ratings["r-2"]  # 4 5 1 2 3 4 5 1, and 5 from the review whose order is unknown
    assert (r2.reviews, r2.avg_rating) == (9, pytest.approx(30 / 9))
    assert r2.rolling_window_start == D2 - dt.timedelta(days=29)
    meta = _metadata(result, "restaurant_ratings_daily", D2)
    assert meta["rolling_window_partitions_read"] == "2026-10-21...2026-11-19"
    assert meta["rolling_window_partitions_without_reviews"] == 29

    # column lineage: every gold column back to silver columns
    for asset, schema, upstream in (
        ("delivery_performance_daily", DELIVERY_PERFORMANCE_DAILY_SCHEMA, {"deliveries_valid"}),
        (
            "restaurant_ratings_daily",
            RESTAURANT_RATINGS_DAILY_SCHEMA,
            {"reviews_valid", "restaurants"},
        ),
    ):
        lineage = _metadata(result, asset, D2)["dagster/column_lineage"].deps_by_column
        derived = [f.name for f in schema.fields if f.name != "on_time_sla_minutes"]
        assert all(lineage[c] for c in derived), asset
        assert {d.asset_key.to_user_string() for deps in lineage.values() for d in deps} == upstream
    deps = _metadata(result, "delivery_performance_daily", D2)["dagster/column_lineage"]
    assert {d.column_name for d in deps.deps_by_column["p90_delivery_minutes"]} == {
        "assigned_at",
        "delivered_at",
        "status",
    }


# -- referential integrity is a circuit breaker beyond the tolerance ---------------------------
def test_deliveries_pointing_to_unknown_orders_trip_known_orders_with_the_evidence(
    reference, spark_resource, spark
):
    lake = reference
    lake.land("orders", D2, "batch-0001.jsonl", [line(order(n, day=D2)) for n in range(1, 8)])
    lake.land(
        "deliveries",
        D2,
        "batch-0001.jsonl",
        [line(_delivered(n, 20)) for n in (1, 2, 3, 4, 5, 6, 7, 41, 42, 43)],
    )
    # orders_valid not materialized yet: every delivery is an orphan, and the check says why
    result = materialize(
        lake,
        spark_resource,
        ["deliveries_raw", "deliveries_valid"],
        partition_key=D2.isoformat(),
        raise_on_error=False,
    )
    assert not result.success
    check = _evaluations(result)[("deliveries_valid", names.KNOWN_ORDERS)]
    assert not check.passed and "orders_valid has not been materialized" in check.description
    assert not lake.store.exists(DELIVERIES_VALID)

    # with orders: 3 of 10 orphans is 30%, far above the 5% tolerance for late data
    result = materialize(
        lake,
        spark_resource,
        ["orders_raw", "orders_valid", "deliveries_raw", "deliveries_valid"],
        partition_key=D2.isoformat(),
        raise_on_error=False,
    )
    assert not result.success
    check = _evaluations(result)[("deliveries_valid", names.KNOWN_ORDERS)]
    meta = {k: v.value for k, v in check.metadata.items()}
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert (meta["orphans"], meta["valid_rows"], meta["orphan_rate"]) == (3, 10, 0.3)
    assert [s["order_id"] for s in meta["sample_orphans"]] == ["o-41", "o-42", "o-43"]
    # the lookback's partitions with no orders are named: the likely cause when orders are late
    assert meta["reference_partitions_without_rows"] == ["2026-11-17", "2026-11-18"]
    assert "orders_valid has no rows for 2026-11-17, 2026-11-18" in check.description
    assert (
        "Circuit breaker tripped" in result.failure_data_for_node("deliveries_valid").error.message
    )
    assert not lake.store.exists(DELIVERIES_VALID)  # nothing published


# -- a date range in one run equals the days one by one; late data ------------------------------
@pytest.fixture(scope="module")
def backfilled(tmp_path_factory, spark_resource):
    """Three generated days, materialised as one range run in lake A and day by day in lake B."""
    root = tmp_path_factory.mktemp("backfill")
    landing = root / "landing"
    generate(landing, D1, days=3, orders_per_day=120, files_per_day=2, bad_rate=0.03, seed=3)

    def lake_at(name: str) -> Lake:
        return Lake.under(root, landing=landing, lake=name)

    config = _config(max_dlq_rate=0.3, max_orphan_rate=0.25)
    a, b = lake_at("lake-a"), lake_at("lake-b")
    for lake in (a, b):
        # the snapshots and their history (gold joins the history as of each order)
        materialize(lake, spark_resource, REFERENCE_ASSETS)
    ranged = materialize(
        a, spark_resource, DAILY_ASSETS, run_config=config, tags=_range_tags(D1, D3)
    )
    for day in (D1, D2, D3):
        materialize(
            b, spark_resource, DAILY_ASSETS, partition_key=day.isoformat(), run_config=config
        )
    return a, b, ranged


def _table_rows(spark, lake, table):
    # repr as the sort key: rows hold nulls and arrays; the comparison is still value by value
    return sorted((tuple(r) for r in _rows(spark, lake, table).collect()), key=repr)


def test_a_backfill_of_a_range_in_one_run_equals_materialising_the_days_one_by_one(
    backfilled, spark
):
    a, b, ranged = backfilled
    assert ranged.success
    starts = [e for e in ranged.all_events if e.event_type == dg.DagsterEventType.RUN_START]
    assert len(starts) == 1  # the whole range in a single run
    materialized = {
        (e.asset_key.to_user_string(), e.materialization.partition)
        for e in ranged.get_asset_materialization_events()
    }
    for asset in DAILY_ASSETS:
        assert {(asset, d.isoformat()) for d in (D1, D2, D3)} <= materialized, asset
    assert _metadata(ranged, "restaurant_ratings_daily", D3)["rolling_window_partitions_read"] == (
        "2026-10-20...2026-11-20"
    )
    # every table the daily assets write (the ML layer is its own job, as of one day)
    for name, table in TABLES.items():
        if name in ML_ASSETS:
            continue
        assert a.store.exists(table), name
        rows = _table_rows(spark, a, table)
        assert rows, name
        assert rows == _table_rows(spark, b, table), name
    # the rolling window of D3 saw the reviews of D1 and D2
    d3 = _rows(spark, a, RESTAURANT_RATINGS_DAILY, D3).collect()
    assert sum(r.rolling_30d_reviews for r in d3) == _rows(spark, a, REVIEWS_VALID).count()


def test_a_late_review_rebuilds_its_day_and_the_rolling_window_after_it(
    backfilled, spark_resource, spark
):
    a, _, _ = backfilled
    early = (
        _rows(spark, a, ORDERS_VALID, D1)
        .where("status = 'placed' AND hour(order_time) < 20")
        .orderBy("order_id")
        .limit(3)
        .collect()
    )
    restaurant = early[0].restaurant_id

    def rating_rows():
        return {
            r.partition_date: r
            for r in _rows(spark, a, RESTAURANT_RATINGS_DAILY)
            .where(f"restaurant_id = '{restaurant}'")
            .collect()
        }

    before = rating_rows()
    late = [
        review(
            900 + i,
            day=D1,
            order_id=o.order_id,
            user_id=o.user_id,
            restaurant_id=restaurant,
            rating=1,
            review_time=f"{D1}T22:30:00Z",
        )
        for i, o in enumerate(early)
    ]
    a.land("reviews", D1, "batch-late-0001.jsonl", [line(r) for r in late])

    plan = replan(a.definitions(), "reviews", D1)
    # both ranges stop at the newest partition (yesterday), so how they group depends on
    # today's date: the same range shares a run, different ranges are two runs
    newest = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    ratings_last = min(D1 + dt.timedelta(days=29), newest).isoformat()
    # the ML features read reviews_valid through a 14-day window
    ml_last = min(D1 + dt.timedelta(days=13), newest).isoformat()
    expected = [Step(("reviews_raw", "reviews_valid"), D1.isoformat(), D1.isoformat())]
    if ml_last == ratings_last:
        expected.append(
            Step(
                ("dish_features", "restaurant_ratings_daily", "user_features"),
                D1.isoformat(),
                ratings_last,
            )
        )
    else:
        expected += [
            Step(("dish_features", "user_features"), D1.isoformat(), ml_last),
            Step(("restaurant_ratings_daily",), D1.isoformat(), ratings_last),
        ]
    assert plan == expected
    for step in plan:
        # this test is about the ratings; the ML features have their own tests (test_ml.py)
        assets = [x for x in step.assets if x not in ML_ASSETS]
        if not assets:
            continue
        result = materialize(
            a,
            spark_resource,
            assets,
            run_config={"ops": {"reviews_valid": {"config": {"max_orphan_rate": 0.25}}}}
            if "reviews_valid" in step.assets
            else None,
            tags=_range_tags(dt.date.fromisoformat(step.first), dt.date.fromisoformat(step.last)),
        )
        assert result.success

    after = rating_rows()
    reviews_before = {d: r.reviews for d, r in before.items()}
    assert after[D1].reviews == reviews_before.get(D1, 0) + 3
    for day in (D1, D2, D3):
        n0 = before[day].rolling_30d_reviews if day in before else 0
        s0 = before[day].rolling_30d_avg_rating * n0 if day in before else 0.0
        assert after[day].rolling_30d_reviews == n0 + 3, day
        assert after[day].rolling_30d_avg_rating == pytest.approx((s0 + 3) / (n0 + 3)), day
    for day in (D2, D3):  # the days after keep their own reviews
        assert after[day].reviews == reviews_before.get(day, 0)
