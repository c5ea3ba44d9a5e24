"""The ``lake_maintenance`` job: per table, purge what is past retention, compact, vacuum,
checkpoint (``lakehouse/maintenance.py`` does the Delta work), and report it on the table's
asset as an observation.

**One op per table, in the table's concurrency pool.** Every step that writes a table
claims the table's pool (``with_write_pools``: the asset ops, the DLQ replay), and so does
the op that maintains it; the instance gives every pool one slot (``concurrency: pools:
default_limit: 1`` in ``resources/dagster.yaml``). So maintenance never touches a table
while a step writing it runs (it waits for the slot, and a writer waits for it), while the
tables nobody is writing are maintained meanwhile. A step that writes two tables (silver
writes its source's rows of the dead-letter queue) puts them in one pool, so the silver
tables and the DLQ share one. A hand restore (``restore_delta_table``, any table, chosen
in its config) claims no pool: maintenance skips a table a restore run is working on.

**Observations, not materialisations.** Compaction, VACUUM and a checkpoint change no
row; a purge removes only partitions past retention. A materialisation would tell
Dagster the table has new data: declarative automation would re-run what reads it and
the asset page would show maintenance as its last update. An ``AssetObservation`` puts
the numbers (files, bytes, versions kept, duration, purged partitions) on the asset's
page and plots without claiming new data.

**Retention from the contracts.** Each daily source's contract says, in its ``slaProperties``:
``bronze_raw_text_retention_days`` (bronze ``_rescued_data`` nulled), ``dlq_retention_days``
(its dead-letter rows deleted), ``silver_retention_days`` (its silver partitions and the
bronze ones under them deleted), and optionally ``rollback_window_days`` (a longer window
than ``FOODOPS_ROLLBACK_WINDOW_DAYS`` for its tables). A key left out keeps that data.
"""

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import Field

from ..automation.retries import replace_op
from ..contracts import Contract
from ..lakehouse import maintenance as lake
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.tables import DEAD_LETTER_QUEUE, SILVER_BY_SOURCE, TABLES, TableRef
from ..settings import ENV_ROLLBACK_WINDOW_DAYS, ENV_VACUUM_RETENTION_HOURS, Settings
from .restore import RESTORE_JOB

MAINTENANCE_JOB = "lake_maintenance"
POOL_PREFIX = "lake/"

# the contract keys (``slaProperties``, in days) this module reads, through Contract.sla_value
RAW_TEXT_RETENTION = "bronze_raw_text_retention_days"
DLQ_RETENTION = "dlq_retention_days"
SILVER_RETENTION = "silver_retention_days"
ROLLBACK_WINDOW = "rollback_window_days"
RAW_TEXT_COLUMN = "_rescued_data"

# what a step writes besides its own asset's table: silver writes its source's dead letters
ALSO_WRITES: dict[str, tuple[str, ...]] = {
    silver.name: (DEAD_LETTER_QUEUE.name,) for silver in SILVER_BY_SOURCE.values()
}
# the DLQ replay moves rows between the silver tables and the DLQ
DLQ_REPLAY_WRITES = (*(t.name for t in SILVER_BY_SOURCE.values()), DEAD_LETTER_QUEUE.name)
_IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class PolicyError(ValueError):
    """A retention or window that maintenance refuses; the message names where to fix it."""


# -- pools: who writes what -----------------------------------------------------------------


def write_pools(
    assets: Iterable[Any], other_writers: Iterable[Iterable[str]] = ()
) -> dict[str, str]:
    """table -> concurrency pool. Tables written by one step share a pool (the connected
    parts of the graph "step writes table"), so holding a pool excludes every writer of
    each of its tables."""
    parent = {name: name for name in TABLES}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for written in [*map(_tables_written, assets), *map(list, other_writers)]:
        for a, b in zip(written, written[1:], strict=False):
            parent[root(a)] = root(b)
    members: dict[str, list[str]] = {}
    for name in TABLES:
        members.setdefault(root(name), []).append(name)
    return {name: POOL_PREFIX + "+".join(sorted(members[root(name)])) for name in sorted(TABLES)}


