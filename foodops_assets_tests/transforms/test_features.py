"""ML features on a small case computed by hand, and point-in-time correctness."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import types as T

from foodops_assets.transforms import features

D = dt.date(2026, 11, 20)
W = 3  # window D-2..D

ORDER_SCHEMA = T.StructType(
    [
        T.StructField("order_id", T.StringType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("restaurant_id", T.StringType()),
        T.StructField("dish_id", T.StringType()),
        T.StructField("quantity", T.IntegerType()),
        T.StructField("price", T.DecimalType(10, 2)),
        T.StructField("order_time", T.TimestampType()),
        T.StructField("city", T.StringType()),
        T.StructField("status", T.StringType()),
        T.StructField("partition_date", T.DateType()),
    ]
)
REVIEW_SCHEMA = T.StructType(
    [
        T.StructField("review_id", T.StringType()),
        T.StructField("order_id", T.StringType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("rating", T.IntegerType()),
        T.StructField("review_time", T.TimestampType()),
        T.StructField("partition_date", T.DateType()),
    ]
)
DISH_TO_RESTAURANT = {"d1": "r1", "d2": "r1", "d3": "r2"}


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def o(oid, user, dish, qty, price, at, city, status, part):
    return (
        oid,
        user,
        DISH_TO_RESTAURANT[dish],
        dish,
        qty,
        Decimal(price),
        ts(at),
        city,
        status,
        dt.date.fromisoformat(part),
    )


ORDERS = [
    o("o1", "u1", "d1", 2, "100.00", "2026-11-18T12:00", "Pune", "placed", "2026-11-18"),
    o("o2", "u1", "d3", 1, "120.00", "2026-11-20T09:00", "Mumbai", "placed", "2026-11-20"),
    o("o3", "u1", "d1", 1, "100.00", "2026-11-19T20:00", "Pune", "placed", "2026-11-19"),
    o("o4", "u1", "d2", 1, "320.00", "2026-11-19T21:00", "Pune", "cancelled", "2026-11-19"),
    o("o5", "u2", "d3", 3, "120.00", "2026-11-20T13:00", "Pune", "placed", "2026-11-20"),
    o("o6", "u2", "d3", 1, "120.00", "2026-11-17T13:00", "Pune", "placed", "2026-11-17"),
    o("o9", "u1", "d1", 1, "100.00", "2026-11-16T12:00", "Pune", "placed", "2026-11-16"),
    o("o10", "u3", "d1", 1, "100.00", "2026-11-15T12:00", "Pune", "placed", "2026-11-15"),
]
# dated after D: in partition D within the clock-skew tolerance silver accepts, or in D+1
AFTER_D_ORDERS = [
    o("o7", "u3", "d1", 1, "100.00", "2026-11-21T00:30", "Pune", "placed", "2026-11-20"),
    o("o8", "u2", "d1", 5, "100.00", "2026-11-21T10:00", "Pune", "placed", "2026-11-21"),
]


def r(rid, oid, user, rating, at, part):
    return (rid, oid, user, rating, ts(at), dt.date.fromisoformat(part))


REVIEWS = [
    r("rv1", "o1", "u1", 5, "2026-11-18T19:00", "2026-11-18"),
    r("rv2", "o3", "u1", 2, "2026-11-20T08:00", "2026-11-20"),
    r("rv4", "o6", "u2", 1, "2026-11-17T18:00", "2026-11-17"),
]
AFTER_D_REVIEWS = [
    r("rv3", "o5", "u2", 4, "2026-11-21T00:20", "2026-11-20"),
    r("rv5", "o5", "u2", 5, "2026-11-21T09:00", "2026-11-21"),
]


@pytest.fixture(scope="module")
def frames(spark):
    def make(orders, reviews):
        return (
            spark.createDataFrame(orders, ORDER_SCHEMA),
            spark.createDataFrame(reviews, REVIEW_SCHEMA),
        )

    dishes = spark.createDataFrame(
        [("d1", "North Indian"), ("d2", "North Indian"), ("d3", "South Indian")],
        "dish_id string, cuisine string",
    )
    return make, dishes


def _rows(df, key):
    return {tuple(row[k] for k in key): row.asDict() for row in df.collect()}


def test_user_features_by_hand(frames):
    make, dishes = frames
    orders, reviews = make(ORDERS + AFTER_D_ORDERS, REVIEWS + AFTER_D_REVIEWS)
    got = _rows(
        features.user_features(orders, reviews, dishes, [D - dt.timedelta(days=1), D], W),
        ["partition_date", "user_id"],
    )
    d19 = D - dt.timedelta(days=1)
    assert set(got) == {(D, "u1"), (D, "u2"), (d19, "u1"), (d19, "u2")}  # u3 only after D
    assert got[(D, "u1")] == {
        "partition_date": D,
        "user_id": "u1",
        "window_start": dt.date(2026, 11, 18),
        "home_city": "Mumbai",  # city of the newest order, o2
        "orders": 3,
        "cancelled_orders": 1,
        "cancellation_share": 0.25,
        "spend": Decimal("420.00"),  # 2 * 100 + 120 + 100
        "last_order_date": D,
        "recency_days": 0,
        "favourite_cuisine": "North Indian",
        "favourite_cuisine_orders": 2,
        "reviews_given": 2,
        "avg_rating_given": 3.5,
    }
    # o8 (D+1) and the review written after D do not count; rv4 is before the window
    assert got[(D, "u2")] == {
        "partition_date": D,
        "user_id": "u2",
        "window_start": dt.date(2026, 11, 18),
        "home_city": "Pune",
        "orders": 1,
        "cancelled_orders": 0,
        "cancellation_share": 0.0,
        "spend": Decimal("360.00"),
        "last_order_date": D,
        "recency_days": 0,
        "favourite_cuisine": "South Indian",
        "favourite_cuisine_orders": 1,
        "reviews_given": 0,
        "avg_rating_given": None,
    }
    # as of D-1 (window D-3..D-1): o6 two days before, its review rv4
    u2 = got[(d19, "u2")]
    assert (u2["orders"], u2["spend"], u2["recency_days"], u2["avg_rating_given"]) == (
        1,
        Decimal("120.00"),
        2,
        1.0,
    )
    u1 = got[(d19, "u1")]
    assert (u1["orders"], u1["cancelled_orders"], u1["home_city"], u1["reviews_given"]) == (
        2,
        1,
        "Pune",
        1,
    )
    assert u1["cancellation_share"] == pytest.approx(1 / 3)


def test_dish_features_by_hand(frames):
    make, _ = frames
    orders, reviews = make(ORDERS + AFTER_D_ORDERS, REVIEWS + AFTER_D_REVIEWS)
    got = _rows(features.dish_features(orders, reviews, [D], W), ["dish_id"])
    # d2 was only ever cancelled: no row
    assert set(got) == {("d1",), ("d3",)}
    d1, d3 = got[("d1",)], got[("d3",)]
    # d1: o1, o3 by u1 in the window (o7 is after D); o9, o10 in the window before
    assert {k: d1[k] for k in d1 if k != "partition_date"} == {
        "dish_id": "d1",
        "restaurant_id": "r1",
        "window_start": dt.date(2026, 11, 18),
        "orders": 2,
        "distinct_users": 1,
        "repeat_users": 1,
        "reorder_rate": 1.0,
        "reviews": 2,
        "avg_rating": 3.5,
        "orders_previous_window": 2,
        "orders_trend": 0.0,
    }
    # d3: o2 (u1), o5 (u2); o6 in the window before; rv3 was written after D
    assert (d3["orders"], d3["distinct_users"], d3["repeat_users"], d3["reorder_rate"]) == (
        2,
        2,
        0,
        0.0,
    )
    assert (d3["reviews"], d3["avg_rating"], d3["orders_previous_window"], d3["orders_trend"]) == (
        0,
        None,
        1,
        1.0,
    )


def test_records_dated_after_the_as_of_date_change_nothing(frames):
    make, dishes = frames
    before = make(ORDERS, REVIEWS)
    after = make(ORDERS + AFTER_D_ORDERS, REVIEWS + AFTER_D_REVIEWS)
    for compute in (
        lambda o_, r_: features.user_features(o_, r_, dishes, [D], W),
        lambda o_, r_: features.dish_features(o_, r_, [D], W),
    ):
        assert sorted(compute(*before).collect()) == sorted(compute(*after).collect())
    # and they do count once their day is the as-of date
    later = D + dt.timedelta(days=1)
    u2 = features.user_features(*after, dishes, [later], W).where("user_id = 'u2'").first()
    assert (u2["orders"], u2["reviews_given"]) == (2, 2)


def test_an_order_counts_for_the_cuisine_its_dish_had_when_it_was_ordered(frames, spark):
    """With dishes_history, u1's order o2 of d3 (the 20th, 09:00) counts for North Indian:
    d3 became South Indian only at noon that day. From the newest snapshot it counted for
    South Indian (the by-hand test above: North Indian 2)."""
    make, _ = frames
    history = spark.createDataFrame(
        [
            ("d1", "North Indian", dt.datetime(2026, 11, 1), None),
            ("d2", "North Indian", dt.datetime(2026, 11, 1), None),
            ("d3", "North Indian", dt.datetime(2026, 11, 1), dt.datetime(2026, 11, 20, 12)),
            ("d3", "South Indian", dt.datetime(2026, 11, 20, 12), None),
        ],
        "dish_id string, cuisine string, valid_from timestamp, valid_to timestamp",
    )
    orders, reviews = make(ORDERS, REVIEWS)
    u1 = features.user_features(orders, reviews, history, [D], W).where("user_id = 'u1'").first()
    assert (u1["favourite_cuisine"], u1["favourite_cuisine_orders"]) == ("North Indian", 3)
    # the other features do not depend on where the cuisine came from
    _, snapshot = frames
    same = features.user_features(orders, reviews, snapshot, [D], W).where("user_id = 'u1'")
    assert same.first()["orders"] == u1["orders"] == 3
