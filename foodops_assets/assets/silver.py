"""Silver: validated, deduplicated records; rejects into the dead-letter queue.

Each silver asset audits before it publishes. It validates the bronze
partitions, runs its checks on the result, and only when every blocking
check passes writes the DLQ rows of its source and then the silver rows
(each one atomic Delta commit). When a circuit breaker trips, nothing is
written, the run fails, and consumers keep reading the last good version.

``dead_letter_queue`` is one Delta table shared by all sources. It is
written by the silver step of each source (replacing only that source's rows
of the partition), which reports the DLQ materialisation with its own
metadata, so the table's history in Dagster shows every write.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import Field
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..checks import names, published, quality
from ..checks.published import Fingerprint
from ..contracts import Contract
from ..contracts.spark import spark_type
from ..lakehouse.delta import TableNotMaterialized, WriteResult
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.spark import SparkResource
from ..lakehouse.tables import DEAD_LETTER_QUEUE, DISHES, RESTAURANTS, SILVER_BY_SOURCE, TableRef
from ..lakehouse.writers.base import Rows
from ..transforms.references import attach_references, lookup_columns
from ..transforms.silver import (
    BRONZE,
    DLQ,
    DUPLICATE,
    SILVER,
    Validated,
    counts,
    dlq_counts_by_rule,
    identity_sum,
    silver_schema,
    validate,
)
from .common import (
    KINDS,
    NO_RETRIES,
    PLATFORM_OWNER,
    StepRetries,
    commit_metadata,
    contract_definition_metadata,
    contract_descriptions,
    contract_metadata,
    identity_lineage,
    partition_label,
    run_window,
    table_schema,
    trailing_days,
)
from .fold import (
    BRONZE_VERSION_READ,
    FOLD,
    FOLDED_FILES,
    FULL,
    INGEST_MODE,
    SilverFold,
    silver_fold,
)
from .step import CircuitBreakerTripped, Step, audit, materialization

DLQ_DESCRIPTIONS = {
    "source": "Landing source of the rejected record (orders, deliveries, reviews).",
    "partition_date": "Partition the record was landed for.",
    "raw_record": "The record as landed (the original line when it did not parse), for replay.",
    "failed_rules": "Every contract rule the record breaks.",
    "parse_error": "Why the line did not parse cleanly, when it did not.",
    "source_file": "Landing file the record came from.",
    "source_line": "1-based line of the record in its landing file.",
    "ingested_at": "When the record's landing file landed (UTC).",
}


class SilverConfig(dg.Config):
    """Run-time overrides of the contract's thresholds (launchpad / run config)."""

    max_dlq_rate: float | None = Field(
        default=None, description="override the contract's sla.max_dlq_rate (0..1)"
    )
    max_orphan_rate: float | None = Field(
        default=None, description="override the contract's sla.max_orphan_rate (0..1)"
    )


ReferenceCheck = Callable[
    [DataFrame, SparkSession, LakehouseResource, SilverConfig, Contract], dg.AssetCheckResult
]


@dataclass(frozen=True)
class SilverSource:
    contract: Contract
    bronze: TableRef
    silver: TableRef
    reference_deps: tuple[str, ...] = ()
    reference_check: tuple[str, ReferenceCheck] | None = None
    extra_metadata: dict[str, Any] = field(default_factory=dict)


