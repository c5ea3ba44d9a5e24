import copy

import pytest
import yaml
from pyspark.sql import types as T

from foodops_assets.contracts import (
    CONTRACTS_DIR,
    ContractError,
    check_references,
    contract_path,
    load_contract,
    parse_contract,
)
from foodops_assets.contracts.spark import spark_schema

# the ids of the ODCS quality entries, in the order of the contract's properties
ORDERS_RULES = [
    "parseable_record",
    "has_order_id",
    "has_user_id",
    "has_restaurant_id",
    "has_dish_id",
    "valid_quantity",
    "valid_price",
    "order_time_in_window",
    "valid_status",
]


def _doc(name: str) -> dict:
    return yaml.safe_load(contract_path(name).read_text())


def _prop(doc: dict, name: str) -> dict:
    return next(p for p in doc["schema"][0]["properties"] if p["name"] == name)


def _quality(doc: dict, rule: str) -> dict:
    return next(
        q for p in doc["schema"][0]["properties"] for q in p.get("quality", []) if q["id"] == rule
    )


def _sla(doc: dict, name: str) -> dict:
    return next(p for p in doc["slaProperties"] if p["property"] == name)


def _impl(doc: dict, rule: str) -> dict:
    return _quality(doc, rule)["implementation"]


def test_the_contracts_are_odcs_files_and_the_old_format_is_gone():
    assert sorted(p.name for p in CONTRACTS_DIR.iterdir()) == [
        f"{n}.odcs.yaml" for n in ("deliveries", "dishes", "orders", "restaurants", "reviews")
    ]
    doc = _doc("orders")
    assert (doc["kind"], doc["apiVersion"]) == ("DataContract", "v3.1.0")


def test_orders_contract_has_the_seed_rules_owner_and_descriptions():
    contract = load_contract("orders")
    assert contract.owner == "team:ordering"
    assert contract.version == "1.0.0"
    assert contract.primary_key == ("order_id",)
    assert contract.rule_names == ORDERS_RULES
    assert all(c.description for c in contract.columns)
    assert contract.sla_value("max_dlq_rate") == 0.10
    # ODCS latency (minutes) is the freshness SLA the alerts read
    assert contract.sla_value("freshness_minutes") == 120
    assert (contract.layout, contract.event_time) == ("daily", "order_time")
    assert contract.description.startswith("One line per order placed in the app")
    # library metric invalidValues is our in_set; custom entries carry the other kinds
    [status] = [r for r in contract.rules if r.name == "valid_status"]
    assert (status.check, status.column, list(status.params["values"])) == (
        "in_set",
        "status",
        ["placed", "cancelled"],
    )
    [window] = [r for r in contract.rules if r.name == "order_time_in_window"]
    assert window.check == "in_partition_window" and window.params["max_age_days"] == 7
    # required exactly where a rule rejects a missing value
    assert [c.name for c in contract.columns if not c.required] == ["city", "payment_method"]
    # declared foreign keys to the reference data (no lookback: not looked up in silver)
    assert [(r.column, r.source, r.lookback_days) for r in contract.relationships] == [
        ("restaurant_id", "restaurants", None),
        ("dish_id", "dishes", None),
    ]
    assert contract.references == ()


def test_spark_schema_follows_the_contract_types():
    schema = spark_schema(load_contract("orders"))
    types = {f.name: f.dataType for f in schema.fields}
    assert types["quantity"] == T.IntegerType()
    assert types["price"] == T.DecimalType(10, 2)
    assert types["order_time"] == T.TimestampType()
    assert types["order_id"] == T.StringType()
    assert list(types) == load_contract("orders").column_names


def test_physical_types_map_to_the_type_vocabulary(tmp_path):
    doc = _doc("orders")
    _prop(doc, "quantity")["physicalType"] = "bigint"
    _prop(doc, "price")["physicalType"] = "DECIMAL(12, 2)"
    contract = parse_contract(doc)
    assert contract.column("quantity").type == "long"
    assert contract.column("price").type == "decimal(12,2)"
    types = {f.name: f.dataType for f in spark_schema(contract).fields}
    assert types["quantity"] == T.LongType() and types["price"] == T.DecimalType(12, 2)


