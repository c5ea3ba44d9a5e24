"""The shared-transforms script: the daily graph as one PySpark script calling OUR code.

    .venv/bin/python bench/bare_spark.py --landing DIR --lake DIR --date YYYY-MM-DD

Same transforms (``foodops_assets.transforms``), same contracts, same Delta writes
(``lakehouse.writers.arrow``: one predicate-overwrite commit per table) as the assets, for
one partition, in one process with one local[2] session and the same Spark settings —
but no Dagster, no checks, no metadata, no read-back of what was written. Prints
``shared_transforms_seconds: S`` (session start included, as it is in a Dagster run).

It isolates what orchestration, checks and metadata add (``orchestration_overhead_ratio``
in ``make bench``). It is NOT an independent baseline: a slow transform of ours slows it
too. ``bench/independent_bare.py`` is the one that shares no code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from foodops_assets.contracts.model import load_contract
from foodops_assets.lakehouse.delta import DeltaStore
from foodops_assets.lakehouse.landing import LandingZone, read_whole_files
from foodops_assets.lakehouse.spark import LOCAL_SPARK_CONF
from foodops_assets.lakehouse.tables import (
    CITY_HOURLY_DEMAND,
    DEAD_LETTER_QUEUE,
    DELIVERY_PERFORMANCE_DAILY,
    DISH_FEATURES,
    DISHES,
    RESTAURANT_DAILY_SALES,
    RESTAURANT_RATINGS_DAILY,
    RESTAURANTS,
    SILVER_BY_SOURCE,
    USER_FEATURES,
    _daily,
)
from foodops_assets.lakehouse.writers import arrow
from foodops_assets.settings import DEFAULT_SPARK_DRIVER_MEMORY
from foodops_assets.transforms import features, gold
from foodops_assets.transforms.bronze import parse_records, partition_date_from_path, split_lines
from foodops_assets.transforms.references import attach_references, lookup_columns
from foodops_assets.transforms.silver import validate

FEATURE_WINDOW_DAYS = 14  # assets/ml.py (not imported: it imports Dagster)


def _days(day: dt.date, back: int) -> list[dt.date]:
    return [day - dt.timedelta(days=i) for i in range(back, -1, -1)]


def _session(driver_memory: str) -> SparkSession:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master("local[2]").config("spark.driver.memory", driver_memory)
    for k, v in LOCAL_SPARK_CONF.items():
        builder = builder.config(k, v)
    return builder.getOrCreate()


def run(
    landing_root: str,
    lake_root: str,
    day: dt.date,
    driver_memory: str = DEFAULT_SPARK_DRIVER_MEMORY,
) -> float:
    start = time.perf_counter()
    spark = _session(driver_memory)
    writer = arrow.Writer(DeltaStore(lake_root))
    landing = LandingZone(landing_root)
    contracts = {
        n: load_contract(n) for n in ("orders", "deliveries", "reviews", "restaurants", "dishes")
    }
    window_start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    window_end = window_start + dt.timedelta(days=1)
    where = {"partition_date": [day]}

    for ref, name in ((RESTAURANTS, "restaurants"), (DISHES, "dishes")):
        snap = landing.newest_snapshot(name)
        df = parse_records(split_lines(read_whole_files(spark, [snap.path])), contracts[name])
        writer.write_table(df, ref)

    for source in ("orders", "deliveries", "reviews"):
        contract = contracts[source]
        files = [f.path for f in landing.daily_files(source, [day])[day]]
        bronze = parse_records(
            split_lines(read_whole_files(spark, files)),
            contract,
            partition_date_from_path("source_file"),
        )
        bronze_table = _daily("bronze", f"{source}_raw")
        writer.write_partitions(bronze, bronze_table, where)
        bronze = writer.read(spark, bronze_table, where)
        lookups = {}
        for r in contract.references:
            lookups[r.source] = writer.read(
                spark, SILVER_BY_SOURCE[r.source], {"partition_date": _days(day, r.lookback_days)}
            ).select(*lookup_columns(contract, r.source))
        if lookups:
            bronze = attach_references(bronze, contract, lookups)
        validated = validate(bronze, contract, window_start, window_end)
        classified = validated.classified.cache()
        writer.write_partitions(
            validated.rejected, DEAD_LETTER_QUEUE, {"partition_date": [day], "source": [source]}
        )
        writer.write_partitions(validated.valid, SILVER_BY_SOURCE[source], where)
        classified.unpersist()

    restaurants = writer.read(spark, RESTAURANTS).where(F.col("restaurant_id").isNotNull())
    orders = writer.read(spark, SILVER_BY_SOURCE["orders"], where).cache()
    writer.write_partitions(
        gold.restaurant_daily_sales(orders, restaurants), RESTAURANT_DAILY_SALES, where
    )
    writer.write_partitions(gold.city_hourly_demand(orders), CITY_HOURLY_DEMAND, where)
    orders.unpersist()
    deliveries = writer.read(spark, SILVER_BY_SOURCE["deliveries"], where)
    sla = float(contracts["deliveries"].sla_value("on_time_minutes", 45))
    writer.write_partitions(
        gold.delivery_performance_daily(deliveries, sla), DELIVERY_PERFORMANCE_DAILY, where
    )
    rating_days = _days(day, gold.ROLLING_WINDOW_DAYS - 1)
    reviews = writer.read(spark, SILVER_BY_SOURCE["reviews"], {"partition_date": rating_days})
    writer.write_partitions(
        gold.restaurant_ratings_daily(reviews, [day], restaurants, gold.ROLLING_WINDOW_DAYS),
        RESTAURANT_RATINGS_DAILY,
        where,
    )

    w = FEATURE_WINDOW_DAYS
    dishes = writer.read(spark, DISHES)
    orders_w = writer.read(spark, SILVER_BY_SOURCE["orders"], {"partition_date": _days(day, w - 1)})
    reviews_w = writer.read(
        spark, SILVER_BY_SOURCE["reviews"], {"partition_date": _days(day, w - 1)}
    )
    writer.write_partitions(
        features.user_features(orders_w, reviews_w, dishes, [day], w), USER_FEATURES, where
    )
    orders_2w = writer.read(
        spark, SILVER_BY_SOURCE["orders"], {"partition_date": _days(day, 2 * w - 1)}
    )
    writer.write_partitions(
        features.dish_features(orders_2w, reviews_w, [day], w), DISH_FEATURES, where
    )
    elapsed = time.perf_counter() - start
    spark.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--driver-memory", default=DEFAULT_SPARK_DRIVER_MEMORY)
    args = parser.parse_args()
    seconds = run(args.landing, args.lake, args.date, args.driver_memory)
    print(f"shared_transforms_seconds: {seconds:.2f}")


if __name__ == "__main__":
    main()
