import copy

import pytest
import yaml
from pyspark.sql import types as T

from foodops_assets.contracts import CONTRACTS_DIR, ContractError, load_contract, parse_contract
from foodops_assets.contracts.spark import spark_schema

ORDERS_RULES = [
    "parseable_record",
    "has_order_id",
    "has_user_id",
    "has_restaurant_id",
    "has_dish_id",
    "valid_price",
    "valid_quantity",
    "valid_status",
    "order_time_in_window",
]


def _orders_doc() -> dict:
    return yaml.safe_load((CONTRACTS_DIR / "orders.yaml").read_text())


def test_orders_contract_has_the_seed_rules_owner_and_descriptions():
    contract = load_contract("orders")
    assert contract.owner == "team:ordering"
    assert contract.primary_key == ("order_id",)
    assert contract.rule_names == ORDERS_RULES
    assert all(c.description for c in contract.columns)
    assert contract.sla_value("max_dlq_rate") == 0.10


def test_spark_schema_follows_the_contract_types():
    schema = spark_schema(load_contract("orders"))
    types = {f.name: f.dataType for f in schema.fields}
    assert types["quantity"] == T.IntegerType()
    assert types["price"] == T.DecimalType(10, 2)
    assert types["order_time"] == T.TimestampType()
    assert types["order_id"] == T.StringType()
    assert list(types) == load_contract("orders").column_names


def test_reference_contracts_load():
    assert load_contract("restaurants").layout == "snapshot"
    assert load_contract("dishes").column("is_veg").type == "boolean"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("owner"), "'owner' is required"),
        (lambda d: d["columns"][4].update(type="integer"), "type 'integer' is not one of"),
        (lambda d: d["rules"][0].update(check="looks_fine"), "check 'looks_fine' is not one of"),
        (
            lambda d: d["rules"][0].update(column="orderid"),
            "column 'orderid' is not a contract column",
        ),
        (lambda d: d["rules"][-1].pop("max_age_days"), "needs max_age_days"),
        (lambda d: d["rules"].append(dict(d["rules"][0])), "rule names must be unique"),
        (lambda d: d["sla"].update(max_dlq_rate=5), "sla.max_dlq_rate is a share"),
        (lambda d: d["rules"][0].update(name="parseable_record"), "reserved"),
        (lambda d: d.update(kind="Table"), "'kind' must be DataContract"),
    ],
)
def test_a_malformed_contract_fails_with_a_message_that_says_what_to_fix(mutate, message):
    doc = copy.deepcopy(_orders_doc())
    mutate(doc)
    with pytest.raises(ContractError, match=message) as err:
        parse_contract(doc, source="contracts/orders.yaml")
    assert "contracts/orders.yaml" in str(err.value)


def test_missing_and_unparseable_contract_files(tmp_path):
    with pytest.raises(ContractError, match="not found"):
        load_contract("orders", tmp_path)
    (tmp_path / "orders.yaml").write_text("kind: DataContract\ncolumns: [unclosed\n")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_contract("orders", tmp_path)
