import dagster as dg

from foodops_assets.definitions import DAILY_JOB, REFERENCE_JOB, build_definitions
from foodops_assets.lakehouse.tables import TABLES
from foodops_assets.settings import Settings

EXPECTED_GROUPS = {
    "restaurants": "bronze",
    "dishes": "bronze",
    "orders_raw": "bronze",
    "orders_valid": "silver",
    "dead_letter_queue": "silver",
    "restaurant_daily_sales": "gold",
    "city_hourly_demand": "gold",
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
        if name not in ("restaurants", "dishes", "orders_raw"):
            assert isinstance(node.metadata.get("dagster/column_schema"), dg.TableSchema), name
    assert graph.get(dg.AssetKey("orders_valid")).owners == ["team:ordering"]


def test_daily_assets_are_partitioned_with_single_run_backfills():
    graph = _defs().resolve_asset_graph()
    for name in (
        "orders_raw",
        "orders_valid",
        "restaurant_daily_sales",
        "city_hourly_demand",
        "dead_letter_queue",
    ):
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
        ("restaurant_daily_sales", "revenue_reconciles_with_silver"),
        ("city_hourly_demand", "revenue_reconciles_with_silver"),
    } <= blocking


def test_jobs_and_the_partition_start_come_from_settings():
    defs = build_definitions(
        Settings(landing_root="/l", lake_root="/k", partitions_start="2026-01-01")
    )
    assert defs.resolve_job_def(DAILY_JOB).partitions_def.start.strftime("%Y-%m-%d") == "2026-01-01"
    assert defs.resolve_job_def(REFERENCE_JOB)
