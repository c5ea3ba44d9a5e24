"""Per-asset metrics of a finished run, pushed to a Prometheus Pushgateway.

Pushed under ``job="foodops"`` and the grouping label ``asset``: step duration,
rows in/out, DLQ rate (overall and per rule), failed checks, landing-file lag.
The series names are :data:`METRICS`; ``resources/grafana/foodops.json`` plots them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .run_events import AssetStep, number, rows_in

PROMETHEUS_JOB = "foodops"

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
        rows_out = number(step.metadata, "dagster/row_count")
        if rows_out is not None:
            gauge("foodops_asset_rows_out").set(rows_out)
        read = rows_in(step.metadata)
        if read is not None:
            gauge("foodops_asset_rows_in").set(read)
        dlq_rate = number(step.metadata, "dlq_rate")
        if dlq_rate is not None:
            gauge("foodops_dlq_rate").set(dlq_rate)
        rules = {
            key.split("/", 1)[1]: number(step.metadata, key)
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
        lag = number(step.metadata, "landing_lag_seconds")
        if lag is not None:
            gauge("foodops_landing_file_lag_seconds").set(lag)
        push_to_gateway(
            url, job=PROMETHEUS_JOB, grouping_key={"asset": step.asset}, registry=registry
        )
        pushed.append(step.asset)
    return pushed
