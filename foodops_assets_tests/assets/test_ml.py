"""ML assets on one small lake: features read their window, recommendations are gated.

The lake (shared by the module) holds five days of a crafted marketplace in which every
user keeps reordering two favourite dishes of their city, so a personalised model has
something to learn that the city's popularity ranking does not know.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from foodops_assets.assets.ml import FEATURE_WINDOW_DAYS, model_path
from foodops_assets.checks import names
from foodops_assets.lakehouse.tables import DISH_RECOMMENDATIONS, USER_FEATURES
from foodops_assets_tests.conftest import Lake, materialize
from foodops_assets_tests.factories import order, review

DAYS = [dt.date(2026, 11, 16) + dt.timedelta(days=i) for i in range(5)]
D = DAYS[-1]
CITIES = ("Pune", "Mumbai")
CUISINES = ("North Indian", "South Indian", "Chinese", "Pizza")
WEAK = {"rank": 1, "max_iter": 1, "reg_param": 1000.0}


def _world():
    restaurants, dishes, by_city = [], [], {c: [] for c in CITIES}
    for c, city in enumerate(CITIES):
        for j, cuisine in enumerate(CUISINES):
            rid = f"r-{c}{j}"
            restaurants.append(
                {
                    "restaurant_id": rid,
                    "name": f"Kitchen {rid}",
                    "cuisine": cuisine,
                    "city": city,
                    "latitude": 18.5,
                    "longitude": 73.8,
                    "onboarded_date": "2024-01-01",
                }
            )
            for n in range(5):
                dish = {
                    "dish_id": f"d-{c}{j}-{n}",
                    "restaurant_id": rid,
                    "name": f"Dish {n}",
                    "cuisine": cuisine,
                    "is_veg": n % 2 == 0,
                    "list_price": 100.0 + 10 * n,
                }
                dishes.append(dish)
                by_city[city].append(dish)
    return restaurants, dishes, by_city


def _orders_and_reviews():
    rng = random.Random(4)
    _, _, by_city = _world()
    users = []
    for i in range(24):
        city = CITIES[i % 2]
        users.append((f"u-{i:02d}", city, rng.sample(by_city[city], 2)))
    orders, reviews, n = {d: [] for d in DAYS}, {d: [] for d in DAYS}, 0
    for day in DAYS:
        for user, city, favourites in users:
            picks = [f for f in favourites if rng.random() < 0.8]
            if rng.random() < 0.5:  # now and then something popular in town
                picks.append(by_city[city][min(int(rng.expovariate(0.4)), 19)])
            for dish in picks:
                n += 1
                rec = order(
                    n,
                    day,
                    order_id=f"o-{n:04d}",
                    user_id=user,
                    restaurant_id=dish["restaurant_id"],
                    dish_id=dish["dish_id"],
                    quantity=1,
                    price=dish["list_price"],
                    order_time=f"{day.isoformat()}T{10 + n % 12:02d}:{n % 60:02d}:00Z",
                    city=city,
                    status="cancelled" if n % 17 == 0 else "placed",
                )
                orders[day].append(rec)
                if n % 3 == 0 and rec["status"] == "placed":
                    reviews[day].append(
                        review(
                            n,
                            day,
                            review_id=f"rv-{n:04d}",
                            order_id=rec["order_id"],
                            user_id=user,
                            restaurant_id=dish["restaurant_id"],
                            rating=1 + n % 5,
                            review_time=f"{day.isoformat()}T23:00:00Z",
                        )
                    )
    # landed in D's partition within the clock-skew tolerance silver accepts, but timed
    # after D: no feature as of D may see them
    late = order(
        9999,
        D,
        order_id="o-9999",
        user_id="u-00",
        restaurant_id=users[0][2][0]["restaurant_id"],
        dish_id=users[0][2][0]["dish_id"],
        quantity=3,
        price=users[0][2][0]["list_price"],
        order_time=f"{(D + dt.timedelta(days=1)).isoformat()}T00:30:00Z",
        city="Pune",
    )
    orders[D].append(late)
    reviews[D].append(
        review(
            9999,
            D,
            review_id="rv-9999",
            order_id=orders[D][0]["order_id"],
            user_id=orders[D][0]["user_id"],
            restaurant_id=orders[D][0]["restaurant_id"],
            rating=1,
            review_time=f"{(D + dt.timedelta(days=1)).isoformat()}T00:40:00Z",
        )
    )
    return orders, reviews


@pytest.fixture(scope="module")
def ml_lake(tmp_path_factory, spark_resource):
    lake = Lake.under(tmp_path_factory.mktemp("ml-lake"))
    restaurants, dishes, _ = _world()
    lake.land("restaurants", None, "snapshot-20261101.jsonl", restaurants)
    lake.land("dishes", None, "snapshot-20261101.jsonl", dishes)
    orders, reviews = _orders_and_reviews()
    for day in DAYS:
        lake.land("orders", day, "batch-0001.jsonl", orders[day])
        lake.land("reviews", day, "batch-0001.jsonl", reviews[day])
    materialize(lake, spark_resource, ["restaurants", "dishes"])
    materialize(
        lake,
        spark_resource,
        ["orders_raw", "orders_valid", "reviews_raw", "reviews_valid"],
        tags={
            "dagster/asset_partition_range_start": DAYS[0].isoformat(),
            "dagster/asset_partition_range_end": D.isoformat(),
        },
    )
    return lake, orders, reviews


@pytest.fixture(scope="module")
def published(ml_lake, spark_resource):
    """The three ML assets as of D, in one run."""
    lake, orders, reviews = ml_lake
    result = materialize(
        lake,
        spark_resource,
        ["user_features", "dish_features", "dish_recommendations"],
        D.isoformat(),
    )
    return lake, orders, reviews, result


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _table(lake: Lake, table) -> list[dict]:
    return DeltaTable(str(lake.lake / table.path)).to_pyarrow_table().to_pylist()


def test_features_read_the_trailing_window_and_nothing_after_the_as_of_date(published):
    lake, orders, reviews, result = published
    first = D - dt.timedelta(days=FEATURE_WINDOW_DAYS - 1)
    users = _metadata(result, "user_features")
    assert users["orders_partitions_read"] == f"{first.isoformat()}...{D.isoformat()}"
    assert users["reviews_partitions_read"] == f"{first.isoformat()}...{D.isoformat()}"
    # the trend compares with the window before: dish features read two windows of orders
    first2 = D - dt.timedelta(days=2 * FEATURE_WINDOW_DAYS - 1)
    dishes_meta = _metadata(result, "dish_features")
    assert dishes_meta["orders_partitions_read"] == f"{first2.isoformat()}...{D.isoformat()}"
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        names.USER_FEATURES_SANE: True,
        names.DISH_FEATURES_SANE: True,
        names.MODEL_BEATS_BASELINE: True,
    }

    # u-00, by hand from what landed: the order and the review timed after D do not count
    cutoff = f"{(D + dt.timedelta(days=1)).isoformat()}T00:00:00Z"
    mine = [o for d in DAYS for o in orders[d] if o["user_id"] == "u-00"]
    placed = [o for o in mine if o["status"] == "placed" and o["order_time"] < cutoff]
    cancelled = [o for o in mine if o["status"] == "cancelled"]
    written = [r for d in DAYS for r in reviews[d] if r["user_id"] == "u-00"]
    rated = [r["rating"] for r in written if r["review_time"] < cutoff]
    rows = {r["user_id"]: r for r in _table(lake, USER_FEATURES)}
    assert len(rows) == 24 and users["dagster/row_count"] == 24
    u0 = rows["u-00"]
    assert u0["partition_date"] == D and u0["recency_days"] == 0 and u0["home_city"] == "Pune"
    assert u0["orders"] == len(placed) and u0["cancelled_orders"] == len(cancelled)
    assert float(u0["spend"]) == pytest.approx(sum(o["price"] for o in placed))
    assert u0["reviews_given"] == len(rated)
    assert u0["avg_rating_given"] == pytest.approx(sum(rated) / len(rated))


def test_recommendations_ten_valid_dishes_per_active_user_and_beat_the_baseline(published):
    lake, _, _, result = published
    meta = _metadata(result, "dish_recommendations")
    recs = _table(lake, DISH_RECOMMENDATIONS)
    restaurants, dishes, _ = _world()
    city_of = {r["restaurant_id"]: r["city"] for r in restaurants}
    restaurant_of = {d["dish_id"]: d["restaurant_id"] for d in dishes}

    by_user: dict[str, list[dict]] = {}
    for r in recs:
        by_user.setdefault(r["user_id"], []).append(r)
    assert len(by_user) == 24 == meta["active_users"]  # everyone ordered in the window
    for user, rows in by_user.items():
        assert sorted(r["rank"] for r in rows) == list(range(1, 11)), user
        assert len({r["dish_id"] for r in rows}) == 10, user  # no duplicates
        for r in rows:
            assert restaurant_of[r["dish_id"]] == r["restaurant_id"]  # a real dish
            assert city_of[r["restaurant_id"]] == r["city"]  # orderable where the user lives
        assert {r["city"] for r in rows} == {"Pune" if int(user[2:]) % 2 == 0 else "Mumbai"}

    # the holdout: trained on the days before D, tested on D, next to the baseline
    assert meta["holdout_test_day"] == D.isoformat()
    assert meta["evaluated_users"] > 0
    for metric in ("precision_at_10", "recall_at_10", "coverage"):
        assert 0 <= meta[f"model_{metric}"] <= 1 and 0 <= meta[f"baseline_{metric}"] <= 1
    assert meta["model_precision_at_10"] > meta["baseline_precision_at_10"] + 0.005
    assert meta["precision_uplift"] == pytest.approx(
        meta["model_precision_at_10"] - meta["baseline_precision_at_10"]
    )
    [check] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == names.MODEL_BEATS_BASELINE
    ]
    assert check.passed and check.metadata["evaluated_users"].value == meta["evaluated_users"]

    # the model is saved under the lake, with the id mappings it needs
    path = Path(meta["model_path"])
    assert str(path) == model_path(lake.resource(), D)
    assert path.is_relative_to(lake.lake)
    for part in ("als/metadata", "als/userFactors", "als/itemFactors", "user_index", "dish_index"):
        assert (path / part).exists(), part


def test_a_weak_model_is_blocked_and_the_previous_recommendations_stay_live(
    published, spark_resource
):
    lake = published[0]
    version = DeltaTable(str(lake.lake / DISH_RECOMMENDATIONS.path)).version()
    before = sorted(_table(lake, DISH_RECOMMENDATIONS), key=lambda r: (r["user_id"], r["rank"]))

    result = materialize(
        lake,
        spark_resource,
        ["dish_recommendations"],
        D.isoformat(),
        raise_on_error=False,
        run_config={"ops": {"dish_recommendations": {"config": WEAK}}},
    )
    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == names.MODEL_BEATS_BASELINE and not check.passed
    values = {k: v.value for k, v in check.metadata.items()}
    assert values["model_precision_at_10"] <= values["baseline_precision_at_10"] + 0.005
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "previous recommendations stay live" in failure.step_failure_data.error.message
    assert not result.get_asset_materialization_events()

    # nothing was published: same Delta version, same rows
    assert DeltaTable(str(lake.lake / DISH_RECOMMENDATIONS.path)).version() == version
    after = sorted(_table(lake, DISH_RECOMMENDATIONS), key=lambda r: (r["user_id"], r["rank"]))
    assert after == before
