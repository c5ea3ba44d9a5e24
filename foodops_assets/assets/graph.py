"""The lakehouse's asset graph, built from the data contracts: every table as an asset.

The code location (``definitions.py``) adds retries, automation, jobs, sensors
and resources around it; the remote task (``databricks/task.py``) runs the same
assets on a cluster. Both build them here, so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ..contracts import Contract, check_references, load_contract
from ..lakehouse import tables
from .bronze import daily_bronze_asset, snapshot_bronze_asset
from .common import NO_RETRIES, StepRetries
from .dimensions import history_asset
from .gold import (
    city_hourly_demand_asset,
    delivery_performance_daily_asset,
    restaurant_daily_sales_asset,
    restaurant_ratings_daily_asset,
)
from .ml import dish_features_asset, dish_recommendations_asset, user_features_asset
from .silver import ORDERS_REFERENCE_CHECK, SilverSource, dead_letter_queue_spec, silver_asset

SOURCES = ("orders", "deliveries", "reviews", "restaurants", "dishes")


def load_contracts(contracts_dir: str | Path) -> dict[str, Contract]:
    """The five sources' contracts, their references checked across contracts."""
    contracts = {name: load_contract(name, contracts_dir) for name in SOURCES}
    check_references(contracts)
    return contracts


def lakehouse_assets(
    contracts: dict[str, Contract],
    daily: dg.PartitionsDefinition,
    retries: StepRetries = NO_RETRIES,
) -> list:
    """Every asset; ``retries`` is how their steps retry (the code location's policy)."""
    orders, deliveries, reviews = (contracts[n] for n in ("orders", "deliveries", "reviews"))
    return [
        # bronze
        snapshot_bronze_asset(tables.RESTAURANTS, contracts["restaurants"], retries),
        snapshot_bronze_asset(tables.DISHES, contracts["dishes"], retries),
        daily_bronze_asset(tables.ORDERS_RAW, orders, daily, retries),
        # dimensions: every snapshot kept as history (SCD type 2)
        history_asset(tables.RESTAURANTS_HISTORY, contracts["restaurants"], retries),
        history_asset(tables.DISHES_HISTORY, contracts["dishes"], retries),
        daily_bronze_asset(tables.DELIVERIES_RAW, deliveries, daily, retries),
        daily_bronze_asset(tables.REVIEWS_RAW, reviews, daily, retries),
        # silver
        silver_asset(
            SilverSource(
                contract=orders,
                bronze=tables.ORDERS_RAW,
                silver=tables.ORDERS_VALID,
                reference_deps=(tables.RESTAURANTS.name, tables.DISHES.name),
                reference_check=ORDERS_REFERENCE_CHECK,
            ),
            daily,
            retries,
        ),
        # deliveries and reviews point to orders: the contracts' references add the
        # dependency on orders_valid (a partition mapping) and the known_orders check
        silver_asset(
            SilverSource(
                contract=deliveries,
                bronze=tables.DELIVERIES_RAW,
                silver=tables.DELIVERIES_VALID,
            ),
            daily,
            retries,
        ),
        silver_asset(
            SilverSource(
                contract=reviews,
                bronze=tables.REVIEWS_RAW,
                silver=tables.REVIEWS_VALID,
            ),
            daily,
            retries,
        ),
        dead_letter_queue_spec(
            daily,
            [tables.ORDERS_RAW.name, tables.DELIVERIES_RAW.name, tables.REVIEWS_RAW.name],
        ),
        # gold
        restaurant_daily_sales_asset(daily, retries),
        city_hourly_demand_asset(daily, retries),
        delivery_performance_daily_asset(daily, deliveries, retries),
        restaurant_ratings_daily_asset(daily, retries),
        # ml_features
        user_features_asset(daily, retries),
        dish_features_asset(daily, retries),
        dish_recommendations_asset(daily, retries),
    ]