def test_reference_contracts_load():
    restaurants = load_contract("restaurants")
    assert restaurants.layout == "snapshot" and restaurants.event_time is None
    assert restaurants.sla_value("freshness_minutes") == 1440
    assert load_contract("dishes").column("is_veg").type == "boolean"
    assert load_contract("dishes").owner == "team:partner-onboarding"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("team"), "'team.name' is required"),
        (lambda d: d.update(apiVersion="foodops/v1"), "must be an ODCS v3 version"),
        (lambda d: d.update(columns=[]), "not an ODCS v3 data contract: columns"),
        (
            lambda d: _prop(d, "quantity").update(physicalType="integr"),
            "physicalType 'integr' is not one of",
        ),
        (
            lambda d: _prop(d, "quantity").update(logicalType="number"),
            "logicalType must be 'integer' for physicalType 'int'",
        ),
        (
            lambda d: _impl(d, "valid_price").update(check="looks_fine"),
            "check 'looks_fine' is not one of",
        ),
        (
            lambda d: _impl(d, "valid_price").update(check="in_set", values=[1]),
            "write in_set as the ODCS library metric invalidValues",
        ),
        (
            lambda d: _quality(d, "valid_price").update(engine="soda"),
            "custom quality rules need engine: foodops",
        ),
        (lambda d: _quality(d, "valid_status").update(mustBe=3), "mustBe: 0"),
        (
            lambda d: _quality(d, "valid_status").update(metric="rowCount"),
            "metric 'rowCount' is not one of",
        ),
        (
            lambda d: _quality(d, "valid_status")["arguments"].pop("validValues"),
            "needs arguments.validValues",
        ),
        (lambda d: _impl(d, "order_time_in_window").pop("max_age_days"), "needs max_age_days"),
        (
            lambda d: (
                _prop(d, "city").setdefault("quality", []).append(dict(_quality(d, "has_user_id")))
            ),
            "quality ids \\(rule names\\) must be unique: has_user_id",
        ),
        (lambda d: d["slaProperties"][1].update(value=5), "is a share between 0 and 1"),
        (lambda d: d["slaProperties"][0].update(unit="fortnight"), "unit must be one of"),
        (
            lambda d: _sla(d, "dlq_retention_days").update(unit="month"),
            "dlq_retention_days\\) is a number of days: give it unit: d",
        ),
        (lambda d: _quality(d, "has_order_id").update(id="parseable_record"), "reserved"),
        (lambda d: d.update(kind="Table"), "'kind' must be DataContract"),
        (
            lambda d: _prop(d, "city").update(required=True),
            "property city is required, but none of its quality rules",
        ),
        (
            lambda d: _prop(d, "status").update(required=False),
            "rule valid_status rejects a missing value, so the property must say required: true",
        ),
        (
            lambda d: d["schema"][0]["customProperties"][1].update(value="placed_at"),
            "eventTime 'placed_at' is not a contract column",
        ),
        (lambda d: d["schema"][0].update(name="order"), "schema\\[0\\].name must be"),
    ],
)
def test_a_malformed_contract_fails_with_a_message_that_says_what_to_fix(mutate, message):
    doc = copy.deepcopy(_doc("orders"))
    mutate(doc)
    with pytest.raises(ContractError, match=message) as err:
        parse_contract(doc, source="contracts/orders.odcs.yaml")
    assert "contracts/orders.odcs.yaml" in str(err.value)


def test_missing_unparseable_and_old_format_contract_files(tmp_path):
    with pytest.raises(ContractError, match="not found"):
        load_contract("orders", tmp_path)
    (tmp_path / "orders.yaml").write_text("kind: DataContract\napiVersion: foodops/v1\n")
    with pytest.raises(ContractError, match="orders.yaml there is the old contract format"):
        load_contract("orders", tmp_path)
    (tmp_path / "orders.odcs.yaml").write_text("kind: DataContract\nschema: [unclosed\n")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_contract("orders", tmp_path)


