import datetime as dt
from decimal import Decimal

import pytest

from foodops_assets.contracts import load_contract
from foodops_assets.contracts.pandera_schema import validate
from foodops_assets.contracts.spark import spark_schema

START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)


@pytest.fixture(params=["pyspark", "polars"])
def rows(request, spark):
    """Records as pandera gets them: a Spark DataFrame (pandera.pyspark), or the Arrow
    rows the arrow writer publishes (pandera.polars). Every test holds for both."""

    def make(records, schema):
        df = spark.createDataFrame(records, schema)
        return df if request.param == "pyspark" else df.toArrow()

    return make


def _rows(**overrides):
    row = {
        "order_id": "o-1",
        "user_id": "u-1",
        "restaurant_id": "r-1",
        "dish_id": "d-1",
        "quantity": 2,
        "price": Decimal("10.50"),
        "order_time": dt.datetime(2026, 11, 20, 12, 0),
        "city": "Pune",
        "payment_method": "upi",
        "status": "placed",
    }
    row.update(overrides)
    return [row]


def test_pandera_accepts_records_that_honour_the_contract(rows):
    contract = load_contract("orders")
    df = rows(_rows(), spark_schema(contract))
    report = validate(df, contract, START, END)
    assert report.passed, report.summary


def test_pandera_names_the_column_and_check_that_fail(rows):
    contract = load_contract("orders")
    df = rows(
        _rows(price=Decimal("-1.00")) + _rows(order_id="o-2", status="lost"),
        spark_schema(contract),
    )
    report = validate(df, contract, START, END)
    assert not report.passed
    assert "price" in report.summary and "valid_price" in report.summary
    assert "status" in report.summary and "valid_status" in report.summary


def test_pandera_rejects_a_null_in_a_required_column(rows):
    contract = load_contract("orders")
    df = rows(_rows(user_id=None), spark_schema(contract))
    report = validate(df, contract, START, END)
    assert not report.passed
    assert "user_id" in report.summary


def _delivery(**overrides):
    row = {
        "delivery_id": "dl-1",
        "order_id": "o-1",
        "rider_id": "rider-1",
        "city": "Pune",
        "assigned_at": dt.datetime(2026, 11, 20, 12, 0),
        "picked_up_at": dt.datetime(2026, 11, 20, 12, 15),
        "delivered_at": dt.datetime(2026, 11, 20, 12, 40),
        "distance_km": 3.5,
        "status": "delivered",
    }
    row.update(overrides)
    return row


def test_pandera_checks_the_multi_column_delivery_rules_under_their_names(rows):
    contract = load_contract("deliveries")
    good = [
        _delivery(),
        _delivery(delivery_id="dl-2", status="cancelled", picked_up_at=None, delivered_at=None),
        _delivery(delivery_id="dl-3", status="failed", delivered_at=None),
    ]
    report = validate(rows(good, spark_schema(contract)), contract, START, END)
    assert report.passed, report.summary

    bad = [
        _delivery(status="failed"),  # delivered_at without being delivered
        _delivery(delivery_id="dl-2", picked_up_at=dt.datetime(2026, 11, 20, 11, 0)),
    ]
    report = validate(rows(bad, spark_schema(contract)), contract, START, END)
    assert not report.passed
    assert "delivered_at_iff_delivered" in report.summary
    assert "timestamps_ordered" in report.summary
    assert "non_negative_distance" not in report.summary


def test_pandera_lets_delivered_at_be_null_but_not_assigned_at(rows):
    contract = load_contract("deliveries")
    df = rows(
        [_delivery(status="cancelled", picked_up_at=None, delivered_at=None, assigned_at=None)],
        spark_schema(contract),
    )
    report = validate(df, contract, START, END)
    assert not report.passed
    assert "assigned_at" in report.summary and "delivered_at" not in report.summary
