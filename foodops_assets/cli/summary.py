"""The end-of-run summary: what the lake holds and what the checks said.

Table versions and row counts come from the Delta logs (delta-rs, no Spark);
check results come from the Dagster instance's event log — the run log of
the platform — not from a table of our own.
"""

from __future__ import annotations

import os
from collections import Counter

import pyarrow.compute as pc

from ..lakehouse.delta import DeltaStore
from ..lakehouse.tables import DEAD_LETTER_QUEUE, TABLES
from ..settings import Settings


def table_lines(store: DeltaStore) -> list[str]:
    out = [f"{'table':<36}{'version':>8}{'rows':>12}"]
    for table in TABLES.values():
        if not store.exists(table):
            continue
        out.append(
            f"{table.path:<36}{store.version(table):>8}{store.to_arrow(table).num_rows:>12,}"
        )
    return out


def dlq_lines(store: DeltaStore) -> list[str]:
    if not store.exists(DEAD_LETTER_QUEUE):
        return ["(no dead-letter queue yet)"]
    dlq = store.to_arrow(DEAD_LETTER_QUEUE)
    counts: Counter = Counter()
    for source, rules in zip(
        dlq.column("source").to_pylist(), dlq.column("failed_rules").to_pylist(), strict=True
    ):
        for rule in rules or []:
            counts[(source, rule)] += 1
    if not counts:
        return ["(empty)"]
    records = Counter(dlq.column("source").to_pylist())
    out = [f"{'source':<14}{'rule':<26}{'rows':>8}"]
    for (source, rule), n in sorted(counts.items()):
        out.append(f"{source:<14}{rule:<26}{n:>8,}")
    out.append(
        "records: "
        + ", ".join(f"{s} {n:,}" for s, n in sorted(records.items()))
        + f" (total {int(pc.count(dlq.column('source')).as_py()):,}; a record can break several rules)"
    )
    return out


def check_lines(settings: Settings) -> list[str]:
    if not os.environ.get("DAGSTER_HOME"):
        return ["(DAGSTER_HOME is not set: check results live in the Dagster instance)"]
    import dagster as dg

    from ..definitions import build_definitions

    keys = sorted(build_definitions(settings).resolve_asset_graph().asset_check_keys, key=str)
    out = [f"{'asset':<26}{'check':<34}{'result':<10}run"]
    with dg.DagsterInstance.get() as instance:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        for key in keys:
            record = latest.get(key)
            status = _status(record) if record else "NOT RUN"
            run = record.run_id[:8] if record else "-"
            out.append(f"{key.asset_key.to_user_string():<26}{key.name:<34}{status:<10}{run}")
    return out


def _status(record) -> str:
    """SUCCEEDED / FAILED / ..., and WARN for a failed check of WARN severity
    (a schema change on bronze: reported, not a circuit breaker)."""
    import dagster as dg

    status = record.status.value
    if status == "FAILED":
        evaluation = getattr(record.event.dagster_event, "event_specific_data", None)
        if getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.WARN:
            return "WARN"
    return status


def render(settings: Settings) -> str:
    store = DeltaStore(settings.lake_root)
    parts = [
        f"FoodOps lakehouse at {settings.lake_root}",
        "",
        *table_lines(store),
        "",
        "Dead-letter queue, rows per rule:",
        *dlq_lines(store),
        "",
        "Checks (latest result):",
        *check_lines(settings),
    ]
    return "\n".join(parts)
