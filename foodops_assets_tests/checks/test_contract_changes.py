"""Contract changes against a real lake: the orders tables written under contract v1.0.0 by
the real assets, then the code location loaded (and written) with a changed contract."""

import datetime as dt
import logging
import shutil
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pytest
import yaml
from deltalake import DeltaTable

from foodops_assets.checks import names
from foodops_assets.checks.contract_changes import (
    ADDITIVE,
    WIDENING,
    ContractChangeError,
    check_contract_changes,
)
from foodops_assets.contracts import CONTRACTS_DIR, contract_files, load_contract
from foodops_assets.definitions import build_definitions
from foodops_assets.lakehouse.resource import LakehouseResource
from foodops_assets.lakehouse.tables import ORDERS_RAW, ORDERS_VALID
from foodops_assets.settings import (
    ENV_ACCEPT_BREAKING_CONTRACT_CHANGES,
    ConfigError,
    Settings,
)
from foodops_assets_tests.conftest import Lake
from foodops_assets_tests.factories import delivery, land_reference, line, order

D1, D2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)
ORDERS = ["orders_raw", "orders_valid"]
DELIVERIES = ["deliveries_raw", "deliveries_valid"]


def _lake(root) -> Lake:
    landing, lake = root / "landing", root / "lake"
    landing.mkdir(parents=True, exist_ok=True)
    return Lake(root, landing, lake, Settings(landing_root=str(landing), lake_root=str(lake)))


def _materialize(
    lake: Lake, spark_resource, selection, partition=None, writer="auto", raise_on_error=True
):
    defs = build_definitions(lake.settings)
    return dg.materialize(
        [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)],
        selection=selection,
        partition_key=partition,
        raise_on_error=raise_on_error,
        resources={
            "spark": spark_resource,
            "lakehouse": LakehouseResource(
                landing_root=str(lake.landing), lake_root=str(lake.lake), delta_writer=writer
            ),
        },
    )


@pytest.fixture(scope="module")
def v1_lake(tmp_path_factory, spark_resource) -> Lake:
    """Reference data and one day of orders and deliveries, bronze and silver, under the
    shipped contracts."""
    lake = _lake(tmp_path_factory.mktemp("v1-lake"))
    land_reference(lake)
    lake.land("orders", D1, "batch-0001.jsonl", [line(order(n, day=D1)) for n in range(1, 6)])
    lake.land("deliveries", D1, "batch-0001.jsonl", [line(delivery(n, day=D1)) for n in (1, 2)])
    assert _materialize(lake, spark_resource, ["restaurants", "dishes"]).success
    assert _materialize(lake, spark_resource, [*ORDERS, *DELIVERIES], D1.isoformat()).success
    return lake


def _copy(lake: Lake, tmp_path) -> Lake:
    shutil.copytree(lake.root, tmp_path / "copy")
    return _lake(tmp_path / "copy")


def _contracts(tmp_path, mutate, source="orders") -> str:
    """The shipped contracts, with ``source``'s changed by ``mutate`` (an ODCS document)."""
    directory = tmp_path / "contracts"
    directory.mkdir()
    for path in contract_files().values():
        shutil.copy(path, directory / path.name)
    path = directory / f"{source}.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    mutate(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(directory)


def _props(doc) -> list[dict]:
    return doc["schema"][0]["properties"]


def _prop(doc, name) -> dict:
    return next(p for p in _props(doc) if p["name"] == name)


def _with(lake: Lake, contracts_dir: str, **settings) -> Lake:
    return Lake(
        lake.root,
        lake.landing,
        lake.lake,
        Settings(
            landing_root=str(lake.landing),
            lake_root=str(lake.lake),
            contracts_dir=contracts_dir,
            **settings,
        ),
    )


def _metadata(result, asset) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _by_order(lake: Lake, table) -> dict[str, dict]:
    rows = DeltaTable(str(lake.lake / table.path)).to_pyarrow_table().to_pylist()
    return {r["order_id"] + "@" + r["partition_date"].isoformat(): r for r in rows}


def test_the_shipped_contracts_load_over_the_lake_they_wrote(v1_lake):
    assert (
        check_contract_changes({n: load_contract(n) for n in contract_files()}, str(v1_lake.lake))
        == []
    )
    # every bronze and silver write records the contract version and primary key
    for table in (ORDERS_RAW, ORDERS_VALID):
        [latest] = DeltaTable(str(v1_lake.lake / table.path)).history(1)
        assert (latest["foodops_contract_version"], latest["foodops_primary_key"]) == (
            "1.0.0",
            "order_id",
        )


def _add_coupon_code(doc):
    doc["version"] = "1.1.0"
    _props(doc).append(
        {
            "name": "coupon_code",
            "logicalType": "string",
            "physicalType": "string",
            "required": False,
            "description": "Coupon the customer redeemed, if any.",
        }
    )


