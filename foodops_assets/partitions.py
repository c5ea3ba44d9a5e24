"""Daily partitions: UTC days keyed YYYY-MM-DD, from a configurable start."""

from __future__ import annotations

import dagster as dg

from .settings import DEFAULT_PARTITIONS_START


def daily_partitions(start: str = DEFAULT_PARTITIONS_START) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day; the newest is the last complete day."""
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC", fmt="%Y-%m-%d")
