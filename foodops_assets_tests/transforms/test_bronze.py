import datetime as dt
import json
from decimal import Decimal

import pytest

from foodops_assets.contracts import load_contract
from foodops_assets.transforms.bronze import parse_records, partition_date_from_path, split_lines
from foodops_assets_tests.factories import order

PATH = "/landing/orders/date=2026-11-20/batch-0001.jsonl"
NOW = dt.datetime(2026, 11, 21, 1, 0, tzinfo=dt.UTC)


def _files(spark, content: str):
    return spark.createDataFrame(
        [(PATH, NOW, content)], "path string, landed_at timestamp, content string"
    )


def _bronze(spark, content: str):
    return parse_records(
        split_lines(_files(spark, content)), load_contract("orders"), partition_date_from_path()
    )


def _one(spark, line: str):
    rows = _bronze(spark, line + "\n").collect()
    assert len(rows) == 1
    return rows[0]


def test_split_lines_numbers_lines_and_handles_crlf_bom_and_blank_lines(spark):
    content = "\ufeff" + '{"a":1}\r\n\r\n{"a":2}\r\n   \n{"a":3}'
    rows = [
        (r.source_line, r.value)
        for r in split_lines(_files(spark, content)).orderBy("source_line").collect()
    ]
    assert rows == [(1, '{"a":1}'), (3, '{"a":2}'), (5, '{"a":3}')]


def test_a_clean_line_is_typed_with_lineage_and_nothing_rescued(spark):
    row = _one(spark, json.dumps(order(7)))
    assert row.order_id == "o-7"
    assert row.quantity == 2
    assert row.price == Decimal("100.25")
    assert row.order_time == dt.datetime(2026, 11, 20, 12, 7)
    assert row._parse_error is None and row._rescued_data is None and row._extra_fields is None
    assert row.source_file == PATH and row.source_line == 1
    assert row.partition_date == dt.date(2026, 11, 20)
    assert row.ingested_at == NOW.replace(tzinfo=None)


@pytest.mark.parametrize(
    "record, error",
    [
        (order(quantity="2"), "wrong type: quantity"),
        (order(price="abc"), "wrong type: price"),
        (order(quantity=2.5), "wrong type: quantity"),
        (order(order_time="yesterday"), "wrong type: order_time"),
        (order(order_time=1763640000), "wrong type: order_time"),
        (order(city={"name": "Pune"}), "wrong type: city"),
        (order(city=["Pune"], quantity="x"), "wrong type: quantity, city"),
    ],
)
def test_a_value_of_the_wrong_type_is_reported_and_the_line_rescued(spark, record, error):
    line = json.dumps(record)
    row = _one(spark, line)
    assert row._parse_error == error
    assert row._rescued_data == line
    assert row.order_id == "o-1"  # the other fields are still parsed


@pytest.mark.parametrize(
    "line",
    [
        '{"order_id": "o-1", "price": 1',
        "not json at all",
        "[1, 2, 3]",
        '{"order_id":"o-1","price":NaN}',
    ],
)
def test_a_line_that_is_not_a_json_object_is_rescued_whole(spark, line):
    row = _one(spark, line)
    assert row._parse_error == "malformed: not a JSON object"
    assert row._rescued_data == line
    assert row.order_id is None


def test_fields_outside_the_contract_are_rescued_not_rejected(spark):
    line = json.dumps(order(coupon_code="SAVE10", app_version="9.4"))
    row = _one(spark, line)
    assert row._parse_error is None
    assert sorted(row._extra_fields) == ["app_version", "coupon_code"]
    assert row._rescued_data == line
    assert row.price == Decimal("100.25")


def test_timestamps_in_several_iso_spellings_and_offsets(spark):
    cases = {
        "2026-11-20T12:00:00Z": dt.datetime(2026, 11, 20, 12, 0),
        "2026-11-20T17:30:00+05:30": dt.datetime(2026, 11, 20, 12, 0),
        "2026-11-20 12:00:00": dt.datetime(2026, 11, 20, 12, 0),
        "2026-11-20T12:00:00.250Z": dt.datetime(2026, 11, 20, 12, 0, 0, 250000),
    }
    content = "".join(json.dumps(order(n, order_time=t)) + "\n" for n, t in enumerate(cases, 1))
    rows = sorted(_bronze(spark, content).collect(), key=lambda r: r.source_line)
    assert [r.order_time for r in rows] == list(cases.values())
    assert all(r._parse_error is None for r in rows)


def test_non_latin_text_and_replacement_characters(spark):
    ok = _one(spark, json.dumps(order(city="मुंबई"), ensure_ascii=False))
    assert ok.city == "मुंबई" and ok._parse_error is None
    broken = _one(spark, json.dumps(order(city="Pu\ufffdne"), ensure_ascii=False))
    assert broken._parse_error == "not valid UTF-8 text"
