"""Gold: the questions the marketplace asks, answered from silver.

Revenue is ``quantity * price`` of placed (not cancelled) orders, in exact
decimals, so gold reconciles with silver to the cent.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

MONEY = "decimal(18,2)"
_MONEY_T = T.DecimalType(18, 2)

RESTAURANT_DAILY_SALES_SCHEMA = T.StructType(
    [
        T.StructField("partition_date", T.DateType()),
        T.StructField("restaurant_id", T.StringType()),
        T.StructField("restaurant_name", T.StringType()),
        T.StructField("city", T.StringType()),
        T.StructField("cuisine", T.StringType()),
        T.StructField("orders", T.LongType()),
        T.StructField("cancelled_orders", T.LongType()),
        T.StructField("items_sold", T.LongType()),
        T.StructField("gross_revenue", _MONEY_T),
        T.StructField("avg_order_value", _MONEY_T),
        T.StructField("distinct_customers", T.LongType()),
    ]
)

CITY_HOURLY_DEMAND_SCHEMA = T.StructType(
    [
        T.StructField("partition_date", T.DateType()),
        T.StructField("city", T.StringType()),
        T.StructField("hour_start", T.TimestampType()),
        T.StructField("orders", T.LongType()),
        T.StructField("cancelled_orders", T.LongType()),
        T.StructField("revenue", _MONEY_T),
        T.StructField("distinct_users", T.LongType()),
    ]
)

# gold column -> the silver columns it is computed from (shown as column lineage)
RESTAURANT_DAILY_SALES_LINEAGE: dict[str, dict[str, list[str]]] = {
    "partition_date": {"orders_valid": ["partition_date"]},
    "restaurant_id": {"orders_valid": ["restaurant_id"]},
    "restaurant_name": {"restaurants": ["name"]},
    "city": {"restaurants": ["city"]},
    "cuisine": {"restaurants": ["cuisine"]},
    "orders": {"orders_valid": ["order_id", "status"]},
    "cancelled_orders": {"orders_valid": ["order_id", "status"]},
    "items_sold": {"orders_valid": ["quantity", "status"]},
    "gross_revenue": {"orders_valid": ["quantity", "price", "status"]},
    "avg_order_value": {"orders_valid": ["quantity", "price", "status", "order_id"]},
    "distinct_customers": {"orders_valid": ["user_id", "status"]},
}

CITY_HOURLY_DEMAND_LINEAGE: dict[str, dict[str, list[str]]] = {
    "partition_date": {"orders_valid": ["partition_date"]},
    "city": {"orders_valid": ["city"]},
    "hour_start": {"orders_valid": ["order_time"]},
    "orders": {"orders_valid": ["order_id", "status"]},
    "cancelled_orders": {"orders_valid": ["order_id", "status"]},
    "revenue": {"orders_valid": ["quantity", "price", "status"]},
    "distinct_users": {"orders_valid": ["user_id", "status"]},
}


def order_revenue() -> Column:
    """Revenue of one silver order row: quantity * unit price when placed, else 0."""
    return F.when(
        F.col("status") == "placed", (F.col("quantity") * F.col("price")).cast(MONEY)
    ).otherwise(F.lit(0).cast(MONEY))


def _placed() -> Column:
    return F.col("status") == "placed"


def restaurant_daily_sales(orders: DataFrame, restaurants: DataFrame) -> DataFrame:
    """Per restaurant and day: orders, cancellations, items, revenue, customers."""
    daily = orders.groupBy("partition_date", "restaurant_id").agg(
        F.count_distinct(F.when(_placed(), F.col("order_id"))).alias("orders"),
        F.count_distinct(F.when(~_placed(), F.col("order_id"))).alias("cancelled_orders"),
        F.coalesce(F.sum(F.when(_placed(), F.col("quantity"))), F.lit(0))
        .cast("long")
        .alias("items_sold"),
        F.sum(order_revenue()).cast(MONEY).alias("gross_revenue"),
        F.count_distinct(F.when(_placed(), F.col("user_id"))).alias("distinct_customers"),
    )
    names = restaurants.select(
        "restaurant_id",
        F.col("name").alias("restaurant_name"),
        "city",
        "cuisine",
    ).dropDuplicates(["restaurant_id"])
    return daily.join(F.broadcast(names), "restaurant_id", "left").select(
        "partition_date",
        "restaurant_id",
        "restaurant_name",
        "city",
        "cuisine",
        F.col("orders").cast("long").alias("orders"),
        F.col("cancelled_orders").cast("long").alias("cancelled_orders"),
        "items_sold",
        "gross_revenue",
        F.when(F.col("orders") > 0, (F.col("gross_revenue") / F.col("orders")).cast(MONEY)).alias(
            "avg_order_value"
        ),
        F.col("distinct_customers").cast("long").alias("distinct_customers"),
    )


def city_hourly_demand(orders: DataFrame) -> DataFrame:
    """Per city and hour of order time: orders, cancellations, revenue, users."""
    return (
        orders.groupBy(
            "partition_date", "city", F.date_trunc("hour", "order_time").alias("hour_start")
        )
        .agg(
            F.count_distinct(F.when(_placed(), F.col("order_id"))).cast("long").alias("orders"),
            F.count_distinct(F.when(~_placed(), F.col("order_id")))
            .cast("long")
            .alias("cancelled_orders"),
            F.sum(order_revenue()).cast(MONEY).alias("revenue"),
            F.count_distinct(F.when(_placed(), F.col("user_id")))
            .cast("long")
            .alias("distinct_users"),
        )
        .select(
            "partition_date",
            "city",
            "hour_start",
            "orders",
            "cancelled_orders",
            "revenue",
            "distinct_users",
        )
    )


def revenue_by_day(df: DataFrame, revenue_column: str) -> DataFrame:
    """(partition_date, revenue) totals, for reconciliation."""
    return df.groupBy("partition_date").agg(F.sum(revenue_column).cast(MONEY).alias("revenue"))
