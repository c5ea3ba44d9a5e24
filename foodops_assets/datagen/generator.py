"""Synthetic landing data for every FoodOps source (DESIGN.md section 3).

Deterministic for a seed: the same arguments write byte-identical files.
Orders follow lunch and dinner peaks; deliveries take longer with distance;
a fraction of delivered orders gets a review whose rating depends on the
kitchen and on how late the food was.

At ``bad_rate`` every daily source carries every kind of bad record its
contract's rules catch (orders: malformed JSON, wrong types, missing ids,
non-positive price and quantity, future timestamps; deliveries and reviews:
see ``BAD_DELIVERY_KINDS`` and ``BAD_REVIEW_KINDS``), records with fields
outside the contract (accepted, rescued), and exact duplicates within and
across files. The bad deliveries and reviews draw from their own random
stream, so the orders of a seed are the same with or without them. Files
are written as ``.tmp`` and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tqdm import tqdm

from .world import World, build_world

BAD_ORDER_KINDS = (
    "malformed_json",
    "wrong_type",
    "missing_id",
    "non_positive_price",
    "non_positive_quantity",
    "future_timestamp",
)
# kind of bad delivery -> the deliveries rule it breaks (some break a second one too)
BAD_DELIVERY_KINDS = {
    "malformed_json": "parseable_record",
    "wrong_type": "parseable_record",
    "missing_delivery_id": "has_delivery_id",
    "missing_order_id": "has_order_id",
    "missing_rider_id": "has_rider_id",
    "missing_city": "has_city",
    "unknown_status": "valid_delivery_status",
    "future_assignment": "assigned_at_in_window",
    "delivered_without_time": "delivered_at_iff_delivered",
    "time_without_delivery": "delivered_at_iff_delivered",
    "unordered_timestamps": "timestamps_ordered",
    "negative_distance": "non_negative_distance",
}
# kind of bad review -> the reviews rule it breaks
BAD_REVIEW_KINDS = {
    "malformed_json": "parseable_record",
    "wrong_type": "parseable_record",
    "missing_review_id": "has_review_id",
    "missing_order_id": "has_order_id",
    "missing_user_id": "has_user_id",
    "missing_restaurant_id": "has_restaurant_id",
    "rating_out_of_range": "valid_rating",
    "future_review": "review_time_in_window",
    "review_before_order": "review_after_order",
}
PAYMENT_METHODS = (("upi", 0.5), ("card", 0.25), ("wallet", 0.1), ("cash", 0.15))
COMMENTS = {
    5: ["Loved it!", "Perfect, will order again", "Hot and on time", "Best in town"],
    4: ["Tasty", "Good food, a bit late", "Nice portion", "Would order again"],
    3: ["Okay", "Average taste", "Cold on arrival", "Portion was small"],
    2: ["Not great", "Too oily", "Very late", "Wrong item delivered"],
    1: ["Terrible", "Inedible", "Never again", "Order was a mess"],
}


@dataclass
class GenerationReport:
    landing_root: str
    start: dt.date
    days: int
    files: int = 0
    records: Counter = field(default_factory=Counter)  # source -> lines written
    bad_orders: Counter = field(default_factory=Counter)  # kind -> lines
    extra_field_orders: int = 0
    duplicate_orders: int = 0
    bad_deliveries: Counter = field(default_factory=Counter)  # kind -> lines
    bad_reviews: Counter = field(default_factory=Counter)  # kind -> lines
    duplicates: Counter = field(default_factory=Counter)  # deliveries/reviews -> extra copies
    extra_fields: Counter = field(default_factory=Counter)  # deliveries/reviews -> lines

    def summary(self) -> str:
        lines = [
            f"wrote {self.files} files under {self.landing_root} "
            f"({self.start.isoformat()} + {self.days} days)"
        ]
        for source, n in sorted(self.records.items()):
            lines.append(f"  {source:<12} {n:>10,} lines")
        if self.bad_orders or self.duplicate_orders or self.extra_field_orders:
            bad = ", ".join(f"{k}={v}" for k, v in sorted(self.bad_orders.items()))
            lines.append(
                f"  bad orders: {bad or 'none'}; exact duplicates: {self.duplicate_orders}; "
                f"with fields outside the contract: {self.extra_field_orders}"
            )
        for source, bad in (("deliveries", self.bad_deliveries), ("reviews", self.bad_reviews)):
            if bad or self.duplicates[source] or self.extra_fields[source]:
                kinds = ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
                lines.append(
                    f"  bad {source}: {kinds or 'none'}; exact duplicates: "
                    f"{self.duplicates[source]}; with fields outside the contract: "
                    f"{self.extra_fields[source]}"
                )
        return "\n".join(lines)


def generate(
    landing_root: str | Path,
    start: dt.date,
    days: int,
    orders_per_day: int,
    files_per_day: int = 4,
    bad_rate: float = 0.0,
    seed: int = 42,
    progress: bool | None = None,
) -> GenerationReport:
    if days < 1:
        raise ValueError("--days must be at least 1")
    if orders_per_day < 1:
        raise ValueError("--orders-per-day must be at least 1")
    if files_per_day < 1:
        raise ValueError("--files-per-day must be at least 1")
    if not 0.0 <= bad_rate <= 1.0:
        raise ValueError("--bad-rate is a share between 0 and 1")

    root = Path(landing_root)
    rng = random.Random(seed)
    # bad deliveries and reviews: their own stream, so the orders do not depend on them
    bad_rng = random.Random(f"foodops-bad-records-{seed}")
    world = build_world(rng, orders_per_day, start)
    report = GenerationReport(str(root), start, days)

    _write_snapshots(root, world, start, days, seed, report)

    later: dict[str, dict[dt.date, list[str]]] = {"deliveries": {}, "reviews": {}}
    order_time_of: dict[str, str] = {}  # order_id -> order_time, for reviewed orders

    def land_later(source: str, d: dt.date, rows: list[str]) -> None:
        rows = _corrupt_later(bad_rng, source, rows, bad_rate, d, order_time_of, report)
        batches = _duplicate(bad_rng, _split(rows, files_per_day), bad_rate, report, source)
        _write_daily(root, source, d, batches, report)
        report.records[source] += sum(len(b) for b in batches)

    bar = tqdm(
        total=days * orders_per_day,
        unit="orders",
        desc="generating",
        disable=(not progress) if progress is not None else (days * orders_per_day < 200_000),
    )
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        orders, deliveries, reviews = _simulate_day(rng, world, day, orders_per_day, bar.update)
        for d, line in deliveries:
            later["deliveries"].setdefault(d, []).append(line)
        for d, line in reviews:
            later["reviews"].setdefault(d, []).append(line)
        if bad_rate > 0:  # a review written before its order needs the order's time
            reviewed = {json.loads(line)["order_id"] for _, line in reviews}
            order_time_of.update(
                (o["order_id"], o["order_time"]) for o in orders if o["order_id"] in reviewed
            )

        orders.sort(key=lambda o: o["order_time"])  # batches follow the clock, like a producer's
        lines = [json.dumps(o, separators=(",", ":")) for o in orders]
        lines = _corrupt_orders(rng, orders, lines, bad_rate, day, report)
        batches = _split(lines, files_per_day)
        batches = _duplicate(rng, batches, bad_rate, report)
        _write_daily(root, "orders", day, batches, report)
        report.records["orders"] += sum(len(b) for b in batches)

        # deliveries and reviews land on the day they happen, which can be later
        for source in ("deliveries", "reviews"):
            for d in sorted(k for k in later[source] if k <= day):
                land_later(source, d, later[source].pop(d))
    bar.close()
    # what happens after the last day (late deliveries, reviews) lands too
    for source in ("deliveries", "reviews"):
        for d, rows in sorted(later[source].items()):
            land_later(source, d, rows)
    return report


# -- simulation ------------------------------------------------------------------------
def _order_time(rng: random.Random, day: dt.date) -> dt.datetime:
    roll = rng.random()
    if roll < 0.4:
        hours = rng.gauss(12.75, 1.0)  # lunch
    elif roll < 0.85:
        hours = rng.gauss(20.25, 1.3)  # dinner
    else:
        hours = rng.uniform(7, 24)
    hours = min(max(hours, 0.0), 23.9997)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(hours=hours)


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _simulate_day(
    rng: random.Random,
    world: World,
    day: dt.date,
    n_orders: int,
    tick: Callable[[int], object],
):
    orders = []
    deliveries: list[tuple[dt.date, str]] = []
    reviews: list[tuple[dt.date, str]] = []
    methods, weights = zip(*PAYMENT_METHODS, strict=True)
    for i in range(1, n_orders + 1):
        user = world.pick_user(rng)
        restaurant, dish = world.pick_order(rng, user)
        placed_at = _order_time(rng, day)
        cancelled = rng.random() < 0.04
        quantity = rng.choices((1, 2, 3, 4), weights=(70, 20, 7, 3))[0]
        price = Decimal(str(dish.list_price))
        if rng.random() < 0.2:
            price = (price * Decimal("0.9")).quantize(Decimal("0.01"))
        order_id = f"o-{day:%Y%m%d}-{i:07d}"
        orders.append(
            {
                "order_id": order_id,
                "user_id": user.user_id,
                "restaurant_id": restaurant.restaurant_id,
                "dish_id": dish.dish_id,
                "quantity": quantity,
                "price": float(price),
                "order_time": _iso(placed_at),
                "city": user.city,
                "payment_method": rng.choices(methods, weights=weights)[0],
                "status": "cancelled" if cancelled else "placed",
            }
        )
        # delivery
        assigned = placed_at + dt.timedelta(minutes=rng.uniform(1, 4))
        distance = round(min(max(rng.lognormvariate(math.log(3.2), 0.55), 0.3), 18.0), 2)
        delivery = {
            "delivery_id": f"dl-{day:%Y%m%d}-{i:07d}",
            "order_id": order_id,
            "rider_id": rng.choice(world.riders[user.city]),
            "city": user.city,
            "assigned_at": _iso(assigned),
            "picked_up_at": None,
            "delivered_at": None,
            "distance_km": distance,
            "status": "cancelled",
        }
        delivered_at = None
        if not cancelled:
            picked = assigned + dt.timedelta(minutes=rng.uniform(8, 25))
            delivery["picked_up_at"] = _iso(picked)
            if rng.random() < 0.02:
                delivery["status"] = "failed"
            else:
                minutes = distance * rng.uniform(2.5, 4.0) + max(rng.gauss(0, 2), -3)
                delivered_at = picked + dt.timedelta(minutes=max(minutes, 2))
                delivery["delivered_at"] = _iso(delivered_at)
                delivery["status"] = "delivered"
        deliveries.append((assigned.date(), json.dumps(delivery, separators=(",", ":"))))
        # review for some delivered orders
        if delivered_at is not None and rng.random() < 0.3:
            total_minutes = (delivered_at - placed_at).total_seconds() / 60
            rating = restaurant.quality + rng.gauss(0, 0.8) - (1.0 if total_minutes > 50 else 0.0)
            rating = int(min(max(round(rating), 1), 5))
            reviewed = delivered_at + dt.timedelta(minutes=rng.expovariate(1 / 180))
            review = {
                "review_id": f"rv-{day:%Y%m%d}-{i:07d}",
                "order_id": order_id,
                "user_id": user.user_id,
                "restaurant_id": restaurant.restaurant_id,
                "rating": rating,
                "comment": rng.choice(COMMENTS[rating]),
                "review_time": _iso(reviewed),
            }
            reviews.append((reviewed.date(), json.dumps(review, separators=(",", ":"))))
        if i % 10_000 == 0:
            tick(10_000)
    tick(n_orders % 10_000)
    return orders, deliveries, reviews


# -- bad data --------------------------------------------------------------------------
def _corrupt_orders(rng, orders, lines, bad_rate, day, report) -> list[str]:
    if bad_rate <= 0:
        return lines
    out = []
    for order, line in zip(orders, lines, strict=True):
        roll = rng.random()
        if roll < bad_rate:
            kind = BAD_ORDER_KINDS[rng.randrange(len(BAD_ORDER_KINDS))]
            out.append(_bad_order(rng, dict(order), line, kind, day))
            report.bad_orders[kind] += 1
        elif roll < bad_rate * 1.3:
            # fields outside the contract: accepted, rescued in bronze
            extra = dict(order, coupon_code=f"SAVE{rng.randint(5, 50)}", app_version="9.4.1")
            out.append(json.dumps(extra, separators=(",", ":")))
            report.extra_field_orders += 1
        else:
            out.append(line)
    return out


def _bad_order(rng, order: dict, line: str, kind: str, day: dt.date) -> str:
    if kind == "malformed_json":
        return line[: rng.randint(5, max(6, len(line) - 5))]
    if kind == "wrong_type":
        field_, value = rng.choice(
            [
                ("quantity", "two"),
                ("price", "twelve"),
                ("quantity", 2.5),
                ("order_time", 1763640000),
            ]
        )
        order[field_] = value
    elif kind == "missing_id":
        field_ = rng.choice(["order_id", "user_id", "dish_id"])
        if rng.random() < 0.5:
            order.pop(field_)
        else:
            order[field_] = rng.choice([None, "", "  "])
    elif kind == "non_positive_price":
        order["price"] = rng.choice([0, -order["price"]])
        if rng.random() < 0.25:  # some break two rules at once
            order["quantity"] = 0
    elif kind == "non_positive_quantity":
        order["quantity"] = rng.choice([0, -1])
    elif kind == "future_timestamp":
        future = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
            days=rng.randint(3, 30), hours=rng.randint(0, 23)
        )
        order["order_time"] = _iso(future)
    return json.dumps(order, separators=(",", ":"))


def _duplicate(
    rng, batches: list[list[str]], bad_rate: float, report, source: str = "orders"
) -> list[list[str]]:
    """Exact duplicate lines, within a file and across files."""
    if bad_rate <= 0:
        return batches
    n = sum(len(b) for b in batches)
    copies = int(n * bad_rate / 2)
    for k in range(copies):
        src = rng.randrange(len(batches))
        if not batches[src]:
            continue
        line = rng.choice(batches[src])
        dst = src if (k % 2 == 0 or len(batches) == 1) else rng.randrange(len(batches))
        batches[dst].insert(rng.randrange(len(batches[dst]) + 1), line)
        if source == "orders":
            report.duplicate_orders += 1
        else:
            report.duplicates[source] += 1
    return batches


def _corrupt_later(rng, source, rows, bad_rate, day, order_time_of, report) -> list[str]:
    """Bad deliveries or reviews: every kind of the source's catalogue, and some
    records with fields outside the contract (accepted, rescued in bronze)."""
    if bad_rate <= 0:
        return rows
    kinds = list(BAD_DELIVERY_KINDS if source == "deliveries" else BAD_REVIEW_KINDS)
    counter = report.bad_deliveries if source == "deliveries" else report.bad_reviews
    out = []
    for line in rows:
        roll = rng.random()
        if roll < bad_rate:
            kind = kinds[rng.randrange(len(kinds))]
            record = json.loads(line)
            if kind == "malformed_json":
                out.append(line[: rng.randint(5, max(6, len(line) - 5))])
            elif source == "deliveries":
                out.append(_bad_delivery(rng, record, kind, day))
            else:
                out.append(_bad_review(rng, record, kind, day, order_time_of))
            counter[kind] += 1
        elif roll < bad_rate * 1.3:
            record = json.loads(line)
            if source == "deliveries":
                record.update(tip_amount=rng.choice([0, 10, 20, 50]), vehicle="bike")
            else:
                record.update(photo_count=rng.randint(0, 3))
            out.append(json.dumps(record, separators=(",", ":")))
            report.extra_fields[source] += 1
        else:
            out.append(line)
    return out


def _parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _bad_delivery(rng, d: dict, kind: str, day: dt.date) -> str:
    assigned = _parse_iso(d["assigned_at"])
    if kind == "wrong_type":
        field_, value = rng.choice(
            [("distance_km", "far"), ("assigned_at", 1763640000), ("distance_km", [1.5])]
        )
        d[field_] = value
    elif kind in ("missing_delivery_id", "missing_order_id", "missing_rider_id", "missing_city"):
        field_ = kind.removeprefix("missing_")
        if rng.random() < 0.5:
            d.pop(field_)
        else:
            d[field_] = rng.choice([None, "", "  "])
    elif kind == "unknown_status":
        # an outcome the contract does not know; no delivered_at, so only this rule breaks
        d.update(status=rng.choice(["lost", "returned", "DELIVERED"]), delivered_at=None)
    elif kind == "future_assignment":
        future = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
            days=rng.randint(3, 30), hours=rng.randint(0, 23)
        )
        d.update(assigned_at=_iso(future), picked_up_at=None, delivered_at=None)
        d["status"] = "cancelled"
    elif kind == "delivered_without_time":
        d.update(status="delivered", delivered_at=None)
    elif kind == "time_without_delivery":
        if d["status"] == "delivered":
            d["status"] = "failed"
        else:
            d["delivered_at"] = _iso(assigned + dt.timedelta(minutes=rng.uniform(30, 60)))
            d["picked_up_at"] = None
    elif kind == "unordered_timestamps":
        # picked up before it was assigned (status and delivered_at stay consistent)
        d["picked_up_at"] = _iso(assigned - dt.timedelta(minutes=rng.uniform(5, 30)))
    elif kind == "negative_distance":
        d["distance_km"] = rng.choice([-1.0, -round(d["distance_km"], 2) or -0.5])
    return json.dumps(d, separators=(",", ":"))


def _bad_review(rng, r: dict, kind: str, day: dt.date, order_time_of: dict[str, str]) -> str:
    if kind == "wrong_type":
        field_, value = rng.choice([("rating", "5"), ("rating", 4.5), ("review_time", 1763640000)])
        r[field_] = value
    elif kind in (
        "missing_review_id",
        "missing_order_id",
        "missing_user_id",
        "missing_restaurant_id",
    ):
        field_ = kind.removeprefix("missing_")
        if rng.random() < 0.5:
            r.pop(field_)
        else:
            r[field_] = rng.choice([None, "", "  "])
    elif kind == "rating_out_of_range":
        r["rating"] = rng.choice([0, 6, -1, 10])
    elif kind == "future_review":
        future = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
            days=rng.randint(3, 30), hours=rng.randint(0, 23)
        )
        r["review_time"] = _iso(future)
    elif kind == "review_before_order":
        ordered = _parse_iso(order_time_of[r["order_id"]])
        r["review_time"] = _iso(ordered - dt.timedelta(minutes=rng.uniform(10, 120)))
    return json.dumps(r, separators=(",", ":"))


# -- files -----------------------------------------------------------------------------
def _split(lines: list[str], parts: int) -> list[list[str]]:
    parts = max(1, min(parts, len(lines))) if lines else 1
    size = math.ceil(len(lines) / parts) if lines else 0
    return [lines[i * size : (i + 1) * size] for i in range(parts)]


def _write_lines(path: Path, lines: list[str]) -> None:
    """Write ``path`` atomically: a reader sees the whole file or none of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for line in lines:
            fh.write(line)
            fh.write("\n")
    os.replace(tmp, path)


