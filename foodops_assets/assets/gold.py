"""Gold: analytics tables computed from silver, reconciled before they publish."""

from collections.abc import Callable, Mapping, Sequence

import dagster as dg
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..checks import names, quality
from ..lakehouse.delta import TableNotMaterialized
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.spark import SparkResource
from ..lakehouse.tables import (
    CITY_HOURLY_DEMAND,
    ORDERS_VALID,
    RESTAURANT_DAILY_SALES,
    RESTAURANTS,
    TableRef,
)
from ..transforms import gold
from .common import (
    KINDS,
    PLATFORM_OWNER,
    column_lineage,
    commit_metadata,
    partition_label,
    run_days,
    table_schema,
    write_metadata,
)

RESTAURANT_DAILY_SALES_DESCRIPTIONS = {
    "partition_date": "Day of the orders (partition key).",
    "restaurant_id": "Restaurant.",
    "restaurant_name": "Restaurant name from the newest snapshot (null if unknown).",
    "city": "Restaurant's city.",
    "cuisine": "Restaurant's main cuisine.",
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
    descriptions: Mapping[str, str],
    lineage: Mapping[str, Mapping[str, Sequence[str]]],
    revenue_column: str,
    compute: Callable[[DataFrame, LakehouseResource, object], DataFrame],
    schema: T.StructType,
    partitions_def: dg.PartitionsDefinition,
    extra_deps: Sequence[str] = (),
) -> dg.AssetsDefinition:
    """A daily gold table over orders_valid whose revenue must reconcile with silver."""

    @dg.asset(
        name=table.name,
        group_name="gold",
        description=description,
        owners=[PLATFORM_OWNER],
        kinds=KINDS,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[ORDERS_VALID.name, *extra_deps],
        check_specs=[
            dg.AssetCheckSpec(
                names.REVENUE_RECONCILES,
                asset=table.name,
                blocking=True,
                description="Revenue equals orders_valid revenue (quantity * price of placed orders) to the cent, per partition.",
            )
        ],
        metadata={"dagster/column_schema": table_schema(schema, descriptions)},
        tags={"layer": "gold"},
    )
    def _gold(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
    ):
        days = run_days(context)
        where = {"partition_date": days}
        session = spark.spark_session
        orders = lakehouse.read(session, ORDERS_VALID, where).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            result = compute(orders, lakehouse, session).persist(StorageLevel.MEMORY_AND_DISK)
            silver_rev = _by_day(
                gold.revenue_by_day(orders.withColumn("_rev", gold.order_revenue()), "_rev")
            )
            gold_rev = _by_day(gold.revenue_by_day(result, revenue_column))
            check = quality.revenue_reconciles(gold_rev, silver_rev)
            if not check.passed:
                yield check
                raise dg.Failure(
                    description=(
                        f"Circuit breaker tripped for {table.name} {partition_label(days)}: "
                        f"{check.description}. Nothing was written."
                    ),
                    allow_retries=False,
                )
            write = lakehouse.write_partitions(
                result,
                table,
                where,
                description=description,
                commit_metadata=commit_metadata(context, table.name, days),
            )
            yield dg.MaterializeResult(
                metadata={
                    **write_metadata(write, result.schema, descriptions),
                    "dagster/column_lineage": column_lineage(lineage),
                    "revenue": float(sum(gold_rev.values())),
                },
                check_results=[check],
            )
            result.unpersist()
        finally:
            orders.unpersist()

    return _gold


def _by_day(df: DataFrame) -> dict:
    return {r["partition_date"]: r["revenue"] for r in df.collect()}


def _restaurant_daily_sales(orders: DataFrame, lakehouse: LakehouseResource, session) -> DataFrame:
    try:
        restaurants = lakehouse.read(session, RESTAURANTS)
    except TableNotMaterialized:
        raise dg.Failure(
            "restaurants has not been materialized: materialize restaurants first",
            allow_retries=False,
        ) from None
    return gold.restaurant_daily_sales(
        orders, restaurants.where(F.col("restaurant_id").isNotNull())
    )


def _city_hourly_demand(orders: DataFrame, lakehouse: LakehouseResource, session) -> DataFrame:
    return gold.city_hourly_demand(orders)


def restaurant_daily_sales_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    return _orders_gold_asset(
        RESTAURANT_DAILY_SALES,
        "Sales per restaurant and day: orders, cancellations, items, revenue, customers.",
        RESTAURANT_DAILY_SALES_DESCRIPTIONS,
        gold.RESTAURANT_DAILY_SALES_LINEAGE,
        "gross_revenue",
        _restaurant_daily_sales,
        gold.RESTAURANT_DAILY_SALES_SCHEMA,
        partitions_def,
        extra_deps=[RESTAURANTS.name],
    )


def city_hourly_demand_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    return _orders_gold_asset(
        CITY_HOURLY_DEMAND,
        "Orders and revenue per city and hour: where and when demand is.",
        CITY_HOURLY_DEMAND_DESCRIPTIONS,
        gold.CITY_HOURLY_DEMAND_LINEAGE,
        "revenue",
        _city_hourly_demand,
        gold.CITY_HOURLY_DEMAND_SCHEMA,
        partitions_def,
    )
