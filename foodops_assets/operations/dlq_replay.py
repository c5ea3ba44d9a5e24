"""Operator job ``dlq_replay``: re-validate dead-letter rows after a fix.

After the records (a corrections file, ``foodops dlq export`` writes one to
edit) or the rules (the contract) were fixed, the DLQ rows of chosen partitions
and sources are validated again; rows that now pass move into silver, the
others stay. Silver is committed first, then the DLQ (one atomic commit each);
conservation is checked on the published tables and a broken one rolled back.
"""

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..assets.common import commit_metadata
from ..checks import published
from ..contracts import Contract
from ..lakehouse.delta import DeltaStore, TableNotMaterialized
from ..lakehouse.landing import LandingError, confined_path
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.spark import SparkResource
from ..lakehouse.tables import DEAD_LETTER_QUEUE, SILVER_BY_SOURCE, TABLES
from ..transforms.bronze import parse_records, partition_date_from_path
from ..transforms.references import attach_references, lookup_columns
from ..transforms.silver import validate

DLQ_REPLAY_JOB = "dlq_replay"


class DlqReplayConfig(dg.Config):
    partitions: list[str] = Field(description="partition keys (YYYY-MM-DD) to replay")
    sources: list[str] = Field(
        default_factory=lambda: ["orders"], description="orders, deliveries and/or reviews"
    )
    corrections_path: str | None = Field(
        default=None,
        description=(
            "JSONL of corrected records, one per line: {source_file, source_line, record} "
            "(`foodops dlq export` writes one to edit); read only from under the landing root "
            "(a relative path is taken from there, e.g. _corrections/fixes.jsonl); without it "
            "the rows are re-validated as they are (after a rule was fixed)"
        ),
    )


def read_corrections(path: str, landing_root: str) -> dict[tuple[str, int], str]:
    """(source_file, source_line) -> corrected raw line; fails naming the bad line.

    The file is read only when it resolves inside the landing root (a relative path is
    taken from there): a run's configuration must not make the platform read, into the
    lake, a file from elsewhere on the machine (or follow a symlink out of the root)."""
    try:
        p = confined_path(path, landing_root, "corrections file")
    except LandingError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    if not p.is_file():
        raise dg.Failure(
            f"corrections file {path} does not exist: write one with `foodops dlq export`",
            allow_retries=False,
        )
    out: dict[tuple[str, int], str] = {}
    for n, text in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            entry = json.loads(text)
            key = (str(entry["source_file"]), int(entry["source_line"]))
            record = entry["record"]
        except (ValueError, KeyError, TypeError) as exc:
            raise dg.Failure(
                f"{path}:{n} is not a correction: each line must be a JSON object with "
                f"source_file, source_line and record ({exc})",
                allow_retries=False,
            ) from None
        out[key] = record if isinstance(record, str) else json.dumps(record)
    return out


def _replay_days(partitions: list[str], partitions_def: dg.PartitionsDefinition) -> list[dt.date]:
    days = []
    for key in partitions:
        try:
            day = dt.date.fromisoformat(key)
        except ValueError:
            raise dg.Failure(
                f"partition {key!r} is not a date: use YYYY-MM-DD", allow_retries=False
            ) from None
        if not partitions_def.has_partition_key(key):
            raise dg.Failure(
                f"partition {key} is outside the daily partitions (first: "
                f"{partitions_def.get_first_partition_key()}, last: "
                f"{partitions_def.get_last_partition_key()})",
                allow_retries=False,
            )
        days.append(day)
    if not days:
        raise dg.Failure("name at least one partition to replay", allow_retries=False)
    return sorted(set(days))