def silver_asset(
    src: SilverSource, partitions_def: dg.PartitionsDefinition, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    contract = src.contract
    key = ", ".join(contract.primary_key)

    @dg.asset(
        name=src.silver.name,
        group_name="silver",
        description=(
            f"Validated {contract.name}, deduplicated on {key}; rejects go to dead_letter_queue. "
            f"{contract.description}"
        ),
        owners=[contract.owner],
        kinds=KINDS,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[src.bronze.name, *src.reference_deps, *reference_deps(contract)],
        check_specs=_check_specs(src),
        metadata={
            **contract_definition_metadata(contract),
            "dagster/column_schema": table_schema(
                silver_schema(contract), contract_descriptions(contract)
            ),
        },
        tags={"layer": "silver", "source": contract.name},
        retry_policy=retries.policy,
    )
    @retries.wrap
    def _silver(
        context: dg.AssetExecutionContext,
        config: SilverConfig,
        spark: SparkResource,
        lakehouse: LakehouseResource,
    ):
        step = Step.start(context, spark, lakehouse, config)
        bronze_version = lakehouse.store.version(src.bronze)
        bronze = lakehouse.read(step.session, src.bronze, step.where)
        # a file folded into bronze in this run is folded into silver alone (fold.py)
        fold, why = silver_fold(
            context, step.session, lakehouse, contract, src.bronze, src.silver, step.days, bronze
        )
        context.log.info(f"{src.silver.name} {partition_label(step.days)}: {why}")
        if fold:
            # the few lines a fold re-classifies: one scan of the day finds them, the
            # classification and the bronze counts reuse them
            bronze = step.cache(fold.bronze)
        bronze, lookups = _attach_references(step, contract, bronze)
        run = _validate(step, contract, bronze, collect=fold is not None)
        try:
            totals = _fold_totals(step, src, run, fold) if fold else _totals(run)
            checks, orphans = _audit(step, src, run, lookups, totals)
            dlq_write = step.write(
                DEAD_LETTER_QUEUE,
                run.rejected.where(fold.from_files()) if fold else run.rejected,
                "dead-letter queue of every source",
                where=_dlq_where(step, contract),
                rows_where=fold.dlq_rows if fold else None,
            )
            yield from _dlq_materializations(step, src, totals, dlq_write)
            write = step.write(
                src.silver,
                run.valid_rows,
                f"silver {contract.name}",
                contract=contract,
                rows_where=fold.silver_rows if fold else None,
            )
            if fold:
                # the day's rejects per rule, from the DLQ as it now is
                run.rule_counts = _rule_counts(
                    lakehouse.read(step.session, DEAD_LETTER_QUEUE, _dlq_where(step, contract))
                )
            # nothing reads the classified rows any more: the heap is the read-back's
            run.classified.unpersist(blocking=True)
            checks.append(_published_check_or_rollback(step, src, run, write, dlq_write, fold))
            yield _silver_materialization(
                src,
                run,
                write,
                dlq_write,
                checks,
                orphans,
                totals,
                {
                    BRONZE_VERSION_READ: bronze_version if bronze_version is not None else -1,
                    INGEST_MODE: FOLD if fold else FULL,
                    "ingest_reason": why,
                    **(
                        {
                            FOLDED_FILES: dg.MetadataValue.json(list(fold.files)),
                            "fold/bronze_rows": sum(run.bronze_by_day.values()),
                            "fold/silver_rows": sum(run.by_dest[SILVER].values()),
                            "fold/dlq_rows": sum(run.by_dest[DLQ].values()),
                            "fold/keys": len(fold.keys),
                            "dagster/row_count": sum(totals[SILVER].values()),
                        }
                        if fold
                        else {}
                    ),
                },
            )
        except _RolledBack as rolled_back:
            yield from checks
            yield rolled_back.check
            raise rolled_back.failure from None
        except CircuitBreakerTripped as tripped:
            yield from tripped.checks
            raise tripped.failure(src.silver, step.days) from None
        finally:
            # freed now, not whenever the JVM gets to it: the next step needs the heap
            run.classified.unpersist(blocking=True)
            step.release()

    return _silver


def _check_specs(src: SilverSource) -> list[dg.AssetCheckSpec]:
    """The silver step's blocking checks: before the write, and on the published tables."""
    contract = src.contract
    described = {
        names.NOT_EMPTY: "Circuit breaker: every partition has at least one valid record.",
        names.DLQ_RATE: "Share of landed records rejected to the DLQ stays under the contract's max_dlq_rate.",
        names.UNIQUE_KEY: f"{', '.join(contract.primary_key)} is unique within each partition.",
        names.CONSERVATION: "bronze rows = silver rows + DLQ rows + duplicates dropped, per partition.",
        names.CONTRACT: f"The {contract.name} data contract, validated by pandera.",
        names.PUBLISHED_CONSISTENCY: (
            "Circuit breaker after the write, on the published tables: every bronze line "
            "is once in silver or the DLQ (or a dropped duplicate), nothing from nowhere, "
            "unique keys. On failure the step restores silver and the DLQ to the versions "
            "before its write; the metadata says which version is live and why."
        ),
    }
    if src.reference_check is not None:
        described[src.reference_check[0]] = (
            "Referential integrity to the reference tables, within the contract's tolerance."
        )
    for ref in contract.references:
        described[names.known_reference(ref.source)] = (
            f"Every {contract.name} record points to a known {ref.source} record "
            f"({SILVER_BY_SOURCE[ref.source].name} of its day and the "
            f"{ref.lookback_days} before). Orphans are kept, counted and sampled; the "
            "check trips when a partition's orphan share exceeds the contract's "
            "max_orphan_rate (the tolerance for late data)."
        )
    return [
        dg.AssetCheckSpec(name, asset=src.silver.name, blocking=True, description=text)
        for name, text in described.items()
    ]


@dataclass
class _Sorted:
    """The run's bronze records sorted into silver, the DLQ and dropped duplicates."""

    validated: Validated
    classified: DataFrame  # cached: every count and both writes read it
    by_dest: dict[str, dict]  # destination -> day -> rows
    conflicts: int
    fingerprints: dict[str, Fingerprint]
    bronze_by_day: dict
    bronze_fingerprint: Fingerprint
    valid_rows: Rows  # as the writer commits them (Arrow, collected once, for the arrow writer)
    rule_counts: dict[str, int]

    @property
    def valid(self) -> DataFrame:
        return self.validated.valid

    @property
    def rejected(self) -> DataFrame:
        return self.validated.rejected


def _attach_references(
    step: Step, contract: Contract, bronze: DataFrame
) -> tuple[DataFrame, dict[str, tuple[DataFrame, list, list]]]:
    """Bronze with the looked-up columns of the records it references, and the lookups."""
    lookups = _reference_lookups(step, contract, bronze)
    if lookups:
        bronze = attach_references(
            bronze, contract, {source: df for source, (df, _, _) in lookups.items()}
        )
    return bronze, lookups


def _validate(step: Step, contract: Contract, bronze: DataFrame, collect: bool = False) -> _Sorted:
    """The bronze rows classified and counted; ``collect``: the valid rows come to this
    process as Arrow whatever the writer (a fold's few rows: delta-rs commits them anyway,
    and the checks on Arrow cost no Spark job)."""
    start, end = run_window(step.context)
    classified = validate(bronze, contract, start, end).classified.persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        validated = Validated(classified, contract)
        by_dest, conflicts, fingerprints = _counts_by_day(validated)
        bronze_by_day, bronze_fingerprint = _bronze_counts(bronze)
        # views of the cached classified rows (a cache of their own cost more to fill, at 1M
        # orders, than the checks saved by it). The rows as the writer will commit them: with
        # the arrow writer they are collected here once, the contract and unique-key checks
        # run on exactly those rows in this process (pandera.polars and Arrow: ~0.2 s at 1M
        # orders, against ~5 s of Spark jobs) and the write reuses them
        valid_rows = (
            validated.valid.toArrow() if collect else step.lakehouse.rows_for_write(validated.valid)
        )
        rule_counts = _rule_counts(validated.rejected)
    except BaseException:
        classified.unpersist(blocking=True)
        raise
    return _Sorted(
        validated,
        classified,
        by_dest,
        conflicts,
        fingerprints,
        bronze_by_day,
        bronze_fingerprint,
        valid_rows,
        rule_counts,
    )


def _totals(run: _Sorted) -> dict[str, dict]:
    """Rows per day of bronze and of each destination, as the partitions will hold them."""
    return {BRONZE: run.bronze_by_day, **run.by_dest}


def _fold_totals(step: Step, src: SilverSource, run: _Sorted, fold: SilverFold) -> dict:
    """The day's rows after the fold: the rows the fold leaves alone, counted in the
    tables as they are, plus the re-classified ones."""
    lakehouse, session, day = step.lakehouse, step.session, fold.day
    log = lakehouse.store.column_stats(src.bronze, step.where)
    bronze = (
        log.rows if log is not None else lakehouse.read(session, src.bronze, step.where).count()
    )
    silver_kept, dlq_kept, dlq_new = counts(
        lakehouse.read(session, src.silver, step.where).where(~fold.of_keys()),
        lakehouse.read(session, DEAD_LETTER_QUEUE, _dlq_where(step, src.contract)).where(
            ~fold.from_files()
        ),
        run.rejected.where(fold.from_files()),
    )
    silver = silver_kept + run.by_dest[SILVER].get(day, 0)
    dlq = dlq_kept + dlq_new
    return {
        BRONZE: {day: bronze},
        SILVER: {day: silver},
        DLQ: {day: dlq},
        DUPLICATE: {day: bronze - silver - dlq},
    }


def _rule_counts(rejected: DataFrame) -> dict[str, int]:
    return {r["rule"]: r["records"] for r in dlq_counts_by_rule(rejected).collect()}


def _audit(
    step: Step, src: SilverSource, run: _Sorted, lookups: dict, totals: dict
) -> tuple[list[dg.AssetCheckResult], dict[str, int]]:
    """The checks before the write, and orphans per reference; trips the circuit breaker
    (nothing written) when one fails. The non-empty and DLQ-rate checks judge the days as
    they will be (``totals``); the others the rows this step classified."""
    contract, config = src.contract, step.config
    start, end = run_window(step.context)
    max_dlq_rate = _threshold(config.max_dlq_rate, contract, "max_dlq_rate", 0.1)
    by_dest = run.by_dest
    checks = [
        quality.not_empty(totals[SILVER], step.days),
        quality.dlq_rate(totals[BRONZE], totals[DLQ], max_dlq_rate),
        quality.unique_key(run.valid_rows, contract.primary_key),
        quality.conservation(run.bronze_by_day, by_dest[SILVER], by_dest[DLQ], by_dest[DUPLICATE]),
        quality.contract(run.valid_rows, contract, start, end),
    ]
    if src.reference_check is not None:
        checks.append(
            src.reference_check[1](run.valid, step.session, step.lakehouse, config, contract)
        )
    orphans = {}
    for ref in contract.references:
        check = _known_reference(step, contract, run.validated, ref.source, lookups[ref.source])
        orphans[f"orphans/{ref.source}"] = check.metadata["orphans"].value
        checks.append(check)
    audit(checks, f"Nothing was written: {_live_version(step.lakehouse, src.silver)}.")
    return checks, orphans


def _known_reference(
    step: Step, contract: Contract, validated: Validated, source: str, lookup: tuple
) -> dg.AssetCheckResult:
    _, upstream_days, missing = lookup
    by_day = {
        r["partition_date"]: (int(r["valid"]), int(r["orphans"] or 0))
        for r in validated.references_found(source).collect()
    }
    samples = [
        {**r.asDict(), "partition_date": r["partition_date"].isoformat()}
        for r in validated.orphans(source)
        .orderBy("partition_date", *contract.primary_key)
        .limit(10)
        .collect()
    ]
    tolerance = _threshold(step.config.max_orphan_rate, contract, "max_orphan_rate", 0.01)
    return quality.known_reference(
        contract,
        source,
        SILVER_BY_SOURCE[source].name,
        by_day,
        samples,
        tolerance,
        upstream_days,
        missing_partitions=missing,
    )


def _dlq_where(step: Step, contract: Contract) -> dict:
    """The DLQ rows this step owns: its source's rows of the run's days."""
    return {"partition_date": step.days, "source": [contract.name]}


def _dlq_materializations(
    step: Step, src: SilverSource, totals: dict, dlq_write: WriteResult
) -> list[dg.AssetMaterialization]:
    """The DLQ write reported on the dead_letter_queue asset, one event a day."""
    return [
        dg.AssetMaterialization(
            asset_key=DEAD_LETTER_QUEUE.name,
            partition=day.isoformat(),
            description=f"{src.contract.name} rejects of {day.isoformat()}",
            metadata={
                "source": src.contract.name,
                "dlq_rows": totals[DLQ].get(day, 0),
                "delta_version": dlq_write.version,
                "table_uri": dg.MetadataValue.path(dlq_write.table_uri),
                "dagster/uri": dlq_write.table_uri,
                "written_by": src.silver.name,
                **contract_metadata(src.contract),
            },
        )
        for day in step.days
    ]


def _silver_materialization(
    src: SilverSource,
    run: _Sorted,
    write: WriteResult,
    dlq_write: WriteResult,
    checks: list[dg.AssetCheckResult],
    orphans: dict[str, int],
    totals: dict,
    extra: dict,
) -> dg.MaterializeResult:
    contract, by_dest = src.contract, totals
    return materialization(
        write,
        run.valid.schema,
        contract_descriptions(contract),
        identity_lineage(src.bronze.name, contract.column_names),
        {
            **contract_metadata(contract),
            "bronze_rows": sum(totals[BRONZE].values()),
            "silver_rows": sum(by_dest[SILVER].values()),
            "dlq_rows": sum(by_dest[DLQ].values()),
            "duplicates_dropped": sum(by_dest[DUPLICATE].values()),
            "conflicting_duplicates": run.conflicts,
            "conservation_holds": checks[3].passed,
            "dlq_rate": float(checks[1].metadata["dlq_rate"].value),
            "dlq_delta_version": dlq_write.version,
            **{f"dlq_rule/{rule}": run.rule_counts.get(rule, 0) for rule in contract.rule_names},
            **orphans,
            **src.extra_metadata,
            **extra,
        },
        checks,
    )


def reference_deps(contract: Contract) -> list[dg.AssetDep]:
    """A contract's references as dependencies on the referenced silver tables: a
    record of day D is looked up in partitions D-lookback_days..D (a partition
    mapping, so Dagster shows and automates the dependency)."""
    return [
        dg.AssetDep(
            SILVER_BY_SOURCE[ref.source].name,
            partition_mapping=trailing_days(ref.lookback_days + 1),
        )
        for ref in contract.references
    ]


def _reference_lookups(
    step: Step, contract: Contract, bronze: DataFrame
) -> dict[str, tuple[DataFrame, list, list]]:
    """source -> (silver rows to look records up in, their partitions, partitions without rows).

    The partitions are the ones Dagster's partition mapping names for this run
    (the union of D-lookback_days..D over the run's days)."""
    out = {}
    for ref in contract.references:
        table = SILVER_BY_SOURCE[ref.source]
        upstream_days = step.input_days(table)
        columns = lookup_columns(contract, ref.source)
        try:
            df = step.lakehouse.read(step.session, table, {"partition_date": upstream_days}).select(
                *columns
            )
            present = {r[0] for r in df.select("partition_date").distinct().collect()}
            missing = [d for d in upstream_days if d not in present]
        except TableNotMaterialized:
            # same columns, no rows: every record is an orphan, and the check says why
            own = {
                str(r.params["reference_column"]): r.column
                for r in contract.rules
                if r.check == "not_before_reference" and r.params["reference"] == ref.source
            }
            df = bronze.limit(0).select(
                F.col(ref.key),
                F.col("partition_date"),
                *[
                    F.lit(None).cast(spark_type(contract.column(own[c]))).alias(c)
                    for c in columns[2:]
                ],
            )
            missing = None  # the whole table
        out[ref.source] = (df, upstream_days, missing)
    return out


def _published_check_or_rollback(
    step: Step,
    src: SilverSource,
    run: _Sorted,
    write: WriteResult,
    dlq_write: WriteResult,
    fold: SilverFold | None = None,
) -> dg.AssetCheckResult:
    """Read the published partitions back (after a fold: the rows of its keys and files);
    on an inconsistency roll back every table this step wrote (newest write first) and fail
    the step, saying which version is live."""
    lakehouse, session, days = step.lakehouse, step.session, step.days
    dlq_where = _dlq_where(step, src.contract)
    bronze = lakehouse.read(session, src.bronze, step.where)
    silver = lakehouse.read(session, src.silver, step.where)
    dlq = lakehouse.read(session, DEAD_LETTER_QUEUE, dlq_where)
    if fold is not None:
        bronze = bronze.where(fold.from_files() | fold.of_keys())
        silver = silver.where(fold.of_keys())
        lineage = ["source_file", "source_line"]
        others = bronze.where(~fold.from_files()).select(*lineage)
        dlq = dlq.where(fold.from_files()).unionByName(
            dlq.where(~fold.from_files()).join(F.broadcast(others), lineage, "left_semi")
        )
    check = published.published_consistency(
        bronze,
        silver,
        dlq,
        src.contract.primary_key,
        partition_label(days),
        audited=published.Audited(
            bronze=run.bronze_fingerprint,
            duplicates=run.fingerprints[DUPLICATE],
            silver=run.fingerprints[SILVER],
        ),
    )
    if check.passed:
        return _with_metadata(
            check,
            {
                "live_version": write.version,
                "rolled_back_from": -1,
                "restored_to": -1,
                "reason": "the published tables passed every check",
            },
        )
    reason = f"{names.PUBLISHED_CONSISTENCY} failed: {check.description}"
    rollbacks = [
        lakehouse.store.rollback(
            table,
            table_write,
            where,
            reason=reason,
            commit_metadata=commit_metadata(step.context, table.name, days),
        )
        for table, table_write, where in (
            (src.silver, write, step.where),
            (DEAD_LETTER_QUEUE, dlq_write, dlq_where),
        )
    ]
    for rb in rollbacks:
        step.context.log.error(f"circuit breaker: {rb.action}")
    silver_rb = rollbacks[0].as_metadata()
    failed = _with_metadata(
        check,
        {
            "live_version": silver_rb["live_version"],
            "rolled_back_from": silver_rb["rolled_back_from"],
            "restored_to": silver_rb["restored_to"],
            "reason": reason,
            "rollbacks": dg.MetadataValue.json([rb.as_metadata() for rb in rollbacks]),
        },
    )
    failure = dg.Failure(
        description=(
            f"Circuit breaker tripped after the write of {src.silver.name} "
            f"{partition_label(days)}: {reason}. " + " ".join(rb.action + "." for rb in rollbacks)
        ),
        metadata={"failed_checks": names.PUBLISHED_CONSISTENCY},
        allow_retries=False,
    )
    raise _RolledBack(failed, failure)


def _with_metadata(check: dg.AssetCheckResult, extra: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=check.check_name,
        passed=check.passed,
        description=check.description,
        metadata={**check.metadata, **extra},
    )


class _RolledBack(Exception):
    """Carries the failed check result out of the write path, so it can be reported."""

    def __init__(self, check: dg.AssetCheckResult, failure: dg.Failure):
        super().__init__(str(failure))
        self.check = check
        self.failure = failure


def _live_version(lakehouse: LakehouseResource, table: TableRef) -> str:
    version = lakehouse.store.version(table)
    if version is None:
        return f"{table.name} does not exist yet"
    return f"readers stay on {table.name} version {version}"


def _threshold(override: float | None, contract: Contract, key: str, default: float) -> float:
    value = override if override is not None else contract.sla_value(key, default)
    if not 0 <= float(value) <= 1:
        raise dg.Failure(f"{key}={value!r} must be a share between 0 and 1", allow_retries=False)
    return float(value)


def _bronze_counts(bronze: DataFrame) -> tuple[dict, Fingerprint]:
    """Bronze rows per day, and the fingerprint of all of them (one pass)."""
    rows = (
        bronze.groupBy("partition_date")
        .agg(F.count(F.lit(1)).alias("n"), identity_sum().alias("lineage"))
        .collect()
    )
    return {r["partition_date"]: r["n"] for r in rows}, Fingerprint(
        sum(r["n"] for r in rows), int(sum(r["lineage"] or 0 for r in rows))
    )


def _counts_by_day(validated: Validated) -> tuple[dict[str, dict], int, dict[str, Fingerprint]]:
    """Rows per destination and day, the number of conflicting duplicates, and the
    fingerprint of each destination's rows (what the published check compares with)."""
    out: dict[str, dict] = {SILVER: {}, DLQ: {}, DUPLICATE: {}}
    conflicts = 0
    sums = {dest: [0, 0, 0] for dest in out}
    for r in validated.counts().collect():
        out[r["_dest"]][r["partition_date"]] = r["rows"]
        conflicts += int(r["conflicts"] or 0)
        for i, value in enumerate((r["rows"], r["lineage_sum"], r["keyed_sum"])):
            sums[r["_dest"]][i] += int(value or 0)
    return out, conflicts, {dest: Fingerprint(*v) for dest, v in sums.items()}


def orders_reference_check(
    valid: DataFrame,
    session: SparkSession,
    lakehouse: LakehouseResource,
    config: SilverConfig,
    contract: Contract,
) -> dg.AssetCheckResult:
    try:
        restaurants = lakehouse.read(session, RESTAURANTS)
        dishes = lakehouse.read(session, DISHES)
    except TableNotMaterialized:
        restaurants = dishes = None
    tolerance = _threshold(config.max_orphan_rate, contract, "max_orphan_rate", 0.01)
    return quality.known_restaurants_and_dishes(valid, restaurants, dishes, tolerance)


ORDERS_REFERENCE_CHECK = (names.KNOWN_RESTAURANTS_AND_DISHES, orders_reference_check)


def dead_letter_queue_spec(
    partitions_def: dg.PartitionsDefinition, sources: list[str]
) -> dg.AssetSpec:
    """The shared DLQ table. Written (and reported) by the silver step of each source."""
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("source", T.StringType()),
            T.StructField("partition_date", T.DateType()),
            T.StructField("raw_record", T.StringType()),
            T.StructField("failed_rules", T.ArrayType(T.StringType())),
            T.StructField("parse_error", T.StringType()),
            T.StructField("source_file", T.StringType()),
            T.StructField("source_line", T.LongType()),
            T.StructField("ingested_at", T.TimestampType()),
        ]
    )
    return dg.AssetSpec(
        key=DEAD_LETTER_QUEUE.name,
        group_name="silver",
        description=(
            "Every rejected record of every source, once, with the rules it broke and its raw "
            "text for replay. Written by the silver step of each source, which replaces only "
            "its own rows of the partition."
        ),
        owners=[PLATFORM_OWNER],
        kinds=KINDS,
        partitions_def=partitions_def,
        deps=sources,
        metadata={"dagster/column_schema": table_schema(schema, DLQ_DESCRIPTIONS)},
        tags={"layer": "silver"},
    )
