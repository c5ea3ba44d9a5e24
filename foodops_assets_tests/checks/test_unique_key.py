"""The unique-key circuit breaker gives the same verdict on a Spark DataFrame and on the
Arrow rows the arrow writer commits (silver checks the latter)."""

import datetime as dt

import pytest

from foodops_assets.checks import quality

D1, D2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)
SCHEMA = "order_id string, price int, partition_date date"


@pytest.fixture(params=["spark", "arrow"])
def rows(request, spark):
    def make(records):
        df = spark.createDataFrame(records, SCHEMA)
        return df if request.param == "spark" else df.toArrow()

    return make


def test_a_key_once_per_partition_passes_even_when_another_partition_has_it(rows):
    result = quality.unique_key(
        rows([("o-1", 1, D1), ("o-2", 2, D1), ("o-1", 3, D2)]), ["order_id"]
    )
    assert result.passed
    assert result.metadata["duplicate_keys"].value == 0
    assert result.description == "order_id unique per partition"


def test_repeated_keys_are_counted_and_named(rows):
    records = [("o-1", 1, D1), ("o-1", 2, D1), ("o-2", 3, D1), ("o-3", 4, D2), ("o-3", 4, D2)]
    result = quality.unique_key(rows(records), ["order_id"])
    assert not result.passed
    assert result.metadata["duplicate_keys"].value == 2
    assert result.description == "2 order_id values occur more than once"
    assert sorted(result.metadata["sample"].value.split(", ")) == ["o-1", "o-3"]
