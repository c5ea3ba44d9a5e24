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
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
from pydantic import Field
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..checks import names, quality
from ..lakehouse.resource import LakehouseResource
from ..lakehouse.tables import (
    DISH_FEATURES,
    DISH_RECOMMENDATIONS,
    DISHES,
    DISHES_HISTORY,
    ML_MODELS_DIR,
    ORDERS_VALID,
    RESTAURANTS,
    RESTAURANTS_HISTORY,
    REVIEWS_VALID,
    USER_FEATURES,
    TableRef,
)
from ..transforms import features, recommend
from .common import KINDS, NO_RETRIES, StepRetries, partition_label, trailing_days
from .step import Audited, Columns, DerivedTable, Step, audit, derived_asset

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


def _windows_of(*tables: TableRef, days: int = FEATURE_WINDOW_DAYS) -> list[dg.AssetDep]:
    """Each as-of date reads the trailing ``days`` partitions of ``tables``."""
    return [dg.AssetDep(t.name, partition_mapping=trailing_days(days)) for t in tables]


@dataclass(frozen=True)
class _RowsSane:
    """A blocking check that every row of the result satisfies ``rules``."""

    name: str
    asserts: str  # what the check asserts, shown in the UI
    label: str
    rules: Callable[[], dict]  # rule name -> Column (built at run time: Columns need Spark)
    key: list[str]


def _window_features(
    table: TableRef,
    description: str,
    columns: Columns,
    deps: list,
    check: "_RowsSane",
    transform,
    partitions_def: dg.PartitionsDefinition,
    retries: StepRetries = NO_RETRIES,
) -> dg.AssetsDefinition:
    """An as-of-date feature table over trailing windows of orders and reviews, whose rows
    must pass ``check`` to publish."""

    def compute(step: Step) -> Audited:
        order_days = step.input_days(ORDERS_VALID)
        review_days = step.input_days(REVIEWS_VALID)
        orders = step.read(ORDERS_VALID, order_days)
        reviews = step.read(REVIEWS_VALID, review_days)
        result = step.cache(transform(step, orders, reviews))
        return Audited(
            result,
            [quality.rows_sane(check.name, check.label, result, check.rules(), check.key)],
            {
                "window_days": FEATURE_WINDOW_DAYS,
                "orders_partitions_read": partition_label(order_days),
                "reviews_partitions_read": partition_label(review_days),
            },
        )

    spec = DerivedTable(
        table=table,
        group=GROUP,
        description=description,
        columns=columns,
        deps=deps,
        checks={check.name: check.asserts},
        metadata={"window_days": FEATURE_WINDOW_DAYS},
    )
    return derived_asset(spec, partitions_def, compute, retries=retries)


