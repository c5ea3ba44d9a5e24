"""Moving Spark DataFrames in and out of Delta tables kept by delta-rs."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from .delta import DeltaStore, PartitionValues, WriteResult
from .tables import TableRef


def spark_schema_of(store: DeltaStore, table: TableRef):
    return from_arrow_schema(store.arrow_schema(table))


def read_delta(
    spark: SparkSession,
    store: DeltaStore,
    table: TableRef,
    where: PartitionValues | None = None,
) -> DataFrame:
    """The current snapshot of ``table`` (optionally only some partitions) as a DataFrame.

    Spark reads the Parquet files of the snapshot that delta-rs lists; tables
    using reader features a plain Parquet read would get wrong (deletion
    vectors, column mapping) are read through Arrow instead.
    """
    arrow_schema = store.arrow_schema(table)
    schema = from_arrow_schema(arrow_schema)
    columns = [f.name for f in schema.fields]
    if not store.can_read_files_directly(table):
        return spark.createDataFrame(store.to_arrow(table, where))
    files = store.files(table, where)
    if not files:
        return spark.createDataFrame([], schema)
    df = spark.read.schema(schema).option("basePath", store.uri(table)).parquet(*files)
    return df.select(*columns)


def write_partitions(
    df: DataFrame,
    store: DeltaStore,
    table: TableRef,
    where: PartitionValues,
    *,
    description: str | None = None,
    commit_metadata: dict[str, Any] | None = None,
) -> WriteResult:
    """Replace the partitions in ``where`` with the rows of ``df`` (one Delta commit)."""
    return store.replace_partitions(
        _to_arrow(df),
        table,
        where,
        description=description,
        commit_metadata=commit_metadata,
    )


def write_table(
    df: DataFrame,
    store: DeltaStore,
    table: TableRef,
    *,
    description: str | None = None,
    commit_metadata: dict[str, Any] | None = None,
) -> WriteResult:
    """Replace the whole content of an unpartitioned table (one Delta commit)."""
    return store.replace_table(
        _to_arrow(df), table, description=description, commit_metadata=commit_metadata
    )


def _to_arrow(df: DataFrame) -> pa.Table:
    return df.toArrow()
