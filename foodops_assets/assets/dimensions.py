"""Dimensions: the SCD type 2 history of the reference snapshots (restaurants, dishes).

``restaurants_history`` and ``dishes_history`` (group ``dimensions``, tables under
``<lake>/dimensions/``) hold one row per key per version, built from *every* snapshot in
the landing zone, ordered by the time in the snapshot's name (the contracts'
``snapshotTime``). The current-snapshot tables ``restaurants`` and ``dishes`` (bronze)
stay for readers that want "now"; gold joins the history as of the order's time.

A run applies every landed snapshot the table does not hold yet, oldest first, each as
one atomic Delta commit (a delta-rs MERGE: the versions it opens, closes or re-cuts;
an empty commit when it changes nothing) that records the snapshots applied so far in
its commit info. Before each commit the snapshot's result is audited in memory (no
overlapping versions, exactly one current version per live key, no version lost unless
a late snapshot re-cut that key); a failed check or an empty snapshot (it would close
every key: the operator must confirm it by name in the run config) stops the run with
nothing of that snapshot written. Rows a snapshot cannot apply (a duplicate key, a
broken rule, an unparseable line) go to ``dead_letter_queue`` (source = the contract,
partition_date = the snapshot's day) and their keys keep their version:

    snapshot rows = versions opened + rows unchanged + DLQ rows
"""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field
from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..checks import names
from ..contracts import Contract
from ..contracts.spark import spark_schema
from ..lakehouse.delta import WriteResult
from ..lakehouse.landing import LandingError, read_whole_files
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.spark import SparkResource
from ..lakehouse.tables import DEAD_LETTER_QUEUE, TableRef
from ..lakehouse.writers.base import spark_arrow_schema
from ..transforms import history as scd
from ..transforms.bronze import parse_records, split_lines
from ..transforms.silver import failed_rules_column
from .common import (
    KINDS,
    NO_RETRIES,
    StepRetries,
    commit_metadata,
    contract_definition_metadata,
    contract_descriptions,
    contract_metadata,
    table_schema,
    write_metadata,
)
from .step import CircuitBreakerTripped, audit

GROUP = "dimensions"
# commit-info keys of every history commit
# JSON [[time, file, [rejected keys]], ...] of every applied snapshot
COMMIT_APPLIED = "foodops_snapshots_applied"
COMMIT_SNAPSHOT = "foodops_snapshot"

_HISTORY_SPARK_FIELDS = [
    T.StructField(scd.ROW_HASH, T.StringType()),
    T.StructField(scd.VALID_FROM, T.TimestampType()),
    T.StructField(scd.VALID_TO, T.TimestampType()),
    T.StructField(scd.IS_CURRENT, T.BooleanType()),
    T.StructField(scd.IS_DELETED, T.BooleanType()),
    T.StructField(scd.SOURCE_FILE, T.StringType()),
]


class HistoryConfig(dg.Config):
    """What the operator confirms for a history run (launchpad / run config)."""

    confirm_empty_snapshots: list[str] = Field(
        default_factory=list,
        description=(
            "file names of snapshots with no valid row that may be applied anyway: applying "
            "one closes every live key as deleted (the circuit breaker refuses it otherwise)"
        ),
    )


def history_spark_schema(contract: Contract) -> T.StructType:
    return T.StructType([*spark_schema(contract).fields, *_HISTORY_SPARK_FIELDS])


