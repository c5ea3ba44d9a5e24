"""The bad-input corpus, end to end: every case lands in one orders partition, which is
materialised ONCE (bronze, silver + DLQ); each case then has its own assertion.

Every line ends as a silver row or a DLQ row with its rule; whole-file problems (zero bytes,
only blank lines, binary garbage) are reported in bronze's metadata and copied to the landing
zone's ``_quarantine`` with the reason. Never a crashed run, never a lost line.

Static cases live in ``foodops_assets_tests/corpus/orders`` (``CASES.md`` names each line of
``records.jsonl``); the binary, invalid-UTF-8, zero-byte and 10 MB files are generated here.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from foodops_assets.lakehouse.tables import DEAD_LETTER_QUEUE, ORDERS_RAW, ORDERS_VALID
from foodops_assets_tests.conftest import Lake, materialize
from foodops_assets_tests.factories import order

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "orders"
DAY = dt.date(2026, 11, 20)
UTC = dt.UTC
TEN_MB = 10 * 1024 * 1024
# JSON forbids raw control characters inside strings: a whole order with a raw tab in a
# string, and a line whose fields are all strings with a raw \x01 in one of them
CONTROL_CHAR_LINES = [
    json.dumps(order(41, day=DAY)).replace('"Pune"', '"Pu\tne"'),
    '{"order_id": "o-42", "city": "Pu\x01ne"}',
]

# issue 17: a producer that forgets a newline; old-Mac line endings; a price with more digits
# than the contract's scale; single quotes
TWO_OBJECTS = json.dumps(order(50, day=DAY)) + " " + json.dumps(order(51, day=DAY))
BARE_CR = "\r".join(json.dumps(order(n, day=DAY)) for n in (52, 53, 54)) + "\r"
PRICE_12_345 = json.dumps(order(55, day=DAY, price=1)).replace('"price": 1', '"price": 12.345')
SINGLE_QUOTES = json.dumps(order(56, day=DAY)).replace('"', "'")

# records.jsonl, line by line (see corpus/orders/CASES.md)
RECORD_LINES = {
    "valid": 1,
    "nested_object": 2,
    "number_as_string": 3,
    "boolean_as_number": 4,
    "unknown_extra_fields": 5,
    "missing_fields": 6,
    "nan": 7,
    "infinity": 8,
    "ts_offset": 9,
    "ts_space_no_zone": 10,
    "ts_fraction_z": 11,
    "ts_negative_offset": 12,
    "ts_not_iso": 13,
    "non_latin": 14,
    "truncated_json": 15,
}


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, spark_resource, with_reference):
    lake = Lake.under(tmp_path_factory.mktemp("corpus"))
    day_dir = lake.landing / "orders" / f"date={DAY.isoformat()}"
    day_dir.mkdir(parents=True)
    for name in ("records.jsonl", "bom.jsonl", "crlf.jsonl", "empty.jsonl"):
        shutil.copyfile(CORPUS / name, day_dir / name)
    (day_dir / "zero.jsonl").write_bytes(b"")
    # binary garbage: every byte value, NULs included, in a few "lines"
    (day_dir / "binary.jsonl").write_bytes(bytes(range(256)) * 8)
    # one record carrying bytes that are not UTF-8 inside a string
    good = json.dumps(order(40, day=DAY)).encode()
    (day_dir / "invalid_utf8.jsonl").write_bytes(good.replace(b'"Pune"', b'"Pu\xff\xfene"') + b"\n")
    (day_dir / "control_chars.jsonl").write_text(
        "\n".join(CONTROL_CHAR_LINES) + "\n", encoding="utf-8"
    )
    # issue 17's defects, as a new user landed them
    (day_dir / "two_objects.jsonl").write_text(TWO_OBJECTS + "\n", encoding="utf-8")
    (day_dir / "bare_cr.jsonl").write_bytes(BARE_CR.encode())
    (day_dir / "exact_price.jsonl").write_text(PRICE_12_345 + "\n", encoding="utf-8")
    (day_dir / "single_quotes.jsonl").write_text(SINGLE_QUOTES + "\n", encoding="utf-8")
    secret = tmp_path_factory.mktemp("elsewhere") / "secret.jsonl"
    secret.write_text(json.dumps(order(90, day=DAY)) + "\n", encoding="utf-8")
    (day_dir / "linked.jsonl").symlink_to(secret)
    # a 10 MB single line: a valid order with a huge field outside the contract
    (day_dir / "long_line.jsonl").write_text(
        json.dumps({**order(30, day=DAY), "note": "x" * TEN_MB}) + "\n", encoding="utf-8"
    )
    with_reference(lake)
    result = materialize(
        lake,
        spark_resource,
        ["orders_raw", "orders_valid"],
        partition_key=DAY.isoformat(),
        raise_on_error=False,
        # the corpus is mostly bad on purpose: accept its DLQ share for this run
        run_config={"ops": {"orders_valid": {"config": {"max_dlq_rate": 1.0}}}},
    )
    store = lake.store
    where = {"partition_date": [DAY]}
    by_line = lambda t: {(Path(r["source_file"]).name, r["source_line"]): r for r in t.to_pylist()}  # noqa: E731
    return {
        "result": result,
        "landing": lake.landing,
        "bronze": by_line(store.to_arrow(ORDERS_RAW, where)),
        "silver": by_line(store.to_arrow(ORDERS_VALID, where)),
        "dlq": by_line(store.to_arrow(DEAD_LETTER_QUEUE, where)),
    }


def _meta(result, asset):
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_the_run_succeeds_and_every_line_is_accounted_for(corpus_run):
    result = corpus_run["result"]
    assert result.success
    bronze, silver, dlq = corpus_run["bronze"], corpus_run["silver"], corpus_run["dlq"]
    # every bronze line is in exactly one place (no duplicates in this corpus)
    assert set(silver) | set(dlq) == set(bronze)
    assert not set(silver) & set(dlq)
    meta = _meta(result, "orders_valid")
    assert (
        meta["bronze_rows"] == meta["silver_rows"] + meta["dlq_rows"] + meta["duplicates_dropped"]
    )
    assert meta["duplicates_dropped"] == 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["published_consistency"] is True


SILVER_CASES = {
    "valid": ("records.jsonl", 1, {"order_time": dt.datetime(2026, 11, 20, 12, tzinfo=UTC)}),
    "unknown_extra_fields": ("records.jsonl", 5, {"order_id": "o-5"}),
    "ts_offset": ("records.jsonl", 9, {"order_time": dt.datetime(2026, 11, 20, 6, 30, tzinfo=UTC)}),
    "ts_space_no_zone": (
        "records.jsonl",
        10,
        {"order_time": dt.datetime(2026, 11, 20, 12, tzinfo=UTC)},
    ),
    "ts_fraction_z": (
        "records.jsonl",
        11,
        {"order_time": dt.datetime(2026, 11, 20, 12, 0, 0, 123456, tzinfo=UTC)},
    ),
    "ts_negative_offset": (
        "records.jsonl",
        12,
        {"order_time": dt.datetime(2026, 11, 20, 12, tzinfo=UTC)},
    ),
    "non_latin": (
        "records.jsonl",
        14,
        {"city": "東京", "user_id": "ユーザー-14", "payment_method": "मुंबई-वॉलेट"},
    ),
    "utf8_bom": ("bom.jsonl", 1, {"order_id": "o-20"}),
    "crlf_line_1": ("crlf.jsonl", 1, {"order_id": "o-21", "status": "placed"}),
    "crlf_line_2": ("crlf.jsonl", 2, {"order_id": "o-22", "status": "placed"}),
    "ten_mb_single_line": ("long_line.jsonl", 1, {"order_id": "o-30"}),
}


@pytest.mark.parametrize("case", sorted(SILVER_CASES))
def test_good_records_in_odd_shapes_reach_silver(corpus_run, case):
    name, line, expected = SILVER_CASES[case]
    row = corpus_run["silver"][(name, line)]
    assert {k: row[k] for k in expected} == expected


DLQ_CASES = {
    # case: (file, line, rules that must be among failed_rules, words in parse_error or None)
    "nested_object": ("records.jsonl", 2, {"parseable_record"}, "city"),
    "number_as_string": ("records.jsonl", 3, {"parseable_record"}, "quantity"),
    "boolean_as_number": ("records.jsonl", 4, {"parseable_record"}, "quantity"),
    "missing_fields": ("records.jsonl", 6, {"has_user_id", "has_dish_id"}, None),
    "nan": ("records.jsonl", 7, {"parseable_record"}, None),
    "infinity": ("records.jsonl", 8, {"parseable_record"}, None),
    "timestamp_not_iso": ("records.jsonl", 13, {"parseable_record"}, "order_time"),
    "truncated_json": ("records.jsonl", 15, {"parseable_record"}, "malformed"),
    "invalid_utf8": ("invalid_utf8.jsonl", 1, {"parseable_record"}, "UTF-8"),
}


@pytest.mark.parametrize("case", sorted(DLQ_CASES))
def test_bad_records_reach_the_dlq_with_their_rule(corpus_run, case):
    name, line, rules, words = DLQ_CASES[case]
    row = corpus_run["dlq"][(name, line)]
    assert rules <= set(row["failed_rules"]), row["failed_rules"]
    if words is not None:
        assert words in (row["parse_error"] or ""), row["parse_error"]
    # the raw line is kept for replay
    assert row["raw_record"]


def test_a_raw_control_character_makes_a_line_malformed_and_it_is_kept_verbatim(corpus_run):
    # the reader sees no field of such a line; it must not pass for an empty record
    for line, text in enumerate(CONTROL_CHAR_LINES, start=1):
        row = corpus_run["dlq"][("control_chars.jsonl", line)]
        assert row["failed_rules"] == ["parseable_record"]
        assert row["parse_error"] == "malformed: not valid JSON"
        assert row["raw_record"] == text


def test_extra_fields_and_the_ten_mb_line_are_rescued_in_bronze(corpus_run):
    bronze = corpus_run["bronze"]
    assert sorted(bronze[("records.jsonl", 5)]["_extra_fields"]) == ["coupon_code", "device"]
    huge = bronze[("long_line.jsonl", 1)]
    assert huge["_extra_fields"] == ["note"] and len(huge["_rescued_data"]) > TEN_MB


QUARANTINE_CASES = {
    "zero_byte": ("zero.jsonl", "zero-byte"),
    "empty_file": ("empty.jsonl", "empty file"),
    "binary_garbage": ("binary.jsonl", "binary"),
}


@pytest.mark.parametrize("case", sorted(QUARANTINE_CASES))
def test_whole_file_problems_are_reported_and_quarantined(corpus_run, case):
    name, words = QUARANTINE_CASES[case]
    meta = _meta(corpus_run["result"], "orders_raw")
    assert meta["quarantined_files"] == 3
    assert meta["refused_entries"] == 1  # the symlink out of the landing zone
    [report] = [r for r in meta["quarantine"].splitlines() if f"/{name} |" in r]
    assert words in report
    copy = corpus_run["landing"] / "_quarantine" / "orders" / f"date={DAY.isoformat()}" / name
    assert copy.exists()
    assert words in Path(f"{copy}.reason.txt").read_text()


def test_binary_lines_are_not_lost(corpus_run):
    bronze_lines = [k for k in corpus_run["bronze"] if k[0] == "binary.jsonl"]
    assert bronze_lines
    for key in bronze_lines:
        assert "parseable_record" in corpus_run["dlq"][key]["failed_rules"]


# -- issue 17: each defect a new user found, end to end (one materialisation, above) ------


def test_regression_two_objects_on_one_line_reach_the_dlq_whole(corpus_run):
    # the second order used to be nowhere: not in bronze, silver or the DLQ
    row = corpus_run["dlq"][("two_objects.jsonl", 1)]
    assert row["failed_rules"] == ["parseable_record"]
    assert row["raw_record"] == TWO_OBJECTS
    assert "a second JSON object" in row["parse_error"]
    assert not {"o-50", "o-51"} & {r["order_id"] for r in corpus_run["silver"].values()}


def test_regression_bare_carriage_returns_do_not_lose_orders(corpus_run):
    # three orders separated by \r: one line, rescued whole (it used to be one order, two lost)
    assert [k for k in corpus_run["bronze"] if k[0] == "bare_cr.jsonl"] == [("bare_cr.jsonl", 1)]
    row = corpus_run["dlq"][("bare_cr.jsonl", 1)]
    assert row["raw_record"] == BARE_CR
    assert "lone carriage return" in row["parse_error"]
    assert row["failed_rules"] == ["parseable_record"]


def test_regression_a_price_is_never_rounded(corpus_run):
    row = corpus_run["dlq"][("exact_price.jsonl", 1)]
    assert "parseable_record" in row["failed_rules"]
    assert "price" in row["parse_error"] and "decimal(10,2)" in row["parse_error"]
    assert row["raw_record"] == PRICE_12_345
    assert corpus_run["bronze"][("exact_price.jsonl", 1)]["price"] is None  # never 12.35


def test_regression_a_symlink_out_of_the_landing_zone_is_not_ingested(corpus_run):
    assert not [k for k in corpus_run["bronze"] if k[0] == "linked.jsonl"]
    assert "o-90" not in {r["order_id"] for r in corpus_run["bronze"].values()}
    meta = _meta(corpus_run["result"], "orders_raw")
    [report] = [r for r in meta["quarantine"].splitlines() if "/linked.jsonl" in r]
    assert "outside the landing root" in report
    note = (
        corpus_run["landing"]
        / "_quarantine"
        / "orders"
        / f"date={DAY.isoformat()}"
        / "linked.jsonl.reason.txt"
    )
    assert "outside the landing root" in note.read_text()
    assert not note.with_suffix("").exists()  # a note, never a copy of the content


def test_regression_single_quotes_are_not_json(corpus_run):
    row = corpus_run["dlq"][("single_quotes.jsonl", 1)]
    assert row["failed_rules"] == ["parseable_record"]
    assert row["parse_error"] == "malformed: not valid JSON"
    assert row["raw_record"] == SINGLE_QUOTES
