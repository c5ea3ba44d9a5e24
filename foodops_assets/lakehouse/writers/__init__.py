"""How rows reach a Delta table: one protocol (:class:`.base.DeltaWriter`: write partitions,
write a table, read; each write one atomic commit) and one module per
``FOODOPS_DELTA_WRITER`` backend (``arrow``, ``spark_files``, ``delta_spark``), each with a
class ``Writer``. Imports the lakehouse's delta-rs store and tables, settings and the drills'
fault hook."""

from __future__ import annotations

import importlib

from pyspark.sql import SparkSession

from ...settings import DELTA_WRITERS
from ..delta import DeltaStore
from .base import DeltaWriter

# every value of FOODOPS_DELTA_WRITER but auto names a module of this package
BACKENDS = tuple(w for w in DELTA_WRITERS if w != "auto")


def is_remote_session(spark: SparkSession) -> bool:
    """True for a Spark Connect session (the driver is on another machine)."""
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError:  # pyspark without the connect extras
        return False
    return isinstance(spark, ConnectSession)


def resolve(configured: str, spark: SparkSession | None) -> str:
    """The backend for ``configured`` (``auto``: spark_files when Spark is remote, so the data
    does not funnel through this process, else arrow)."""
    if configured == "auto":
        return "spark_files" if spark is not None and is_remote_session(spark) else "arrow"
    if configured not in BACKENDS:
        raise ValueError(f"unknown Delta writer {configured!r}; use auto or one of {BACKENDS}")
    return configured


def writer(configured: str, store: DeltaStore, spark: SparkSession | None = None) -> DeltaWriter:
    """The ``Writer`` of the backend ``configured`` resolves to, for rows of ``spark``."""
    name = resolve(configured, spark)
    return importlib.import_module(f"{__name__}.{name}").Writer(store, spark)
