"""Contract changes against the tables they already wrote, classified when the code
location loads.

Each contract is compared with the schema of its existing Delta tables (bronze and,
for daily sources, silver; a table that does not exist yet is skipped). The schema
comes from the Delta log through delta-rs (no file listing, no Spark), so this stays
cheap in every process that loads the code location. A change is

- **additive**: a new optional column. The table's schema evolves on its next write;
  partitions written before read the column as null.
- **widening**: a column type every stored value survives (int -> long, a decimal with
  more digits). The next write rewrites the table once in the wider type
  (``DeltaStore.widen_types``), then writes as usual.
- **breaking**: a removed or renamed column, a narrowing or other type change, a new
  required column (old partitions have no value for it), a changed primary key. The load
  is refused with a message naming the contract, the table, the column and what to do,
  unless the operator accepts that contract version explicitly
  (``FOODOPS_ACCEPT_BREAKING_CONTRACT_CHANGES=<contract>@<version>``, logged at every load).

The primary key a table was written with is recorded in the commit info of every bronze
and silver write (``foodops_primary_key``, next to the contract version).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql.pandas.types import to_arrow_schema

from ..contracts import Contract, ContractError
from ..lakehouse import tables
from ..lakehouse.delta import DeltaStore, is_widening
from ..lakehouse.tables import TableRef
from ..settings import ENV_ACCEPT_BREAKING_CONTRACT_CHANGES
from ..transforms.bronze import bronze_schema
from ..transforms.silver import silver_schema

ADDITIVE, WIDENING, BREAKING = "additive", "widening", "breaking"
# commit-info keys of every bronze and silver write (assets.common.commit_metadata)
COMMIT_CONTRACT = "foodops_contract"
COMMIT_CONTRACT_VERSION = "foodops_contract_version"
COMMIT_PRIMARY_KEY = "foodops_primary_key"

MIGRATION = 'README, "Data contracts": rebuild the tables'
log = logging.getLogger(__name__)


class ContractChangeError(ContractError):
    """A contract changes its existing tables in a way they cannot follow."""


@dataclass(frozen=True)
class ContractChange:
    contract: str
    version: str
    table: str
    column: str
    kind: str  # additive | widening | breaking
    change: str  # what changed, in words
    action: str = ""  # what to do about a breaking change

    @property
    def accept_as(self) -> str:
        return f"{self.contract}@{self.version}"

    def describe(self) -> str:
        return (
            f"contract {self.contract} v{self.version}, table {self.table}, "
            f"column {self.column}: {self.change}"
        )


def contract_tables(contract: Contract) -> list[tuple[TableRef, pa.Schema]]:
    """The tables a contract shapes, each with the schema the contract gives it."""
    daily = contract.layout == "daily"
    out = [(tables.BRONZE_BY_SOURCE[contract.name], bronze_schema(contract, daily))]
    if contract.name in tables.SILVER_BY_SOURCE:
        out.append((tables.SILVER_BY_SOURCE[contract.name], silver_schema(contract)))
    return [(table, _arrow(schema)) for table, schema in out]


def classify(
    contract: Contract,
    table: TableRef,
    expected: pa.Schema,
    actual: pa.Schema,
    recorded_primary_key: tuple[str, ...] | None = None,
) -> list[ContractChange]:
    """How ``contract`` (whose columns ``expected`` lays out) changes a table whose
    current schema is ``actual``. Columns the pipeline adds (lineage, partition, rescue)
    are not the contract's and are left out."""
    ours = set(contract.column_names)
    pipeline = {f.name for f in expected} - ours
    wanted = {f.name: f.type for f in expected if f.name in ours}
    stored = {f.name: f.type for f in actual if f.name not in pipeline}

    def change(column: str, kind: str, what: str, action: str = "") -> ContractChange:
        return ContractChange(
            contract.name, contract.version, table.name, column, kind, what, action
        )

    out: list[ContractChange] = []
    added = [c for c in contract.column_names if c not in stored]
    for column, old in stored.items():
        if column in wanted:
            new = wanted[column]
            if _same(old, new):
                continue
            what = f"{_name(old)} in the table, {_name(new)} in the contract"
            if is_widening(old, new):
                out.append(change(column, WIDENING, f"widened: {what}"))
            else:
                out.append(
                    change(
                        column,
                        BREAKING,
                        f"{'narrowed' if is_widening(new, old) else 'type changed'}: {what}",
                        f"keep {_name(old)} or widen it (int -> long, more decimal digits); "
                        f"to change it otherwise, {MIGRATION}",
                    )
                )
            continue
        renamed = [a for a in added if _same(wanted[a], old)]
        hint = f" (renamed to {' or '.join(renamed)}?)" if renamed else ""
        out.append(
            change(
                column,
                BREAKING,
                f"removed{hint}: the table has it ({_name(old)}), the contract no longer does",
                f"keep {column} in the contract (required: false) so the table keeps it; "
                f"to drop or rename it, {MIGRATION}",
            )
        )
    for column in added:
        if contract.column(column).required:
            out.append(
                change(
                    column,
                    BREAKING,
                    "new required column: the partitions already written have no value for it",
                    f"add it with required: false (an additive change: old partitions read "
                    f"null); to require it, {MIGRATION}",
                )
            )
        else:
            out.append(
                change(
                    column,
                    ADDITIVE,
                    f"new optional column ({_name(wanted[column])}): written from the next "
                    "write on, null in the partitions written before",
                )
            )
    if recorded_primary_key is not None and recorded_primary_key != contract.primary_key:
        out.append(
            change(
                ", ".join(contract.primary_key),
                BREAKING,
                f"primary key changed: the table was written with "
                f"({', '.join(recorded_primary_key)}), the contract says "
                f"({', '.join(contract.primary_key)})",
                f"deduplication and references key on it: {MIGRATION}",
            )
        )
    return out


