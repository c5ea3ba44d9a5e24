import dataclasses
import datetime as dt
import json
from decimal import Decimal

import pytest

from foodops_assets.contracts import load_contract
from foodops_assets.transforms.bronze import parse_records, partition_date_from_path, split_lines
from foodops_assets_tests.factories import RESTAURANTS, order

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


# -- issue 17: what a record is, strict JSON, exact values ---------------------------------


def test_regression_a_second_object_on_a_line_is_not_dropped(spark):
    # a producer that forgets a newline: the second order used to vanish without a trace
    line = json.dumps(order(1)) + " " + json.dumps(order(2))
    row = _one(spark, line)
    assert row._parse_error.startswith("malformed: a second JSON object at column")
    assert row._rescued_data == line
    assert row.order_id is None  # the line is not half-accepted: nothing of it is typed


def test_regression_a_lone_carriage_return_does_not_hide_records(spark):
    # old-Mac line endings: three orders, one line as far as \n is concerned
    content = "\r".join(json.dumps(order(n)) for n in (1, 2, 3)) + "\r"
    rows = _bronze(spark, content).collect()
    assert len(rows) == 1
    [row] = rows
    assert row._parse_error.startswith("malformed: a lone carriage return (\\r) at column ")
    assert row._rescued_data == content
    assert row.order_id is None


@pytest.mark.parametrize(
    "tail, found",
    [
        ("garbage", "text after the JSON object"),
        (" // a comment", "text after the JSON object"),
        ("}", "text after the JSON object"),
        (', {"order_id": "o-9"}', "text after the JSON object"),
        (" 42", "a second JSON value"),
    ],
)
def test_anything_after_the_object_makes_the_whole_line_malformed(spark, tail, found):
    line = json.dumps(order(1)) + tail
    row = _one(spark, line)
    assert found in row._parse_error and row._parse_error.startswith("malformed: ")
    assert row._rescued_data == line


def test_crlf_and_trailing_spaces_still_end_a_record(spark):
    content = json.dumps(order(1)) + "  \r\n" + json.dumps(order(2)) + "\r\n"
    rows = sorted(_bronze(spark, content).collect(), key=lambda r: r.source_line)
    assert [(r.order_id, r._parse_error) for r in rows] == [("o-1", None), ("o-2", None)]


def test_a_byte_order_mark_inside_a_file_is_reported(spark):
    content = "\ufeff" + json.dumps(order(1)) + "\n\ufeff" + json.dumps(order(2)) + "\n"
    rows = sorted(_bronze(spark, content).collect(), key=lambda r: r.source_line)
    assert rows[0].order_id == "o-1" and rows[0]._parse_error is None  # the file's own BOM
    assert "byte order mark" in rows[1]._parse_error
    assert rows[1]._rescued_data == "\ufeff" + json.dumps(order(2))


def test_regression_single_quotes_are_not_json(spark):
    line = json.dumps(order(1)).replace('"', "'")
    row = _one(spark, line)
    assert row._parse_error == "malformed: not valid JSON"
    assert row._rescued_data == line and row.order_id is None


@pytest.mark.parametrize(
    "line",
    [
        json.dumps(order(1)).replace('"order_id"', "order_id"),  # unquoted name
        json.dumps(order(1))[:-1] + " /* note */}",  # comment
        json.dumps(order(1))[:-1] + ",}",  # trailing comma
        json.dumps(order(1)).replace('"quantity": 2', '"quantity": 02'),  # leading zero
        json.dumps(order(1)).replace('"price": 100.25', '"price": 0100.25'),
    ],
    ids=["unquoted_name", "comment", "trailing_comma", "leading_zero_int", "leading_zero_decimal"],
)
def test_lenient_json_is_rejected_and_the_line_kept(spark, line):
    row = _one(spark, line)
    assert row._parse_error.startswith("malformed: ")
    assert row._rescued_data == line
    assert row.order_id is None


def test_regression_a_price_with_more_digits_than_the_scale_is_not_rounded(spark):
    line = json.dumps(order(1)).replace('"price": 100.25', '"price": 12.345')
    row = _one(spark, line)
    assert row.price is None  # never 12.35
    assert (
        row._parse_error == "wrong type: price (does not fit decimal(10,2) exactly; never rounded)"
    )
    assert row._rescued_data == line


@pytest.mark.parametrize(
    "text, kept",
    [
        ("12.30", Decimal("12.30")),
        ("1.2e1", Decimal("12.00")),
        ("1250E-2", Decimal("12.50")),
        ("12.340000000000000000000000000000000000000", Decimal("12.34")),
        ("0.000", Decimal("0.00")),
        ("12.3400000000000000000000000000000000000001", None),  # beyond any wide scale
        ("1.2345e1", None),
        ("1e-40", None),  # not 0.00
        ("123456789.5", None),  # more integer digits than decimal(10,2) holds
        ('"12.345"', None),  # a decimal's text is read too, and must be exact as well
    ],
)
def test_decimals_are_kept_exactly_or_rejected(spark, text, kept):
    line = json.dumps(order(1)).replace('"price": 100.25', f'"price": {text}')
    row = _one(spark, line)
    assert row.price == kept
    if kept is None:
        assert row._parse_error.startswith("wrong type: price")
        assert row._rescued_data == line
    else:
        assert row._parse_error is None


