"""Bronze: landing files -> Delta, every line kept (DESIGN.md section 4)."""

import time

import dagster as dg
from pyspark import StorageLevel
from pyspark.sql import functions as F

from ..checks import names, quality
from ..contracts import Contract
from ..contracts.spark import rule_passes
from ..lakehouse.landing import LandingError, read_whole_files
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.spark import SparkResource
from ..lakehouse.tables import TableRef
from ..transforms.bronze import bronze_schema, parse_records, partition_date_from_path, split_lines
from .common import (
    KINDS,
    commit_metadata,
    contract_definition_metadata,
    contract_descriptions,
    partition_label,
    run_days,
    table_schema,
    write_metadata,
)


def daily_bronze_asset(
    table: TableRef, contract: Contract, partitions_def: dg.PartitionsDefinition
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
    )
    def _bronze(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        days = run_days(context)
        try:
            by_day = lakehouse.landing.daily_files(contract.name, days)
        except LandingError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        paths = [f.path for files in by_day.values() for f in files]
        context.log.info(f"{contract.name}: reading {len(paths)} files for {partition_label(days)}")

        session = spark.spark_session
        # The landing files are read once: the write, the line accounting, the
        # whole-file checks and the schema check all reuse the cached text and lines
        # (uncached, each of them re-read and re-split every landed file).
        files = read_whole_files(session, paths).persist(StorageLevel.MEMORY_AND_DISK)
        lines = split_lines(files).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            bronze = parse_records(lines, contract, partition_date_from_path("source_file"))
            write = lakehouse.write_partitions(
                bronze,
                table,
                {"partition_date": days},
                description=f"bronze {contract.name}",
                commit_metadata=commit_metadata(context, table.name, days),
            )
            stats = _bronze_stats(lakehouse, session, table, days, files)
            quarantined = _quarantine_whole_file_problems(context, lakehouse, files, by_day)
            schema_check = _landing_schema_check(lakehouse, session, table, days, lines, contract)
        finally:
            lines.unpersist()
            files.unpersist()
        return dg.MaterializeResult(
            metadata={
                **write_metadata(write, bronze.schema, contract_descriptions(contract)),
                "files_read": len(paths),
                # where the rows came from (OpenLineage inputs) and how late they were picked up
                "landing_files": dg.MetadataValue.json(sorted(paths)),
                "landing_lag_seconds": _landing_lag_seconds(by_day),
                "landing_bytes": sum(f.size for files in by_day.values() for f in files),
                **stats,
                "quarantined_files": len(quarantined),
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


def _quarantine_whole_file_problems(context, lakehouse, files, by_day) -> list[dict]:
    """Files that hold no record (zero bytes, or only blank lines) or are not text (NUL
    bytes: binary garbage) are reported and copied to the landing zone's _quarantine with
    the reason. Nothing is dropped: a binary file's lines are in bronze and reach the DLQ
    as parseable_record, so every line stays accounted for."""
    sizes = {f.path: f.size for day_files in by_day.values() for f in day_files}
    rows = files.select(
        "path",
        F.size(F.filter(F.split("content", "\r?\n"), lambda s: F.length(F.trim(s)) > 0)).alias(
            "records"
        ),
        F.col("content").contains("\u0000").alias("binary"),
    ).collect()
    problems = []
    for r in rows:
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
        copy = lakehouse.landing.quarantine(r["path"], reason)
        context.log.warning(f"quarantined {r['path']}: {reason} (copy: {copy})")
        problems.append({"file": r["path"], "reason": reason, "copy": copy})
    # a zero-byte file may not even appear as a row: Spark skips empty files
    seen = {r["path"] for r in rows}
    for path, size in sizes.items():
        if path not in seen and size == 0:
            reason = "zero-byte file: nothing to ingest"
            copy = lakehouse.landing.quarantine(path, reason)
            context.log.warning(f"quarantined {path}: {reason} (copy: {copy})")
            problems.append({"file": path, "reason": reason, "copy": copy})
    return sorted(problems, key=lambda p: p["file"])


def _bronze_stats(lakehouse, session, table, days, files) -> dict:
    """Line accounting of the written partitions, read back from the table."""
    written = lakehouse.read(session, table, {"partition_date": days})
    row = written.agg(
        F.count(F.lit(1)).alias("lines"),
        F.count("_rescued_data").alias("rescued"),
        F.count("_parse_error").alias("unparseable"),
        F.count("_extra_fields").alias("with_extra_fields"),
    ).first()
    extra = [
        r["field"]
        for r in written.select(F.explode("_extra_fields").alias("field")).distinct().collect()
    ]
    total_lines = files.select(
        F.sum(F.size(F.split(F.regexp_replace("content", r"\r?\n$", ""), "\r?\n"))).alias("n")
    ).first()["n"]
    return {
        "lines": row["lines"],
        "blank_lines_skipped": max(int(total_lines or 0) - row["lines"], 0),
        "rescued_lines": row["rescued"],
        "unparseable_lines": row["unparseable"],
        "lines_with_extra_fields": row["with_extra_fields"],
        "extra_fields_seen": ", ".join(sorted(extra)) or "-",
    }


def _landing_schema_check(lakehouse, session, table, days, lines, contract):
    """Fields of the landed JSON objects, counted, against the contract (WARN on a diff)."""
    keys = F.json_object_keys("value")
    per_field = (
        lines.select(F.explode(keys).alias("field"))
        .groupBy("field")
        .agg(F.count(F.lit(1)).alias("n"))
        .collect()
    )
    object_lines = lines.where(keys.isNotNull()).count()
    written = lakehouse.read(session, table, {"partition_date": days})
    first_seen = {
        r["field"]: f"{r['first']['source_file']}:{r['first']['source_line']}"
        for r in written.select(
            F.explode("_extra_fields").alias("field"), "source_file", "source_line"
        )
        .groupBy("field")
        .agg(F.min(F.struct("source_file", "source_line")).alias("first"))
        .collect()
    }
    return quality.landing_schema(
        contract, {r["field"]: r["n"] for r in per_field}, object_lines, first_seen
    )


def snapshot_bronze_asset(table: TableRef, contract: Contract) -> dg.AssetsDefinition:
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
    )
    def _snapshot(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        try:
            snapshot = lakehouse.landing.newest_snapshot(contract.name)
        except LandingError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        context.log.info(f"{contract.name}: loading snapshot {snapshot.path}")
        session = spark.spark_session
        bronze = parse_records(split_lines(read_whole_files(session, [snapshot.path])), contract)
        write = lakehouse.write_table(
            bronze,
            table,
            description=f"bronze {contract.name} (newest snapshot)",
            commit_metadata=commit_metadata(context, table.name),
        )
        written = lakehouse.read(session, table)
        breaking = {rule.name: written.where(~rule_passes(rule)).count() for rule in contract.rules}
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
                "snapshot_file": dg.MetadataValue.path(snapshot.path),
                "landing_files": dg.MetadataValue.json([snapshot.path]),
                "unparseable_lines": written.where(F.col("_parse_error").isNotNull()).count(),
                "duplicate_keys": duplicate_keys,
                **{f"rule_failures/{name}": n for name, n in breaking.items()},
            }
        )

    return _snapshot
