"""Data contracts: the ODCS v3 files in ``resources/contracts`` parsed into values.

Each landing source has one Open Data Contract Standard (ODCS v3) file,
``<source>.odcs.yaml``, read with the standard's own pydantic model
(``open_data_contract_standard``). It owns the columns of the source (name,
type, required, primary key, description), its team (the owner), SLA
properties, quality rules and relationships to other sources. Everything else
— the Spark read schema, the DLQ rules, the pandera schema, the column
descriptions in the UI — is derived from the values this module builds
(:class:`Contract`), so nothing downstream reads ODCS itself.

How our notions sit in ODCS:

- a column is a property of the contract's one schema object (named like the
  contract); ``physicalType`` is its Spark SQL type (string, int, bigint, double,
  boolean, date, timestamp, decimal(p,s)) and ``logicalType`` must agree with it;
- a rule is a property-level ``quality`` entry whose ``id`` is the rule name: the
  library metrics ``nullValues`` (not_null) and ``invalidValues`` with
  ``validValues`` (in_set), and ``type: custom, engine: foodops`` for the kinds ODCS
  has no built-in for (``implementation: {check: <kind>, <parameters>}``);
- ``required: true`` exactly on the columns a rule rejects when missing;
- the owner is ``team.name`` (shown as ``team:<name>``); the SLA thresholds are
  ``slaProperties`` (``latency`` in minutes is ``freshness_minutes``);
- a reference is a property-level ``relationships`` entry ``to: <source>.<column>``;
  one with the custom property ``lookbackDays`` is looked up in that daily source's
  silver partitions (:class:`Reference`);
- how the source lands (``landingLayout``: daily or snapshot) and the timestamp that
  decides its partition (``eventTime``) are custom properties of the schema object; a
  snapshot source says where a snapshot's own time comes from (``snapshotTime``: only
  ``fileName`` for now, ``snapshot-YYYYMMDD[THHMMSSZ].jsonl``, UTC), which orders the
  versions of its history table.

Loading is strict: a malformed contract fails with a message that names the file
and the field to fix. The JSON-schema lint of the standard runs in CI
(``foodops_assets_tests/contracts/test_lint.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml
from open_data_contract_standard.model import OpenDataContractStandard

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "resources" / "contracts"
CONTRACT_SUFFIX = ".odcs.yaml"
# the engine of our custom quality rules (ODCS ``type: custom``)
ENGINE = "foodops"

_DECIMAL = re.compile(r"^decimal\((\d{1,2}),(\d{1,2})\)$")
SIMPLE_TYPES = ("string", "int", "long", "double", "boolean", "date", "timestamp")
LAYOUTS = ("daily", "snapshot")
# where a snapshot's own time comes from (the history tables order versions by it)
SNAPSHOT_TIME_SOURCES = ("fileName",)

# rule kind -> the parameters it requires (besides the check name itself)
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
# kinds that reject a record whose value is missing: their column is ``required``
PRESENCE_KINDS = (
    "not_blank",
    "not_null",
    "positive",
    "non_negative",
    "in_set",
    "between",
    "in_partition_window",
)

# kinds that compare several columns of a record (or a referenced record)
MULTI_COLUMN_KINDS = ("present_iff", "ordered", "not_before_reference")
_ORDERABLE_TYPES = ("int", "long", "double", "date", "timestamp")

PARSEABLE_RULE = "parseable_record"

# ODCS physicalType (Spark SQL names) -> our type vocabulary
_PHYSICAL_TYPES = {
    "string": "string",
    "int": "int",
    "integer": "int",
    "bigint": "long",
    "long": "long",
    "double": "double",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
}
# our type -> the ODCS logicalType that must go with it
_LOGICAL_TYPES = {
    "string": "string",
    "int": "integer",
    "long": "integer",
    "double": "number",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "decimal": "number",
}
# ODCS library metrics that are rule kinds of ours (with mustBe: 0)
_LIBRARY_KINDS = {"nullValues": "not_null", "invalidValues": "in_set"}
# slaProperties: ODCS property -> our SLA key, for the ones the standard names
_SLA_ALIASES = {"latency": "freshness_minutes"}
_MINUTES_PER_UNIT = {"min": 1, "h": 60, "d": 1440}
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TEAM = re.compile(r"[a-z0-9][a-z0-9-]*")


class ContractError(ValueError):
    """A contract file is malformed; the message names the file and what to fix."""


@dataclass(frozen=True)
class ContractColumn:
    name: str
    type: str
    description: str
    # ODCS ``required``: a missing value is rejected (by one of the column's rules)
    required: bool = False

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
class Relationship:
    """An ODCS relationship: ``column`` of this contract holds ``source.target_column``.

    With ``lookback_days`` it is also a :class:`Reference` (looked up in silver)."""

    column: str
    source: str
    target_column: str
    lookback_days: int | None = None


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
    snapshot_time: str | None = None  # snapshot sources: where a snapshot's time comes from
    path: str = ""
    references: tuple[Reference, ...] = ()
    relationships: tuple[Relationship, ...] = ()

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


def contract_path(name: str, contracts_dir: str | Path | None = None) -> Path:
    directory = Path(contracts_dir) if contracts_dir else CONTRACTS_DIR
    return directory / f"{name}{CONTRACT_SUFFIX}"


def contract_files(contracts_dir: str | Path | None = None) -> dict[str, Path]:
    """Every contract file of a directory, by contract (source) name."""
    directory = Path(contracts_dir) if contracts_dir else CONTRACTS_DIR
    return {
        p.name[: -len(CONTRACT_SUFFIX)]: p for p in sorted(directory.glob(f"*{CONTRACT_SUFFIX}"))
    }


def load_contract(name: str, contracts_dir: str | Path | None = None) -> Contract:
    """Load ``<contracts_dir>/<name>.odcs.yaml`` and validate it."""
    path = contract_path(name, contracts_dir)
    if not path.is_file():
        old = path.with_name(f"{name}.yaml")
        hint = (
            f"; {old.name} there is the old contract format, which is no longer read: "
            f"write it as an ODCS v3 contract {path.name}"
            if old.is_file()
            else ""
        )
        raise ContractError(
            f"contract file {path} not found: every landing source needs an ODCS v3 contract "
            f"in {path.parent} (see resources/contracts/orders{CONTRACT_SUFFIX}){hint}"
        )
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from None
    return parse_contract(doc, source=str(path))


def parse_contract(doc: Any, source: str = "<contract>") -> Contract:
    """An ODCS v3 document (parsed YAML) as a :class:`Contract`."""

    def fail(msg: str) -> ContractError:
        return ContractError(f"{source}: {msg}")

    if not isinstance(doc, dict):
        raise fail("the top level must be a mapping (an ODCS v3 data contract)")
    if doc.get("kind") != "DataContract":
        raise fail("'kind' must be DataContract")
    api = doc.get("apiVersion")
    if not isinstance(api, str) or not api.startswith("v3."):
        raise fail(f"'apiVersion' must be an ODCS v3 version such as v3.1.0, got {api!r}")
    try:
        odcs = OpenDataContractStandard.model_validate(doc)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise fail(f"not an ODCS v3 data contract: {problems}") from None

    name = _str(odcs.name, "name", fail)
    if not _NAME.fullmatch(name):
        raise fail(f"'name' {name!r} must be lower_snake_case")
    version = _str(odcs.version, "version", fail)
    if odcs.team is None or isinstance(odcs.team, list) or not odcs.team.name:
        raise fail("'team.name' is required: the team that owns the source")
    team = odcs.team.name.strip()
    if not _TEAM.fullmatch(team):
        raise fail(f"'team.name' {team!r} must be lower-kebab-case (shown as team:{team})")
    if odcs.description is None or not (odcs.description.purpose or "").strip():
        raise fail("'description.purpose' is required: what one record of the source is")
    description = " ".join(odcs.description.purpose.split())

    if not odcs.schema_ or len(odcs.schema_) != 1:
        raise fail(f"'schema' must hold exactly one object, named {name!r}")
    obj = odcs.schema_[0]
    if obj.name != name:
        raise fail(f"schema[0].name must be the contract name {name!r}, got {obj.name!r}")
    if not obj.properties:
        raise fail("schema[0].properties must list the columns of the source")
    landing = _custom_properties(obj.customProperties, "schema[0]", fail)

    columns: list[ContractColumn] = []
    keyed: list[tuple[int, str]] = []
    rules: list[Rule] = []
    relationships: list[Relationship] = []
    for i, prop in enumerate(obj.properties):
        where = f"schema[0].properties[{i}]"
        cname = _str(prop.name, f"{where}.name", fail)
        if not _NAME.fullmatch(cname):
            raise fail(f"{where}.name {cname!r} must be lower_snake_case")
        where = f"{where} ({cname})"
        ctype = _column_type(prop.physicalType, prop.logicalType, where, fail)
        desc = _str(prop.description, f"{where}.description", fail)
        columns.append(ContractColumn(cname, ctype, " ".join(desc.split()), bool(prop.required)))
        if prop.primaryKey:
            keyed.append((prop.primaryKeyPosition or 1, cname))
        for j, q in enumerate(prop.quality or []):
            rules.append(_rule(q, cname, f"{where}.quality[{j}]", fail))
        for j, rel in enumerate(prop.relationships or []):
            relationships.append(_relationship(rel, cname, f"{where}.relationships[{j}]", fail))
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise fail(f"duplicate columns: {', '.join(dupes)}")

    sources = [r.source for r in relationships]
    if len(set(sources)) != len(sources):
        raise fail("one relationship per referenced source")
    references = [
        Reference(r.source, r.column, r.lookback_days)
        for r in relationships
        if r.lookback_days is not None
    ]
    ref_names = [r.source for r in references]
    for rule in rules:
        where = f"quality {rule.name} ({rule.column})"
        _check_columns(rule.check, rule.column, rule.params, columns, ref_names, where, fail)
    rnames = [r.name for r in rules]
    if PARSEABLE_RULE in rnames:
        raise fail(f"rule name {PARSEABLE_RULE!r} is reserved for records that do not parse")
    dupes = sorted({n for n in rnames if rnames.count(n) > 1})
    if dupes:
        raise fail(f"quality ids (rule names) must be unique: {', '.join(dupes)}")
    for column in columns:
        rejecting = [r.name for r in rules if r.column == column.name and r.check in PRESENCE_KINDS]
        if column.required and not rejecting:
            raise fail(
                f"property {column.name} is required, but none of its quality rules rejects a "
                "missing value: add one (e.g. metric nullValues, mustBe 0) or set required: false"
            )
        if rejecting and not column.required:
            raise fail(
                f"property {column.name}: rule {rejecting[0]} rejects a missing value, so the "
                "property must say required: true"
            )

    layout = landing.get("landingLayout", "daily")
    if layout not in LAYOUTS:
        raise fail(f"schema[0] custom property landingLayout must be one of {', '.join(LAYOUTS)}")
    event_time = landing.get("eventTime")
    if event_time is not None and event_time not in names:
        raise fail(f"schema[0] custom property eventTime {event_time!r} is not a contract column")
    snapshot_time = landing.get("snapshotTime")
    if snapshot_time is not None and (
        layout != "snapshot" or snapshot_time not in SNAPSHOT_TIME_SOURCES
    ):
        raise fail(
            "schema[0] custom property snapshotTime is for snapshot sources and must be one of "
            f"{', '.join(SNAPSHOT_TIME_SOURCES)}, got {snapshot_time!r}"
        )
    unknown = sorted(set(landing) - {"landingLayout", "eventTime", "snapshotTime"})
    if unknown:
        raise fail(f"schema[0]: unknown custom properties {', '.join(unknown)}")

    positions = [p for p, _ in keyed]
    if len(set(positions)) != len(positions):
        raise fail("primaryKeyPosition must differ between the primary-key properties")

    return Contract(
        name=name,
        version=version,
        owner=f"team:{team}",
        description=description,
        layout=layout,
        primary_key=tuple(c for _, c in sorted(keyed)),
        columns=tuple(columns),
        rules=tuple(rules),
        sla=_sla(odcs.slaProperties, fail),
        event_time=event_time,
        snapshot_time=snapshot_time,
        path=source,
        references=tuple(references),
        relationships=tuple(relationships),
    )


def check_references(contracts: Mapping[str, Contract]) -> None:
    """Cross-contract validation: every relationship points to the primary key of a
    loaded contract with the same type; a looked-up reference points to a daily
    source, and the columns its rules compare exist there with the same type.
    Raises :class:`ContractError` naming the file."""
    for contract in contracts.values():
        for rel in contract.relationships:
            where = f"{contract.path or contract.name}: relationship {rel.column} -> {rel.source}"
            other = contracts.get(rel.source)
            if other is None:
                raise ContractError(
                    f"{where}: no contract named {rel.source!r} is loaded "
                    f"(known: {', '.join(sorted(contracts))})"
                )
            if list(other.primary_key) != [rel.target_column]:
                raise ContractError(
                    f"{where}: {rel.source}.{rel.target_column} is not the primary key of "
                    f"{rel.source} ({', '.join(other.primary_key) or 'none'})"
                )
            ours, theirs = contract.column(rel.column).type, other.column(rel.target_column).type
            if ours != theirs:
                raise ContractError(
                    f"{where}: {rel.column} is {ours} but {rel.source}.{rel.target_column} is "
                    f"{theirs}; the types must match"
                )
            if rel.lookback_days is not None and other.layout != "daily":
                raise ContractError(
                    f"{where}: lookbackDays looks records up in daily partitions, but "
                    f"{rel.source} is a {other.layout} source"
                )
            if rel.lookback_days is None and other.layout == "daily":
                raise ContractError(
                    f"{where}: {rel.source} is a daily source: say how many days back a "
                    "record is looked up (custom property lookbackDays)"
                )
        for ref in contract.references:
            where = f"{contract.path or contract.name}: relationship {ref.key} -> {ref.source}"
            other = contracts[ref.source]
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


# -- the parts of a contract -------------------------------------------------------------


def _column_type(physical: str | None, logical: str | None, where: str, fail) -> str:
    """Our type vocabulary from ODCS physicalType, checked against logicalType."""
    if not isinstance(physical, str) or not physical.strip():
        raise fail(
            f"{where}.physicalType is required: one of {', '.join(sorted(_PHYSICAL_TYPES))} "
            "or decimal(p,s)"
        )
    text = physical.strip().lower().replace(" ", "")
    if text in _PHYSICAL_TYPES:
        ctype = _PHYSICAL_TYPES[text]
    elif _DECIMAL.match(text):
        ctype = text
    else:
        raise fail(
            f"{where}: physicalType {physical!r} is not one of "
            f"{', '.join(sorted(_PHYSICAL_TYPES))} or decimal(p,s)"
        )
    expected = _LOGICAL_TYPES["decimal" if _DECIMAL.match(ctype) else ctype]
    if logical != expected:
        raise fail(
            f"{where}: logicalType must be {expected!r} for physicalType {physical!r}, "
            f"got {logical!r}"
        )
    return ctype


def _rule(q, column: str, where: str, fail) -> Rule:
    """One ODCS quality entry as a rule of ours."""
    name = _str(q.id, f"{where}.id", fail)
    where = f"{where} ({name})"
    if q.type == "custom":
        if q.engine != ENGINE:
            raise fail(f"{where}: custom quality rules need engine: {ENGINE}, got {q.engine!r}")
        impl = q.implementation
        if not isinstance(impl, dict):
            raise fail(f"{where}: implementation must be a mapping with check and its parameters")
        params = dict(impl)
        check = params.pop("check", None)
        if check not in RULE_KINDS or check in _LIBRARY_KINDS.values():
            kinds = [k for k in RULE_KINDS if k not in _LIBRARY_KINDS.values()]
            hint = (
                f" (write {check} as the ODCS library metric "
                f"{next(m for m, k in _LIBRARY_KINDS.items() if k == check)})"
                if check in _LIBRARY_KINDS.values()
                else ""
            )
            raise fail(f"{where}: check {check!r} is not one of {', '.join(kinds)}{hint}")
    elif q.type in (None, "library") and q.metric is not None:
        check = _LIBRARY_KINDS.get(q.metric)
        if check is None:
            raise fail(
                f"{where}: metric {q.metric!r} is not one of {', '.join(_LIBRARY_KINDS)} "
                "(per-record rules reject the records that fail them)"
            )
        if q.mustBe != 0 or any(
            getattr(q, op) is not None
            for op in (
                "mustNotBe",
                "mustBeGreaterThan",
                "mustBeGreaterOrEqualTo",
                "mustBeLessThan",
                "mustBeLessOrEqualTo",
                "mustBeBetween",
                "mustNotBeBetween",
            )
        ):
            raise fail(f"{where}: a per-record rule says mustBe: 0 (no record may fail it)")
        arguments = dict(q.arguments or {})
        params = {}
        if check == "in_set":
            params["values"] = arguments.pop("validValues", None)
        if arguments:
            raise fail(f"{where}: unknown arguments {', '.join(sorted(arguments))}")
    else:
        raise fail(
            f"{where}: type must be library (metric nullValues or invalidValues) or "
            f"custom (engine {ENGINE}), got {q.type!r}"
        )
    missing = [p for p in RULE_KINDS[check] if params.get(p) is None]
    if missing:
        what = "arguments.validValues" if check == "in_set" else ", ".join(missing)
        raise fail(f"{where}: check {check} needs {what}")
    unknown = [p for p in params if p not in RULE_KINDS[check]]
    if unknown:
        raise fail(f"{where}: unknown parameters {', '.join(unknown)}")
    _check_params(check, params, where, fail)
    return Rule(name, check, column, " ".join((q.description or "").split()), params)


def _relationship(rel, column: str, where: str, fail) -> Relationship:
    if rel.from_ is not None:
        raise fail(f"{where}: 'from' is implied by the property; give only 'to'")
    if rel.type not in (None, "foreignKey"):
        raise fail(f"{where}: type must be foreignKey")
    to = rel.to
    if not isinstance(to, str) or not re.fullmatch(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*", to):
        raise fail(f"{where}: 'to' must name <source>.<column>, got {to!r}")
    source, target = to.split(".")
    custom = _custom_properties(rel.customProperties, where, fail)
    unknown = sorted(set(custom) - {"lookbackDays"})
    if unknown:
        raise fail(f"{where}: unknown custom properties {', '.join(unknown)}")
    lookback = custom.get("lookbackDays")
    if lookback is not None and (
        not isinstance(lookback, int) or isinstance(lookback, bool) or not 0 <= lookback <= 366
    ):
        raise fail(
            f"{where}: lookbackDays must be a whole number of days between 0 and 366, "
            f"got {lookback!r}"
        )
    return Relationship(column, source, target, lookback)


def _custom_properties(items, where: str, fail) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if not item.property:
            raise fail(f"{where}: a custom property needs 'property'")
        out[item.property] = item.value
    return out


def _sla(items, fail) -> dict[str, Any]:
    sla: dict[str, Any] = {}
    for i, item in enumerate(items or []):
        where = f"slaProperties[{i}]"
        prop = _str(item.property, f"{where}.property", fail)
        value = item.value
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise fail(f"{where} ({prop}) must be a non-negative number, got {value!r}")
        key = _SLA_ALIASES.get(prop, prop)
        if key.endswith("_minutes"):
            if item.unit not in _MINUTES_PER_UNIT:
                raise fail(
                    f"{where} ({prop}): unit must be one of {', '.join(_MINUTES_PER_UNIT)}, "
                    f"got {item.unit!r}"
                )
            value = value * _MINUTES_PER_UNIT[item.unit]
        elif key.endswith("_days") and item.unit != "d":
            raise fail(f"{where} ({prop}) is a number of days: give it unit: d, got {item.unit!r}")
        elif key.endswith("_rate") and value > 1:
            raise fail(f"{where} ({prop}) is a share between 0 and 1, got {value!r}")
        if key in sla:
            raise fail(f"{where}: {prop} is given twice")
        sla[key] = value
    return sla


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
                f"{where}: reference {params['reference']!r} is not a relationship with "
                "lookbackDays of this contract"
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
            raise fail(f"{where}: validValues must be a non-empty list of strings or integers")
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
