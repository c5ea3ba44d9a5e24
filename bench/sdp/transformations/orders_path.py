"""The orders path of one day as Spark Declarative Pipelines materialized views.

Loaded by ``spark-pipelines run`` (which puts ``spark``, a Spark Connect session, into this
module's globals); the transforms are bench/independent_bare.py's, so SDP and the independent
script do the same work and the comparison in ``make bench`` checks both against FoodOps.
"""

import datetime as dt
import sys
from pathlib import Path

from pyspark import pipelines as dp
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/
import independent_bare as ib  # noqa: E402

spark = globals()["spark"]  # noqa: F821 - set by the pipelines CLI before this module runs
LANDING = Path(spark.conf.get("foodops.bench.landing"))
DAY = dt.date.fromisoformat(spark.conf.get("foodops.bench.date"))


@dp.materialized_view(name="restaurants")
def restaurants() -> DataFrame:
    lines = ib.landed_lines(spark, [ib.newest_snapshot(LANDING, "restaurants")])
    return ib.parse(lines, ib.RESTAURANTS)


@dp.materialized_view(name="dishes")
def dishes() -> DataFrame:
    return ib.parse(ib.landed_lines(spark, [ib.newest_snapshot(LANDING, "dishes")]), ib.DISHES)


@dp.materialized_view(name="orders_raw")
def orders_raw() -> DataFrame:
    lines = ib.landed_lines(spark, ib.daily_files(LANDING, "orders", DAY))
    return ib.parse(lines, ib.ORDERS).withColumn("partition_date", F.lit(DAY))


@dp.temporary_view(name="orders_checked")
def orders_checked() -> DataFrame:
    return ib.with_failed_rules(spark.read.table("orders_raw"), DAY)


@dp.materialized_view(name="orders_valid")
def orders_valid() -> DataFrame:
    return ib.silver(spark.read.table("orders_checked"))


@dp.materialized_view(name="dead_letter_queue")
def dead_letter_queue() -> DataFrame:
    return ib.dead_letters(spark.read.table("orders_checked"))


@dp.materialized_view(name="restaurant_daily_sales")
def restaurant_daily_sales() -> DataFrame:
    return ib.restaurant_daily_sales(
        spark.read.table("orders_valid"), spark.read.table("restaurants")
    )


@dp.materialized_view(name="city_hourly_demand")
def city_hourly_demand() -> DataFrame:
    return ib.city_hourly_demand(spark.read.table("orders_valid"))