def with_write_pools(assets: Sequence[Any], pools: Mapping[str, str]) -> list[Any]:
    """The assets, every step that writes a table claiming that table's pool."""
    result = []
    for asset in assets:
        written = _tables_written(asset)
        result.append(replace_op(asset, pool=pools[written[0]]) if written else asset)
    return result


def _tables_written(asset: Any) -> list[str]:
    if not (isinstance(asset, dg.AssetsDefinition) and asset.is_executable):
        return []
    own = [k.path[-1] for k in asset.keys if k.path[-1] in TABLES]
    return sorted({*own, *(t for name in own for t in ALSO_WRITES.get(name, ()))})


# -- policies: what to keep, from the settings and the contracts -----------------------------


@dataclass(frozen=True)
class TablePolicy:
    """How long one table keeps what, and where each number comes from."""

    table: TableRef
    window_days: int
    window_from: str  # the setting or contract key the window comes from
    retention_hours: int | None  # FOODOPS_VACUUM_RETENTION_HOURS; None: the window
    silver_days: tuple[int, str] | None = None  # (days, contract key) partitions deleted after
    raw_text_days: tuple[int, str] | None = None
    dlq_days: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # by source

    def plan(self, today: dt.date) -> lake.Plan:
        window_hours = self.window_days * 24
        retention = window_hours if self.retention_hours is None else self.retention_hours
        if retention < window_hours:
            raise PolicyError(
                f"{self.table.name}: {ENV_VACUUM_RETENTION_HOURS}={self.retention_hours} is "
                f"shorter than its rollback window of {self.window_days} days "
                f"({self.window_from}): VACUUM would delete files a restore inside the window "
                f"needs. Raise {ENV_VACUUM_RETENTION_HOURS} to at least {window_hours}, or "
                "unset it"
            )

        def before(days: int) -> dt.date:
            return today - dt.timedelta(days=days)

        return lake.Plan(
            window_hours=window_hours,
            retention_hours=retention,
            drop_before=(
                {None: before(self.silver_days[0])}
                if self.silver_days
                else {s: before(d) for s, (d, _) in self.dlq_days.items()}
            ),
            null_before=(
                {RAW_TEXT_COLUMN: before(self.raw_text_days[0])} if self.raw_text_days else {}
            ),
        )

    def retention_metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rollback_window_days": self.window_days}
        out["rollback_window_from"] = self.window_from
        if self.silver_days:
            out["partitions_kept_days"] = self.silver_days[0]
        if self.raw_text_days:
            out["raw_text_kept_days"] = self.raw_text_days[0]
        for source, (days, _) in sorted(self.dlq_days.items()):
            out[f"dead_letters_kept_days/{source}"] = days
        return out


def table_policies(contracts: Mapping[str, Contract], settings: Settings) -> dict[str, TablePolicy]:
    """Every table's policy. Raises :class:`PolicyError` for a retention the contracts must
    not ask for (the code location then fails to load, naming the contract and the key)."""
    sources = {s: (TABLES[f"{s}_raw"], t) for s, t in SILVER_BY_SOURCE.items()}
    windows: dict[str, tuple[int, str]] = {}
    policies: dict[str, dict[str, Any]] = {}

    def window_for(names: Iterable[str], contract: Contract) -> None:
        days = _days(contract, ROLLBACK_WINDOW, minimum=1)
        for name in names:
            if days and days[0] > windows.get(name, (settings.rollback_window_days, ""))[0]:
                windows[name] = days

    for source, (bronze, silver) in sources.items():
        contract = contracts[source]
        silver_days = _days(contract, SILVER_RETENTION, minimum=1)
        if silver_days and silver_days[0] < settings.automation_lookback_days:
            raise PolicyError(
                f"{silver_days[1]} = {silver_days[0]} is shorter than "
                f"FOODOPS_AUTOMATION_LOOKBACK_DAYS={settings.automation_lookback_days}: "
                "declarative automation could re-run partitions whose inputs were purged. "
                f"Keep silver at least {settings.automation_lookback_days} days"
            )
        policies[bronze.name] = {
            "silver_days": silver_days,
            "raw_text_days": _days(contract, RAW_TEXT_RETENTION, minimum=1),
        }
        policies[silver.name] = {"silver_days": silver_days}
        dlq = _days(contract, DLQ_RETENTION, minimum=1)
        if dlq:
            policies.setdefault(DEAD_LETTER_QUEUE.name, {"dlq_days": {}})["dlq_days"][source] = dlq
        window_for((bronze.name, silver.name, DEAD_LETTER_QUEUE.name), contract)
    for source in ("restaurants", "dishes"):
        if source in contracts:
            window_for((source,), contracts[source])

    default_from = f"{ENV_ROLLBACK_WINDOW_DAYS}={settings.rollback_window_days}"
    return {
        name: TablePolicy(
            table=table,
            window_days=windows.get(name, (settings.rollback_window_days,))[0],
            window_from=windows[name][1] if name in windows else default_from,
            retention_hours=settings.vacuum_retention_hours,
            **policies.get(name, {}),
        )
        for name, table in TABLES.items()
    }


