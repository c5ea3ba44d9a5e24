"""Declarative automation: silver and gold follow their upstream partitions; the ML
features run once a day.

Bronze is requested by the file-arrival sensors (and the daily schedule);
every silver and gold asset carries :func:`follow_upstream`, evaluated by the
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

The ML assets (group ``ml_features``: features and the ALS recommendations) carry
:func:`daily_after_the_day` instead: the day just completed, once, after the
``FOODOPS_ML_CRON`` tick (default 05:00 UTC, after every source's deadline), with the same
readiness rules. A late file never requests them: a run of the ALS training would hold
the instance's queue and Spark while the next file of the day waits (issue 26). A late
day reaches the features of the next as-of date through the trailing window; an older
as-of date is re-run by an operator (a backfill of the ML assets).
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

# bronze is started by the file-arrival sensors and the schedule; silver and gold follow
SENSOR_DRIVEN_GROUPS = ("bronze", "dimensions")
# on their own daily cadence, off the latency path of a landed file
DAILY_CADENCE_GROUPS = ("ml_features",)
# a dependency read through a trailing window at least this long (the 30-day ratings, the
# ML features' lookbacks) does not block on missing partitions inside the window
LONG_WINDOW_DAYS = 14


def _ready(windowed_upstream: dg.AssetSelection | None) -> dg.AutomationCondition:
    """What it reads is there, settled and passed its circuit breakers; not running itself."""
    not_awaited = DIMENSIONS if windowed_upstream is None else DIMENSIONS | windowed_upstream
    missing = dg.AutomationCondition.any_deps_missing().ignore(not_awaited)
    return (
        ~missing
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        # the history tables audit each snapshot before its commit: a failed check there
        # published nothing, so gold reads the last good history and need not wait
        & dg.AutomationCondition.all_deps_blocking_checks_passed().ignore(DIMENSIONS)
    )


def follow_upstream(
    lookback_days: int, windowed_upstream: dg.AssetSelection | None = None
) -> dg.AutomationCondition:
    return (
        dg.AutomationCondition.in_latest_time_window(dt.timedelta(days=lookback_days))
        & dg.AutomationCondition.any_deps_updated().ignore(REFERENCE).since_last_handled()
        & _ready(windowed_upstream)
    ).with_label("follow_upstream")


def daily_after_the_day(
    cron: str, windowed_upstream: dg.AssetSelection | None = None
) -> dg.AutomationCondition:
    """The latest complete day, once per ``cron`` tick (UTC), as soon as it is ready.

    Dagster's ``on_cron`` shape (latest time window, a cron tick passed since the partition
    was last requested), but with :func:`follow_upstream`'s readiness instead of "every
    dependency updated since the tick": the reference snapshots change rarely and must not
    hold the features back. A dependency still running at the tick (the backstop schedule's
    run, a late file's run) delays the request until it is done, not to the next tick.
    """
    return (
        dg.AutomationCondition.in_latest_time_window()
        & dg.AutomationCondition.cron_tick_passed(cron, "UTC").since_last_handled()
        & _ready(windowed_upstream)
    ).with_label(f"daily_after_the_day({cron} UTC)")


def _condition(asset: dg.AssetsDefinition, group: str, settings: Settings):
    windowed = _long_window_deps(asset)
    if group in DAILY_CADENCE_GROUPS:
        return daily_after_the_day(settings.ml_cron, windowed)
    return follow_upstream(settings.automation_lookback_days, windowed)


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
    """The assets, every one outside bronze carrying :func:`follow_upstream` (the ML
    assets :func:`daily_after_the_day`)."""
    result = []
    for asset in assets:
        if isinstance(asset, dg.AssetsDefinition) and asset.is_executable:
            conditions = {
                spec.key: _condition(asset, spec.group_name, settings)
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
        description=(
            "Silver and gold follow their upstream partitions; the ML features run once a day "
            "after FOODOPS_ML_CRON (automation/conditions.py)."
        ),
    )
