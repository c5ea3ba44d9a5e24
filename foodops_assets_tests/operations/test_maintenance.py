"""The ``lake_maintenance`` job: retention read from the shipped contracts, results as
observations on each table's asset, refusals that name the setting, and — with two real
processes — maintenance waiting for the run that writes a table."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from foodops_assets.contracts import CONTRACTS_DIR
from foodops_assets.definitions import build_definitions
from foodops_assets.lakehouse.tables import (
    DEAD_LETTER_QUEUE,
    ORDERS_RAW,
    ORDERS_VALID,
    RESTAURANT_DAILY_SALES,
    TABLES,
)
from foodops_assets.operations.maintenance import MAINTENANCE_JOB, PolicyError
from foodops_assets.settings import Settings
from foodops_assets_tests.conftest import REPO_ROOT, Lake, subprocess_env
from foodops_assets_tests.factories import line, order

TODAY = dt.datetime.now(dt.UTC).date()
DAGSTER = str(Path(sys.executable).parent / "dagster")


def _ago(days: int) -> dt.date:
    return TODAY - dt.timedelta(days=days)


def _rows(day: dt.date, n: int = 3, **columns) -> pa.Table:
    data = {
        "id": [f"{day}-{i}" for i in range(n)],
        "partition_date": pa.array([day] * n, pa.date32()),
    }
    data.update({k: [v] * n for k, v in columns.items()})
    return pa.table(data)


def _seed(lake: Lake) -> None:
    """Small tables with partitions on both sides of the shipped contracts' retention
    (orders: raw text and dead letters 30 days, silver 400 days)."""
    store = lake.store
    for age in (410, 40, 2):
        day = _ago(age)
        where = {"partition_date": [day]}
        store.replace_partitions(_rows(day, _rescued_data=f"raw line {age}"), ORDERS_RAW, where)
        store.replace_partitions(_rows(day), ORDERS_VALID, where)
        for source in ("orders", "reviews"):
            store.replace_partitions(
                _rows(day, source=source, raw_record=f"{source} record {age}"),
                DEAD_LETTER_QUEUE,
                {"partition_date": [day], "source": [source]},
            )
    for _ in range(3):  # small files for the compaction
        write_deltalake(store.uri(ORDERS_VALID), _rows(_ago(2), n=1), mode="append")


def _run(lake: Lake, instance: dg.DagsterInstance, run_config=None, settings=None, **kwargs):
    defs = build_definitions(settings or lake.settings, **kwargs)
    job = defs.resolve_job_def(MAINTENANCE_JOB)
    return job.execute_in_process(
        instance=instance, run_config=run_config or {}, raise_on_error=False
    )


def _observation(instance: dg.DagsterInstance, table: str) -> dict:
    [record] = instance.fetch_observations(dg.AssetKey(table), limit=1).records
    return {k: v.value for k, v in record.asset_observation.metadata.items()}


def test_every_writer_of_a_table_and_its_maintenance_share_one_pool(lake):
    defs = lake.definitions()
    writers: dict[str, set[str]] = {}
    for asset in defs.assets:
        if isinstance(asset, dg.AssetsDefinition) and asset.is_executable:
            for key in asset.keys:
                writers.setdefault(key.path[-1], set()).add(asset.op.pool)
    maintenance = {
        n.name.removeprefix("maintain_"): n.definition.pool
        for n in defs.resolve_job_def(MAINTENANCE_JOB).graph.nodes
    }
    assert set(maintenance) == set(TABLES)
    for table, pools in writers.items():
        assert pools == {maintenance[table]}, table
    # silver steps write their source's dead letters: one pool for all of them and the
    # DLQ replay; every other table has its own
    silver = maintenance["dead_letter_queue"]
    assert {maintenance[t] for t in ("orders_valid", "deliveries_valid", "reviews_valid")} == {
        silver
    }
    [replay] = defs.resolve_job_def("dlq_replay").graph.nodes
    assert replay.definition.pool == silver
    assert maintenance["orders_raw"] == "lake/orders_raw"
    assert len(set(maintenance.values())) == len(TABLES) - 3


def test_maintenance_purges_by_the_contracts_and_reports_observations(lake, instance):
    _seed(lake)
    store = lake.store
    versions = {t.name: store.version(t) for t in (ORDERS_RAW, ORDERS_VALID, DEAD_LETTER_QUEUE)}

    result = _run(lake, instance)

    assert result.success
    # silver and bronze keep 400 days, the orders' dead letters and raw text 30
    assert sorted({str(d) for d in store.to_arrow(ORDERS_VALID)["partition_date"].to_pylist()}) == [
        str(_ago(40)),
        str(_ago(2)),
    ]
    raw = {
        str(r["partition_date"]): r["_rescued_data"] for r in store.to_arrow(ORDERS_RAW).to_pylist()
    }
    assert raw == {str(_ago(40)): None, str(_ago(2)): "raw line 2"}
    dlq = {
        (str(r["partition_date"]), r["source"])
        for r in store.to_arrow(DEAD_LETTER_QUEUE).to_pylist()
    }
    assert dlq == {(str(_ago(2)), "orders"), (str(_ago(2)), "reviews")}

    # the UI: an observation per maintained table, none for tables never materialised
    silver = _observation(instance, "orders_valid")
    assert (silver["files_before"], silver["files_after"]) == (6, 2)
    assert silver["bytes_after"] < silver["bytes_before"]
    assert silver["delta_version_before"] == versions["orders_valid"]
    assert silver["versions_kept"] == silver["delta_version"] + 1  # all younger than a week
    assert silver["duration_seconds"] >= 0 and silver["rollback_window_days"] == 7
    assert silver["partitions_kept_days"] == 400
    [purge] = silver["purges"]
    assert purge["partitions"] == [str(_ago(410))] and purge["rows"] == 3
    dead = _observation(instance, "dead_letter_queue")
    assert dead["purged_rows"] == 12
    assert dead["dead_letters_kept_days/orders"] == 30
    bronze = _observation(instance, "orders_raw")
    assert [p["operation"] for p in bronze["purges"]] == ["delete partitions", "null _rescued_data"]
    assert not instance.fetch_observations(dg.AssetKey("reviews_raw"), limit=1).records
    # observations, not materialisations: no asset claims new data
    for table in ("orders_raw", "orders_valid", "dead_letter_queue"):
        assert not instance.fetch_materializations(dg.AssetKey(table), limit=1).records


def test_a_dry_run_changes_nothing_and_reports_what_would_go(lake, instance):
    _seed(lake)
    store = lake.store
    before = {t.name: store.version(t) for t in (ORDERS_RAW, ORDERS_VALID, DEAD_LETTER_QUEUE)}

    result = _run(lake, instance, run_config={"dry_run": True, "tables": ["dead_letter_queue"]})

    assert result.success
    assert {t: store.version(TABLES[t]) for t in before} == before
    [event] = [
        e
        for e in result.all_node_events
        if e.is_successful_output and e.step_key == "maintain_dead_letter_queue"
    ]
    metadata = {k: v.value for k, v in event.event_specific_data.metadata.items()}
    assert metadata["dry_run"] is True and metadata["purged_rows"] == 12
    skipped = [
        e
        for e in result.all_node_events
        if e.is_successful_output and e.step_key == "maintain_orders_valid"
    ]
    assert skipped[0].event_specific_data.metadata["skipped"].value == "not selected in this run"
    assert not instance.fetch_observations(dg.AssetKey("dead_letter_queue"), limit=1).records


def test_a_retention_shorter_than_a_tables_window_is_refused_naming_the_settings(
    lake, instance, tmp_path
):
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    orders = contracts / "orders.odcs.yaml"
    orders.write_text(
        orders.read_text() + "- {property: rollback_window_days, value: 14, unit: d}\n"
    )
    _seed(lake)
    seeded = lake.store.version(ORDERS_VALID)
    settings = Settings(
        landing_root=str(lake.landing), lake_root=str(lake.lake), vacuum_retention_hours=200
    )

    result = _run(lake, instance, settings=settings, contracts_dir=contracts)

    assert not result.success
    failed = {e.step_key: e for e in result.all_node_events if e.is_step_failure}
    # the orders' tables (and the DLQ, which holds orders' rows) keep 14 days: refused
    assert set(failed) == {
        "maintain_orders_raw",
        "maintain_orders_valid",
        "maintain_dead_letter_queue",
    }
    message = failed["maintain_orders_raw"].event_specific_data.error.message
    assert "FOODOPS_VACUUM_RETENTION_HOURS=200" in message
    assert "slaProperties rollback_window_days" in message and "orders.odcs.yaml" in message
    assert "at least 336" in message
    # nothing of theirs was touched; with the setting unset, the window is the retention
    assert lake.store.version(ORDERS_VALID) == seeded
    assert _run(lake, instance, contracts_dir=contracts).success
    assert _observation(instance, "orders_valid")["retention_hours"] == 336


def test_the_code_location_refuses_silver_retention_the_automation_could_reach(tmp_path):
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    reviews = contracts / "reviews.odcs.yaml"
    reviews.write_text(
        reviews.read_text().replace("silver_retention_days: 400", "silver_retention_days: 20")
    )
    with pytest.raises(
        PolicyError, match="slaProperties silver_retention_days of .*reviews.odcs.yaml = 20"
    ):
        build_definitions(Settings(landing_root="/l", lake_root="/k"), contracts_dir=contracts)


def test_the_schedule_starts_maintenance_off_peak_as_configured():
    settings = Settings(landing_root="/l", lake_root="/k", maintenance_cron="15 4 * * *")
    repo = build_definitions(settings).get_repository_def()
    schedule = repo.get_schedule_def("foodops_lake_maintenance")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 4 * * *", "UTC")
    assert schedule.job_name == MAINTENANCE_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = dt.datetime(2026, 11, 21, 4, 15, tzinfo=dt.UTC)
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.tags["dagster/max_runtime"] == str(settings.run_timeout_seconds)
    off = build_definitions(Settings(landing_root="/l", lake_root="/k", automation="off"))
    stopped = off.get_repository_def().get_schedule_def("foodops_lake_maintenance")
    assert stopped.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.e2e
def test_maintenance_waits_for_the_run_writing_a_table_and_does_the_others_meanwhile(tmp_path):
    """Two real processes on one Dagster instance (the repository's dagster.yaml): a
    ``dagster asset materialize`` of orders_raw held in the middle of its first Delta write,
    and ``dagster job execute -j lake_maintenance``. Maintenance of orders_raw waits for the
    pool slot the writer holds (had it not, it would have found no table and skipped it);
    the other tables are maintained meanwhile; once the writer has committed, maintenance
    runs on the writer's version."""
    landing, lake_dir = tmp_path / "landing", tmp_path / "lake"
    lake = Lake(
        tmp_path, landing, lake_dir, Settings(landing_root=str(landing), lake_root=str(lake_dir))
    )
    day = _ago(2)
    for _ in range(3):  # a table nobody writes during the test
        write_deltalake(
            lake.store.uri(RESTAURANT_DAILY_SALES), _rows(day), mode="append",
            partition_by=["partition_date"],
        )  # fmt: skip
    lake.land("orders", day, "batch-0001.jsonl", [line(order(n, day=day)) for n in range(1, 6)])
    marker, release = tmp_path / "writing", tmp_path / "release"
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("writer", "maintenance")}
    procs: dict[str, subprocess.Popen] = {}

    def start(name, args, env):
        procs[name] = subprocess.Popen(
            [DAGSTER, *args], cwd=REPO_ROOT, env=env, stdout=logs[name],
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_for(what, condition, timeout=300):
        deadline = time.time() + timeout
        while not condition():
            for name, p in procs.items():
                assert p.poll() in (None, 0), (tmp_path / f"{name}.log").read_text()[-3000:]
            assert time.time() < deadline, f"timed out waiting for {what}"
            time.sleep(0.5)

    try:
        start(
            "writer",
            ["asset", "materialize", "-m", "foodops_assets", "--select", "orders_raw",
             "--partition", day.isoformat()],
            subprocess_env(
                lake, FOODOPS_FAULTS="hang_write:orders_raw", FOODOPS_FAULT_MARKER=str(marker),
                FOODOPS_FAULT_RELEASE=str(release),
            ),
        )  # fmt: skip
        wait_for("the writer to be inside its Delta write", marker.exists)
        start("maintenance", ["job", "execute", "-m", "foodops_assets", "-j", MAINTENANCE_JOB],
              subprocess_env(lake))  # fmt: skip

        with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:

            def events(step: str, kind: dg.DagsterEventType) -> list[dg.EventLogRecord]:
                runs = instance.get_runs(dg.RunsFilter(job_name=MAINTENANCE_JOB))
                if not runs:
                    return []
                records = instance.get_records_for_run(runs[0].run_id, limit=10_000).records
                return [
                    r
                    for r in records
                    if r.event_log_entry.step_key == step
                    and r.event_log_entry.dagster_event_type == kind
                ]

            blocked = lambda: [  # noqa: E731
                e
                for e in events("maintain_orders_raw", dg.DagsterEventType.ENGINE_EVENT)
                if "blocked by limit for pool lake/orders_raw" in e.event_log_entry.message
            ]
            wait_for("maintenance to be blocked on orders_raw's pool", blocked)
            wait_for(
                "maintenance of the tables nobody writes",
                lambda: events("maintain_restaurant_daily_sales", dg.DagsterEventType.STEP_SUCCESS),
            )
            # the writer still holds orders_raw: its maintenance has not started
            assert not events("maintain_orders_raw", dg.DagsterEventType.STEP_START)
            assert not lake.store.exists(ORDERS_RAW)
            assert procs["writer"].poll() is None and procs["maintenance"].poll() is None

            release.touch()
            for p in procs.values():
                p.wait(timeout=300)
            assert [p.returncode for p in procs.values()] == [0, 0], (
                tmp_path / "maintenance.log"
            ).read_text()[-3000:]

            written = instance.fetch_materializations(dg.AssetKey("orders_raw"), limit=1).records[0]
            [started] = events("maintain_orders_raw", dg.DagsterEventType.STEP_START)
            assert started.storage_id > written.storage_id  # maintenance ran after the commit
            seen = _observation(instance, "orders_raw")
            assert seen["delta_version_before"] == 0  # the writer's commit
            assert seen["files_after"] == 1
            assert _observation(instance, "restaurant_daily_sales")["files_after"] == 1
        assert len(lake.store.to_arrow(ORDERS_RAW)) == 5
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=60)
        for f in logs.values():
            f.close()