def _days(contract: Contract, key: str, minimum: int) -> tuple[int, str] | None:
    """(days, where) of a retention key of the contract's SLA; None when it does not say."""
    value = contract.sla_value(key, None)
    where = f"slaProperties {key} of {contract.path or contract.name}"
    if value is None:
        return None
    if int(value) != value or value < minimum:
        raise PolicyError(f"{where} is {value!r}: use a whole number of days, at least {minimum}")
    return int(value), where


# -- the job -------------------------------------------------------------------------------


class MaintainTableConfig(dg.Config):
    dry_run: bool = Field(default=False, description="report what would be done, change nothing")
    selected: bool = Field(default=True, description="false: leave this table alone this run")


class LakeMaintenanceConfig(dg.Config):
    """The run config of ``lake_maintenance`` (mapped onto each table's op)."""

    dry_run: bool = Field(
        default=False, description="report what would be purged, compacted and vacuumed"
    )
    tables: list[str] = Field(
        default=[], description=f"only these tables (default: all of {', '.join(TABLES)})"
    )


@dg.config_mapping
def _per_table(config: LakeMaintenanceConfig) -> dict[str, Any]:
    unknown = sorted(set(config.tables) - set(TABLES))
    if unknown:
        raise ValueError(f"unknown table(s) {', '.join(unknown)}; use any of: {', '.join(TABLES)}")
    return {
        "ops": {
            _op_name(name): {
                "config": {
                    "dry_run": config.dry_run,
                    "selected": not config.tables or name in config.tables,
                }
            }
            for name in TABLES
        }
    }


def _op_name(table: str) -> str:
    return f"maintain_{table}"


def _maintain_op(policy: TablePolicy, pool: str | None) -> dg.OpDefinition:
    name = policy.table.name

    @dg.op(
        name=_op_name(name),
        pool=pool,
        description=(
            f"Purge {name} past retention, compact it, vacuum what no restore inside its "
            f"{policy.window_days}-day rollback window needs, checkpoint it."
        ),
        tags={"foodops/table": name},
    )
    def _maintain(
        context: dg.OpExecutionContext, config: MaintainTableConfig, lakehouse: LakehouseResource
    ) -> dg.Output:
        store = lakehouse.store
        if not config.selected:
            return dg.Output(None, metadata={"skipped": "not selected in this run"})
        if not store.exists(policy.table):
            context.log.info(f"{name} is not materialised yet: nothing to maintain")
            return dg.Output(None, metadata={"skipped": "table not materialised"})
        restoring = _tables_being_restored(context.instance)
        if name in restoring:
            context.log.warning(
                f"{name} is being restored by run {restoring[name]}: left alone this time"
            )
            return dg.Output(None, metadata={"skipped": f"restore run {restoring[name]}"})
        now = dt.datetime.now(dt.UTC)
        try:
            plan = policy.plan(now.date())
            report = lake.maintain(
                store,
                policy.table,
                plan,
                now=now,
                dry_run=config.dry_run,
                commit_metadata={"dagster_run_id": context.run.run_id, "dagster_asset": name},
            )
        except (PolicyError, lake.RetentionTooShort) as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        metadata = {
            **report_metadata(report),
            **policy.retention_metadata(),
            "dagster/uri": store.uri(policy.table),
        }
        context.log.info(summary(report))
        if not config.dry_run:
            context.log_event(
                dg.AssetObservation(asset_key=name, description=summary(report), metadata=metadata)
            )
        return dg.Output(None, metadata=metadata)

    return _maintain


