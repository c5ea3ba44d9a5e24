"""Metrics to Prometheus and lineage to OpenLineage, from Dagster's event log.

Dagster's event log is the source of truth (row counts, DLQ counts, check
results, Delta versions all land there as metadata). When a run ends, two
run-status sensors read that run's events and export them:

- **Prometheus**: per asset, pushed to a Pushgateway (``FOODOPS_PROMETHEUS_PUSHGATEWAY_URL``)
  under ``job="foodops"`` and the grouping label ``asset``: step duration, rows in/out,
  DLQ rate (overall and per rule), failed checks, landing-file lag. The series names
  are :data:`METRICS`; ``resources/grafana/foodops.json`` plots them.
- **OpenLineage**: per asset step, START and COMPLETE (or FAIL) run events through the
  openlineage-python client, to ``FOODOPS_OPENLINEAGE_URL`` (a Marquez-compatible HTTP
  endpoint; ``file://...`` writes JSON lines to a file instead). Inputs are the upstream
  tables (bronze: the landing files), outputs the asset's Delta table, with the schema
  and column-lineage facets taken from ``dagster/column_schema`` and ``dagster/column_lineage``.

Neither is on unless its variable is set; nothing is read or connected at import time.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from dagster._core.events import DagsterEventType

from .lakehouse.tables import TABLES
from .settings import Settings

OBSERVABILITY_SUCCESS_SENSOR = "foodops_observability_on_success"
OBSERVABILITY_FAILURE_SENSOR = "foodops_observability_on_failure"
PROMETHEUS_JOB = "foodops"
OPENLINEAGE_NAMESPACE = "foodops"
OPENLINEAGE_PRODUCER = "https://github.com/foodops/foodops-lakehouse"

# name -> help; every series carries the grouping label ``asset`` (plus ``rule`` / ``check``)
METRICS = {
    "foodops_asset_duration_seconds": "Duration of the asset's step in its latest run.",
    "foodops_asset_success": "1 when the asset's latest step succeeded, 0 when it failed.",
    "foodops_asset_last_run_timestamp_seconds": "When the asset's latest step ended (Unix time).",
    "foodops_asset_rows_in": "Rows read by the asset's latest materialisation (where known).",
    "foodops_asset_rows_out": "Rows written by the asset's latest materialisation.",
    "foodops_dlq_rate": "Share of the partition's records sent to the dead-letter queue.",
    "foodops_dlq_rule_rate": "Share of the partition's records breaking one rule.",
    "foodops_dlq_rule_rows": "Records breaking one rule (DLQ rows per rule).",
    "foodops_check_failures": "Failed evaluations of one asset check in the latest run.",
    "foodops_landing_file_lag_seconds": "Newest landing file's age when bronze ingested it.",
}


@dataclass
class AssetStep:
    """What one run did to one asset, as read back from the event log."""

    asset: str
    step_key: str | None = None
    started: float | None = None
    ended: float | None = None
    failed: bool = False
    error: str | None = None
    partition: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    failed_checks: dict[str, int] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        if self.started is None or self.ended is None:
            return 0.0
        return max(self.ended - self.started, 0.0)


def read_run(instance: dg.DagsterInstance, run_id: str) -> list[AssetStep]:
    """Every asset a run planned, with its step times, metadata and failed checks."""
    steps: dict[str, AssetStep] = {}
    step_times: dict[str, dict[str, Any]] = {}
    assets_of_step: dict[str, set[str]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            name = event.asset_key.to_user_string()
            step = steps.setdefault(name, AssetStep(name))
            step.partition = step.partition or event.partition
            if event.step_key:
                step.step_key = event.step_key
                assets_of_step.setdefault(event.step_key, set()).add(name)
        elif kind == DagsterEventType.STEP_START:
            step_times.setdefault(event.step_key, {})["start"] = entry.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            times = step_times.setdefault(event.step_key, {})
            times["end"] = entry.timestamp
            if kind == DagsterEventType.STEP_FAILURE:
                data = event.step_failure_data
                times["error"] = data.error.message.strip() if data and data.error else "failed"
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            name = materialization.asset_key.to_user_string()
            step = steps.setdefault(name, AssetStep(name))
            step.metadata = dict(materialization.metadata)
            step.partition = materialization.partition or step.partition
            if event.step_key:
                step.step_key = event.step_key
                assets_of_step.setdefault(event.step_key, set()).add(name)
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                name = evaluation.asset_key.to_user_string()
                step = steps.setdefault(name, AssetStep(name))
                step.failed_checks[evaluation.check_name] = (
                    step.failed_checks.get(evaluation.check_name, 0) + 1
                )
    for step_key, names in assets_of_step.items():
        times = step_times.get(step_key, {})
        for name in names:
            step = steps[name]
            step.started = times.get("start")
            step.ended = times.get("end")
            step.failed = "error" in times
            step.error = times.get("error")
    # an asset of a failed step that never materialised did not run to the end
    return [s for s in steps.values() if s.started is not None]


# --------------------------------------------------------------------------- Prometheus


def _number(metadata: dict[str, Any], key: str) -> float | None:
    value = metadata.get(key)
    raw = getattr(value, "value", value)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw)


def rows_in(metadata: dict[str, Any]) -> float | None:
    for key in ("lines", "bronze_rows", "deliveries"):
        value = _number(metadata, key)
        if value is not None:
            return value
    return None


def push_metrics(url: str, steps: Iterable[AssetStep]) -> list[str]:
    """One push per asset (grouping label ``asset``), replacing that asset's last push."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    pushed = []
    for step in steps:
        registry = CollectorRegistry()

        def gauge(name: str, labels: tuple[str, ...] = (), _r=registry) -> Gauge:
            return Gauge(name, METRICS[name], labelnames=labels, registry=_r)

        gauge("foodops_asset_duration_seconds").set(step.duration)
        gauge("foodops_asset_success").set(0 if step.failed else 1)
        gauge("foodops_asset_last_run_timestamp_seconds").set(step.ended or 0)
        rows_out = _number(step.metadata, "dagster/row_count")
        if rows_out is not None:
            gauge("foodops_asset_rows_out").set(rows_out)
        read = rows_in(step.metadata)
        if read is not None:
            gauge("foodops_asset_rows_in").set(read)
        dlq_rate = _number(step.metadata, "dlq_rate")
        if dlq_rate is not None:
            gauge("foodops_dlq_rate").set(dlq_rate)
        rules = {
            key.split("/", 1)[1]: _number(step.metadata, key)
            for key in step.metadata
            if key.startswith("dlq_rule/")
        }
        if rules:
            rule_rows = gauge("foodops_dlq_rule_rows", ("rule",))
            rule_rate = gauge("foodops_dlq_rule_rate", ("rule",))
            for rule, count in sorted(rules.items()):
                rule_rows.labels(rule=rule).set(count or 0)
                rule_rate.labels(rule=rule).set((count or 0) / read if read else 0.0)
        failures = gauge("foodops_check_failures", ("check",))
        for check, count in sorted(step.failed_checks.items()):
            failures.labels(check=check).set(count)
        lag = _number(step.metadata, "landing_lag_seconds")
        if lag is not None:
            gauge("foodops_landing_file_lag_seconds").set(lag)
        push_to_gateway(
            url, job=PROMETHEUS_JOB, grouping_key={"asset": step.asset}, registry=registry
        )
        pushed.append(step.asset)
    return pushed