def replay_source(
    context: dg.OpExecutionContext,
    session: SparkSession,
    lakehouse: LakehouseResource,
    contract: Contract,
    days: list[dt.date],
    corrections: Mapping[tuple[str, int], str],
) -> dict[str, Any]:
    """Re-validate one source's DLQ rows of ``days``; move what passes into silver."""
    silver_table = SILVER_BY_SOURCE[contract.name]
    where = {"partition_date": days}
    dlq_where = {"partition_date": days, "source": [contract.name]}
    lineage = ["source_file", "source_line"]
    dlq = lakehouse.read(session, DEAD_LETTER_QUEUE, dlq_where).persist()
    silver = lakehouse.read(session, silver_table, where)
    fixes = session.createDataFrame(
        [(f, line, text) for (f, line), text in corrections.items()],
        T.StructType(
            [
                T.StructField("source_file", T.StringType()),
                T.StructField("source_line", T.LongType()),
                T.StructField("_corrected", T.StringType()),
            ]
        ),
    )
    lines = dlq.join(fixes, lineage, "left").select(
        *lineage,
        "ingested_at",
        F.coalesce("_corrected", "raw_record").alias("value"),
        F.col("_corrected").isNotNull().alias("_was_corrected"),
    )
    corrected = lines.where("_was_corrected").count()
    parsed = parse_records(lines.drop("_was_corrected"), contract, partition_date_from_path())
    for ref in contract.references:
        upstream = SILVER_BY_SOURCE[ref.source]
        lookup_days = sorted(
            {d - dt.timedelta(days=k) for d in days for k in range(ref.lookback_days + 1)}
        )
        try:
            ref_df = lakehouse.read(session, upstream, {"partition_date": lookup_days})
        except TableNotMaterialized:
            raise dg.Failure(
                f"{contract.name} records are checked against {upstream.name}, which does not "
                f"exist yet: materialise it first",
                allow_retries=False,
            ) from None
        parsed = attach_references(
            parsed, contract, {ref.source: ref_df.select(*lookup_columns(contract, ref.source))}
        )
    start = dt.datetime.combine(days[0], dt.time(), dt.UTC)
    end = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), dt.UTC)
    validated = validate(parsed, contract, start, end)
    passing = validated.valid
    key = list(contract.primary_key)
    # a line already in silver (a replay interrupted between its two commits) only leaves the DLQ
    already = passing.join(silver.select(*lineage), lineage, "left_semi")
    fresh = passing.join(silver.select(*lineage), lineage, "left_anti")
    # a record whose key silver already holds stays in the DLQ: silver keeps its record, and
    # the operator sees the clash (a correction must not silently replace or vanish)
    duplicates = fresh.join(
        silver.select("partition_date", *key), ["partition_date", *key], "left_semi"
    )
    moving = fresh.join(
        silver.select("partition_date", *key), ["partition_date", *key], "left_anti"
    ).persist()
    leaving = moving.select(*lineage).unionByName(already.select(*lineage))
    n_moving, n_leaving = moving.count(), leaving.count()
    dlq_rows = dlq.count()
    outcome = {
        "source": contract.name,
        "dlq_rows_before": dlq_rows,
        "corrected_records": corrected,
        "moved_to_silver": n_moving,
        "kept_key_already_in_silver": duplicates.count(),
        "still_failing": dlq_rows - n_leaving,
    }
    if n_leaving == 0:
        context.log.info(f"{contract.name}: no DLQ row of {days} passes now; nothing changed")
        dlq.unpersist()
        moving.unpersist()
        return {**outcome, "changed": False}

    new_silver = silver.unionByName(moving.select(*silver.columns))
    remaining = dlq.join(leaving, lineage, "left_anti")
    meta = commit_metadata(context, silver_table.name, days)
    # silver first: a crash between the commits leaves a row in both (a re-run of the replay
    # removes it from the DLQ), never in neither
    silver_write = lakehouse.write_partitions(new_silver, silver_table, where, commit_metadata=meta)
    dlq_write = lakehouse.write_partitions(
        remaining, DEAD_LETTER_QUEUE, dlq_where, commit_metadata=meta
    )
    dlq.unpersist()
    moving.unpersist()
    check = published.published_consistency(
        lakehouse.read(session, TABLES[f"{contract.name}_raw"], where),
        lakehouse.read(session, silver_table, where),
        lakehouse.read(session, DEAD_LETTER_QUEUE, dlq_where),
        key,
        ", ".join(d.isoformat() for d in days),
    )
    if not check.passed:
        reason = f"conservation broken by the replay: {check.description}"
        actions = [
            lakehouse.store.rollback(silver_table, silver_write, where, reason=reason).action,
            lakehouse.store.rollback(DEAD_LETTER_QUEUE, dlq_write, dlq_where, reason=reason).action,
        ]
        raise dg.Failure(f"{reason}. {' '.join(actions)}", allow_retries=False)
    for day in days:
        for table, write in ((silver_table, silver_write), (DEAD_LETTER_QUEUE, dlq_write)):
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=table.name,
                    partition=day.isoformat(),
                    description=f"dlq_replay of {contract.name}",
                    metadata={
                        "delta_version": write.version,
                        "delta_previous_version": write.previous_version
                        if write.previous_version is not None
                        else -1,
                        "dagster/uri": write.table_uri,
                        "written_by": DLQ_REPLAY_JOB,
                        **{k: v for k, v in outcome.items() if k != "source"},
                    },
                )
            )
    return {
        **outcome,
        "changed": True,
        "conservation_holds": True,
        "lines_placed_once": check.metadata["lines_placed_once"].value,
    }


