"""The production instance for real: resources/dagster-prod.yaml (copied verbatim into
DAGSTER_HOME; the connection comes from DAGSTER_PG_* in the environment) on a real
PostgreSQL server, with ``dagster-daemon`` running the queue, the backfills, the sensors
and the automation, and runs launched the way the UI launches them (GraphQL).

One PostgreSQL server for the session (conftest ``postgres``), one platform (lake,
instance, daemon) for the module, tiny inputs. Runs are held in the middle of their Delta
write (``FOODOPS_FAULTS=hang_write:<table>@<day>``, released by a file) so that "while A
runs" is a state the test observes, not a race against a clock; every claim is read from
the run records and the event log in PostgreSQL.

Manual runs and the backfill write ``deliveries_raw`` (its sensor stays stopped), the
sensor runs are the orders sensor's: nothing but the test requests a run.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from foodops_assets_tests.conftest import REPO_ROOT, Lake
from foodops_assets_tests.factories import delivery, land_reference, line, order
from foodops_assets_tests.processes import BIN, _default_signals, stop_process_group

pytestmark = pytest.mark.e2e

PROD_YAML = REPO_ROOT / "resources" / "dagster-prod.yaml"
LOCATION, REPOSITORY = "foodops", "__repository__"
WAIT_SECONDS = 600  # liveness only: how long before a stuck platform fails the test
ROWS = 40  # lines per landed file
# old days (outside the automation's 3-day lookback): nothing follows them automatically
QUEUE_DAY, OTHER_DAY = dt.date(2026, 11, 2), dt.date(2026, 11, 3)
BACKFILL_DAYS = [dt.date(2026, 11, 5), dt.date(2026, 11, 6), dt.date(2026, 11, 7)]
RACE_DAY = dt.date(2026, 11, 9)
HELD = [QUEUE_DAY, BACKFILL_DAYS[0], RACE_DAY]  # deliveries_raw writes held until released


@dataclass
class Platform:
    lake: Lake
    home: Path
    env: dict[str, str]
    instance: dg.DagsterInstance
    workspace: object  # WorkspaceProcessContext
    marker: Path
    release: Path
    logs: Path
    daemons: list[subprocess.Popen] = field(default_factory=list)
    reference_load: subprocess.Popen | None = None

    # -- the daemon ------------------------------------------------------------------------
    def start_daemon(self) -> subprocess.Popen:
        log = open(self.logs / f"dagster-daemon-{len(self.daemons) + 1}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_default_signals,
        )  # fmt: skip
        log.close()
        self.daemons.append(proc)
        return proc

    @property
    def daemon(self) -> subprocess.Popen:
        return self.daemons[-1]

    def daemon_log(self, chars: int = 4000) -> str:
        logs = sorted(self.logs.glob("dagster-daemon-*.log"))
        return "".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in logs)

    # -- what a user does in the UI ---------------------------------------------------------
    def graphql(self, query: str, variables: dict) -> dict:
        from dagster_graphql.test.utils import execute_dagster_graphql

        result = execute_dagster_graphql(
            self.workspace.create_request_context(), query, variables=variables
        )
        assert not result.errors, result.errors
        return result.data

    def launch(self, asset: str, day: dt.date) -> str:
        """Materialize one partition of ``asset`` (queued: the daemon starts it); the run id."""
        from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION

        data = self.graphql(
            LAUNCH_PIPELINE_EXECUTION_MUTATION,
            {
                "executionParams": {
                    "selector": {
                        "repositoryLocationName": LOCATION,
                        "repositoryName": REPOSITORY,
                        "pipelineName": "__ASSET_JOB",
                        "assetSelection": [{"path": [asset]}],
                    },
                    "executionMetadata": {
                        "tags": [{"key": "dagster/partition", "value": day.isoformat()}]
                    },
                    "runConfigData": {},
                }
            },
        )["launchPipelineExecution"]
        assert data["__typename"] == "LaunchRunSuccess", data
        return data["run"]["runId"]

    def backfill(self, asset: str, days: list[dt.date]) -> str:
        from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION

        data = self.graphql(
            LAUNCH_PARTITION_BACKFILL_MUTATION,
            {
                "backfillParams": {
                    "assetSelection": [{"path": [asset]}],
                    "partitionNames": [d.isoformat() for d in days],
                }
            },
        )["launchPartitionBackfill"]
        assert data["__typename"] == "LaunchBackfillSuccess", data
        return data["backfillId"]

    def _sensor(self, name: str):
        context = self.workspace.create_request_context()
        repository = context.get_code_location(LOCATION).get_repository(REPOSITORY)
        return repository.get_sensor(name)

    def start_sensor(self, name: str) -> None:
        self.instance.start_sensor(self._sensor(name))

    def stop_sensor(self, name: str) -> None:
        sensor = self._sensor(name)
        self.instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)

    # -- reading the instance --------------------------------------------------------------
    def run(self, run_id: str) -> dg.DagsterRun:
        return self.instance.get_run_by_id(run_id)

    def record(self, run_id: str):
        [record] = self.instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))
        return record

    def events(self, run_id: str, kind: dg.DagsterEventType) -> list:
        return [
            e
            for e in self.instance.all_logs(run_id)
            if e.dagster_event is not None and e.dagster_event.event_type == kind
        ]

    def runs_table(self) -> str:
        return "\n".join(
            f"{r.run_id[:8]} {r.status.value:9} {r.tags.get('dagster/partition') or ''} "
            f"{sorted(k.to_user_string() for k in r.asset_selection or ())} "
            f"{ {k: v for k, v in r.tags.items() if k.startswith(('foodops/', 'dagster/backfill', 'dagster/sensor'))} }"
            for r in self.instance.get_runs()
        )

    def wait(self, what: str, condition: Callable[[], object]) -> object:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"waited {WAIT_SECONDS}s for {what}; runs:\n{self.runs_table()}\n"
                    f"{self.daemon_log()}"
                )
            time.sleep(1)

    def wait_status(self, run_id: str, *statuses: dg.DagsterRunStatus) -> dg.DagsterRun:
        return self.wait(
            f"run {run_id[:8]} to be {[s.value for s in statuses]}",
            lambda: (r := self.run(run_id)).status in statuses and r,
        )

    # -- holding a write -------------------------------------------------------------------
    def hold(self) -> None:
        """Arm the held writes: the next held write blocks until :meth:`let_go`."""
        self.release.unlink(missing_ok=True)
        self.marker.unlink(missing_ok=True)

    def wait_held(self, table: str, day: dt.date) -> None:
        point = f"{table}@{day.isoformat()}"
        self.wait(
            f"a run held in its write of {point}",
            lambda: self.marker.exists() and point in self.marker.read_text(),
        )

    def let_go(self) -> None:
        self.release.touch()

    def land(self, source: str, day: dt.date, records: list[dict]) -> Path:
        path = self.lake.land(source, day, "batch-0001.jsonl", [line(r) for r in records])
        past = time.time() - 10  # settled: the sensor picks it up at its next tick
        os.utime(path, (past, past))
        return path


def _deliveries(day: dt.date) -> list[dict]:
    return [delivery(n, day=day) for n in range(1, ROWS + 1)]


def _orders(day: dt.date) -> list[dict]:
    return [order(n, day=day) for n in range(1, ROWS + 1)]


def _partition_rows(lake: Lake, table: str, day: dt.date) -> list[dict]:
    return (
        DeltaTable(str(lake.lake / table))
        .to_pyarrow_table(filters=[("partition_date", "=", day)])
        .to_pylist()
    )


@pytest.fixture(scope="module")
def platform(postgres, tmp_path_factory):
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    root = tmp_path_factory.mktemp("production-instance")
    lake = Lake.under(root)
    home = root / "dagster_home"
    home.mkdir()
    # the production instance itself, not a copy that could drift from it
    shutil.copy(PROD_YAML, home / "dagster.yaml")
    marker, release = root / "held", root / "release"
    env = {
        **os.environ,
        **postgres.dagster_env(),
        "DAGSTER_HOME": str(home),
        "DAGSTER_COMPUTE_LOG_DIR": str(root / "compute_logs"),
        "FOODOPS_LANDING_ROOT": str(lake.landing),
        "FOODOPS_LAKE_ROOT": str(lake.lake),
        # sensors and automation stopped until a test starts them, as an operator would
        "FOODOPS_AUTOMATION": "off",
        "FOODOPS_SENSOR_INTERVAL_SECONDS": "2",
        "FOODOPS_LANDING_SETTLE_SECONDS": "1",
        "FOODOPS_AUTOMATION_LOOKBACK_DAYS": "3",
        "FOODOPS_SPARK_DRIVER_MEMORY": "1g",
        "FOODOPS_FAULTS": ",".join(f"hang_write:deliveries_raw@{d.isoformat()}" for d in HELD),
        "FOODOPS_FAULT_MARKER": str(marker),
        "FOODOPS_FAULT_RELEASE": str(release),
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)  # this process reads the instance and the code location too
    platform = None
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            land_reference(lake)
            log = open(root / "reference-load.log", "w")  # noqa: SIM115
            # the reference snapshots, loaded from a shell before the daemon starts
            reference = subprocess.Popen(
                [str(BIN / "dagster"), "asset", "materialize", "-m", "foodops_assets",
                 "--select", "restaurants,dishes"],
                cwd=REPO_ROOT, env=_without_faults(env), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            log.close()
            with WorkspaceProcessContext(
                instance, WorkspaceFileTarget(paths=[str(REPO_ROOT / "workspace.yaml")])
            ) as workspace:
                platform = Platform(
                    lake, home, env, instance, workspace, marker, release, root,
                    reference_load=reference,
                )  # fmt: skip
                platform.start_daemon()
                yield platform
    finally:
        if platform is not None:
            platform.let_go()
            for proc in [*platform.daemons, platform.reference_load]:
                if proc is not None:
                    _stop_group(proc)
        patch.undo()


def _stop_group(proc: subprocess.Popen) -> None:
    """The process group the daemon (or a shell command) started: it and its run workers and
    code server, including those of a daemon that was killed alone (a code server may
    outlive its daemon's SIGTERM while it waits for a run)."""
    if proc.poll() is None:
        stop_process_group(proc)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(2)


def _without_faults(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("FOODOPS_FAULT")}


S = dg.DagsterRunStatus


def test_one_run_per_partition_waits_in_the_queue_and_a_killed_daemon_loses_nothing(platform):
    """Two runs of one partition: the second waits in the queue while the first runs, and a
    run of another partition starts and finishes meanwhile. The daemon is killed while the
    first run is in the middle of its write and the second is queued; a new daemon launches
    the queued run once the first has finished, nothing runs twice, no row is lost."""
    p = platform
    for day in (QUEUE_DAY, OTHER_DAY):
        p.land("deliveries", day, _deliveries(day))
    p.hold()
    first = p.launch("deliveries_raw", QUEUE_DAY)
    p.wait_held("deliveries_raw", QUEUE_DAY)
    second = p.launch("deliveries_raw", QUEUE_DAY)
    other = p.launch("deliveries_raw", OTHER_DAY)

    # the other partition's run goes through while the first is still in its write
    p.wait_status(other, S.SUCCESS, S.FAILURE)
    assert p.run(other).status == S.SUCCESS
    assert p.run(first).status == S.STARTED
    assert p.run(second).status == S.QUEUED  # the tag limit: one run per partition

    # the daemon dies (SIGKILL, the daemon alone: its run worker lives on, mid-write)
    old = p.daemon
    os.kill(old.pid, signal.SIGKILL)
    old.wait(timeout=60)
    p.start_daemon()
    p.let_go()
    for run_id in (first, second):
        p.wait_status(run_id, S.SUCCESS, S.FAILURE, S.CANCELED)

    runs = {name: p.run(r) for name, r in
            {"first": first, "second": second, "other": other}.items()}  # fmt: skip
    assert {name: r.status for name, r in runs.items()} == dict.fromkeys(runs, S.SUCCESS)
    first_rec, second_rec, other_rec = p.record(first), p.record(second), p.record(other)
    # the second run of the partition started only after the first had ended ...
    assert second_rec.start_time >= first_rec.end_time
    # ... while the other partition's run had started and ended inside the first run
    assert first_rec.start_time <= other_rec.start_time <= other_rec.end_time <= first_rec.end_time
    # nothing ran twice: each run started once and wrote its partition once, no retries
    for name, run in runs.items():
        assert len(p.events(run.run_id, dg.DagsterEventType.RUN_START)) == 1, name
        assert len(p.events(run.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)) == 1, name
    raw_runs = [
        r for r in p.instance.get_runs()
        if dg.AssetKey("deliveries_raw") in (r.asset_selection or ())
        and r.tags.get("dagster/partition") in {d.isoformat() for d in (QUEUE_DAY, OTHER_DAY)}
    ]  # fmt: skip
    assert sorted(r.run_id for r in raw_runs) == sorted(r.run_id for r in runs.values())
    # nothing lost: every partition holds its landed lines, once
    for day in (QUEUE_DAY, OTHER_DAY):
        rows = _partition_rows(p.lake, "bronze/deliveries_raw", day)
        assert sorted(r["delivery_id"] for r in rows) == sorted(
            f"dl-{n}" for n in range(1, ROWS + 1)
        )


def test_two_writers_of_one_partition_leave_it_whole_and_the_loser_says_what_to_do(platform):
    """The queue bypassed: a shell's ``dagster asset materialize`` writes the partition that a
    daemon run is in the middle of writing. The Delta layer keeps the partition whole (the
    shell's commit), and the daemon run fails with what to do, without a retry that would
    overwrite it."""
    p = platform
    p.land("deliveries", RACE_DAY, _deliveries(RACE_DAY))
    p.hold()
    daemon_run = p.launch("deliveries_raw", RACE_DAY)
    p.wait_held("deliveries_raw", RACE_DAY)
    with open(p.logs / "cli-writer.log", "w") as log:
        cli = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "foodops_assets",
             "--select", "deliveries_raw", "--partition", RACE_DAY.isoformat()],
            cwd=REPO_ROOT, env=_without_faults(p.env), stdout=log, stderr=subprocess.STDOUT,
            timeout=WAIT_SECONDS,
        )  # fmt: skip
    assert cli.returncode == 0, (p.logs / "cli-writer.log").read_text()[-4000:]
    assert p.run(daemon_run).status == S.STARTED  # still held while the shell committed
    p.let_go()
    loser = p.wait_status(daemon_run, S.SUCCESS, S.FAILURE)

    assert loser.status == S.FAILURE
    failures = " ".join(
        str(e.dagster_event.event_specific_data)
        for e in p.events(daemon_run, dg.DagsterEventType.STEP_FAILURE)
    )
    assert "another writer committed to deliveries_raw" in failures, failures
    assert "Re-run this partition once the other run has finished" in failures, failures
    # not retried: a retry would have rewritten the partition behind the other writer's back
    assert not [
        r for r in p.instance.get_runs() if r.tags.get("dagster/parent_run_id") == daemon_run
    ]

    [cli_run] = [
        r for r in p.instance.get_runs()
        if r.tags.get("dagster/partition") == RACE_DAY.isoformat() and r.run_id != daemon_run
    ]  # fmt: skip
    assert cli_run.status == S.SUCCESS
    rows = _partition_rows(p.lake, "bronze/deliveries_raw", RACE_DAY)
    assert sorted(r["delivery_id"] for r in rows) == sorted(f"dl-{n}" for n in range(1, ROWS + 1))
    writers = {
        c.get("dagster_run_id")
        for c in DeltaTable(str(p.lake.lake / "bronze/deliveries_raw")).history()
        if RACE_DAY.isoformat() in str(c.get("foodops_predicate", ""))
    }
    assert writers == {cli_run.run_id}  # the losing run committed nothing


