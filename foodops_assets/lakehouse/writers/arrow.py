"""The ``arrow`` backend: the rows come to this process as Arrow and delta-rs commits them.

The embedded default (Spark and Dagster share the machine anyway). Rows can be collected
once before the write (:meth:`Writer.rows_for_write`), checked in this process, and then
written without a second pass.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from pyspark.sql import DataFrame

from .base import Commit, DeltaWriter


class Writer(DeltaWriter):
    name = "arrow"

    def rows_for_write(self, df: DataFrame) -> pa.Table:
        return df.toArrow()

    def commit(self, rows: pa.Table, plan: Commit) -> tuple[int, int]:
        def once(plan: Commit) -> int:
            source = _hanging_reader(rows, plan.hang) if plan.hang else rows
            return self.store.overwrite(
                source,
                plan.table,
                plan.predicate,
                description=plan.description,
                commit_metadata=plan.metadata,
                on=plan.before.snapshot if plan.before else None,
                create=plan.before is None,
            )

        return self.commit_over_races(plan, once), rows.num_rows


def _hanging_reader(data: pa.Table, hang: Callable[[], None]) -> pa.RecordBatchReader:
    """The rows of ``data`` as a stream that hangs after its first batch (a drill)."""
    batches = data.to_batches(max_chunksize=max(1, data.num_rows // 2)) or []

    def stream():
        yield from batches[:1]
        hang()
        yield from batches[1:]

    return pa.RecordBatchReader.from_batches(data.schema, stream())
