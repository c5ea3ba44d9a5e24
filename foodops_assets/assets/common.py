"""What every FoodOps asset shares: partitions of a run, metadata, descriptions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pyspark.sql import types as T

from ..checks.contract_changes import COMMIT_CONTRACT, COMMIT_CONTRACT_VERSION, COMMIT_PRIMARY_KEY
from ..contracts import Contract
from ..lakehouse.delta import WriteResult

KINDS = {"spark", "delta"}
PLATFORM_OWNER = "team:data-platform"


def _unchanged(fn: Callable) -> Callable:
    return fn


@dataclass(frozen=True)
class StepRetries:
    """How an asset's step retries, given to each asset as it is declared: the code
    location passes ``automation/retries.py``'s (a ``RetryPolicy`` on the step, and the
    asset body wrapped so that only transient errors reach it); the remote Databricks
    task runs without (the orchestrator retries the whole remote step)."""

    policy: dg.RetryPolicy | None = None
    wrap: Callable[[Callable], Callable] = _unchanged


NO_RETRIES = StepRetries()

LINEAGE_DESCRIPTIONS = {
    "source_file": "Landing file the record came from.",
    "source_line": "1-based line number of the record in its landing file.",
    "ingested_at": "When the line's landing file landed (its modification time, UTC); stable across re-runs.",
    "partition_date": "Logical date of the landing batch (the Dagster partition key).",
    "_rescued_data": "Raw text of a line that did not parse cleanly or had fields outside the contract.",
    "_parse_error": "Why the line did not parse cleanly (null when it did).",
    "_extra_fields": "Fields of the line that the contract does not know (rescued, not lost).",
}


def run_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The daily partitions this run materialises (one, or a backfill range)."""
    window = context.partition_time_window
    days = []
    day = window.start.date()
    while day < window.end.date():
        days.append(day)
        day += dt.timedelta(days=1)
    return days


def window_days(window: dg.TimeWindow) -> list[dt.date]:
    """The UTC days of a time window (end exclusive)."""
    days = []
    day = window.start.astimezone(dt.UTC).date()
    end = window.end.astimezone(dt.UTC).date()
    while day < end:
        days.append(day)
        day += dt.timedelta(days=1)
    return days


def run_window(context: dg.AssetExecutionContext) -> tuple[dt.datetime, dt.datetime]:
    """(start, end) of the run's partitions, UTC, end exclusive."""
    window = context.partition_time_window
    return window.start.astimezone(dt.UTC), window.end.astimezone(dt.UTC)


def trailing_days(days: int) -> dg.TimeWindowPartitionMapping:
    """Day D of an asset reads days D-(days-1)..D of the upstream (a partition mapping, so
    Dagster shows and automates the dependency; missing upstream days are allowed)."""
    return dg.TimeWindowPartitionMapping(
        start_offset=-(days - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
    )


def partition_label(days: Sequence[dt.date]) -> str:
    if not days:
        return "-"
    if len(days) == 1:
        return days[0].isoformat()
    return f"{days[0].isoformat()}...{days[-1].isoformat()}"


def commit_metadata(
    context: dg.AssetExecutionContext,
    asset: str,
    days: Sequence[dt.date] = (),
    contract: Contract | None = None,
):
    """Recorded in the Delta commit, so a table version leads back to its Dagster run (and,
    for a table a contract shapes, to the contract version and primary key it was written
    with: what the load-time contract-change check compares with)."""
    meta = {
        "dagster_run_id": context.run.run_id,
        "dagster_asset": asset,
        "dagster_partitions": partition_label(days) if days else None,
    }
    if contract is not None:
        meta[COMMIT_CONTRACT] = contract.name
        meta[COMMIT_CONTRACT_VERSION] = contract.version
        meta[COMMIT_PRIMARY_KEY] = ",".join(contract.primary_key)
    return meta


def contract_metadata(contract: Contract) -> dict[str, Any]:
    """On every materialisation the contract validated: the contract version it used."""
    return {"contract_version": contract.version}


def table_schema(
    schema: T.StructType, descriptions: Mapping[str, str] | None = None
) -> dg.TableSchema:
    descriptions = {**LINEAGE_DESCRIPTIONS, **(descriptions or {})}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=f.dataType.simpleString(),
                description=descriptions.get(f.name),
            )
            for f in schema.fields
        ]
    )


def contract_descriptions(contract: Contract) -> dict[str, str]:
    return {c.name: c.description for c in contract.columns}


def contract_definition_metadata(contract: Contract) -> dict[str, Any]:
    """Static metadata shown on the asset page before anything is materialised."""
    return {
        "contract": dg.MetadataValue.path(contract.path),
        "contract_version": contract.version,
        "contract_owner": contract.owner,
        "primary_key": ", ".join(contract.primary_key) or "-",
        "sla": dg.MetadataValue.json(dict(contract.sla)),
        "rules": dg.MetadataValue.md(
            "\n".join(
                [
                    "| rule | column | description |",
                    "|---|---|---|",
                    "| parseable_record | (line) | the line is a JSON object whose values have the contract's types |",
                    *[f"| {r.name} | {r.column} | {r.description} |" for r in contract.rules],
                ]
            )
        ),
    }


def write_metadata(
    write: WriteResult, schema: T.StructType, descriptions: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Metadata every materialisation carries: row count, schema, Delta version and URI."""
    meta: dict[str, Any] = {
        "dagster/row_count": write.rows_written,
        "dagster/column_schema": table_schema(schema, descriptions),
        "dagster/uri": write.table_uri,
        "delta_version": write.version,
        "delta_previous_version": write.previous_version
        if write.previous_version is not None
        else -1,
        "table_uri": dg.MetadataValue.path(write.table_uri),
        "rows_written": write.rows_written,
        "delta_writer": write.writer,
    }
    if write.predicate:
        meta["delta_predicate"] = write.predicate
    return meta


def column_lineage(deps: Mapping[str, Mapping[str, Sequence[str]]]) -> dg.TableColumnLineage:
    """``{column: {upstream_asset: [upstream columns]}}`` as Dagster column lineage."""
    return dg.TableColumnLineage(
        deps_by_column={
            column: [
                dg.TableColumnDep(asset_key=dg.AssetKey(asset), column_name=c)
                for asset, cols in upstream.items()
                for c in cols
            ]
            for column, upstream in deps.items()
        }
    )


def identity_lineage(upstream: str, columns: Sequence[str]) -> dg.TableColumnLineage:
    return column_lineage({c: {upstream: [c]} for c in columns})
