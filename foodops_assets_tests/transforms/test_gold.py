import datetime as dt
from decimal import Decimal

from foodops_assets.transforms.gold import city_hourly_demand, restaurant_daily_sales

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