def lake_maintenance_job(
    policies: Mapping[str, TablePolicy], pools: Mapping[str, str] | None = None
) -> dg.JobDefinition:
    ops = [_maintain_op(p, (pools or {}).get(name)) for name, p in policies.items()]

    @dg.job(
        name=MAINTENANCE_JOB,
        config=_per_table,
        description=(
            "Every table: purge what its contract no longer keeps, compact small files, "
            "VACUUM what no restore inside the rollback window needs, checkpoint. Each "
            "table's op waits while a step writing that table runs (its pool)."
        ),
        tags={"foodops/operation": "maintenance"},
    )
    def lake_maintenance():
        for op in ops:
            op()

    return lake_maintenance


def _tables_being_restored(instance: dg.DagsterInstance) -> dict[str, str]:
    """table -> run id of every restore_delta_table run not yet finished."""
    runs = instance.get_runs(dg.RunsFilter(job_name=RESTORE_JOB, statuses=_IN_PROGRESS))
    out = {}
    for run in runs:
        config = (run.run_config or {}).get("ops", {}).get("restore_delta_table_op", {})
        table = (config.get("config") or {}).get("table")
        if table:
            out[table] = run.run_id
    return out


# -- reporting -----------------------------------------------------------------------------


def report_metadata(report: lake.Report) -> dict[str, Any]:
    purged = report.purges
    return {
        "dry_run": report.dry_run,
        "files_before": report.before.files,
        "files_after": report.after.files,
        "bytes_before": report.before.bytes,
        "bytes_after": report.after.bytes,
        "stored_files_before": report.before.stored_files,
        "stored_files_after": report.after.stored_files,
        "stored_bytes_before": report.before.stored_bytes,
        "stored_bytes_after": report.after.stored_bytes,
        "compacted_files": report.compacted_files,
        "vacuumed_files": report.vacuumed_files,
        "vacuumed_bytes": report.vacuumed_bytes,
        "versions_kept": report.versions_kept,
        "oldest_restorable_version": report.oldest_restorable_version,
        "delta_version_before": report.version_before,
        "delta_version": report.version_after,
        "retention_hours": report.retention_hours,
        "duration_seconds": report.duration_seconds,
        "seconds_by_step": dg.MetadataValue.json(report.seconds),
        "purged_rows": sum(p.rows for p in purged),
        "purges": dg.MetadataValue.json(
            [
                {
                    "operation": p.operation,
                    "partitions": p.partitions,
                    "rows": p.rows,
                    "delta_version": p.version,
                }
                for p in purged
            ]
        ),
        "table_properties_set": dg.MetadataValue.json(report.properties_set),
    }


def summary(report: lake.Report) -> str:
    purged = "; ".join(
        f"{p.operation}: {p.rows} row(s) in {len(p.partitions)} partition(s)" for p in report.purges
    )
    return (
        f"{'DRY RUN: ' if report.dry_run else ''}{report.table}: files "
        f"{report.before.files} -> {report.after.files}, on storage "
        f"{report.before.stored_bytes:,} -> {report.after.stored_bytes:,} bytes "
        f"({report.vacuumed_files} vacuumed), versions {report.oldest_restorable_version}.."
        f"{report.version_after} restorable ({report.versions_kept} kept)"
        + (f"; purged {purged}" if purged else "")
    )
