import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from foodops_assets.definitions import (
    DAILY_ASSETS,
    DAILY_JOB,
    ML_ASSETS,
    ML_JOB,
    REFERENCE_JOB,
    build_definitions,
)
from foodops_assets.lakehouse.tables import TABLES
from foodops_assets.settings import Settings

EXPECTED_GROUPS = {
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


def _defs():
    return build_definitions(Settings(landing_root="/tmp/landing", lake_root="/tmp/lake"))


def test_asset_key_is_table_name_and_group_is_layer():
    graph = _defs().resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == EXPECTED_GROUPS
    for name, group in groups.items():
        assert TABLES[name].layer == group


def test_every_asset_carries_description_owner_kinds_and_column_schema():
    graph = _defs().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description, name
        assert node.owners, name
        assert {"spark", "delta"} <= set(node.kinds), name
        # every asset, bronze included, shows its columns before anything is materialised
        schema = node.metadata.get("dagster/column_schema")
        assert isinstance(schema, dg.TableSchema), name
        assert len(schema.columns) >= 3 and all(c.type for c in schema.columns), name
    bronze = graph.get(dg.AssetKey("orders_raw")).metadata["dagster/column_schema"].columns
    bronze = {c.name: c for c in bronze}
    assert bronze["price"].description and bronze["source_file"].type == "string"
    assert {"order_id", "_rescued_data", "source_line", "partition_date"} <= set(bronze)
    restaurants = graph.get(dg.AssetKey("restaurants")).metadata["dagster/column_schema"]
    assert "partition_date" not in {c.name for c in restaurants.columns}
    assert graph.get(dg.AssetKey("orders_valid")).owners == ["team:ordering"]
    assert graph.get(dg.AssetKey("deliveries_valid")).owners == ["team:logistics"]
    assert graph.get(dg.AssetKey("reviews_raw")).owners == ["team:customer-experience"]


def test_daily_assets_are_partitioned_with_single_run_backfills():
    graph = _defs().resolve_asset_graph()
    for name in (*DAILY_ASSETS, *ML_ASSETS, "dead_letter_queue"):
        node = graph.get(dg.AssetKey(name))
        assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition), name
        assert node.partitions_def.start.strftime("%Y-%m-%d") == "2025-01-01"
        if node.is_executable:
            assert node.backfill_policy == dg.BackfillPolicy.single_run(), name
    assert graph.get(dg.AssetKey("restaurants")).partitions_def is None


def test_blocking_checks_guard_silver_and_gold():
    graph = _defs().resolve_asset_graph()
    blocking = {
        (k.asset_key.to_user_string(), k.name)
        for k in graph.asset_check_keys
        if graph.get_check_spec(k).blocking
    }
    assert {
        ("orders_valid", "not_empty"),
        ("orders_valid", "dlq_rate_below_threshold"),
        ("orders_valid", "unique_business_key"),
        ("orders_valid", "known_restaurants_and_dishes"),
        ("orders_valid", "pandera_contract"),
        ("orders_valid", "conservation"),
        ("orders_valid", "published_consistency"),
        ("restaurant_daily_sales", "revenue_reconciles_with_silver"),
        ("city_hourly_demand", "revenue_reconciles_with_silver"),
    } <= blocking
    for silver in ("deliveries_valid", "reviews_valid"):
        for check in (
            "not_empty",
            "dlq_rate_below_threshold",
            "unique_business_key",
            "conservation",
            "pandera_contract",
            "known_orders",
            "published_consistency",
        ):
            assert (silver, check) in blocking, (silver, check)
    assert {
        ("delivery_performance_daily", "deliveries_reconcile_with_silver"),
        ("delivery_performance_daily", "delivery_metrics_sane"),
        ("restaurant_ratings_daily", "reviews_reconcile_with_silver"),
        ("restaurant_ratings_daily", "ratings_sane"),
        ("user_features", "user_features_sane"),
        ("dish_features", "dish_features_sane"),
        ("dish_recommendations", "model_beats_popularity_baseline"),
    } <= blocking
    # schema drift on bronze is reported, never a circuit breaker
    for bronze in ("orders_raw", "deliveries_raw", "reviews_raw"):
        key = dg.AssetCheckKey(dg.AssetKey(bronze), "landing_schema_matches_contract")
        assert key in graph.asset_check_keys and not graph.get_check_spec(key).blocking


