import datetime as dt
import hashlib
import json
import statistics
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from foodops_assets.cli import main
from foodops_assets.datagen.generator import (
    BAD_DELIVERY_KINDS,
    BAD_ORDER_KINDS,
    BAD_REVIEW_KINDS,
    generate,
)

START = dt.date(2026, 11, 18)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _records(root: Path, source: str) -> list[dict]:
    out = []
    for path in sorted((root / source).rglob("*.jsonl")):
        for text in path.read_text().splitlines():
            try:
                out.append(json.loads(text))
            except json.JSONDecodeError:
                pass
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    generate(root, START, days=2, orders_per_day=3000, files_per_day=3, bad_rate=0.0, seed=7)
    return root


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    kwargs = dict(start=START, days=2, orders_per_day=300, files_per_day=2, bad_rate=0.05)
    generate(tmp_path / "a", seed=1, **kwargs)
    generate(tmp_path / "b", seed=1, **kwargs)
    generate(tmp_path / "c", seed=2, **kwargs)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    # generating again into the same place rewrites the same files, adds none
    generate(tmp_path / "a", seed=1, **kwargs)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_all_five_sources_land_in_the_design_layout(clean):
    assert sorted(p.name for p in clean.iterdir()) == [
        "deliveries",
        "dishes",
        "orders",
        "restaurants",
        "reviews",
    ]
    assert [p.name for p in sorted((clean / "orders").iterdir())] == [
        "date=2026-11-18",
        "date=2026-11-19",
    ]
    assert len(list((clean / "orders" / "date=2026-11-18").glob("*.jsonl"))) == 3
    assert list((clean / "restaurants").glob("*.jsonl")) and list(
        (clean / "dishes").glob("*.jsonl")
    )
    assert not list(clean.rglob("*.tmp"))  # files are renamed into place when complete


def test_orders_have_lunch_and_dinner_peaks(clean):
    hours = Counter(int(o["order_time"][11:13]) for o in _records(clean, "orders"))
    night = sum(hours[h] for h in range(2, 6))
    lunch = sum(hours[h] for h in range(12, 14))
    dinner = sum(hours[h] for h in range(19, 22))
    assert lunch > 5 * max(night, 1) and dinner > 5 * max(night, 1)


