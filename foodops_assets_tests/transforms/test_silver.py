"""Every orders rule, on crafted lines, with the exact failed_rules it must produce."""

import datetime as dt
import json

import pytest

from foodops_assets.contracts import load_contract
from foodops_assets.transforms.bronze import parse_records, partition_date_from_path
from foodops_assets.transforms.silver import DLQ, DUPLICATE, SILVER, validate
from foodops_assets_tests.factories import order, without

START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)
NOW = dt.datetime(2026, 11, 21, 1, tzinfo=dt.UTC)


def _validated(spark, lines: list[tuple[str, int, str]]):
    """lines: (file name, line number, text)."""
    df = spark.createDataFrame(
        [(f"/l/orders/date=2026-11-20/{f}", n, NOW, text) for f, n, text in lines],
        "source_file string, source_line long, ingested_at timestamp, value string",
    )
    bronze = parse_records(df, load_contract("orders"), partition_date_from_path())
    return validate(bronze, load_contract("orders"), START, END)


def _rules_of(spark, record_or_line) -> list[str]:
    text = record_or_line if isinstance(record_or_line, str) else json.dumps(record_or_line)
    v = _validated(spark, [("b1.jsonl", 1, text)])
    rows = v.rejected.collect()
    if not rows:
        assert v.valid.count() == 1
        return []
    assert len(rows) == 1
    return rows[0].failed_rules


@pytest.mark.parametrize(
    "record, rules",
    [
        (order(), []),
        (without(order(), "order_id"), ["has_order_id"]),
        (order(order_id="   "), ["has_order_id"]),
        (order(user_id=None), ["has_user_id"]),
        (without(order(), "dish_id"), ["has_dish_id"]),
        (order(restaurant_id=""), ["has_restaurant_id"]),
        (order(price=0), ["valid_price"]),
        (order(price=-3.5), ["valid_price"]),
        (without(order(), "price"), ["valid_price"]),
        (order(quantity=0), ["valid_quantity"]),
        (order(quantity=-1), ["valid_quantity"]),
        (order(status="lost"), ["valid_status"]),
        (order(order_time="2026-11-23T10:00:00Z"), ["order_time_in_window"]),  # in the future
        (order(order_time="2026-10-01T10:00:00Z"), ["order_time_in_window"]),  # absurdly old
        (order(order_time="2026-11-21T00:30:00Z"), []),  # within the clock-skew tolerance
        (order(order_time="2026-11-15T10:00:00Z"), []),  # late but within max_age_days
        (without(order(), "order_time"), ["order_time_in_window"]),
        (order(price=0, quantity=0), ["valid_price", "valid_quantity"]),
        (order(quantity="two"), ["parseable_record", "valid_quantity"]),
        (order(price="12.x", user_id=None), ["parseable_record", "has_user_id", "valid_price"]),
        (order(coupon_code="SAVE5"), []),  # fields outside the contract never reject
    ],
)
def test_each_orders_rule_rejects_exactly_what_it_should(spark, record, rules):
    assert _rules_of(spark, record) == rules


def test_a_malformed_line_fails_only_parseable_record_and_keeps_its_raw_text(spark):
    text = '{"order_id": "o-1", "price": 1'
    v = _validated(spark, [("b1.jsonl", 4, text)])
    [row] = v.rejected.collect()
    assert row.failed_rules == ["parseable_record"]
    assert row.raw_record == text
    assert row.parse_error == "malformed: not a JSON object"
    assert (row.source, row.source_file, row.source_line) == (
        "orders",
        "/l/orders/date=2026-11-20/b1.jsonl",
        4,
    )


def test_a_rejected_record_that_parsed_keeps_a_replayable_raw_record(spark):
    v = _validated(spark, [("b1.jsonl", 1, json.dumps(order(price=0)))])
    [row] = v.rejected.collect()
    replayed = json.loads(row.raw_record)
    assert replayed["order_id"] == "o-1" and replayed["price"] == 0
    assert replayed["order_time"].startswith("2026-11-20T12:01:00")


def test_duplicates_are_counted_not_lost_and_the_newest_landing_wins(spark):
    first = json.dumps(order(1))
    corrected = json.dumps(order(1, status="cancelled"))
    lines = [
        ("b1.jsonl", 1, first),
        ("b1.jsonl", 2, first),  # exact duplicate within a file
        ("b2.jsonl", 1, first),  # ... and across files
        ("b3.jsonl", 1, corrected),  # a later batch corrects the order
        ("b1.jsonl", 3, json.dumps(order(2))),
        ("b1.jsonl", 4, json.dumps(order(3, price=0))),
        ("b2.jsonl", 2, json.dumps(order(3, price=0))),  # a duplicated bad record: both to the DLQ
    ]
    v = _validated(spark, lines)
    counts = {r["_dest"]: (r["rows"], r["conflicts"]) for r in v.counts().collect()}
    assert counts == {SILVER: (2, 0), DUPLICATE: (3, 3), DLQ: (2, 0)}
    kept = {r.order_id: r for r in v.valid.collect()}
    assert kept["o-1"].status == "cancelled" and kept["o-1"].source_file.endswith("b3.jsonl")
    # conservation: bronze = silver + DLQ + duplicates
    assert len(lines) == sum(n for n, _ in counts.values())
