"""Dish recommendations: Spark MLlib ALS on implicit feedback, and how good they are.

Feedback is what users did: the number of placed orders of a dish by a user in the
training days (cancelled orders say nothing about taste). A user can only order from
restaurants of the city they live in (the city of their newest order), so candidates
are the dishes of that city unless other cities are allowed.

Ranking: the ALS score; dishes the model has no factors for (nobody ordered them in
the training days) follow by popularity, then by id, so every user gets ``k`` dishes
when the city offers that many.

Evaluation is a time-based holdout: train on the window's days before its last day,
test on the last day. Over the users who ordered on the test day and have history in
the training days: precision@k (hits / k), recall@k (hits / distinct dishes ordered
that day), averaged over users; coverage is the share of the catalogue that appears
in anyone's list. The popularity baseline is scored on the same users with the same
candidates: the city's most ordered dishes of the training days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from . import versions

if TYPE_CHECKING:
    from pyspark.ml.recommendation import ALSModel

K = 10

RECOMMENDATIONS_SCHEMA = T.StructType(
    [
        T.StructField("partition_date", T.DateType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("rank", T.IntegerType()),
        T.StructField("dish_id", T.StringType()),
        T.StructField("restaurant_id", T.StringType()),
        T.StructField("city", T.StringType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("source", T.StringType()),
    ]
)

RECOMMENDATIONS_LINEAGE: dict[str, dict[str, list[str]]] = {
    "partition_date": {},
    "user_id": {"orders_valid": ["user_id"]},
    "rank": {"orders_valid": ["user_id", "dish_id", "status"]},
    "dish_id": {"dishes": ["dish_id"], "orders_valid": ["user_id", "dish_id", "status"]},
    "restaurant_id": {"dishes": ["restaurant_id"]},
    "city": {"orders_valid": ["city", "order_time"]},
    "score": {"orders_valid": ["user_id", "dish_id", "status"]},
    "source": {"orders_valid": ["user_id", "dish_id", "status"]},
}


@dataclass(frozen=True)
class AlsParams:
    rank: int = 16
    max_iter: int = 10
    reg_param: float = 0.05
    alpha: float = 20.0
    seed: int = 42

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Metrics:
    precision_at_k: float
    recall_at_k: float
    coverage: float
    users: int

    def as_dict(self, prefix: str) -> dict[str, float | int]:
        return {
            f"{prefix}_precision_at_{K}": self.precision_at_k,
            f"{prefix}_recall_at_{K}": self.recall_at_k,
            f"{prefix}_coverage": self.coverage,
        }


def placed_between(orders: DataFrame, first: dt.date, last: dt.date) -> DataFrame:
    """Placed orders of partitions first..last timed before the day after ``last``."""
    cutoff = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return orders.where(
        (F.col("status") == "placed")
        & F.col("partition_date").between(F.lit(first), F.lit(last))
        & (F.col("order_time") < F.lit(cutoff))
        & F.col("user_id").isNotNull()
        & F.col("dish_id").isNotNull()
    )


def feedback(orders: DataFrame) -> DataFrame:
    """(user_id, dish_id, strength): placed orders of the dish by the user."""
    return orders.groupBy("user_id", "dish_id").agg(
        F.count(F.lit(1)).cast("float").alias("strength")
    )


def user_cities(orders: DataFrame) -> DataFrame:
    """(user_id, city): the city of each user's newest order."""
    return orders.groupBy("user_id").agg(
        F.max_by("city", F.struct("order_time", "order_id")).alias("city")
    )


def catalogue(
    dishes: DataFrame, restaurants: DataFrame, as_of: dt.datetime | None = None
) -> DataFrame:
    """(dish_id, restaurant_id, city, cuisine): dishes a user can order, with their
    restaurant's city and the dish's cuisine.

    With ``as_of``, ``dishes`` and ``restaurants`` are their histories (dishes_history,
    restaurants_history) and the catalogue is the one valid at that time: a dish or a
    restaurant not on the marketplace then is no candidate, and a restaurant that moved
    since is in the city it was in then."""
    if as_of is not None:
        then = versions.valid_at(F.lit(as_of))
        dishes, restaurants = dishes.where(then), restaurants.where(then)
    cities = restaurants.select("restaurant_id", "city").dropDuplicates(["restaurant_id"])
    return (
        dishes.where(F.col("dish_id").isNotNull())
        .select("dish_id", "restaurant_id", "cuisine")
        .dropDuplicates(["dish_id"])
        .join(cities, "restaurant_id", "inner")
        .select("dish_id", "restaurant_id", "city", "cuisine")
    )


