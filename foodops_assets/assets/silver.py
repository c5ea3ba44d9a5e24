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
from ..lakehouse.delta import TableNotMaterialized
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.spark import SparkResource
from ..lakehouse.tables import DEAD_LETTER_QUEUE, DISHES, RESTAURANTS, SILVER_BY_SOURCE, TableRef
from ..transforms.references import attach_references, lookup_columns
from ..transforms.silver import (
    DLQ,
    DUPLICATE,
    SILVER,
    Validated,
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
    run_days,
    run_window,
    table_schema,
    window_days,
    write_metadata,
)

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
        default=None, description="override the contract's SLA max_dlq_rate (0..1)"
    )
    max_orphan_rate: float | None = Field(
        default=None, description="override the contract's SLA max_orphan_rate (0..1)"
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
    specs = [
        dg.AssetCheckSpec(
            names.NOT_EMPTY,
            asset=src.silver.name,
            blocking=True,
            description="Circuit breaker: every partition has at least one valid record.",
        ),
        dg.AssetCheckSpec(
            names.DLQ_RATE,
            asset=src.silver.name,
            blocking=True,
            description="Share of landed records rejected to the DLQ stays under the contract's max_dlq_rate.",
        ),
        dg.AssetCheckSpec(
            names.UNIQUE_KEY,
            asset=src.silver.name,
            blocking=True,
            description=f"{key} is unique within each partition.",
        ),
        dg.AssetCheckSpec(
            names.CONSERVATION,
            asset=src.silver.name,
            blocking=True,
            description="bronze rows = silver rows + DLQ rows + duplicates dropped, per partition.",
        ),
        dg.AssetCheckSpec(
            names.CONTRACT,
            asset=src.silver.name,
            blocking=True,
            description=f"The {contract.name} data contract, validated by pandera.",
        ),
    ]
    specs.append(
        dg.AssetCheckSpec(
            names.PUBLISHED_CONSISTENCY,
            asset=src.silver.name,
            blocking=True,
            description=(
                "Circuit breaker after the write, on the published tables: every bronze line "
                "is once in silver or the DLQ (or a dropped duplicate), nothing from nowhere, "
                "unique keys. On failure the step restores silver and the DLQ to the versions "
                "before its write; the metadata says which version is live and why."
            ),
        )
    )
    if src.reference_check is not None:
        specs.append(
            dg.AssetCheckSpec(
                src.reference_check[0],
                asset=src.silver.name,
                blocking=True,
                description="Referential integrity to the reference tables, within the contract's tolerance.",
            )
        )
    for ref in contract.references:
        specs.append(
            dg.AssetCheckSpec(
                names.known_reference(ref.source),
                asset=src.silver.name,
                blocking=True,
                description=(
                    f"Every {contract.name} record points to a known {ref.source} record "
                    f"({SILVER_BY_SOURCE[ref.source].name} of its day and the "
                    f"{ref.lookback_days} before). Orphans are kept, counted and sampled; the "
                    "check trips when a partition's orphan share exceeds the contract's "
                    "max_orphan_rate (the tolerance for late data)."
                ),
            )
        )

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
        check_specs=specs,
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
        days = run_days(context)
        start, end = run_window(context)
        session = spark.spark_session
        where = {"partition_date": days}

        bronze = lakehouse.read(session, src.bronze, where)
        lookups = _reference_lookups(context, session, lakehouse, contract, bronze)
        if lookups:
            bronze = attach_references(
                bronze, contract, {source: df for source, (df, _, _) in lookups.items()}
            )
        validated = validate(bronze, contract, start, end)
        classified = validated.classified.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            validated = Validated(classified, contract)
            by_dest, conflicts, fingerprints = _counts_by_day(validated)
            bronze_by_day, bronze_fingerprint = _bronze_counts(bronze)
            # views of the cached classified rows (a cache of their own cost more to
            # fill, at 1M orders, than the checks saved by it)
            valid_df, rejected_df = validated.valid, validated.rejected
            # the rows as the writer will commit them: with the arrow writer they are
            # collected here once, the contract and unique-key checks run on exactly
            # those rows in this process (pandera.polars and Arrow: ~0.2 s at 1M orders,
            # against ~5 s of Spark jobs) and the write reuses them
            valid_rows = lakehouse.rows_for_write(valid_df)
            rule_counts = {
                r["rule"]: r["records"] for r in dlq_counts_by_rule(rejected_df).collect()
            }
            max_dlq_rate = _threshold(config.max_dlq_rate, contract, "max_dlq_rate", 0.1)

            results = [
                quality.not_empty(by_dest[SILVER], days),
                quality.dlq_rate(bronze_by_day, by_dest[DLQ], max_dlq_rate),
                quality.unique_key(valid_rows, contract.primary_key),
                quality.conservation(
                    bronze_by_day, by_dest[SILVER], by_dest[DLQ], by_dest[DUPLICATE]
                ),
                quality.contract(valid_rows, contract, start, end),
            ]
            if src.reference_check is not None:
                results.append(
                    src.reference_check[1](valid_df, session, lakehouse, config, contract)
                )
            orphan_counts = {}
            for ref in contract.references:
                _, upstream_days, missing = lookups[ref.source]
                by_day = {
                    r["partition_date"]: (int(r["valid"]), int(r["orphans"] or 0))
                    for r in validated.references_found(ref.source).collect()
                }
                samples = [
                    {**r.asDict(), "partition_date": r["partition_date"].isoformat()}
                    for r in validated.orphans(ref.source)
                    .orderBy("partition_date", *contract.primary_key)
                    .limit(10)
                    .collect()
                ]
                tolerance = _threshold(config.max_orphan_rate, contract, "max_orphan_rate", 0.01)
                check = quality.known_reference(
                    contract,
                    ref.source,
                    SILVER_BY_SOURCE[ref.source].name,
                    by_day,
                    samples,
                    tolerance,
                    upstream_days,
                    missing_partitions=missing,
                )
                orphan_counts[f"orphans/{ref.source}"] = check.metadata["orphans"].value
                results.append(check)

            failed = [r for r in results if not r.passed]
            if failed:
                yield from results
                raise dg.Failure(
                    description=(
                        f"Circuit breaker tripped for {src.silver.name} {partition_label(days)}: "
                        + "; ".join(f"{r.check_name}: {r.description}" for r in failed)
                        + f". Nothing was written: {_live_version(lakehouse, src.silver)}."
                    ),
                    metadata={"failed_checks": ", ".join(r.check_name or "" for r in failed)},
                    allow_retries=False,
                )

            dlq_where = {"partition_date": days, "source": [contract.name]}
            dlq_write = lakehouse.write_partitions(
                rejected_df,
                DEAD_LETTER_QUEUE,
                dlq_where,
                description="dead-letter queue of every source",
                commit_metadata=commit_metadata(context, DEAD_LETTER_QUEUE.name, days),
            )
            for day in days:
                yield dg.AssetMaterialization(
                    asset_key=DEAD_LETTER_QUEUE.name,
                    partition=day.isoformat(),
                    description=f"{contract.name} rejects of {day.isoformat()}",
                    metadata={
                        "source": contract.name,
                        "dlq_rows": by_dest[DLQ].get(day, 0),
                        "delta_version": dlq_write.version,
                        "table_uri": dg.MetadataValue.path(dlq_write.table_uri),
                        "dagster/uri": dlq_write.table_uri,
                        "written_by": src.silver.name,
                        **contract_metadata(contract),
                    },
                )
            write = lakehouse.write_partitions(
                valid_rows,
                src.silver,
                where,
                description=f"silver {contract.name}",
                commit_metadata=commit_metadata(context, src.silver.name, days, contract),
            )
            # nothing reads the classified rows any more: the heap is the read-back's
            classified.unpersist(blocking=True)
            try:
                published_check = _published_check_or_rollback(
                    context,
                    session,
                    lakehouse,
                    src,
                    days,
                    [(write, where), (dlq_write, dlq_where)],
                    audited=published.Audited(
                        bronze=bronze_fingerprint,
                        duplicates=fingerprints[DUPLICATE],
                        silver=fingerprints[SILVER],
                    ),
                )
            except _RolledBack as rolled_back:
                yield from results
                yield rolled_back.check
                raise rolled_back.failure from None
            results.append(published_check)
            dups = sum(by_dest[DUPLICATE].values())
            yield dg.MaterializeResult(
                metadata={
                    **write_metadata(write, valid_df.schema, contract_descriptions(contract)),
                    **contract_metadata(contract),
                    "dagster/column_lineage": identity_lineage(
                        src.bronze.name, contract.column_names
                    ),
                    "bronze_rows": sum(bronze_by_day.values()),
                    "silver_rows": sum(by_dest[SILVER].values()),
                    "dlq_rows": sum(by_dest[DLQ].values()),
                    "duplicates_dropped": dups,
                    "conflicting_duplicates": conflicts,
                    "conservation_holds": results[3].passed,
                    "dlq_rate": float(results[1].metadata["dlq_rate"].value),
                    "dlq_delta_version": dlq_write.version,
                    **{
                        f"dlq_rule/{rule}": rule_counts.get(rule, 0) for rule in contract.rule_names
                    },
                    **orphan_counts,
                    **src.extra_metadata,
                },
                check_results=results,
            )
        finally:
            # freed now, not whenever the JVM gets to it: the next step needs the heap
            classified.unpersist(blocking=True)

    return _silver


def reference_deps(contract: Contract) -> list[dg.AssetDep]:
    """A contract's references as dependencies on the referenced silver tables: a
    record of day D is looked up in partitions D-lookback_days..D (a partition
    mapping, so Dagster shows and automates the dependency)."""
    return [
        dg.AssetDep(
            SILVER_BY_SOURCE[ref.source].name,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-ref.lookback_days,
                end_offset=0,
                allow_nonexistent_upstream_partitions=True,
            ),
        )
        for ref in contract.references
    ]


