"""The post-write circuit breaker on small published tables: a right write is confirmed
from the audit's fingerprints, anything else is examined line by line and named."""

import datetime as dt

import pytest
from pyspark.sql import functions as F

from foodops_assets.checks.published import Audited, Fingerprint, published_consistency
from foodops_assets.transforms.silver import identity_sum

DAY = dt.date(2026, 11, 20)
LINEAGE = "source_file string, source_line long, partition_date date"
SILVER = "order_id string, source_file string, source_line long, partition_date date"
# bronze: 6 lines of one file; line 3 is a duplicate of line 1's order (dropped), lines 5
# and 6 were rejected to the DLQ
BRONZE = [(f"o-{1 if n == 3 else n}", "f1", n, DAY) for n in range(1, 7)]
KEPT = [("o-1", "f1", 1, DAY), ("o-2", "f1", 2, DAY), ("o-4", "f1", 4, DAY)]
REJECTED = [("f1", 5, DAY), ("f1", 6, DAY)]
DROPPED = [("o-1", "f1", 3, DAY)]


def _fingerprint(df, key=()) -> Fingerprint:
    row = df.agg(
        F.count(F.lit(1)).alias("rows"), identity_sum().alias("l"), identity_sum(*key).alias("k")
    ).first()
    return Fingerprint(row["rows"], int(row["l"] or 0), int(row["k"] or 0) if key else 0)


@pytest.fixture
def tables(spark):
    def make(silver=KEPT, dlq=REJECTED):
        return (
            spark.createDataFrame(BRONZE, SILVER),
            spark.createDataFrame(silver, SILVER),
            spark.createDataFrame(dlq, LINEAGE),
        )

    return make


@pytest.fixture
def audited(spark):
    # what the audit before the write saw: exactly KEPT, REJECTED and DROPPED
    return Audited(
        bronze=_fingerprint(spark.createDataFrame(BRONZE, SILVER)),
        duplicates=_fingerprint(spark.createDataFrame(DROPPED, SILVER)),
        silver=_fingerprint(spark.createDataFrame(KEPT, SILVER), ["order_id"]),
    )


def _meta(check):
    return {k: v.value for k, v in check.metadata.items()}


def test_a_right_write_is_confirmed_with_the_same_figures_as_line_by_line(tables, audited):
    confirmed = published_consistency(*tables(), ["order_id"], "2026-11-20", audited=audited)
    examined = published_consistency(*tables(), ["order_id"], "2026-11-20")
    assert confirmed.passed and examined.passed
    assert _meta(confirmed) == _meta(examined)
    assert _meta(confirmed)["lines_placed_once"] == 5
    assert _meta(confirmed)["duplicates_dropped"] == 1


def test_a_row_committed_twice_is_named_even_with_an_audit(tables, audited):
    check = published_consistency(
        *tables(silver=KEPT + KEPT[:1]), ["order_id"], "2026-11-20", audited=audited
    )
    assert not check.passed
    meta = _meta(check)
    assert meta["lines_in_two_places"] == 1 and meta["repeated_business_keys"] == 1


def test_a_lost_dlq_row_is_named_even_with_an_audit(tables, audited):
    check = published_consistency(
        *tables(dlq=REJECTED[:1]), ["order_id"], "2026-11-20", audited=audited
    )
    assert not check.passed
    assert _meta(check)["lines_lost"] == 1


def test_a_changed_business_key_is_not_confirmed_by_the_audit(tables, audited):
    # same lines, but line 4 now carries order o-2 as well: the fingerprint of silver differs,
    # and the line-by-line examination finds the repeated key
    changed = [KEPT[0], KEPT[1], ("o-2", "f1", 4, DAY)]
    check = published_consistency(
        *tables(silver=changed), ["order_id"], "2026-11-20", audited=audited
    )
    assert not check.passed
    assert _meta(check)["repeated_business_keys"] == 1
    assert _meta(check)["lines_in_two_places"] == 0
