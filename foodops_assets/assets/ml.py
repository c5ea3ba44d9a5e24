"""ML features and dish recommendations, one partition per as-of date.

Each asset reads the trailing window of silver partitions through a
``TimeWindowPartitionMapping`` on its dependency (so a backfill of day D reads exactly
D-(W-1)..D, and late data in a silver partition marks the as-of dates that read it
stale); the transforms filter on the records' own timestamps too, so nothing dated
after D reaches a feature of D.

``dish_recommendations`` audits before it publishes: the model is evaluated on a
time-based holdout against a popularity baseline, and unless it beats the baseline on
precision@10 by the configured margin nothing is written and the previous
recommendations stay live.
"""

import datetime as dt

import dagster as dg
from pydantic import Field
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..checks import names, quality
from ..lakehouse.delta import TableNotMaterialized
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.spark import SparkResource
from ..lakehouse.tables import (
    DISH_FEATURES,
    DISH_RECOMMENDATIONS,
    DISHES,
    ML_MODELS_DIR,
    ORDERS_VALID,
    RESTAURANTS,
    REVIEWS_VALID,
    USER_FEATURES,
    TableRef,
)
from ..transforms import features, recommend
from .common import (
    KINDS,
    NO_RETRIES,
    PLATFORM_OWNER,
    StepRetries,
    partition_label,
    run_days,
    table_schema,
    window_days,
)
from .gold import _audit_then_publish

GROUP = "ml_features"
# the trailing window of silver partitions every as-of date reads (D-13..D)
FEATURE_WINDOW_DAYS = 14

USER_FEATURES_DESCRIPTIONS = {
    "partition_date": "As-of date: the features describe the user at the end of this day (UTC).",
    "user_id": "User with an order (placed or cancelled) in the window.",
    "window_start": "First day of the trailing window (partition_date - 13).",
    "home_city": "City of the user's newest order in the window.",
    "orders": "Placed orders in the window.",
    "cancelled_orders": "Cancelled orders in the window.",
    "cancellation_share": "cancelled_orders / (orders + cancelled_orders).",
    "spend": "Sum of quantity * unit price over placed orders in the window.",
    "last_order_date": "Day of the newest order in the window.",
    "recency_days": "Days from last_order_date to the as-of date (0 = ordered that day).",
    "favourite_cuisine": "Cuisine of the most placed orders in the window (ties: alphabetical).",
    "favourite_cuisine_orders": "Placed orders of the favourite cuisine.",
    "reviews_given": "Reviews the user wrote in the window.",
    "avg_rating_given": "Mean rating of those reviews (null without reviews).",
}

DISH_FEATURES_DESCRIPTIONS = {
    "partition_date": "As-of date: the features describe the dish at the end of this day (UTC).",
    "dish_id": "Dish with a placed order in the window or the window before it.",
    "restaurant_id": "Restaurant of the dish.",
    "window_start": "First day of the trailing window (partition_date - 13).",
    "orders": "Placed orders of the dish in the window.",
    "distinct_users": "Users with a placed order of the dish in the window.",
    "repeat_users": "Users who ordered the dish at least twice in the window.",
    "reorder_rate": "repeat_users / distinct_users (null without orders).",
    "reviews": "Reviews written in the window of orders of the dish.",
    "avg_rating": "Mean rating of those reviews (null without reviews).",
    "orders_previous_window": "Placed orders in the 14 days before the window.",
    "orders_trend": "(orders - orders_previous_window) / orders_previous_window (null when the previous window had none).",
}

RECOMMENDATIONS_DESCRIPTIONS = {
    "partition_date": "As-of date: trained on the window ending this day.",
    "user_id": "Active user: a placed order in the window.",
    "rank": "1 = best; 10 dishes per user.",
    "dish_id": "Recommended dish.",
    "restaurant_id": "Restaurant of the dish.",
    "city": "The user's city (of their newest order); dishes come from it unless configured otherwise.",
    "score": "ALS score (null for dishes the model has no factors for, ranked by popularity).",
    "source": "als, or popularity for dishes ranked after the scored ones.",
}