def _reference_lookups(
    context: dg.AssetExecutionContext,
    session: SparkSession,
    lakehouse: LakehouseResource,
    contract: Contract,
    bronze: DataFrame,
) -> dict[str, tuple[DataFrame, list, list]]:
    """source -> (silver rows to look records up in, their partitions, partitions without rows).

    The partitions are the ones Dagster's partition mapping names for this run
    (the union of D-lookback_days..D over the run's days)."""
    out = {}
    for ref in contract.references:
        table = SILVER_BY_SOURCE[ref.source]
        upstream_days = window_days(context.asset_partitions_time_window_for_input(table.name))
        columns = lookup_columns(contract, ref.source)
        try:
            df = lakehouse.read(session, table, {"partition_date": upstream_days}).select(*columns)
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
    context: dg.AssetExecutionContext,
    session: SparkSession,
    lakehouse: LakehouseResource,
    src: SilverSource,
    days: list,
    writes: list,
    audited: published.Audited | None = None,
) -> dg.AssetCheckResult:
    """Read the published partitions back; on an inconsistency roll back every table this
    step wrote (newest write first) and fail the step, saying which version is live."""
    where = {"partition_date": days}
    check = published.published_consistency(
        lakehouse.read(session, src.bronze, where),
        lakehouse.read(session, src.silver, where),
        lakehouse.read(
            session, DEAD_LETTER_QUEUE, {"partition_date": days, "source": [src.contract.name]}
        ),
        src.contract.primary_key,
        partition_label(days),
        audited=audited,
    )
    silver_write = writes[0][0]
    if check.passed:
        return _with_metadata(
            check,
            {
                "live_version": silver_write.version,
                "rolled_back_from": -1,
                "restored_to": -1,
                "reason": "the published tables passed every check",
            },
        )
    reason = f"{names.PUBLISHED_CONSISTENCY} failed: {check.description}"
    rollbacks = [
        lakehouse.store.rollback(
            table,
            write,
            table_where,
            reason=reason,
            commit_metadata=commit_metadata(context, table.name, days),
        )
        for write, table_where, table in [
            (w, tw, t) for (w, tw), t in zip(writes, (src.silver, DEAD_LETTER_QUEUE), strict=True)
        ]
    ]
    for rb in rollbacks:
        context.log.error(f"circuit breaker: {rb.action}")
    silver_rb = rollbacks[0]
    failed = _with_metadata(
        check,
        {
            "live_version": silver_rb.as_metadata()["live_version"],
            "rolled_back_from": silver_rb.as_metadata()["rolled_back_from"],
            "restored_to": silver_rb.as_metadata()["restored_to"],
            "reason": reason,
            "rollbacks": dg.MetadataValue.json([rb.as_metadata() for rb in rollbacks]),
        },
    )
    yield_failure = dg.Failure(
        description=(
            f"Circuit breaker tripped after the write of {src.silver.name} "
            f"{partition_label(days)}: {reason}. " + " ".join(rb.action + "." for rb in rollbacks)
        ),
        metadata={"failed_checks": names.PUBLISHED_CONSISTENCY},
        allow_retries=False,
    )
    raise _RolledBack(failed, yield_failure)


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