DELIVERIES_RULES = [
    "parseable_record",
    "has_delivery_id",
    "has_order_id",
    "has_rider_id",
    "has_city",
    "assigned_at_in_window",
    "timestamps_ordered",
    "delivered_at_iff_delivered",
    "non_negative_distance",
    "valid_delivery_status",
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
    assert deliveries.reference("orders").lookback_days == 2
    assert reviews.reference("orders").lookback_days == 7
    assert reviews.reference_columns("orders") == ["order_time"]
    assert deliveries.reference_columns("orders") == []
    assert deliveries.sla_value("on_time_minutes") == 45
    types = {f.name: f.dataType for f in spark_schema(deliveries).fields}
    assert types["distance_km"] == T.DoubleType() and types["delivered_at"] == T.TimestampType()
    assert {f.name: f.dataType for f in spark_schema(reviews).fields}["rating"] == T.IntegerType()
    [ordered] = [r for r in deliveries.rules if r.name == "timestamps_ordered"]
    assert (ordered.column, list(ordered.params["then"])) == (
        "assigned_at",
        ["picked_up_at", "delivered_at"],
    )


def _lookback(doc: dict) -> dict:
    return _prop(doc, "order_id")["relationships"][0]["customProperties"][0]


@pytest.mark.parametrize(
    "source, mutate, message",
    [
        (
            "deliveries",
            lambda d: _impl(d, "delivered_at_iff_delivered").update(when_column="state"),
            "when_column 'state' is not a contract column",
        ),
        (
            "deliveries",
            lambda d: _impl(d, "delivered_at_iff_delivered").update(when_values=[]),
            "when_values must be a non-empty list",
        ),
        (
            "deliveries",
            lambda d: _impl(d, "delivered_at_iff_delivered").pop("when_values"),
            "needs when_values",
        ),
        (
            "deliveries",
            lambda d: _impl(d, "timestamps_ordered").update(then=["picked_up_at", "distance_km"]),
            "ordered columns must share one of the types",
        ),
        (
            "deliveries",
            lambda d: _impl(d, "timestamps_ordered").update(then=["picked_up", "delivered_at"]),
            "then names 'picked_up', which is not a contract column",
        ),
        (
            "deliveries",
            lambda d: _impl(d, "timestamps_ordered").update(then=["assigned_at"]),
            "a column appears twice",
        ),
        (
            "deliveries",
            lambda d: _lookback(d).update(value=-1),
            "lookbackDays must be a whole number of days",
        ),
        (
            "deliveries",
            lambda d: _prop(d, "order_id")["relationships"][0].update(to="orders"),
            "'to' must name <source>.<column>",
        ),
        (
            "reviews",
            lambda d: _impl(d, "review_after_order").update(reference="order"),
            "reference 'order' is not a relationship with lookbackDays",
        ),
        (
            "reviews",
            lambda d: _impl(d, "valid_rating").update(min=6),
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
        parse_contract(doc, source=f"contracts/{source}.odcs.yaml")
    assert f"contracts/{source}.odcs.yaml" in str(err.value)


def _all_contracts(**docs) -> dict:
    out = {}
    for name in ("orders", "deliveries", "reviews", "restaurants", "dishes"):
        doc = docs.get(name) or _doc(name)
        out[name] = parse_contract(doc, source=f"contracts/{name}.odcs.yaml")
    return out


def test_references_are_checked_across_contracts():
    check_references(_all_contracts())  # the shipped contracts agree with each other

    reviews = _doc("reviews")
    _impl(reviews, "review_after_order").update(reference_column="ordered_at")
    with pytest.raises(ContractError, match="reference_column 'ordered_at' is not a column"):
        check_references(_all_contracts(reviews=reviews))

    reviews = _doc("reviews")
    _prop(reviews, "restaurant_id")["relationships"] = [
        {"to": "restaurants.restaurant_id", "customProperties": [_lookback(reviews)]}
    ]
    with pytest.raises(ContractError, match="restaurants is a snapshot source"):
        check_references(_all_contracts(reviews=reviews))

    deliveries = _doc("deliveries")
    _prop(deliveries, "order_id")["relationships"][0]["to"] = "orders.user_id"
    with pytest.raises(ContractError, match="orders.user_id is not the primary key of orders"):
        check_references(_all_contracts(deliveries=deliveries))

    deliveries = _doc("deliveries")
    _prop(deliveries, "order_id")["relationships"][0].pop("customProperties")
    with pytest.raises(ContractError, match="custom property lookbackDays"):
        check_references(_all_contracts(deliveries=deliveries))

    dishes = _doc("dishes")
    _prop(dishes, "dish_id")["physicalType"] = "bigint"
    _prop(dishes, "dish_id")["logicalType"] = "integer"
    with pytest.raises(ContractError, match="dish_id is string but dishes.dish_id is long"):
        check_references(_all_contracts(dishes=dishes))

    orders = _doc("orders")
    _prop(orders, "order_time").update(physicalType="date", logicalType="date")
    with pytest.raises(ContractError, match=r"review_time \(timestamp\).*order_time \(date\)"):
        check_references(_all_contracts(orders=orders))

    contracts = _all_contracts()
    del contracts["orders"]
    with pytest.raises(ContractError, match="no contract named 'orders' is loaded"):
        check_references(contracts)
