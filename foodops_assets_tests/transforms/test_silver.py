"""Every orders rule, on crafted lines, with the exact failed_rules it must produce."""

import datetime as dt
import json

import pytest

from foodops_assets.contracts import load_contract
from foodops_assets.transforms.bronze import parse_records, partition_date_from_path
from foodops_assets.transforms.references import attach_references
from foodops_assets.transforms.silver import DLQ, DUPLICATE, SILVER, validate
from foodops_assets_tests.factories import delivery, order, review, without

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
        # in the order of the contract's properties (quantity before price)
        (order(price=0, quantity=0), ["valid_quantity", "valid_price"]),
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


# -- deliveries and reviews -------------------------------------------------------------------
ORDERS_LOOKUP = "order_id string, partition_date date, order_time timestamp"


def _validated_source(spark, source: str, texts: list[str], orders=None):
    """Bronze of ``source`` (one file, partition 2026-11-20), with references to ``orders``
    ((order_id, partition_date, order_time) rows) attached, validated."""
    contract = load_contract(source)
    df = spark.createDataFrame(
        [
            (f"/l/{source}/date=2026-11-20/b1.jsonl", n, NOW, text)
            for n, text in enumerate(texts, start=1)
        ],
        "source_file string, source_line long, ingested_at timestamp, value string",
    )
    bronze = parse_records(df, contract, partition_date_from_path())
    lookup = spark.createDataFrame(orders or [], ORDERS_LOOKUP)
    return validate(attach_references(bronze, contract, {"orders": lookup}), contract, START, END)


def _rules_by_id(v, key: str) -> dict:
    return {
        (json.loads(r.raw_record).get(key) or "?"): r.failed_rules for r in v.rejected.collect()
    }


DELIVERY_CASES = [
    (delivery(1), []),
    (delivery(2, status="cancelled", picked_up_at=None, delivered_at=None), []),
    (delivery(3, status="failed", delivered_at=None), []),
    (delivery(4, delivered_at="2026-11-20T12:15:00Z"), []),  # picked up and delivered at once
    (delivery(5, picked_up_at=None), []),  # a missing pickup is skipped: 12:00 <= 12:40 holds
    (without(delivery(6), "delivery_id"), ["has_delivery_id"]),
    (delivery(7, order_id=" "), ["has_order_id"]),
    (delivery(8, rider_id=None), ["has_rider_id"]),
    (delivery(9, city=""), ["has_city"]),
    (delivery(10, status="lost", delivered_at=None), ["valid_delivery_status"]),
    (
        delivery(
            11,
            assigned_at="2026-11-25T12:00:00Z",
            picked_up_at=None,
            delivered_at=None,
            status="cancelled",
        ),
        ["assigned_at_in_window"],
    ),
    (without(delivery(12), "assigned_at"), ["assigned_at_in_window"]),
    (delivery(13, delivered_at=None), ["delivered_at_iff_delivered"]),
    (delivery(14, status="failed"), ["delivered_at_iff_delivered"]),
    (delivery(15, status="cancelled", picked_up_at=None), ["delivered_at_iff_delivered"]),
    (delivery(16, picked_up_at="2026-11-20T11:50:00Z"), ["timestamps_ordered"]),
    (delivery(17, delivered_at="2026-11-20T12:10:00Z"), ["timestamps_ordered"]),
    (delivery(18, picked_up_at=None, delivered_at="2026-11-20T11:00:00Z"), ["timestamps_ordered"]),
    (delivery(19, distance_km=-0.5), ["non_negative_distance"]),
    (without(delivery(20), "distance_km"), ["non_negative_distance"]),
    (delivery(21, distance_km="far"), ["parseable_record", "non_negative_distance"]),
    (
        delivery(22, status="cancelled", delivered_at=None, distance_km=-1),
        ["non_negative_distance"],
    ),
    (delivery(23, tip_amount=20), []),  # a field outside the contract never rejects
]


