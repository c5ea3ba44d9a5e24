"""A writer process for the concurrency tests: replaces one partition of a table through
the arrow writer at an agreed instant, and reports how it ended (no Spark: delta-rs only)."""

from __future__ import annotations

import datetime as dt
import os
import time

import pyarrow as pa

from foodops_assets.lakehouse.delta import DeltaStore
from foodops_assets.lakehouse.tables import TableRef
from foodops_assets.lakehouse.writers import arrow

RACE = TableRef("silver", "race", ("partition_date",))
DLQ_LIKE = TableRef("silver", "race_dlq", ("partition_date", "source"))
ROWS = 20_000


def rows(writer: str, day: dt.date, source: str | None = None, n: int = ROWS) -> pa.Table:
    data = {"writer": [writer] * n, "i": list(range(n)), "partition_date": [day] * n}
    if source is not None:
        data["source"] = [source] * n
    return pa.table(data)


def write_at(lake_root, table, writer, where, start, results) -> None:
    day = where["partition_date"][0]
    source = where.get("source", [None])[0]
    data = rows(writer, day, source)
    while time.time() < start:
        time.sleep(0.001)
    try:
        arrow.Writer(DeltaStore(lake_root)).write_partitions(data, table, where)
        results.put((writer, "ok", ""))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put((writer, type(exc).__name__, str(exc)))


def write_held(lake_root, table, writer, where, env, results) -> None:
    """The same write, held in the middle of its Delta write until the release file of
    ``env`` appears (the ``hang_write`` fault point), then reported like ``write_at``."""
    os.environ.update(env)
    write_at(lake_root, table, writer, where, 0, results)
