"""Concurrency by table, not by day: every queued run carries one tag per lane it writes.

A *lane* is the set of tables that one source's runs write: a landed orders file writes
``orders_raw``, ``orders_valid`` (and its rows of ``dead_letter_queue``) and the orders
gold; a deliveries file other tables. Two runs of the same lane and partition would write
the same table partition, so they must not run side by side; runs of different lanes (an
orders file and a deliveries file of the same day) never touch the same table partition
and need not wait for each other.

Each lane is one run tag key, ``foodops/lane/<lane>``, whose value is what the run writes of
it (the partition key, ``<first>...<last>`` for a range run, ``all`` for an unpartitioned
table). The instance yaml (``resources/dagster.yaml``, ``resources/dagster-prod.yaml``)
limits each key to one run per unique value; a test keeps its entries equal to
:data:`LANES`. A run that writes several lanes (the daily job of ``make run``, the schedule's
backstop, a backfill of bronze to gold) carries several keys, and starts only when every one
of its lanes is free.

The tags cannot come from the definitions alone: Dagster's declarative automation gives
every run it requests the same static ``run_tags`` (plus ``dagster/partition``), and asset
tags do not become run tags. So :class:`LaneRunCoordinator`, the instance's run coordinator
(Dagster's queued run coordinator), adds them to every run it queues, from the assets the
run actually materialises: the file-arrival sensors', the automation's, the schedules',
backfills' and a user's runs from the UI or ``dagster job launch`` alike. A run that does
not go through the queue (``dagster asset materialize`` in a shell, ``execute_in_process``)
has no lane; two writers of one table partition are then still caught by the Delta layer,
which lets one commit whole and fails the other (``lakehouse/writers``). Limits are by
exact value, so a range run (``2026-11-01...2026-11-30``) does not hold back a run of one day
inside it: the Delta layer guards that case too.

Imports only Dagster and the table registry: the instance (webserver, daemon) loads this
module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg

from ..lakehouse import tables

LANE_TAG_PREFIX = "foodops/lane/"
WHOLE_TABLE = "all"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# lane -> the tables its runs write (each table in exactly one lane: a test checks them
# against the asset graph). The dead_letter_queue is written by every silver step, each
# only its own source's (day, source) partition, so it is part of no lane: its writers
# never meet on a partition.
LANES: dict[str, tuple[tables.TableRef, ...]] = {
    "orders": (
        tables.ORDERS_RAW,
        tables.ORDERS_VALID,
        tables.RESTAURANT_DAILY_SALES,
        tables.CITY_HOURLY_DEMAND,
    ),
    "deliveries": (
        tables.DELIVERIES_RAW,
        tables.DELIVERIES_VALID,
        tables.DELIVERY_PERFORMANCE_DAILY,
    ),
    "reviews": (tables.REVIEWS_RAW, tables.REVIEWS_VALID, tables.RESTAURANT_RATINGS_DAILY),
    "ml": (tables.USER_FEATURES, tables.DISH_FEATURES, tables.DISH_RECOMMENDATIONS),
    "reference": (
        tables.RESTAURANTS,
        tables.DISHES,
        tables.RESTAURANTS_HISTORY,
        tables.DISHES_HISTORY,
    ),
}
LANE_OF: dict[str, str] = {table.name: lane for lane, refs in LANES.items() for table in refs}


def lane_tag(lane: str) -> str:
    return f"{LANE_TAG_PREFIX}{lane}"


def tag_concurrency_limits() -> list[dict]:
    """The instance yaml's ``tag_concurrency_limits`` entries for the lanes."""
    return [
        {"key": lane_tag(lane), "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        for lane in LANES
    ]


def partition_value(run_tags: Mapping[str, str]) -> str:
    """What a run writes of a daily table: its partition, its range, or the whole table."""
    if run_tags.get(PARTITION_TAG):
        return run_tags[PARTITION_TAG]
    first, last = run_tags.get(RANGE_START_TAG), run_tags.get(RANGE_END_TAG)
    if first and last:
        return first if first == last else f"{first}...{last}"
    return WHOLE_TABLE


def lane_tags(asset_names: Iterable[str], run_tags: Mapping[str, str]) -> dict[str, str]:
    """The lane tags of a run that materialises ``asset_names`` (tables outside every lane,
    such as the shared DLQ, add none)."""
    lanes = {LANE_OF[name] for name in asset_names if name in LANE_OF}
    value = partition_value(run_tags)
    return {lane_tag(lane): value if _daily(lane) else WHOLE_TABLE for lane in sorted(lanes)}


def _daily(lane: str) -> bool:
    """The lane's tables are daily (a lane holds daily tables or unpartitioned ones, not both)."""
    return LANES[lane][0].is_partitioned


def materialised_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[str]:
    """The assets the run writes: its asset selection, or, for a whole asset job (the daily
    job of a schedule), the assets of its execution plan."""
    if run.asset_selection is not None:
        return {key.to_user_string() for key in run.asset_selection}
    if not run.execution_plan_snapshot_id:
        return set()
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    return {
        output.properties.asset_key.to_user_string()
        for step in plan.steps
        for output in step.outputs
        if output.properties is not None and output.properties.asset_key is not None
    }


class LaneRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's queued run coordinator, which first tags each run with its lanes.

    Configured exactly as ``QueuedRunCoordinator`` (same config schema); the tags are added
    before the run is queued, so the daemon's dequeue applies the lane limits to it.
    """

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        if run.status == dg.DagsterRunStatus.NOT_STARTED:
            wanted = lane_tags(materialised_assets(self._instance, run), run.tags)
            missing = {k: v for k, v in wanted.items() if run.tags.get(k) != v}
            if missing:
                self._instance.add_run_tags(run.run_id, missing)
                run = self._instance.get_run_by_id(run.run_id) or run
        return super().submit_run(context._replace(dagster_run=run))
