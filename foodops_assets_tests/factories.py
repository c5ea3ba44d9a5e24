"""Small, readable records for crafted test inputs."""

from __future__ import annotations

import datetime as dt
import json

DAY = dt.date(2026, 11, 20)


def order(n: int = 1, day: dt.date = DAY, **overrides) -> dict:
    record = {
        "order_id": f"o-{n}",
        "user_id": f"u-{n % 7}",
        "restaurant_id": "r-1",
        "dish_id": "d-1",
        "quantity": 2,
        "price": 100.25,
        "order_time": f"{day.isoformat()}T12:{n % 60:02d}:00Z",
        "city": "Pune",
        "payment_method": "upi",
        "status": "placed",
    }
    record.update(overrides)
    return record


def without(record: dict, *fields: str) -> dict:
    return {k: v for k, v in record.items() if k not in fields}


def line(record: dict) -> str:
    return json.dumps(record)


RESTAURANTS = [
    {
        "restaurant_id": "r-1",
        "name": "Spice Kitchen",
        "cuisine": "North Indian",
        "city": "Pune",
        "latitude": 18.52,
        "longitude": 73.85,
        "onboarded_date": "2024-01-01",
    },
    {
        "restaurant_id": "r-2",
        "name": "Dosa Corner",
        "cuisine": "South Indian",
        "city": "Mumbai",
        "latitude": 19.07,
        "longitude": 72.87,
        "onboarded_date": "2024-03-01",
    },
]

DISHES = [
    {
        "dish_id": "d-1",
        "restaurant_id": "r-1",
        "name": "Dal Makhani",
        "cuisine": "North Indian",
        "is_veg": True,
        "list_price": 100.25,
    },
    {
        "dish_id": "d-2",
        "restaurant_id": "r-1",
        "name": "Butter Chicken",
        "cuisine": "North Indian",
        "is_veg": False,
        "list_price": 320.0,
    },
    {
        "dish_id": "d-3",
        "restaurant_id": "r-2",
        "name": "Masala Dosa",
        "cuisine": "South Indian",
        "is_veg": True,
        "list_price": 120.0,
    },
]


def land_reference(lake) -> None:
    lake.land("restaurants", None, "snapshot-20261101.jsonl", RESTAURANTS)
    lake.land("dishes", None, "snapshot-20261101.jsonl", DISHES)


def delivery(n: int = 1, day: dt.date = DAY, **overrides) -> dict:
    """A delivered delivery of order ``o-<n>``: assigned 12:00, picked up 12:15, delivered 12:40."""
    d = day.isoformat()
    record = {
        "delivery_id": f"dl-{n}",
        "order_id": f"o-{n}",
        "rider_id": f"rider-{n % 3}",
        "city": "Pune",
        "assigned_at": f"{d}T12:00:00Z",
        "picked_up_at": f"{d}T12:15:00Z",
        "delivered_at": f"{d}T12:40:00Z",
        "distance_km": 3.5,
        "status": "delivered",
    }
    record.update(overrides)
    return record


def review(n: int = 1, day: dt.date = DAY, **overrides) -> dict:
    """A 4-star review of order ``o-<n>`` at restaurant r-1, written at 18:00."""
    record = {
        "review_id": f"rv-{n}",
        "order_id": f"o-{n}",
        "user_id": f"u-{n % 7}",
        "restaurant_id": "r-1",
        "rating": 4,
        "comment": "Tasty",
        "review_time": f"{day.isoformat()}T18:00:00Z",
    }
    record.update(overrides)
    return record
