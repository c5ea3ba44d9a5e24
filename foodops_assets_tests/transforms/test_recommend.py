"""Recommendation metrics and candidates on cases small enough to check by hand."""

from __future__ import annotations

import datetime as dt

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


def test_the_catalogue_as_of_a_day_is_the_versions_valid_then(spark):
    """A restaurant moved from Pune to Mumbai on day 3 and a dish left the menu on day 2:
    the candidates as of day 1 and day 3 differ the way the marketplace did."""
    day = lambda d: dt.datetime(2026, 11, d, tzinfo=dt.UTC)  # noqa: E731
    end_of = lambda d: day(d + 1) - dt.timedelta(microseconds=1)  # noqa: E731
    restaurants = spark.createDataFrame(
        [
            Row(restaurant_id="r1", city="Pune", valid_from=day(1), valid_to=day(3)),
            Row(restaurant_id="r1", city="Mumbai", valid_from=day(3), valid_to=None),
        ],
        "restaurant_id string, city string, valid_from timestamp, valid_to timestamp",
    )
    dishes = spark.createDataFrame(
        [
            Row(
                dish_id="d1",
                restaurant_id="r1",
                cuisine="Biryani",
                valid_from=day(1),
                valid_to=None,
            ),
            Row(
                dish_id="d2",
                restaurant_id="r1",
                cuisine="Chinese",
                valid_from=day(1),
                valid_to=day(2),
            ),
        ],
        "dish_id string, restaurant_id string, cuisine string, valid_from timestamp, valid_to timestamp",
    )

    def rows(d):
        cat = recommend.catalogue(dishes, restaurants, end_of(d))
        return sorted((r.dish_id, r.city, r.cuisine) for r in cat.collect())

    assert rows(1) == [("d1", "Pune", "Biryani"), ("d2", "Pune", "Chinese")]
    assert rows(3) == [("d1", "Mumbai", "Biryani")]
