"""The real-time baseline: Spark Structured Streaming over one day's orders landing directory.

    .venv/bin/python bench/realtime_streaming.py --landing DIR --lake DIR --date YYYY-MM-DD

Imports nothing from ``foodops_assets``: the parsing and the rules are
``bench/independent_bare.py``'s (typed in from the contracts). What a data engineer writes
for dashboards that follow the orders within seconds, in about fifty lines:

- a file source on ``<landing>/orders/date=D`` (whole files, so line numbers are the file's),
  a processing-time trigger of ``--trigger-seconds`` (1 s);
- each micro-batch: parse, rules, one row per ``order_id`` *within the batch* (a duplicate in
  a later file of another batch is appended again), the passing rows appended to
  ``silver/orders_valid``, the failing ones to ``silver/dead_letter_queue``, and the batch's
  sales added to ``gold/restaurant_daily_sales`` with a delta-rs MERGE (counts, items and
  revenue summed; no distinct customers: a sum of distinct counts is not a distinct count);
- no audit before publishing, no rollback, no conservation check, no lineage.

The first micro-batch takes every file already in the directory. Runs until SIGTERM or
SIGINT; prints one line per micro-batch (``batch N: rows, seconds``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import time
from pathlib import Path

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from independent_bare import (  # noqa: E402  (a sibling script, not a package)
    ORDERS,
    _placed,
    _revenue,
    dead_letters,
    newest_snapshot,
    parse,
    session,
    with_failed_rules,
)

SALES_KEY = "t.partition_date = s.partition_date AND t.restaurant_id = s.restaurant_id"
SUMMED = ("orders", "cancelled_orders", "items_sold", "gross_revenue")


def batch_lines(files: DataFrame) -> DataFrame:
    """Whole files (``source_file``, ``ingested_at``, ``value``) -> their non-blank lines."""
    exploded = files.select(
        "source_file",
        "ingested_at",
        F.posexplode(F.split("value", "\r?\n")).alias("pos", "value"),
    )
    return exploded.where(F.length(F.trim("value")) > 0).select(
        "source_file", (F.col("pos") + 1).cast("long").alias("source_line"), "ingested_at", "value"
    )


def batch_sales(valid: DataFrame) -> DataFrame:
    return valid.groupBy("partition_date", "restaurant_id").agg(
        F.sum(F.when(_placed(), 1).otherwise(0)).cast("long").alias("orders"),
        F.sum(F.when(_placed(), 0).otherwise(1)).cast("long").alias("cancelled_orders"),
        F.sum(F.when(_placed(), F.col("quantity")).otherwise(0)).cast("long").alias("items_sold"),
        F.sum(_revenue()).cast("decimal(18,2)").alias("gross_revenue"),
    )


def process(lake: Path, day: dt.date):
    from deltalake import DeltaTable, write_deltalake

    sales_uri = f"{lake}/gold/restaurant_daily_sales"

    def each_batch(files: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        bronze = parse(batch_lines(files), ORDERS).withColumn("partition_date", F.lit(day))
        checked = with_failed_rules(bronze, day).cache()
        newest = F.row_number().over(
            Window.partitionBy("order_id").orderBy(
                F.col("source_file").desc(), F.col("source_line").desc()
            )
        )
        valid = (
            checked.where(F.size("failed_rules") == 0)
            .withColumn("_n", newest)
            .where("_n = 1")
            .select(*ORDERS, "source_file", "source_line", "ingested_at", "partition_date")
        ).cache()
        rows = valid.toArrow()
        if rows.num_rows:
            write_deltalake(
                f"{lake}/silver/orders_valid", rows, mode="append", partition_by=["partition_date"]
            )
        rejected = dead_letters(checked).toArrow()
        if rejected.num_rows:
            write_deltalake(
                f"{lake}/silver/dead_letter_queue",
                rejected,
                mode="append",
                partition_by=["partition_date", "source"],
            )
        sales = batch_sales(valid).toArrow()
        if sales.num_rows:
            try:
                table = DeltaTable(sales_uri)
            except Exception:  # the first batch creates it
                write_deltalake(sales_uri, sales, partition_by=["partition_date"])
            else:
                (
                    table.merge(sales, SALES_KEY, source_alias="s", target_alias="t")
                    .when_matched_update({c: f"t.{c} + s.{c}" for c in SUMMED})
                    .when_not_matched_insert_all()
                    .execute()
                )
        checked.unpersist()
        valid.unpersist()
        print(
            f"batch {batch_id}: {rows.num_rows} valid, {rejected.num_rows} rejected, "
            f"{time.perf_counter() - started:.2f}s",
            flush=True,
        )

    return each_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--date", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--trigger-seconds", type=float, default=1.0)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--driver-memory", default="3g")
    args = parser.parse_args()

    spark = session(args.driver_memory)
    # the restaurants snapshot is read once, as the script's dashboards would name them
    print(f"restaurants snapshot: {newest_snapshot(args.landing, 'restaurants')}", flush=True)
    directory = args.landing / "orders" / f"date={args.date.isoformat()}"
    files = (
        spark.readStream.option("wholetext", "true")
        .option("pathGlobFilter", "*.jsonl")
        .text(str(directory))
        .select(
            F.url_decode(F.regexp_replace("_metadata.file_path", "^file:(//)?", "")).alias(
                "source_file"
            ),
            F.col("_metadata.file_modification_time").alias("ingested_at"),
            "value",
        )
    )
    checkpoint = args.checkpoint or args.lake / "_streaming_checkpoint"
    query = (
        files.writeStream.foreachBatch(process(args.lake, args.date))
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{args.trigger_seconds} seconds")
        .start()
    )
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    print("streaming", flush=True)
    while not stop and query.isActive:
        time.sleep(0.2)
    query.stop()
    spark.stop()
    if query.exception() is not None:
        raise SystemExit(f"the stream failed: {query.exception()}")


if __name__ == "__main__":
    main()