@pytest.mark.parametrize(
    "text", ["3000000000", "99999999999999999999999", "2.5e0", "2.5", "25e-1", "1e400"]
)
def test_an_integer_that_overflows_or_is_not_whole_is_a_wrong_type(spark, text):
    line = json.dumps(order(1)).replace('"quantity": 2', f'"quantity": {text}')
    row = _one(spark, line)
    assert row.quantity is None
    assert row._parse_error == "wrong type: quantity"
    assert row._rescued_data == line


def test_a_contract_may_declare_more_decimal_places(spark):
    base = load_contract("orders")
    columns = tuple(
        dataclasses.replace(c, type="decimal(12,3)") if c.name == "price" else c
        for c in base.columns
    )
    contract = dataclasses.replace(base, columns=columns)
    content = "".join(
        json.dumps(order(n)).replace('"price": 100.25', f'"price": {p}') + "\n"
        for n, p in ((1, "12.345"), (2, "12.3456"))
    )
    rows = sorted(
        parse_records(split_lines(_files(spark, content)), contract).collect(),
        key=lambda r: r.source_line,
    )
    assert rows[0].price == Decimal("12.345") and rows[0]._parse_error is None
    assert rows[1].price is None
    assert (
        rows[1]._parse_error
        == "wrong type: price (does not fit decimal(12,3) exactly; never rounded)"
    )


def test_a_double_out_of_range_is_rejected_not_made_infinite(spark):
    contract = load_contract("deliveries")
    line = json.dumps({"delivery_id": "dl-1", "distance_km": 3.5}).replace("3.5", "1e400")
    [row] = parse_records(split_lines(_files(spark, line + "\n")), contract).collect()
    assert row.distance_km is None
    assert row._parse_error.startswith("wrong type: distance_km")


def test_the_exact_check_gives_the_same_rows_in_the_driver_and_on_the_executors(spark, monkeypatch):
    """A few suspect lines are checked in this process; a day with more than
    STRICT_CHECK_IN_DRIVER_MAX of them (a producer nesting every record) on the executors,
    by the same function as a UDF. Both give the same bronze, line for line."""
    from foodops_assets.transforms import bronze

    good = json.dumps(order(1))
    lines = [
        good,
        good + " 42",
        good + ' {"order_id": "o-9"}',
        good.replace('"price": 100.25', '"price": 1.2e1'),
        good.replace('"price": 100.25', '"price": 1e-40'),
        good.replace('"price": 100.25', '"price": 12.3400000000000000000000000000000000000001'),
        good.replace('"city"', '"extra": {"a": 1}, "city"'),
        '{"order_id": "o-bad", "price": ',
        json.dumps(order(2)),
        json.dumps(order(3, city="Pu\ud800ne")),  # a lone surrogate escape
        json.dumps(order(4, city="\U0001f600")),  # a pair: one character
    ]
    content = "\n".join(lines) + "\n"

    def rows():
        return sorted(_bronze(spark, content).collect(), key=lambda r: r.source_line)

    in_driver = rows()
    monkeypatch.setattr(bronze, "STRICT_CHECK_IN_DRIVER_MAX", 2)
    on_executors = rows()
    assert on_executors == in_driver
    errors = [r._parse_error for r in in_driver]
    assert errors[0] is None and errors[8] is None and errors[3] is None  # 1.2e1 is 12.00
    assert "a second JSON value" in errors[1] and "a second JSON object" in errors[2]
    assert errors[4].startswith("wrong type: price") and errors[5].startswith("wrong type: price")
    assert errors[6] is None and in_driver[6]._extra_fields == ["extra"]
    assert errors[7] == "malformed: not a JSON object"
    assert "lone UTF-16 surrogate escape (\\ud800)" in errors[9]
    assert errors[10] is None and in_driver[10].city == "\U0001f600"


# -- values that would change silently: a lone surrogate, a field named twice, precision -------


@pytest.mark.parametrize(
    "city, where",
    [
        ("Pu\ud800ne", "(\\ud800) in field 'city'"),  # a high half alone
        ("\udfff", "(\\udfff) in field 'city'"),  # a low half alone
        ("\ude00\ud83d", "(\\ude00) in field 'city'"),  # both halves, in the wrong order
    ],
)
def test_a_lone_surrogate_escape_is_malformed_not_a_question_mark(spark, city, where):
    # Spark's reader turns "\ud800" into "?": the value would change without a word
    line = json.dumps(order(1, city=city))  # ensure_ascii: the escapes as landed
    row = _one(spark, line)
    assert row._parse_error.startswith(f"malformed: a lone UTF-16 surrogate escape {where}")
    assert row._rescued_data == line and row.city is None


