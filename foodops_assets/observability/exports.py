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

from collections.abc import Iterable

import dagster as dg

from ..settings import Settings
from .lineage import lineage_client, lineage_events
from .metrics import push_metrics
from .run_events import read_run

OBSERVABILITY_SUCCESS_SENSOR = "foodops_observability_on_success"
OBSERVABILITY_FAILURE_SENSOR = "foodops_observability_on_failure"


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
        client = lineage_client(settings.openlineage_url)
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
