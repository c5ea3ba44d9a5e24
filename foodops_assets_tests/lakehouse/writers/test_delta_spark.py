"""The delta_spark writer: Spark writes Delta itself. Without Delta on the classpath (as on
these machines: no Maven) it must say so, and what to choose instead, before anything is
written."""

import datetime as dt

import pytest

from foodops_assets.lakehouse.tables import TableRef
from foodops_assets.lakehouse.writers.delta_spark import DeltaSparkUnavailable

T = TableRef("silver", "things", ("partition_date",))
D1 = dt.date(2026, 11, 19)


def test_delta_spark_without_delta_on_the_classpath_fails_clearly(spark, lake):
    store = lake.store
    rows = spark.createDataFrame([("a", 1, D1)], "id string, n int, partition_date date")
    lake.writer("arrow").write_partitions(rows, T, {"partition_date": [D1]})
    with pytest.raises(
        DeltaSparkUnavailable, match="FOODOPS_DELTA_WRITER=delta_spark.*spark_files"
    ):
        lake.writer("delta_spark").write_partitions(rows, T, {"partition_date": [D1]})
    assert store.version(T) == 0
