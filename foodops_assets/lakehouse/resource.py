"""The lakehouse as a Dagster resource: landing zone in, Delta tables out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession

from ..settings import (
    DELTA_WRITERS,
    ENV_DELTA_WRITER,
    ENV_LAKE_ROOT,
    ENV_LANDING_ROOT,
    ConfigError,
    check_root,
    is_remote_uri,
)
from . import writers
from .delta import DeltaStore, PartitionValues, WriteResult
from .landing import LandingZone
from .tables import TableRef
from .writers.base import DeltaWriter, Rows


def check_local_lake_root(lake_root: str) -> None:
    """A local lake root must be a directory this process can write (created if missing)."""
    if is_remote_uri(lake_root):
        return
    path = Path(lake_root)
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{ENV_LAKE_ROOT}={lake_root} is a file, not a directory: point it to the lake's "
            "directory (it is created if missing)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{ENV_LAKE_ROOT}={lake_root} cannot be created ({exc.strerror}): point it to a "
            "directory this process can write"
        ) from None
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(
            f"{ENV_LAKE_ROOT}={lake_root} is not readable and writable by this process: fix its "
            "permissions or point it elsewhere"
        )


class LakehouseResource(dg.ConfigurableResource):
    """Where the landing files are and where the Delta tables live."""

    landing_root: str = Field(description=f"landing zone root ({ENV_LANDING_ROOT})")
    lake_root: str = Field(description=f"root of the Delta tables ({ENV_LAKE_ROOT})")
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="object-store options for delta-rs (credentials come through EnvVar)",
    )
    delta_writer: str = Field(
        default="auto",
        description=(
            f"how partition writes reach Delta ({ENV_DELTA_WRITER}): arrow (rows through this "
            "process, delta-rs writes), spark_files (the cluster writes Parquet, delta-rs "
            "commits), delta_spark (Spark's Delta writer), auto (spark_files on Spark Connect, "
            "else arrow)"
        ),
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        try:
            check_root(ENV_LANDING_ROOT, self.landing_root)
            check_root(ENV_LAKE_ROOT, self.lake_root)
            check_local_lake_root(self.lake_root)
            if self.delta_writer not in DELTA_WRITERS:
                raise ConfigError(
                    f"{ENV_DELTA_WRITER}={self.delta_writer!r} is not one of "
                    f"{', '.join(DELTA_WRITERS)}"
                )
        except ConfigError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None

    def writer_for(self, spark: SparkSession) -> str:
        """The Delta backend used with this Spark session."""
        return writers.resolve(self.delta_writer, spark)

    def writer(self, rows: Rows | None = None, spark: SparkSession | None = None) -> DeltaWriter:
        """The configured backend for ``rows`` (Arrow rows come only from the arrow writer)."""
        if isinstance(rows, pa.Table):
            return writers.writer("arrow", self.store)
        session = rows.sparkSession if rows is not None else spark
        return writers.writer(self.delta_writer, self.store, session)

    @property
    def store(self) -> DeltaStore:
        return DeltaStore(self.lake_root, self.storage_options)

    @property
    def landing(self) -> LandingZone:
        return LandingZone(self.landing_root)

    def table_uri(self, table: TableRef) -> str:
        return self.store.uri(table)

    def read(
        self, spark: SparkSession, table: TableRef, where: PartitionValues | None = None
    ) -> DataFrame:
        return self.writer(spark=spark).read(spark, table, where)

    def rows_for_write(self, df: DataFrame) -> Rows:
        """``df`` as the configured writer commits it: Arrow rows collected into this process
        once for the arrow writer (checked, then written without a second pass), else ``df``."""
        return self.writer(df).rows_for_write(df)

    def write_partitions(
        self, rows: Rows, table: TableRef, where: PartitionValues, **options: Any
    ) -> WriteResult:
        """Replace exactly the partitions in ``where`` with ``rows`` (one Delta commit);
        ``options`` as :meth:`.writers.base.DeltaWriter.write_partitions` takes them.

        A fold (``rows_where``: some rows of the partitions) is few rows: they are committed
        from Arrow by delta-rs whatever the backend, because ``spark_files`` commits whole
        Parquet files per partition and cannot replace single rows."""
        if options.get("rows_where") is not None and isinstance(rows, DataFrame):
            if self.writer(rows).name == "spark_files":
                rows = rows.toArrow()
        return self.writer(rows).write_partitions(rows, table, where, **options)

    def write_table(self, rows: Rows, table: TableRef, **options: Any) -> WriteResult:
        """Replace the whole content of an unpartitioned table (one Delta commit)."""
        return self.writer(rows).write_table(rows, table, **options)
