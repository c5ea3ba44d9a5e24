"""File-arrival sensors: one per landing source, Auto Loader style.

Each sensor keeps a cursor (:mod:`foodops_assets.lakehouse.arrivals`) so a
tick lists only the ``date=`` directories that changed, survives restarts
(the cursor lives in the Dagster instance) and requests each set of files
once (stable run keys). A new file in ``orders/date=D/`` requests a run of
``orders_raw`` for partition D — an old D for a late file — with, in the same run,
``orders_valid`` and the gold tables that read only it (``restaurant_daily_sales``,
``city_hourly_demand``; once the restaurants snapshot is loaded), tagged so that bronze and
silver fold the new files into a day they already hold (``assets/fold.py``); the other silver
tables and their gold follow through declarative automation (``conditions.py``), the ML
features once a day (never after a file).
"""

from __future__ import annotations

import datetime as dt
import os
import time

import dagster as dg

from ..assets.fold import FOLD, FOLD_TAG
from ..lakehouse import tables
from ..lakehouse.arrivals import dump_cursor, load_cursor, scan_daily, scan_snapshot
from ..lakehouse.landing import LandingZone
from ..settings import Settings, is_remote_uri

DAILY_SOURCES = {
    "orders": tables.ORDERS_RAW.name,
    "deliveries": tables.DELIVERIES_RAW.name,
    "reviews": tables.REVIEWS_RAW.name,
}
# Silver that a landed file reaches in the sensor's own run (one process, one JVM start,
# no wait for the next automation tick): orders_valid reads only orders_raw and the
# reference snapshots. deliveries_valid and reviews_valid look their orders up in
# orders_valid, so they wait for it through declarative automation.
SILVER_IN_THE_SAME_RUN = {
    "orders": tables.ORDERS_VALID.name,
}
# Gold that a landed file reaches in the same run: tables that read only that silver table
# and the reference snapshots, so a dashboard does not wait for an automation tick and a
# second process and JVM. Their reconciliation checks still gate their publication. Asked
# for only while the references they read are loaded; before that, automation brings them
# once the snapshots are there (it waits for missing upstream partitions).
GOLD_IN_THE_SAME_RUN = {
    "orders": (tables.RESTAURANT_DAILY_SALES.name, tables.CITY_HOURLY_DEMAND.name),
}
GOLD_READS = {
    "orders": (tables.RESTAURANTS.name,),
}
SNAPSHOT_SOURCES = {
    "restaurants": tables.RESTAURANTS.name,
    "dishes": tables.DISHES.name,
}
# a landed snapshot also goes into its history table, in the same run
HISTORY_OF = {
    tables.RESTAURANTS.name: tables.RESTAURANTS_HISTORY.name,
    tables.DISHES.name: tables.DISHES_HISTORY.name,
}
# a waiting daily tick (Settings.arrival_wait_seconds) lists the changed date directories this
# often: ~1 ms a look (a stat of the source directory and of each date directory)
LOOK_EVERY_SECONDS = 0.2
TRIGGER_TAG = "foodops/trigger"
SOURCE_TAG = "foodops/source"


def arrival_sensor_name(source: str) -> str:
    return f"{source}_file_arrivals"


def default_status(settings: Settings) -> dg.DefaultSensorStatus:
    return (
        dg.DefaultSensorStatus.RUNNING
        if settings.automation == "on"
        else dg.DefaultSensorStatus.STOPPED
    )


def run_tags(settings: Settings) -> dict[str, str]:
    """Tags on every automated run: run monitoring fails a run that outlives the timeout."""
    return {"dagster/max_runtime": str(settings.run_timeout_seconds)}


def file_arrival_sensors(
    settings: Settings, partitions_def: dg.TimeWindowPartitionsDefinition
) -> list[dg.SensorDefinition]:
    return [
        *(_daily_sensor(s, a, settings, partitions_def) for s, a in DAILY_SOURCES.items()),
        *(_snapshot_sensor(s, a, settings) for s, a in SNAPSHOT_SOURCES.items()),
    ]


def _source_dir(settings: Settings, source: str) -> str:
    if is_remote_uri(settings.landing_root):
        raise dg.Failure(
            f"File-arrival sensors list a local landing zone; FOODOPS_LANDING_ROOT="
            f"{settings.landing_root} is an object store. Use the object store's event "
            "notifications or the daily schedule there.",
            allow_retries=False,
        )
    return LandingZone(settings.landing_root).source_dir(source)


