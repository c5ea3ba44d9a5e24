import datetime as dt
from decimal import Decimal

from foodops_assets.contracts import load_contract
from foodops_assets.contracts.pandera_schema import validate
from foodops_assets.contracts.spark import spark_schema

START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)


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


def test_pandera_accepts_records_that_honour_the_contract(spark):
    contract = load_contract("orders")
    df = spark.createDataFrame(_rows(), spark_schema(contract))
    report = validate(df, contract, START, END)
    assert report.passed, report.summary


def test_pandera_names_the_column_and_check_that_fail(spark):
    contract = load_contract("orders")
    df = spark.createDataFrame(
        _rows(price=Decimal("-1.00")) + _rows(order_id="o-2", status="lost"),
        spark_schema(contract),
    )
    report = validate(df, contract, START, END)
    assert not report.passed
    assert "price" in report.summary and "valid_price" in report.summary
    assert "status" in report.summary and "valid_status" in report.summary


def test_pandera_rejects_a_null_in_a_required_column(spark):
    contract = load_contract("orders")
    df = spark.createDataFrame(_rows(user_id=None), spark_schema(contract))
    report = validate(df, contract, START, END)
    assert not report.passed
    assert "user_id" in report.summary
