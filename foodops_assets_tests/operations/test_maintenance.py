"""The ``lake_maintenance`` job: retention read from the shipped contracts, results as
observations on each table's asset, refusals that name the setting, and a table that a run
in progress writes left alone — in process, and with two real processes."""

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

from foodops_assets.checks.contract_changes import contract_tables
from foodops_assets.contracts import CONTRACTS_DIR, load_contract
from foodops_assets.definitions import DAILY_ASSETS, DAILY_JOB, build_definitions
from foodops_assets.lakehouse.tables import (
    DEAD_LETTER_QUEUE,
    ORDERS_RAW,
    ORDERS_VALID,
    RESTAURANT_DAILY_SALES,
    TABLES,
)
from foodops_assets.lakehouse.writers import arrow
from foodops_assets.operations.maintenance import (
    MAINTENANCE_JOB,
    PolicyError,
    tables_written_by,
    writers_in_progress,
)
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


def _orders(table: str, day: dt.date, n: int = 3, **columns) -> pa.Table:
    """Rows of an orders table with the schema the shipped contract gives it (the code
    location refuses to load over a table the contract does not describe), nulls apart
    from the ids, the day and ``columns``."""
    schema = {t.name: s for t, s in contract_tables(load_contract("orders"))}[table]
    values = {"order_id": [f"{day}-{i}" for i in range(n)], "partition_date": [day] * n}
    values.update({k: [v] * n for k, v in columns.items()})
    return pa.table(
        {f.name: pa.array(values.get(f.name, [None] * n), f.type) for f in schema}, schema
    )


def _seed(lake: Lake) -> None:
    """Small tables with partitions on both sides of the shipped contracts' retention
    (orders: raw text and dead letters 30 days, silver 400 days)."""
    store = lake.store
    for age in (410, 40, 2):
        day = _ago(age)
        where = {"partition_date": [day]}
        raw = _orders("orders_raw", day, _rescued_data=f"raw line {age}")
        arrow.Writer(store).write_partitions(raw, ORDERS_RAW, where)
        arrow.Writer(store).write_partitions(_orders("orders_valid", day), ORDERS_VALID, where)
        for source in ("orders", "reviews"):
            arrow.Writer(store).write_partitions(
                _rows(day, source=source, raw_record=f"{source} record {age}"),
                DEAD_LETTER_QUEUE,
                {"partition_date": [day], "source": [source]},
            )
    for _ in range(3):  # small files for the compaction
        write_deltalake(store.uri(ORDERS_VALID), _orders("orders_valid", _ago(2), 1), mode="append")


def _run(lake: Lake, instance: dg.DagsterInstance, run_config=None, settings=None, **kwargs):
    defs = build_definitions(settings or lake.settings, **kwargs)
    job = defs.resolve_job_def(MAINTENANCE_JOB)
    return job.execute_in_process(
        instance=instance, run_config=run_config or {}, raise_on_error=False
    )


def _observation(instance: dg.DagsterInstance, table: str) -> dict:
    [record] = instance.fetch_observations(dg.AssetKey(table), limit=1).records
    return {k: v.value for k, v in record.asset_observation.metadata.items()}


def _run_of(instance, defs, job: str, assets=None, run_config=None, started=True) -> str:
    """A run of ``job`` in the instance, as the run queue or the CLI creates it (with its
    planned materialisations), optionally marked started; nothing executes."""
    job_def = defs.resolve_job_def(job)
    run = instance.create_run_for_job(
        job_def,
        asset_selection=frozenset(dg.AssetKey(a) for a in assets) if assets else None,
        run_config=run_config,
        tags={"dagster/partition": str(_ago(2))} if job == DAILY_JOB else None,
    )
    if started:
        instance.report_dagster_event(
            dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_START.value, job_name=job),
            run.run_id,
        )
    return run.run_id


def test_the_runs_in_progress_say_which_tables_they_write(lake, instance):
    defs = lake.definitions()
    replay = _run_of(
        instance, defs, "dlq_replay",
        run_config={"ops": {"replay_dead_letters": {"config": {"partitions": [str(_ago(2))]}}}},
    )  # fmt: skip
    silver = _run_of(instance, defs, DAILY_JOB, ["orders_valid"])
    restore = _run_of(
        instance, defs, "restore_delta_table", started=False,
        run_config={"ops": {"restore_delta_table_op": {"config": {"table": "dishes", "version": 0}}}},
    )  # fmt: skip
    finished = _run_of(instance, defs, DAILY_JOB, ["restaurant_daily_sales"])
    instance.report_run_failed(instance.get_run_by_id(finished))

    writers = writers_in_progress(instance)

    # silver writes its source's dead letters too (the newest run is named first); the
    # replay writes every silver table and the DLQ; a restore, the table in its config
    assert (writers["orders_valid"].run_id, writers["orders_valid"].why) == (
        silver,
        "materialises orders_valid",
    )
    assert (writers["dead_letter_queue"].run_id, writers["dead_letter_queue"].why) == (
        silver,
        "materialises orders_valid, which writes its rows of dead_letter_queue",
    )
    assert (writers["reviews_valid"].run_id, writers["reviews_valid"].why) == (
        replay,
        "replays dead letters into silver",
    )
    assert (writers["dishes"].run_id, writers["dishes"].status) == (restore, "NOT_STARTED")
    assert "restaurant_daily_sales" not in writers  # that run has ended
    assert set(writers) == {
        "orders_valid", "deliveries_valid", "reviews_valid", "dead_letter_queue", "dishes"
    }  # fmt: skip
    # a whole daily run: every table of the job
    daily = tables_written_by(instance, instance.get_run_by_id(_run_of(instance, defs, DAILY_JOB)))
    assert set(daily) == {*DAILY_ASSETS, "dead_letter_queue"}
    assert daily["dead_letter_queue"].endswith("_valid, which writes its rows of dead_letter_queue")


