"""Silver: apply the contract's rules, route rejects to the DLQ, deduplicate.

Every bronze row ends in exactly one place — silver, the dead-letter queue,
or the count of duplicates dropped — so that per source and partition

    bronze rows = silver rows + DLQ rows + duplicates dropped.

A record that does not parse fails only ``parseable_record``; a record with a
mistyped field fails ``parseable_record`` and every rule its remaining values
break. Among valid records sharing a business key, the one landed last
(greatest ``source_file``, then ``source_line``) wins: a later batch corrects
an earlier one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..contracts import PARSEABLE_RULE, Contract
from ..contracts.spark import reference_found_column, rule_passes, spark_schema
from .bronze import LINEAGE_COLUMNS

DLQ_COLUMNS = [
    "source",
    "partition_date",
    "raw_record",
    "failed_rules",
    "parse_error",
    "source_file",
    "source_line",
    "ingested_at",
]


SILVER = "silver"
DLQ = "dlq"
DUPLICATE = "duplicate"
BRONZE = "bronze"  # not a destination: the rows every destination's rows add up to


@dataclass(frozen=True)
class Validated:
    """A bronze partition with every row assigned its destination.

    ``classified`` holds every bronze row once, with ``_dest`` (silver, dlq or
    duplicate), ``_failed_rules`` and ``_conflict`` (a dropped duplicate whose
    content differed from the kept row). Persist it once; the views below
    and the counts are all cheap filters and aggregations over it.
    """

    classified: DataFrame
    contract: Contract

    @property
    def valid(self) -> DataFrame:
        """Deduplicated records: contract columns, lineage columns, partition_date."""
        return self.classified.where(F.col("_dest") == SILVER).select(*valid_columns(self.contract))

    @property
    def rejected(self) -> DataFrame:
        """Rejected records in the dead-letter-queue layout (``DLQ_COLUMNS``)."""
        raw_record = F.coalesce(
            F.col("_rescued_data"),
            F.to_json(
                F.struct(*[F.col(c) for c in self.contract.column_names]),
                {"ignoreNullFields": "false"},
            ),
        )
        return self.classified.where(F.col("_dest") == DLQ).select(
            F.lit(self.contract.name).alias("source"),
            "partition_date",
            raw_record.alias("raw_record"),
            F.col("_failed_rules").alias("failed_rules"),
            F.col("_parse_error").alias("parse_error"),
            *LINEAGE_COLUMNS,
        )

    def orphans(self, source: str) -> DataFrame:
        """Silver rows whose reference into ``source`` was not found (kept in silver:
        the referenced record may land late; the referential-integrity check reports them)."""
        ref = self.contract.reference(source)
        return self.classified.where(
            (F.col("_dest") == SILVER) & ~F.col(reference_found_column(source))
        ).select(*self.contract.primary_key, ref.key, "partition_date")

    def references_found(self, source: str) -> DataFrame:
        """(partition_date, valid, orphans) per partition for the reference into ``source``."""
        found = F.col(reference_found_column(source))
        return (
            self.classified.where(F.col("_dest") == SILVER)
            .groupBy("partition_date")
            .agg(
                F.count(F.lit(1)).alias("valid"),
                F.sum((~found).cast("long")).alias("orphans"),
            )
        )

    def counts(self) -> DataFrame:
        """(partition_date, _dest, rows, conflicts, lineage_sum, keyed_sum) — one pass over
        ``classified``; the sums fingerprint each destination's rows (:func:`identity_sum`)
        by lineage, and by lineage and business key."""
        return self.classified.groupBy("partition_date", "_dest").agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("_conflict").cast("int")).alias("conflicts"),
            identity_sum().alias("lineage_sum"),
            identity_sum(*self.contract.primary_key).alias("keyed_sum"),
        )


def identity_sum(*columns: str) -> Column:
    """The exact sum of a 64-bit hash of each row's lineage (``source_file``,
    ``source_line``) and ``columns``: with the row count, a fingerprint of a set of rows.
    Two different sets of rows have the same fingerprint with probability ~2^-64, whatever
    their size; computing it is one pass, with no shuffle of the rows."""
    return F.sum(F.xxhash64("source_file", "source_line", *columns).cast("decimal(20,0)"))


def one_row(*aggregates: DataFrame) -> Row:
    """The single rows of several aggregations (each a DataFrame of one row, distinct column
    names) as one row, computed in one Spark job: on a remote Spark, one round trip instead of
    one per aggregation."""
    joined = aggregates[0]
    for other in aggregates[1:]:
        joined = joined.crossJoin(other)
    return joined.first()


def counts(*frames: DataFrame) -> list[int]:
    """The row count of each of ``frames``, in one Spark job (:func:`one_row`)."""
    row = one_row(*(f.agg(F.count(F.lit(1)).alias(f"_n{i}")) for i, f in enumerate(frames)))
    return [int(row[f"_n{i}"]) for i in range(len(frames))]


def failed_rules_column(
    contract: Contract, window_start: dt.datetime, window_end: dt.datetime
) -> Column:
    """array<string> of the rules a bronze row breaks (empty when it passes)."""
    unparseable = F.col("_parse_error").isNotNull()
    malformed = F.coalesce(F.col("_parse_error").startswith("malformed"), F.lit(False))
    checks = [F.when(unparseable, F.lit(PARSEABLE_RULE))]
    for rule in contract.rules:
        checks.append(
            F.when(~malformed & ~rule_passes(rule, window_start, window_end), F.lit(rule.name))
        )
    return F.array_compact(F.array(*checks))


def valid_columns(contract: Contract) -> list[str]:
    return [*contract.column_names, *LINEAGE_COLUMNS, "partition_date"]


def silver_schema(contract: Contract) -> T.StructType:
    """The schema of a silver table, known before anything is materialised."""
    return T.StructType(
        [
            *spark_schema(contract).fields,
            T.StructField("source_file", T.StringType()),
            T.StructField("source_line", T.LongType()),
            T.StructField("ingested_at", T.TimestampType()),
            T.StructField("partition_date", T.DateType()),
        ]
    )


def validate(
    bronze: DataFrame,
    contract: Contract,
    window_start: dt.datetime,
    window_end: dt.datetime,
) -> Validated:
    """Assign every bronze row its destination (see :class:`Validated`).

    A contract with references (``review_after_order``) needs the referenced
    values attached first: ``transforms.references.attach_references``.
    """
    missing = sorted(
        {
            str(rule.params["reference"])
            for rule in contract.rules
            if rule.check == "not_before_reference"
            and reference_found_column(str(rule.params["reference"])) not in bronze.columns
        }
    )
    if missing:
        raise ValueError(
            f"{contract.name} rules need the referenced {', '.join(missing)} records: "
            "attach them with transforms.references.attach_references before validate()"
        )
    keyed = bronze.withColumn(
        "_failed_rules", failed_rules_column(contract, window_start, window_end)
    ).withColumn("_passes", F.size("_failed_rules") == 0)

    # Rank the passing rows of each business key, newest landing first; failing
    # rows get no rank (they all go to the DLQ, each once).
    key = list(contract.primary_key)
    newest_first = Window.partitionBy("partition_date", "_passes", *key).orderBy(
        F.col("source_file").desc(), F.col("source_line").desc()
    )
    content_hash = F.xxhash64(*[F.col(c) for c in contract.column_names])
    ranked = keyed.withColumn("_hash", content_hash).select(
        "*",
        F.row_number().over(newest_first).alias("_rank"),
        F.first("_hash").over(newest_first).alias("_kept_hash"),
    )
    classified = ranked.select(
        *[c for c in ranked.columns if c not in ("_rank", "_hash", "_kept_hash", "_passes")],
        F.when(~F.col("_passes"), F.lit(DLQ))
        .when(F.col("_rank") == 1, F.lit(SILVER))
        .otherwise(F.lit(DUPLICATE))
        .alias("_dest"),
        (F.col("_passes") & (F.col("_rank") > 1) & (F.col("_hash") != F.col("_kept_hash"))).alias(
            "_conflict"
        ),
    )
    return Validated(classified=classified, contract=contract)


def dlq_counts_by_rule(rejected: DataFrame) -> DataFrame:
    """(rule, records) for a DLQ DataFrame; a record failing two rules counts for both."""
    return (
        rejected.select(F.explode("failed_rules").alias("rule"))
        .groupBy("rule")
        .agg(F.count(F.lit(1)).alias("records"))
    )
