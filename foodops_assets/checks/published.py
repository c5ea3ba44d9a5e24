"""Checks that read back what was just published (and so can only trip after a write).

The silver step audits before it publishes (checks/quality.py); these run after
the commit, on the tables readers now see, and catch what an audit of the
in-memory result cannot: a buggy or doubled write, a concurrent writer, a
storage layer that lost a file. When one fails, the step rolls every table it
wrote back to the version before its write (``DeltaStore.rollback``).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from . import names


def published_consistency(
    bronze: DataFrame,
    silver: DataFrame,
    dlq: DataFrame,
    key: Sequence[str],
    partitions: str,
) -> dg.AssetCheckResult:
    """Every bronze line of the partitions is in exactly one place of the published tables:
    silver or the DLQ (by lineage: ``source_file`` + ``source_line``), or it is a dropped
    duplicate (not placed, and its business key is in silver); no silver or DLQ row comes
    from nowhere; business keys are unique in silver."""
    lineage = ["source_file", "source_line"]
    tagged = (
        bronze.select(*lineage, F.lit(1).alias("b"), F.lit(0).alias("s"), F.lit(0).alias("d"))
        .unionByName(
            silver.select(*lineage, F.lit(0).alias("b"), F.lit(1).alias("s"), F.lit(0).alias("d"))
        )
        .unionByName(
            dlq.select(*lineage, F.lit(0).alias("b"), F.lit(0).alias("s"), F.lit(1).alias("d"))
        )
    )
    per_line = tagged.groupBy(*lineage).agg(
        F.sum("b").alias("b"), F.sum("s").alias("s"), F.sum("d").alias("d")
    )
    placed = F.col("s") + F.col("d")
    row = per_line.agg(
        F.sum(((F.col("b") == 1) & (placed == 1)).cast("long")).alias("placed_once"),
        F.sum(((F.col("b") >= 1) & (placed > 1)).cast("long")).alias("placed_twice"),
        F.sum(((F.col("b") == 0) & (placed > 0)).cast("long")).alias("from_nowhere"),
        F.sum(((F.col("b") >= 1) & (placed == 0)).cast("long")).alias("unplaced"),
    ).first()
    lost = duplicates = 0
    if row["unplaced"]:
        # lines in neither table must be duplicates: their business key is in silver
        unplaced = per_line.where((F.col("b") >= 1) & (placed == 0)).select(*lineage)
        keys = ["partition_date", *key]
        found = (
            bronze.join(unplaced, list(lineage), "left_semi")
            .select(*keys)
            .join(silver.select(*keys).distinct().withColumn("_in_silver", F.lit(1)), keys, "left")
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.sum(F.col("_in_silver").isNull().cast("long")).alias("lost"),
            )
            .first()
        )
        lost = int(found["lost"] or 0)
        duplicates = int(found["n"]) - lost
    repeated_keys = silver.groupBy("partition_date", *key).count().where(F.col("count") > 1).count()
    placed_twice = int(row["placed_twice"] or 0)
    from_nowhere = int(row["from_nowhere"] or 0)
    problems = {
        "lines_in_two_places": placed_twice,
        "rows_from_nowhere": from_nowhere,
        "lines_lost": lost,
        "repeated_business_keys": repeated_keys,
    }
    passed = not any(problems.values())
    return dg.AssetCheckResult(
        check_name=names.PUBLISHED_CONSISTENCY,
        passed=passed,
        description=(
            f"published tables of {partitions} are consistent: every bronze line once"
            if passed
            else "published tables are inconsistent: "
            + ", ".join(f"{k}={v}" for k, v in problems.items() if v)
        ),
        metadata={
            "partitions": partitions,
            "lines_placed_once": int(row["placed_once"] or 0),
            "duplicates_dropped": duplicates,
            **problems,
        },
    )
