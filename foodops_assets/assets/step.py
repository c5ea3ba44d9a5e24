"""What every asset run does around its transform: read, cache, audit, write, report.

- :class:`Step`: one run of one asset (its partitions, Spark session and lakehouse); reads
  fail clearly when an input was never materialised, cached frames are released when the
  step ends, and every write records the run in its Delta commit.
- :func:`audit`: the circuit breaker before a write (a failed blocking check: nothing is
  written, the checks are reported, the step fails without retries).
- :func:`materialization`: the metadata every materialisation carries.
- :func:`derived_asset`: the whole sequence for a table computed from other tables (gold
  and ML features): a :class:`DerivedTable` declaration plus a function
  ``compute(step) -> Audited`` is the asset. A new daily table, an SCD2 dimension (an
  unpartitioned table: the write replaces it whole) or an as-of join is one more of these.
"""

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from ..contracts import Contract
from ..lakehouse.delta import PartitionValues, RowFilter, TableNotMaterialized, WriteResult
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.spark import SparkResource
from ..lakehouse.tables import TableRef
from ..lakehouse.writers.base import Rows
from .common import (
    KINDS,
    NO_RETRIES,
    PLATFORM_OWNER,
    StepRetries,
    column_lineage,
    commit_metadata,
    partition_label,
    run_days,
    table_schema,
    window_days,
    write_metadata,
)

Lineage = Mapping[str, Mapping[str, Sequence[str]]]


@dataclass
class Step:
    """One run of one asset: where it reads and writes, and what it must release."""

    context: dg.AssetExecutionContext
    session: SparkSession
    lakehouse: LakehouseResource
    config: Any = None
    days: list[dt.date] = field(default_factory=list)
    _cached: list[DataFrame] = field(default_factory=list)

    @classmethod
    def start(cls, context, spark: SparkResource, lakehouse, config=None) -> "Step":
        partitioned = context.has_partition_key or context.has_partition_key_range
        days = run_days(context) if partitioned else []
        return cls(context, spark.spark_session, lakehouse, config, days)

    @property
    def where(self) -> PartitionValues:
        return {"partition_date": self.days}

    def input_days(self, upstream: TableRef) -> list[dt.date]:
        """The days of ``upstream`` this run reads (its dependency's partition mapping)."""
        return window_days(self.context.asset_partitions_time_window_for_input(upstream.name))

    def read(self, table: TableRef, days: Sequence[dt.date] | None = None) -> DataFrame:
        """``table`` (only ``days`` of it, when given), or a clear failure when it has never
        been materialised."""
        where = {"partition_date": list(days)} if days is not None else None
        try:
            return self.lakehouse.read(self.session, table, where)
        except TableNotMaterialized:
            raise dg.Failure(
                f"{table.name} has not been materialized: materialize {table.name} first",
                allow_retries=False,
            ) from None

    def cache(self, df: DataFrame) -> DataFrame:
        """``df`` persisted (memory, spilling to disk) until the step ends."""
        self._cached.append(df.persist(StorageLevel.MEMORY_AND_DISK))
        return self._cached[-1]

    def release(self) -> None:
        for df in reversed(self._cached):
            df.unpersist()
        self._cached.clear()

    def write(
        self,
        table: TableRef,
        rows: Rows,
        description: str,
        where: PartitionValues | None = None,
        contract: Contract | None = None,
        rows_where: RowFilter | None = None,
    ) -> WriteResult:
        """One Delta commit of ``rows``: the run's partitions of ``table`` (or ``where``), or
        the whole table when it is unpartitioned; the commit names this run (and the
        contract version the rows were validated with, for a table a contract shapes)."""
        meta = commit_metadata(self.context, table.name, self.days, contract)
        if not table.is_partitioned:
            return self.lakehouse.write_table(
                rows, table, description=description, commit_metadata=meta
            )
        return self.lakehouse.write_partitions(
            rows,
            table,
            where or self.where,
            description=description,
            commit_metadata=meta,
            rows_where=rows_where,
        )


