"""What Spark needs from a contract: the read schema and the rule expressions.

Rules are built from the contract's declarative rule kinds with the
DataFrame API — never by splicing contract values into SQL text.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .model import Contract, ContractColumn, Rule

_SIMPLE = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "long": T.LongType(),
    "double": T.DoubleType(),
    "boolean": T.BooleanType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}


def spark_type(column: ContractColumn) -> T.DataType:
    ps = column.decimal_precision_scale
    if ps is not None:
        return T.DecimalType(*ps)
    return _SIMPLE[column.type]


def spark_schema(contract: Contract) -> T.StructType:
    """The typed schema of the contract's columns (all nullable: presence is a rule)."""
    return T.StructType([T.StructField(c.name, spark_type(c), True) for c in contract.columns])


def rule_passes(
    rule: Rule,
    window_start: dt.datetime | None = None,
    window_end: dt.datetime | None = None,
) -> Column:
    """A boolean Column that is true when the record satisfies ``rule``.

    Never null: a missing value fails every rule that looks at it.
    ``window_start``/``window_end`` bound the partition (UTC, end exclusive)
    for ``in_partition_window`` rules.
    """
    col = F.col(rule.column)
    p = rule.params
    if rule.check == "not_blank":
        cond = col.isNotNull() & (F.length(F.trim(col.cast("string"))) > 0)
    elif rule.check == "not_null":
        cond = col.isNotNull()
    elif rule.check == "positive":
        cond = col > F.lit(0)
    elif rule.check == "non_negative":
        cond = col >= F.lit(0)
    elif rule.check == "in_set":
        cond = col.isin(list(p["values"]))
    elif rule.check == "between":
        cond = col.between(F.lit(p["min"]), F.lit(p["max"]))
    elif rule.check == "present_iff":
        when = F.col(p["when_column"]).isin(list(p["when_values"]))
        # a null when_column counts as "not in when_values": the value must be absent
        cond = F.when(F.coalesce(when, F.lit(False)), col.isNotNull()).otherwise(col.isNull())
    elif rule.check == "ordered":
        chain = [col, *[F.col(c) for c in p["then"]]]
        # every pair in order; a missing value skips its comparisons, so
        # a <= (missing) <= c still requires a <= c
        cond = F.lit(True)
        for i, earlier in enumerate(chain):
            for later in chain[i + 1 :]:
                cond = cond & F.coalesce(earlier <= later, F.lit(True))
    elif rule.check == "not_before_reference":
        theirs = F.col(reference_value_column(p["reference"], p["reference_column"]))
        found = F.col(reference_found_column(p["reference"]))
        # not found: nothing to compare with (the referential-integrity check
        # reports the orphan); found: the value must be present and not earlier
        cond = F.coalesce(col >= theirs, ~F.coalesce(found, F.lit(False)))
    elif rule.check == "in_partition_window":
        if window_start is None or window_end is None:
            raise ValueError(f"rule {rule.name} needs the partition window")
        earliest = window_start - dt.timedelta(days=float(p["max_age_days"]))
        latest = window_end + dt.timedelta(minutes=float(p["future_tolerance_minutes"]))
        cond = (col >= F.lit(_utc(earliest))) & (col < F.lit(_utc(latest)))
    else:  # the loader rejects unknown kinds; this guards programming errors
        raise ValueError(f"unknown rule check {rule.check!r}")
    return F.coalesce(cond, F.lit(False))


def reference_found_column(source: str) -> str:
    """Column that says whether a record's reference into ``source`` was found
    (added by ``transforms.references.attach_references``)."""
    return f"_ref_{source}__found"


def reference_value_column(source: str, column: str) -> str:
    """Column holding ``column`` of the referenced ``source`` record."""
    return f"_ref_{source}__{column}"


def _utc(ts: dt.datetime) -> dt.datetime:
    """Timestamp literals are passed time-zone aware, so that PySpark converts
    them to the right instant whatever the driver's local time zone is."""
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
