"""An independent baseline: the orders path as one plain PySpark script.

    .venv/bin/python bench/independent_bare.py --landing DIR --lake DIR --date YYYY-MM-DD
    .venv/bin/python bench/independent_bare.py --landing DIR --date YYYY-MM-DD --floor

Written from DESIGN.md and the orders, restaurants and dishes contracts the way a data
engineer would write it in an afternoon, importing nothing from ``foodops_assets``: the
schemas and rules are typed in below, so a slow transform of the platform cannot hide in
this baseline (``bench/bare_spark.py``, which shares the platform's transforms, cannot show
one). For one day D it builds

- ``bronze/restaurants`` and ``bronze/dishes`` from the newest snapshot (greatest file name);
- ``bronze/orders_raw``: every non-blank landed line of D, typed, with ``source_file``,
  ``source_line`` (1-based), ``ingested_at`` (the file's modification time) and the raw text
  of any line that did not parse cleanly or had fields outside the contract;
- ``silver/orders_valid``: the rows passing every rule, one per ``order_id`` (the newest
  landing wins: greatest source_file, then source_line);
- ``silver/dead_letter_queue``: every failing row once, with ``failed_rules``;
- ``gold/restaurant_daily_sales`` and ``gold/city_hourly_demand``;

each written with ONE delta-rs commit (``write_deltalake``; a predicate overwrite of
partition D for the partitioned tables) from the rows collected to this process as Arrow.
No orchestrator, no checks, no metadata. Prints ``independent_bare_seconds: S`` (the Spark
start included) and the seconds of each step. ``--floor`` only starts Spark and parses the
day's orders JSON with the contract schema: the least any implementation does.

The DataFrame functions (:func:`landed_lines`, :func:`parse`, :func:`with_failed_rules`,
...) are also the flows of the Spark Declarative Pipelines comparison (``bench/sdp/``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

# -- the contracts, typed in (resources/contracts/*.odcs.yaml, version 1.0.0) -------------------
ORDERS = {
    "order_id": "string",
    "user_id": "string",
    "restaurant_id": "string",
    "dish_id": "string",
    "quantity": "int",
    "price": "decimal(10,2)",
    "order_time": "timestamp",  # ISO-8601, UTC when no offset
    "city": "string",
    "payment_method": "string",
    "status": "string",
}
RESTAURANTS = {
    "restaurant_id": "string",
    "name": "string",
    "cuisine": "string",
    "city": "string",
    "latitude": "double",
    "longitude": "double",
    "onboarded_date": "date",
}
DISHES = {
    "dish_id": "string",
    "restaurant_id": "string",
    "name": "string",
    "cuisine": "string",
    "is_veg": "boolean",
    "list_price": "decimal(10,2)",
}
ORDER_STATUSES = ["placed", "cancelled"]
MAX_AGE_DAYS = 7  # order_time_in_window
FUTURE_TOLERANCE = dt.timedelta(minutes=60)
PARSEABLE = "parseable_record"
MONEY = "decimal(18,2)"
# what we call the Spark JSON reader's column for a line it could not read as the schema
CORRUPT = "_corrupt"

LINEAGE = ["source_file", "source_line", "ingested_at"]


# -- reading ----------------------------------------------------------------------------------
def landed_lines(spark: SparkSession, paths: list[str]) -> DataFrame:
    """One row per non-blank line of the files: source_file, source_line (1-based, blank lines
    counted), ingested_at (the file's modification time), value (the line)."""
    files = spark.read.text(paths, wholetext=True).select(
        F.url_decode(F.regexp_replace("_metadata.file_path", "^file:(//)?", "")).alias(
            "source_file"
        ),
        F.col("_metadata.file_modification_time").alias("ingested_at"),
        F.posexplode(F.split("value", "\r?\n")).alias("pos", "value"),
    )
    return files.where(F.length(F.trim("value")) > 0).select(
        "source_file",
        (F.col("pos") + 1).cast("long").alias("source_line"),
        "ingested_at",
        "value",
    )


_TYPES = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "double": T.DoubleType(),
    "boolean": T.BooleanType(),
    "decimal(10,2)": T.DecimalType(10, 2),
    "timestamp": T.TimestampType(),
    "date": T.DateType(),
}


def _spark_type(t: str) -> T.DataType:
    return _TYPES[t]


