"""Arrow vs spark_files: what a partition write costs when Spark runs on a cluster.

    .venv/bin/python bench/delta_writers.py [--rows 200000 1000000] [--repeat 3]
        [--remote sc://host:port]   # an existing Spark Connect server (default: start a
                                    # standalone master + worker + Connect server here)
        [--local]                   # the embedded Spark instead of Spark Connect

Both writers replace the same daily partition of a silver-orders-shaped table
(14 columns) with the same cached DataFrame, through the project's own code
(``lakehouse.writers``, one module per backend):

- arrow: ``df.toArrow()`` brings the rows to this (the Dagster) process, delta-rs writes;
- spark_files: the executors write the Parquet files, delta-rs commits them.

Prints, per size, the median seconds of each writer, the ratio arrow / spark_files,
and this process's peak memory after each writer's runs, all measured in the same
run; the two tables are checked to hold the same rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deltalake import DeltaTable  # noqa: E402

from foodops_assets.lakehouse import writers  # noqa: E402
from foodops_assets.lakehouse.delta import DeltaStore  # noqa: E402
from foodops_assets.lakehouse.tables import TableRef  # noqa: E402

DAY = dt.date(2026, 11, 20)


def table(n: int) -> TableRef:
    return TableRef("silver", f"orders_{n}", ("partition_date",))


def orders(spark, n: int):
    from pyspark.sql import functions as F

    epoch = int(dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp())
    cities = [F.lit(c) for c in ("Pune", "Mumbai", "Delhi", "Bengaluru", "Chennai", "Kolkata")]
    i = F.col("id")
    return spark.range(n).select(
        F.format_string("o-%d", i).alias("order_id"),
        F.format_string("u-%d", i % 50000).alias("user_id"),
        F.format_string("r-%d", i % 500).alias("restaurant_id"),
        F.format_string("d-%d", i % 5000).alias("dish_id"),
        (i % 5 + 1).cast("int").alias("quantity"),
        (i % 90000 / 100 + 10).cast("decimal(10,2)").alias("price"),
        F.timestamp_seconds(F.lit(epoch) + i % 86400).alias("order_time"),
        F.element_at(F.array(*cities), (i % 6 + 1).cast("int")).alias("city"),
        F.when(i % 3 == 0, "upi")
        .when(i % 3 == 1, "card")
        .otherwise("cash")
        .alias("payment_method"),
        F.when(i % 20 == 0, "cancelled").otherwise("placed").alias("status"),
        F.format_string("/landing/orders/date=2026-11-20/batch-%04d.jsonl", i % 8).alias(
            "source_file"
        ),
        (i + 1).alias("source_line"),
        F.timestamp_seconds(F.lit(epoch + 86400)).alias("ingested_at"),
        F.lit(DAY).alias("partition_date"),
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(spark, sizes: list[int], repeat: int, where: str) -> None:
    with tempfile.TemporaryDirectory(prefix="foodops-bench-writers-") as tmp:
        stores = {w: DeltaStore(f"{tmp}/{w}") for w in ("spark_files", "arrow")}
        warm = orders(spark, 1000)
        for writer, store in stores.items():  # JIT, first-job and first-commit costs
            writers.writer(writer, store).write_partitions(
                warm, table(0), {"partition_date": [DAY]}
            )
        results: dict[tuple[int, str], list[float]] = {}
        rss: dict[str, float] = {}
        # spark_files first: this process's peak memory then shows what arrow adds
        for writer in ("spark_files", "arrow"):
            for n in sizes:
                df = orders(spark, n).persist()
                df.count()
                for _ in range(repeat):
                    started = time.perf_counter()
                    result = writers.writer(writer, stores[writer]).write_partitions(
                        df, table(n), {"partition_date": [DAY]}
                    )
                    results.setdefault((n, writer), []).append(time.perf_counter() - started)
                    assert result.rows_written == n, (writer, result.rows_written)
                df.unpersist()
                if writer == "arrow":  # same rows from both writers
                    a, b = (
                        DeltaTable(s.uri(table(n))).to_pyarrow_table().sort_by("order_id")
                        for s in stores.values()
                    )
                    assert a.num_rows == b.num_rows == n and a.equals(b.select(a.schema.names))
            rss[writer] = peak_rss_mb()

    print(f"\nDelta partition writes on {where} (median of {repeat}; same run, same data)")
    print(f"{'rows':>10}  {'arrow s':>9}  {'spark_files s':>13}  {'arrow / spark_files':>20}")
    for n in sizes:
        a = statistics.median(results[(n, "arrow")])
        f = statistics.median(results[(n, "spark_files")])
        print(f"{n:>10,}  {a:>9.2f}  {f:>13.2f}  {a / f:>19.2f}x")
    print(
        f"peak memory of this (the Dagster) process: {rss['spark_files']:.0f} MB after the "
        f"spark_files runs, {rss['arrow']:.0f} MB after the arrow runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--remote", help="an existing Spark Connect server, sc://host:port")
    parser.add_argument("--local", action="store_true", help="embedded Spark, not Connect")
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    if args.local:
        from foodops_assets.lakehouse.spark import SparkResource

        spark = SparkResource().spark_session
        run(spark, args.rows, args.repeat, "the embedded Spark (local[2])")
        return
    if args.remote:
        spark = SparkSession.builder.remote(args.remote).getOrCreate()
        run(spark, args.rows, args.repeat, f"Spark Connect {args.remote}")
        return
    from foodops_assets_tests.spark_cluster import spark_connect_cluster

    with tempfile.TemporaryDirectory(prefix="foodops-bench-cluster-") as tmp:
        with spark_connect_cluster(Path(tmp)) as cluster:
            spark = SparkSession.builder.remote(cluster.connect_url).getOrCreate()
            run(
                spark,
                args.rows,
                args.repeat,
                "a standalone cluster (1 worker, 1 core) through Spark Connect",
            )
            spark.stop()


if __name__ == "__main__":
    main()