def test_popularity_is_skewed(clean):
    by_restaurant = Counter(o["restaurant_id"] for o in _records(clean, "orders"))
    ranked = [n for _, n in by_restaurant.most_common()]
    top_decile = sum(ranked[: max(1, len(ranked) // 10)])
    assert top_decile > 0.3 * sum(ranked)


def test_users_keep_to_their_cuisines(clean):
    restaurants = {r["restaurant_id"]: r["cuisine"] for r in _records(clean, "restaurants")}
    by_user: dict[str, Counter] = {}
    for o in _records(clean, "orders"):
        by_user.setdefault(o["user_id"], Counter())[restaurants[o["restaurant_id"]]] += 1
    regulars = [c for c in by_user.values() if sum(c.values()) >= 5]
    top_two = [sum(n for _, n in c.most_common(2)) / sum(c.values()) for c in regulars]
    assert regulars and statistics.mean(top_two) > 0.6  # 10 cuisines: 0.2 would be no preference


def test_delivery_time_grows_with_distance_and_reviews_follow_deliveries(clean):
    deliveries = [d for d in _records(clean, "deliveries") if d["status"] == "delivered"]
    assert deliveries

    def minutes(d):
        picked = dt.datetime.fromisoformat(d["picked_up_at"])
        return (dt.datetime.fromisoformat(d["delivered_at"]) - picked).total_seconds() / 60

    near = [minutes(d) for d in deliveries if d["distance_km"] < 2]
    far = [minutes(d) for d in deliveries if d["distance_km"] > 6]
    assert statistics.mean(far) > statistics.mean(near) + 10
    reviews = _records(clean, "reviews")
    assert 0.2 < len(reviews) / len(deliveries) < 0.4
    delivered_orders = {d["order_id"] for d in deliveries}
    assert all(r["order_id"] in delivered_orders for r in reviews)
    assert {r["rating"] for r in reviews} <= {1, 2, 3, 4, 5}


def test_bad_rate_injects_every_kind_of_bad_order_duplicates_and_extra_fields(tmp_path):
    report = generate(
        tmp_path, START, days=1, orders_per_day=4000, files_per_day=4, bad_rate=0.05, seed=3
    )
    assert set(report.bad_orders) == set(BAD_ORDER_KINDS)
    lines = [
        text
        for path in sorted((tmp_path / "orders").rglob("*.jsonl"))
        for text in path.read_text().splitlines()
    ]
    malformed = 0
    parsed = []
    for text in lines:
        try:
            parsed.append(json.loads(text))
        except json.JSONDecodeError:
            malformed += 1
    # duplicates may copy a malformed line too
    assert (
        report.bad_orders["malformed_json"]
        <= malformed
        <= report.bad_orders["malformed_json"] + report.duplicate_orders
    )
    assert any("coupon_code" in o for o in parsed)
    assert any(
        o.get("price", 1) is not None
        and isinstance(o.get("price"), (int, float))
        and o["price"] <= 0
        for o in parsed
    )
    assert any(
        isinstance(o.get("quantity"), str)
        or isinstance(o.get("price"), str)
        or isinstance(o.get("order_time"), int)
        or isinstance(o.get("quantity"), float)
        for o in parsed
    )
    assert any(
        o.get("order_time", "9999")[:10] > "2026-11-19"
        for o in parsed
        if isinstance(o.get("order_time"), str)
    )
    # exact duplicates within a file and across files
    per_file = [p.read_text().splitlines() for p in sorted((tmp_path / "orders").rglob("*.jsonl"))]
    within = sum(len(f) - len(set(f)) for f in per_file)
    across = len(lines) - len(set(lines)) - within
    assert within > 0 and across > 0
    assert report.duplicate_orders == len(lines) - 4000


def test_cli_generates_with_the_documented_flags(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "--landing-root",
            str(tmp_path),
            "--start",
            "2026-11-18",
            "--days",
            "1",
            "--orders-per-day",
            "50",
            "--files-per-day",
            "2",
            "--bad-rate",
            "0.1",
            "--seed",
            "9",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "orders" in result.output and "bad orders" in result.output
    assert len(list((tmp_path / "orders" / "date=2026-11-18").glob("*.jsonl"))) == 2


def test_cli_rejects_bad_arguments_with_a_clear_message(tmp_path):
    result = CliRunner().invoke(
        main, ["generate", "--landing-root", str(tmp_path), "--start", "20-11-2026"]
    )
    assert result.exit_code != 0 and "use YYYY-MM-DD" in result.output
    result = CliRunner().invoke(
        main, ["generate", "--landing-root", str(tmp_path), "--bad-rate", "1.5"]
    )
    assert result.exit_code != 0 and "1.5" in result.output


def test_bad_rate_breaks_every_rule_of_every_daily_source(tmp_path, spark):
    """What `make run` relies on to exercise the DLQ: the generated bad records, parsed
    and validated like bronze and silver do, break every rule of their contract."""
    from pyspark.sql import functions as F

    from foodops_assets.contracts import load_contract
    from foodops_assets.lakehouse.landing import read_whole_files
    from foodops_assets.transforms.bronze import (
        parse_records,
        partition_date_from_path,
        split_lines,
    )
    from foodops_assets.transforms.references import attach_references
    from foodops_assets.transforms.silver import validate

    report = generate(
        tmp_path, START, days=2, orders_per_day=2500, files_per_day=2, bad_rate=0.08, seed=4
    )
    assert set(report.bad_deliveries) == set(BAD_DELIVERY_KINDS)
    assert set(report.bad_reviews) == set(BAD_REVIEW_KINDS)
    assert report.duplicates["deliveries"] > 0 and report.duplicates["reviews"] > 0
    assert report.extra_fields["deliveries"] > 0 and report.extra_fields["reviews"] > 0

    start = dt.datetime.combine(START, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=2)

    def bronze(source):
        paths = [
            str(p)
            for day in ("2026-11-18", "2026-11-19")
            for p in sorted((tmp_path / source / f"date={day}").glob("*.jsonl"))
        ]
        lines = split_lines(read_whole_files(spark, paths))
        return parse_records(lines, load_contract(source), partition_date_from_path())

    orders = validate(bronze("orders"), load_contract("orders"), start, end).valid
    lookup = {"orders": orders.select("order_id", "partition_date", "order_time")}
    for source in ("deliveries", "reviews"):
        contract = load_contract(source)
        v = validate(attach_references(bronze(source), contract, lookup), contract, start, end)
        broken = {
            r.rule for r in v.rejected.select(F.explode("failed_rules").alias("rule")).collect()
        }
        assert broken == set(contract.rule_names), source
        assert {r["_dest"] for r in v.counts().collect()} == {"silver", "dlq", "duplicate"}
