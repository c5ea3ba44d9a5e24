"""What one finished run did to each asset, read back from Dagster's event log.

The event log is the record (row counts, DLQ counts, check results, Delta
versions land there as metadata); the exports read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg


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
        if kind == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            name = event.asset_key.to_user_string()
            step = steps.setdefault(name, AssetStep(name))
            step.partition = step.partition or event.partition
            if event.step_key:
                step.step_key = event.step_key
                assets_of_step.setdefault(event.step_key, set()).add(name)
        elif kind == dg.DagsterEventType.STEP_START:
            step_times.setdefault(event.step_key, {})["start"] = entry.timestamp
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            times = step_times.setdefault(event.step_key, {})
            times["end"] = entry.timestamp
            if kind == dg.DagsterEventType.STEP_FAILURE:
                data = event.step_failure_data
                times["error"] = data.error.message.strip() if data and data.error else "failed"
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            name = materialization.asset_key.to_user_string()
            step = steps.setdefault(name, AssetStep(name))
            step.metadata = dict(materialization.metadata)
            step.partition = materialization.partition or step.partition
            if event.step_key:
                step.step_key = event.step_key
                assets_of_step.setdefault(event.step_key, set()).add(name)
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
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


def number(metadata: dict[str, Any], key: str) -> float | None:
    value = metadata.get(key)
    raw = getattr(value, "value", value)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw)


def rows_in(metadata: dict[str, Any]) -> float | None:
    for key in ("lines", "bronze_rows", "deliveries"):
        value = number(metadata, key)
        if value is not None:
            return value
    return None