def _index(df: DataFrame, column: str, alias: str) -> DataFrame:
    """A dense integer id per distinct value (ALS needs ints), stable for the same input."""
    w = Window.orderBy(column)
    return df.select(column).distinct().withColumn(alias, (F.row_number().over(w) - 1).cast("int"))


@dataclass
class Trained:
    model: ALSModel
    users: DataFrame  # user_id, uid
    items: DataFrame  # dish_id, iid


def train(feedback_df: DataFrame, params: AlsParams) -> Trained:
    # imported here: pyspark.ml brings pandas, ~1 s of every process that loads the code
    # location (each run, the code server, the CLI), most of which never train
    from pyspark.ml.recommendation import ALS

    users = _index(feedback_df, "user_id", "uid")
    items = _index(feedback_df, "dish_id", "iid")
    data = (
        feedback_df.join(users, "user_id").join(items, "dish_id").select("uid", "iid", "strength")
    )
    als = ALS(
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg_param,
        alpha=params.alpha,
        implicitPrefs=True,
        userCol="uid",
        itemCol="iid",
        ratingCol="strength",
        seed=params.seed,
        nonnegative=False,
        coldStartStrategy="drop",
        numUserBlocks=2,
        numItemBlocks=2,
    )
    return Trained(als.fit(data), users, items)


def _dot(a: Column, b: Column) -> Column:
    return F.aggregate(
        F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0).cast("double"), lambda s, x: s + x
    )


def candidates(users: DataFrame, catalogue_df: DataFrame, other_cities: bool) -> DataFrame:
    """(user_id, city, dish_id, restaurant_id): what each user may be recommended."""
    cat = catalogue_df.select("dish_id", "restaurant_id", F.col("city").alias("dish_city"))
    if other_cities:
        pairs = users.crossJoin(F.broadcast(cat))
    else:
        pairs = users.join(F.broadcast(cat), users["city"] == cat["dish_city"], "inner")
    return pairs.select("user_id", "city", "dish_id", "restaurant_id")


def popularity(feedback_df: DataFrame) -> DataFrame:
    """(dish_id, popularity): placed orders per dish."""
    return feedback_df.groupBy("dish_id").agg(F.sum("strength").cast("double").alias("popularity"))


def top_k(scored: DataFrame, k: int = K) -> DataFrame:
    """The k best candidates per user by score, then popularity, then dish id."""
    w = Window.partitionBy("user_id").orderBy(
        F.desc_nulls_last("score"), F.desc_nulls_last("popularity"), F.asc("dish_id")
    )
    return (
        scored.withColumn("rank", F.row_number().over(w).cast("int"))
        .where(F.col("rank") <= k)
        .select(
            "user_id",
            "rank",
            "dish_id",
            "restaurant_id",
            "city",
            "score",
            F.when(F.col("score").isNotNull(), F.lit("als"))
            .otherwise(F.lit("popularity"))
            .alias("source"),
        )
    )


def recommend(
    trained: Trained,
    users: DataFrame,
    catalogue_df: DataFrame,
    pop: DataFrame,
    other_cities: bool = False,
    k: int = K,
) -> DataFrame:
    """Top-k dishes per user of ``users`` (user_id, city) by ALS score."""
    uf = trained.model.userFactors.join(trained.users, F.col("id") == F.col("uid")).select(
        "user_id", F.col("features").alias("uf")
    )
    itf = trained.model.itemFactors.join(trained.items, F.col("id") == F.col("iid")).select(
        "dish_id", F.col("features").alias("itf")
    )
    scored = (
        candidates(users, catalogue_df, other_cities)
        .join(uf, "user_id", "left")
        .join(F.broadcast(itf), "dish_id", "left")
        .join(F.broadcast(pop), "dish_id", "left")
        .withColumn(
            "score",
            F.when(
                F.col("uf").isNotNull() & F.col("itf").isNotNull(), _dot(F.col("uf"), F.col("itf"))
            ),
        )
    )
    return top_k(scored, k)