def parse(lines: DataFrame, columns: dict[str, str]) -> DataFrame:
    """Bronze: the contract's columns typed (null where the line had no usable value),
    ``_rescued_data`` (the line, when it did not parse cleanly or had fields outside the
    contract), ``_parse_error``, ``_extra_fields``, then the lineage columns.

    Strictly typed: ``"quantity": "2"`` or ``2.5`` is a wrong type, as is a number where an
    ISO-8601 timestamp is expected. A line that is not a JSON object is malformed."""
    # timestamps and dates are read as text and parsed below (the JSON reader would take an
    # epoch number for a timestamp, which the contract does not allow)
    as_text = {"timestamp", "date"}
    typed = T.StructType(
        [
            T.StructField(n, T.StringType() if t in as_text else _spark_type(t))
            for n, t in columns.items()
        ]
        + [T.StructField(CORRUPT, T.StringType())]
    )
    # every field as text: only for the lines the typed read flagged, to name the fields
    # that had the wrong type (a number or a string arrives as its text, null as null)
    loose = T.StructType(
        [T.StructField(n, T.StringType()) for n in columns]
        + [T.StructField(CORRUPT, T.StringType())]
    )
    options = {"columnNameOfCorruptRecord": CORRUPT}
    step1 = lines.select(
        "*",
        F.from_json("value", typed, options).alias("_t"),
        F.json_object_keys("value").alias("_keys"),
    )
    step2 = step1.select(
        "*",
        F.when(F.col(f"_t.{CORRUPT}").isNotNull(), F.from_json("value", loose, options)).alias(
            "_l"
        ),
    )
    malformed = F.col("_keys").isNull() | F.col(f"_l.{CORRUPT}").isNotNull()
    values: dict[str, Column] = {}
    wrong: list[Column] = []
    for name, t in columns.items():
        raw = F.col(f"_t.{name}")
        if t == "timestamp":
            value = raw.try_cast("timestamp")
            bad = raw.isNotNull() & value.isNull()
        elif t == "date":
            value = F.to_date(raw.try_cast("timestamp"))
            bad = raw.isNotNull() & value.isNull()
        elif t == "string":
            value, bad = raw, F.lit(False)
        else:
            value = raw
            bad = F.col(f"_l.{name}").isNotNull() & raw.isNull()
        values[name] = F.when(~malformed, value)
        wrong.append(F.when(bad, F.lit(name)))
    wrong_fields = F.array_compact(F.array(*wrong))
    extra = F.array_except("_keys", F.array(*[F.lit(n) for n in columns]))
    parse_error = F.when(malformed, F.lit("malformed JSON")).when(
        F.size(wrong_fields) > 0, F.concat(F.lit("wrong type: "), F.array_join(wrong_fields, ", "))
    )
    extra_fields = F.when(~malformed & (F.size(extra) > 0), extra)
    out = step2.select(
        *[v.alias(n) for n, v in values.items()],
        parse_error.alias("_parse_error"),
        extra_fields.alias("_extra_fields"),
        "value",
        *LINEAGE,
    )
    return out.select(
        *columns,
        F.when(
            F.col("_parse_error").isNotNull() | F.col("_extra_fields").isNotNull(), F.col("value")
        ).alias("_rescued_data"),
        "_parse_error",
        "_extra_fields",
        *LINEAGE,
    )


# -- silver -----------------------------------------------------------------------------------
def _not_blank(c: str) -> Column:
    return F.coalesce(F.length(F.trim(c)) > 0, F.lit(False))


def _positive(c: str) -> Column:
    return F.coalesce(F.col(c) > 0, F.lit(False))


