"""Bronze: every landed line, parsed against the contract, nothing lost.

Input is one row per landed line (``source_file``, ``source_line``, ``value``).
Output keeps every line: the contract's columns (typed; null where the line
did not carry a usable value), the raw text of any line that did not parse
cleanly or carried fields outside the contract (``_rescued_data``), what was
wrong with it (``_parse_error``) and which extra fields it had
(``_extra_fields``).

Typing is strict where the contract is typed: ``"quantity": "3"`` is a wrong
type, as is an object where a string is expected. NaN and Infinity are not
JSON. Timestamps accept ISO-8601 in its common spellings (``T`` or space,
optional fraction, ``Z`` or an offset; UTC when no offset is given).
"""

from __future__ import annotations

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
NOT_AN_OBJECT = "malformed: not a JSON object"
NOT_JSON = "malformed: not valid JSON"


def all_lines(files: DataFrame) -> DataFrame:
    """Whole files (``path``, ``landed_at``, ``content``) -> one row per line, blank ones
    included (``source_file``, ``source_line``, ``ingested_at``, ``value``).

    Line numbers are 1-based positions in the file; CRLF and a leading UTF-8
    BOM are handled; a final newline ends the last line (it does not start an
    empty one). ``ingested_at`` is when the file landed, so that re-ingesting
    the same immutable file reproduces the same rows.
    """
    # a leading BOM and the final newline go (\z: the very end of the text, where
    # $ would also match before a last blank line); the array is never kept beside
    # its exploded rows
    content = F.regexp_replace(F.col("content"), "^\ufeff|\r?\n\\z", "")
    exploded = files.select(
        F.col("path").alias("source_file"),
        F.col("landed_at").alias("ingested_at"),
        F.posexplode(F.split(content, "\r?\n")).alias("pos", "value"),
    )
    return exploded.select(
        "source_file",
        (F.col("pos") + 1).cast("long").alias("source_line"),
        "ingested_at",
        "value",
    )


def is_blank(value: Column) -> Column:
    return F.length(F.trim(value)) == 0


def split_lines(files: DataFrame) -> DataFrame:
    """Whole files -> one row per non-blank line (:func:`all_lines` without the blank
    lines, which carry no record; the caller counts them)."""
    return all_lines(files).where(~is_blank(F.col("value")))


def parse_records(
    lines: DataFrame,
    contract: Contract,
    partition_date: Column | None = None,
) -> DataFrame:
    """Parse JSON lines (``source_file``, ``source_line``, ``ingested_at``, ``value``)
    against ``contract`` into the bronze layout."""
    read_schema = T.StructType(
        [
            T.StructField(
                c.name, T.StringType() if c.type in _PARSED_AS_STRING else spark_type(c), True
            )
            for c in contract.columns
        ]
        + [T.StructField(_CORRUPT, T.StringType(), True)]
    )
    options = {"columnNameOfCorruptRecord": _CORRUPT, "allowNonNumericNumbers": "false"}
    parsed = lines.select(
        "*",
        F.from_json("value", read_schema, options).alias("_j"),
        F.json_object_keys("value").alias("_keys"),
    )

    typed: list[Column] = []
    problems: list[Column] = []
    for c in contract.columns:
        raw = F.col(f"_j.{c.name}")
        if c.type == "timestamp":
            value = F.try_to_timestamp(raw)
            problems.append(F.when(raw.isNotNull() & value.isNull(), F.lit(c.name)))
        elif c.type == "date":
            value = F.to_date(F.try_to_timestamp(raw))
            problems.append(F.when(raw.isNotNull() & value.isNull(), F.lit(c.name)))
        elif c.type == "string":
            value = raw
            problems.append(F.when(_is_nested_json(raw, c.name), F.lit(c.name)))
        else:
            value = raw
            # only lines that Spark flagged as not matching the schema are inspected
            # field by field, so clean lines pay no second parse
            problems.append(
                F.when(
                    F.col(f"_j.{_CORRUPT}").isNotNull()
                    & raw.isNull()
                    & F.get_json_object("value", f"$.{c.name}").isNotNull(),
                    F.lit(c.name),
                )
            )
        typed.append(value.alias(c.name))

    not_an_object = F.col("_keys").isNull()
    # a line the reader could not parse although its keys can be listed (a raw control
    # character inside a string, NaN): every field would be null, so it must not pass as
    # a record. Only lines the reader flagged are parsed again (as a VARIANT).
    not_json = F.coalesce(
        F.when(F.col(f"_j.{_CORRUPT}").isNotNull(), F.try_parse_json("value").isNull()),
        F.lit(False),
    )
    wrong_fields = F.array_compact(F.array(*problems))
    extra = F.array_except(F.col("_keys"), F.array(*[F.lit(n) for n in contract.column_names]))
    parse_error = (
        F.when(not_an_object, F.lit(NOT_AN_OBJECT))
        .when(
            F.col("value").contains(_REPLACEMENT_CHAR),
            F.lit("not valid UTF-8 text"),
        )
        .when(not_json, F.lit(NOT_JSON))
        .when(
            F.size(wrong_fields) > 0,
            F.concat(F.lit("wrong type: "), F.array_join(wrong_fields, ", ")),
        )
    )
    extra_fields = F.when(~not_an_object & (F.size(extra) > 0), extra)

    out = parsed.select(
        *[
            F.when(not_an_object, F.lit(None).cast(spark_type(c))).otherwise(v).alias(c.name)
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


def partition_date_from_path(path_column: str = "source_file") -> Column:
    """The logical date of a daily landing file, from its ``date=YYYY-MM-DD`` folder."""
    return F.to_date(F.regexp_extract(F.col(path_column), r"date=(\d{4}-\d{2}-\d{2})", 1))


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
