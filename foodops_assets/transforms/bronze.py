"""Bronze: every landed line, parsed against the contract, nothing lost.

**What a record is** (one definition: the line split, the per-file line counts and
the parser all follow it). A landing file is UTF-8 text; a leading byte order mark
is dropped. A line ends at ``\n`` (a ``\r`` right before the ``\n`` belongs to the
line ending, so CRLF files read like LF files); the last line may lack its ``\n``.
A line that is empty or only spaces carries no record (counted as blank). Every
other line is one record candidate and must be exactly one JSON object: anything
else on the line (a second object, trailing text, a lone ``\r`` that an old-Mac
export uses as a separator, a byte order mark in the middle of a file) makes the
whole line malformed. It is never split and never dropped: it is kept whole in
``_rescued_data`` with a ``_parse_error`` that says what was found, and silver sends
it to the DLQ as ``parseable_record``.

Input is one row per landed line (``source_file``, ``source_line``, ``value``).
Output keeps every line: the contract's columns (typed; null where the line
did not carry a usable value), the raw text of any line that did not parse
cleanly or carried fields outside the contract (``_rescued_data``), what was
wrong with it (``_parse_error``) and which extra fields it had
(``_extra_fields``).

JSON is strict (RFC 8259): single quotes, unquoted field names, comments,
trailing commas, leading zeros, NaN and Infinity, raw control characters in
strings are not JSON. Typing is strict where the contract is typed:
``"quantity": "3"`` is a wrong type, as is an object where a string is
expected. Values are exact: a number that does not fit its column's type
exactly (a decimal with more digits than the contract's scale or precision,
an integer out of range or not written as an integer, a double out of range) is
a wrong type, never rounded. Timestamps accept ISO-8601 in its common spellings
(``T`` or space, optional fraction, ``Z`` or an offset; UTC when no offset is
given); a fraction finer than a microsecond (Spark's precision) that is not all zeros, and a
date column's value with a time of day other than midnight UTC, are wrong types too, never
truncated. A field named twice in one object and a ``\\uD800``-style escape that is not half of
a surrogate pair make the line malformed (each JSON parser picks its own value, or none).

How it stays fast: Spark's own JSON reader (strict options) parses every line;
decimals are read at a wide scale and compared with the contract's type. The
only thing Spark's reader cannot tell is what follows the first JSON value on
a line, and a number it would round before we see it (an exponent, a run of
digits longer than the wide scale). A cheap test picks the few lines where that
is possible (the first ``}`` is not the line's last character, or a number
has an exponent or a long run of digits); only those are parsed a second time
by Python's strict ``json`` module, exactly.
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..contracts import Contract
from ..contracts.spark import spark_schema, spark_type

BRONZE_META_COLUMNS = ["_rescued_data", "_parse_error", "_extra_fields"]
LINEAGE_COLUMNS = ["source_file", "source_line", "ingested_at"]

_CORRUPT = "_corrupt_record"
_PARSED_AS_STRING = ("string", "timestamp", "date")
_REPLACEMENT_CHAR = "\ufffd"
_BOM = "\ufeff"
NOT_AN_OBJECT = "malformed: not a JSON object"
NOT_JSON = "malformed: not valid JSON"
LONE_CR = "malformed: a lone carriage return (\\r) at column "
LONE_CR_TAIL = ": a record is one line ending in \\n or \\r\\n; the line is kept whole, not split"
DUPLICATE_FIELD = "malformed: a field appears more than once ("
DUPLICATE_FIELD_TAIL = (
    "): which of its values counts is undefined (RFC 8259); the line is kept whole"
)
BOM_INSIDE = (
    "malformed: a byte order mark (U+FEFF) starts the line: only the first line of a file "
    "may start with one (were two files concatenated?)"
)
# the record definition, shared by the line split, the per-file counts and the parser
LINE_END = "\r?\n"
# Spark's JSON reader, strict (most of these are its defaults; spelled out because
# allowSingleQuotes is not, and because the README promises each of them)
STRICT_JSON_OPTIONS = {
    "allowNonNumericNumbers": "false",
    "allowSingleQuotes": "false",
    "allowUnquotedFieldNames": "false",
    "allowComments": "false",
    "allowNumericLeadingZeros": "false",
    "allowBackslashEscapingAnyCharacter": "false",
    "allowUnquotedControlChars": "false",
}
_STRICT = "_strict"
_STRICT_TYPE = T.StructType(
    [
        T.StructField("error", T.StringType()),
        T.StructField("inexact", T.ArrayType(T.StringType())),
    ]
)


def all_lines(files: DataFrame) -> DataFrame:
    """Whole files (``path``, ``landed_at``, ``content``) -> one row per line, blank ones
    included (``source_file``, ``source_line``, ``ingested_at``, ``value``).

    Line numbers are 1-based positions in the file; lines end at ``\n`` or ``\r\n``
    (:data:`LINE_END`; any other ``\r`` stays in its line, which the parser then
    rejects whole); a leading UTF-8 BOM is dropped; a final line ending ends the last
    line (it does not start an empty one). ``ingested_at`` is when the file landed,
    so that re-ingesting the same immutable file reproduces the same rows.
    """
    # a leading BOM and the final line ending go (\z: the very end of the text, where
    # $ would also match before a last blank line); the array is never kept beside
    # its exploded rows
    content = F.regexp_replace(F.col("content"), f"^{_BOM}|{LINE_END}\\z", "")
    exploded = files.select(
        F.col("path").alias("source_file"),
        F.col("landed_at").alias("ingested_at"),
        F.posexplode(F.split(content, LINE_END)).alias("pos", "value"),
    )
    return exploded.select(
        "source_file",
        (F.col("pos") + 1).cast("long").alias("source_line"),
        "ingested_at",
        "value",
    )


def is_blank(value: Column) -> Column:
    """A line that carries no record: empty or only spaces."""
    return F.length(F.trim(value)) == 0


def split_lines(files: DataFrame) -> DataFrame:
    """Whole files -> one row per non-blank line (:func:`all_lines` without the blank
    lines, which carry no record; the caller counts them)."""
    return all_lines(files).where(~is_blank(F.col("value")))


def _wide_scale(precision: int, scale: int) -> int:
    """The scale a decimal(precision, scale) column is read at: as many fraction digits
    as decimal(38, .) holds beside the column's integer digits, so that every value the
    column can hold, and every value with a few more digits, is read without rounding."""
    return 38 - (precision - scale)


def _exact_run(contract: Contract) -> int:
    """A run of this many digits in a line may be a number Spark's reader would round
    (more fraction digits than a decimal's wide scale; a double needs 309 to overflow)."""
    runs = [_wide_scale(*c.decimal_precision_scale) + 1 for c in _decimals(contract)]
    return max(1, min([19, *runs]))


def _decimals(contract: Contract) -> list:
    return [c for c in contract.columns if c.decimal_precision_scale is not None]


def needs_strict_check(value: Column, contract: Contract) -> Column:
    """True for the lines Spark's reader alone cannot judge exactly; false is proven safe.

    A line with nothing but spaces after its first ``}`` holds nothing after its first
    object (an object ends at a ``}``, the first one is the last one); a line with no ``}``
    holds no object at all, which the parser reports as such without help. A number Spark
    would change before we see it has an exponent (``1e-40`` at a fixed scale is 0) or a
    run of more digits than a decimal's wide scale (rounded) — so a line with neither
    reads exactly. A ``\\u`` escape of a UTF-16 surrogate may be a lone one, which Spark would
    turn into ``?``. One regular expression, one scan of the line (a third of the cost of the
    same tests as separate string functions)."""
    run = _exact_run(contract)
    pattern = f"(?s)\\}}.*[^ ]|[0-9](?:[eE]|[0-9]{{{run - 1}}})"
    # a third alternative in the expression cost ~8 % of the parse: a byte search for the
    # escape first, the expression only on the rare lines holding one
    surrogate = value.contains("\\u") & value.rlike("\\\\u[dD][89a-fA-F]")
    return F.coalesce(value.rlike(pattern) | surrogate, F.lit(False))


def strict_json_check(contract: Contract):
    """A Python UDF of :func:`strict_check_function`, for the executors."""
    return F.udf(strict_check_function(contract), _STRICT_TYPE)


def strict_check_function(contract: Contract):
    """``line -> None | (error, inexact columns)``: Python's strict ``json`` module parses
    the line exactly (decimals as ``Decimal``, NaN/Infinity refused) and reports text after
    the first JSON value and typed numbers that do not fit their column.

    Only lines :func:`needs_strict_check` picks reach it. Built per call, and it is a
    closure importing only the standard library, so it pickles by value: a Spark Connect
    server or a cluster's Python workers need no foodops package."""
    decimals = {c.name: c.decimal_precision_scale for c in _decimals(contract)}
    doubles = [c.name for c in contract.columns if c.type == "double"]

    def check(line):
        import json
        import math
        from decimal import Decimal, InvalidOperation

        if line is None:
            return None

        def refuse(name):
            raise ValueError(f"{name} is not JSON")

        def lone_surrogate(value, where=""):
            """(where, the character) of the first string holding half a surrogate pair:
            json decodes a lone \\ud800 escape to it, Spark to '?'."""
            if isinstance(value, str):
                for ch in value:
                    if "\ud800" <= ch <= "\udfff":
                        return (where, ch)
            elif isinstance(value, dict):
                for k, v in value.items():
                    found = lone_surrogate(k, "a field name") or lone_surrogate(
                        v, where or f"field {k!r}"
                    )
                    if found:
                        return found
            elif isinstance(value, list):
                for v in value:
                    found = lone_surrogate(v, where)
                    if found:
                        return found
            return None

        decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=refuse)
        start = len(line) - len(line.lstrip(" \t\n\r"))
        try:
            obj, end = decoder.raw_decode(line, start)
        except (ValueError, RecursionError):
            return ("malformed: not valid JSON", [])
        rest = line[end:]
        found = rest.lstrip(" \t\n\r")
        if found:
            column = len(line) - len(found) + 1
            if found.startswith("{"):
                what = f"a second JSON object at column {column} (one record per line)"
            else:
                what = f"text after the JSON object at column {column}: {found[:20]!r}"
            try:  # a second value that parses: say so
                decoder.raw_decode(found)
                if not found.startswith("{"):
                    what = f"a second JSON value at column {column}: {found[:20]!r}"
            except (ValueError, RecursionError):
                pass
            return (f"malformed: {what}", [])
        if not isinstance(obj, dict):
            return None
        try:
            lone = lone_surrogate(obj)
        except RecursionError:
            return ("malformed: not valid JSON", [])
        if lone is not None:
            return (
                f"malformed: a lone UTF-16 surrogate escape (\\u{ord(lone[1]):04x}) in "
                f"{lone[0]}: not a character; the line is kept whole",
                [],
            )
        inexact = []
        for name, (precision, scale) in decimals.items():
            v = obj.get(name)
            if isinstance(v, str):  # Spark's reader takes a decimal's text too
                try:
                    v = Decimal(v.replace(",", "").strip())
                except (InvalidOperation, ValueError):
                    continue
            if isinstance(v, bool) or not isinstance(v, (int, Decimal)):
                continue
            v = Decimal(v)
            if not v.is_finite():
                inexact.append(name)
                continue
            _, digits, exponent = v.as_tuple()
            digits = list(digits)
            if not any(digits):
                continue  # zero, however it is written
            while exponent < 0 and digits[-1] == 0:
                digits.pop()
                exponent += 1
            if -exponent > scale or len(digits) + exponent > precision - scale:
                inexact.append(name)
        for name in doubles:
            v = obj.get(name)
            if isinstance(v, bool) or not isinstance(v, (int, Decimal)):
                continue
            try:
                f = float(v)
            except OverflowError:
                f = math.inf
            if math.isinf(f) or (f == 0 and v != 0):
                inexact.append(name)
        return (None, inexact) if inexact else None

    return check