def with_failed_rules(bronze: DataFrame, day: dt.date) -> DataFrame:
    """Bronze plus ``failed_rules`` (array of rule names, empty when the row passes).

    The rule names are the orders contract's. Like the platform: a malformed line fails
    only parseable_record; a line with a wrong-typed value fails parseable_record AND every
    rule its remaining values break (the mistyped value counts as missing). DESIGN.md
    names neither has_restaurant_id nor valid_status; the contract does, so they are here."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    earliest = start - dt.timedelta(days=MAX_AGE_DAYS)
    latest = start + dt.timedelta(days=1) + FUTURE_TOLERANCE
    rules = {
        "has_order_id": _not_blank("order_id"),
        "has_user_id": _not_blank("user_id"),
        "has_restaurant_id": _not_blank("restaurant_id"),
        "has_dish_id": _not_blank("dish_id"),
        "valid_price": _positive("price"),
        "valid_quantity": _positive("quantity"),
        "valid_status": F.coalesce(F.col("status").isin(ORDER_STATUSES), F.lit(False)),
        "order_time_in_window": F.coalesce(
            (F.col("order_time") >= F.lit(earliest)) & (F.col("order_time") < F.lit(latest)),
            F.lit(False),
        ),
    }
    unparseable = F.col("_parse_error").isNotNull()
    malformed = F.coalesce(F.col("_parse_error").startswith("malformed"), F.lit(False))
    failed = F.array_compact(
        F.array(
            F.when(unparseable, F.lit(PARSEABLE)),
            *[F.when(~malformed & ~ok, F.lit(name)) for name, ok in rules.items()],
        )
    )
    return bronze.withColumn("failed_rules", failed)


def silver(checked: DataFrame) -> DataFrame:
    """The passing rows, one per order_id: the newest landing wins."""
    newest = Window.partitionBy("partition_date", "order_id").orderBy(
        F.col("source_file").desc(), F.col("source_line").desc()
    )
    return (
        checked.where(F.size("failed_rules") == 0)
        .withColumn("_n", F.row_number().over(newest))
        .where("_n = 1")
        .select(*ORDERS, *LINEAGE, "partition_date")
    )


def dead_letters(checked: DataFrame) -> DataFrame:
    """The failing rows, each once, in the dead-letter-queue layout.

    raw_record: DESIGN.md says "the original line". Bronze keeps the line only when it was
    rescued; for a line that parsed cleanly but broke a rule, the platform rebuilds the record
    from its typed values (JSON, nulls kept). This does the same, so the tables compare row
    for row (it costs the same as carrying the line: a projection of ~1 % of the rows)."""
    record = F.to_json(F.struct(*ORDERS), {"ignoreNullFields": "false"})
    return checked.where(F.size("failed_rules") > 0).select(
        F.lit("orders").alias("source"),
        "partition_date",
        F.coalesce("_rescued_data", record).alias("raw_record"),
        "failed_rules",
        F.col("_parse_error").alias("parse_error"),
        *LINEAGE,
    )


# -- gold -------------------------------------------------------------------------------------
def _placed() -> Column:
    return F.col("status") == "placed"


def _revenue() -> Column:
    return F.when(_placed(), (F.col("quantity") * F.col("price")).cast(MONEY)).otherwise(
        F.lit(0).cast(MONEY)
    )


def restaurant_daily_sales(orders: DataFrame, restaurants: DataFrame) -> DataFrame:
    # silver holds one row per order_id and day: counting rows counts orders
    daily = orders.groupBy("partition_date", "restaurant_id").agg(
        F.sum(F.when(_placed(), 1).otherwise(0)).alias("orders"),
        F.sum(F.when(_placed(), 0).otherwise(1)).alias("cancelled_orders"),
        F.sum(F.when(_placed(), F.col("quantity")).otherwise(0)).cast("long").alias("items_sold"),
        F.sum(_revenue()).cast(MONEY).alias("gross_revenue"),
        F.count_distinct(F.when(_placed(), F.col("user_id"))).alias("distinct_customers"),
    )
    # one row per restaurant (the snapshot's last line wins); a groupBy, not
    # dropDuplicates(subset), which Spark Connect resolves before SDP has made the table
    names = (
        restaurants.where(F.col("restaurant_id").isNotNull())
        .groupBy("restaurant_id")
        .agg(
            F.max_by(
                F.struct(F.col("name").alias("restaurant_name"), "city", "cuisine"), "source_line"
            ).alias("r")
        )
        .select("restaurant_id", "r.*")
    )
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
    return orders.groupBy(
        "partition_date", "city", F.date_trunc("hour", "order_time").alias("hour_start")
    ).agg(
        F.sum(F.when(_placed(), 1).otherwise(0)).cast("long").alias("orders"),
        F.sum(F.when(_placed(), 0).otherwise(1)).cast("long").alias("cancelled_orders"),
        F.sum(_revenue()).cast(MONEY).alias("revenue"),
        F.count_distinct(F.when(_placed(), F.col("user_id"))).cast("long").alias("distinct_users"),
    )


# -- the script -------------------------------------------------------------------------------
def session(driver_memory: str = "3g") -> SparkSession:
    # the platform's embedded session settings, so the comparison is about the code: local[2],
    # a 3 GB driver, no UI, 4 shuffle partitions, UTC
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.log.level", "WARN")
        .getOrCreate()
    )


def newest_snapshot(landing: Path, source: str) -> str:
    return str(max((landing / source).glob("*.jsonl"), key=lambda p: p.name))


def daily_files(landing: Path, source: str, day: dt.date) -> list[str]:
    return sorted(str(p) for p in (landing / source / f"date={day.isoformat()}").glob("*.jsonl"))


def write(df: DataFrame, uri: str, predicate: str | None = None, partition_by=None) -> int:
    """The rows of ``df`` into the Delta table at ``uri``: one delta-rs commit that replaces
    the rows matching ``predicate`` (the whole table without one)."""
    from deltalake import write_deltalake

    rows = df.toArrow()
    write_deltalake(uri, rows, mode="overwrite", predicate=predicate, partition_by=partition_by)
    return rows.num_rows


def run(landing: Path, lake: Path, day: dt.date, driver_memory: str = "3g") -> dict[str, float]:
    t0 = time.perf_counter()
    steps: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        steps[name] = now - since
        return now

    spark = session(driver_memory)
    t = lap("spark_start", t0)
    refs = {}
    for name, columns in (("restaurants", RESTAURANTS), ("dishes", DISHES)):
        refs[name] = parse(landed_lines(spark, [newest_snapshot(landing, name)]), columns).cache()
        write(refs[name], f"{lake}/bronze/{name}")
    t = lap("restaurants_and_dishes", t)

    this_day = f"partition_date = '{day.isoformat()}'"
    lines = landed_lines(spark, daily_files(landing, "orders", day))
    bronze = parse(lines, ORDERS).withColumn("partition_date", F.lit(day)).cache()
    bronze_rows = write(bronze, f"{lake}/bronze/orders_raw", this_day, ["partition_date"])
    t = lap("orders_raw", t)

    checked = with_failed_rules(bronze, day)
    valid = silver(checked).cache()
    silver_rows = write(valid, f"{lake}/silver/orders_valid", this_day, ["partition_date"])
    dlq_rows = write(
        dead_letters(checked),
        f"{lake}/silver/dead_letter_queue",
        f"{this_day} AND source = 'orders'",
        ["partition_date", "source"],
    )
    bronze.unpersist()
    t = lap("orders_valid", t)

    write(
        restaurant_daily_sales(valid, refs["restaurants"]),
        f"{lake}/gold/restaurant_daily_sales",
        this_day,
        ["partition_date"],
    )
    t = lap("restaurant_daily_sales", t)
    write(
        city_hourly_demand(valid), f"{lake}/gold/city_hourly_demand", this_day, ["partition_date"]
    )
    t = lap("city_hourly_demand", t)
    steps["total"] = t - t0
    steps["bronze_rows"] = bronze_rows
    steps["silver_rows"] = silver_rows
    steps["dlq_rows"] = dlq_rows
    steps["duplicates_dropped"] = bronze_rows - silver_rows - dlq_rows
    spark.stop()
    return steps


def json_floor(landing: Path, day: dt.date, driver_memory: str = "3g") -> float:
    """Spark start + every orders line of the day parsed with the contract schema."""
    t0 = time.perf_counter()
    spark = session(driver_memory)
    schema = T.StructType([T.StructField(n, _spark_type(t)) for n, t in ORDERS.items()])
    parsed = spark.read.text(daily_files(landing, "orders", day)).select(
        F.from_json("value", schema).alias("j")
    )
    parsed.agg(*[F.count(f"j.{n}") for n in ORDERS]).collect()
    elapsed = time.perf_counter() - t0
    spark.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True, type=Path)
    parser.add_argument("--lake", type=Path)
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument("--floor", action="store_true", help="only the JSON scan floor")
    args = parser.parse_args()
    if args.floor:
        print(
            f"json_scan_floor_seconds: {json_floor(args.landing, args.date, args.driver_memory):.2f}"
        )
        return
    if args.lake is None:
        parser.error("--lake is required (except with --floor)")
    steps = run(args.landing, args.lake, args.date, args.driver_memory)
    for name, value in steps.items():
        if name != "total":
            print(f"# {name}: {value:.2f}" if isinstance(value, float) else f"# {name}: {value}")
    print(f"independent_bare_seconds: {steps['total']:.2f}")


if __name__ == "__main__":
    main()