def test_an_additive_change_evolves_the_tables_and_old_partitions_read_null(
    v1_lake, spark_resource, tmp_path
):
    lake = _with(_copy(v1_lake, tmp_path), _contracts(tmp_path, _add_coupon_code))
    changes = check_contract_changes(
        {"orders": load_contract("orders", lake.settings.contracts_dir)}, str(lake.lake)
    )
    assert {(c.table, c.column, c.kind) for c in changes} == {
        ("orders_raw", "coupon_code", ADDITIVE),
        ("orders_valid", "coupon_code", ADDITIVE),
    }
    lake.land(
        "orders",
        D2,
        "batch-0001.jsonl",
        [line(order(n, day=D2, coupon_code="SAVE10")) for n in (1, 2)],
    )

    result = _materialize(lake, spark_resource, ORDERS, D2.isoformat())

    assert result.success
    for asset, table in (("orders_raw", ORDERS_RAW), ("orders_valid", ORDERS_VALID)):
        rows = _by_order(lake, table)
        assert rows["o-1@2026-11-20"]["coupon_code"] == "SAVE10"
        assert rows["o-1@2026-11-19"]["coupon_code"] is None  # written before the change
        assert len(rows) == 7
        assert _metadata(result, asset)["contract_version"] == "1.1.0"
    # the new field is now in the contract: no schema-change warning, and it names the version
    [check] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == names.LANDING_SCHEMA
    ]
    assert check.passed and "orders contract v1.1.0" in check.description
    # and the contract loads over the evolved tables without a change left to report
    assert (
        check_contract_changes(
            {"orders": load_contract("orders", lake.settings.contracts_dir)}, str(lake.lake)
        )
        == []
    )


def _widen(doc):
    doc["version"] = "1.1.0"
    _prop(doc, "quantity")["physicalType"] = "bigint"
    _prop(doc, "price")["physicalType"] = "decimal(12,2)"


@pytest.mark.parametrize("writer", ["arrow", "spark_files"])
def test_a_widening_change_is_accepted_and_the_writers_store_the_wider_type(
    v1_lake, spark_resource, tmp_path, writer
):
    lake = _with(_copy(v1_lake, tmp_path), _contracts(tmp_path, _widen))
    changes = check_contract_changes(
        {"orders": load_contract("orders", lake.settings.contracts_dir)}, str(lake.lake)
    )
    assert {(c.table, c.column, c.kind) for c in changes} == {
        (t, c, WIDENING) for t in ("orders_raw", "orders_valid") for c in ("quantity", "price")
    }
    big = order(9, day=D2, quantity=3_000_000_000, price=1234567890.25)  # too big for v1
    lake.land("orders", D2, "batch-0001.jsonl", [line(big), line(order(1, day=D2))])

    result = _materialize(lake, spark_resource, ORDERS, D2.isoformat(), writer=writer)

    assert result.success
    for table in (ORDERS_RAW, ORDERS_VALID):
        schema = pa.schema(DeltaTable(str(lake.lake / table.path)).schema().to_arrow())
        types = {f.name: str(f.type) for f in schema}
        assert (types["quantity"], types["price"]) == ("int64", "decimal128(12, 2)")
        rows = _by_order(lake, table)
        assert (rows["o-9@2026-11-20"]["quantity"], rows["o-9@2026-11-20"]["price"]) == (
            3_000_000_000,
            Decimal("1234567890.25"),
        )
        # the partition written under v1.0.0 reads back unchanged, in the wider type
        assert (rows["o-1@2026-11-19"]["quantity"], rows["o-1@2026-11-19"]["price"]) == (
            2,
            Decimal("100.25"),
        )
        assert len(rows) == 7
    assert _metadata(result, "orders_valid")["contract_version"] == "1.1.0"


def _remove_payment_method(doc):
    doc["version"] = "2.0.0"
    doc["schema"][0]["properties"] = [p for p in _props(doc) if p["name"] != "payment_method"]


def _rename_city(doc):
    doc["version"] = "2.0.0"
    _prop(doc, "city")["name"] = "delivery_city"


def _narrow_price(doc):
    doc["version"] = "2.0.0"
    _prop(doc, "price")["physicalType"] = "decimal(8,2)"


def _quantity_as_text(doc):
    doc["version"] = "2.0.0"
    _prop(doc, "quantity").update(logicalType="string", physicalType="string")
    _prop(doc, "quantity")["quality"][0]["implementation"] = {"check": "not_blank"}


def _require_currency(doc):
    doc["version"] = "2.0.0"
    _props(doc).append(
        {
            "name": "currency",
            "logicalType": "string",
            "physicalType": "string",
            "required": True,
            "description": "ISO 4217 code of the price.",
            "quality": [
                {
                    "id": "has_currency",
                    "type": "custom",
                    "engine": "foodops",
                    "implementation": {"check": "not_blank"},
                }
            ],
        }
    )


def _delivery_key_with_rider(doc):
    # nothing references deliveries, so only the tables stand against a new key
    doc["version"] = "2.0.0"
    _prop(doc, "rider_id").update(primaryKey=True, primaryKeyPosition=2)