def dlq_replay_job(
    contracts: Mapping[str, Contract], partitions_def: dg.PartitionsDefinition
) -> dg.JobDefinition:
    @dg.op(
        name="replay_dead_letters",
        description="Re-validate DLQ rows (corrected, or under fixed rules); move passing rows to silver.",
    )
    def replay_dead_letters(
        context: dg.OpExecutionContext,
        config: DlqReplayConfig,
        spark: SparkResource,
        lakehouse: LakehouseResource,
    ) -> dg.Output:
        days = _replay_days(config.partitions, partitions_def)
        unknown = [s for s in config.sources if s not in SILVER_BY_SOURCE]
        if unknown or not config.sources:
            raise dg.Failure(
                f"unknown source(s) {unknown}: use {', '.join(SILVER_BY_SOURCE)}",
                allow_retries=False,
            )
        corrections = (
            read_corrections(config.corrections_path, lakehouse.landing_root)
            if config.corrections_path
            else {}
        )
        session = spark.spark_session
        results = []
        for source in config.sources:
            try:
                results.append(
                    replay_source(context, session, lakehouse, contracts[source], days, corrections)
                )
            except TableNotMaterialized as exc:
                raise dg.Failure(str(exc), allow_retries=False) from None
        for r in results:
            context.log.info(f"dlq_replay {r}")
        return dg.Output(
            None,
            metadata={
                "partitions": ", ".join(d.isoformat() for d in days),
                "results": dg.MetadataValue.json(results),
                **{
                    f"{r['source']}/{k}": r[k]
                    for r in results
                    for k in ("moved_to_silver", "kept_key_already_in_silver", "still_failing")
                },
            },
        )

    @dg.job(
        name=DLQ_REPLAY_JOB,
        description=(
            "Operators: after fixing records (corrections file) or a rule (contract), "
            "re-validate the DLQ rows of chosen partitions; passing rows move into silver."
        ),
    )
    def _job():
        replay_dead_letters()

    return _job


def export_dlq(store: DeltaStore, source: str, days: list[dt.date], out: Path) -> int:
    """Write the DLQ rows of ``source`` and ``days`` as an editable corrections file."""
    table = store.to_arrow(DEAD_LETTER_QUEUE, {"partition_date": days, "source": [source]})
    table = table.sort_by([("source_file", "ascending"), ("source_line", "ascending")])
    with out.open("w", encoding="utf-8") as f:
        for row in table.to_pylist():
            try:
                record: Any = json.loads(row["raw_record"])
            except ValueError:
                record = row["raw_record"]
            f.write(
                json.dumps(
                    {
                        "source_file": row["source_file"],
                        "source_line": row["source_line"],
                        "failed_rules": row["failed_rules"],
                        "record": record,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return table.num_rows
