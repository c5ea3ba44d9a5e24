"""Data contracts: the YAML files in ``resources/contracts`` parsed into values.

A contract owns the columns of a landing source (name, type, description), its
owner, SLA and quality rules. Everything else — the Spark read schema, the DLQ
rules, the pandera schema, the column descriptions in the UI — is derived
from it. Loading is strict: a malformed contract fails with a message that
names the file and the field to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "resources" / "contracts"

_DECIMAL = re.compile(r"^decimal\((\d{1,2}),(\d{1,2})\)$")
SIMPLE_TYPES = ("string", "int", "long", "double", "boolean", "date", "timestamp")
LAYOUTS = ("daily", "snapshot")

# rule kind -> the parameters it requires (besides name/check/column/description)
RULE_KINDS: dict[str, tuple[str, ...]] = {
    "not_blank": (),
    "not_null": (),
    "positive": (),
    "non_negative": (),
    "in_set": ("values",),
    "between": ("min", "max"),
    "in_partition_window": ("max_age_days", "future_tolerance_minutes"),
    # the column is present exactly when when_column holds one of when_values
    "present_iff": ("when_column", "when_values"),
    # column <= then[0] <= then[1] ...; a missing value is skipped (presence is another rule)
    "ordered": ("then",),
    # column >= the referenced record's reference_column (see Contract.references);
    # a record whose reference is not found passes: the referential-integrity check reports it
    "not_before_reference": ("reference", "reference_column"),
}

# kinds that compare several columns of a record (or a referenced record)
MULTI_COLUMN_KINDS = ("present_iff", "ordered", "not_before_reference")
_ORDERABLE_TYPES = ("int", "long", "double", "date", "timestamp")

PARSEABLE_RULE = "parseable_record"


class ContractError(ValueError):
    """A contract file is malformed; the message names the file and what to fix."""


@dataclass(frozen=True)
class ContractColumn:
    name: str
    type: str
    description: str

    @property
    def decimal_precision_scale(self) -> tuple[int, int] | None:
        m = _DECIMAL.match(self.type)
        return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class Rule:
    name: str
    check: str
    column: str
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reference:
    """Records of this source point to records of another daily source.

    ``key`` is a column of this contract holding the other source's primary
    key. A record of partition D is looked up in the other source's silver
    partitions D-lookback_days..D (a partition mapping on the dependency).
    """

    source: str
    key: str
    lookback_days: int


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    owner: str
    description: str
    layout: str
    primary_key: tuple[str, ...]
    columns: tuple[ContractColumn, ...]
    rules: tuple[Rule, ...]
    sla: Mapping[str, Any]
    event_time: str | None = None
    path: str = ""
    references: tuple[Reference, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def rule_names(self) -> list[str]:
        """All rule names a rejected record can carry, the implicit parse rule first."""
        return [PARSEABLE_RULE, *(r.name for r in self.rules)]

    def column(self, name: str) -> ContractColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"contract {self.name!r} has no column {name!r}")

    def sla_value(self, key: str, default: Any = None) -> Any:
        return self.sla.get(key, default)

    def reference(self, source: str) -> Reference:
        for r in self.references:
            if r.source == source:
                return r
        raise KeyError(f"contract {self.name!r} declares no reference to {source!r}")

    def reference_columns(self, source: str) -> list[str]:
        """Columns of the referenced source that this contract's rules compare with."""
        return sorted(
            {
                str(r.params["reference_column"])
                for r in self.rules
                if r.check == "not_before_reference" and r.params["reference"] == source
            }
        )


def load_contract(name: str, contracts_dir: str | Path | None = None) -> Contract:
    """Load ``<contracts_dir>/<name>.yaml`` and validate it."""
    directory = Path(contracts_dir) if contracts_dir else CONTRACTS_DIR
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise ContractError(
            f"contract file {path} not found: every landing source needs a contract "
            f"in {directory} (see orders.yaml for the format)"
        )
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from None
    return parse_contract(doc, source=str(path))