def _window_mapping(days: int) -> dg.TimeWindowPartitionMapping:
    return dg.TimeWindowPartitionMapping(
        start_offset=-(days - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
    )


def _read(lakehouse: LakehouseResource, session, table: TableRef, where=None) -> DataFrame:
    try:
        return lakehouse.read(session, table, where)
    except TableNotMaterialized:
        raise dg.Failure(
            f"{table.name} has not been materialized: materialize {table.name} first",
            allow_retries=False,
        ) from None


def _input_days(context: dg.AssetExecutionContext, upstream: TableRef) -> list[dt.date]:
    return window_days(context.asset_partitions_time_window_for_input(upstream.name))


def user_features_asset(
    partitions_def: dg.PartitionsDefinition, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    table = USER_FEATURES
    w = FEATURE_WINDOW_DAYS
    description = (
        f"Per as-of date and user, over the trailing {w} days: orders, spend, recency, "
        "favourite cuisine, ratings given, cancellation share."
    )

    @dg.asset(
        name=table.name,
        group_name=GROUP,
        description=description,
        owners=[PLATFORM_OWNER],
        kinds=KINDS,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[
            dg.AssetDep(ORDERS_VALID.name, partition_mapping=_window_mapping(w)),
            dg.AssetDep(REVIEWS_VALID.name, partition_mapping=_window_mapping(w)),
            DISHES.name,
        ],
        check_specs=[
            dg.AssetCheckSpec(
                names.USER_FEATURES_SANE,
                asset=table.name,
                blocking=True,
                description=(
                    "No order after the as-of date, recency non-negative, shares within 0..1, "
                    "ratings within 1..5, spend non-negative."
                ),
            )
        ],
        metadata={
            "dagster/column_schema": table_schema(
                features.USER_FEATURES_SCHEMA, USER_FEATURES_DESCRIPTIONS
            ),
            "window_days": w,
        },
        tags={"layer": GROUP},
        retry_policy=retries.policy,
    )
    @retries.wrap
    def _user_features(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
    ):
        days = run_days(context)
        session = spark.spark_session
        order_days = _input_days(context, ORDERS_VALID)
        review_days = _input_days(context, REVIEWS_VALID)
        orders = _read(lakehouse, session, ORDERS_VALID, {"partition_date": order_days})
        reviews = _read(lakehouse, session, REVIEWS_VALID, {"partition_date": review_days})
        dishes = _read(lakehouse, session, DISHES)
        result = features.user_features(orders, reviews, dishes, days, w).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        c = F.col
        check = quality.rows_sane(
            names.USER_FEATURES_SANE,
            "user features",
            result,
            {
                "no_order_after_as_of": c("last_order_date") <= c("partition_date"),
                "recency_non_negative": c("recency_days") >= 0,
                "cancellation_share_within_0_1": c("cancellation_share").between(0, 1),
                "spend_non_negative": c("spend") >= 0,
                "avg_rating_within_1_5": c("avg_rating_given").isNull()
                | c("avg_rating_given").between(1, 5),
            },
            ["partition_date", "user_id"],
        )
        yield from _audit_then_publish(
            context,
            lakehouse,
            table,
            result,
            days,
            [check],
            description,
            USER_FEATURES_DESCRIPTIONS,
            features.USER_FEATURES_LINEAGE,
            {
                "window_days": w,
                "orders_partitions_read": partition_label(order_days),
                "reviews_partitions_read": partition_label(review_days),
            },
        )
        result.unpersist()

    return _user_features


def dish_features_asset(
    partitions_def: dg.PartitionsDefinition, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    table = DISH_FEATURES
    w = FEATURE_WINDOW_DAYS
    description = (
        f"Per as-of date and dish, over the trailing {w} days: orders, distinct users, "
        f"reorder rate, average rating, and the trend against the {w} days before."
    )

    @dg.asset(
        name=table.name,
        group_name=GROUP,
        description=description,
        owners=[PLATFORM_OWNER],
        kinds=KINDS,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[
            # two windows of orders: the current one and the one it is compared with
            dg.AssetDep(ORDERS_VALID.name, partition_mapping=_window_mapping(2 * w)),
            dg.AssetDep(REVIEWS_VALID.name, partition_mapping=_window_mapping(w)),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                names.DISH_FEATURES_SANE,
                asset=table.name,
                blocking=True,
                description=(
                    "orders >= distinct_users >= repeat_users, reorder rate within 0..1, "
                    "average rating within 1..5."
                ),
            )
        ],
        metadata={
            "dagster/column_schema": table_schema(
                features.DISH_FEATURES_SCHEMA, DISH_FEATURES_DESCRIPTIONS
            ),
            "window_days": w,
        },
        tags={"layer": GROUP},
        retry_policy=retries.policy,
    )
    @retries.wrap
    def _dish_features(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
    ):
        days = run_days(context)
        session = spark.spark_session
        order_days = _input_days(context, ORDERS_VALID)
        review_days = _input_days(context, REVIEWS_VALID)
        orders = _read(lakehouse, session, ORDERS_VALID, {"partition_date": order_days})
        reviews = _read(lakehouse, session, REVIEWS_VALID, {"partition_date": review_days})
        result = features.dish_features(orders, reviews, days, w).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        c = F.col
        check = quality.rows_sane(
            names.DISH_FEATURES_SANE,
            "dish features",
            result,
            {
                "counts_ordered": (c("orders") >= c("distinct_users"))
                & (c("distinct_users") >= c("repeat_users"))
                & (c("repeat_users") >= 0),
                "reorder_rate_within_0_1": c("reorder_rate").isNull()
                | c("reorder_rate").between(0, 1),
                "avg_rating_within_1_5": c("avg_rating").isNull() | c("avg_rating").between(1, 5),
            },
            ["partition_date", "dish_id"],
        )
        yield from _audit_then_publish(
            context,
            lakehouse,
            table,
            result,
            days,
            [check],
            description,
            DISH_FEATURES_DESCRIPTIONS,
            features.DISH_FEATURES_LINEAGE,
            {
                "window_days": w,
                "orders_partitions_read": partition_label(order_days),
                "reviews_partitions_read": partition_label(review_days),
            },
        )
        result.unpersist()

    return _dish_features


class DishRecommendationsConfig(dg.Config):
    """ALS hyper-parameters and the publishing gate (launchpad / run config)."""

    rank: int = Field(default=16, description="ALS latent factors")
    max_iter: int = Field(default=10, description="ALS iterations")
    reg_param: float = Field(default=0.05, description="ALS regularisation")
    alpha: float = Field(default=20.0, description="ALS confidence of implicit feedback")
    seed: int = Field(default=42, description="ALS random seed (results are reproducible)")
    min_precision_uplift: float = Field(
        default=0.005,
        description="publish only when model precision@10 > baseline precision@10 + this margin",
    )
    include_other_cities: bool = Field(
        default=False,
        description="recommend dishes of restaurants outside the user's city too",
    )


def model_path(lakehouse: LakehouseResource, as_of: dt.date) -> str:
    """Where the model of an as-of date is saved: ``<lake>/ml_models/dish_recommendations/as_of=D``."""
    root = lakehouse.lake_root.rstrip("/")
    return f"{root}/{ML_MODELS_DIR}/{DISH_RECOMMENDATIONS.name}/as_of={as_of.isoformat()}"


def dish_recommendations_asset(
    partitions_def: dg.PartitionsDefinition, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    table = DISH_RECOMMENDATIONS
    w = FEATURE_WINDOW_DAYS
    k = recommend.K
    description = (
        f"Top-{k} dishes per active user, from Spark MLlib ALS on the implicit feedback of the "
        f"trailing {w} days; published only when it beats the popularity baseline."
    )

    @dg.asset(
        name=table.name,
        group_name=GROUP,
        description=description,
        owners=[PLATFORM_OWNER],
        kinds={*KINDS, "mllib"},
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[
            dg.AssetDep(ORDERS_VALID.name, partition_mapping=_window_mapping(w)),
            DISHES.name,
            RESTAURANTS.name,
        ],
        check_specs=[
            dg.AssetCheckSpec(
                names.MODEL_BEATS_BASELINE,
                asset=table.name,
                blocking=True,
                description=(
                    f"On a time-based holdout (train on the window's days before the as-of date, "
                    f"test on the as-of date), ALS precision@{k} beats the popularity baseline's "
                    "by the configured margin; otherwise nothing is published."
                ),
            )
        ],
        metadata={
            "dagster/column_schema": table_schema(
                recommend.RECOMMENDATIONS_SCHEMA, RECOMMENDATIONS_DESCRIPTIONS
            ),
            "window_days": w,
            "k": k,
        },
        tags={"layer": GROUP},
        retry_policy=retries.policy,
    )
    @retries.wrap
    def _dish_recommendations(
        context: dg.AssetExecutionContext,
        config: DishRecommendationsConfig,
        spark: SparkResource,
        lakehouse: LakehouseResource,
    ):
        days = run_days(context)
        session = spark.spark_session
        order_days = _input_days(context, ORDERS_VALID)
        orders = _read(lakehouse, session, ORDERS_VALID, {"partition_date": order_days})
        orders = orders.persist(StorageLevel.MEMORY_AND_DISK)
        catalogue = recommend.catalogue(
            _read(lakehouse, session, DISHES), _read(lakehouse, session, RESTAURANTS)
        ).persist(StorageLevel.MEMORY_AND_DISK)
        params = recommend.AlsParams(
            rank=config.rank,
            max_iter=config.max_iter,
            reg_param=config.reg_param,
            alpha=config.alpha,
            seed=config.seed,
        )
        other = config.include_other_cities
        try:
            catalogue_size = catalogue.count()
            # audit: every as-of date's model must beat the baseline before anything is written
            evaluations = {}
            for day in days:
                start = day - dt.timedelta(days=w - 1)
                evaluations[day] = recommend.holdout(
                    orders, catalogue, start, day, params, other, catalogue_size
                )
            check = _gate(evaluations, config.min_precision_uplift)
            if not check.passed:
                yield check
                raise dg.Failure(
                    description=(
                        f"Circuit breaker tripped for {table.name} {partition_label(days)}: "
                        f"{check.description}. Nothing was published; the previous "
                        "recommendations stay live."
                    ),
                    metadata={"failed_checks": names.MODEL_BEATS_BASELINE},
                    allow_retries=False,
                )
            # publish: retrain on the whole window (the test day included) and recommend
            parts, paths = [], {}
            for day in days:
                start = day - dt.timedelta(days=w - 1)
                window_orders = recommend.placed_between(orders, start, day)
                fb = recommend.feedback(window_orders).persist(StorageLevel.MEMORY_AND_DISK)
                trained = recommend.train(fb, params)
                users = recommend.user_cities(window_orders)
                recs = recommend.recommend(
                    trained, users, catalogue, recommend.popularity(fb), other, k
                ).withColumn("partition_date", F.lit(day))
                paths[day] = _save_model(trained, model_path(lakehouse, day))
                parts.append(recs.select(*recommend.RECOMMENDATIONS_SCHEMA.fieldNames()))
                fb.unpersist()
            result = parts[0]
            for p in parts[1:]:
                result = result.unionByName(p)
            result = result.persist(StorageLevel.MEMORY_AND_DISK)
            shape = _shape(result, k)
            yield from _audit_then_publish(
                context,
                lakehouse,
                table,
                result,
                days,
                [check],
                description,
                RECOMMENDATIONS_DESCRIPTIONS,
                recommend.RECOMMENDATIONS_LINEAGE,
                {
                    **_metrics_metadata(evaluations),
                    **shape,
                    "model_path": dg.MetadataValue.path(paths[days[-1]]),
                    "model_paths": dg.MetadataValue.json(
                        {d.isoformat(): p for d, p in paths.items()}
                    ),
                    "als_params": dg.MetadataValue.json(params.as_dict()),
                    "min_precision_uplift": config.min_precision_uplift,
                    "include_other_cities": other,
                    "orders_partitions_read": partition_label(order_days),
                },
            )
            result.unpersist()
        finally:
            orders.unpersist()
            catalogue.unpersist()

    return _dish_recommendations


def _save_model(trained: recommend.Trained, path: str) -> str:
    """The ALS model and the id mappings it needs (its users and items are integers)."""
    trained.model.write().overwrite().save(f"{path}/als")
    trained.users.write.mode("overwrite").parquet(f"{path}/user_index")
    trained.items.write.mode("overwrite").parquet(f"{path}/dish_index")
    return path


def _shape(recs: DataFrame, k: int) -> dict:
    row = recs.agg(
        F.count_distinct("partition_date", "user_id").alias("users"),
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("dish_id").alias("dishes"),
        F.sum((F.col("source") == "als").cast("long")).alias("als"),
    ).first()
    return {
        "active_users": int(row["users"] or 0),
        "recommended_dishes": int(row["dishes"] or 0),
        "share_ranked_by_als": float((row["als"] or 0) / row["rows"]) if row["rows"] else 0.0,
        "k": k,
    }


def _metrics_metadata(evaluations: dict[dt.date, recommend.Evaluation]) -> dict:
    """The newest as-of date's metrics as numbers (plotted by the UI), every date's as JSON."""
    newest = evaluations[max(evaluations)]
    return {
        **newest.model.as_dict("model"),
        **newest.baseline.as_dict("baseline"),
        "precision_uplift": newest.uplift,
        "evaluated_users": newest.model.users,
        "holdout_train_days": partition_label(list(newest.train_days)),
        "holdout_test_day": newest.test_day.isoformat(),
        "holdout_by_as_of": dg.MetadataValue.json(
            {
                d.isoformat(): {
                    **e.model.as_dict("model"),
                    **e.baseline.as_dict("baseline"),
                    "evaluated_users": e.model.users,
                }
                for d, e in sorted(evaluations.items())
            }
        ),
    }


def _gate(evaluations: dict[dt.date, recommend.Evaluation], margin: float) -> dg.AssetCheckResult:
    k = recommend.K
    failed = []
    for day, e in sorted(evaluations.items()):
        if e.model.users == 0:
            failed.append(
                f"{day}: no user ordered on {day} with history in "
                f"{e.train_days[0]}..{e.train_days[1]}, so the model cannot be evaluated"
            )
        elif not e.uplift > margin:
            failed.append(
                f"{day}: model precision@{k} {e.model.precision_at_k:.4f} does not beat the "
                f"popularity baseline's {e.baseline.precision_at_k:.4f} by more than {margin}"
            )
    newest = evaluations[max(evaluations)]
    return dg.AssetCheckResult(
        check_name=names.MODEL_BEATS_BASELINE,
        asset_key=DISH_RECOMMENDATIONS.name,
        passed=not failed,
        description="; ".join(failed)
        if failed
        else f"model precision@{k} beats the popularity baseline by more than {margin} on every as-of date",
        metadata={
            **newest.model.as_dict("model"),
            **newest.baseline.as_dict("baseline"),
            "precision_uplift": newest.uplift,
            "min_precision_uplift": margin,
            "evaluated_users": newest.model.users,
        },
    )