def test_a_lone_surrogate_in_a_field_name_or_an_extra_field_is_malformed_too(spark):
    for line in (
        json.dumps({**order(1), "x\udc00": 1}),
        json.dumps({**order(1), "notes": ["ok", {"a": "\ud83d"}]}),
    ):
        row = _one(spark, line)
        assert "lone UTF-16 surrogate escape" in row._parse_error, line
        assert row._rescued_data == line


def test_an_escaped_surrogate_pair_is_its_one_character(spark):
    for ascii_only in (True, False):
        row = _one(spark, json.dumps(order(1, city="Pune \U0001f600"), ensure_ascii=ascii_only))
        assert row._parse_error is None and row.city == "Pune \U0001f600"


def test_a_field_named_twice_is_malformed(spark):
    line = json.dumps(order(1)).replace(
        '{"order_id": "o-1"', '{"order_id": "o-1", "order_id": "o-2"'
    )
    row = _one(spark, line)
    assert row._parse_error == (
        "malformed: a field appears more than once (order_id): which of its values counts is "
        "undefined (RFC 8259); the line is kept whole"
    )
    assert row._rescued_data == line and row.order_id is None


@pytest.mark.parametrize(
    "text, kept",
    [
        ("2026-11-20T12:00:00.123456Z", dt.datetime(2026, 11, 20, 12, 0, 0, 123456)),
        ("2026-11-20T12:00:00.123456000Z", dt.datetime(2026, 11, 20, 12, 0, 0, 123456)),
        ("2026-11-20T12:00:00.1234567Z", None),  # not 12:00:00.123456
        ("2026-11-20 12:00:00.000000001", None),
        ("2026-11-20 1:2:3.1234567", None),  # one-digit fields: Spark reads them too
    ],
)
def test_a_timestamp_finer_than_a_microsecond_is_rejected_not_truncated(spark, text, kept):
    row = _one(spark, json.dumps(order(1, order_time=text)))
    assert row.order_time == kept
    if kept is None:
        assert row._parse_error == (
            "wrong type: order_time (does not fit timestamp exactly; never truncated)"
        )
    else:
        assert row._parse_error is None


@pytest.mark.parametrize(
    "text, kept",
    [
        ("2024-01-01", dt.date(2024, 1, 1)),
        ("2024-01-01T00:00:00Z", dt.date(2024, 1, 1)),
        ("2024-01-01T10:30:00Z", None),  # not 2024-01-01
        ("2024-01-01T00:00:00+05:30", None),  # 2023-12-31 18:30 UTC: neither day
        ("2024-13-01", "bad"),
    ],
)
def test_a_date_with_a_time_of_day_is_rejected_not_truncated(spark, text, kept):
    line = json.dumps({**RESTAURANTS[0], "onboarded_date": text})
    [row] = parse_records(
        split_lines(_files(spark, line + "\n")), load_contract("restaurants")
    ).collect()
    if kept == "bad":
        assert row._parse_error == "wrong type: onboarded_date" and row.onboarded_date is None
    elif kept is None:
        assert row.onboarded_date is None
        assert row._parse_error == (
            "wrong type: onboarded_date (does not fit date exactly; never truncated)"
        )
    else:
        assert row.onboarded_date == kept and row._parse_error is None


@pytest.mark.parametrize(
    "text",
    [
        '"12,50"',  # a decimal comma: Spark's reader alone makes it 1250.00
        '"1,000.25"',  # a grouping comma
        '"1,2,3"',
        '"+12.5"',
        '"\uff11\uff12.5"',  # fullwidth digits
        '" 12.5"',
    ],
)
def test_a_decimal_given_as_text_must_be_a_plain_number(spark, text):
    for line in (
        json.dumps(order(1)).replace('"price": 100.25', f'"price": {text}'),
        # the field's name escaped: the same field, the same rule
        json.dumps(order(1)).replace('"price": 100.25', f'"pr\\u0069ce": {text}'),
    ):
        row = _one(spark, line)
        assert row.price is None, line
        assert row._parse_error == "wrong type: price", line
        assert row._rescued_data == line


@pytest.mark.parametrize(
    "text, kept", [('"12.50"', "12.50"), ('"1.25e1"', "12.50"), ('"-0.5"', "-0.50")]
)
def test_a_decimal_given_as_a_plain_number_text_is_kept(spark, text, kept):
    row = _one(spark, json.dumps(order(1)).replace('"price": 100.25', f'"price": {text}'))
    assert row._parse_error is None and row.price == Decimal(kept)