def user_features_asset(
    partitions_def: dg.PartitionsDefinition, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    w = FEATURE_WINDOW_DAYS
    c = F.col  # noqa: N806 - the rules read as SQL
    return _window_features(
        USER_FEATURES,
        f"Per as-of date and user, over the trailing {w} days: orders, spend, recency, "
        "favourite cuisine, ratings given, cancellation share.",
        Columns(
            features.USER_FEATURES_SCHEMA,
            USER_FEATURES_DESCRIPTIONS,
            features.USER_FEATURES_LINEAGE,
        ),
        [*_windows_of(ORDERS_VALID, REVIEWS_VALID), DISHES.name, DISHES_HISTORY.name],
        _RowsSane(
            names.USER_FEATURES_SANE,
            "No order after the as-of date, recency non-negative, shares within 0..1, "
            "ratings within 1..5, spend non-negative.",
            "user features",
            lambda: {
                "no_order_after_as_of": c("last_order_date") <= c("partition_date"),
                "recency_non_negative": c("recency_days") >= 0,
                "cancellation_share_within_0_1": c("cancellation_share").between(0, 1),
                "spend_non_negative": c("spend") >= 0,
                "avg_rating_within_1_5": c("avg_rating_given").isNull()
                | c("avg_rating_given").between(1, 5),
            },
            ["partition_date", "user_id"],
        ),
        lambda step, orders, reviews: features.user_features(
            orders, reviews, _dishes_as_ordered(step), step.days, w
        ),
        partitions_def,
        retries,
    )


def dish_features_asset(
    partitions_def: dg.PartitionsDefinition, retries: StepRetries = NO_RETRIES
) -> dg.AssetsDefinition:
    w = FEATURE_WINDOW_DAYS
    c = F.col  # noqa: N806 - the rules read as SQL
    return _window_features(
        DISH_FEATURES,
        f"Per as-of date and dish, over the trailing {w} days: orders, distinct users, "
        f"reorder rate, average rating, and the trend against the {w} days before.",
        Columns(
            features.DISH_FEATURES_SCHEMA,
            DISH_FEATURES_DESCRIPTIONS,
            features.DISH_FEATURES_LINEAGE,
        ),
        # two windows of orders: the current one and the one it is compared with
        [*_windows_of(ORDERS_VALID, days=2 * w), *_windows_of(REVIEWS_VALID)],
        _RowsSane(
            names.DISH_FEATURES_SANE,
            "orders >= distinct_users >= repeat_users, reorder rate within 0..1, "
            "average rating within 1..5.",
            "dish features",
            lambda: {
                "counts_ordered": (c("orders") >= c("distinct_users"))
                & (c("distinct_users") >= c("repeat_users"))
                & (c("repeat_users") >= 0),
                "reorder_rate_within_0_1": c("reorder_rate").isNull()
                | c("reorder_rate").between(0, 1),
                "avg_rating_within_1_5": c("avg_rating").isNull() | c("avg_rating").between(1, 5),
            },
            ["partition_date", "dish_id"],
        ),
        lambda step, orders, reviews: features.dish_features(orders, reviews, step.days, w),
        partitions_def,
        retries,
    )


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
    w = FEATURE_WINDOW_DAYS
    k = recommend.K

    def compute(step: Step) -> Audited:
        config, days = step.config, step.days
        order_days = step.input_days(ORDERS_VALID)
        orders = step.cache(step.read(ORDERS_VALID, order_days))
        catalogues, reference = _catalogues(step, days)
        params = recommend.AlsParams(
            rank=config.rank,
            max_iter=config.max_iter,
            reg_param=config.reg_param,
            alpha=config.alpha,
            seed=config.seed,
        )
        other = config.include_other_cities
        sizes = {day: catalogue.count() for day, catalogue in catalogues.items()}
        # audit: every as-of date's model must beat the baseline before anything is trained
        # on the whole window or written
        evaluations = {}
        for day in days:
            start = day - dt.timedelta(days=w - 1)
            evaluations[day] = recommend.holdout(
                orders, catalogues[day], start, day, params, other, sizes[day]
            )
        check = _gate(evaluations, config.min_precision_uplift)
        audit([check], "Nothing was published; the previous recommendations stay live.")
        # publish: retrain on the whole window (the test day included) and recommend
        parts, paths = [], {}
        for day in days:
            start = day - dt.timedelta(days=w - 1)
            window_orders = recommend.placed_between(orders, start, day)
            fb = recommend.feedback(window_orders).persist(StorageLevel.MEMORY_AND_DISK)
            trained = recommend.train(fb, params)
            users = recommend.user_cities(window_orders)
            recs = recommend.recommend(
                trained, users, catalogues[day], recommend.popularity(fb), other, k
            ).withColumn("partition_date", F.lit(day))
            paths[day] = _save_model(trained, model_path(step.lakehouse, day))
            parts.append(recs.select(*recommend.RECOMMENDATIONS_SCHEMA.fieldNames()))
            fb.unpersist()
        result = parts[0]
        for p in parts[1:]:
            result = result.unionByName(p)
        result = step.cache(result)
        return Audited(
            result,
            [check],
            {
                **_metrics_metadata(evaluations),
                **_shape(result, k),
                "model_path": dg.MetadataValue.path(paths[days[-1]]),
                "model_paths": dg.MetadataValue.json({d.isoformat(): p for d, p in paths.items()}),
                "als_params": dg.MetadataValue.json(params.as_dict()),
                "min_precision_uplift": config.min_precision_uplift,
                "include_other_cities": other,
                "orders_partitions_read": partition_label(order_days),
                "reference_data_from": reference,
            },
        )

    spec = DerivedTable(
        table=DISH_RECOMMENDATIONS,
        group=GROUP,
        description=(
            f"Top-{k} dishes per active user, from Spark MLlib ALS on the implicit feedback of "
            f"the trailing {w} days; published only when it beats the popularity baseline."
        ),
        columns=Columns(
            recommend.RECOMMENDATIONS_SCHEMA,
            RECOMMENDATIONS_DESCRIPTIONS,
            recommend.RECOMMENDATIONS_LINEAGE,
        ),
        deps=[
            *_windows_of(ORDERS_VALID),
            DISHES.name,
            RESTAURANTS.name,
            DISHES_HISTORY.name,
            RESTAURANTS_HISTORY.name,
        ],
        checks={
            names.MODEL_BEATS_BASELINE: (
                f"On a time-based holdout (train on the window's days before the as-of date, "
                f"test on the as-of date), ALS precision@{k} beats the popularity baseline's "
                "by the configured margin; otherwise nothing is published."
            )
        },
        metadata={"window_days": w, "k": k},
        kinds=frozenset({*KINDS, "mllib"}),
    )
    return derived_asset(spec, partitions_def, compute, DishRecommendationsConfig, retries)


def _dishes_as_ordered(step: Step) -> DataFrame:
    """Dishes as the user features join them: the history (each order counts for the
    cuisine its dish had when it was ordered) once it has been built, else the newest
    snapshot."""
    if step.lakehouse.store.exists(DISHES_HISTORY):
        return step.read(DISHES_HISTORY)
    return step.read(DISHES)


def _catalogues(step: Step, days: list[dt.date]) -> tuple[dict[dt.date, DataFrame], str]:
    """Each as-of date's candidate dishes with their restaurant's city and cuisine: as
    they were at the end of that day (the history tables), or the newest snapshots for
    every day while the histories have not been built; and where they came from."""
    store = step.lakehouse.store
    if store.exists(DISHES_HISTORY) and store.exists(RESTAURANTS_HISTORY):
        dishes, restaurants = step.read(DISHES_HISTORY), step.read(RESTAURANTS_HISTORY)
        end = dt.timedelta(days=1, microseconds=-1)
        return (
            {
                day: step.cache(
                    recommend.catalogue(
                        dishes, restaurants, dt.datetime.combine(day, dt.time(), dt.UTC) + end
                    )
                )
                for day in days
            },
            f"{DISHES_HISTORY.name}, {RESTAURANTS_HISTORY.name} (as of the end of each as-of date)",
        )
    catalogue = step.cache(recommend.catalogue(step.read(DISHES), step.read(RESTAURANTS)))
    return (
        dict.fromkeys(days, catalogue),
        f"{DISHES.name}, {RESTAURANTS.name} (newest snapshots: the histories are not built)",
    )


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
