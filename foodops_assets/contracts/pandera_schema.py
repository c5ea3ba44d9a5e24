"""The contract as a pandera schema, validated against the rows silver publishes.

The DLQ rules already keep bad records out of silver; this is the
independent second opinion the seeds ask for ("enforced data contracts"):
the column types, presence and value checks that silver promises its
consumers, checked by pandera rather than by our own code.

The same schema is built for two of pandera's backends, by what holds the rows:

- a Spark DataFrame: ``pandera.pyspark``, which runs one Spark job per column
  and check (about 16 for orders: ~4 s at 1M rows);
- a ``pyarrow.Table``, the very rows the arrow writer is about to commit:
  ``pandera.polars`` on a zero-copy view of them (~0.05 s at 1M rows).

Both report in pandera's own summary layout (category -> reason -> errors).
pandera is imported lazily: ``pandera.pyspark`` sets process environment
variables and imports pyspark.pandas, which has no place at import time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .model import Contract, ContractColumn, Rule
from .spark import spark_type

_PRESENCE_CHECKS = {"not_blank", "not_null", "positive", "in_set", "between", "in_partition_window"}


@dataclass(frozen=True)
class PanderaReport:
    passed: bool
    errors: dict[str, Any]

    @property
    def summary(self) -> str:
        if self.passed:
            return "all pandera checks passed"
        parts = []
        for by_kind in self.errors.values():
            for kind, items in by_kind.items():
                for item in items:
                    rule = f" [{item['rule']}]" if item.get("rule") else ""
                    parts.append(f"{item.get('column')}: {item.get('check')}{rule} ({kind})")
        return "; ".join(parts)


BACKENDS = ("pyspark", "polars")


def pandera_schema(
    contract: Contract,
    window_start: dt.datetime | None = None,
    window_end: dt.datetime | None = None,
    backend: str = "pyspark",
):
    """Build a pandera ``DataFrameSchema`` for validated (silver) records, for the
    ``pyspark`` backend (a Spark DataFrame) or the ``polars`` one (Arrow rows)."""
    if backend == "pyspark":
        import pandera.pyspark as pa

        dtype, custom = spark_type, {"present_iff": _present_iff, "ordered": _ordered}
    elif backend == "polars":
        import pandera.polars as pa

        dtype = _polars_type
        custom = {"present_iff": _present_iff_polars, "ordered": _ordered_polars}
    else:
        raise ValueError(f"unknown pandera backend {backend!r}; use one of {BACKENDS}")

    by_column: dict[str, list[Rule]] = {}
    for rule in contract.rules:
        by_column.setdefault(rule.column, []).append(rule)

    columns = {}
    for col in contract.columns:
        rules = by_column.get(col.name, [])
        checks = [
            c for r in rules if (c := _check(pa, r, window_start, window_end, custom)) is not None
        ]
        nullable = not any(r.check in _PRESENCE_CHECKS for r in rules)
        columns[col.name] = pa.Column(dtype(col), checks=checks, nullable=nullable)
    return pa.DataFrameSchema(columns, name=f"{contract.name} contract v{contract.version}")


def validate(
    rows,
    contract: Contract,
    window_start: dt.datetime | None = None,
    window_end: dt.datetime | None = None,
) -> PanderaReport:
    """Validate the contract columns of ``rows`` (a Spark DataFrame, or a
    ``pyarrow.Table``); other columns are ignored."""
    import pyarrow as pa

    if isinstance(rows, pa.Table):
        errors = _polars_errors(rows, contract, window_start, window_end)
    else:
        schema = pandera_schema(contract, window_start, window_end)
        out = schema.validate(rows.select(*contract.column_names))
        errors = _plain(dict(out.pandera.errors or {}))
    for by_kind in errors.values():
        for items in by_kind.values():
            for item in items:
                item["rule"] = _rule_for(contract, item.get("column"), str(item.get("check")))
    return PanderaReport(passed=not errors, errors=errors)


def _polars_errors(table, contract: Contract, window_start, window_end) -> dict:
    """pandera.polars over a zero-copy view of the Arrow rows, its errors summarised in the
    layout pandera.pyspark reports (``ErrorHandler.summarize``)."""
    import polars as pl
    from pandera.api.base.error_handler import ErrorHandler
    from pandera.errors import SchemaErrors

    schema = pandera_schema(contract, window_start, window_end, backend="polars")
    try:
        schema.validate(pl.from_arrow(table.select(contract.column_names)), lazy=True)
    except SchemaErrors as exc:
        handler = ErrorHandler(lazy=True)
        handler.collect_errors(exc.schema_errors)
        return _plain(dict(handler.summarize(schema.name)))
    return {}


def _polars_type(column: ContractColumn):
    """The polars dtype Arrow rows of this contract column arrive as: its Spark type
    through the conversion ``DataFrame.toArrow`` uses (a UTC session), seen by polars."""
    import polars as pl
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_type

    return pl.from_arrow(pa.array([], type=to_arrow_type(spark_type(column), timezone="UTC"))).dtype


# pandera check name -> the contract rule kinds it is built from
_PANDERA_TO_KIND = {
    "str_length": ("not_blank",),
    "greater_than": ("positive",),
    "greater_than_or_equal_to": ("non_negative",),
    "isin": ("in_set",),
    "in_range": ("between", "in_partition_window"),
    "not_nullable": tuple(_PRESENCE_CHECKS),
}


def _rule_for(contract: Contract, column: str | None, check: str) -> str | None:
    """The contract rule behind a pandera failure, so reports speak the contract's names."""
    if check in contract.rule_names:  # custom checks (multi-column kinds) carry the rule's name
        return check
    kinds = _PANDERA_TO_KIND.get(check.split("(", 1)[0], ())
    names = [r.name for r in contract.rules if r.column == column and r.check in kinds]
    return ", ".join(names) or None


