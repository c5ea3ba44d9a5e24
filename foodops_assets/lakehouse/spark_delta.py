"""Moving Spark DataFrames in and out of Delta tables kept by delta-rs.

Writes go through one of three backends (``FOODOPS_DELTA_WRITER``), all of
them one atomic predicate-overwrite commit per partition write:

- ``arrow``: the rows come to this process as Arrow and delta-rs writes them
  (the embedded default: Spark and Dagster share the machine anyway);
- ``spark_files``: the executors write the Parquet files, delta-rs commits
  them (:mod:`.spark_files`; the default when Spark is remote, so data is not
  funnelled through the Dagster process);
- ``delta_spark``: Spark writes Delta itself (:mod:`.delta_spark`; a Spark
  with Delta on its classpath, e.g. Databricks).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from . import delta_spark, spark_files
from .delta import DeltaStore, PartitionValues, WriteResult
from .tables import TableRef

WRITERS = ("arrow", "spark_files", "delta_spark")


def is_remote_session(spark: SparkSession) -> bool:
    """True for a Spark Connect session (the driver is on another machine)."""
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError:  # pyspark without the connect extras
        return False
    return isinstance(spark, ConnectSession)


def resolve_writer(configured: str, spark: SparkSession) -> str:
    """The backend for ``configured`` (``auto`` picks by where Spark runs)."""
    if configured == "auto":
        return "spark_files" if is_remote_session(spark) else "arrow"
    if configured not in WRITERS:
        raise ValueError(f"unknown Delta writer {configured!r}; use auto or one of {WRITERS}")
    return configured


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


def rows_for_write(df: DataFrame, writer: str = "arrow") -> DataFrame | pa.Table:
    """``df`` as ``writer`` will commit it: for the arrow backend the rows themselves,
    collected into this process once (so they can be checked before the write and then
    written without a second pass); for the others ``df`` unchanged."""
    if resolve_writer(writer, df.sparkSession) == "arrow":
        return _to_arrow(df)
    return df


def write_partitions(
    df: DataFrame | pa.Table,
    store: DeltaStore,
    table: TableRef,
    where: PartitionValues,
    *,
    description: str | None = None,
    commit_metadata: dict[str, Any] | None = None,
    writer: str = "arrow",
) -> WriteResult:
    """Replace the partitions in ``where`` with the rows of ``df`` (one Delta commit).

    ``df`` may be Arrow rows from :func:`rows_for_write` (arrow backend only)."""
    if isinstance(df, pa.Table):
        return store.replace_partitions(
            df, table, where, description=description, commit_metadata=commit_metadata
        )
    writer = resolve_writer(writer, df.sparkSession)
    if writer == "spark_files":
        return spark_files.write_partitions(
            df, store, table, where, description=description, commit_metadata=commit_metadata
        )
    if writer == "delta_spark":
        return delta_spark.write_partitions(
            df, store, table, where, description=description, commit_metadata=commit_metadata
        )
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
    writer: str = "arrow",
) -> WriteResult:
    """Replace the whole content of an unpartitioned table (one Delta commit)."""
    writer = resolve_writer(writer, df.sparkSession)
    if writer == "spark_files":
        return spark_files.write_table(
            df, store, table, description=description, commit_metadata=commit_metadata
        )
    if writer == "delta_spark":
        return delta_spark.write_table(
            df, store, table, description=description, commit_metadata=commit_metadata
        )
    return store.replace_table(
        _to_arrow(df), table, description=description, commit_metadata=commit_metadata
    )


def _to_arrow(df: DataFrame) -> pa.Table:
    return df.toArrow()
