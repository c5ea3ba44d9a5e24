"""Reading an SCD type 2 history (``restaurants_history``, ``dishes_history``) as of a time.

A history holds one row per version of a key with ``valid_from`` and ``valid_to`` (null for
the current version). Gold and the ML features join the version valid when the fact
happened, so re-materialising an old day reproduces what was true then; given a plain
snapshot instead (a lake whose history was never built), they join its one row per key.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def is_history(table: DataFrame) -> bool:
    """Whether ``table`` is an SCD type 2 history (versions with validity) rather than one
    snapshot."""
    return {"valid_from", "valid_to"} <= set(table.columns)


def valid_at(at: Column) -> Column:
    """A version is valid at ``at``: ``valid_from <= at < valid_to``, an open ``valid_to``
    being the current version."""
    return (F.col("valid_from") <= at) & (F.col("valid_to").isNull() | (at < F.col("valid_to")))


def as_of(rows: DataFrame, versions: DataFrame, key: str, at: str) -> DataFrame:
    """``rows`` left-joined to the version of ``key`` valid at the time ``rows[at]``
    (``valid_from <= at < valid_to``, an open ``valid_to`` = current): what was true then.
    ``versions`` holds ``key``, ``valid_from``, ``valid_to`` and the attributes wanted."""
    v = versions.withColumnRenamed(key, "_v_key")
    valid = (F.col(key) == F.col("_v_key")) & valid_at(F.col(at))
    return rows.join(F.broadcast(v), valid, "left").drop("_v_key", "valid_from", "valid_to")
