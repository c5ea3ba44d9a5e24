"""Freshness: every silver and gold asset is due by a deadline its data contract sets.

A daily source's contract promises, in its ``latency`` SLA (ODCS ``slaProperties``, read
through the Contract API as ``freshness_minutes``), that the files of day D land by
D+1 00:00 UTC plus that many minutes (orders: 120, so 02:00). The
platform then has :data:`PROCESSING_MINUTES` to publish silver and gold: the
partition for D is due by D+1 03:00 for orders. An asset is due when the last source
it is built from is due (``orders_valid``, ``restaurant_daily_sales`` and
``city_hourly_demand`` follow orders; ``delivery_performance_daily`` deliveries;
``restaurant_ratings_daily`` reviews; ``dead_letter_queue``, which every source
writes, the latest of the three), read from the graph's own dependencies.

Two views of the same deadline:

- :func:`with_freshness` gives each asset Dagster's ``FreshnessPolicy.cron``: "materialised
  since its day ended, by the deadline, every day". Dagster's freshness daemon evaluates
  it, the UI shows the state, and ``observability/alerts.py`` posts its failures. It is
  asset-level: any partition's materialisation counts (a late file for an old day keeps
  it fresh).
- :meth:`Deadline.due` is partition-level ("partition D materialised by D+1 03:00"),
  which ``observability/alerts.py``'s partition-deadline sensor checks for each recent
  day, together with the producer's landing deadline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dagster as dg

from ..contracts import Contract
from ..lakehouse import tables
from .sensors import DAILY_SOURCES

# the contract's landing promise (ODCS latency), in minutes after the day ends (UTC)
LANDING_SLA_KEY = "freshness_minutes"
# what the platform allows itself after the landing deadline to publish silver and gold
PROCESSING_MINUTES = 60
FRESHNESS_GROUPS = ("silver", "gold")
# Dagster bounds a cron policy's window by its cron interval (a day)
_DAY_MINUTES = 24 * 60

# the tables of each daily source (bronze and silver): an asset's sources are read from them
_SOURCE_OF_TABLE: dict[str, str] = {
    **{bronze: source for source, bronze in DAILY_SOURCES.items()},
    **{table.name: source for source, table in tables.SILVER_BY_SOURCE.items()},
}


@dataclass(frozen=True)
class Deadline:
    """When a day's data of ``source`` is due: landed, and published in silver and gold."""

    source: str
    landing_minutes: int
    processing_minutes: int = PROCESSING_MINUTES

    @property
    def minutes(self) -> int:
        """Minutes after the day ends (UTC) by which its partitions are materialised."""
        return self.landing_minutes + self.processing_minutes

    def landing_due(self, day: dt.date) -> dt.datetime:
        return _day_end(day) + dt.timedelta(minutes=self.landing_minutes)

    def due(self, day: dt.date) -> dt.datetime:
        return _day_end(day) + dt.timedelta(minutes=self.minutes)

    def last_due_day(self, now: dt.datetime) -> dt.date:
        """The newest day whose partitions were due by ``now``."""
        return (now.astimezone(dt.UTC) - dt.timedelta(minutes=self.minutes)).date() - dt.timedelta(
            days=1
        )

    @property
    def cron(self) -> str:
        """The deadline's time of day, UTC, as a daily cron ("0 3 * * *")."""
        hour, minute = divmod(self.minutes % _DAY_MINUTES, 60)
        return f"{minute} {hour} * * *"

    @property
    def time_of_day(self) -> str:
        hour, minute = divmod(self.minutes % _DAY_MINUTES, 60)
        days = self.minutes // _DAY_MINUTES
        return f"{hour:02d}:{minute:02d} UTC" + (f" (+{days} day)" if days else "")

    def policy(self) -> dg.FreshnessPolicy:
        """Fresh when materialised since the day ended, checked at each day's deadline (a
        deadline more than a day after the day ends looks back one day, Dagster's limit)."""
        return dg.FreshnessPolicy.cron(
            deadline_cron=self.cron,
            lower_bound_delta=dt.timedelta(minutes=max(1, min(self.minutes, _DAY_MINUTES))),
            timezone="UTC",
        )

    def describe(self) -> str:
        return (
            f"day D of {self.source} is due by D+1 {self.time_of_day}: landed within the "
            f"contract's latency SLA ({self.landing_minutes} min after the day ends), "
            f"published {self.processing_minutes} min later"
        )


def _day_end(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)


def deadline(contract: Contract) -> Deadline | None:
    """The deadline a daily source's contract sets; None when it promises no freshness."""
    minutes = contract.sla_value(LANDING_SLA_KEY)
    if minutes is None:
        return None
    return Deadline(source=contract.name, landing_minutes=int(minutes))


def source_deadlines(contracts: Mapping[str, Contract]) -> dict[str, Deadline]:
    found = {s: deadline(contracts[s]) for s in DAILY_SOURCES if s in contracts}
    return {s: d for s, d in found.items() if d is not None}


def asset_deadlines(
    assets: Iterable[dg.AssetsDefinition | dg.AssetSpec], contracts: Mapping[str, Contract]
) -> dict[dg.AssetKey, Deadline]:
    """The deadline of every silver and gold asset: that of the last source it is built from."""
    by_source = source_deadlines(contracts)
    result: dict[dg.AssetKey, Deadline] = {}
    for spec in _specs(assets):
        if spec.group_name not in FRESHNESS_GROUPS:
            continue
        name = spec.key.to_user_string()
        if name in _SOURCE_OF_TABLE:
            sources = {_SOURCE_OF_TABLE[name]}
        else:
            deps = (dep.asset_key.to_user_string() for dep in spec.deps)
            sources = {_SOURCE_OF_TABLE[d] for d in deps if d in _SOURCE_OF_TABLE}
        due = [by_source[s] for s in sorted(sources) if s in by_source]
        if due:
            result[spec.key] = max(due, key=lambda d: d.minutes)
    return result


def with_freshness(assets: list, contracts: Mapping[str, Contract]) -> list:
    """The assets, every silver and gold one carrying its contract's freshness policy."""
    due = asset_deadlines(assets, contracts)

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key not in due:
            return spec
        return spec.replace_attributes(freshness_policy=due[spec.key].policy())

    return list(dg.map_asset_specs(attach, assets))


def _specs(assets: Iterable[dg.AssetsDefinition | dg.AssetSpec]) -> Iterable[dg.AssetSpec]:
    for asset in assets:
        if isinstance(asset, dg.AssetSpec):
            yield asset
        elif isinstance(asset, dg.AssetsDefinition):
            yield from asset.specs
