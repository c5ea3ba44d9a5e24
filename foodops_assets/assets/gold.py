"""Gold: analytics tables computed from silver, reconciled before they publish."""

import datetime as dt
from collections.abc import Callable, Sequence

import dagster as dg
from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..checks import names, quality
from ..contracts import Contract
from ..lakehouse.tables import (
    CITY_HOURLY_DEMAND,
    DELIVERIES_VALID,
    DELIVERY_PERFORMANCE_DAILY,
    ORDERS_VALID,
    RESTAURANT_DAILY_SALES,
    RESTAURANT_RATINGS_DAILY,
    RESTAURANTS,
    RESTAURANTS_HISTORY,
    REVIEWS_VALID,
    TableRef,
)
from ..transforms import gold
from .common import NO_RETRIES, StepRetries, column_lineage, partition_label, trailing_days
from .step import Audited, Columns, DerivedTable, Step, derived_asset

RESTAURANT_DAILY_SALES_DESCRIPTIONS = {
    "partition_date": "Day of the orders (partition key).",
    "restaurant_id": "Restaurant.",
    "restaurant_name": "Restaurant name valid at the day's last order (restaurants_history; null if unknown then).",
    "city": "Restaurant's city at that time.",
    "cuisine": "Restaurant's main cuisine at that time.",
    "orders": "Placed (not cancelled) orders.",
    "cancelled_orders": "Orders cancelled after placement.",
    "items_sold": "Portions sold in placed orders.",
    "gross_revenue": "Sum of quantity * unit price over placed orders.",
    "avg_order_value": "gross_revenue / orders.",
    "distinct_customers": "Customers with at least one placed order.",
}

CITY_HOURLY_DEMAND_DESCRIPTIONS = {
    "partition_date": "Partition of the orders.",
    "city": "City of the delivery address.",
    "hour_start": "Start of the hour of order_time (UTC).",
    "orders": "Placed orders in the hour.",
    "cancelled_orders": "Cancelled orders in the hour.",
    "revenue": "Sum of quantity * unit price over placed orders.",
    "distinct_users": "Customers with a placed order in the hour.",
}


def _orders_gold_asset(
    table: TableRef,
    description: str,
    columns: Columns,
    revenue_column: str,
    transform: Callable[[DataFrame, Step], DataFrame],
    partitions_def: dg.PartitionsDefinition,
    extra_deps: Sequence[str] = (),
    retries: StepRetries = NO_RETRIES,
) -> dg.AssetsDefinition:
    """A daily gold table over orders_valid whose revenue must reconcile with silver."""

    def compute(step: Step) -> Audited:
        # silver is not cached: each pass (the gold rows, silver's revenue) reads only the
        # few Parquet columns it needs, cheaper than caching every column of the partition
        orders = step.read(ORDERS_VALID, step.days)
        result = step.cache(transform(orders, step))
        silver_rev = _by_day(
            gold.revenue_by_day(orders.withColumn("_rev", gold.order_revenue()), "_rev")
        )
        gold_rev = _by_day(gold.revenue_by_day(result, revenue_column))
        check = quality.revenue_reconciles(gold_rev, silver_rev)
        metadata = {"revenue": float(sum(gold_rev.values()))}
        if RESTAURANTS.name in extra_deps:
            metadata.update(
                _attributes_metadata(
                    step, "the day's last order", gold.RESTAURANT_DAILY_SALES_AS_OF_LINEAGE
                )
            )
        return Audited(result, [check], metadata)

    spec = DerivedTable(
        table=table,
        group="gold",
        description=description,
        columns=columns,
        deps=[ORDERS_VALID.name, *extra_deps],
        checks={
            names.REVENUE_RECONCILES: "Revenue equals orders_valid revenue (quantity * price of placed orders) to the cent, per partition."
        },
    )
    return derived_asset(spec, partitions_def, compute, retries=retries)


def _by_day(df: DataFrame) -> dict:
    return {r["partition_date"]: r["revenue"] for r in df.collect()}


def _attributes_metadata(step: Step, when: str, as_of_lineage: dict) -> dict:
    """Where the restaurant attributes came from (and their lineage when from the history)."""
    if step.lakehouse.store.exists(RESTAURANTS_HISTORY):
        return {
            "restaurant_attributes_from": f"{RESTAURANTS_HISTORY.name} (the version valid at {when})",
            "dagster/column_lineage": column_lineage(as_of_lineage),
        }
    return {
        "restaurant_attributes_from": (
            f"{RESTAURANTS.name} (newest snapshot: {RESTAURANTS_HISTORY.name} not built)"
        )
    }