def test_each_deliveries_rule_rejects_exactly_what_it_should(spark):
    v = _validated_source(spark, "deliveries", [json.dumps(r) for r, _ in DELIVERY_CASES])
    got = _rules_by_id(v, "delivery_id")
    for record, rules in DELIVERY_CASES:
        key = record.get("delivery_id", "?")
        assert got.get(key, []) == rules, (record, got.get(key))
    accepted = {r.delivery_id for r in v.valid.collect()}
    assert accepted == {r["delivery_id"] for r, rules in DELIVERY_CASES if not rules}


ORDERS = [
    ("o-1", dt.date(2026, 11, 20), dt.datetime(2026, 11, 20, 12, 0)),
    ("o-2", dt.date(2026, 11, 13), dt.datetime(2026, 11, 13, 20, 0)),  # 7 days back: in window
    ("o-3", dt.date(2026, 11, 12), dt.datetime(2026, 11, 12, 20, 0)),  # 8 days back: outside
    ("o-4", dt.date(2026, 11, 21), dt.datetime(2026, 11, 21, 9, 0)),  # a later partition: outside
    # the same order landed in two partitions: the newest partition's version counts
    ("o-5", dt.date(2026, 11, 19), dt.datetime(2026, 11, 19, 23, 0)),
    ("o-5", dt.date(2026, 11, 20), dt.datetime(2026, 11, 20, 19, 0)),
]

REVIEW_CASES = [
    (review(1), []),
    (review(2), []),
    (review(3), []),  # order outside the lookback: an orphan, kept (known_orders reports it)
    (review(4, review_time="2026-11-20T08:00:00Z"), []),  # order only in a later partition: orphan
    (review(5), ["review_after_order"]),  # 18:00 is before the newest version's 19:00
    (review(6), []),  # unknown order: nothing to compare with
    (review(7, order_id="o-1", review_time="2026-11-20T11:59:59Z"), ["review_after_order"]),
    (review(8, order_id="o-1", review_time="2026-11-20T12:00:00Z"), []),  # the same instant
    (without(review(9), "review_id"), ["has_review_id"]),
    (review(10, order_id=None), ["has_order_id"]),
    (review(11, user_id="  "), ["has_user_id"]),
    (without(review(12), "restaurant_id"), ["has_restaurant_id"]),
    (review(13, rating=0), ["valid_rating"]),
    (review(14, rating=6), ["valid_rating"]),
    (without(review(15), "rating"), ["valid_rating"]),
    (review(16, rating=4.5), ["parseable_record", "valid_rating"]),
    (review(17, rating="5"), ["parseable_record", "valid_rating"]),
    (review(18, review_time="2026-11-24T10:00:00Z"), ["review_time_in_window"]),
    (review(19, order_id="o-1", review_time=None), ["review_time_in_window", "review_after_order"]),
    (review(20, comment=None), []),  # the comment is optional
    (review(21, rating=1), []),
    (review(22, rating=5, photo_count=2), []),
]


def test_each_reviews_rule_rejects_exactly_what_it_should(spark):
    v = _validated_source(spark, "reviews", [json.dumps(r) for r, _ in REVIEW_CASES], ORDERS)
    got = _rules_by_id(v, "review_id")
    for record, rules in REVIEW_CASES:
        key = record.get("review_id", "?")
        assert got.get(key, []) == rules, (record, got.get(key))
    # every bronze line ends in exactly one place, once
    assert v.valid.count() + v.rejected.count() == len(REVIEW_CASES)
    orphans = sorted(r.review_id for r in v.orphans("orders").collect())
    assert orphans == ["rv-20", "rv-21", "rv-22", "rv-3", "rv-4", "rv-6"]
    [row] = v.references_found("orders").collect()
    assert (row.valid, row.orphans) == (v.valid.count(), 6)


def test_validate_refuses_reference_rules_without_the_referenced_records(spark):
    contract = load_contract("reviews")
    df = spark.createDataFrame(
        [("/l/reviews/date=2026-11-20/b1.jsonl", 1, NOW, json.dumps(review(1)))],
        "source_file string, source_line long, ingested_at timestamp, value string",
    )
    bronze = parse_records(df, contract, partition_date_from_path())
    with pytest.raises(ValueError, match="attach_references"):
        validate(bronze, contract, START, END)
