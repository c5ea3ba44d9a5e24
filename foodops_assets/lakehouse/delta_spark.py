"""The ``delta_spark`` backend: Spark reads and writes Delta itself.

For a Spark that has Delta Lake on its classpath — Databricks, or a cluster
started with delta-spark's JARs. A partition write is Delta's own atomic
predicate overwrite::

    df.write.format("delta").mode("overwrite").option("replaceWhere", predicate)

with the predicate built (and guarded) by :func:`..delta.partition_predicate`;
Delta additionally refuses rows outside it (its replaceWhere constraint
check). Versions and row counts come from the table's history through Spark
SQL, so this backend needs nothing but the Spark session (it works through
Spark Connect too), and the Dagster process never sees the data.

Delta-Spark's JARs cannot be downloaded on the development machines (no
Maven), so this backend is not exercised by the test suite there; see the
README ("Local vs cluster vs Databricks").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .delta import (
    DeltaStore,
    PartitionValues,
    PredicateError,
    TableNotMaterialized,
    WriteResult,
    _filters,
    partition_predicate,
)
from .tables import TableRef

WRITER = "delta_spark"

_NO_DELTA_MARKERS = (
    "DATA_SOURCE_NOT_FOUND",
    "Failed to find the data source: delta",
    "UNSUPPORTED_DATASOURCE_FOR_DIRECT_QUERY",
    "Unsupported data source type for direct query on files: delta",
    "DeltaSparkSessionExtension",
    # DESCRIBE DETAIL / HISTORY parse only with Delta's SQL extension
    "The table or view `DETAIL` cannot be found",
    "The table or view `HISTORY` cannot be found",
)
_MISSING_TABLE_MARKERS = (
    "DELTA_MISSING_DELTA_TABLE",
    "DELTA_TABLE_NOT_FOUND",
    "is not a Delta table",
    "PATH_NOT_FOUND",
    "DELTA_PATH_DOES_NOT_EXIST",
)


class DeltaSparkUnavailable(RuntimeError):
    """FOODOPS_DELTA_WRITER=delta_spark, but the Spark session has no Delta Lake."""


def write_partitions(
    df: DataFrame,
    store: DeltaStore,
    table: TableRef,
    where: PartitionValues,
    *,
    description: str | None = None,
    commit_metadata: Mapping[str, Any] | None = None,
) -> WriteResult:
    """Replace exactly the partitions in ``where`` with ``df`` (one Delta commit)."""
    predicate = partition_predicate(table, where)
    uri = store.uri(table)
    spark = df.sparkSession
    previous = _check_partitioning(spark, uri, table)
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .option("mergeSchema", "true")
        .partitionBy(*table.partition_by)
    )
    _save(writer, uri, description, commit_metadata)
    version, rows = _latest(spark, uri)
    return WriteResult(
        table_uri=uri,
        version=version,
        previous_version=previous,
        rows_written=rows,
        predicate=predicate,
        partitions=[str(v) for v in where[table.partition_by[0]]],
        writer=WRITER,
    )


def write_table(
    df: DataFrame,
    store: DeltaStore,
    table: TableRef,
    *,
    description: str | None = None,
    commit_metadata: Mapping[str, Any] | None = None,
) -> WriteResult:
    """Replace the whole content of an unpartitioned table (one Delta commit)."""
    if table.is_partitioned:
        raise PredicateError(
            f"table {table.name} is partitioned: replace named partitions, never the whole table"
        )
    uri = store.uri(table)
    spark = df.sparkSession
    previous = _check_partitioning(spark, uri, table)
    writer = df.write.format("delta").mode("overwrite").option("mergeSchema", "true")
    _save(writer, uri, description, commit_metadata)
    version, rows = _latest(spark, uri)
    return WriteResult(
        table_uri=uri,
        version=version,
        previous_version=previous,
        rows_written=rows,
        predicate=None,
        writer=WRITER,
    )


def read(
    spark: SparkSession,
    store: DeltaStore,
    table: TableRef,
    where: PartitionValues | None = None,
) -> DataFrame:
    """The current snapshot of ``table`` through Spark's Delta reader."""
    filters = _filters(table, where)  # validates the selection like a write predicate
    uri = store.uri(table)
    try:
        df = spark.read.format("delta").load(uri)
        columns = df.columns
    except Exception as exc:
        _raise_if_no_delta(exc)
        if _is_missing_table(exc):
            raise TableNotMaterialized(
                f"Delta table {table.name} does not exist at {uri}: "
                f"materialize the asset {table.name} first"
            ) from None
        raise
    for column, _, values in filters:
        df = df.where(F.col(column).isin(list(values)))
    return df.select(*columns)


def _save(writer, uri: str, description: str | None, metadata: Mapping[str, Any] | None) -> None:
    user_metadata = {k: v for k, v in (metadata or {}).items() if v is not None}
    if description:
        user_metadata["description"] = description
    if user_metadata:
        # recorded in the commit, so a table version leads back to its Dagster run
        writer = writer.option("userMetadata", json.dumps(user_metadata, sort_keys=True))
    try:
        writer.save(uri)
    except Exception as exc:
        _raise_if_no_delta(exc)
        raise


def _check_partitioning(spark: SparkSession, uri: str, table: TableRef) -> int | None:
    """The current version (None for a new table); refuses a table partitioned otherwise."""
    try:
        # resolving the table (no job) tells a missing table from a Spark without Delta
        spark.read.format("delta").load(uri).schema  # noqa: B018
    except Exception as exc:
        _raise_if_no_delta(exc)
        if _is_missing_table(exc):
            return None
        raise
    try:
        detail = spark.sql(f"DESCRIBE DETAIL delta.{_quoted(uri)}").first()
    except Exception as exc:
        _raise_if_no_delta(exc)
        raise
    actual = list(detail["partitionColumns"] or [])
    if actual != list(table.partition_by):
        raise PredicateError(
            f"{uri} is partitioned by {actual}, expected {list(table.partition_by)}: "
            "refusing to write"
        )
    version, _ = _latest(spark, uri)
    return version


def _latest(spark: SparkSession, uri: str) -> tuple[int, int]:
    """(version, rows written) of the newest commit, from the Delta history."""
    row = spark.sql(f"DESCRIBE HISTORY delta.{_quoted(uri)} LIMIT 1").first()
    metrics = row["operationMetrics"] or {}
    return int(row["version"]), int(metrics.get("numOutputRows", 0) or 0)


def _quoted(uri: str) -> str:
    return "`" + uri.replace("`", "``") + "`"


def _raise_if_no_delta(exc: Exception) -> None:
    text = str(exc)
    if any(marker in text for marker in _NO_DELTA_MARKERS):
        raise DeltaSparkUnavailable(
            "FOODOPS_DELTA_WRITER=delta_spark, but this Spark session has no Delta Lake on its "
            "classpath. Use a Spark with Delta (Databricks, or a cluster started with delta-spark's "
            "JARs and spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension), or choose "
            "FOODOPS_DELTA_WRITER=spark_files (the cluster writes Parquet, delta-rs commits) or "
            f"arrow. Spark said: {text.splitlines()[0][:300]}"
        ) from None


def _is_missing_table(exc: Exception) -> bool:
    text = str(exc)
    return any(marker in text for marker in _MISSING_TABLE_MARKERS)