def restaurant_attributes(step: Step) -> DataFrame:
    """Restaurants as gold joins them: the history (as of the order's time) once it has
    been built, else the newest snapshot (a lake that never ran the history; the
    materialisation says which in ``restaurant_attributes_from``)."""
    if step.lakehouse.store.exists(RESTAURANTS_HISTORY):
        return step.read(RESTAURANTS_HISTORY)
    return step.read(RESTAURANTS).where(F.col("restaurant_id").isNotNull())


def _restaurant_daily_sales(orders: DataFrame, step: Step) -> DataFrame:
    return gold.restaurant_daily_sales(orders, restaurant_attributes(step))


def _city_hourly_demand(orders: DataFrame, step: Step) -> DataFrame:
    return gold.city_hourly_demand(orders)


def restaurant_daily_sales_asset(
    partitions_def: dg.PartitionsDefinition, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    return _orders_gold_asset(
        RESTAURANT_DAILY_SALES,
        "Sales per restaurant and day: orders, cancellations, items, revenue, customers.",
        Columns(
            gold.RESTAURANT_DAILY_SALES_SCHEMA,
            RESTAURANT_DAILY_SALES_DESCRIPTIONS,
            gold.RESTAURANT_DAILY_SALES_LINEAGE,
        ),
        "gross_revenue",
        _restaurant_daily_sales,
        partitions_def,
        extra_deps=[RESTAURANTS.name, RESTAURANTS_HISTORY.name],
        retries=retries,
    )


def city_hourly_demand_asset(
    partitions_def: dg.PartitionsDefinition, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    return _orders_gold_asset(
        CITY_HOURLY_DEMAND,
        "Orders and revenue per city and hour: where and when demand is.",
        Columns(
            gold.CITY_HOURLY_DEMAND_SCHEMA,
            CITY_HOURLY_DEMAND_DESCRIPTIONS,
            gold.CITY_HOURLY_DEMAND_LINEAGE,
        ),
        "revenue",
        _city_hourly_demand,
        partitions_def,
        retries=retries,
    )


# -- delivery performance and restaurant ratings ------------------------------------------
DELIVERY_PERFORMANCE_DAILY_DESCRIPTIONS = {
    "partition_date": "Day the deliveries were assigned (partition key).",
    "city": "City of the deliveries.",
    "deliveries": "Deliveries of the day in the city, whatever their outcome.",
    "delivered": "Deliveries that reached the customer.",
    "cancelled": "Deliveries of orders cancelled before pickup.",
    "failed": "Deliveries picked up but never delivered.",
    "avg_delivery_minutes": "Mean minutes from assignment to delivery, over delivered ones.",
    "p50_delivery_minutes": "Median minutes from assignment to delivery (exact percentile).",
    "p90_delivery_minutes": "90th percentile of minutes from assignment to delivery (exact, interpolated).",
    "max_delivery_minutes": "Slowest delivery of the day, in minutes.",
    "on_time_sla_minutes": "The delivery promise the on-time rate was measured against.",
    "on_time_deliveries": "Delivered within on_time_sla_minutes of assignment.",
    "on_time_rate": "on_time_deliveries / delivered (null without deliveries).",
    "cancellation_rate": "cancelled / deliveries.",
}

RESTAURANT_RATINGS_DAILY_DESCRIPTIONS = {
    "partition_date": "Day of the reviews (partition key).",
    "restaurant_id": "Restaurant rated.",
    "restaurant_name": "Restaurant name valid at the end of the day (restaurants_history; null if unknown then).",
    "city": "Restaurant's city valid at the end of the day.",
    "reviews": "Reviews written that day (0 when only the rolling window has some).",
    "avg_rating": "Mean rating of the day's reviews (null without reviews that day).",
    "rolling_30d_reviews": "Reviews in the 30 partitions ending with this one.",
    "rolling_30d_avg_rating": "Mean rating over those reviews (each review counts once).",
    "rolling_window_start": "First day of the rolling window (partition_date - 29).",
}


class DeliveryPerformanceConfig(dg.Config):
    """Run-time override of the delivery promise (launchpad / run config)."""

    on_time_sla_minutes: float | None = Field(
        default=None,
        description="minutes from assignment to delivery that count as on time "
        "(default: the deliveries contract's SLA on_time_minutes)",
    )


def delivery_performance_daily_asset(
    partitions_def: dg.PartitionsDefinition,
    deliveries: Contract,
    retries: StepRetries = NO_RETRIES,
) -> dg.AssetsDefinition:
    default_sla = float(deliveries.sla_value("on_time_minutes", 45))

    def compute(step: Step) -> Audited:
        config = step.config
        sla = config.on_time_sla_minutes if config.on_time_sla_minutes is not None else default_sla
        if not sla > 0:
            raise dg.Failure(
                f"on_time_sla_minutes={sla!r} must be a positive number of minutes",
                allow_retries=False,
            )
        # silver is not cached (each pass reads the few Parquet columns it needs)
        deliveries_df = step.read(DELIVERIES_VALID, step.days)
        result = step.cache(gold.delivery_performance_daily(deliveries_df, sla))
        silver_counts = {
            r["partition_date"]: {"deliveries": r["deliveries"], "delivered": r["delivered"]}
            for r in deliveries_df.groupBy("partition_date")
            .agg(
                F.count(F.lit(1)).alias("deliveries"),
                F.sum((F.col("status") == "delivered").cast("long")).alias("delivered"),
            )
            .collect()
        }
        gold_counts = {
            r["partition_date"]: {"deliveries": r["deliveries"], "delivered": r["delivered"]}
            for r in result.groupBy("partition_date")
            .agg(F.sum("deliveries").alias("deliveries"), F.sum("delivered").alias("delivered"))
            .collect()
        }
        checks = [
            quality.counts_reconcile(
                names.DELIVERIES_RECONCILE, "deliveries per partition", gold_counts, silver_counts
            ),
            quality.rows_sane(
                names.DELIVERY_METRICS_SANE,
                "delivery metrics",
                result,
                _delivery_rules(),
                ["partition_date", "city"],
            ),
        ]
        return Audited(
            result,
            checks,
            {
                "on_time_sla_minutes": float(sla),
                # one number per run for the UI's plot (the table has p90 per city)
                "p90_delivery_minutes": _overall_p90_minutes(deliveries_df),
                "deliveries": int(sum(v["deliveries"] for v in silver_counts.values())),
            },
        )

    spec = DerivedTable(
        table=DELIVERY_PERFORMANCE_DAILY,
        group="gold",
        description=(
            "Delivery performance per city and day: deliveries by outcome, minutes from "
            "assignment to delivery (avg, p50, p90), on-time rate against the delivery "
            "promise, cancellation rate."
        ),
        columns=Columns(
            gold.DELIVERY_PERFORMANCE_DAILY_SCHEMA,
            DELIVERY_PERFORMANCE_DAILY_DESCRIPTIONS,
            gold.DELIVERY_PERFORMANCE_DAILY_LINEAGE,
        ),
        deps=[DELIVERIES_VALID.name],
        checks={
            names.DELIVERIES_RECONCILE: "Deliveries (all, and delivered) per partition equal deliveries_valid's.",
            names.DELIVERY_METRICS_SANE: (
                "Timings non-negative and ordered (p50 <= p90 <= max, avg <= max), outcomes "
                "add up to deliveries, rates within 0..1."
            ),
        },
        metadata={"on_time_sla_minutes_default": default_sla},
    )
    return derived_asset(spec, partitions_def, compute, DeliveryPerformanceConfig, retries)


def _delivery_rules() -> dict:
    c = F.col
    none_delivered = c("delivered") == 0
    return {
        "outcomes_add_up": c("deliveries") == c("delivered") + c("cancelled") + c("failed"),
        "timings_non_negative": none_delivered
        | (
            (c("avg_delivery_minutes") >= 0)
            & (c("p50_delivery_minutes") >= 0)
            & (c("p90_delivery_minutes") >= 0)
        ),
        "percentiles_ordered": none_delivered
        | (
            (c("p50_delivery_minutes") <= c("p90_delivery_minutes"))
            & (c("p90_delivery_minutes") <= c("max_delivery_minutes"))
            & (c("avg_delivery_minutes") <= c("max_delivery_minutes"))
        ),
        "timings_only_for_delivered": (c("delivered") > 0) | c("avg_delivery_minutes").isNull(),
        "rates_within_0_1": F.coalesce(c("on_time_rate").between(0, 1), none_delivered)
        & c("cancellation_rate").between(0, 1),
        "on_time_within_delivered": c("on_time_deliveries") <= c("delivered"),
    }


def _overall_p90_minutes(deliveries: DataFrame) -> float:
    """p90 of minutes from assignment to delivery over every delivered delivery of the run."""
    minutes = (F.unix_timestamp("delivered_at") - F.unix_timestamp("assigned_at")) / F.lit(60.0)
    row = (
        deliveries.where(F.col("status") == "delivered")
        .agg(F.percentile_approx(minutes, 0.9).alias("p90"))
        .first()
    )
    return float(row["p90"]) if row and row["p90"] is not None else 0.0


def restaurant_ratings_daily_asset(
    partitions_def: dg.PartitionsDefinition, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    window = gold.ROLLING_WINDOW_DAYS

    def compute(step: Step) -> Audited:
        days = step.days
        read_days = step.input_days(REVIEWS_VALID)
        restaurants = restaurant_attributes(step)
        # silver is not cached (each pass reads the few Parquet columns it needs)
        reviews = step.read(REVIEWS_VALID, read_days)
        result = step.cache(gold.restaurant_ratings_daily(reviews, days, restaurants, window))
        per_day = {
            r["partition_date"]: r["n"]
            for r in reviews.groupBy("partition_date").agg(F.count(F.lit(1)).alias("n")).collect()
        }
        silver_counts = {
            d: {
                "reviews": per_day.get(d, 0),
                "rolling_30d_reviews": sum(
                    per_day.get(d - dt.timedelta(days=k), 0) for k in range(window)
                ),
            }
            for d in days
        }
        gold_counts = {
            r["partition_date"]: {
                "reviews": r["reviews"],
                "rolling_30d_reviews": r["rolling_30d_reviews"],
            }
            for r in result.groupBy("partition_date")
            .agg(
                F.sum("reviews").alias("reviews"),
                F.sum("rolling_30d_reviews").alias("rolling_30d_reviews"),
            )
            .collect()
        }
        c = F.col
        checks = [
            quality.counts_reconcile(
                names.REVIEWS_RECONCILE,
                "reviews per partition and per rolling window",
                gold_counts,
                silver_counts,
            ),
            quality.rows_sane(
                names.RATINGS_SANE,
                "restaurant ratings",
                result,
                {
                    "avg_rating_within_1_5": F.when(
                        c("reviews") > 0, c("avg_rating").between(1, 5)
                    ).otherwise(c("avg_rating").isNull()),
                    "rolling_avg_within_1_5": c("rolling_30d_avg_rating").between(1, 5),
                    "window_holds_the_day": (c("rolling_30d_reviews") >= c("reviews"))
                    & (c("rolling_30d_reviews") > 0)
                    & (c("reviews") >= 0),
                },
                ["partition_date", "restaurant_id"],
            ),
        ]
        without = [d.isoformat() for d in read_days if d not in per_day]
        return Audited(
            result,
            checks,
            {
                "rolling_window_partitions_read": partition_label(read_days),
                "rolling_window_partitions_without_reviews": len(without),
                "reviews_read": int(sum(per_day.values())),
                **_attributes_metadata(
                    step, "the end of the day", gold.RESTAURANT_RATINGS_DAILY_AS_OF_LINEAGE
                ),
            },
        )

    spec = DerivedTable(
        table=RESTAURANT_RATINGS_DAILY,
        group="gold",
        description=(
            "Ratings per restaurant and day: the day's reviews and average rating, and the "
            f"rolling {window}-day average over the trailing partitions of reviews_valid."
        ),
        columns=Columns(
            gold.RESTAURANT_RATINGS_DAILY_SCHEMA,
            RESTAURANT_RATINGS_DAILY_DESCRIPTIONS,
            gold.RESTAURANT_RATINGS_DAILY_LINEAGE,
        ),
        deps=[
            # day D reads reviews_valid D-29..D: the partition mapping, not date math,
            # decides what a run reads (and what Dagster marks stale after late data)
            dg.AssetDep(REVIEWS_VALID.name, partition_mapping=trailing_days(window)),
            RESTAURANTS.name,
            RESTAURANTS_HISTORY.name,
        ],
        checks={
            names.REVIEWS_RECONCILE: (
                "Reviews per partition, and reviews in each rolling window, equal "
                "reviews_valid's counts."
            ),
            names.RATINGS_SANE: (
                "Daily and rolling average ratings within 1..5, a daily average exactly when "
                "there are reviews that day, the window holding at least the day's reviews."
            ),
        },
        metadata={"rolling_window_days": window},
    )
    return derived_asset(spec, partitions_def, compute, retries=retries)