def _check(pa, rule: Rule, start: dt.datetime | None, end: dt.datetime | None, custom: dict):
    p = rule.params
    if rule.check == "not_blank":
        return pa.Check.str_length(min_value=1, name=rule.name)
    if rule.check == "positive":
        return pa.Check.greater_than(0, name=rule.name)
    if rule.check == "non_negative":
        return pa.Check.greater_than_or_equal_to(0, name=rule.name)
    if rule.check == "in_set":
        return pa.Check.isin(list(p["values"]), name=rule.name)
    if rule.check == "between":
        return pa.Check.in_range(p["min"], p["max"], name=rule.name)
    if rule.check == "present_iff":
        return pa.Check(
            custom["present_iff"],
            name=rule.name,
            when_column=p["when_column"],
            when_values=list(p["when_values"]),
        )
    if rule.check == "ordered":
        return pa.Check(
            custom["ordered"],
            name=rule.name,
            then=list(p["then"]),
        )
    # not_before_reference compares with another table's record: silver does not
    # carry it, so that rule is enforced on every row before publish (the DLQ),
    # not re-checked here
    if rule.check == "in_partition_window" and start is not None and end is not None:
        earliest = start - dt.timedelta(days=float(p["max_age_days"]))
        latest = end + dt.timedelta(minutes=float(p["future_tolerance_minutes"]))
        # aware datetimes: PySpark turns them into the right instant whatever
        # the driver's local time zone
        return pa.Check.in_range(
            earliest.astimezone(dt.UTC),
            latest.astimezone(dt.UTC),
            include_max=False,
            name=rule.name,
        )
    return None


def _present_iff(data, when_column: str, when_values: list) -> bool:
    """pandera.pyspark custom check: no row where the column's presence disagrees
    with ``when_column in when_values`` (written independently of the DLQ rule)."""
    from pyspark.sql import functions as F

    expected = F.coalesce(F.col(when_column).isin(when_values), F.lit(False))
    present = F.col(data.column_name).isNotNull()
    return data.dataframe.where(expected != present).limit(1).count() == 0


def _ordered(data, then: list) -> bool:
    """pandera.pyspark custom check: no pair of present values out of order."""
    from functools import reduce

    from pyspark.sql import functions as F

    chain = [data.column_name, *then]
    pairs = [
        F.col(a) > F.col(b) for i, a in enumerate(chain) for b in chain[i + 1 :]
    ]  # null when a value is missing, and where() drops nulls
    return data.dataframe.where(reduce(lambda x, y: x | y, pairs)).limit(1).count() == 0


def _present_iff_polars(data, when_column: str, when_values: list):
    """pandera.polars custom check: per row, the column's presence agrees with
    ``when_column in when_values``."""
    import polars as pl

    expected = pl.col(when_column).is_in(when_values).fill_null(False)
    return data.lazyframe.select(expected == pl.col(data.key).is_not_null())


def _ordered_polars(data, then: list):
    """pandera.polars custom check: per row, no pair of present values out of order."""
    from functools import reduce

    import polars as pl

    chain = [data.key, *then]
    pairs = [pl.col(a) > pl.col(b) for i, a in enumerate(chain) for b in chain[i + 1 :]]
    # null when a value is missing: not out of order
    return data.lazyframe.select(~reduce(lambda x, y: x | y, pairs).fill_null(False))


def _plain(value: Any) -> Any:
    """pandera's error report as plain JSON-able values (for metadata)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
