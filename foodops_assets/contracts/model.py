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
}

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
