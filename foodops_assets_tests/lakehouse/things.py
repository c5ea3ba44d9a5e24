"""A small partitioned table the lakehouse tests write, read and roll back."""

import datetime as dt

from foodops_assets.lakehouse.tables import TableRef

T = TableRef("silver", "things", ("partition_date",))
D1, D2, D3 = dt.date(2026, 11, 19), dt.date(2026, 11, 20), dt.date(2026, 11, 21)


def things(spark, rows):
    """``rows`` of (id, n, partition_date) as a DataFrame."""
    return spark.createDataFrame(rows, "id string, n int, partition_date date")


def content(spark, lake, table=T):
    """Every row of ``table``, sorted, as the assets read it."""
    return sorted(tuple(r) for r in lake.read(spark, table).collect())