# up to this many lines Spark's reader cannot judge alone are checked in this process
# (collected, checked, joined back): no Python worker starts. More go to the executors' UDF.
STRICT_CHECK_IN_DRIVER_MAX = 20_000


def _strictly_checked(lines: DataFrame, contract: Contract) -> DataFrame:
    """``lines`` with the ``_strict`` column: the exact check's result, null where the line
    needs none or passed it.

    Most lines are proven safe by :func:`needs_strict_check`'s cheap test. The few others
    (a nested object, an exponent, trailing text) are collected and checked here with
    Python's json, and only the lines that failed join back (a broadcast join on
    ``source_file``, ``source_line``): starting Python workers for a few hundred lines cost
    more than Spark's whole parse of the day. A day with more suspects than
    :data:`STRICT_CHECK_IN_DRIVER_MAX` (a producer nesting every record) checks them on the
    executors instead, with the same function as a UDF."""
    suspect = needs_strict_check(F.col("value"), contract)
    # one scan with the test counts the suspects into a cache the collect then reads (a
    # limit() instead made Spark scan the lines in growing rounds of jobs: ~2.8 s more at
    # 1M lines)
    suspects = (
        lines.where(suspect)
        .select("source_file", "source_line", "value")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        found = suspects.collect() if suspects.count() <= STRICT_CHECK_IN_DRIVER_MAX else None
    finally:
        suspects.unpersist(blocking=True)
    unchecked = F.lit(None).cast(_STRICT_TYPE).alias(_STRICT)
    if found is None:
        return (
            lines.where(suspect)
            .select("*", strict_json_check(contract)(F.col("value")).alias(_STRICT))
            .unionByName(lines.where(~suspect).select("*", unchecked))
        )
    check = strict_check_function(contract)
    failed = [
        (r["source_file"], r["source_line"], result)
        for r in found
        if (result := check(r["value"])) is not None
    ]
    if not failed:
        return lines.select("*", unchecked)
    schema = T.StructType(
        [
            T.StructField("source_file", T.StringType()),
            T.StructField("source_line", T.LongType()),
            T.StructField(_STRICT, _STRICT_TYPE),
        ]
    )
    results = lines.sparkSession.createDataFrame(failed, schema)
    return lines.join(F.broadcast(results), ["source_file", "source_line"], "left")


def parse_records(
    lines: DataFrame,
    contract: Contract,
    partition_date: Column | None = None,
) -> DataFrame:
    """Parse JSON lines (``source_file``, ``source_line``, ``ingested_at``, ``value``)
    against ``contract`` into the bronze layout."""
    read_schema = T.StructType(
        [T.StructField(c.name, _read_type(c), True) for c in contract.columns]
        + [T.StructField(_CORRUPT, T.StringType(), True)]
    )
    options = {"columnNameOfCorruptRecord": _CORRUPT, **STRICT_JSON_OPTIONS}
    # the few lines Spark's reader cannot judge alone are also parsed by Python's json
    parsed = _strictly_checked(lines, contract).select(
        "*",
        F.from_json("value", read_schema, options).alias("_j"),
        F.json_object_keys("value").alias("_keys"),
    )
    # the per-line tests that several expressions below read are columns of their own, each
    # evaluated once per line (inlined, Spark evaluated them once per use: ~+25 % of the parse)
    parsed = parsed.select(
        "*",
        *[
            _loose_decimal_text(F.col(f"_j.{c.name}"), c.name).alias(_loose(c.name))
            for c in _decimals(contract)
        ],
        *[
            F.try_to_timestamp(F.col(f"_j.{c.name}")).alias(_timestamp(c.name))
            for c in contract.columns
            if c.type in ("timestamp", "date")
        ],
    )
    inexact_by_check = F.coalesce(F.col(f"{_STRICT}.inexact"), F.array().cast("array<string>"))

    typed: list[Column] = []
    problems: list[Column] = []
    for c in contract.columns:
        raw = F.col(f"_j.{c.name}")
        if c.type == "timestamp":
            parsed_ts = F.col(_timestamp(c.name))
            # Spark keeps microseconds: a finer fraction would be cut, never silently
            inexact = _finer_than_microseconds(raw)
            value = F.when(~inexact, parsed_ts)
            problems.append(
                F.when(raw.isNotNull() & parsed_ts.isNull(), F.lit(c.name)).when(
                    inexact, F.lit(f"{c.name} (does not fit timestamp exactly; never truncated)")
                )
            )
        elif c.type == "date":
            parsed_ts = F.col(_timestamp(c.name))
            # a time of day (other than midnight UTC) would be cut off, never silently
            inexact = F.coalesce(parsed_ts != F.to_date(parsed_ts).cast("timestamp"), F.lit(False))
            value = F.when(~inexact, F.to_date(parsed_ts))
            problems.append(
                F.when(raw.isNotNull() & parsed_ts.isNull(), F.lit(c.name)).when(
                    inexact, F.lit(f"{c.name} (does not fit date exactly; never truncated)")
                )
            )
        elif c.type == "string":
            value = raw
            problems.append(F.when(_is_nested_json(raw, c.name), F.lit(c.name)))
        else:
            # only lines that Spark flagged as not matching the schema are inspected
            # field by field, so clean lines pay no second parse
            wrong = (
                F.col(f"_j.{_CORRUPT}").isNotNull()
                & raw.isNull()
                & F.get_json_object("value", f"$.{c.name}").isNotNull()
            )
            inexact = F.array_contains(inexact_by_check, c.name)
            if c.decimal_precision_scale is not None:
                # read wide, kept only when the contract's type holds it exactly
                narrow = raw.try_cast(spark_type(c))
                inexact = inexact | (raw.isNotNull() & (narrow.isNull() | (narrow != raw)))
                loose = F.col(_loose(c.name))
                wrong = wrong | loose
                value = F.when(~inexact & ~loose, narrow)
            elif c.type == "double":
                inexact = inexact | F.isnan(raw) | raw.isin(float("inf"), float("-inf"))
                value = F.when(~inexact, raw)
            else:
                value = raw
            problems.append(
                F.when(wrong, F.lit(c.name)).when(
                    F.coalesce(inexact, F.lit(False)),
                    F.lit(f"{c.name} (does not fit {c.type} exactly; never rounded)"),
                )
            )
        typed.append(value.alias(c.name))

    not_an_object = F.col("_keys").isNull()
    # a line the reader could not parse although its keys can be listed (a raw control
    # character inside a string, NaN, single quotes): every field would be null, so it must
    # not pass as a record. Only lines the reader flagged are parsed again (as a VARIANT).
    not_json = F.coalesce(
        F.when(F.col(f"_j.{_CORRUPT}").isNotNull(), F.try_parse_json("value").isNull()),
        F.lit(False),
    )
    lone_cr = F.instr(F.col("value"), "\r")
    # what makes the whole line unusable: no field of it is kept typed
    line_error = (
        F.when(lone_cr > 0, F.concat(F.lit(LONE_CR), lone_cr.cast("string"), F.lit(LONE_CR_TAIL)))
        .when(F.col("value").startswith(_BOM), F.lit(BOM_INSIDE))
        .when(not_an_object, F.lit(NOT_AN_OBJECT))
        .when(F.col("value").contains(_REPLACEMENT_CHAR), F.lit("not valid UTF-8 text"))
        .when(F.col(f"{_STRICT}.error").isNotNull(), F.col(f"{_STRICT}.error"))
        .when(not_json, F.lit(NOT_JSON))
        .when(
            _a_field_twice(contract),
            F.concat(F.lit(DUPLICATE_FIELD), _named_twice("_keys"), F.lit(DUPLICATE_FIELD_TAIL)),
        )
    )
    wrong_fields = F.array_compact(F.array(*problems))
    extra = F.array_except(F.col("_keys"), F.array(*[F.lit(n) for n in contract.column_names]))
    parse_error_fields = F.when(
        F.size(wrong_fields) > 0,
        F.concat(F.lit("wrong type: "), F.array_join(wrong_fields, ", ")),
    )
    extra_fields = F.when(~not_an_object & (F.size(extra) > 0), extra)

    parsed = parsed.select("*", line_error.alias("_line_error"))
    line_error = F.col("_line_error")
    parse_error = F.coalesce(line_error, parse_error_fields)
    out = parsed.select(
        *[
            F.when(line_error.isNull(), v).otherwise(F.lit(None).cast(spark_type(c))).alias(c.name)
            for c, v in zip(contract.columns, typed, strict=True)
        ],
        parse_error.alias("_parse_error"),
        extra_fields.alias("_extra_fields"),
        "value",
        *LINEAGE_COLUMNS,
    )
    out = out.select(
        *contract.column_names,
        F.when(
            F.col("_parse_error").isNotNull() | F.col("_extra_fields").isNotNull(),
            F.col("value"),
        ).alias("_rescued_data"),
        "_parse_error",
        "_extra_fields",
        *LINEAGE_COLUMNS,
    )
    if partition_date is not None:
        out = out.withColumn("partition_date", partition_date)
    return out


def _read_type(column) -> T.DataType:
    """How Spark's reader reads a contract column: text for strings and timestamps (typed
    after), decimals at a wide scale (compared with the contract's type after: never
    rounded), the rest as the contract's type."""
    if column.type in _PARSED_AS_STRING:
        return T.StringType()
    ps = column.decimal_precision_scale
    if ps is not None:
        return T.DecimalType(38, _wide_scale(*ps))
    return spark_type(column)


def partition_date_from_path(path_column: str = "source_file") -> Column:
    """The logical date of a daily landing file, from its ``date=YYYY-MM-DD`` folder."""
    return F.to_date(F.regexp_extract(F.col(path_column), r"date=(\d{4}-\d{2}-\d{2})", 1))


# a JSON number as RFC 8259 writes it: what a decimal given as a string must look like
_JSON_NUMBER = "^-?(0|[1-9][0-9]*)([.][0-9]+)?([eE][+-]?[0-9]+)?$"


def _loose_decimal_text(raw: Column, name: str) -> Column:
    """True when a decimal column was given as a string that is not a plain number.

    Spark's reader takes a decimal's text too, but drops every comma first (``"12,50"``,
    a decimal comma, would be 1250.00) and reads a ``+`` sign and non-ASCII digits. Only the
    lines where the field may be a string (its name, a colon, then a quote; or any ``\\u``
    escape, which could spell the name) are parsed again for the field's text."""
    maybe_text = F.col("value").rlike(f'"\\Q{name}\\E"\\s*:\\s*"') | F.col("value").contains("\\u")
    text = F.get_json_object(F.col("value"), f"$.{name}")
    return F.coalesce(F.when(raw.isNotNull() & maybe_text, ~text.rlike(_JSON_NUMBER)), F.lit(False))


def _loose(name: str) -> str:
    return f"_loose_{name}"


def _timestamp(name: str) -> str:
    return f"_timestamp_{name}"


def _finer_than_microseconds(raw: Column) -> Column:
    """A timestamp text whose fraction has a non-zero digit after the sixth (Spark also reads
    one-digit fields, ``2026-1-2 1:2:3.1234567``: no length tells; only texts with a ``.``
    are matched)."""
    return F.coalesce(F.when(raw.contains("."), raw.rlike("[.][0-9]{6}[0-9]*[1-9]")), F.lit(False))


def _a_field_twice(contract: Contract) -> Column:
    """True when the line's object names a field more than once. A line with exactly as many
    fields as the contract, each of them read with a value, cannot: the distinct names are
    only counted for the others (counting them on every line cost ~9 % of the parse)."""
    complete = F.size("_keys") == len(contract.columns)
    for c in contract.columns:
        complete = complete & F.col(f"_j.{c.name}").isNotNull()
    return F.when(~complete, F.size("_keys") > F.size(F.array_distinct("_keys")))


def _named_twice(keys: str) -> Column:
    """The field names that appear more than once in ``keys``, comma separated."""
    twice = F.filter(keys, lambda k: F.size(F.filter(keys, lambda other: other == k)) > 1)
    return F.array_join(F.array_distinct(twice), ", ")


def _is_nested_json(raw: Column, name: str) -> Column:
    """True when the JSON value of a string field is an object or an array.

    Spark's reader hands objects to a string field as their JSON text; the
    contract wants a string. Only values that look like JSON containers are
    re-parsed (as a VARIANT), so ordinary strings cost nothing.
    """
    looks_nested = F.trim(raw).startswith("{") | F.trim(raw).startswith("[")
    json_type = F.schema_of_variant(
        F.variant_get(F.try_parse_json("value"), f"$.{name}", "variant")
    )
    return F.coalesce(F.when(looks_nested, json_type != F.lit("STRING")), F.lit(False))


def bronze_schema(contract: Contract, partitioned: bool) -> T.StructType:
    """The schema :func:`parse_records` produces (shown in the UI before a materialisation)."""
    fields = list(spark_schema(contract).fields) + [
        T.StructField("_rescued_data", T.StringType()),
        T.StructField("_parse_error", T.StringType()),
        T.StructField("_extra_fields", T.ArrayType(T.StringType())),
        T.StructField("source_file", T.StringType()),
        T.StructField("source_line", T.LongType()),
        T.StructField("ingested_at", T.TimestampType()),
    ]
    if partitioned:
        fields.append(T.StructField("partition_date", T.DateType()))
    return T.StructType(fields)