def check_contract_changes(
    contracts: Mapping[str, Contract],
    lake_root: str,
    accepted: Iterable[str] = (),
    storage_options: Mapping[str, str] | None = None,
) -> list[ContractChange]:
    """Classify every contract against its existing tables; refuse breaking changes that
    are not accepted (``<contract>@<version>`` in ``accepted``). Returns every change."""
    store = DeltaStore(lake_root, storage_options)
    accepted = set(accepted)
    changes: list[ContractChange] = []
    for contract in contracts.values():
        for table, expected in contract_tables(contract):
            try:
                state = store.schema_and_commit_with(table, COMMIT_PRIMARY_KEY)
            except Exception as exc:
                if store.is_local():
                    raise
                # a remote lake this process cannot read (no credentials here): the remote
                # task that writes it loads the code location there and checks again
                log.warning("contract %s: %s not checked (%s)", contract.name, table.name, exc)
                continue
            if state is None:
                continue
            actual, recorded = state
            key = (
                tuple(k for k in str(recorded[COMMIT_PRIMARY_KEY]).split(",") if k)
                if recorded
                else None
            )
            changes += classify(contract, table, expected, actual, key)
    refused = [c for c in changes if c.kind == BREAKING and c.accept_as not in accepted]
    if refused:
        lines = "\n".join(f"- {c.describe()}. To do: {c.action}." for c in refused)
        versions = ",".join(sorted({c.accept_as for c in refused}))
        raise ContractChangeError(
            f"breaking contract changes against the existing tables under {lake_root}:\n"
            f"{lines}\n"
            f"To load anyway and keep the tables as they are, set "
            f"{ENV_ACCEPT_BREAKING_CONTRACT_CHANGES}={versions} (logged at every load)."
        )
    for c in changes:
        if c.kind == BREAKING:
            log.warning(
                "accepted by %s=%s: breaking change %s",
                ENV_ACCEPT_BREAKING_CONTRACT_CHANGES,
                c.accept_as,
                c.describe(),
            )
        else:
            log.info("%s contract change: %s", c.kind, c.describe())
    return changes


def _arrow(schema) -> pa.Schema:
    return to_arrow_schema(schema, error_on_duplicated_field_names_in_struct=True, timezone="UTC")


def _same(a: pa.DataType, b: pa.DataType) -> bool:
    def norm(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        return t

    return norm(a) == norm(b)


def _name(t: pa.DataType) -> str:
    """An Arrow type in the contracts' type vocabulary (physicalType for the ODCS file)."""
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    names = {
        pa.int32(): "int",
        pa.int64(): "bigint",
        pa.float64(): "double",
        pa.bool_(): "boolean",
        pa.date32(): "date",
        pa.string(): "string",
        pa.large_string(): "string",
    }
    if pa.types.is_timestamp(t):
        return "timestamp"
    return names.get(t, str(t))
