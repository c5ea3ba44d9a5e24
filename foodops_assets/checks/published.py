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
    expected_duplicates: int | None = None,
) -> dg.AssetCheckResult:
    """Every bronze line of the partitions is in exactly one place of the published tables:
    silver or the DLQ (by lineage: ``source_file`` + ``source_line``), or it is a dropped
    duplicate (not placed, and its business key is in silver); no silver or DLQ row comes
    from nowhere; business keys are unique in silver.

    With ``expected_duplicates`` (what the audit before the write dropped), a write that
    is exactly right is confirmed from per-file bitmaps of line numbers (no shuffle of
    lines): no line placed twice, none from nowhere, and as many unplaced lines as the
    audit dropped. Anything else, or no expectation, is examined line by line."""
    placement = None
    if expected_duplicates is not None:
        fast = _bitmap_placement(bronze, silver, dlq)
        if fast is not None and fast[3] == expected_duplicates:
            placement = (0, 0, fast[2], 0, fast[3])  # nothing misplaced, nothing lost
    if placement is None:
        placement = _placement(bronze, silver, dlq, key, hashed=True)
        if placement[0] or placement[1] or placement[3]:
            placement = _placement(bronze, silver, dlq, key, hashed=False)
    placed_twice, from_nowhere, placed_once, lost, duplicates = placement
    repeated_keys = silver.groupBy("partition_date", *key).count().where(F.col("count") > 1).count()
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
            "lines_placed_once": placed_once,
            "duplicates_dropped": duplicates,
            **problems,
        },
    )


def _bitmap_placement(
    bronze: DataFrame, silver: DataFrame, dlq: DataFrame
) -> tuple[int, int, int, int] | None:
    """(bronze lines, placed rows, lines placed once, unplaced lines) from bitmaps of the
    line numbers per file and 32,768-line bucket; None when the tables are not exactly
    "every line at most once, nothing from nowhere" (the caller then looks line by line).

    |B and P| = |B| + |P| - |B or P| for the bitmaps B (bronze) and P (silver + DLQ)."""

    def lines(df: DataFrame, side: str) -> DataFrame:
        return df.select(
            "source_file",
            F.bitmap_bucket_number("source_line").alias("bucket"),
            F.bitmap_bit_position("source_line").alias("bit"),
            F.lit(side).alias("side"),
        )

    is_b = F.col("side") == "b"
    row = (
        lines(bronze, "b")
        .unionByName(lines(silver, "p"))
        .unionByName(lines(dlq, "p"))
        .groupBy("source_file", "bucket")
        .agg(
            F.sum(is_b.cast("long")).alias("b_rows"),
            F.sum((~is_b).cast("long")).alias("p_rows"),
            F.bitmap_construct_agg(F.when(is_b, F.col("bit"))).alias("b_bits"),
            F.bitmap_construct_agg(F.when(~is_b, F.col("bit"))).alias("p_bits"),
            F.bitmap_construct_agg("bit").alias("u_bits"),
        )
        .select(
            "b_rows",
            "p_rows",
            F.bitmap_count("b_bits").alias("b"),
            F.bitmap_count("p_bits").alias("p"),
            F.bitmap_count("u_bits").alias("u"),
        )
        .agg(*[F.sum(c).alias(c) for c in ("b_rows", "p_rows", "b", "p", "u")])
        .first()
    )
    b_rows, p_rows, b, p, u = (int(row[c] or 0) for c in ("b_rows", "p_rows", "b", "p", "u"))
    both = b + p - u
    if b_rows != b or p_rows != p or p != both:  # a line twice, or a row from nowhere
        return None
    return b, p, both, b - both


def _placement(
    bronze: DataFrame, silver: DataFrame, dlq: DataFrame, key: Sequence[str], *, hashed: bool
) -> tuple[int, int, int, int, int]:
    """(lines placed twice, rows from nowhere, lines placed once, lines lost, duplicates)."""
    lineage = ["source_file", "source_line"]
    if hashed:
        ids = ["_line"]

        def with_id(df: DataFrame) -> DataFrame:
            return df.withColumn("_line", F.xxhash64(*lineage))
    else:
        ids = lineage

        def with_id(df: DataFrame) -> DataFrame:
            return df

    tagged = (
        with_id(bronze)
        .select(*ids, F.lit(1).alias("b"), F.lit(0).alias("s"), F.lit(0).alias("d"))
        .unionByName(
            with_id(silver).select(
                *ids, F.lit(0).alias("b"), F.lit(1).alias("s"), F.lit(0).alias("d")
            )
        )
        .unionByName(
            with_id(dlq).select(*ids, F.lit(0).alias("b"), F.lit(0).alias("s"), F.lit(1).alias("d"))
        )
    )
    per_line = tagged.groupBy(*ids).agg(
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
        # lines in neither table must be duplicates: their business key is in silver.
        # They are few (the duplicates dropped), so they are broadcast and silver is
        # scanned once, never shuffled.
        unplaced = per_line.where((F.col("b") >= 1) & (placed == 0)).select(*ids)
        keys = ["partition_date", *key]
        unplaced_keys = (
            with_id(bronze).join(F.broadcast(unplaced), ids, "left_semi").select(*keys).persist()
        )
        try:
            in_silver = (
                silver.select(*keys)
                .join(F.broadcast(unplaced_keys.distinct()), keys, "left_semi")
                .distinct()
                .withColumn("_in_silver", F.lit(1))
            )
            found = (
                unplaced_keys.join(F.broadcast(in_silver), keys, "left")
                .agg(
                    F.count(F.lit(1)).alias("n"),
                    F.sum(F.col("_in_silver").isNull().cast("long")).alias("lost"),
                )
                .first()
            )
        finally:
            unplaced_keys.unpersist()
        lost = int(found["lost"] or 0)
        duplicates = int(found["n"]) - lost
    return (
        int(row["placed_twice"] or 0),
        int(row["from_nowhere"] or 0),
        int(row["placed_once"] or 0),
        lost,
        duplicates,
    )
