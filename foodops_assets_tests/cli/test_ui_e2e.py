"""`make ui` serves the graph: dagster dev on loopback shows assets, partitions and checks."""

import pytest

from foodops_assets_tests.conftest import subprocess_env
from foodops_assets_tests.processes import dagster_dev

pytestmark = pytest.mark.e2e

QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    dependencyKeys { path }
    isPartitioned
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
}
"""


def test_dagster_dev_shows_the_graph_partitions_and_checks(lake):
    with dagster_dev(subprocess_env(lake), lake.root) as dev:
        nodes = {"/".join(n["assetKey"]["path"]): n for n in dev.graphql(QUERY)["assetNodes"]}
        assert dev.url.startswith("http://127.0.0.1:")
    assert {k: n["groupName"] for k, n in nodes.items()} == {
        "restaurants": "bronze",
        "dishes": "bronze",
        "restaurants_history": "dimensions",
        "dishes_history": "dimensions",
        "orders_raw": "bronze",
        "deliveries_raw": "bronze",
        "reviews_raw": "bronze",
        "orders_valid": "silver",
        "deliveries_valid": "silver",
        "reviews_valid": "silver",
        "dead_letter_queue": "silver",
        "restaurant_daily_sales": "gold",
        "city_hourly_demand": "gold",
        "delivery_performance_daily": "gold",
        "restaurant_ratings_daily": "gold",
        "user_features": "ml_features",
        "dish_features": "ml_features",
        "dish_recommendations": "ml_features",
    }
    assert nodes["orders_valid"]["isPartitioned"] and not nodes["restaurants"]["isPartitioned"]

    # the graph shows the history dimensions feeding the tables that name restaurants and dishes
    def upstream(asset: str) -> set[str]:
        return {"/".join(d["path"]) for d in nodes[asset]["dependencyKeys"]}

    for asset in ("restaurant_daily_sales", "restaurant_ratings_daily"):
        assert "restaurants_history" in upstream(asset), asset
    assert "dishes_history" in upstream("user_features")
    assert {"dishes_history", "restaurants_history"} <= upstream("dish_recommendations")
    assert nodes["orders_valid"]["owners"] == [{"team": "ordering"}]
    checks = {
        c["name"]: c["blocking"] for c in nodes["orders_valid"]["assetChecksOrError"]["checks"]
    }
    assert checks["not_empty"] is True and checks["conservation"] is True and len(checks) == 7
    assert checks["published_consistency"] is True  # the circuit breaker that rolls back