def parse_contract(doc: Any, source: str = "<contract>") -> Contract:
    def fail(msg: str) -> ContractError:
        return ContractError(f"{source}: {msg}")

    if not isinstance(doc, dict):
        raise fail("the top level must be a mapping with kind: DataContract")
    if doc.get("kind") != "DataContract":
        raise fail("'kind' must be DataContract")
    for key in ("name", "owner", "description", "columns"):
        if not doc.get(key):
            raise fail(f"'{key}' is required")
    name = _str(doc["name"], "name", fail)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise fail(f"'name' {name!r} must be lower_snake_case")

    columns_doc = doc["columns"]
    if not isinstance(columns_doc, list):
        raise fail("'columns' must be a list of {name, type, description}")
    columns: list[ContractColumn] = []
    for i, c in enumerate(columns_doc):
        if not isinstance(c, dict):
            raise fail(f"columns[{i}] must be a mapping")
        cname = _str(c.get("name"), f"columns[{i}].name", fail)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", cname):
            raise fail(f"columns[{i}].name {cname!r} must be lower_snake_case")
        ctype = _str(c.get("type"), f"columns[{i}].type", fail)
        if ctype not in SIMPLE_TYPES and not _DECIMAL.match(ctype):
            raise fail(
                f"columns[{i}] ({cname}): type {ctype!r} is not one of "
                f"{', '.join(SIMPLE_TYPES)} or decimal(p,s)"
            )
        desc = _str(c.get("description"), f"columns[{i}] ({cname}).description", fail)
        columns.append(ContractColumn(cname, ctype, desc))
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise fail(f"duplicate columns: {', '.join(dupes)}")

    references = _parse_references(doc.get("references"), names, fail)
    ref_names = [r.source for r in references]

    rules: list[Rule] = []
    for i, r in enumerate(doc.get("rules") or []):
        if not isinstance(r, dict):
            raise fail(f"rules[{i}] must be a mapping")
        rname = _str(r.get("name"), f"rules[{i}].name", fail)
        check = _str(r.get("check"), f"rules[{i}] ({rname}).check", fail)
        if check not in RULE_KINDS:
            raise fail(
                f"rules[{i}] ({rname}): check {check!r} is not one of {', '.join(RULE_KINDS)}"
            )
        column = _str(r.get("column"), f"rules[{i}] ({rname}).column", fail)
        if column not in names:
            raise fail(f"rules[{i}] ({rname}): column {column!r} is not a contract column")
        params = {k: v for k, v in r.items() if k not in ("name", "check", "column", "description")}
        missing = [p for p in RULE_KINDS[check] if p not in params]
        if missing:
            raise fail(f"rules[{i}] ({rname}): check {check} needs {', '.join(missing)}")
        unknown = [p for p in params if p not in RULE_KINDS[check]]
        if unknown:
            raise fail(f"rules[{i}] ({rname}): unknown parameters {', '.join(unknown)}")
        _check_params(check, params, f"rules[{i}] ({rname})", fail)
        _check_columns(check, column, params, columns, ref_names, f"rules[{i}] ({rname})", fail)
        rules.append(Rule(rname, check, column, str(r.get("description") or ""), params))
    rnames = [r.name for r in rules]
    if PARSEABLE_RULE in rnames:
        raise fail(f"rule name {PARSEABLE_RULE!r} is reserved for records that do not parse")
    if len(set(rnames)) != len(rnames):
        raise fail("rule names must be unique")

    landing = doc.get("landing") or {}
    layout = landing.get("layout", "daily")
    if layout not in LAYOUTS:
        raise fail(f"landing.layout must be one of {', '.join(LAYOUTS)}")
    event_time = landing.get("event_time")
    if event_time is not None and event_time not in names:
        raise fail(f"landing.event_time {event_time!r} is not a contract column")

    pk = doc.get("primary_key") or []
    if not isinstance(pk, list) or not all(k in names for k in pk):
        raise fail("primary_key must be a list of contract columns")

    sla = doc.get("sla") or {}
    if not isinstance(sla, dict):
        raise fail("'sla' must be a mapping")
    for key, value in sla.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise fail(f"sla.{key} must be a non-negative number, got {value!r}")
    for key in ("max_dlq_rate", "max_orphan_rate"):
        if key in sla and sla[key] > 1:
            raise fail(f"sla.{key} is a share between 0 and 1, got {sla[key]!r}")

    return Contract(
        name=name,
        version=str(doc.get("version", "0")),
        owner=_str(doc["owner"], "owner", fail),
        description=" ".join(_str(doc["description"], "description", fail).split()),
        layout=layout,
        primary_key=tuple(pk),
        columns=tuple(columns),
        rules=tuple(rules),
        sla=dict(sla),
        event_time=event_time,
        path=source,
        references=tuple(references),
    )