def _write_daily(root, source, day, batches, report) -> None:
    """Each date directory is written once per run, with the same batch names,
    so generating again with the same arguments rewrites identical files."""
    directory = root / source / f"date={day.isoformat()}"
    for k, batch in enumerate(batches, start=1):
        if batch:
            _write_lines(directory / f"batch-{k:04d}.jsonl", batch)
            report.files += 1


def _restaurant_record(r) -> dict:
    return {
        "restaurant_id": r.restaurant_id,
        "name": r.name,
        "cuisine": r.cuisine,
        "city": r.city,
        "latitude": r.latitude,
        "longitude": r.longitude,
        "onboarded_date": r.onboarded_date.isoformat(),
    }


def _dish_record(d) -> dict:
    return {
        "dish_id": d.dish_id,
        "restaurant_id": d.restaurant_id,
        "name": d.name,
        "cuisine": d.cuisine,
        "is_veg": d.is_veg,
        "list_price": d.list_price,
    }


def snapshot_sequence(
    world: World, start: dt.date, days: int, seed: int
) -> list[tuple[str, list[dict], list[dict]]]:
    """The reference snapshots of a generated run, in the order they land: (file name,
    restaurants, dishes). Day 0 is the world as it is. With two days or more, day 1
    renames a few restaurants and reprices a few dishes; with three or more, day 1 also
    drops one restaurant (and its dishes), day 2 brings it back and reverts one rename, and
    a snapshot of day 1 noon lands *after* day 2's (a late snapshot: the history puts it
    between them). The newest snapshot always holds every restaurant and dish the orders
    use. Changes draw from their own random stream, so the orders do not depend on them."""
    rng = random.Random(f"foodops-snapshots-{seed}")
    restaurants = [_restaurant_record(r) for r in world.restaurants]
    dishes = [_dish_record(d) for d in world.dishes]
    sequence = [(f"snapshot-{start:%Y%m%d}.jsonl", restaurants, dishes)]
    if days < 2:
        return sequence
    renamed = rng.sample(range(len(restaurants)), k=max(1, len(restaurants) // 50))
    repriced = set(rng.sample(range(len(dishes)), k=max(1, len(dishes) // 30)))
    day1_restaurants = [
        {**r, "name": f"{r['name']} Express"} if i in renamed else r
        for i, r in enumerate(restaurants)
    ]
    day1_dishes = [
        {**d, "list_price": round(d["list_price"] * 1.1) + 0.0} if i in repriced else d
        for i, d in enumerate(dishes)
    ]
    day1 = start + dt.timedelta(days=1)
    if days < 3:
        return [*sequence, (f"snapshot-{day1:%Y%m%d}.jsonl", day1_restaurants, day1_dishes)]
    gone = restaurants[rng.randrange(len(restaurants))]["restaurant_id"]
    day1_kept = [r for r in day1_restaurants if r["restaurant_id"] != gone]
    day1_kept_dishes = [d for d in day1_dishes if d["restaurant_id"] != gone]
    reverted = renamed[0]
    day2_restaurants = [
        restaurants[i] if i == reverted else r for i, r in enumerate(day1_restaurants)
    ]
    # the late one: day 1 at noon, the first renamed restaurant moved to another cuisine
    late_restaurants = [
        {**r, "cuisine": "Healthy" if r["cuisine"] != "Healthy" else "Desserts"}
        if i == renamed[0]
        else r
        for i, r in enumerate(day1_kept)
    ]
    day2 = start + dt.timedelta(days=2)
    return [
        *sequence,
        (f"snapshot-{day1:%Y%m%d}.jsonl", day1_kept, day1_kept_dishes),
        (f"snapshot-{day2:%Y%m%d}.jsonl", day2_restaurants, day1_dishes),
        (f"snapshot-{day1:%Y%m%d}T120000Z.jsonl", late_restaurants, day1_kept_dishes),
    ]


def _write_snapshots(
    root: Path, world: World, start: dt.date, days: int, seed: int, report
) -> None:
    """Every reference snapshot of the run (:func:`snapshot_sequence`), in landing order."""
    for name, restaurants, dishes in snapshot_sequence(world, start, days, seed):
        for source, records in (("restaurants", restaurants), ("dishes", dishes)):
            _write_lines(
                root / source / name, [json.dumps(r, separators=(",", ":")) for r in records]
            )
            report.files += 1
            report.records[source] += len(records)