def history_asset(
    table: TableRef, contract: Contract, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    """The SCD type 2 history of the snapshot source ``contract``."""
    key = list(contract.primary_key)
    tracked = [c for c in contract.column_names if c not in key]
    schema = history_spark_schema(contract)
    descriptions = {**contract_descriptions(contract), **scd.HISTORY_DESCRIPTIONS}

    @dg.asset(
        name=table.name,
        group_name=GROUP,
        description=(
            f"Every version of every {contract.name} key (SCD type 2) from the landed snapshot "
            "sequence, ordered by the snapshot's own time: valid_from, valid_to, is_current, "
            "is_deleted. Gold joins it as of the order's time."
        ),
        owners=[contract.owner],
        kinds=KINDS,
        metadata={
            **contract_definition_metadata(contract),
            "dagster/column_schema": table_schema(schema, descriptions),
            "tracked_columns": ", ".join(tracked),
            "snapshot_time": "the snapshot's file name, snapshot-YYYYMMDD[THHMMSSZ].jsonl (UTC)",
        },
        tags={"layer": GROUP, "source": contract.name},
        op_tags={"dagster/priority": "1"},
        check_specs=[
            dg.AssetCheckSpec(
                names.SNAPSHOT_NOT_EMPTY,
                asset=table.name,
                blocking=True,
                description=(
                    "A snapshot with no valid row would close every key: refused unless the "
                    "operator names it in confirm_empty_snapshots."
                ),
            ),
            dg.AssetCheckSpec(
                names.NO_OVERLAPPING_VERSIONS,
                asset=table.name,
                blocking=True,
                description="No key has two versions valid at the same time (or an empty interval).",
            ),
            dg.AssetCheckSpec(
                names.ONE_CURRENT_VERSION,
                asset=table.name,
                blocking=True,
                description=(
                    "Every key the newest snapshot holds has exactly one current version "
                    "(valid_to null); no other key has one."
                ),
            ),
            dg.AssetCheckSpec(
                names.KEEPS_EVERY_VERSION,
                asset=table.name,
                blocking=True,
                description=(
                    "No version disappears, except the versions of keys a late snapshot re-cut "
                    "(the result then equals applying the snapshots in time order)."
                ),
            ),
        ],
        retry_policy=retries.policy,
    )
    @retries.wrap
    def _history(
        context: dg.AssetExecutionContext,
        config: HistoryConfig,
        spark: SparkResource,
        lakehouse: LakehouseResource,
    ):
        try:
            landed = lakehouse.landing.snapshots(contract.name)
        except LandingError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        store = lakehouse.store
        found = store.schema_and_commit_with(table, COMMIT_APPLIED)
        applied = _applied(found[1] if found else None)
        history = store.to_arrow(table).to_pylist() if found else []
        before_run = len(history)
        start_version = store.version(table)
        done = {s.file for s in applied}
        pending = [(t, f) for t, f in landed if Path(f.path).name not in done]
        context.log.info(
            f"{contract.name}: {len(landed)} snapshots landed, {len(pending)} to apply"
        )
        arrow_schema = pa.schema(
            [
                f.with_type(pa.timestamp("us", tz="UTC")) if pa.types.is_timestamp(f.type) else f
                for f in spark_arrow_schema(schema)
            ]
        )
        session = spark.spark_session
        per_snapshot = []
        checks = [
            dg.AssetCheckResult(
                check_name=names.SNAPSHOT_NOT_EMPTY,
                passed=True,
                description="no new snapshot to apply",
            ),
            *_checks_of(history, history, None, key, scd.live_keys(history, key)),
        ]
        version = start_version
        for t, landed_file in pending:
            name = Path(landed_file.path).name
            snapshot_time = t
            rows, dlq = _read_snapshot(session, landed_file.path, contract, t)
            valid = [r for r in rows if not r["_failed_rules"]]
            rejected_keys = {
                tuple(r[c] for c in key)
                for r in rows
                if r["_failed_rules"] and all(r[c] is not None for c in key)
            }
            live_before = scd.live_keys(history, key)
            empty = not valid and bool(live_before)
            confirmed = name in config.confirm_empty_snapshots
            breaker = dg.AssetCheckResult(
                check_name=names.SNAPSHOT_NOT_EMPTY,
                asset_key=table.name,
                passed=not empty or confirmed,
                description=(
                    f"{name} holds no valid row: applying it would close all {len(live_before)} "
                    f"live keys. Nothing of it was applied. If the source really emptied, "
                    f"confirm it: run config confirm_empty_snapshots: [{name!r}]"
                    if empty and not confirmed
                    else (
                        f"{name} is empty and was confirmed by the operator"
                        if empty
                        else f"{name}: {len(valid)} valid rows"
                    )
                ),
                metadata={
                    "snapshot": name,
                    "valid_rows": len(valid),
                    "live_keys": len(live_before),
                },
            )
            snapshot = scd.Snapshot(snapshot_time, name, frozenset(rejected_keys))
            observed = scd.observed_versions(valid, key, tracked)
            plan = scd.plan_snapshot(history, applied, snapshot, observed, rejected_keys, key)
            after = scd.apply_plan(history, plan, key)
            live = live_before if plan.late else set(observed) | (rejected_keys & live_before)
            checks = [breaker, *_checks_of(history, after, plan, key, live)]
            try:
                audit(checks, f"Nothing of {name} was written; the history stays as it was.")
            except CircuitBreakerTripped as tripped:
                yield from tripped.checks
                raise tripped.failure(table, []) from None
            if dlq.num_rows:
                lakehouse.write_partitions(
                    dlq,
                    DEAD_LETTER_QUEUE,
                    {"partition_date": [t.date()], "source": [contract.name]},
                    description=f"{contract.name} snapshot rejects ({name})",
                    commit_metadata=commit_metadata(context, DEAD_LETTER_QUEUE.name),
                )
            now_applied = sorted([*applied, snapshot])
            counts = {
                "opened": plan.opened,
                "closed": plan.closed,
                "deleted_keys": plan.deleted_keys,
                "unchanged": plan.unchanged,
                "dlq_rows": dlq.num_rows,
            }
            version = store.merge_rows(
                table,
                pa.Table.from_pylist(plan.upserts, arrow_schema),
                pa.Table.from_pylist(plan.deletes, arrow_schema),
                [*key, scd.VALID_FROM],
                commit_metadata={
                    **commit_metadata(context, table.name, contract=contract),
                    COMMIT_SNAPSHOT: name,
                    COMMIT_APPLIED: json.dumps(
                        [
                            [s.time.isoformat(), s.file, sorted(list(k) for k in s.rejected)]
                            for s in now_applied
                        ]
                    ),
                    **{f"foodops_{k}": v for k, v in counts.items()},
                },
            )
            snapshot_rows = len(rows)
            per_snapshot.append(
                {
                    "snapshot": name,
                    "time": t.isoformat(),
                    "late": plan.late,
                    "rows": snapshot_rows,
                    **counts,
                    "rewritten_keys": len(plan.rewritten_keys) if plan.late else 0,
                    "conserved": snapshot_rows == plan.opened + plan.unchanged + dlq.num_rows,
                    "delta_version": version,
                }
            )
            context.log.info(f"{contract.name}: applied {name} as version {version}: {counts}")
            history, applied = after, now_applied

        write = WriteResult(
            table_uri=store.uri(table),
            version=version if version is not None else -1,
            previous_version=start_version,
            rows_written=len(history),
            predicate=None,
            writer="delta-rs merge",
        )
        total = {
            k: sum(p[k] for p in per_snapshot)
            for k in ("opened", "closed", "deleted_keys", "unchanged", "dlq_rows", "rows")
        }
        yield dg.MaterializeResult(
            metadata={
                **write_metadata(write, schema, descriptions),
                **contract_metadata(contract),
                "snapshots_landed": len(landed),
                "snapshots_applied": len(per_snapshot),
                "snapshots_already_applied": len(landed) - len(pending),
                "late_snapshots": sum(1 for p in per_snapshot if p["late"]),
                "versions_opened": total["opened"],
                "versions_closed": total["closed"],
                "keys_deleted": total["deleted_keys"],
                "rows_unchanged": total["unchanged"],
                "dlq_rows": total["dlq_rows"],
                "snapshot_rows": total["rows"],
                "conservation_holds": all(p["conserved"] for p in per_snapshot),
                "versions_before": before_run,
                "live_keys": len(scd.live_keys(history, key)),
                "newest_snapshot": applied[-1].file if applied else "-",
                "applied": dg.MetadataValue.md(_applied_table(per_snapshot)),
            },
            check_results=checks,
        )

    return _history


def _applied(commit: dict | None) -> list[scd.Snapshot]:
    if not commit:
        return []
    return sorted(
        scd.Snapshot(
            dt.datetime.fromisoformat(entry[0]),
            entry[1],
            frozenset(tuple(k) for k in (entry[2] if len(entry) > 2 else [])),
        )
        for entry in json.loads(commit[COMMIT_APPLIED])
    )


def _checks_of(before, after, plan, key, live) -> list[dg.AssetCheckResult]:
    overlaps = scd.overlapping_versions(after, key)
    current = scd.current_version_problems(after, key, live)
    lost = scd.lost_versions(
        before, after, key, plan.rewritten_keys if plan is not None and plan.late else []
    )
    return [
        dg.AssetCheckResult(
            check_name=name,
            passed=not problems,
            description=("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
            if problems
            else ok,
            metadata={"problems": len(problems), "versions": len(after)},
        )
        for name, problems, ok in (
            (names.NO_OVERLAPPING_VERSIONS, overlaps, "no key has overlapping versions"),
            (
                names.ONE_CURRENT_VERSION,
                current,
                f"{len(live)} live keys, one current version each",
            ),
            (names.KEEPS_EVERY_VERSION, lost, f"{len(after)} versions, none lost"),
        )
    ]


def _read_snapshot(session, path: str, contract: Contract, t: dt.datetime):
    """The snapshot's rows (contract columns and ``_failed_rules``: the rules each breaks,
    a duplicate key included) and its rejects in the DLQ layout, both as Arrow/Python."""
    key = list(contract.primary_key)
    bronze = parse_records(split_lines(read_whole_files(session, [path])), contract)
    keyed = F.when(
        F.count(F.lit(1)).over(Window.partitionBy(*key)) > 1, F.lit(scd.DUPLICATE_KEY_RULE)
    )
    has_key = F.col(key[0]).isNotNull()
    failed = F.array_compact(
        F.concat(
            failed_rules_column(contract, t, t + dt.timedelta(days=1)),
            F.array(F.when(has_key, keyed)),
        )
    )
    raw_record = F.coalesce(
        F.col("_rescued_data"),
        F.to_json(
            F.struct(*[F.col(c) for c in contract.column_names]), {"ignoreNullFields": "false"}
        ),
    )
    table = bronze.select(
        *contract.column_names,
        failed.alias("_failed_rules"),
        raw_record.alias("raw_record"),
        "_parse_error",
        "source_file",
        "source_line",
        "ingested_at",
    ).toArrow()
    rows = table.select([*contract.column_names, "_failed_rules"]).to_pylist()
    rejected = table.filter(pc.greater(pc.list_value_length(table["_failed_rules"]), 0))
    n = rejected.num_rows
    dlq = pa.table(
        {
            "source": pa.array([contract.name] * n, pa.string()),
            "partition_date": pa.array([t.date()] * n, pa.date32()),
            "raw_record": rejected["raw_record"],
            "failed_rules": rejected["_failed_rules"].cast(pa.list_(pa.string())),
            "parse_error": rejected["_parse_error"],
            "source_file": rejected["source_file"],
            "source_line": rejected["source_line"].cast(pa.int64()),
            "ingested_at": rejected["ingested_at"].cast(pa.timestamp("us", tz="UTC")),
        }
    )
    return rows, dlq


def _applied_table(per_snapshot: list[dict]) -> str:
    if not per_snapshot:
        return "no new snapshot: every landed snapshot is applied"
    head = "| snapshot | late | rows | opened | closed | deleted | unchanged | DLQ | version |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    lines += [
        f"| {p['snapshot']} | {'yes' if p['late'] else ''} | {p['rows']} | {p['opened']} | "
        f"{p['closed']} | {p['deleted_keys']} | {p['unchanged']} | {p['dlq_rows']} | "
        f"{p['delta_version']} |"
        for p in per_snapshot
    ]
    return "\n".join(lines)
