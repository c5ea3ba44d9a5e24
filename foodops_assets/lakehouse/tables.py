"""Where every table of the lakehouse lives and how it is partitioned.

Asset key = table name; the layer is the folder under the lake root
(DESIGN.md section 4). One registry, so storage, assets and tests agree.
"""

from __future__ import annotations

from dataclasses import dataclass

PARTITION_COLUMN = "partition_date"


@dataclass(frozen=True)
class TableRef:
    layer: str
    name: str
    partition_by: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """Path of the table relative to the lake root."""
        return f"{self.layer}/{self.name}"

    @property
    def is_partitioned(self) -> bool:
        return bool(self.partition_by)


def _daily(layer: str, name: str) -> TableRef:
    return TableRef(layer, name, (PARTITION_COLUMN,))


ORDERS_RAW = _daily("bronze", "orders_raw")
DELIVERIES_RAW = _daily("bronze", "deliveries_raw")
REVIEWS_RAW = _daily("bronze", "reviews_raw")
RESTAURANTS = TableRef("bronze", "restaurants")
DISHES = TableRef("bronze", "dishes")
# SCD type 2 history of the reference snapshots (one row per key per version)
RESTAURANTS_HISTORY = TableRef("dimensions", "restaurants_history")
DISHES_HISTORY = TableRef("dimensions", "dishes_history")

ORDERS_VALID = _daily("silver", "orders_valid")
DELIVERIES_VALID = _daily("silver", "deliveries_valid")
REVIEWS_VALID = _daily("silver", "reviews_valid")
# one table for every source; a source's re-run replaces only its own rows
DEAD_LETTER_QUEUE = TableRef("silver", "dead_letter_queue", (PARTITION_COLUMN, "source"))

RESTAURANT_DAILY_SALES = _daily("gold", "restaurant_daily_sales")
DELIVERY_PERFORMANCE_DAILY = _daily("gold", "delivery_performance_daily")
RESTAURANT_RATINGS_DAILY = _daily("gold", "restaurant_ratings_daily")
CITY_HOURLY_DEMAND = _daily("gold", "city_hourly_demand")

# ML: one partition per as-of date
USER_FEATURES = _daily("ml_features", "user_features")
DISH_FEATURES = _daily("ml_features", "dish_features")
DISH_RECOMMENDATIONS = _daily("ml_features", "dish_recommendations")
# trained models live beside the tables, under <lake>/ml_models/<name>/as_of=<date>
ML_MODELS_DIR = "ml_models"

# the bronze table of each landing source (daily and snapshot)
BRONZE_BY_SOURCE: dict[str, TableRef] = {
    "orders": ORDERS_RAW,
    "deliveries": DELIVERIES_RAW,
    "reviews": REVIEWS_RAW,
    "restaurants": RESTAURANTS,
    "dishes": DISHES,
}

# the history table of each snapshot source
HISTORY_BY_SOURCE: dict[str, TableRef] = {
    "restaurants": RESTAURANTS_HISTORY,
    "dishes": DISHES_HISTORY,
}

# the silver table of each daily landing source (what a contract's references point into)
SILVER_BY_SOURCE: dict[str, TableRef] = {
    "orders": ORDERS_VALID,
    "deliveries": DELIVERIES_VALID,
    "reviews": REVIEWS_VALID,
}

TABLES: dict[str, TableRef] = {
    t.name: t
    for t in (
        ORDERS_RAW,
        DELIVERIES_RAW,
        REVIEWS_RAW,
        RESTAURANTS,
        DISHES,
        RESTAURANTS_HISTORY,
        DISHES_HISTORY,
        ORDERS_VALID,
        DELIVERIES_VALID,
        REVIEWS_VALID,
        DEAD_LETTER_QUEUE,
        RESTAURANT_DAILY_SALES,
        DELIVERY_PERFORMANCE_DAILY,
        RESTAURANT_RATINGS_DAILY,
        CITY_HOURLY_DEMAND,
        USER_FEATURES,
        DISH_FEATURES,
        DISH_RECOMMENDATIONS,
    )
}