def test_a_landed_file_reaches_gold_beside_a_three_day_backfill(platform):
    """A backfill of three days (one run: single-run policy) is in the middle of its write
    when an orders file lands for a recent day: meanwhile the orders sensor's run writes
    bronze, silver and the orders gold (the automation, on as an operator leaves it, requests
    none of them again). Then the backfill completes."""
    p = platform
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)  # inside the lookback
    for backfill_day in BACKFILL_DAYS:
        p.land("deliveries", backfill_day, _deliveries(backfill_day))
    assert p.reference_load.wait(timeout=WAIT_SECONDS) == 0, (
        p.logs / "reference-load.log"
    ).read_text()[-4000:]
    p.hold()
    backfill_id = p.backfill("deliveries_raw", BACKFILL_DAYS)
    p.wait_held("deliveries_raw", BACKFILL_DAYS[0])
    [backfill_run] = p.instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))

    # an operator turns the orders sensor and the automation on; a file lands
    p.start_sensor("orders_file_arrivals")
    p.start_sensor("foodops_automation")
    p.land("orders", day, _orders(day))

    def materialized(asset: str):
        event = p.instance.get_latest_materialization_event(dg.AssetKey(asset))
        ok = event is not None and event.dagster_event.partition == day.isoformat()
        return event if ok else None

    silver = p.wait(f"orders_valid {day}", lambda: materialized("orders_valid"))
    gold = p.wait(f"restaurant_daily_sales {day}", lambda: materialized("restaurant_daily_sales"))
    p.stop_sensor("foodops_automation")  # what else follows is not the point
    sensor_run = p.wait_status(silver.run_id, S.SUCCESS, S.FAILURE)
    gold_run = p.run(gold.run_id)
    assert p.run(backfill_run.run_id).status == S.STARTED  # the backfill is still writing
    p.let_go()
    backfill_run = p.wait_status(backfill_run.run_id, S.SUCCESS, S.FAILURE)

    # the sensor's run wrote bronze, silver and gold of the day (one process, one JVM)
    assert sensor_run.status == S.SUCCESS
    assert sensor_run.tags["dagster/sensor_name"] == "orders_file_arrivals"
    assert sensor_run.tags["dagster/partition"] == day.isoformat()
    assert sensor_run.asset_selection == {
        dg.AssetKey("orders_raw"),
        dg.AssetKey("orders_valid"),
        dg.AssetKey("restaurant_daily_sales"),
        dg.AssetKey("city_hourly_demand"),
    }
    assert gold_run.run_id == sensor_run.run_id
    # the automation evaluated on this instance and did not do silver or gold again
    assert not [
        r
        for r in p.instance.get_runs(dg.RunsFilter(tags={"foodops/trigger": "automation"}))
        if {dg.AssetKey("orders_valid"), dg.AssetKey("restaurant_daily_sales")}
        & set(r.asset_selection or ())
    ]
    assert len(_partition_rows(p.lake, "silver/orders_valid", day)) == ROWS
    sales = _partition_rows(p.lake, "gold/restaurant_daily_sales", day)
    assert sales and sum(r["orders"] for r in sales) == ROWS

    # ... all inside the backfill's run, which then completed: one run for the three days
    assert backfill_run.status == S.SUCCESS
    assert (
        backfill_run.tags["dagster/asset_partition_range_start"],
        backfill_run.tags["dagster/asset_partition_range_end"],
    ) == (BACKFILL_DAYS[0].isoformat(), BACKFILL_DAYS[-1].isoformat())
    # both queued through the lane coordinator: different lanes, so neither waited
    assert backfill_run.tags["foodops/lane/deliveries"] == (
        f"{BACKFILL_DAYS[0].isoformat()}...{BACKFILL_DAYS[-1].isoformat()}"
    )
    assert sensor_run.tags["foodops/lane/orders"] == day.isoformat()
    done = p.wait(
        "the backfill to end",
        lambda: (
            (b := p.instance.get_backfill(backfill_id)).status.value.startswith("COMPLETED") and b
        ),
    )
    assert done.status.value == "COMPLETED_SUCCESS"
    assert len(p.instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))) == 1
    backfill_rec = p.record(backfill_run.run_id)
    for run in (sensor_run,):
        rec = p.record(run.run_id)
        assert backfill_rec.start_time <= rec.start_time <= rec.end_time <= backfill_rec.end_time
    for backfill_day in BACKFILL_DAYS:
        assert len(_partition_rows(p.lake, "bronze/deliveries_raw", backfill_day)) == ROWS