class CircuitBreakerTripped(Exception):
    """A blocking check failed before the write: nothing was written."""

    def __init__(self, checks: Sequence[dg.AssetCheckResult], consequence: str):
        super().__init__(consequence)
        self.checks = list(checks)
        self.consequence = consequence

    def failure(self, table: TableRef, days: Sequence[dt.date]) -> dg.Failure:
        failed = [c for c in self.checks if not c.passed]
        return dg.Failure(
            description=(
                f"Circuit breaker tripped for {table.name} {partition_label(days)}: "
                + "; ".join(f"{c.check_name}: {c.description}" for c in failed)
                + f". {self.consequence}"
            ),
            metadata={"failed_checks": ", ".join(c.check_name or "" for c in failed)},
            allow_retries=False,
        )


def audit(checks: Sequence[dg.AssetCheckResult], consequence: str = "Nothing was written.") -> None:
    """Raise :class:`CircuitBreakerTripped` when a check failed (audit before publish)."""
    if any(not c.passed for c in checks):
        raise CircuitBreakerTripped(checks, consequence)


def materialization(
    write: WriteResult,
    schema: T.StructType,
    descriptions: Mapping[str, str],
    lineage: dg.TableColumnLineage,
    metadata: Mapping[str, Any],
    checks: Sequence[dg.AssetCheckResult],
) -> dg.MaterializeResult:
    """The write reported: row count, schema, Delta version and URI, lineage, the checks."""
    return dg.MaterializeResult(
        metadata={
            **write_metadata(write, schema, descriptions),
            "dagster/column_lineage": lineage,
            **metadata,
        },
        check_results=list(checks),
    )


@dataclass(frozen=True)
class Audited:
    """What a derived table's compute hands back: its rows (cached by the step), the
    checks they passed, and the run's own metadata."""

    rows: DataFrame
    checks: list[dg.AssetCheckResult]
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Columns:
    """A table's columns: their types, what each means, and where each comes from."""

    schema: T.StructType
    descriptions: Mapping[str, str]
    lineage: Lineage


@dataclass(frozen=True)
class DerivedTable:
    """The declaration of a table computed from other tables."""

    table: TableRef
    group: str
    description: str
    columns: Columns
    deps: Sequence[str | dg.AssetDep]
    checks: Mapping[str, str]  # blocking check name -> what it asserts
    metadata: Mapping[str, Any] = field(default_factory=dict)  # shown before a run
    kinds: frozenset[str] = frozenset(KINDS)


def derived_asset(
    spec: DerivedTable,
    partitions_def: dg.PartitionsDefinition | None,
    compute: Callable[[Step], Audited],
    config_class: type[dg.Config] | None = None,
    retries: StepRetries = NO_RETRIES,
) -> dg.AssetsDefinition:
    """``spec`` as an asset: read and transform (``compute``), audit, write, report;
    its step retries as ``retries`` says."""
    table = spec.table

    def run(context, spark, lakehouse, run_config) -> Iterator:
        step = Step.start(context, spark, lakehouse, run_config)
        try:
            done = compute(step)
            audit(done.checks)
            write = step.write(table, done.rows, spec.description)
            yield materialization(
                write,
                done.rows.schema,
                spec.columns.descriptions,
                column_lineage(spec.columns.lineage),
                done.metadata,
                done.checks,
            )
        except CircuitBreakerTripped as tripped:
            yield from tripped.checks
            raise tripped.failure(table, step.days) from None
        finally:
            step.release()

    if config_class is None:

        def _derived(
            context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
        ):
            yield from run(context, spark, lakehouse, None)

    else:

        def _derived(
            context: dg.AssetExecutionContext,
            config: config_class,  # the asset's run config (launchpad / run config)
            spark: SparkResource,
            lakehouse: LakehouseResource,
        ):
            yield from run(context, spark, lakehouse, config)

    return dg.asset(
        name=table.name,
        group_name=spec.group,
        description=spec.description,
        owners=[PLATFORM_OWNER],
        kinds=set(spec.kinds),
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
        deps=list(spec.deps),
        check_specs=[
            dg.AssetCheckSpec(name, asset=table.name, blocking=True, description=text)
            for name, text in spec.checks.items()
        ],
        metadata={
            "dagster/column_schema": table_schema(spec.columns.schema, spec.columns.descriptions),
            **spec.metadata,
        },
        tags={"layer": spec.group},
        retry_policy=retries.policy,
    )(retries.wrap(_derived))
