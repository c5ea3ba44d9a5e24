import datetime as dt
from decimal import Decimal

import pytest

from foodops_assets.transforms.gold import (
    city_hourly_demand,
    delivery_performance_daily,
    restaurant_daily_sales,
    restaurant_ratings_daily,
)

D1, D2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)
COLUMNS = (
    "order_id string, user_id string, restaurant_id string, dish_id string, quantity int, "
    "price decimal(10,2), order_time timestamp, city string, status string, partition_date date"
)


def _orders(spark):
    t = dt.datetime
    rows = [
        (
            "o1",
            "u1",
            "r-1",
            "d-1",
            2,
            Decimal("100.25"),
            t(2026, 11, 20, 12, 5),
            "Pune",
            "placed",
            D2,
        ),
        (
            "o2",
            "u2",
            "r-1",
            "d-2",
            1,
            Decimal("320.00"),
            t(2026, 11, 20, 12, 55),
            "Pune",
            "placed",
            D2,
        ),
        (
            "o3",
            "u1",
            "r-1",
            "d-1",
            3,
            Decimal("99.99"),
            t(2026, 11, 20, 13, 10),
            "Pune",
            "cancelled",
            D2,
        ),
        (
            "o4",
            "u1",
            "r-1",
            "d-1",
            1,
            Decimal("0.01"),
            t(2026, 11, 20, 20, 0),
            "Pune",
            "placed",
            D2,
        ),
        (
            "o5",
            "u3",
            "r-2",
            "d-3",
            4,
            Decimal("120.00"),
            t(2026, 11, 20, 12, 30),
            "Mumbai",
            "placed",
            D2,
        ),
        (
            "o6",
            "u3",
            "r-2",
            "d-3",
            1,
            Decimal("120.00"),
            t(2026, 11, 19, 12, 30),
            "Mumbai",
            "placed",
            D1,
        ),
        (
            "o7",
            "u9",
            "r-9",
            "d-9",
            1,
            Decimal("50.00"),
            t(2026, 11, 20, 12, 40),
            "Pune",
            "placed",
            D2,
        ),
    ]
    return spark.createDataFrame(rows, COLUMNS)


def _restaurants(spark):
    return spark.createDataFrame(
        [
            ("r-1", "Spice Kitchen", "Pune", "North Indian"),
            ("r-2", "Dosa Corner", "Mumbai", "South Indian"),
        ],
        "restaurant_id string, name string, city string, cuisine string",
    )


def test_restaurant_daily_sales_by_hand(spark):
    out = {
        (r.partition_date, r.restaurant_id): r
        for r in restaurant_daily_sales(_orders(spark), _restaurants(spark)).collect()
    }
    r1 = out[(D2, "r-1")]
    assert (r1.orders, r1.cancelled_orders, r1.items_sold) == (3, 1, 4)
    # 2*100.25 + 1*320.00 + 1*0.01 ; the cancelled order earns nothing
    assert r1.gross_revenue == Decimal("520.51")
    assert r1.avg_order_value == Decimal("173.50")  # 520.51 / 3, rounded half-up
    assert r1.distinct_customers == 2
    assert (r1.restaurant_name, r1.city, r1.cuisine) == ("Spice Kitchen", "Pune", "North Indian")
    r2 = out[(D2, "r-2")]
    assert (r2.orders, r2.items_sold, r2.gross_revenue) == (1, 4, Decimal("480.00"))
    assert out[(D1, "r-2")].gross_revenue == Decimal("120.00")
    unknown = out[(D2, "r-9")]  # an unknown restaurant keeps its sales, without a name
    assert unknown.restaurant_name is None and unknown.gross_revenue == Decimal("50.00")
    assert len(out) == 4


def test_city_hourly_demand_by_hand(spark):
    out = {
        (r.partition_date, r.city, r.hour_start.hour): r
        for r in city_hourly_demand(_orders(spark)).collect()
    }
    noon = out[(D2, "Pune", 12)]
    assert (noon.orders, noon.cancelled_orders, noon.distinct_users) == (3, 0, 3)
    assert noon.revenue == Decimal("570.50")  # 200.50 + 320.00 + 50.00
    one_pm = out[(D2, "Pune", 13)]
    assert (one_pm.orders, one_pm.cancelled_orders, one_pm.revenue) == (0, 1, Decimal("0.00"))
    assert out[(D2, "Pune", 20)].revenue == Decimal("0.01")
    assert out[(D2, "Mumbai", 12)].revenue == Decimal("480.00")
    assert out[(D1, "Mumbai", 12)].orders == 1
    assert len(out) == 5


