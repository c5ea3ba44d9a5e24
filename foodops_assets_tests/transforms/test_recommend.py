"""Recommendation metrics and candidates on cases small enough to check by hand."""

from __future__ import annotations

from pyspark.sql import Row

from foodops_assets.transforms import recommend


def test_precision_recall_and_coverage_by_hand(spark):
    recs = spark.createDataFrame(
        [Row(user_id=u, dish_id=d) for u, d in [("u1", "a"), ("u1", "b"), ("u2", "c")]]
        + [Row(user_id="u2", dish_id="d"), Row(user_id="u3", dish_id="e")]
    )
    truth = spark.createDataFrame(
        [Row(user_id="u1", dish_id="a"), Row(user_id="u1", dish_id="c")]
        + [Row(user_id="u2", dish_id="d"), Row(user_id="u2", dish_id="d")]
    )
    m = recommend.evaluate(recs, truth, catalogue_size=8, k=2)
    # u1: 1 hit of 2 relevant; u2: 1 hit of 1; u3 did not order on the test day
    assert (m.users, m.precision_at_k, m.recall_at_k, m.coverage) == (2, 0.5, 0.75, 0.5)


def test_candidates_are_the_dishes_of_the_users_city_unless_configured(spark):
    users = spark.createDataFrame([Row(user_id="u1", city="Pune")])
    catalogue = spark.createDataFrame(
        [
            Row(dish_id="d1", restaurant_id="r1", city="Pune"),
            Row(dish_id="d2", restaurant_id="r2", city="Mumbai"),
        ]
    )
    home = recommend.candidates(users, catalogue, other_cities=False).collect()
    anywhere = recommend.candidates(users, catalogue, other_cities=True).collect()
    assert [r.dish_id for r in home] == ["d1"]
    assert sorted(r.dish_id for r in anywhere) == ["d1", "d2"]