def test_the_postgres_password_reaches_no_log_and_no_table(platform, postgres):
    """The password is given only through DAGSTER_PG_PASSWORD: it is in no compute log, no
    event of any run, no row of the instance's PostgreSQL tables, no file the runs wrote."""
    p = platform
    secret = postgres.password
    assert secret not in (p.home / "dagster.yaml").read_text()
    runs = p.instance.get_runs()
    # what the module's tests above left behind (file order; run alone, this fails here)
    assert len(runs) >= 7, f"only {len(runs)} runs in the instance: run the whole module"

    compute_logs = [f for f in (p.logs / "compute_logs").rglob("*") if f.is_file()]
    assert compute_logs, "no compute logs were captured"
    other_logs = [f for f in p.logs.glob("*.log")]
    for path in compute_logs + other_logs:
        assert secret not in path.read_text(errors="replace"), path

    for run in runs:
        for event in p.instance.all_logs(run.run_id):
            assert secret not in dg.serialize_value(event), run.run_id

    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        tables = [t for (t,) in cur.fetchall()]
        dump = []
        for table in tables:
            cur.execute(f'SELECT t::text FROM "{table}" t')
            dump.extend(row for (row,) in cur.fetchall())
    text = "\n".join(dump)
    assert {"runs", "event_logs", "instigators"} <= set(tables)
    assert all(run.run_id in text for run in runs)  # the dump holds the instance's data
    assert secret not in text