# --------------------------------------------------------------------------- OpenLineage


def _uri(root: str) -> str:
    return root if "://" in root else Path(root).resolve().as_uri()


def table_path(asset: str) -> str:
    table = TABLES.get(asset)
    return table.path if table is not None else asset


def _lineage_client(url: str):
    from openlineage.client import OpenLineageClient

    if url.startswith("file://"):
        from openlineage.client.transport.file import FileConfig, FileTransport

        path = urlparse(url).path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return OpenLineageClient(
            transport=FileTransport(FileConfig(log_file_path=path, append=True))
        )
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    return OpenLineageClient(transport=HttpTransport(HttpConfig(url=url, timeout=10.0)))


def _facets(step: AssetStep, lake_ns: str):
    from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset

    facets: dict[str, Any] = {}
    schema = step.metadata.get("dagster/column_schema")
    schema = getattr(schema, "schema", None)
    if schema is not None:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(
                    name=c.name, type=c.type, description=c.description
                )
                for c in schema.columns
            ]
        )
    lineage = step.metadata.get("dagster/column_lineage")
    lineage = getattr(lineage, "column_lineage", None)
    if lineage is not None:
        facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(
            fields={
                column: column_lineage_dataset.Fields(
                    inputFields=[
                        column_lineage_dataset.InputField(
                            namespace=lake_ns,
                            name=table_path(dep.asset_key.to_user_string()),
                            field=dep.column_name,
                        )
                        for dep in deps
                    ],
                )
                for column, deps in lineage.deps_by_column.items()
            }
        )
    return facets


