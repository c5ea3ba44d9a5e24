"""Declarative automation evaluated by Dagster's own evaluator against a real instance.

The upstream updates are recorded as asset events (what a run records when it
materialises an asset), so the conditions are tested without running Spark.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import dagster as dg

from foodops_assets.automation.conditions import AUTOMATION_SENSOR
from foodops_assets.automation.schedules import DAILY_SCHEDULE
from foodops_assets.definitions import build_definitions

TODAY = dt.datetime.now(dt.UTC).date()
D = (TODAY - dt.timedelta(days=2)).isoformat()


def blocking_checks(defs, asset):
    graph = defs.resolve_asset_graph()
    return [
        k.name
        for k in graph.asset_check_keys
        if k.asset_key == dg.AssetKey(asset) and graph.get_check_spec(k).blocking
    ]


def materialized(instance, asset, partition=None, checks=(), passed=True):
    instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition))
    for check in checks:
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(asset),
                check_name=check,
                passed=passed,
                blocking=True,
                partition=partition,
            )
        )


def days(*backs: int) -> list[str]:
    return [(TODAY - dt.timedelta(days=b)).isoformat() for b in backs]


class Ticks:
    """Successive ticks of the automation sensor's evaluator (the cursor carries over)."""

    def __init__(self, defs, instance):
        self.defs, self.instance, self.cursor = defs, instance, None
        graph = defs.resolve_asset_graph()
        self.automated = [
            k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition
        ]

    def __call__(self, at: dt.datetime | None = None) -> dict[str, list]:
        """One tick, now or at ``at`` (a tick time of the daemon's clock)."""
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=at
        )
        self.cursor = result.cursor
        return {
            key.to_user_string(): sorted(result.get_requested_partitions(key))
            for key in self.automated
            if result.get_requested_partitions(key)
        }


ML = {"user_features", "dish_features", "dish_recommendations"}


def snapshots_loaded(lake, instance, at: dt.datetime | None = None) -> tuple:
    """The definitions and their automation ticks over an instance that holds the
    reference snapshots; the first tick requests nothing."""
    defs = build_definitions(lake.settings)
    tick = Ticks(defs, instance)
    materialized(instance, "restaurants")
    materialized(instance, "dishes")
    assert tick(at) == {}
    return defs, tick


def test_downstream_follows_updates_and_never_failed_circuit_breakers(lake, instance):
    defs, tick = snapshots_loaded(lake, instance)

    # the orders sensor loaded bronze for D: silver of D follows, nothing else
    materialized(instance, "orders_raw", D)
    assert tick() == {"orders_valid": [D]}
    assert tick() == {}  # requested once, not on every tick

    # silver published with its checks passed: the orders gold of D follows
    silver_checks = blocking_checks(defs, "orders_valid")
    assert "not_empty" in silver_checks and "conservation" in silver_checks
    materialized(instance, "orders_valid", D, checks=silver_checks)
    # and not the ML features of the as-of dates whose window holds D: they run on their
    # own daily cadence (test_the_ml_features_run_once_a_day_after_the_cron_never_after_a_file)
    assert tick() == {"restaurant_daily_sales": [D], "city_hourly_demand": [D]}

    # a blocking check of silver failed on E: nothing downstream runs on that data
    e = (TODAY - dt.timedelta(days=3)).isoformat()
    materialized(instance, "orders_valid", e, checks=["not_empty"], passed=False)
    assert tick() == {}

    # a late file for an old day: that old partition's silver follows
    late = (TODAY - dt.timedelta(days=20)).isoformat()
    materialized(instance, "orders_raw", late)
    assert tick() == {"orders_valid": [late]}

    # a new reference snapshot does not re-run the history
    materialized(instance, "restaurants")
    assert tick() == {}


def test_a_file_arrival_run_of_bronze_and_silver_leaves_the_automation_only_gold(lake, instance):
    """The orders sensor's run materialises orders_raw and orders_valid together: the next
    tick requests what follows silver, not silver again."""
    defs, tick = snapshots_loaded(lake, instance)
    materialized(instance, "orders_raw", D)
    materialized(instance, "orders_valid", D, checks=blocking_checks(defs, "orders_valid"))
    requested = tick()
    assert "orders_valid" not in requested
    assert requested["restaurant_daily_sales"] == [D]
    assert tick() == {}


def test_gold_made_in_the_file_arrival_run_is_not_requested_again(lake, instance):
    """With the restaurants loaded, the orders sensor's run materialises bronze, silver and
    the orders gold together: the next tick requests none of them again (only what else
    follows silver)."""
    defs, tick = snapshots_loaded(lake, instance)
    materialized(instance, "orders_raw", D)
    materialized(instance, "orders_valid", D, checks=blocking_checks(defs, "orders_valid"))
    for gold in ("restaurant_daily_sales", "city_hourly_demand"):
        materialized(instance, gold, D, checks=blocking_checks(defs, gold))
    requested = tick()
    assert not {"orders_valid", "restaurant_daily_sales", "city_hourly_demand"} & set(requested)
    assert not ML & set(requested)  # the ML features wait for their daily tick
    assert tick() == {}


