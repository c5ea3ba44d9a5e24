"""Concurrency by table, not by day (automation/lanes.py).

Runs are created from the real definitions in a real instance loaded from
``resources/dagster.yaml`` (the lane run coordinator and its limits), submitted to its run
coordinator the way the sensor daemon and the webserver submit them, and the queue is read
by the daemon's own dequeue step (which runs it would launch now).
"""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.run_coordinator import SubmitRunContext
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from foodops_assets.automation import lanes
from foodops_assets.definitions import DAILY_JOB, build_definitions
from foodops_assets_tests.conftest import REPO_ROOT

DAY = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)).isoformat()
OTHER_DAY = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)).isoformat()
ORDERS_FILE = ["orders_raw", "orders_valid", "restaurant_daily_sales", "city_hourly_demand"]
INSTANCE_YAMLS = ["dagster.yaml", "dagster-prod.yaml"]


def _limits(name: str) -> tuple[dict, list[dict]]:
    config = yaml.safe_load((REPO_ROOT / "resources" / name).read_text())
    coordinator = config["run_coordinator"]
    return coordinator, coordinator["config"]["tag_concurrency_limits"]


@pytest.mark.parametrize("name", INSTANCE_YAMLS)
def test_each_instance_limits_every_lane_to_one_run_per_partition(name):
    coordinator, limits = _limits(name)
    assert (coordinator["module"], coordinator["class"]) == (
        "foodops_assets.automation.lanes",
        "LaneRunCoordinator",
    )
    # one entry per lane, exactly those of the code: the yaml and LANES cannot drift apart
    lane_limits = [x for x in limits if x["key"].startswith(lanes.LANE_TAG_PREFIX)]
    assert lane_limits == lanes.tag_concurrency_limits()
    # no longer one run per day across unrelated sources
    assert "dagster/partition" not in {x["key"] for x in limits}


def test_every_table_a_run_writes_is_in_exactly_one_lane(lake):
    graph = build_definitions(lake.settings).resolve_asset_graph()
    written = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_executable}
    assert set(lanes.LANE_OF) == written
    assert sum(len(t) for t in lanes.LANES.values()) == len(lanes.LANE_OF)
    # a lane's value is a partition key or "all": its tables are all daily or all unpartitioned
    for lane, refs in lanes.LANES.items():
        assert len({t.is_partitioned for t in refs}) == 1, lane


@pytest.fixture
def queue(tmp_path, lake):
    """A real instance on resources/dagster.yaml and the definitions' jobs."""
    shutil.copy(REPO_ROOT / "resources" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield Queue(instance, build_definitions(lake.settings))


class Queue:
    def __init__(self, instance: dg.DagsterInstance, defs: dg.Definitions):
        self.instance, self.defs = instance, defs
        self.daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)

    def submit(self, assets: list[str] | None, tags: dict, job: str | None = None) -> str:
        """A run of ``assets`` (or of the whole ``job``), queued through the coordinator."""
        if job is not None:
            job_def, selection = self.defs.resolve_job_def(job), None
        else:
            selection = {dg.AssetKey(a) for a in assets}
            job_def = self.defs.resolve_implicit_global_asset_job_def().get_subset(
                asset_selection=selection
            )
        # where the daemon would launch it from (the workspace's code location)
        repository = RemoteRepositoryOrigin(
            RegisteredCodeLocationOrigin("foodops_assets"), "__repository__"
        )
        run = self.instance.create_run_for_job(
            job_def,
            asset_selection=selection,
            tags=tags,
            status=dg.DagsterRunStatus.NOT_STARTED,
            remote_job_origin=RemoteJobOrigin(repository, job_def.name),
        )
        queued = self.instance.run_coordinator.submit_run(SubmitRunContext(run, workspace=None))
        assert queued.status == dg.DagsterRunStatus.QUEUED
        return run.run_id

    def dequeued(self) -> list[str]:
        """The runs the daemon would start now (the limits applied to the whole queue)."""
        runs = self.daemon._get_runs_to_dequeue(
            self.instance, self.instance.get_concurrency_config(), fixed_iteration_time=None
        )
        return [run.run_id for run in runs]

    def start(self, run_id: str) -> None:
        """What the run worker reports when the run starts."""
        run = self.instance.get_run_by_id(run_id)
        self.instance.report_dagster_event(
            DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name), run_id=run_id
        )
        assert self.instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED

    def tags(self, run_id: str) -> dict:
        tags = self.instance.get_run_by_id(run_id).tags
        return {k: v for k, v in tags.items() if k.startswith(lanes.LANE_TAG_PREFIX)}


def test_an_orders_file_does_not_wait_behind_a_deliveries_run_of_its_day(queue):
    sensor = {"dagster/partition": DAY, "foodops/trigger": "file_arrival"}
    first = queue.submit(ORDERS_FILE, sensor)
    second = queue.submit(ORDERS_FILE, sensor)
    deliveries = queue.submit(["deliveries_raw"], sensor)
    assert queue.tags(first) == queue.tags(second) == {"foodops/lane/orders": DAY}
    assert queue.tags(deliveries) == {"foodops/lane/deliveries": DAY}

    # the first orders file and the deliveries run of the same day start together; the
    # second orders file of the day waits (it would write the partitions the first writes)
    assert queue.dequeued() == [first, deliveries]
    queue.start(first)
    queue.start(deliveries)
    queue.instance.report_run_canceled(queue.instance.get_run_by_id(deliveries))
    assert queue.dequeued() == []  # a free run slot is not enough: the orders lane is taken
    queue.instance.report_run_canceled(queue.instance.get_run_by_id(first))
    assert queue.dequeued() == [second]


def test_a_run_writing_several_lanes_waits_for_each_and_holds_each(queue):
    # the backstop schedule's run of the daily job (no asset selection: every daily table)
    daily = queue.submit(None, {"dagster/partition": DAY}, job=DAILY_JOB)
    assert queue.tags(daily) == {
        "foodops/lane/orders": DAY,
        "foodops/lane/deliveries": DAY,
        "foodops/lane/reviews": DAY,
    }
    reviews = queue.submit(["reviews_raw", "reviews_valid"], {"dagster/partition": DAY})
    other_day = queue.submit(ORDERS_FILE, {"dagster/partition": OTHER_DAY})
    # a reviews run of the same day waits for it; an orders run of another day does not
    assert queue.dequeued() == [daily, other_day]
    assert reviews not in queue.dequeued()


def test_ranges_and_reference_snapshots_get_their_own_values(queue):
    backfill = queue.submit(
        ["user_features", "dish_features", "dish_recommendations"],
        {
            "dagster/asset_partition_range_start": OTHER_DAY,
            "dagster/asset_partition_range_end": DAY,
        },
    )
    assert queue.tags(backfill) == {"foodops/lane/ml": f"{OTHER_DAY}...{DAY}"}
    snapshot = queue.submit(["restaurants", "restaurants_history"], {})
    again = queue.submit(["dishes", "dishes_history"], {})
    assert queue.tags(snapshot) == queue.tags(again) == {"foodops/lane/reference": "all"}
    # one reference load at a time; the ML backfill beside it
    assert queue.dequeued() == [backfill, snapshot]
