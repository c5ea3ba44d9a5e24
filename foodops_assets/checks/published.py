"""Checks that read back what was just published (and so can only trip after a write).

The silver step audits before it publishes (checks/quality.py); these run after
the commit, on the tables readers now see, and catch what an audit of the
in-memory result cannot: a buggy or doubled write, a concurrent writer, a
storage layer that lost a file. When one fails, the step rolls every table it
wrote back to the version before its write (``DeltaStore.rollback``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..transforms.silver import identity_sum, one_row
from . import names


@dataclass(frozen=True)
class Fingerprint:
    """A set of rows as the row count and exact sums of a 64-bit hash of each row's
    identity (``transforms.silver.identity_sum``): by lineage, and by lineage and business
    key (silver rows). Different sets of rows share a fingerprint with probability ~2^-64."""

    rows: int
    lineage: int
    keyed: int = 0


@dataclass(frozen=True)
class Audited:
    """What the audit before the write saw, as fingerprints: the bronze lines it read, the
    duplicates it dropped, and the rows it published to silver (keys found unique)."""

    bronze: Fingerprint
    duplicates: Fingerprint
    silver: Fingerprint


def published_consistency(
    bronze: DataFrame,
    silver: DataFrame,
    dlq: DataFrame,
    key: Sequence[str],
    partitions: str,
    audited: Audited | None = None,
) -> dg.AssetCheckResult:
    """Every bronze line of the partitions is in exactly one place of the published tables:
    silver or the DLQ (by lineage: ``source_file`` + ``source_line``), or it is a dropped
    duplicate (not placed, and its business key is in silver); no silver or DLQ row comes
    from nowhere; business keys are unique in silver.

    With ``audited`` (what the audit before the write saw), a write that is exactly right
    is confirmed from fingerprints of the published tables, one pass over each and no
    shuffle: the published silver rows are the audited ones (lineage and business key: so
    their keys are the ones the unique-key check passed), and silver + DLQ + the dropped
    duplicates are the audited bronze lines. Anything else, or no audit, is examined line
    by line against the bronze table, and the keys are counted."""
    if audited is not None and _matches_audit(silver, dlq, key, audited):
        dropped = audited.duplicates.rows
        placement = (0, 0, audited.bronze.rows - dropped, 0, dropped)
        repeated_keys = 0  # the audited rows, whose keys were found unique before the write
    else:
        placement = _placement(bronze, silver, dlq, key, hashed=True)
        if placement[0] or placement[1] or placement[3]:
            placement = _placement(bronze, silver, dlq, key, hashed=False)
        repeated_keys = (
            silver.groupBy("partition_date", *key).count().where(F.col("count") > 1).count()
        )
    placed_twice, from_nowhere, placed_once, lost, duplicates = placement
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


def _matches_audit(silver: DataFrame, dlq: DataFrame, key: Sequence[str], audited: Audited) -> bool:
    """The published silver rows fingerprint as the audited ones, and silver + DLQ + the
    dropped duplicates as the audited bronze lines."""
    row = one_row(
        silver.agg(
            F.count(F.lit(1)).alias("rows"),
            identity_sum().alias("lineage"),
            identity_sum(*key).alias("keyed"),
        ),
        dlq.agg(F.count(F.lit(1)).alias("dlq_rows"), identity_sum().alias("dlq_lineage")),
    )
    published = Fingerprint(int(row["rows"]), int(row["lineage"] or 0), int(row["keyed"] or 0))
    placed = (
        published.rows + int(row["dlq_rows"]) + audited.duplicates.rows,
        published.lineage + int(row["dlq_lineage"] or 0) + audited.duplicates.lineage,
    )
    return published == audited.silver and placed == (audited.bronze.rows, audited.bronze.lineage)


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