def test_the_ml_features_run_once_a_day_after_the_cron_never_after_a_file(lake, instance):
    """The daemon's clock is set by each tick (``FOODOPS_ML_CRON`` defaults to 05:00 UTC): a
    late orders file, before or after the cron, requests silver's followers and no ML run;
    the first tick past the cron requests the features and recommendations of the day just
    completed, once; the next day's cron the next day's."""
    assert lake.settings.ml_cron == "0 5 * * *"
    other = build_definitions(dataclasses.replace(lake.settings, ml_cron="30 6 * * *"))
    condition = other.resolve_asset_graph().get(dg.AssetKey("user_features")).automation_condition
    assert condition.get_label() == "daily_after_the_day(30 6 * * * UTC)"
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    at = dt.datetime.combine(TODAY, dt.time(1, 0), tzinfo=dt.UTC)
    defs, tick = snapshots_loaded(lake, instance, at)
    # every day the features read was landed, validated and checked
    for back in range(1, 15):
        day = (TODAY - dt.timedelta(days=back)).isoformat()
        for source in ("orders", "reviews"):
            silver = f"{source}_valid"
            materialized(instance, f"{source}_raw", day)
            materialized(instance, silver, day, checks=blocking_checks(defs, silver))
    requested = tick(at + dt.timedelta(minutes=1))
    assert requested["restaurant_daily_sales"] and not ML & set(requested)

    # a late orders file at 04:00, before the cron: gold follows, ML does not
    late = dt.datetime.combine(TODAY, dt.time(4, 0), tzinfo=dt.UTC)
    checks = blocking_checks(defs, "orders_valid")
    day = days(20)[0]
    materialized(instance, "orders_valid", day, checks=checks)
    assert tick(late) == {"restaurant_daily_sales": [day], "city_hourly_demand": [day]}

    # past the cron: the day just completed, once (not the older as-of dates late files touched)
    cron = dt.datetime.combine(TODAY, dt.time(5, 0, 30), tzinfo=dt.UTC)
    assert tick(cron) == {name: [yesterday] for name in ML}
    assert tick(cron + dt.timedelta(minutes=1)) == {}

    # a late orders file after the cron: gold follows, ML does not
    day = days(21)[0]
    materialized(instance, "orders_valid", day, checks=checks)
    assert tick(cron + dt.timedelta(minutes=2)) == {
        "restaurant_daily_sales": [day],
        "city_hourly_demand": [day],
    }

    # the next day's cron: today (then complete), once its silver is in
    for source in ("orders", "reviews"):
        materialized(instance, f"{source}_raw", TODAY.isoformat())
        silver = f"{source}_valid"
        materialized(instance, silver, TODAY.isoformat(), checks=blocking_checks(defs, silver))
    next_cron = cron + dt.timedelta(days=1)
    requested = tick(next_cron)
    assert {k: v for k, v in requested.items() if k in ML} == {
        name: [TODAY.isoformat()] for name in ML
    }


def test_the_automation_sensor_and_the_schedule_are_defined(lake):
    repo = build_definitions(lake.settings).get_repository_def()
    sensor = repo.get_sensor_def(AUTOMATION_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # its runs carry the run timeout (run monitoring fails them past it)
    assert sensor.run_tags["dagster/max_runtime"] == "7200"
    schedule = repo.get_schedule_def(DAILY_SCHEDULE)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")
    tick_time = dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC)
    with dg.build_schedule_context(
        scheduled_execution_time=tick_time, repository_def=repo
    ) as context:
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-20" and request.tags["foodops/trigger"] == "schedule"


def test_late_reviews_reach_the_rolling_ratings_of_the_following_days(lake, instance):
    """The 30-day rolling window is a long trailing window: missing days inside it do not
    block, and a late day of reviews re-requests the ratings of every day whose window holds it."""
    defs, tick = snapshots_loaded(lake, instance)
    checks = blocking_checks(defs, "reviews_valid")
    for back in (5, 4, 3, 2):
        materialized(
            instance, "reviews_valid", (TODAY - dt.timedelta(days=back)).isoformat(), checks
        )
    # every day whose 30-day window holds an updated day (yesterday too: its window has reviews)
    assert tick() == {"restaurant_ratings_daily": days(5, 4, 3, 2, 1)}
    assert tick() == {}
    # late reviews for 20 days ago: the ratings of that day and of the 19 days after it
    materialized(instance, "reviews_valid", days(20)[0], checks)
    assert tick() == {"restaurant_ratings_daily": days(*range(20, 0, -1))}
