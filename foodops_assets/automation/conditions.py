"""Declarative automation: silver, gold and ML follow their upstream partitions.

Bronze is requested by the file-arrival sensors (and the daily schedule);
every asset downstream carries :func:`follow_upstream`, evaluated by the
``foodops_automation`` sensor (Dagster's automation-condition sensor): a
partition is requested when an upstream partition it reads was updated since
it was last requested, and only when

- no upstream partition it reads is missing or still being materialised, and
  it is not in progress itself;
- every blocking check of its upstream assets passed (a tripped circuit
  breaker never feeds anything downstream: the failed asset writes nothing
  and its checks hold the failure);
- it lies within the last ``FOODOPS_AUTOMATION_LOOKBACK_DAYS`` partitions (late
  data is followed; an old backfill is an operator's decision).

A reload of a reference snapshot (restaurants, dishes) or a new version in their
history tables (group ``dimensions``, built by the reference job with the snapshots) does
not re-run the past: it is ignored as an update, but a missing snapshot still blocks. A
history table that was never built does not block gold, which then names the current
snapshot as the source of its attributes (assets/gold.py).
A dependency read through a long trailing window (``restaurant_ratings_daily``
reads 30 days of reviews) does not block on a missing partition inside the
window (before the platform existed, or a day without reviews).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from ..lakehouse import tables
from ..settings import Settings
from .sensors import default_status, run_tags

AUTOMATION_SENSOR = "foodops_automation"

DIMENSIONS = dg.AssetSelection.assets(tables.RESTAURANTS_HISTORY.name, tables.DISHES_HISTORY.name)
REFERENCE = dg.AssetSelection.assets(tables.RESTAURANTS.name, tables.DISHES.name) | DIMENSIONS

# bronze is started by the file-arrival sensors and the schedule; everything else follows
# (silver, gold, and the ML features when they join the graph)
SENSOR_DRIVEN_GROUPS = ("bronze", "dimensions")
# a dependency read through a trailing window at least this long (the 30-day ratings, the
# ML features' lookbacks) does not block on missing partitions inside the window
LONG_WINDOW_DAYS = 14


def follow_upstream(
    lookback_days: int, windowed_upstream: dg.AssetSelection | None = None
) -> dg.AutomationCondition:
    not_awaited = DIMENSIONS if windowed_upstream is None else DIMENSIONS | windowed_upstream
    missing = dg.AutomationCondition.any_deps_missing().ignore(not_awaited)
    return (
        dg.AutomationCondition.in_latest_time_window(dt.timedelta(days=lookback_days))
        & dg.AutomationCondition.any_deps_updated().ignore(REFERENCE).since_last_handled()
        & ~missing
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        # the history tables audit each snapshot before its commit: a failed check there
        # published nothing, so gold reads the last good history and need not wait
        & dg.AutomationCondition.all_deps_blocking_checks_passed().ignore(DIMENSIONS)
    ).with_label("follow_upstream")


def _long_window_deps(asset: dg.AssetsDefinition) -> dg.AssetSelection | None:
    keys = [
        dep.asset_key
        for spec in asset.specs
        for dep in spec.deps
        if isinstance(dep.partition_mapping, dg.TimeWindowPartitionMapping)
        and -dep.partition_mapping.start_offset >= LONG_WINDOW_DAYS - 1
    ]
    return dg.AssetSelection.assets(*keys) if keys else None


def with_automation(assets: list, settings: Settings) -> list:
    """The assets, every one outside bronze carrying :func:`follow_upstream`."""
    result = []
    for asset in assets:
        if isinstance(asset, dg.AssetsDefinition) and asset.is_executable:
            conditions = {
                spec.key: follow_upstream(
                    settings.automation_lookback_days, _long_window_deps(asset)
                )
                for spec in asset.specs
                if spec.group_name not in SENSOR_DRIVEN_GROUPS
            }
            if conditions:
                asset = asset.with_attributes(automation_condition=conditions)
        result.append(asset)
    return result


def automated_selection() -> dg.AssetSelection:
    return dg.AssetSelection.all() - dg.AssetSelection.groups(*SENSOR_DRIVEN_GROUPS)


def automation_sensor(settings: Settings) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=automated_selection(),
        default_status=default_status(settings),
        minimum_interval_seconds=settings.sensor_interval_seconds,
        run_tags={**run_tags(settings), "foodops/trigger": "automation"},
        description="Silver, gold and ML follow their upstream partitions (automation/conditions.py).",
    )
