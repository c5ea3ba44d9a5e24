import copy

import pytest
import yaml
from pyspark.sql import types as T

from foodops_assets.contracts import (
    CONTRACTS_DIR,
    ContractError,
    check_references,
    load_contract,
    parse_contract,
)
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


DELIVERIES_RULES = [
    "parseable_record",
    "has_delivery_id",
    "has_order_id",
    "has_rider_id",
    "has_city",
    "valid_delivery_status",
    "assigned_at_in_window",
    "delivered_at_iff_delivered",
    "timestamps_ordered",
    "non_negative_distance",
]
REVIEWS_RULES = [
    "parseable_record",
    "has_review_id",
    "has_order_id",
    "has_user_id",
    "has_restaurant_id",
    "valid_rating",
    "review_time_in_window",
    "review_after_order",
]


def _doc(name: str) -> dict:
    return yaml.safe_load((CONTRACTS_DIR / f"{name}.yaml").read_text())


def test_deliveries_and_reviews_contracts_have_stable_rules_owners_and_references():
    deliveries, reviews = load_contract("deliveries"), load_contract("reviews")
    assert deliveries.rule_names == DELIVERIES_RULES
    assert reviews.rule_names == REVIEWS_RULES
    assert (deliveries.owner, reviews.owner) == ("team:logistics", "team:customer-experience")
    assert (deliveries.primary_key, reviews.primary_key) == (("delivery_id",), ("review_id",))
    for contract in (deliveries, reviews):
        assert all(c.description for c in contract.columns)
        assert all(r.description for r in contract.rules)
        assert 0 < contract.sla_value("max_dlq_rate") <= 1
        assert 0 < contract.sla_value("max_orphan_rate") <= 1
        [ref] = contract.references
        assert (ref.source, ref.key) == ("orders", "order_id")
    assert reviews.reference("orders").lookback_days == 7
    assert reviews.reference_columns("orders") == ["order_time"]
    assert deliveries.reference_columns("orders") == []
    assert deliveries.sla_value("on_time_minutes") == 45
    types = {f.name: f.dataType for f in spark_schema(deliveries).fields}
    assert types["distance_km"] == T.DoubleType() and types["delivered_at"] == T.TimestampType()
    assert {f.name: f.dataType for f in spark_schema(reviews).fields}["rating"] == T.IntegerType()


def _rule(doc: dict, name: str) -> dict:
    return next(r for r in doc["rules"] if r["name"] == name)


@pytest.mark.parametrize(
    "source, mutate, message",
    [
        (
            "deliveries",
            lambda d: _rule(d, "delivered_at_iff_delivered").update(when_column="state"),
            "when_column 'state' is not a contract column",
        ),
        (
            "deliveries",
            lambda d: _rule(d, "delivered_at_iff_delivered").update(when_values=[]),
            "when_values must be a non-empty list",
        ),
        (
            "deliveries",
            lambda d: _rule(d, "delivered_at_iff_delivered").pop("when_values"),
            "needs when_values",
        ),
        (
            "deliveries",
            lambda d: _rule(d, "timestamps_ordered").update(then=["picked_up_at", "distance_km"]),
            "ordered columns must share one of the types",
        ),
        (
            "deliveries",
            lambda d: _rule(d, "timestamps_ordered").update(then=["picked_up", "delivered_at"]),
            "then names 'picked_up', which is not a contract column",
        ),
        (
            "deliveries",
            lambda d: _rule(d, "timestamps_ordered").update(then=["assigned_at"]),
            "a column appears twice",
        ),
        (
            "deliveries",
            lambda d: d["references"]["orders"].update(lookback_days=-1),
            "lookback_days must be a whole number of days",
        ),
        (
            "deliveries",
            lambda d: d["references"]["orders"].update(key="order"),
            "key 'order' is not a contract column",
        ),
        (
            "reviews",
            lambda d: _rule(d, "review_after_order").update(reference="order"),
            "reference 'order' is not declared under 'references'",
        ),
        ("reviews", lambda d: d.update(references=["orders"]), "'references' must be a mapping"),
        (
            "reviews",
            lambda d: _rule(d, "valid_rating").update(min=6),
            "min must not exceed max",
        ),
    ],
)
def test_a_malformed_rule_of_the_new_kinds_fails_with_a_message_that_says_what_to_fix(
    source, mutate, message
):
    doc = copy.deepcopy(_doc(source))
    mutate(doc)
    with pytest.raises(ContractError, match=message) as err:
        parse_contract(doc, source=f"contracts/{source}.yaml")
    assert f"contracts/{source}.yaml" in str(err.value)


def _all_contracts(**docs) -> dict:
    out = {}
    for name in ("orders", "deliveries", "reviews", "restaurants", "dishes"):
        doc = docs.get(name) or _doc(name)
        out[name] = parse_contract(doc, source=f"contracts/{name}.yaml")
    return out


def test_references_are_checked_across_contracts():
    check_references(_all_contracts())  # the shipped contracts agree with each other

    reviews = _doc("reviews")
    _rule(reviews, "review_after_order").update(reference_column="ordered_at")
    with pytest.raises(ContractError, match="reference_column 'ordered_at' is not a column"):
        check_references(_all_contracts(reviews=reviews))

    reviews = _doc("reviews")
    reviews["references"]["restaurants"] = {"key": "restaurant_id", "lookback_days": 0}
    with pytest.raises(ContractError, match="restaurants is not a daily source"):
        check_references(_all_contracts(reviews=reviews))

    deliveries = _doc("deliveries")
    deliveries["references"]["orders"]["key"] = "rider_id"
    with pytest.raises(ContractError, match="key 'rider_id' is not the primary key of orders"):
        check_references(_all_contracts(deliveries=deliveries))

    orders = _doc("orders")
    next(c for c in orders["columns"] if c["name"] == "order_time")["type"] = "date"
    with pytest.raises(ContractError, match=r"review_time \(timestamp\).*order_time \(date\)"):
        check_references(_all_contracts(orders=orders))

    contracts = _all_contracts()
    del contracts["orders"]
    with pytest.raises(ContractError, match="no contract named 'orders' is loaded"):
        check_references(contracts)