def lineage_events(
    steps: Iterable[AssetStep],
    run_id: str,
    job_name: str,
    upstream: dict[str, list[str]],
    settings: Settings,
) -> list:
    """START and COMPLETE/FAIL per asset step, with input and output datasets."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import error_message_run, parent_run

    lake_ns, landing_ns = _uri(settings.lake_root), _uri(settings.landing_root)
    landing_root = Path(settings.landing_root).resolve()
    events = []
    for step in steps:
        files = step.metadata.get("landing_files")
        files = getattr(files, "value", files) or []
        inputs = [
            InputDataset(namespace=lake_ns, name=table_path(a))
            for a in upstream.get(step.asset, [])
        ] + [InputDataset(namespace=landing_ns, name=_relative(f, landing_root)) for f in files]
        output = OutputDataset(
            namespace=lake_ns, name=table_path(step.asset), facets=_facets(step, lake_ns)
        )
        ol_run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dagster:{run_id}:{step.asset}"))
        run_facets: dict[str, Any] = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=run_id),
                job=parent_run.Job(namespace=OPENLINEAGE_NAMESPACE, name=job_name),
            )
        }
        job = Job(namespace=OPENLINEAGE_NAMESPACE, name=step.asset)
        start = RunEvent(
            eventType=RunState.START,
            eventTime=_iso(step.started),
            run=Run(runId=ol_run_id, facets=run_facets),
            job=job,
            producer=OPENLINEAGE_PRODUCER,
            inputs=inputs,
            outputs=[OutputDataset(namespace=lake_ns, name=table_path(step.asset))],
        )
        end_facets = dict(run_facets)
        if step.failed:
            end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=step.error or "failed", programmingLanguage="python"
            )
        end = RunEvent(
            eventType=RunState.FAIL if step.failed else RunState.COMPLETE,
            eventTime=_iso(step.ended),
            run=Run(runId=ol_run_id, facets=end_facets),
            job=job,
            producer=OPENLINEAGE_PRODUCER,
            inputs=inputs,
            outputs=[] if step.failed else [output],
        )
        events += [start, end]
    return events


def _relative(path: str, root: Path) -> str:
    local = Path(urlparse(path).path if "://" in path else path).resolve()
    try:
        return local.relative_to(root).as_posix()
    except ValueError:
        return local.as_posix()


def _iso(timestamp: float | None) -> str:
    moment = dt.datetime.fromtimestamp(timestamp or 0, tz=dt.UTC)
    return moment.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- sensors


def export_run(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    settings: Settings,
    upstream: dict[str, list[str]],
    log=None,
) -> dict[str, int]:
    """Push the run's metrics and emit its lineage; returns what was sent."""
    steps = read_run(instance, run.run_id)
    sent = {"metrics": 0, "lineage": 0}
    if settings.prometheus_pushgateway_url and steps:
        sent["metrics"] = len(push_metrics(settings.prometheus_pushgateway_url, steps))
    if settings.openlineage_url and steps:
        client = _lineage_client(settings.openlineage_url)
        for event in lineage_events(steps, run.run_id, run.job_name, upstream, settings):
            client.emit(event)
            sent["lineage"] += 1
    if log is not None:
        log.info(f"run {run.run_id}: {sent['metrics']} assets pushed, {sent['lineage']} events")
    return sent


def observability_sensors(
    settings: Settings, upstream: dict[str, list[str]]
) -> list[dg.SensorDefinition]:
    """Export each finished run (success and failure); on when an endpoint is configured."""
    status = (
        dg.DefaultSensorStatus.RUNNING
        if settings.prometheus_pushgateway_url or settings.openlineage_url
        else dg.DefaultSensorStatus.STOPPED
    )

    def make(name: str, run_status: dg.DagsterRunStatus) -> dg.SensorDefinition:
        @dg.run_status_sensor(
            name=name,
            run_status=run_status,
            description=(
                "Pushes the run's per-asset metrics to the Prometheus Pushgateway and emits "
                "OpenLineage START/COMPLETE/FAIL events (FOODOPS_PROMETHEUS_PUSHGATEWAY_URL, "
                "FOODOPS_OPENLINEAGE_URL)."
            ),
            minimum_interval_seconds=min(settings.sensor_interval_seconds, 30),
            default_status=status,
        )
        def _export(context: dg.RunStatusSensorContext) -> None:
            export_run(context.instance, context.dagster_run, settings, upstream, context.log)

        return _export

    return [
        make(OBSERVABILITY_SUCCESS_SENSOR, dg.DagsterRunStatus.SUCCESS),
        make(OBSERVABILITY_FAILURE_SENSOR, dg.DagsterRunStatus.FAILURE),
    ]


def upstream_assets(assets: Iterable) -> dict[str, list[str]]:
    """``{asset: [upstream assets]}`` from the asset definitions (the lineage inputs)."""
    graph: dict[str, list[str]] = {}
    for a in assets:
        specs = getattr(a, "specs", None)
        if specs is None:
            continue
        for spec in specs:
            graph[spec.key.to_user_string()] = sorted(
                d.asset_key.to_user_string() for d in spec.deps
            )
    return graph
