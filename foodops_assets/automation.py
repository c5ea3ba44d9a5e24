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

A reload of a reference snapshot (restaurants, dishes) does not re-run the
history: it is ignored as an update, but a missing snapshot still blocks.
``restaurant_ratings_daily`` reads a 30-day window of reviews; a missing
partition inside the window (before the platform existed, or a day without
reviews) does not block it, its own day's reviews must be there.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from .lakehouse import tables
from .sensors import default_status, run_tags
from .settings import Settings

AUTOMATION_SENSOR = "foodops_automation"

REFERENCE = dg.AssetSelection.assets(tables.RESTAURANTS.name, tables.DISHES.name)

AUTOMATED_ASSETS = (
    tables.ORDERS_VALID.name,
    tables.DELIVERIES_VALID.name,
    tables.REVIEWS_VALID.name,
    tables.RESTAURANT_DAILY_SALES.name,
    tables.CITY_HOURLY_DEMAND.name,
    tables.DELIVERY_PERFORMANCE_DAILY.name,
    tables.RESTAURANT_RATINGS_DAILY.name,
    # ML features join here once they exist (issue: ML features)
)
# an upstream whose missing partitions do not block the asset (a trailing window)
WINDOWED_UPSTREAM = {
    tables.RESTAURANT_RATINGS_DAILY.name: dg.AssetSelection.assets(tables.REVIEWS_VALID.name),
}


def follow_upstream(
    lookback_days: int, windowed_upstream: dg.AssetSelection | None = None
) -> dg.AutomationCondition:
    missing = dg.AutomationCondition.any_deps_missing()
    if windowed_upstream is not None:
        missing = missing.ignore(windowed_upstream)
    return (
        dg.AutomationCondition.in_latest_time_window(dt.timedelta(days=lookback_days))
        & dg.AutomationCondition.any_deps_updated().ignore(REFERENCE).since_last_handled()
        & ~missing
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("follow_upstream")


def with_automation(assets: list, settings: Settings) -> list:
    """The assets, each automated one carrying its condition."""
    result = []
    for asset in assets:
        if isinstance(asset, dg.AssetsDefinition):
            conditions = {
                key: follow_upstream(
                    settings.automation_lookback_days,
                    WINDOWED_UPSTREAM.get(key.to_user_string()),
                )
                for key in asset.keys
                if key.to_user_string() in AUTOMATED_ASSETS
            }
            if conditions:
                asset = asset.with_attributes(automation_condition=conditions)
        result.append(asset)
    return result


def automation_sensor(settings: Settings) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.assets(*AUTOMATED_ASSETS),
        default_status=default_status(settings),
        minimum_interval_seconds=settings.sensor_interval_seconds,
        run_tags={**run_tags(settings), "foodops/trigger": "automation"},
        description="Silver, gold and ML follow their upstream partitions (automation.py).",
    )
