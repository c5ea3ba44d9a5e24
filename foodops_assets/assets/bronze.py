"""Bronze: landing files -> Delta, every line kept (DESIGN.md section 4)."""

import time

import dagster as dg
from pyspark import StorageLevel
from pyspark.sql import functions as F

from ..checks import names, quality
from ..contracts import Contract
from ..contracts.spark import rule_passes
from ..lakehouse.delta import RowFilter
from ..lakehouse.landing import LandingError, read_whole_files
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.spark import SparkResource
from ..lakehouse.tables import TableRef
from ..transforms.bronze import (
    NOT_AN_OBJECT,
    all_lines,
    bronze_schema,
    is_blank,
    parse_records,
    partition_date_from_path,
    split_lines,
)
from .common import (
    KINDS,
    NO_RETRIES,
    StepRetries,
    commit_metadata,
    contract_definition_metadata,
    contract_descriptions,
    contract_metadata,
    partition_label,
    run_days,
    table_schema,
    write_metadata,
)
from .fold import (
    FOLD,
    FOLDED_FILES,
    FULL,
    INGEST_MODE,
    bronze_fold_files,
    rows_from_files,
    wants_fold,
)


def daily_bronze_asset(
    table: TableRef,
    contract: Contract,
    partitions_def: dg.PartitionsDefinition,
    retries: StepRetries = NO_RETRIES,
) -> dg.AssetsDefinition:
    """Bronze table of a daily landing source (orders, deliveries, reviews)."""

    @dg.asset(
        name=table.name,
        group_name="bronze",
        description=f"Every landed {contract.name} line, parsed against its contract. {contract.description}",
        owners=[contract.owner],
        kinds=KINDS,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        metadata={
            **contract_definition_metadata(contract),
            "dagster/column_schema": table_schema(
                bronze_schema(contract, partitioned=True), contract_descriptions(contract)
            ),
        },
        tags={"layer": "bronze", "source": contract.name},
        check_specs=[
            dg.AssetCheckSpec(
                names.LANDING_SCHEMA,
                asset=table.name,
                blocking=False,
                description=(
                    "Schema-change detection: the fields of the landed lines against the "
                    f"{contract.name} contract. A new field (kept: its lines are rescued in "
                    "_rescued_data) or a contract field no line carried is a WARN with the "
                    "column diff; it never stops the pipeline."
                ),
            )
        ],
        retry_policy=retries.policy,
    )
    @retries.wrap
    def _bronze(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        days = run_days(context)
        try:
            listing = lakehouse.landing.daily_listing(contract.name, days)
        except LandingError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        refused = _report_refused(context, lakehouse, listing.refused)
        session = spark.spark_session
        # a file landed into a day bronze holds is folded in alone (assets/fold.py)
        folded, why = (), wants_fold(context, days)
        if why is None:
            folded, why = bronze_fold_files(
                session, lakehouse, table, days[0], listing.files[days[0]]
            )
        why = why or f"a fold of {len(folded)} new or changed file(s)"
        by_day = (
            {days[0]: [f for f in listing.files[days[0]] if f.path in folded]}
            if folded
            else listing.files
        )
        paths = [f.path for files in by_day.values() for f in files]
        context.log.info(
            f"{contract.name}: reading {len(paths)} files for {partition_label(days)}: {why}"
        )
        where = {"partition_date": days}
        rows_where = RowFilter("source_file", folded) if folded else None

        # The landing files are read and split into lines once: the write, the per-file
        # line counts and the schema check all reuse the cached lines (blank ones
        # included, for the counts). The whole texts are not cached: at 1M orders
        # they crowded a 2 GB heap out.
        every_line = all_lines(read_whole_files(session, paths)).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        lines = every_line.where(~is_blank(F.col("value")))
        try:
            bronze = parse_records(lines, contract, partition_date_from_path("source_file"))
            write = lakehouse.write_partitions(
                bronze,
                table,
                where,
                description=f"bronze {contract.name}",
                commit_metadata=commit_metadata(context, table.name, days, contract),
                rows_where=rows_where,
            )
            # one pass over the cached lines for the per-file counts, two over the written
            # table for everything else (the lines' JSON is not parsed again)
            per_file = _per_file_counts(every_line)
            partition = lakehouse.read(session, table, where)
            written = partition.where(rows_from_files(folded)) if folded else partition
            stats, field_lines, first_seen, object_lines = _bronze_stats(
                written,
                per_file,
                contract,
                lines,
                None if folded else lakehouse.store.column_stats(table, where),
            )
            quarantined = refused + _quarantine_whole_file_problems(
                context, lakehouse, per_file, by_day
            )
            schema_check = quality.landing_schema(contract, field_lines, object_lines, first_seen)
        finally:
            every_line.unpersist(blocking=True)
        mode = {
            INGEST_MODE: FOLD if folded else FULL,
            "ingest_reason": why,
        }
        if folded:
            mode[FOLDED_FILES] = dg.MetadataValue.json(list(folded))
            # the partition's rows, not only the folded ones (from the Delta log)
            log = lakehouse.store.column_stats(table, where)
            mode["dagster/row_count"] = log.rows if log is not None else partition.count()
        return dg.MaterializeResult(
            metadata={
                **write_metadata(write, bronze.schema, contract_descriptions(contract)),
                **mode,
                **contract_metadata(contract),
                "files_read": len(paths),
                # where the rows came from (OpenLineage inputs) and how late they were picked up
                "landing_files": dg.MetadataValue.json(sorted(paths)),
                "landing_lag_seconds": _landing_lag_seconds(by_day),
                "landing_bytes": sum(f.size for files in by_day.values() for f in files),
                **stats,
                "quarantined_files": len(quarantined) - len(refused),
                # entries resolving outside the landing root (symlinks): never read
                "refused_entries": len(refused),
                "quarantine": dg.MetadataValue.md(
                    "\n".join(
                        ["| file | problem | copied to |", "|---|---|---|"]
                        + [f"| {q['file']} | {q['reason']} | {q['copy']} |" for q in quarantined]
                    )
                    if quarantined
                    else "no whole-file problems"
                ),
            },
            check_results=[schema_check],
        )

    return _bronze


def _landing_lag_seconds(by_day) -> float:
    """Seconds from the newest landing file's arrival (its mtime) to this ingestion."""
    mtimes = [f.mtime_ns for files in by_day.values() for f in files]
    if not mtimes:
        return 0.0
    return max(time.time() - max(mtimes) / 1e9, 0.0)


def _per_file_counts(every_line) -> list:
    """Per landed file: lines, non-blank lines (records) and whether it holds NUL bytes;
    one job over the cached lines (a zero-byte file has no row)."""
    return (
        every_line.groupBy(F.col("source_file").alias("path"))
        .agg(
            F.count(F.lit(1)).alias("lines"),
            F.sum((~is_blank(F.col("value"))).cast("long")).alias("records"),
            F.max(F.col("value").contains("\u0000")).alias("binary"),
        )
        .collect()
    )


def _report_refused(context, lakehouse, refused) -> list[dict]:
    """Entries of the landing zone that resolve outside its root (a symlink to a file
    elsewhere on the machine): not read; logged, and a reason note (no copy of the content)
    is left in the quarantine."""
    problems = []
    for entry in refused:
        try:
            note = lakehouse.landing.quarantine(entry.path, entry.reason, copy=False)
        except LandingError as exc:
            note = f"no note written: {exc}"
        context.log.warning(f"refused {entry.path}: {entry.reason}")
        problems.append({"file": entry.path, "reason": entry.reason, "copy": note})
    return problems


def _quarantine_whole_file_problems(context, lakehouse, per_file, by_day) -> list[dict]:
    """Files that hold no record (zero bytes, or only blank lines) or are not text (NUL
    bytes: binary garbage) are reported and copied to the landing zone's _quarantine with
    the reason. Nothing is dropped: a binary file's lines are in bronze and reach the DLQ
    as parseable_record, so every line stays accounted for."""
    sizes = {f.path: f.size for day_files in by_day.values() for f in day_files}
    problems = []
    for r in per_file:
        size = sizes.get(r["path"])
        if size == 0:
            reason = "zero-byte file: nothing to ingest"
        elif r["records"] == 0:
            reason = f"empty file ({size} bytes, only blank lines): no records"
        elif r["binary"]:
            reason = (
                f"binary content (NUL bytes): not JSON Lines; its {r['records']} lines are "
                "in the DLQ as parseable_record"
            )
        else:
            continue
        copy = _quarantine(lakehouse, r["path"], reason)
        context.log.warning(f"quarantined {r['path']}: {reason} (copy: {copy})")
        problems.append({"file": r["path"], "reason": reason, "copy": copy})
    # a file with no line (zero bytes, or only a BOM) has no row
    seen = {r["path"] for r in per_file}
    for path, size in sizes.items():
        if path not in seen:
            reason = (
                "zero-byte file: nothing to ingest"
                if size == 0
                else f"empty file ({size} bytes, only blank lines): no records"
            )
            copy = _quarantine(lakehouse, path, reason)
            context.log.warning(f"quarantined {path}: {reason} (copy: {copy})")
            problems.append({"file": path, "reason": reason, "copy": copy})
    return sorted(problems, key=lambda p: p["file"])


def _quarantine(lakehouse, path: str, reason: str) -> str:
    try:
        return lakehouse.landing.quarantine(path, reason)
    except LandingError as exc:  # the quarantine resolves outside the landing root
        return f"not copied: {exc}"


def _bronze_stats(written, per_file, contract, lines, log=None) -> tuple[dict, dict, dict, int]:
    """Line accounting of the written partitions: (metadata, field -> landed lines carrying
    it, where each field outside the contract was first seen, lines holding a JSON object).

    Rows and values per column come from the Delta log's file statistics of the written
    partitions (``log``: ``DeltaStore.column_stats``) when it has them, else from a pass
    over the table; extra fields and non-objects are read back from the table.
    A contract field is carried by some line when its column has a value; only a contract
    column with no value at all sends us back to the landed JSON, to tell "no line carried
    it" (a schema change) from "every line carried it as null"."""
    columns = contract.column_names
    # parse_records gives exactly the lines whose JSON has no keys this error
    not_objects = F.sum((F.col("_parse_error") == NOT_AN_OBJECT).cast("long")).alias("not_objects")
    counted = ["_rescued_data", "_parse_error", *columns]
    if log is not None and all(log.non_null(c) is not None for c in counted):
        row = {
            "lines": log.rows,
            "rescued": log.non_null("_rescued_data"),
            "unparseable": log.non_null("_parse_error"),
            **{f"_has_{i}": log.non_null(c) for i, c in enumerate(columns)},
            **written.agg(F.count("_extra_fields").alias("with_extra_fields"), not_objects)
            .first()
            .asDict(),
        }
    else:
        row = written.agg(
            F.count(F.lit(1)).alias("lines"),
            F.count("_rescued_data").alias("rescued"),
            F.count("_parse_error").alias("unparseable"),
            F.count("_extra_fields").alias("with_extra_fields"),
            not_objects,
            *[F.count(c).alias(f"_has_{i}") for i, c in enumerate(columns)],
        ).first()
    extra = (
        written.select(F.explode("_extra_fields").alias("field"), "source_file", "source_line")
        .groupBy("field")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min(F.struct("source_file", "source_line")).alias("first"),
        )
        .collect()
        if row["with_extra_fields"]
        else []
    )
    first_seen = {
        r["field"]: f"{r['first']['source_file']}:{r['first']['source_line']}" for r in extra
    }
    field_lines = {r["field"]: r["n"] for r in extra}
    field_lines.update({c: row[f"_has_{i}"] for i, c in enumerate(columns) if row[f"_has_{i}"]})
    never_valued = [c for i, c in enumerate(columns) if not row[f"_has_{i}"]]
    if never_valued and row["lines"]:
        field_lines.update(
            {
                r["field"]: r["n"]
                for r in lines.select(F.explode(F.json_object_keys("value")).alias("field"))
                .where(F.col("field").isin(never_valued))
                .groupBy("field")
                .agg(F.count(F.lit(1)).alias("n"))
                .collect()
            }
        )
    total_lines = sum(int(r["lines"] or 0) for r in per_file)
    stats = {
        "lines": row["lines"],
        "blank_lines_skipped": max(total_lines - row["lines"], 0),
        "rescued_lines": row["rescued"],
        "unparseable_lines": row["unparseable"],
        "lines_with_extra_fields": row["with_extra_fields"],
        "extra_fields_seen": ", ".join(sorted(first_seen)) or "-",
    }
    return stats, field_lines, first_seen, row["lines"] - int(row["not_objects"] or 0)