def test_trailing_partitions_are_dependencies_through_partition_mappings():
    graph = _defs().resolve_asset_graph()

    def upstream(child: str, parent: str, key: str) -> list[str]:
        mapping = graph.get_partition_mapping(dg.AssetKey(child), dg.AssetKey(parent))
        assert isinstance(mapping, dg.TimeWindowPartitionMapping), (child, parent)
        parents = graph.get_parent_partition_keys_for_child(
            key, dg.AssetKey(parent), dg.AssetKey(child)
        ).partitions_subset.get_partition_keys()
        return sorted(parents)

    # a backfill of day D of the ratings reads exactly D-29..D of reviews_valid
    window = upstream("restaurant_ratings_daily", "reviews_valid", "2026-11-20")
    assert (len(window), window[0], window[-1]) == (30, "2026-10-22", "2026-11-20")
    # deliveries and reviews look their orders up in the contract's lookback
    assert upstream("deliveries_valid", "orders_valid", "2026-11-20") == [
        "2026-11-18",
        "2026-11-19",
        "2026-11-20",
    ]
    assert len(upstream("reviews_valid", "orders_valid", "2026-11-20")) == 8
    # and the first partitions do not depend on days before the start
    assert upstream("restaurant_ratings_daily", "reviews_valid", "2025-01-02") == [
        "2025-01-01",
        "2025-01-02",
    ]
    # as-of features and recommendations read the trailing 14 days (dish trends: 28)
    for child in ("user_features", "dish_recommendations"):
        window = upstream(child, "orders_valid", "2026-11-20")
        assert (len(window), window[0], window[-1]) == (14, "2026-11-07", "2026-11-20")
    assert len(upstream("user_features", "reviews_valid", "2026-11-20")) == 14
    assert len(upstream("dish_features", "orders_valid", "2026-11-20")) == 28
    assert set(graph.get(dg.AssetKey("dead_letter_queue")).parent_keys) == {
        dg.AssetKey(n) for n in ("orders_raw", "deliveries_raw", "reviews_raw")
    }


def test_jobs_and_the_partition_start_come_from_settings():
    defs = build_definitions(
        Settings(landing_root="/l", lake_root="/k", partitions_start="2026-01-01")
    )
    # operators: restore a table to a version, replay the dead-letter queue, maintain the lake
    assert defs.resolve_job_def("restore_delta_table") and defs.resolve_job_def("dlq_replay")
    assert defs.resolve_job_def("lake_maintenance")
    assert defs.resolve_job_def(DAILY_JOB).partitions_def.start.strftime("%Y-%m-%d") == "2026-01-01"
    assert defs.resolve_job_def(REFERENCE_JOB)
    ml = defs.resolve_job_def(ML_JOB)
    assert ml.partitions_def.start.strftime("%Y-%m-%d") == "2026-01-01"


def test_triggers_sensors_schedule_and_automation_are_defined():
    repo = _defs().get_repository_def()
    assert {s.name for s in repo.sensor_defs} == {
        "orders_file_arrivals",
        "deliveries_file_arrivals",
        "reviews_file_arrivals",
        "restaurants_file_arrivals",
        "dishes_file_arrivals",
        "foodops_automation",
        "foodops_run_failure_alert",
        "foodops_check_failure_alert",
        "foodops_freshness_alert",
        "foodops_partition_deadlines",
        "foodops_observability_on_success",
        "foodops_observability_on_failure",
    }
    assert [s.name for s in repo.schedule_defs] == [
        "foodops_daily_backstop",
        "foodops_lake_maintenance",
    ]
    graph = _defs().resolve_asset_graph()
    automated = {
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition
    }
    assert automated == set(EXPECTED_GROUPS) - {
        "restaurants",
        "dishes",
        # the snapshot sensors request the history with the snapshot
        "restaurants_history",
        "dishes_history",
        "orders_raw",
        "deliveries_raw",
        "reviews_raw",
        "dead_letter_queue",
    }
    # automation can be switched off as a whole (the sensors and schedule then start stopped)
    off = build_definitions(Settings(landing_root="/l", lake_root="/k", automation="off"))
    statuses = {s.default_status for s in off.get_repository_def().sensor_defs}
    assert statuses == {dg.DefaultSensorStatus.STOPPED}
    # the metrics / lineage export runs when an endpoint is configured, stopped otherwise
    exported = build_definitions(
        Settings(landing_root="/l", lake_root="/k", openlineage_url="file:///tmp/ol.jsonl")
    ).get_repository_def()
    assert exported.get_sensor_def("foodops_observability_on_success").default_status == (
        dg.DefaultSensorStatus.RUNNING
    )
    assert repo.get_sensor_def("foodops_observability_on_failure").default_status == (
        dg.DefaultSensorStatus.STOPPED
    )


def test_make_run_materialises_every_daily_asset_of_the_definitions():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    [line] = [x for x in makefile.splitlines() if x.startswith("DAILY_ASSETS :=")]
    assert line.split(":=", 1)[1].strip().split(",") == DAILY_ASSETS
    # the ML assets run as of the last day, after the daily range (they read its window)
    [line] = [x for x in makefile.splitlines() if x.startswith("ML_ASSETS :=")]
    assert line.split(":=", 1)[1].strip().split(",") == ML_ASSETS
    graph = _defs().resolve_asset_graph()
    partitioned = {
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if graph.get(k).is_executable and graph.get(k).partitions_def is not None
    }
    assert partitioned == set(DAILY_ASSETS) | set(ML_ASSETS)


def test_a_dagster_deprecation_fails_the_suite():
    # pyproject's filterwarnings: what the next Dagster release deprecates must not pass
    # unnoticed (here a parameter 1.13 deprecated, which definitions.py no longer passes)
    with pytest.raises(DeprecationWarning, match="is deprecated and will be removed in"):
        dg.define_asset_job(
            "x", selection="*", partitions_def=dg.DailyPartitionsDefinition("2025-01-01")
        )
    with pytest.raises(dg.SupersessionWarning):
        dg.build_last_update_freshness_checks(
            assets=["orders_valid"], lower_bound_delta=dt.timedelta(hours=1)
        )
