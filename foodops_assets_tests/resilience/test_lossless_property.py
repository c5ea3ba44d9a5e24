"""Property: whatever lands, every record ends in silver or the DLQ exactly once, unchanged.

Hypothesis generates landing files for one orders partition — valid orders (prices in
several spellings: trailing zeros, exponents), every bad-line kind the README lists, lines
that break the record definition (two objects on a line, a lone ``\\r`` between orders,
trailing text, a byte order mark inside the file), lenient JSON, numbers that do not fit
their type, invalid UTF-8 — joined with random line endings, blank lines, a leading BOM or
not, a final newline or not. One materialisation of ``orders_raw`` and ``orders_valid`` per
example (the session's Spark, a fresh lake), then:

- every generated record is at its (file, line) in silver or in the DLQ, never both, and
  nothing else is there (no record lost, none invented);
- a valid order's values in silver equal what was landed (the price compared as a
  ``Decimal``, never rounded; the order time to the microsecond; a city escaped as a
  surrogate pair is its one character);
- a rejected line's DLQ ``raw_record`` is its landed text (invalid UTF-8 decoded with
  replacement characters, as it is read), with ``parseable_record`` among its rules.

The number of examples is bounded: each is a full materialisation.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foodops_assets.lakehouse.tables import DEAD_LETTER_QUEUE, ORDERS_VALID
from foodops_assets_tests.conftest import Lake, materialize
from foodops_assets_tests.factories import order

DAY = dt.date(2026, 11, 20)
EXAMPLES = 4
BOM = "\ufeff".encode()


@dataclasses.dataclass(frozen=True)
class Unit:
    """One generated record: the bytes of its line and where it must end up."""

    line: bytes
    silver: dict | None = None  # expected silver values; None: the DLQ

    @property
    def raw(self) -> str:
        return self.line.decode("utf-8", errors="replace")


def _order(n: int, **overrides) -> dict:
    return order(n, day=DAY, **overrides)


def _dumps(record: dict, ascii_only: bool) -> str:
    return json.dumps(record, ensure_ascii=ascii_only)


PRICES = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2)


@st.composite
def price_text(draw, price: Decimal) -> str:
    """The same price, spelled in one of the ways JSON allows."""
    style = draw(st.sampled_from(["plain", "zeros", "exponent", "integer_exponent"]))
    if style == "zeros":
        return f"{price}{'0' * draw(st.integers(1, 40))}"
    if style == "exponent":
        return f"{int(price * 100)}e-2"
    if style == "integer_exponent" and price == price.to_integral_value():
        return f"{int(price)}E0"
    return str(price)


# a fraction of a second as landed, and the microseconds it is
FRACTIONS = {"": 0, ".5": 500_000, ".123456": 123_456, ".123456000": 123_456, ".000001": 1}
CITIES = ["Pune", "東京", "मुंबई", 'Pu"ne', "Pu\\ne", "}{", "1e1 Road", "Café \U0001f600"]


@st.composite
def valid_unit(draw, n: int) -> Unit:
    price = draw(PRICES)
    quantity = draw(st.integers(1, 2**31 - 1))
    # ensure_ascii spells 😀 as an escaped surrogate pair: one character, kept as such
    city = draw(st.sampled_from(CITIES))
    fraction = draw(st.sampled_from(sorted(FRACTIONS)))
    at = dt.datetime(DAY.year, DAY.month, DAY.day, 12, n % 60, tzinfo=dt.UTC)
    record = _order(n, quantity=quantity, city=city, price=0)
    record["order_time"] = at.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
    text = _dumps(record, draw(st.booleans()))
    text = text.replace('"price": 0', f'"price": {draw(price_text(price))}', 1)
    expected_at = at.replace(microsecond=FRACTIONS[fraction])
    return Unit(
        text.encode(),
        {
            "order_id": f"o-{n}",
            "price": price,
            "quantity": quantity,
            "city": city,
            "order_time": expected_at,
        },
    )


def _bad_texts(n: int) -> dict[str, str]:
    good = json.dumps(_order(n))
    other = json.dumps(_order(n + 100_000))
    return {
        # the README's bad-line kinds
        "nested_object": good.replace('"city": "Pune"', '"city": {"name": "Pune"}'),
        "number_as_string": good.replace('"quantity": 2', '"quantity": "2"'),
        "boolean_as_number": good.replace('"quantity": 2', '"quantity": true'),
        "nan": good.replace('"price": 100.25', '"price": NaN'),
        "infinity": good.replace('"price": 100.25', '"price": -Infinity'),
        "ts_not_iso": good.replace(f'"{DAY.isoformat()}T', '"20/11/2026 T'),
        "truncated_json": good[: len(good) // 2],
        "control_char": good.replace('"Pune"', '"Pu\tne"'),
        "not_an_object": f'["o-{n}", 1, 2]',
        # the record definition
        "two_objects": good + " " + other,
        "two_objects_no_space": good + other,
        "lone_cr": good + "\r" + other,
        "trailing_text": good + " trailing",
        "bom_inside": "\ufeff" + good,
        # strict JSON
        "single_quotes": good.replace('"', "'"),
        "unquoted_names": good.replace('"order_id"', "order_id"),
        "comment": good[:-1] + " /* c */}",
        "trailing_comma": good[:-1] + ",}",
        "leading_zero": good.replace('"quantity": 2', '"quantity": 007'),
        # exact values
        "price_scale": good.replace('"price": 100.25', '"price": 100.255'),
        "price_exponent": good.replace('"price": 100.25', '"price": 1.00255e2'),
        "price_tiny": good.replace('"price": 100.25', '"price": 1e-40'),
        "price_long": good.replace('"price": 100.25', '"price": 100.25' + "0" * 40 + "1"),
        "price_too_big": good.replace('"price": 100.25', '"price": 123456789.25'),
        "int_overflow": good.replace('"quantity": 2', '"quantity": 2147483648'),
        "int_not_whole": good.replace('"quantity": 2', '"quantity": 25e-1'),
        # values a reader would change without a word
        "lone_surrogate": good.replace('"Pune"', '"Pu\\ud800ne"'),
        "lone_low_surrogate": good.replace('"Pune"', '"\\ude00\\ud83d"'),
        "field_twice": good.replace('"quantity": 2', '"quantity": 2, "quantity": 3'),
        "ts_nanoseconds": good.replace(':00Z"', ':00.1234567Z"'),
        "price_decimal_comma": good.replace('"price": 100.25', '"price": "100,25"'),
    }


BAD_KINDS = sorted(_bad_texts(0))


@st.composite
def bad_unit(draw, n: int) -> Unit:
    kind = draw(st.sampled_from([*BAD_KINDS, "invalid_utf8"]))
    if kind == "invalid_utf8":
        good = json.dumps(_order(n)).encode()
        junk = draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\x80", b"\xc3("]))
        return Unit(good.replace(b'"Pune"', b'"Pu' + junk + b'ne"'))
    return Unit(_bad_texts(n)[kind].encode())


@st.composite
def landing_files(draw) -> list[tuple[bytes, list[tuple[int, Unit]]]]:
    """1-3 files: (content, [(line number, unit)])."""
    counter = iter(range(1, 10_000))
    files = []
    for f in range(draw(st.integers(1, 3))):
        units = [
            draw(valid_unit(next(counter)) if draw(st.booleans()) else bad_unit(next(counter)))
            for _ in range(draw(st.integers(1 if f else 0, 12)))
        ]
        if f == 0:  # at least one valid order: the non-empty check is a circuit breaker
            units.insert(0, draw(valid_unit(next(counter))))
        content = BOM if draw(st.booleans()) else b""
        placed = []
        line = 0
        for unit in units:
            for _ in range(draw(st.integers(0, 2) if draw(st.booleans()) else st.just(0))):
                line += 1
                content += draw(st.sampled_from([b"", b"   "])) + draw(
                    st.sampled_from([b"\n", b"\r\n"])
                )
            line += 1
            placed.append((line, unit))
            content += unit.line + draw(st.sampled_from([b"\n", b"\r\n"]))
        if units and draw(st.booleans()):  # no line ending after the last line
            content = content.removesuffix(b"\n").removesuffix(b"\r")
        if placed and placed[0][0] == 1 and content.startswith(BOM) and content[3:6] != BOM:
            # a line that starts with a BOM is the file's own BOM when it is first: keep the
            # generated one inside the file by giving the file a BOM of its own
            if placed[0][1].line.startswith(BOM):
                content = BOM + content
        files.append((content, placed))
    return files


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(files=landing_files())
def test_every_landed_record_is_in_silver_or_the_dlq_once_and_unchanged(
    tmp_path_factory, spark_resource, with_reference, files
):
    lake = with_reference(Lake.under(tmp_path_factory.mktemp("property")))
    day_dir = lake.landing / "orders" / f"date={DAY.isoformat()}"
    day_dir.mkdir(parents=True)
    expected: dict[tuple[str, int], Unit] = {}
    for i, (content, placed) in enumerate(files):
        name = f"batch-{i:04d}.jsonl"
        (day_dir / name).write_bytes(content)
        expected.update({(name, line): unit for line, unit in placed})

    result = materialize(
        lake,
        spark_resource,
        ["orders_raw", "orders_valid"],
        partition_key=DAY.isoformat(),
        raise_on_error=False,
        run_config={"ops": {"orders_valid": {"config": {"max_dlq_rate": 1.0}}}},
    )
    assert result.success

    def by_line(table):
        rows = lake.store.to_arrow(table, {"partition_date": [DAY]}).to_pylist()
        keyed = {(Path(r["source_file"]).name, r["source_line"]): r for r in rows}
        assert len(keyed) == len(rows)  # no line twice in one table
        return keyed

    silver, dlq = by_line(ORDERS_VALID), by_line(DEAD_LETTER_QUEUE)
    assert not set(silver) & set(dlq)
    assert set(silver) | set(dlq) == set(expected)
    for key, unit in expected.items():
        if unit.silver is not None:
            assert key in silver, (key, unit.line, dlq.get(key))
            row = silver[key]
            assert {k: row[k] for k in unit.silver} == unit.silver, unit.line
            assert isinstance(row["price"], Decimal)
        else:
            assert key in dlq, (key, unit.line)
            assert dlq[key]["raw_record"] == unit.raw
            assert "parseable_record" in dlq[key]["failed_rules"], (unit.line, dlq[key])
