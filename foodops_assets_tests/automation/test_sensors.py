"""File-arrival sensors evaluated against real files on disk (no daemon, no Spark)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
import time

import dagster as dg
import pytest

from foodops_assets.automation.sensors import arrival_sensor_name
from foodops_assets.definitions import build_definitions
from foodops_assets.lakehouse.arrivals import load_cursor, scan_daily

D = dt.date(2026, 11, 20)


@pytest.fixture
def defs(lake):
    # a tick looks once (the wait for a file landing during the tick is tested on its own)
    settings = dataclasses.replace(lake.settings, landing_settle_seconds=0, arrival_wait_seconds=0)
    return build_definitions(settings)


def tick(defs, source, cursor=None, instance=None):
    if instance is None:  # an empty instance: bronze has loaded nothing
        with dg.instance_for_test() as empty:
            return tick(defs, source, cursor, empty)
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def(arrival_sensor_name(source))
    with dg.build_sensor_context(cursor=cursor, instance=instance, repository_def=repo) as context:
        data = sensor.evaluate_tick(context)
    return data.run_requests or [], data.cursor


def partitions(requests):
    return sorted(r.partition_key for r in requests)


def age(path, seconds=60):
    past = time.time() - seconds
    os.utime(path, (past, past))
    os.utime(path.parent, (past, past))


def test_with_the_restaurants_loaded_a_landed_orders_file_reaches_gold_in_the_same_run(lake, defs):
    age(lake.land("orders", D, "batch-1.jsonl", ['{"order_id": "o-1"}']))
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("restaurants"))
        [request], _ = tick(defs, "orders", instance=instance)
    # one process and one JVM from the landed file to the dashboards' tables: no wait for
    # an automation tick, no second run
    assert request.asset_selection == [
        dg.AssetKey("orders_raw"),
        dg.AssetKey("orders_valid"),
        dg.AssetKey("restaurant_daily_sales"),
        dg.AssetKey("city_hourly_demand"),
    ]
    assert request.partition_key == D.isoformat()
    # deliveries and reviews still stop at bronze: their silver looks up orders_valid
    age(lake.land("reviews", D, "batch-1.jsonl", ['{"review_id": "r-1"}']))
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("restaurants"))
        [review], _ = tick(defs, "reviews", instance=instance)
    assert review.asset_selection == [dg.AssetKey("reviews_raw")]


def test_new_file_then_same_tick_then_late_file_then_restart(lake, defs):
    age(lake.land("orders", D, "batch-1.jsonl", ['{"order_id": "o-1"}']))
    requests, cursor = tick(defs, "orders")
    assert partitions(requests) == [D.isoformat()]
    [request] = requests
    # orders reach silver in the sensor's own run (orders_valid reads nothing else daily);
    # no restaurants snapshot is loaded yet, so gold is left to the automation
    assert request.asset_selection == [dg.AssetKey("orders_raw"), dg.AssetKey("orders_valid")]
    assert request.tags["foodops/source"] == "orders"
    assert request.tags["dagster/max_runtime"] == "7200"
    # a file of a day bronze already holds is folded in, not the day rebuilt (fold.py)
    assert request.tags["foodops/ingest"] == "fold"

    # the same tick again: nothing new, nothing requested, the cursor is unchanged
    again, cursor2 = tick(defs, "orders", cursor)
    assert again == [] and load_cursor(cursor2) == load_cursor(cursor)

    # a late file in an old date= directory requests exactly that old partition
    old = D - dt.timedelta(days=9)
    age(lake.land("orders", old, "late.jsonl", ['{"order_id": "o-2"}']))
    late, cursor3 = tick(defs, "orders", cursor2)
    assert partitions(late) == [old.isoformat()]

    # a second file in D: D again, with a new (stable) run key
    age(lake.land("orders", D, "batch-2.jsonl", ['{"order_id": "o-3"}']))
    more, cursor4 = tick(defs, "orders", cursor3)
    assert partitions(more) == [D.isoformat()] and more[0].run_key != request.run_key

    # a restart: a fresh sensor with the stored cursor string requests nothing again
    fresh = build_definitions(dataclasses.replace(lake.settings, landing_settle_seconds=0))
    assert tick(fresh, "orders", cursor4)[0] == []
    # without the cursor it would re-request both partitions, with the same run keys
    # (so Dagster's run-key dedupe would still never launch the same files twice)
    replay, _ = tick(fresh, "orders")
    assert {r.run_key for r in replay} == {late[0].run_key, more[0].run_key}

    # the other sources' sensors are independent
    assert tick(defs, "deliveries")[0] == []


def test_a_thousand_files_across_ten_days_make_one_request_per_partition(lake, defs):
    days = [D - dt.timedelta(days=i) for i in range(10)]
    for i in range(1000):
        lake.land("reviews", days[i % 10], f"b-{i:04d}.jsonl", ['{"review_id": "r"}'])
    for k, day in enumerate(days):
        age(lake.landing / "reviews" / f"date={day.isoformat()}" / f"b-{k:04d}.jsonl")
    requests, cursor = tick(defs, "reviews")
    assert partitions(requests) == sorted(d.isoformat() for d in days)
    assert len({r.run_key for r in requests}) == 10
    assert all(r.asset_selection == [dg.AssetKey("reviews_raw")] for r in requests)
    # a quiet tick opens no date directory at all: it only compares directory mtimes
    scan = scan_daily(
        "reviews", str(lake.landing / "reviews"), load_cursor(cursor), settle_seconds=0
    )
    assert (scan.arrivals, scan.directories_listed) == ([], 0)
    assert tick(defs, "reviews", cursor)[0] == []


def test_files_still_being_written_are_not_picked_up(lake):
    settling = build_definitions(dataclasses.replace(lake.settings, landing_settle_seconds=30))
    day_dir = lake.landing / "deliveries" / f"date={D.isoformat()}"
    day_dir.mkdir(parents=True)
    (day_dir / "batch-1.jsonl.tmp").write_text('{"delivery_id": "x"}\n')  # being written
    (day_dir / ".batch-2.jsonl").write_text('{"delivery_id": "x"}\n')  # hidden
    (day_dir / "_batch-3.jsonl").write_text('{"delivery_id": "x"}\n')  # underscore
    (day_dir / "batch-4.jsonl").write_text('{"delivery_id": "x"}\n')  # modified just now
    requests, cursor = tick(settling, "deliveries")
    assert requests == []

    # once the producer is done (the file settled; the .tmp renamed), it is picked up
    age(day_dir / "batch-4.jsonl")
    requests, cursor = tick(settling, "deliveries", cursor)
    assert partitions(requests) == [D.isoformat()]
    (day_dir / "batch-1.jsonl.tmp").rename(day_dir / "batch-1.jsonl")
    age(day_dir / "batch-1.jsonl")
    renamed, _ = tick(settling, "deliveries", cursor)
    assert partitions(renamed) == [D.isoformat()] and renamed[0].run_key != requests[0].run_key


def test_by_default_a_file_renamed_into_place_is_requested_at_the_next_arrival_tick(lake):
    """The defaults a user gets: the file-arrival sensors tick every 5 s (Dagster's sensor
    daemon looks at its sensors every 5 s), the automation and alerts every 30 s; a file
    renamed into place one settle interval (1 s) after its last write is requested at the
    next tick, its .tmp never."""
    defaults = build_definitions(lake.settings)
    repo = defaults.get_repository_def()
    sources = ("orders", "deliveries", "reviews", "restaurants", "dishes")
    intervals = {
        repo.get_sensor_def(arrival_sensor_name(s)).minimum_interval_seconds for s in sources
    }
    assert intervals == {1}
    assert repo.get_sensor_def("foodops_automation").minimum_interval_seconds == 30
    assert lake.settings.landing_settle_seconds == 1.0

    day_dir = lake.landing / "orders" / f"date={D.isoformat()}"
    day_dir.mkdir(parents=True)
    tmp = day_dir / "batch-1.jsonl.tmp"
    tmp.write_text('{"order_id": "o-1"}\n')
    age(tmp, seconds=2)  # written a while ago, the producer has not renamed it yet
    assert tick(defaults, "orders")[0] == []
    tmp.rename(day_dir / "batch-1.jsonl")  # the rename keeps the mtime of the last write
    [request], _ = tick(defaults, "orders")
    assert request.partition_key == D.isoformat()


def test_dates_that_are_not_partitions_are_left_for_later(lake, defs):
    today = dt.datetime.now(dt.UTC).date()
    age(lake.land("orders", today, "b.jsonl", ['{"order_id": "o"}']))  # its day is still open
    (lake.landing / "orders" / "date=not-a-date").mkdir()
    requests, cursor = tick(defs, "orders")
    assert requests == [] and today.isoformat() not in load_cursor(cursor)


def test_snapshot_sensor_requests_each_new_snapshot_once(lake, defs, instance):
    age(lake.land("restaurants", None, "snapshot-20261119.jsonl", ['{"restaurant_id": "r"}']))
    requests, cursor = tick(defs, "restaurants", instance=instance)
    assert [(r.partition_key, r.asset_selection) for r in requests] == [
        (None, [dg.AssetKey("restaurants"), dg.AssetKey("restaurants_history")])
    ]
    assert tick(defs, "restaurants", cursor, instance)[0] == []
    age(lake.land("restaurants", None, "snapshot-20261120.jsonl", ['{"restaurant_id": "r"}']))
    newer, cursor = tick(defs, "restaurants", cursor, instance)
    assert len(newer) == 1 and "snapshot-20261120" in str(load_cursor(cursor))
    # a late snapshot (older than the newest) is requested too: the history applies it
    age(lake.land("restaurants", None, "snapshot-20261118.jsonl", ['{"restaurant_id": "r"}']))
    late, cursor = tick(defs, "restaurants", cursor, instance)
    assert len(late) == 1 and late[0].asset_selection[-1] == dg.AssetKey("restaurants_history")
    assert tick(defs, "restaurants", cursor, instance)[0] == []


def test_a_fresh_cursor_does_not_reload_partitions_bronze_already_holds(lake, defs, instance):
    old, new = D - dt.timedelta(days=1), D
    age(lake.land("orders", old, "b.jsonl", ['{"order_id": "o-1"}']))
    age(lake.land("orders", new, "b.jsonl", ['{"order_id": "o-2"}']))
    # bronze of `old` was materialised after its file landed (e.g. by `make run`)
    instance.report_runless_asset_event(
        dg.AssetMaterialization("orders_raw", partition=old.isoformat())
    )
    requests, cursor = tick(defs, "orders", instance=instance)
    assert partitions(requests) == [new.isoformat()]
    # a later file in `old` is new data: requested
    age(lake.land("orders", old, "late.jsonl", ['{"order_id": "o-3"}']))
    assert partitions(tick(defs, "orders", cursor, instance)[0]) == [old.isoformat()]


def test_a_symlink_out_of_the_landing_zone_requests_nothing(lake, defs, tmp_path):
    # issue 17: a link in a date directory (or a date directory that is a link) pointing
    # elsewhere on the machine is never followed
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "date=2026-11-21").mkdir(parents=True)
    secret = elsewhere / "secret.jsonl"
    secret.write_text('{"order_id": "o-1"}\n')
    age(secret)
    day_dir = lake.landing / "orders" / f"date={D.isoformat()}"
    day_dir.mkdir(parents=True)
    (day_dir / "linked.jsonl").symlink_to(secret)
    (lake.landing / "orders" / "date=2026-11-21").symlink_to(elsewhere / "date=2026-11-21")
    (elsewhere / "date=2026-11-21" / "b.jsonl").write_text('{"order_id": "o-2"}\n')
    age(elsewhere / "date=2026-11-21" / "b.jsonl")

    requests, cursor = tick(defs, "orders")
    assert requests == []
    scan = scan_daily(
        "orders",
        str(lake.landing / "orders"),
        {},
        settle_seconds=0,
        landing_root=str(lake.landing),
    )
    assert scan.arrivals == []
    assert len(scan.refused) == 2
    assert all("outside the landing root" in why for why in scan.refused)

    # a real file landing beside the link is picked up, the link still is not
    lake.land("orders", D, "batch-0001.jsonl", ['{"order_id": "o-3"}'])
    age(day_dir / "batch-0001.jsonl")
    requests, _ = tick(defs, "orders", cursor)
    assert partitions(requests) == [D.isoformat()]


def _land_later(lake, delay, name, lines, aged=True):
    def land():
        time.sleep(delay)
        path = lake.land("orders", D, name, lines)
        if aged:
            age(path)

    thread = threading.Thread(target=land)
    thread.start()
    return thread


def test_a_file_landing_while_a_tick_waits_is_requested_by_that_tick(lake):
    """Dagster's sensor daemon looks at its sensors every 5 s; a daily tick that finds nothing
    keeps looking for up to FOODOPS_ARRIVAL_WAIT_SECONDS, so a file landing meanwhile is
    requested by this tick, not the daemon's next look."""
    waiting = build_definitions(
        dataclasses.replace(lake.settings, landing_settle_seconds=0, arrival_wait_seconds=30)
    )
    quiet = build_definitions(
        dataclasses.replace(lake.settings, landing_settle_seconds=0, arrival_wait_seconds=0)
    )
    assert tick(quiet, "orders")[0] == []  # nothing landed yet
    landing = _land_later(lake, 0.5, "batch-1.jsonl", ['{"order_id": "o-1"}'])
    requests, cursor = tick(waiting, "orders")
    landing.join()
    assert partitions(requests) == [D.isoformat()]
    # the same file is not requested again by the next tick
    assert tick(quiet, "orders", cursor)[0] == []


def test_a_waiting_tick_requests_a_file_still_being_written_once_it_has_settled(lake):
    waiting = build_definitions(
        dataclasses.replace(lake.settings, landing_settle_seconds=1.0, arrival_wait_seconds=30)
    )
    # written in place (no rename): modified just now, so not read until it has settled
    lake.land("orders", D, "batch-1.jsonl", ['{"order_id": "o-1"}'])
    [request], cursor = tick(waiting, "orders")
    assert request.partition_key == D.isoformat()
    path = lake.landing / "orders" / f"date={D.isoformat()}" / "batch-1.jsonl"
    assert time.time() - path.stat().st_mtime >= 1.0  # requested only once it had settled