@pytest.mark.parametrize(
    "source, mutate, column, says, todo",
    [
        ("orders", _remove_payment_method, "payment_method", "removed", "keep payment_method"),
        ("orders", _rename_city, "city", "removed (renamed to delivery_city?)", "drop or rename"),
        ("orders", _narrow_price, "price", "narrowed: decimal(10,2) in the table", "or widen it"),
        ("orders", _quantity_as_text, "quantity", "type changed: int in the table", "keep int"),
        ("orders", _require_currency, "currency", "new required column", "required: false"),
        (
            "deliveries",
            _delivery_key_with_rider,
            "delivery_id, rider_id",
            "primary key changed: the table was written with (delivery_id)",
            "deduplication and references key on it",
        ),
    ],
)
def test_a_breaking_change_is_refused_at_load_unless_accepted(
    v1_lake, tmp_path, caplog, source, mutate, column, says, todo
):
    lake = _with(v1_lake, _contracts(tmp_path, mutate, source))
    with pytest.raises(ContractChangeError) as info:
        build_definitions(lake.settings)
    message = str(info.value)
    for layer in ("raw", "valid"):
        assert f"contract {source} v2.0.0, table {source}_{layer}, column {column}: {says}" in (
            message
        )
    assert todo in message and 'README, "Data contracts"' in message
    assert f"{ENV_ACCEPT_BREAKING_CONTRACT_CHANGES}={source}@2.0.0" in message

    # an acceptance of another version does not cover this one
    with pytest.raises(ContractChangeError):
        build_definitions(
            _with(v1_lake, lake.settings.contracts_dir, **_accept(f"{source}@1.9")).settings
        )

    accepted = _with(v1_lake, lake.settings.contracts_dir, **_accept(f"{source}@2.0.0"))
    with caplog.at_level(logging.WARNING):
        defs = build_definitions(accepted.settings)
    assert defs.get_assets_def(f"{source}_valid")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        f"accepted by {ENV_ACCEPT_BREAKING_CONTRACT_CHANGES}={source}@2.0.0" in w and says in w
        for w in warnings
    ), warnings


def _accept(*versions: str) -> dict:
    return {"accept_breaking_contract_changes": versions}


def test_an_accepted_removal_keeps_the_column_and_new_rows_read_null(
    v1_lake, spark_resource, tmp_path
):
    lake = _with(
        _copy(v1_lake, tmp_path),
        _contracts(tmp_path, _remove_payment_method),
        **_accept("orders@2.0.0"),
    )
    lake.land("orders", D2, "batch-0001.jsonl", [line(order(1, day=D2))])

    assert _materialize(lake, spark_resource, ORDERS, D2.isoformat()).success

    rows = _by_order(lake, ORDERS_VALID)
    assert rows["o-1@2026-11-19"]["payment_method"] == "upi"  # kept as written
    assert rows["o-1@2026-11-20"]["payment_method"] is None  # no longer in the contract


@pytest.mark.parametrize("writer", ["arrow", "spark_files"])
def test_an_accepted_narrowing_keeps_the_wider_type_and_silver_stops_at_the_contract_types(
    v1_lake, spark_resource, tmp_path, writer
):
    # accepting lets the code location load; the tables keep decimal(10,2), and silver's
    # pandera check (the contract's types) stops the write: a narrowing needs the rebuild
    lake = _with(
        _copy(v1_lake, tmp_path), _contracts(tmp_path, _narrow_price), **_accept("orders@2.0.0")
    )
    lake.land("orders", D2, "batch-0001.jsonl", [line(order(1, day=D2, price=12.5))])

    result = _materialize(
        lake, spark_resource, ORDERS, D2.isoformat(), writer=writer, raise_on_error=False
    )

    assert not result.success
    schema = pa.schema(DeltaTable(str(lake.lake / ORDERS_RAW.path)).schema().to_arrow())
    assert str(schema.field("price").type) == "decimal128(10, 2)"
    rows = _by_order(lake, ORDERS_RAW)
    assert rows["o-1@2026-11-20"]["price"] == Decimal("12.50")  # the narrower rows, cast up
    assert rows["o-1@2026-11-19"]["price"] == Decimal("100.25")
    [pandera] = [e for e in result.get_asset_check_evaluations() if e.check_name == names.CONTRACT]
    assert not pandera.passed and "price" in pandera.description
    assert "o-1@2026-11-20" not in _by_order(lake, ORDERS_VALID)  # nothing published


def test_the_acceptance_is_read_from_the_environment():
    env = {ENV_ACCEPT_BREAKING_CONTRACT_CHANGES: "orders@2.0.0, reviews@1.2.0"}
    assert Settings.from_env(env).accept_breaking_contract_changes == (
        "orders@2.0.0",
        "reviews@1.2.0",
    )
    with pytest.raises(ConfigError, match="is not <contract>@<version>"):
        Settings.from_env({ENV_ACCEPT_BREAKING_CONTRACT_CHANGES: "yes"})


def test_contracts_load_without_any_table_to_compare_with(tmp_path):
    # a fresh lake: nothing written yet, nothing to classify
    assert (
        check_contract_changes(
            {n: load_contract(n, CONTRACTS_DIR) for n in contract_files()}, str(tmp_path / "lake")
        )
        == []
    )
