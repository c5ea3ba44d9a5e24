"""The ``lake_maintenance`` job: per table, purge what is past retention, compact, vacuum,
checkpoint (``lakehouse/maintenance.py`` does the Delta work), and report it on the table's
asset as an observation.

**One op per table; a table being written is left alone, nobody waits.** Before it
touches its table, each op asks the Dagster instance for the runs in progress (queued,
starting, started, canceling) and what they will write (:func:`writers_in_progress`): the
assets a run planned to materialise (silver also writes its source's rows of the
dead-letter queue), the silver tables and the DLQ for a ``dlq_replay`` run, the table a
``restore_delta_table`` run restores. If one of them writes the table, the op skips it
and says so (an observation on the asset: ``skipped``, the run, why); the other tables go
on. There is no lock: writers never wait for maintenance nor for each other (two runs of
different partitions, or of the DLQ's sources, write side by side), and a run that died
without being marked so costs only skipped maintenance of its tables, which names it.
A writer that starts after the check meets maintenance in Delta's optimistic commits
(``lakehouse/maintenance.py``): the writer writes again, a losing maintenance step is
reported and done next time.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import Field

from ..contracts import Contract
from ..lakehouse import maintenance as lake
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.tables import DEAD_LETTER_QUEUE, SILVER_BY_SOURCE, TABLES, TableRef
from ..settings import ENV_ROLLBACK_WINDOW_DAYS, ENV_VACUUM_RETENTION_HOURS, Settings
from .dlq_replay import DLQ_REPLAY_JOB
from .restore import RESTORE_JOB

MAINTENANCE_JOB = "lake_maintenance"

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


# -- who is writing what -------------------------------------------------------------------


@dataclass(frozen=True)
class Writer:
    """A run in progress that writes a table."""

    run_id: str
    job_name: str
    status: str
    why: str  # what in the run writes the table

    def describe(self) -> str:
        return f"run {self.run_id} ({self.job_name}, {self.status.lower()}) {self.why}"


def writers_in_progress(instance: dg.DagsterInstance) -> dict[str, Writer]:
    """table -> a run in progress (queued to canceling) that will write it."""
    out: dict[str, Writer] = {}
    for run in instance.get_runs(dg.RunsFilter(statuses=_IN_PROGRESS)):
        for table, why in tables_written_by(instance, run).items():
            out.setdefault(table, Writer(run.run_id, run.job_name, run.status.value, why))
    return out


def tables_written_by(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict[str, str]:
    """table -> why, for every table ``run`` writes: the assets it planned to materialise
    (the planned-materialisation events Dagster logs when it creates a run; its asset
    selection when there are none) and what the operator jobs write."""
    if run.job_name == RESTORE_JOB:
        config = (run.run_config or {}).get("ops", {}).get("restore_delta_table_op", {})
        table = (config.get("config") or {}).get("table")
        return {table: "restores it"} if table else {}
    if run.job_name == DLQ_REPLAY_JOB:
        return {t: "replays dead letters into silver" for t in DLQ_REPLAY_WRITES}
    planned = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    keys = {r.asset_key for r in planned if r.asset_key} or set(run.asset_selection or ())
    out: dict[str, str] = {}
    for name in sorted(k.path[-1] for k in keys):
        if name in TABLES:
            out.setdefault(name, f"materialises {name}")
        for other in ALSO_WRITES.get(name, ()):
            out.setdefault(other, f"materialises {name}, which writes its rows of {other}")
    return out


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


def _maintain_op(policy: TablePolicy) -> dg.OpDefinition:
    name = policy.table.name

    @dg.op(
        name=_op_name(name),
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
        writer = writers_in_progress(context.instance).get(name)
        if writer is not None:
            why = f"{writer.describe()}: left alone this time"
            context.log.warning(
                f"{name}: {why}. If that run died without being marked so, terminate it in "
                "the UI (force termination) and the next maintenance takes the table."
            )
            skipped = {
                "skipped": why,
                "skipped_for_run": dg.MetadataValue.dagster_run(writer.run_id),
                "skipped_because": writer.why,
            }
            if not config.dry_run:
                context.log_event(
                    dg.AssetObservation(asset_key=name, description=why, metadata=skipped)
                )
            return dg.Output(None, metadata=skipped)
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


def lake_maintenance_job(policies: Mapping[str, TablePolicy]) -> dg.JobDefinition:
    ops = [_maintain_op(p) for p in policies.values()]

    @dg.job(
        name=MAINTENANCE_JOB,
        config=_per_table,
        description=(
            "Every table: purge what its contract no longer keeps, compact small files, "
            "VACUUM what no restore inside the rollback window needs, checkpoint. A table "
            "that a run in progress writes is skipped (the observation names the run)."
        ),
        tags={"foodops/operation": "maintenance"},
    )
    def lake_maintenance():
        for op in ops:
            op()

    return lake_maintenance


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
        # steps a writer's commit beat (it started after the check): done at the next run
        "lost_races": dg.MetadataValue.json(
            [
                {"step": r.step, "planned_on_version": r.read_version, "beaten_by": r.beaten_by}
                for r in report.lost_races
            ]
        ),
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
        + "".join(f"; {r.describe()}: done at the next run" for r in report.lost_races)
    )
