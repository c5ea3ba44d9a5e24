"""The ``delta_spark`` backend: Spark reads and writes Delta itself.

For a Spark that has Delta Lake on its classpath — Databricks, or a cluster
started with delta-spark's JARs. A partition write is Delta's own atomic
predicate overwrite::

    df.write.format("delta").mode("overwrite").option("replaceWhere", predicate)

with the predicate built (and guarded) by the shared write path (:mod:`.base`);
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

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..delta import PartitionValues, TableNotMaterialized, partition_filters
from ..tables import TableRef
from .base import Commit, DeltaWriter, TableState, spark_arrow_schema

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


class Writer(DeltaWriter):
    name = "delta_spark"

    def commit(self, rows: DataFrame, plan: Commit) -> tuple[int, int]:
        table = plan.table
        out = rows.write.format("delta").mode("overwrite").option("mergeSchema", "true")
        if plan.predicate:
            out = out.option("replaceWhere", plan.predicate).partitionBy(*table.partition_by)
        metadata = dict(plan.metadata)
        if plan.description:
            metadata["description"] = plan.description
        # recorded in the commit, so a table version leads back to its Dagster run
        out = out.option("userMetadata", json.dumps(metadata, sort_keys=True))
        if plan.hang:
            plan.hang()  # a drill: killed before Spark writes
        try:
            out.save(self.store.uri(table))
        except Exception as exc:
            _raise_if_no_delta(exc)
            raise
        return self._latest(self.store.uri(table))

    def widen(self, table: TableRef, incoming, commit_metadata) -> bool:
        """Delta's own type widening does this on a Spark with Delta (the table property
        ``delta.enableTypeWidening``, README "Data contracts"); nothing to rewrite here."""
        return False

    def table_state(self, table: TableRef) -> TableState | None:
        """The table before the write, through Spark's Delta source (no delta-rs: the lake
        may be where only the cluster reaches)."""
        uri = self.store.uri(table)
        try:
            # resolving the table (no job) tells a missing table from a Spark without Delta
            schema = self.spark.read.format("delta").load(uri).schema
        except Exception as exc:
            _raise_if_no_delta(exc)
            if _is_missing_table(exc):
                return None
            raise
        detail = self._sql(f"DESCRIBE DETAIL delta.{_quoted(uri)}")
        version, _ = self._latest(uri)
        return TableState(
            version=version,
            partition_columns=list(detail["partitionColumns"] or []),
            schema=spark_arrow_schema(schema),
        )

    def read(
        self, spark: SparkSession, table: TableRef, where: PartitionValues | None = None
    ) -> DataFrame:
        """The current snapshot of ``table`` through Spark's Delta reader."""
        filters = partition_filters(table, where)  # validates the selection like a predicate
        uri = self.store.uri(table)
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

    def _latest(self, uri: str) -> tuple[int, int]:
        """(version, rows written) of the newest commit, from the Delta history."""
        row = self._sql(f"DESCRIBE HISTORY delta.{_quoted(uri)} LIMIT 1")
        metrics = row["operationMetrics"] or {}
        return int(row["version"]), int(metrics.get("numOutputRows", 0) or 0)

    def _sql(self, query: str):
        try:
            return self.spark.sql(query).first()
        except Exception as exc:
            _raise_if_no_delta(exc)
            raise


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
