"""Look records up in the silver table of the source they point to.

A delivery or a review points to an order (``order_id``). Before the rules
run, each bronze row gets, per reference of its contract, whether the
referenced record was found in the referenced source's silver partitions
``D - lookback_days .. D`` (D = the row's own partition) and the referenced
columns its rules compare with (``review_time >= order_time``).

The result has exactly the rows of the input: matches are aggregated per
bronze line (``source_file``, ``source_line``) before they are joined back,
so a key present in several referenced partitions cannot duplicate a record.
When it is, the newest partition's version of the referenced record wins —
as in silver, a later landing corrects an earlier one.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..contracts import Contract
from ..contracts.spark import reference_found_column, reference_value_column

_ROW_ID = ["source_file", "source_line"]


def attach_references(
    bronze: DataFrame, contract: Contract, lookups: Mapping[str, DataFrame]
) -> DataFrame:
    """``bronze`` plus ``_ref_<source>__found`` and ``_ref_<source>__<column>`` columns.

    ``lookups[source]`` holds the referenced source's silver rows (its key,
    ``partition_date`` and the compared columns) for at least the partitions
    ``min(D) - lookback_days .. max(D)`` of the rows in ``bronze``.
    """
    out = bronze
    for ref in contract.references:
        if ref.source not in lookups:
            raise ValueError(f"{contract.name}: no lookup table given for reference {ref.source}")
        columns = contract.reference_columns(ref.source)
        found = reference_found_column(ref.source)
        values = {c: reference_value_column(ref.source, c) for c in columns}
        rows = bronze.where(F.col(ref.key).isNotNull()).select(
            *_ROW_ID,
            F.col("partition_date").alias("_day"),
            F.col(ref.key).alias("_key"),
        )
        candidates = lookups[ref.source].select(
            F.col(ref.key).alias("_key"),
            F.col("partition_date").alias("_ref_day"),
            *[F.col(c).alias(alias) for c, alias in values.items()],
        )
        in_window = (
            (rows["_key"] == candidates["_key"])
            & (candidates["_ref_day"] <= rows["_day"])
            & (candidates["_ref_day"] >= F.date_sub(rows["_day"], ref.lookback_days))
        )
        matched = (
            rows.join(candidates, in_window, "inner")
            .groupBy(*_ROW_ID)
            .agg(
                F.lit(True).alias(found),
                *[F.max_by(alias, "_ref_day").alias(alias) for alias in values.values()],
            )
        )
        kept = out.columns
        out = out.join(matched, _ROW_ID, "left").select(
            *kept,
            F.coalesce(F.col(found), F.lit(False)).alias(found),
            *values.values(),
        )
    return out


def lookup_columns(contract: Contract, source: str) -> list[str]:
    """Columns to read from the referenced source's silver table."""
    ref = contract.reference(source)
    return [ref.key, "partition_date", *contract.reference_columns(source)]
