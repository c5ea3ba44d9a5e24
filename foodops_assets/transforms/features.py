"""ML features as of a date: what was known about users and dishes at the end of day D.

Point in time: features for as-of date D read only records of partitions in the
trailing window D-(W-1)..D whose own timestamp (order_time, review_time) is before
D+1 00:00 UTC, so a record dated after D can never change them (the asset reads the
window's partitions through a partition mapping; these functions filter again, since a
partition's rules allow a timestamp a little past its day).

Every function takes the as-of days as a list, so one Spark job computes a whole
backfill range: rows are paired with each as-of date whose window holds them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from . import versions

MONEY = "decimal(18,2)"
_MONEY_T = T.DecimalType(18, 2)

USER_FEATURES_SCHEMA = T.StructType(
    [
        T.StructField("partition_date", T.DateType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("window_start", T.DateType()),
        T.StructField("home_city", T.StringType()),
        T.StructField("orders", T.LongType()),
        T.StructField("cancelled_orders", T.LongType()),
        T.StructField("cancellation_share", T.DoubleType()),
        T.StructField("spend", _MONEY_T),
        T.StructField("last_order_date", T.DateType()),
        T.StructField("recency_days", T.IntegerType()),
        T.StructField("favourite_cuisine", T.StringType()),
        T.StructField("favourite_cuisine_orders", T.LongType()),
        T.StructField("reviews_given", T.LongType()),
        T.StructField("avg_rating_given", T.DoubleType()),
    ]
)

DISH_FEATURES_SCHEMA = T.StructType(
    [
        T.StructField("partition_date", T.DateType()),
        T.StructField("dish_id", T.StringType()),
        T.StructField("restaurant_id", T.StringType()),
        T.StructField("window_start", T.DateType()),
        T.StructField("orders", T.LongType()),
        T.StructField("distinct_users", T.LongType()),
        T.StructField("repeat_users", T.LongType()),
        T.StructField("reorder_rate", T.DoubleType()),
        T.StructField("reviews", T.LongType()),
        T.StructField("avg_rating", T.DoubleType()),
        T.StructField("orders_previous_window", T.LongType()),
        T.StructField("orders_trend", T.DoubleType()),
    ]
)

USER_FEATURES_LINEAGE: dict[str, dict[str, list[str]]] = {
    "partition_date": {},
    "user_id": {"orders_valid": ["user_id"]},
    "window_start": {},
    "home_city": {"orders_valid": ["city", "order_time"]},
    "orders": {"orders_valid": ["order_id", "status"]},
    "cancelled_orders": {"orders_valid": ["order_id", "status"]},
    "cancellation_share": {"orders_valid": ["order_id", "status"]},
    "spend": {"orders_valid": ["quantity", "price", "status"]},
    "last_order_date": {"orders_valid": ["order_time"]},
    "recency_days": {"orders_valid": ["order_time"]},
    "favourite_cuisine": {"orders_valid": ["dish_id", "status"], "dishes": ["cuisine"]},
    "favourite_cuisine_orders": {"orders_valid": ["dish_id", "status"], "dishes": ["cuisine"]},
    "reviews_given": {"reviews_valid": ["review_id", "user_id"]},
    "avg_rating_given": {"reviews_valid": ["rating", "user_id"]},
}

DISH_FEATURES_LINEAGE: dict[str, dict[str, list[str]]] = {
    "partition_date": {},
    "dish_id": {"orders_valid": ["dish_id"]},
    "restaurant_id": {"orders_valid": ["restaurant_id"]},
    "window_start": {},
    "orders": {"orders_valid": ["order_id", "status"]},
    "distinct_users": {"orders_valid": ["user_id", "status"]},
    "repeat_users": {"orders_valid": ["user_id", "status"]},
    "reorder_rate": {"orders_valid": ["user_id", "status"]},
    "reviews": {"reviews_valid": ["review_id", "order_id"], "orders_valid": ["order_id"]},
    "avg_rating": {"reviews_valid": ["rating", "order_id"], "orders_valid": ["order_id"]},
    "orders_previous_window": {"orders_valid": ["order_id", "status"]},
    "orders_trend": {"orders_valid": ["order_id", "status"]},
}


def _placed() -> Column:
    return F.col("status") == "placed"


def as_of_frame(df: DataFrame, days: Sequence[dt.date], window_days: int) -> DataFrame:
    """One row per as-of date with its window: ``as_of``, ``window_start``, ``cutoff``
    (the first instant after the as-of day, UTC)."""
    if window_days < 1:
        raise ValueError(f"window_days={window_days} must be at least 1")
    if not days:
        raise ValueError("no as-of dates given")
    days_col = F.array(*[F.lit(d) for d in sorted(set(days))])
    return (
        df.sparkSession.range(1)
        .select(F.explode(days_col).alias("as_of"))
        .select(
            "as_of",
            F.date_sub("as_of", window_days - 1).alias("window_start"),
            F.to_timestamp(F.date_add("as_of", 1)).alias("cutoff"),
        )
    )


def in_window(
    df: DataFrame, as_of: DataFrame, time_column: str, lag_windows: int = 0, window_days: int = 1
) -> DataFrame:
    """Pair each record with every as-of date whose window (shifted back ``lag_windows``
    whole windows) holds its partition, keeping only records timed before the cutoff."""
    shift = lag_windows * window_days
    a = as_of.select(
        F.col("as_of"),
        F.date_sub("window_start", shift).alias("_from"),
        F.date_sub("as_of", shift).alias("_to"),
        F.col("cutoff").alias("_cutoff"),
    )
    cond = (
        (F.col("partition_date") >= F.col("_from"))
        & (F.col("partition_date") <= F.col("_to"))
        & (F.col(time_column) < F.col("_cutoff"))
    )
    return df.join(F.broadcast(a), cond, "inner").drop("_from", "_to", "_cutoff")


def user_features(
    orders: DataFrame,
    reviews: DataFrame,
    dishes: DataFrame,
    days: Sequence[dt.date],
    window_days: int,
) -> DataFrame:
    """Per as-of date and user with an order (placed or cancelled) in the window.

    ``dishes`` is one snapshot or the history (``dishes_history``): then an order counts
    for the cuisine its dish had when it was ordered (``order_time``)."""
    as_of = as_of_frame(orders, days, window_days)
    o = in_window(orders, as_of, "order_time")

    base = o.groupBy("as_of", "user_id").agg(
        F.count(F.when(_placed(), F.col("order_id"))).cast("long").alias("orders"),
        F.count(F.when(~_placed(), F.col("order_id"))).cast("long").alias("cancelled_orders"),
        F.coalesce(
            F.sum(F.when(_placed(), (F.col("quantity") * F.col("price")).cast(MONEY))),
            F.lit(0).cast(MONEY),
        )
        .cast(MONEY)
        .alias("spend"),
        F.to_date(F.max("order_time")).alias("last_order_date"),
        # the city of the newest order (ties: the greatest order_id) is where the user lives
        F.max_by("city", F.struct("order_time", "order_id")).alias("home_city"),
    )

    placed = o.where(_placed())
    if versions.is_history(dishes):
        dish_versions = dishes.select("dish_id", "valid_from", "valid_to", "cuisine")
        with_cuisine = versions.as_of(placed, dish_versions, "dish_id", "order_time").where(
            F.col("cuisine").isNotNull()
        )
    else:
        cuisine = dishes.select("dish_id", "cuisine").dropDuplicates(["dish_id"])
        with_cuisine = placed.join(F.broadcast(cuisine), "dish_id", "inner")
    by_cuisine = with_cuisine.groupBy("as_of", "user_id", "cuisine").agg(
        F.count(F.lit(1)).alias("n")
    )
    rank = Window.partitionBy("as_of", "user_id").orderBy(F.desc("n"), F.asc("cuisine"))
    favourite = (
        by_cuisine.withColumn("_r", F.row_number().over(rank))
        .where(F.col("_r") == 1)
        .select(
            "as_of",
            "user_id",
            F.col("cuisine").alias("favourite_cuisine"),
            F.col("n").cast("long").alias("favourite_cuisine_orders"),
        )
    )

    r = (
        in_window(reviews, as_of, "review_time")
        .groupBy("as_of", "user_id")
        .agg(
            F.count(F.lit(1)).cast("long").alias("reviews_given"),
            F.avg(F.col("rating").cast("double")).alias("avg_rating_given"),
        )
    )

    total = F.col("orders") + F.col("cancelled_orders")
    return (
        base.join(favourite, ["as_of", "user_id"], "left")
        .join(r, ["as_of", "user_id"], "left")
        .select(
            F.col("as_of").alias("partition_date"),
            "user_id",
            F.date_sub("as_of", window_days - 1).alias("window_start"),
            "home_city",
            "orders",
            "cancelled_orders",
            (F.col("cancelled_orders") / total).cast("double").alias("cancellation_share"),
            "spend",
            "last_order_date",
            F.datediff("as_of", "last_order_date").cast("int").alias("recency_days"),
            "favourite_cuisine",
            "favourite_cuisine_orders",
            F.coalesce("reviews_given", F.lit(0)).cast("long").alias("reviews_given"),
            "avg_rating_given",
        )
    )


def dish_features(
    orders: DataFrame, reviews: DataFrame, days: Sequence[dt.date], window_days: int
) -> DataFrame:
    """Per as-of date and dish with a placed order in the window or the one before it.

    ``orders`` must cover two windows (D-(2W-1)..D): the previous window gives the trend,
    and a review in the window is matched to its dish through its order.
    """
    as_of = as_of_frame(orders, days, window_days)
    placed = orders.where(_placed())
    current = in_window(placed, as_of, "order_time")
    previous = in_window(placed, as_of, "order_time", lag_windows=1, window_days=window_days)

    per_user = current.groupBy("as_of", "dish_id", "restaurant_id", "user_id").agg(
        F.count(F.lit(1)).alias("n")
    )
    popularity = per_user.groupBy("as_of", "dish_id", "restaurant_id").agg(
        F.sum("n").cast("long").alias("orders"),
        F.count(F.lit(1)).cast("long").alias("distinct_users"),
        F.count(F.when(F.col("n") >= 2, True)).cast("long").alias("repeat_users"),
    )
    before = previous.groupBy("as_of", "dish_id", "restaurant_id").agg(
        F.count(F.lit(1)).cast("long").alias("orders_previous_window")
    )

    # a review of the window counts for the dish of its order (any order read: reviews
    # come after their orders, so the two windows hold every order a review can point to)
    dish_of_order = placed.select("order_id", "dish_id", "restaurant_id").dropDuplicates(
        ["order_id"]
    )
    rated = (
        in_window(reviews, as_of, "review_time")
        .select("as_of", "order_id", "rating")
        .join(dish_of_order, "order_id", "inner")
        .groupBy("as_of", "dish_id", "restaurant_id")
        .agg(
            F.count(F.lit(1)).cast("long").alias("reviews"),
            F.avg(F.col("rating").cast("double")).alias("avg_rating"),
        )
    )

    keys = ["as_of", "dish_id", "restaurant_id"]
    prev = F.coalesce(F.col("orders_previous_window"), F.lit(0))
    cur = F.coalesce(F.col("orders"), F.lit(0))
    return (
        popularity.join(before, keys, "full_outer")
        .join(rated, keys, "left")
        .select(
            F.col("as_of").alias("partition_date"),
            "dish_id",
            "restaurant_id",
            F.date_sub("as_of", window_days - 1).alias("window_start"),
            cur.cast("long").alias("orders"),
            F.coalesce("distinct_users", F.lit(0)).cast("long").alias("distinct_users"),
            F.coalesce("repeat_users", F.lit(0)).cast("long").alias("repeat_users"),
            (F.col("repeat_users") / F.col("distinct_users")).cast("double").alias("reorder_rate"),
            F.coalesce("reviews", F.lit(0)).cast("long").alias("reviews"),
            "avg_rating",
            prev.cast("long").alias("orders_previous_window"),
            F.when(prev > 0, (cur - prev) / prev).cast("double").alias("orders_trend"),
        )
    )