def test_a_table_a_run_in_progress_writes_is_skipped_naming_the_run(lake, instance):
    _seed(lake)
    store = lake.store
    before = {t.name: store.version(t) for t in (ORDERS_RAW, ORDERS_VALID, DEAD_LETTER_QUEUE)}
    writer = _run_of(instance, lake.definitions(), DAILY_JOB, ["orders_valid"])

    result = _run(lake, instance)

    assert result.success
    # orders_valid and the DLQ (its silver step writes dead letters) are left alone ...
    for table in ("orders_valid", "dead_letter_queue"):
        assert store.version(TABLES[table]) == before[table]
        seen = _observation(instance, table)
        assert seen["skipped_for_run"] == writer
        assert f"run {writer} (foodops_daily, started) materialises orders_valid" in seen["skipped"]
        assert "files_after" not in seen
    assert (
        "which writes its rows of dead_letter_queue"
        in _observation(instance, "dead_letter_queue")["skipped_because"]
    )
    # ... and orders_raw, which nobody is writing, is maintained meanwhile
    assert store.version(ORDERS_RAW) > before["orders_raw"]
    assert _observation(instance, "orders_raw")["lost_races"] == []

    # the run ends: the next maintenance takes the tables
    instance.report_run_failed(instance.get_run_by_id(writer))
    assert _run(lake, instance).success
    assert _observation(instance, "orders_valid")["files_after"] == 2


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
    text = reviews.read_text()
    shipped = "property: silver_retention_days\n  value: 400\n"
    assert shipped in text
    reviews.write_text(text.replace(shipped, shipped.replace("400", "20")))
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
def test_maintenance_skips_the_table_a_held_writer_writes_and_the_writer_then_succeeds(tmp_path):
    """Two real processes on one Dagster instance (the repository's dagster.yaml): a
    ``dagster asset materialize`` re-running an orders_raw partition, held in the middle of
    its Delta write, and ``dagster job execute -j lake_maintenance``. Maintenance skips
    orders_raw, naming the writer's run, maintains the other tables and ends while the
    writer is still held; released, the writer commits."""
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
    materialize = [
        DAGSTER, "asset", "materialize", "-m", "foodops_assets", "--select", "orders_raw",
        "--partition", day.isoformat(),
    ]  # fmt: skip

    def run(name: str, args: list[str], env: dict) -> subprocess.CompletedProcess:
        with (tmp_path / f"{name}.log").open("w") as log:
            done = subprocess.run(
                args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=900
            )
        assert done.returncode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        return done

    run("first-write", materialize, subprocess_env(lake))  # orders_raw exists: version 0
    log = (tmp_path / "writer.log").open("w")
    writer = subprocess.Popen(
        materialize, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
        env=subprocess_env(
            lake, FOODOPS_FAULTS="hang_write:orders_raw", FOODOPS_FAULT_MARKER=str(marker),
            FOODOPS_FAULT_RELEASE=str(release),
        ),
    )  # fmt: skip
    try:
        deadline = time.time() + 600
        while not marker.exists():
            assert writer.poll() is None, (tmp_path / "writer.log").read_text()[-3000:]
            assert time.time() < deadline, "the writer never reached its Delta write"
            time.sleep(0.5)

        # maintenance runs to its end while the writer is held: nobody waits for anybody
        run("maintenance", [DAGSTER, "job", "execute", "-m", "foodops_assets", "-j",
                            MAINTENANCE_JOB], subprocess_env(lake))  # fmt: skip
        assert writer.poll() is None
        with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
            [held] = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            skipped = _observation(instance, "orders_raw")
            assert skipped["skipped_for_run"] == held.run_id
            assert f"run {held.run_id}" in skipped["skipped"]
            assert skipped["skipped_because"] == "materialises orders_raw"
            assert lake.store.version(ORDERS_RAW) == 0  # maintenance committed nothing to it
            assert _observation(instance, "restaurant_daily_sales")["files_after"] == 1

            release.touch()
            writer.wait(timeout=600)
            assert writer.returncode == 0, (tmp_path / "writer.log").read_text()[-3000:]
            assert instance.get_run_by_id(held.run_id).status == dg.DagsterRunStatus.SUCCESS
        assert lake.store.version(ORDERS_RAW) == 1
        assert len(lake.store.to_arrow(ORDERS_RAW)) == 5
    finally:
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
            writer.wait(timeout=60)
        log.close()