def _daily_sensor(
    source: str,
    asset: str,
    settings: Settings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
) -> dg.SensorDefinition:
    selection = [dg.AssetKey(asset)]
    if source in SILVER_IN_THE_SAME_RUN:
        selection.append(dg.AssetKey(SILVER_IN_THE_SAME_RUN[source]))
    gold = [dg.AssetKey(name) for name in GOLD_IN_THE_SAME_RUN.get(source, ())]
    also = f" and {SILVER_IN_THE_SAME_RUN[source]}" if source in SILVER_IN_THE_SAME_RUN else ""
    if gold:
        also += (
            f", with {', '.join(GOLD_IN_THE_SAME_RUN[source])} once "
            f"{', '.join(GOLD_READS[source])} is loaded,"
        )

    @dg.sensor(
        name=arrival_sensor_name(source),
        description=(
            f"Requests {asset}{also} for the partition of every new file under "
            f"<landing>/{source}/date=YYYY-MM-DD/ (a late file requests its old partition)."
        ),
        target=selection + gold,
        minimum_interval_seconds=settings.arrival_interval_seconds,
        default_status=default_status(settings),
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = dt.datetime.now(dt.UTC)
        keys = partitions_def.get_partition_keys(current_time=now)
        first, last = (keys[0], keys[-1]) if keys else ("", "")
        source_dir = _source_dir(settings, source)
        deadline = time.monotonic() + settings.arrival_wait_seconds
        cursor = load_cursor(context.cursor)
        while True:
            fresh = not cursor
            scan = scan_daily(
                source,
                source_dir,
                cursor,
                settle_seconds=settings.landing_settle_seconds,
                is_partition=lambda key: bool(keys) and first <= key <= last,
                landing_root=settings.landing_root,
            )
            arrivals = scan.arrivals
            if fresh:
                # a fresh cursor (a new deployment, a reset): do not reload what bronze holds
                arrivals = [a for a in arrivals if not _partition_loaded(context, asset, a)]
            cursor = scan.cursor
            left = deadline - time.monotonic()
            if arrivals or left <= 0:
                break
            # nothing to request yet: look again shortly, or the moment a file that is still
            # being written has settled, within this tick
            time.sleep(min(left, _next_look(scan)))
        _log_refused(context, scan)
        if scan.unsettled:
            context.log.info(f"still being written, picked up later: {scan.unsettled[:10]}")
        if scan.skipped:
            context.log.info(f"not (yet) a partition, skipped: {scan.skipped[:10]}")
        with_gold = selection
        if arrivals and gold and all(_loaded(context, n) for n in GOLD_READS.get(source, ())):
            with_gold = selection + gold
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=arrival.run_key,
                    partition_key=arrival.partition,
                    asset_selection=with_gold,
                    tags={
                        **run_tags(settings),
                        TRIGGER_TAG: "file_arrival",
                        SOURCE_TAG: source,
                        # a file landed into a day already loaded is folded in alone
                        FOLD_TAG: FOLD,
                    },
                )
                for arrival in arrivals
            ],
            cursor=dump_cursor(cursor),
        )

    return _sensor


def _next_look(scan) -> float:
    """Seconds until a waiting tick looks again: when the first file still being written has
    settled, and at most :data:`LOOK_EVERY_SECONDS`."""
    if scan.unsettled_until:
        return max(0.01, min(LOOK_EVERY_SECONDS, min(scan.unsettled_until) - time.time() + 0.01))
    return LOOK_EVERY_SECONDS


def _snapshot_sensor(source: str, asset: str, settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name=arrival_sensor_name(source),
        description=(
            f"Requests {asset} and {HISTORY_OF[asset]} when a snapshot lands under "
            f"<landing>/{source}/ (a late one too: the history applies it)."
        ),
        target=[dg.AssetKey(asset), dg.AssetKey(HISTORY_OF[asset])],
        minimum_interval_seconds=settings.arrival_interval_seconds,
        default_status=default_status(settings),
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        source_dir = _source_dir(settings, source)
        scan = scan_snapshot(
            source,
            source_dir,
            load_cursor(context.cursor),
            settle_seconds=settings.landing_settle_seconds,
            landing_root=settings.landing_root,
        )
        _log_refused(context, scan)
        requests = []
        for arrival in scan.arrivals:
            if _already_loaded(context, asset, f"{source_dir}/{arrival.files[0]}"):
                context.log.info(f"{arrival.files[0]} is already loaded into {asset}")
                continue
            requests.append(
                dg.RunRequest(
                    run_key=arrival.run_key,
                    asset_selection=[dg.AssetKey(asset), dg.AssetKey(HISTORY_OF[asset])],
                    tags={**run_tags(settings), TRIGGER_TAG: "file_arrival", SOURCE_TAG: source},
                )
            )
        return dg.SensorResult(run_requests=requests, cursor=dump_cursor(scan.cursor))

    return _sensor


def _loaded(context: dg.SensorEvaluationContext, asset: str) -> bool:
    """An unpartitioned table (a reference snapshot) has been materialised."""
    return context.instance.get_latest_materialization_event(dg.AssetKey(asset)) is not None


def _log_refused(context: dg.SensorEvaluationContext, scan) -> None:
    """A symlink (or path) resolving outside the landing root is never followed: say so."""
    for why in scan.refused[:10]:
        context.log.warning(f"refused: {why}")


def _partition_loaded(context: dg.SensorEvaluationContext, asset: str, arrival) -> bool:
    """Bronze materialised this partition after its newest file landed."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[arrival.partition]),
        limit=1,
    ).records
    return bool(records) and records[0].timestamp * 1e9 > arrival.newest_mtime_ns


def _already_loaded(context: dg.SensorEvaluationContext, asset: str, path: str) -> bool:
    """A fresh cursor (a new deployment) does not reload the snapshot bronze already holds."""
    if context.cursor:
        return False
    event = context.instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return False
    loaded = event.asset_materialization.metadata.get("snapshot_file")
    if loaded is None:
        return False
    return os.path.realpath(str(getattr(loaded, "value", loaded))) == os.path.realpath(path)