# -- delivery performance ----------------------------------------------------------------
DELIVERY_COLUMNS = (
    "delivery_id string, city string, assigned_at timestamp, delivered_at timestamp, "
    "status string, partition_date date"
)


def _deliveries(spark):
    t0 = dt.datetime(2026, 11, 20, 12, 0)
    rows = []
    # Pune, D2: nine delivered, in minutes from assignment (one with seconds)
    for i, minutes in enumerate([44, 12, 95, 30.5, 18, 45, 70, 25, 52]):
        rows.append((f"p{i}", "Pune", t0, t0 + dt.timedelta(minutes=minutes), "delivered", D2))
    rows += [
        ("pc1", "Pune", t0, None, "cancelled", D2),
        ("pc2", "Pune", t0, None, "cancelled", D2),
        ("pf1", "Pune", t0, None, "failed", D2),
        ("m1", "Mumbai", t0, t0 + dt.timedelta(minutes=33), "delivered", D2),
        ("mc1", "Mumbai", t0, None, "cancelled", D2),
        ("q1", "Pune", t0 - dt.timedelta(days=1), None, "cancelled", D1),
    ]
    return spark.createDataFrame(rows, DELIVERY_COLUMNS)


def test_delivery_performance_daily_by_hand(spark):
    out = {
        (r.partition_date, r.city): r
        for r in delivery_performance_daily(_deliveries(spark), on_time_minutes=45).collect()
    }
    assert len(out) == 3
    pune = out[(D2, "Pune")]
    assert (pune.deliveries, pune.delivered, pune.cancelled, pune.failed) == (12, 9, 2, 1)
    # sorted: 12 18 25 30.5 44 45 52 70 95
    assert pune.avg_delivery_minutes == pytest.approx(391.5 / 9)  # 43.5
    assert pune.p50_delivery_minutes == pytest.approx(44.0)  # rank 0.5 * 8 = 4
    assert pune.p90_delivery_minutes == pytest.approx(75.0)  # rank 7.2: 70 + 0.2 * (95 - 70)
    assert pune.max_delivery_minutes == pytest.approx(95.0)
    assert pune.on_time_sla_minutes == 45.0
    assert pune.on_time_deliveries == 6  # 45 minutes is still on time
    assert pune.on_time_rate == pytest.approx(6 / 9)
    assert pune.cancellation_rate == pytest.approx(2 / 12)

    mumbai = out[(D2, "Mumbai")]
    assert (mumbai.deliveries, mumbai.delivered) == (2, 1)
    assert mumbai.p50_delivery_minutes == mumbai.p90_delivery_minutes == pytest.approx(33.0)
    assert (mumbai.on_time_rate, mumbai.cancellation_rate) == (1.0, 0.5)

    quiet = out[(D1, "Pune")]  # nothing delivered: no timings, no on-time rate
    assert (quiet.deliveries, quiet.delivered, quiet.cancellation_rate) == (1, 0, 1.0)
    assert quiet.avg_delivery_minutes is None and quiet.p90_delivery_minutes is None
    assert quiet.on_time_rate is None and quiet.on_time_deliveries == 0


def test_the_on_time_rate_follows_the_configured_promise(spark):
    [pune] = [
        r
        for r in delivery_performance_daily(_deliveries(spark), on_time_minutes=30).collect()
        if r.city == "Pune" and r.partition_date == D2
    ]
    assert (pune.on_time_sla_minutes, pune.on_time_deliveries) == (30.0, 3)  # 12, 18, 25


# -- restaurant ratings ------------------------------------------------------------------
def _reviews(spark):
    def d(days_before: int) -> dt.date:
        return D2 - dt.timedelta(days=days_before)

    rows = [
        ("a1", "r-1", 4, d(0)),
        ("a2", "r-1", 5, d(0)),
        ("a3", "r-1", 3, d(1)),
        ("a4", "r-1", 2, d(10)),
        ("a5", "r-1", 5, d(29)),  # first day of D2's window
        ("a6", "r-1", 1, d(30)),  # one day too old for D2, inside D1's window
        ("a7", "r-1", 1, d(-1)),  # the day after: never in a window that ends earlier
        ("b1", "r-2", 4, d(3)),
        ("b2", "r-2", 2, d(5)),
        ("c1", "r-3", 5, d(30)),
        ("z1", "r-9", 3, d(0)),  # a restaurant missing from the snapshot
    ]
    # no review at all on d(2), d(4), d(6..9), ...: missing days contribute nothing
    return spark.createDataFrame(
        rows, "review_id string, restaurant_id string, rating int, partition_date date"
    )