def recommend_popular(
    users: DataFrame,
    catalogue_df: DataFrame,
    pop: DataFrame,
    other_cities: bool = False,
    k: int = K,
) -> DataFrame:
    """The baseline: the most ordered dishes each user may order."""
    scored = (
        candidates(users, catalogue_df, other_cities)
        .join(F.broadcast(pop), "dish_id", "left")
        .withColumn("score", F.lit(None).cast("double"))
    )
    return top_k(scored, k)


def evaluate(recs: DataFrame, truth: DataFrame, catalogue_size: int, k: int = K) -> Metrics:
    """precision@k, recall@k over the users of ``truth`` (user_id, dish_id), and coverage."""
    relevant = truth.select("user_id", "dish_id").distinct()
    per_user = (
        relevant.groupBy("user_id")
        .agg(F.count(F.lit(1)).alias("relevant"))
        .join(
            recs.join(relevant, ["user_id", "dish_id"], "inner")
            .groupBy("user_id")
            .agg(F.count(F.lit(1)).alias("hits")),
            "user_id",
            "left",
        )
        .withColumn("hits", F.coalesce("hits", F.lit(0)))
    )
    scores = per_user.agg(
        F.count(F.lit(1)).alias("users"),
        F.avg(F.col("hits") / F.lit(k)).alias("p"),
        F.avg(F.col("hits") / F.col("relevant")).alias("r"),
    )
    covered = recs.join(relevant.select("user_id").distinct(), "user_id", "inner").agg(
        F.count_distinct("dish_id").alias("covered")
    )
    row = scores.crossJoin(covered).first()  # one Spark job for all three
    return Metrics(
        precision_at_k=float(row["p"] or 0.0),
        recall_at_k=float(row["r"] or 0.0),
        coverage=int(row["covered"] or 0) / catalogue_size if catalogue_size else 0.0,
        users=int(row["users"] or 0),
    )


@dataclass
class Evaluation:
    model: Metrics
    baseline: Metrics
    train_days: tuple[dt.date, dt.date]
    test_day: dt.date

    @property
    def uplift(self) -> float:
        return self.model.precision_at_k - self.baseline.precision_at_k


def holdout(
    orders: DataFrame,
    catalogue_df: DataFrame,
    window_start: dt.date,
    as_of: dt.date,
    params: AlsParams,
    other_cities: bool = False,
    catalogue_size: int | None = None,
) -> Evaluation:
    """Train on window_start..as_of-1, test on as_of, for the model and the baseline."""
    last_train = as_of - dt.timedelta(days=1)
    train_orders = placed_between(orders, window_start, last_train)
    fb = feedback(train_orders).cache()
    test = placed_between(orders, as_of, as_of).select("user_id", "dish_id")
    # warm users: ordered on the test day and have history to learn from
    users = user_cities(train_orders).join(test.select("user_id").distinct(), "user_id")
    truth = test.join(users.select("user_id"), "user_id")
    if catalogue_size is None:
        catalogue_size = catalogue_df.count()
    pop = popularity(fb)
    if users.isEmpty():  # no warm user (and so no feedback either): nothing to evaluate
        empty = Metrics(0.0, 0.0, 0.0, 0)
        fb.unpersist()
        return Evaluation(empty, empty, (window_start, last_train), as_of)
    trained = train(fb, params)
    model_recs = recommend(trained, users, catalogue_df, pop, other_cities).cache()
    base_recs = recommend_popular(users, catalogue_df, pop, other_cities).cache()
    try:
        return Evaluation(
            evaluate(model_recs, truth, catalogue_size),
            evaluate(base_recs, truth, catalogue_size),
            (window_start, last_train),
            as_of,
        )
    finally:
        model_recs.unpersist()
        base_recs.unpersist()
        fb.unpersist()