def snapshot_bronze_asset(
    table: TableRef, contract: Contract, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    """Bronze table of a reference source (restaurants, dishes): the newest full snapshot."""

    @dg.asset(
        name=table.name,
        group_name="bronze",
        description=f"Newest {contract.name} snapshot, every line kept. {contract.description}",
        owners=[contract.owner],
        kinds=KINDS,
        metadata={
            **contract_definition_metadata(contract),
            "dagster/column_schema": table_schema(
                bronze_schema(contract, partitioned=False), contract_descriptions(contract)
            ),
        },
        tags={"layer": "bronze", "source": contract.name},
        # first in a run that holds them: they are small, silver's reference checks read
        # them, and a missing snapshot fails the run before the large daily steps start
        op_tags={"dagster/priority": "1"},
        retry_policy=retries.policy,
    )
    @retries.wrap
    def _snapshot(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        try:
            refused_entries = []
            snapshot = lakehouse.landing.newest_snapshot(contract.name, refused_entries)
        except LandingError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        refused = _report_refused(context, lakehouse, refused_entries)
        context.log.info(f"{contract.name}: loading snapshot {snapshot.path}")
        session = spark.spark_session
        bronze = parse_records(split_lines(read_whole_files(session, [snapshot.path])), contract)
        write = lakehouse.write_table(
            bronze,
            table,
            description=f"bronze {contract.name} (newest snapshot)",
            commit_metadata=commit_metadata(context, table.name, contract=contract),
        )
        written = lakehouse.read(session, table)
        # every rule and the parse failures in one pass (a rule that is null on a row does
        # not count as broken, as in a where())
        counts = written.agg(
            F.count("_parse_error").alias("_unparseable"),
            *[
                F.sum(F.when(~rule_passes(rule), 1).otherwise(0)).alias(f"rule_{i}")
                for i, rule in enumerate(contract.rules)
            ],
        ).first()
        breaking = {
            rule.name: int(counts[f"rule_{i}"] or 0) for i, rule in enumerate(contract.rules)
        }
        key = list(contract.primary_key)
        duplicate_keys = (
            written.where(F.col(key[0]).isNotNull())
            .groupBy(*key)
            .count()
            .where("count > 1")
            .count()
        )
        return dg.MaterializeResult(
            metadata={
                **write_metadata(write, bronze.schema, contract_descriptions(contract)),
                **contract_metadata(contract),
                "snapshot_file": dg.MetadataValue.path(snapshot.path),
                "landing_files": dg.MetadataValue.json([snapshot.path]),
                "unparseable_lines": counts["_unparseable"],
                "duplicate_keys": duplicate_keys,
                "refused_entries": dg.MetadataValue.json(refused),
                **{f"rule_failures/{name}": n for name, n in breaking.items()},
            }
        )

    return _snapshot
