"""Operator job ``restore_delta_table``: put a table back on version N.

Dry run first (what would change: versions, row counts, partitions), then the
restore itself: one atomic Delta commit, reported as a materialisation of the
table with ``restored_to`` and the reason, so the asset page shows which
version is live and why.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from ..lakehouse.delta import DeltaStore
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.tables import TABLES, TableRef

RESTORE_JOB = "restore_delta_table"


class RestoreConfig(dg.Config):
    table: str = Field(description=f"table name, one of: {', '.join(TABLES)}")
    version: int = Field(description="the Delta version to put readers back on")
    dry_run: bool = Field(
        default=True, description="only report what would change (set false to restore)"
    )
    reason: str = Field(default="", description="why (recorded in the Delta commit)")


def partition_row_counts(store: DeltaStore, table: TableRef, version: int) -> dict[str, int]:
    """Rows per partition (``partition_date[/source]``) of ``table`` at ``version``."""
    columns = list(table.partition_by)
    data = store._open(table, version).to_pyarrow_table(columns=columns or None)
    if not columns:
        return {"(table)": data.num_rows}
    if data.num_rows == 0:
        return {}
    counts = data.group_by(columns).aggregate([([], "count_all")]).to_pylist()
    return {"/".join(str(r[c]) for c in columns): int(r["count_all"]) for r in counts}


def restore_plan(store: DeltaStore, table: TableRef, version: int) -> dict[str, Any]:
    """What restoring ``table`` to ``version`` changes; fails with what to fix."""
    current = store.version(table)
    if current is None:
        raise dg.Failure(
            f"{table.name} does not exist at {store.uri(table)}: nothing to restore",
            allow_retries=False,
        )
    if not 0 <= version <= current:
        raise dg.Failure(
            f"{table.name} has versions 0..{current}; version {version} does not exist. "
            "Pick one from the table's history (the asset page lists delta_version per run).",
            allow_retries=False,
        )
    try:
        before, after = (
            partition_row_counts(store, table, current),
            partition_row_counts(store, table, version),
        )
    except Exception as exc:  # noqa: BLE001 - e.g. files vacuumed since
        raise dg.Failure(
            f"version {version} of {table.name} cannot be read any more ({exc}); it was "
            "probably vacuumed: pick a more recent version",
            allow_retries=False,
        ) from None
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    return {
        "current_version": current,
        "target_version": version,
        "rows_now": sum(before.values()),
        "rows_after": sum(after.values()),
        "partitions_changed": changed,
        "rows_by_partition": {p: (before.get(p, 0), after.get(p, 0)) for p in changed},
    }


def _plan_markdown(plan: Mapping[str, Any]) -> str:
    lines = ["| partition | rows now | rows after restore |", "|---|---|---|"]
    for p, (now, after) in plan["rows_by_partition"].items():
        lines.append(f"| {p} | {now} | {after} |")
    return "\n".join(lines)


@dg.op(
    name="restore_delta_table_op",
    description="Restore one Delta table to a version (dry run: report what would change).",
)
def restore_delta_table_op(
    context: dg.OpExecutionContext, config: RestoreConfig, lakehouse: LakehouseResource
) -> dg.Output:
    table = TABLES.get(config.table)
    if table is None:
        raise dg.Failure(
            f"unknown table {config.table!r}; use one of: {', '.join(TABLES)}",
            allow_retries=False,
        )
    store = lakehouse.store
    plan = restore_plan(store, table, config.version)
    summary = (
        f"{table.name}: version {plan['current_version']} -> {plan['target_version']}, "
        f"rows {plan['rows_now']} -> {plan['rows_after']}, "
        f"{len(plan['partitions_changed'])} partition(s) change"
    )
    meta = {
        "table": table.name,
        "current_version": plan["current_version"],
        "target_version": plan["target_version"],
        "rows_now": plan["rows_now"],
        "rows_after": plan["rows_after"],
        "partitions_changed": dg.MetadataValue.md(_plan_markdown(plan)),
        "dry_run": config.dry_run,
    }
    if config.dry_run:
        context.log.info(f"DRY RUN, nothing changed. Would restore {summary}")
        context.log.info("\n" + _plan_markdown(plan))
        return dg.Output(None, metadata=meta)
    if plan["current_version"] == config.version:
        context.log.info(f"{table.name} is already at version {config.version}: nothing to do")
        return dg.Output(None, metadata={**meta, "delta_version": config.version})
    reason = config.reason or "operator restore"
    store.restore(
        table,
        config.version,
        {
            "dagster_run_id": context.run.run_id,
            "dagster_asset": table.name,
            "foodops_restore_reason": reason,
        },
    )
    live = store.version(table)
    context.log.info(f"Restored {summary}; readers now see version {live}")
    report = {
        "delta_version": live,
        "restored_to": config.version,
        "rolled_back_from": plan["current_version"],
        "reason": f"restore_delta_table: {reason}",
        "dagster/uri": store.uri(table),
    }
    partitions = (
        sorted({p.split("/")[0] for p in plan["partitions_changed"]})
        if table.is_partitioned
        else [None]
    )
    for partition in partitions:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=table.name,
                partition=partition,
                description=f"restored to version {config.version} ({reason})",
                metadata=report,
            )
        )
    return dg.Output(None, metadata={**meta, **report})


@dg.job(
    name=RESTORE_JOB,
    description="Operators: restore a Delta table to version N (dry_run first, then dry_run: false).",
)
def restore_delta_table_job():
    restore_delta_table_op()
