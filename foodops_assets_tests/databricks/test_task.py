"""The remote FoodOps task end to end through PipesSubprocessClient.

The same Pipes protocol as on Databricks (context in, messages out), with the
task in a local process: FOODOPS_EXECUTION=pipes_subprocess. The task runs
its own (embedded) Spark, so what the orchestrator receives is only what
came back through Pipes.
"""

import datetime as dt

import dagster as dg
import pytest
from dagster._core.definitions.metadata.external_metadata import metadata_map_from_external
from deltalake import DeltaTable

from foodops_assets.checks import names
from foodops_assets.databricks.metadata import from_pipes_metadata, to_pipes_metadata
from foodops_assets.definitions import build_definitions
from foodops_assets.lakehouse.tables import DEAD_LETTER_QUEUE, ORDERS_RAW, ORDERS_VALID
from foodops_assets.settings import Settings
from foodops_assets_tests.conftest import materialize
from foodops_assets_tests.factories import land_reference, line, order, without

D2 = dt.date(2026, 11, 20)
DAILY = ["orders_raw", "orders_valid", "restaurant_daily_sales", "city_hourly_demand"]


def _materialize(lake, instance, selection, partition_key=None):
    settings = Settings(
        landing_root=str(lake.landing), lake_root=str(lake.lake), execution="pipes_subprocess"
    )
    defs = build_definitions(settings)
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    return dg.materialize(
        assets,
        selection=selection,
        partition_key=partition_key,
        resources=dict(defs.resources),
        instance=instance,
        raise_on_error=False,
    )


def _metadata(result, asset):
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _land_orders(lake, extra=()):
    bad = [
        '{"order_id": "o-bad-1", "price": ',  # malformed JSON
        line(order(101, day=D2, price=0)),
        line(order(102, day=D2, quantity=0, price=-1)),
        line(without(order(103, day=D2), "user_id")),
        line(order(104, day=D2, coupon_code="SAVE10")),  # accepted, rescued
        line(order(1, day=D2)),  # duplicate
    ]
    good = [line(order(n, day=D2, dish_id="d-2" if n % 3 == 0 else "d-1")) for n in range(1, 41)]
    lake.land("orders", D2, "batch-0001.jsonl", [*good, *bad])
    lake.land("orders", D2, "batch-0002.jsonl", [line(order(2, day=D2)), *extra])


def test_the_remote_task_reports_materialisations_and_checks_through_pipes(lake, instance):
    land_reference(lake)
    _land_orders(lake)
    reference = _materialize(lake, instance, ["restaurants", "dishes"])
    assert reference.success
    assert _metadata(reference, "restaurants")["dagster/row_count"] == 2

    result = _materialize(lake, instance, DAILY, partition_key=D2.isoformat())
    assert result.success

    # row counts, Delta versions, URIs and schema came back through Pipes
    silver = _metadata(result, "orders_valid")
    # validated on the remote side with the contract files that travelled in the context
    assert silver["contract_version"] == _metadata(result, "orders_raw")["contract_version"]
    assert silver["contract_version"] == "1.0.0"
    assert (
        silver["bronze_rows"],
        silver["silver_rows"],
        silver["dlq_rows"],
        silver["duplicates_dropped"],
    ) == (47, 41, 4, 2)
    assert silver["dagster/row_count"] == 41 and silver["conservation_holds"] is True
    assert silver["delta_version"] == DeltaTable(str(lake.lake / ORDERS_VALID.path)).version()
    assert silver["dagster/uri"] == str(lake.lake / ORDERS_VALID.path)
    assert silver["delta_writer"] == "arrow"  # the task's Spark is embedded here
    assert silver["dlq_rule/valid_price"] == 2
    columns = [c.name for c in silver["dagster/column_schema"].columns]
    assert columns[:3] == ["order_id", "user_id", "restaurant_id"]
    lineage = silver["dagster/column_lineage"].deps_by_column["price"]
    assert [(d.asset_key.to_user_string(), d.column_name) for d in lineage] == [
        ("orders_raw", "price")
    ]
    bronze = _metadata(result, "orders_raw")
    assert bronze["dagster/row_count"] == 47
    assert bronze["delta_version"] == DeltaTable(str(lake.lake / ORDERS_RAW.path)).version()
    for gold in ("restaurant_daily_sales", "city_hourly_demand"):
        assert _metadata(result, gold)["dagster/row_count"] > 0

    # the dead-letter queue write the silver step made on the remote side
    [dlq] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(DEAD_LETTER_QUEUE.name)
    ]
    assert dlq.materialization.partition == D2.isoformat()
    assert dlq.materialization.metadata["dlq_rows"].value == 4

    # every check result, with its numbers
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    assert len(checks) == 10  # orders_valid has 7, with published_consistency
    # bronze's schema check came back too: coupon_code is outside the contract, a warning
    schema = checks.pop(("orders_raw", names.LANDING_SCHEMA))
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.WARN
    assert all(e.passed for e in checks.values())
    conservation = checks[("orders_valid", names.CONSERVATION)].metadata["conservation"].value
    assert conservation.records[0].data["holds"] is True
    assert checks[("orders_valid", names.DLQ_RATE)].metadata["dlq_rows"].value == 4

    # and the tables are there for any reader
    assert DeltaTable(str(lake.lake / ORDERS_VALID.path)).to_pyarrow_table().num_rows == 41


