"""Every silver and gold asset carries the freshness policy its data contract's SLA sets."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg
import pytest
import yaml

from foodops_assets.automation.freshness import Deadline
from foodops_assets.contracts import CONTRACTS_DIR
from foodops_assets.definitions import build_definitions

SILVER_AND_GOLD = {
    # asset: (deadline cron, hours from the day's end to the deadline)
    "orders_valid": ("0 3 * * *", 3),
    "restaurant_daily_sales": ("0 3 * * *", 3),
    "city_hourly_demand": ("0 3 * * *", 3),
    "deliveries_valid": ("0 4 * * *", 4),
    "delivery_performance_daily": ("0 4 * * *", 4),
    "reviews_valid": ("0 5 * * *", 5),
    "restaurant_ratings_daily": ("0 5 * * *", 5),
    # written by every source's silver step: due with the last of them
    "dead_letter_queue": ("0 5 * * *", 5),
}


def _policies(defs: dg.Definitions) -> dict[str, dg.FreshnessPolicy | None]:
    return {s.key.to_user_string(): s.freshness_policy for s in defs.resolve_all_asset_specs()}


def _cron(policy) -> tuple[str, float, str]:
    return policy.deadline_cron, policy.lower_bound_delta.total_seconds() / 3600, policy.timezone


def test_silver_and_gold_are_due_by_their_contracts_deadline(lake):
    policies = _policies(build_definitions(lake.settings))
    for name, (cron, hours) in SILVER_AND_GOLD.items():
        # orders land by 02:00 (the latency SLA: 120 min) + 60 min to publish: by 03:00 UTC,
        # with a materialisation since the day ended (lower bound = the day's end)
        assert _cron(policies[name]) == (cron, hours, "UTC"), name
    # bronze is driven by the landing zone, the ML layer is not in the contracts' promise
    assert {n for n, p in policies.items() if p is None} == {
        "restaurants",
        "dishes",
        "restaurants_history",
        "dishes_history",
        "orders_raw",
        "deliveries_raw",
        "reviews_raw",
        "user_features",
        "dish_features",
        "dish_recommendations",
    }


def _set_landing_sla(contracts, source: str, minutes: int | None) -> None:
    """Set (or drop) the ``latency`` SLA of ``source``'s ODCS contract file."""
    path = contracts / f"{source}.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    sla = [p for p in doc["slaProperties"] if p["property"] != "latency"]
    if minutes is not None:
        sla.append({"property": "latency", "value": minutes, "unit": "min"})
    doc["slaProperties"] = sla
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_a_changed_sla_changes_the_policies(lake, tmp_path):
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    _set_landing_sla(contracts, "orders", 90)  # orders land by 01:30
    _set_landing_sla(contracts, "reviews", 1500)  # reviews land by D+2 01:00
    _set_landing_sla(contracts, "deliveries", None)  # no promise

    policies = _policies(build_definitions(lake.settings, contracts_dir=contracts))

    for name in ("orders_valid", "restaurant_daily_sales", "city_hourly_demand"):
        assert _cron(policies[name]) == ("30 2 * * *", 2.5, "UTC"), name
    # due at D+2 02:00: Dagster's window looks back at most one cron interval (a day)
    for name in ("reviews_valid", "restaurant_ratings_daily", "dead_letter_queue"):
        assert _cron(policies[name]) == ("0 2 * * *", 24, "UTC"), name
    assert policies["deliveries_valid"] is None
    assert policies["delivery_performance_daily"] is None


def test_a_deadline_in_days_hours_and_partitions():
    orders = Deadline(source="orders", landing_minutes=120)
    day = dt.date(2026, 11, 20)
    assert orders.landing_due(day) == dt.datetime(2026, 11, 21, 2, tzinfo=dt.UTC)
    assert orders.due(day) == dt.datetime(2026, 11, 21, 3, tzinfo=dt.UTC)
    assert orders.time_of_day == "03:00 UTC"
    # the newest partition due: the day before yesterday until 03:00, yesterday from then on
    assert orders.last_due_day(dt.datetime(2026, 11, 21, 2, 59, tzinfo=dt.UTC)) == dt.date(
        2026, 11, 19
    )
    assert orders.last_due_day(dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.UTC)) == day
    late = Deadline(source="reviews", landing_minutes=1500)
    assert late.due(day) == dt.datetime(2026, 11, 22, 2, tzinfo=dt.UTC)
    assert late.time_of_day == "02:00 UTC (+1 day)"


@pytest.mark.parametrize("minutes", [0, 59])
def test_a_deadline_right_after_the_day_ends_is_a_valid_policy(minutes):
    policy = Deadline(source="orders", landing_minutes=minutes, processing_minutes=0).policy()
    assert policy.lower_bound_delta >= dt.timedelta(minutes=1)