def test_restaurant_ratings_daily_by_hand_with_days_missing_inside_the_window(spark):
    out = {
        (r.partition_date, r.restaurant_id): r
        for r in restaurant_ratings_daily(
            _reviews(spark), [D1, D2], _restaurants(spark), window_days=30
        ).collect()
    }
    r1 = out[(D2, "r-1")]
    assert (r1.reviews, r1.avg_rating) == (2, 4.5)
    assert r1.rolling_30d_reviews == 5  # 4, 5, 3, 2, 5 — not the 1 of d(30), not the day after
    assert r1.rolling_30d_avg_rating == pytest.approx(19 / 5)
    assert r1.rolling_window_start == D2 - dt.timedelta(days=29)
    assert (r1.restaurant_name, r1.city) == ("Spice Kitchen", "Pune")

    r2 = out[(D2, "r-2")]  # no review today, but the window has two
    assert (r2.reviews, r2.avg_rating, r2.rolling_30d_reviews) == (0, None, 2)
    assert r2.rolling_30d_avg_rating == pytest.approx(3.0)

    assert (D2, "r-3") not in out  # its only review is 30 days old
    unknown = out[(D2, "r-9")]
    assert unknown.restaurant_name is None and unknown.rolling_30d_avg_rating == 3.0

    r1_before = out[(D1, "r-1")]  # D1's window: d(30)..d(1)
    assert (r1_before.reviews, r1_before.avg_rating) == (1, 3.0)
    assert r1_before.rolling_30d_reviews == 4  # 3, 2, 5, 1
    assert r1_before.rolling_30d_avg_rating == pytest.approx(11 / 4)
    assert out[(D1, "r-3")].rolling_30d_avg_rating == 5.0
    assert (D1, "r-9") not in out
    assert out[(D1, "r-2")].rolling_30d_reviews == 2
    assert sorted(out) == sorted(
        [(D1, "r-1"), (D1, "r-2"), (D1, "r-3"), (D2, "r-1"), (D2, "r-2"), (D2, "r-9")]
    )


def test_restaurant_ratings_daily_names_each_day_as_it_was_then_from_the_history(spark):
    """A rename that took effect during D2 (a snapshot at noon): D1's ratings keep the old
    name and city, D2's carry the new ones (the version valid at the end of the day), and a
    restaurant whose only version closed before D1 is unnamed on D1."""
    noon = dt.datetime(2026, 11, 20, 12, 0)
    history = spark.createDataFrame(
        [
            ("r-1", "Spice Kitchen", "Pune", dt.datetime(2026, 10, 1), noon),
            ("r-1", "Spice Hub", "Mumbai", noon, None),
            ("r-2", "Dosa Corner", "Mumbai", dt.datetime(2026, 10, 1), dt.datetime(2026, 11, 1)),
        ],
        "restaurant_id string, name string, city string, valid_from timestamp, valid_to timestamp",
    )
    out = {
        (r.partition_date, r.restaurant_id): r
        for r in restaurant_ratings_daily(_reviews(spark), [D1, D2], history, 30).collect()
    }
    assert (out[(D1, "r-1")].restaurant_name, out[(D1, "r-1")].city) == ("Spice Kitchen", "Pune")
    assert (out[(D2, "r-1")].restaurant_name, out[(D2, "r-1")].city) == ("Spice Hub", "Mumbai")
    assert out[(D1, "r-2")].restaurant_name is None
    # the figures do not depend on where the names came from
    by_snapshot = {
        (r.partition_date, r.restaurant_id): (r.reviews, r.rolling_30d_reviews)
        for r in restaurant_ratings_daily(
            _reviews(spark), [D1, D2], _restaurants(spark), 30
        ).collect()
    }
    assert {k: (r.reviews, r.rolling_30d_reviews) for k, r in out.items()} == by_snapshot