def test_a_circuit_breaker_on_the_remote_side_fails_the_step_and_publishes_nothing(
    lake, instance, spark_resource
):
    land_reference(lake)
    assert materialize(lake, spark_resource, ["restaurants", "dishes"]).success
    _land_orders(lake, extra=['{"broken": '] * 12)  # a producer bug: the DLQ rate explodes

    # a subset of the daily multi-asset: gold is not selected
    result = _materialize(lake, instance, ["orders_raw", "orders_valid"], D2.isoformat())
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    # the step's own message says why, should the remote side fail for another reason
    assert checks.get(names.DLQ_RATE) is False, message
    assert checks.get(names.CONSERVATION) is True, message
    assert "Circuit breaker tripped for orders_valid" in message
    assert (
        "dlq_rate_below_threshold" in message and "reported by the remote FoodOps task" in message
    )
    # bronze was written and reported; silver was not, and gold never ran
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"orders_raw"}
    assert not (lake.lake / ORDERS_VALID.path).exists()
    assert not (lake.lake / "gold").exists()


@pytest.mark.parametrize(
    "value",
    [
        dg.MetadataValue.int(3),
        dg.MetadataValue.float(0.25),
        dg.MetadataValue.bool(True),
        dg.MetadataValue.text("x"),
        dg.MetadataValue.path("/lake/silver/orders_valid"),
        dg.MetadataValue.json({"a": [1, 2]}),
        dg.MetadataValue.md("| a |"),
        dg.MetadataValue.url("https://example.com/run/1"),
        dg.MetadataValue.timestamp(1767225600.5),
        dg.MetadataValue.null(),
        dg.MetadataValue.table_schema(
            dg.TableSchema(columns=[dg.TableColumn("id", "string", description="the id")])
        ),
        dg.MetadataValue.column_lineage(
            dg.TableColumnLineage(
                deps_by_column={
                    "a": [dg.TableColumnDep(asset_key=dg.AssetKey("up"), column_name="b")]
                }
            )
        ),
        dg.MetadataValue.table(
            records=[dg.TableRecord({"partition": "2026-11-20", "holds": True})],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("partition", "string"), dg.TableColumn("holds", "bool")]
            ),
        ),
    ],
)
def test_metadata_survives_the_trip_through_pipes(value):
    sent = to_pipes_metadata({"k": value})
    # read back by Pipes itself (the step's own assets) and by the orchestrator's side
    # channel (the dead-letter queue): both give the value the task recorded
    assert metadata_map_from_external(sent)["k"] == value
    assert from_pipes_metadata(sent)["k"] == value