def check_references(contracts: Mapping[str, Contract]) -> None:
    """Cross-contract validation: every reference names a loaded daily source,
    its key is that source's primary key, and compared columns exist there
    with a comparable type. Raises :class:`ContractError` naming the file."""
    for contract in contracts.values():
        for ref in contract.references:
            where = f"{contract.path or contract.name}: references.{ref.source}"
            other = contracts.get(ref.source)
            if other is None:
                raise ContractError(
                    f"{where}: no contract named {ref.source!r} is loaded "
                    f"(known: {', '.join(sorted(contracts))})"
                )
            if other.layout != "daily":
                raise ContractError(f"{where}: {ref.source} is not a daily source")
            if list(other.primary_key) != [ref.key]:
                raise ContractError(
                    f"{where}: key {ref.key!r} is not the primary key of {ref.source} "
                    f"({', '.join(other.primary_key) or 'none'})"
                )
            for column in contract.reference_columns(ref.source):
                if column not in other.column_names:
                    raise ContractError(
                        f"{where}: reference_column {column!r} is not a column of {ref.source}"
                    )
        for rule in contract.rules:
            if rule.check != "not_before_reference":
                continue
            other = contracts[str(rule.params["reference"])]
            theirs = other.column(str(rule.params["reference_column"])).type
            ours = contract.column(rule.column).type
            if theirs != ours:
                raise ContractError(
                    f"{contract.path or contract.name}: rule {rule.name} compares {rule.column} "
                    f"({ours}) with {other.name}.{rule.params['reference_column']} ({theirs}); "
                    "the types must match"
                )


def _parse_references(doc: Any, names: list[str], fail) -> list[Reference]:
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise fail("'references' must be a mapping of source name -> {key, lookback_days}")
    out = []
    for source, spec in doc.items():
        if not isinstance(source, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", source):
            raise fail(f"references: {source!r} must be a lower_snake_case source name")
        if not isinstance(spec, dict):
            raise fail(f"references.{source} must be a mapping with key and lookback_days")
        unknown = sorted(set(spec) - {"key", "lookback_days"})
        if unknown:
            raise fail(f"references.{source}: unknown fields {', '.join(unknown)}")
        key = _str(spec.get("key"), f"references.{source}.key", fail)
        if key not in names:
            raise fail(f"references.{source}: key {key!r} is not a contract column")
        lookback = spec.get("lookback_days")
        if not isinstance(lookback, int) or isinstance(lookback, bool) or not 0 <= lookback <= 366:
            raise fail(
                f"references.{source}: lookback_days must be a whole number of days "
                f"between 0 and 366, got {lookback!r}"
            )
        out.append(Reference(source, key, lookback))
    return out


def _check_columns(
    check: str,
    column: str,
    params: Mapping[str, Any],
    columns: list[ContractColumn],
    references: list[str],
    where: str,
    fail,
) -> None:
    """Columns named by multi-column rule kinds exist and can be compared."""
    types = {c.name: c.type for c in columns}
    if check == "present_iff":
        other = params["when_column"]
        if other not in types:
            raise fail(f"{where}: when_column {other!r} is not a contract column")
        if other == column:
            raise fail(f"{where}: when_column must be another column than {column!r}")
    elif check == "ordered":
        chain = [column, *params["then"]]
        for c in params["then"]:
            if c not in types:
                raise fail(f"{where}: then names {c!r}, which is not a contract column")
        if len(set(chain)) != len(chain):
            raise fail(
                f"{where}: a column appears twice in {column} <= {' <= '.join(params['then'])}"
            )
        kinds = {types[c] for c in chain}
        if len(kinds) != 1 or not kinds <= set(_ORDERABLE_TYPES):
            raise fail(
                f"{where}: ordered columns must share one of the types "
                f"{', '.join(_ORDERABLE_TYPES)}; got {', '.join(f'{c} {types[c]}' for c in chain)}"
            )
    elif check == "not_before_reference":
        if params["reference"] not in references:
            raise fail(
                f"{where}: reference {params['reference']!r} is not declared under 'references'"
            )


def _str(value: Any, what: str, fail) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(f"'{what}' must be a non-empty string")
    return value.strip()


def _check_params(check: str, params: Mapping[str, Any], where: str, fail) -> None:
    def number(key: str) -> None:
        v = params[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise fail(f"{where}: {key} must be a number, got {v!r}")

    if check == "in_set":
        values = params["values"]
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values)
        ):
            raise fail(f"{where}: values must be a non-empty list of strings or integers")
    elif check == "between":
        number("min")
        number("max")
        if params["min"] > params["max"]:
            raise fail(f"{where}: min must not exceed max")
    elif check == "in_partition_window":
        number("max_age_days")
        number("future_tolerance_minutes")
    elif check == "present_iff":
        if not isinstance(params["when_column"], str):
            raise fail(f"{where}: when_column must be a column name")
        values = params["when_values"]
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values)
        ):
            raise fail(f"{where}: when_values must be a non-empty list of strings or integers")
    elif check == "ordered":
        then = params["then"]
        if not isinstance(then, list) or not then or not all(isinstance(c, str) for c in then):
            raise fail(f"{where}: then must be a non-empty list of column names")
    elif check == "not_before_reference":
        for key in ("reference", "reference_column"):
            if not isinstance(params[key], str) or not params[key].strip():
                raise fail(f"{where}: {key} must be a name")
