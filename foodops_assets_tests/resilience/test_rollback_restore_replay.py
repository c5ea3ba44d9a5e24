"""Circuit breaker with rollback, the restore job and DLQ replay, on one real lake.

The module materialises one orders partition once; the tests then run in order on it,
the way an operator's day would go: a buggy write trips the published-consistency breaker
and is rolled back; the operator replays corrected DLQ records into silver (twice: the
second replay changes nothing); then undoes the replay with the restore job (dry run first).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from foodops_assets.checks import names
from foodops_assets.cli import main as foodops
from foodops_assets.lakehouse.tables import (
    DEAD_LETTER_QUEUE,
    ORDERS_RAW,
    ORDERS_VALID,
    RESTAURANT_DAILY_SALES,
)
from foodops_assets.operations.dlq_replay import DLQ_REPLAY_JOB, export_dlq
from foodops_assets.operations.rerun import reconstructable_job
from foodops_assets.operations.restore import RESTORE_JOB
from foodops_assets_tests.conftest import Lake, materialize
from foodops_assets_tests.factories import line, order, without

DAY = dt.date(2026, 11, 20)
SECRET = "dapi-not-a-real-token-4242"
WHERE = {"partition_date": [DAY]}


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark_resource, with_reference) -> Lake:
    lake = Lake.under(tmp_path_factory.mktemp("rollback"))
    with_reference(lake)
    good = [line(order(n, day=DAY)) for n in range(1, 21)]
    bad = [
        line(order(101, day=DAY, price=0)),  # valid_price: fixable
        line(without(order(102, day=DAY), "user_id")),  # has_user_id: stays
        '{"order_id": "o-103", "price": ',  # malformed: fixable
        line(order(104, day=DAY, quantity=0)),  # fixed into a duplicate of o-1
    ]
    lake.land("orders", DAY, "batch-0001.jsonl", good + bad)
    result = materialize(
        lake,
        spark_resource,
        ["orders_raw", "orders_valid"],
        partition_key=DAY.isoformat(),
        run_config={"ops": {"orders_valid": {"config": {"max_dlq_rate": 0.5}}}},
    )
    assert result.success
    return lake


def _ids(lake, table, **where):
    rows = lake.store.to_arrow(table, {**WHERE, **where}).to_pylist()
    return (
        sorted((r.get("order_id") or r["raw_record"][:30]) for r in rows)
        if table is ORDERS_VALID
        else sorted((Path(r["source_file"]).name, r["source_line"]) for r in rows)
    )


def _conserved(lake) -> tuple[int, int, int, int]:
    """(bronze, silver, dlq, duplicates) by lineage, read back from the published tables."""
    store = lake.store
    lineage = lambda rows: {(r["source_file"], r["source_line"]) for r in rows}  # noqa: E731
    bronze = store.to_arrow(ORDERS_RAW, WHERE).to_pylist()
    silver = store.to_arrow(ORDERS_VALID, WHERE).to_pylist()
    dlq = store.to_arrow(DEAD_LETTER_QUEUE, {**WHERE, "source": ["orders"]}).to_pylist()
    placed = lineage(silver) | lineage(dlq)
    assert not lineage(silver) & lineage(dlq), "a line is in silver and in the DLQ"
    assert lineage(silver) | lineage(dlq) <= lineage(bronze), "a row from nowhere"
    silver_keys = {r["order_id"] for r in silver}
    unplaced = [r for r in bronze if (r["source_file"], r["source_line"]) not in placed]
    assert all(r["order_id"] in silver_keys for r in unplaced), "a line was lost"
    assert len(silver_keys) == len(silver), "a repeated order_id in silver"
    return len(bronze), len(silver), len(dlq), len(unplaced)


def test_a_failed_published_check_rolls_silver_and_the_dlq_back(lake, spark_resource, monkeypatch):
    before = {t.name: lake.store.version(t) for t in (ORDERS_VALID, DEAD_LETTER_QUEUE)}
    silver_before, dlq_before = _ids(lake, ORDERS_VALID), _ids(lake, DEAD_LETTER_QUEUE)
    # a buggy writer: every silver row is committed twice
    monkeypatch.setenv("FOODOPS_FAULTS", "duplicate_write:orders_valid")
    with dg.instance_for_test() as instance:
        result = materialize(
            lake,
            spark_resource,
            ["orders_valid"],
            partition_key=DAY.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_config={"ops": {"orders_valid": {"config": {"max_dlq_rate": 0.5}}}},
        )
        assert not result.success
        [check] = [
            e
            for e in result.get_asset_check_evaluations()
            if e.check_name == names.PUBLISHED_CONSISTENCY
        ]
        # the UI shows the failed breaker, which version is live and why
        assert check.passed is False
        meta = {k: v.value for k, v in check.metadata.items()}
        assert meta["lines_in_two_places"] == 20 and meta["repeated_business_keys"] == 20
        assert meta["rolled_back_from"] == before["orders_valid"] + 1  # the bad write
        assert meta["restored_to"] == before["orders_valid"]
        assert meta["live_version"] == before["orders_valid"] + 2  # the restore commit
        assert "published_consistency failed" in meta["reason"]
        failure = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "restored orders_valid to version" in failure
        assert "restored dead_letter_queue to version" in failure
        # Delta history says why, too
        last = lake.store.history(ORDERS_VALID, 1)[0]
        assert (
            last["operation"] == "RESTORE"
            and "published_consistency" in last["foodops_rollback_reason"]
        )
    # readers are back on the last good content of both tables
    assert _ids(lake, ORDERS_VALID) == silver_before
    assert _ids(lake, DEAD_LETTER_QUEUE) == dlq_before
    assert _conserved(lake) == (24, 20, 4, 0)


def test_dlq_replay_moves_fixed_records_into_silver_and_is_idempotent(
    lake, spark_resource, tmp_path
):
    # the operator exports the DLQ, fixes three records and leaves the fourth alone
    export = tmp_path / "dlq.jsonl"
    assert export_dlq(lake.store, "orders", [DAY], export) == 4
    entries = [json.loads(x) for x in export.read_text().splitlines()]
    fixes = []
    for e in entries:
        if e["failed_rules"] == ["valid_price"]:
            fixes.append({**e, "record": {**e["record"], "price": 99.5}})
        elif e["failed_rules"] == ["parseable_record"]:
            fixes.append({**e, "record": order(103, day=DAY)})
        elif e["failed_rules"] == ["valid_quantity"]:
            fixes.append({**e, "record": {**e["record"], "order_id": "o-1", "quantity": 1}})
    # corrections are read only from under the landing root
    corrections = lake.landing / "_corrections" / "fixes.jsonl"
    corrections.parent.mkdir()
    corrections.write_text("".join(json.dumps(f) + "\n" for f in fixes))

    job = lake.definitions().get_job_def(DLQ_REPLAY_JOB)
    resources = {"spark": spark_resource, "lakehouse": lake.resource()}
    config = {
        "ops": {
            "replay_dead_letters": {
                "config": {
                    "partitions": [DAY.isoformat()],
                    "sources": ["orders"],
                    "corrections_path": str(corrections),
                }
            }
        }
    }
    first = job.execute_in_process(run_config=config, resources=resources)
    assert first.success
    [mat] = [
        m
        for m in first.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("orders_valid")
    ]
    meta = {k: v.value for k, v in mat.materialization.metadata.items()}
    assert (
        meta["moved_to_silver"],
        meta["kept_key_already_in_silver"],
        meta["still_failing"],
    ) == (2, 1, 2)
    silver = _ids(lake, ORDERS_VALID)
    assert "o-101" in silver and "o-103" in silver and "o-102" not in silver
    left = lake.store.to_arrow(DEAD_LETTER_QUEUE, {**WHERE, "source": ["orders"]}).to_pylist()
    # still failing, and the correction that clashes with o-1 (silver keeps its o-1)
    assert sorted(r["failed_rules"][0] for r in left) == ["has_user_id", "valid_quantity"]
    # conservation still holds: 24 bronze lines = 22 silver + 2 DLQ
    assert _conserved(lake) == (24, 22, 2, 0)

    versions = {t.name: lake.store.version(t) for t in (ORDERS_VALID, DEAD_LETTER_QUEUE)}
    second = job.execute_in_process(run_config=config, resources=resources)
    assert second.success
    assert {t.name: lake.store.version(t) for t in (ORDERS_VALID, DEAD_LETTER_QUEUE)} == versions
    assert _conserved(lake) == (24, 22, 2, 0)


def test_the_restore_job_dry_runs_then_restores(lake):
    job = lake.definitions().get_job_def(RESTORE_JOB)
    history = lake.store.history(ORDERS_VALID)
    # the version before the replay: the last commit that is not the replay's
    replay_version = lake.store.version(ORDERS_VALID)
    target = replay_version - 1
    assert history[0]["version"] == replay_version
    current_rows = _ids(lake, ORDERS_VALID)

    def run(dry_run):
        return job.execute_in_process(
            run_config={
                "ops": {
                    "restore_delta_table_op": {
                        "config": {
                            "table": "orders_valid",
                            "version": target,
                            "dry_run": dry_run,
                            "reason": "undo the replay",
                        }
                    }
                }
            },
            resources={"lakehouse": lake.resource()},
        )

    dry = run(True)
    assert dry.success
    assert lake.store.version(ORDERS_VALID) == replay_version  # nothing changed
    assert _ids(lake, ORDERS_VALID) == current_rows
    [output] = [e for e in dry.all_events if e.event_type_value == "STEP_OUTPUT"]
    plan = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert (plan["current_version"], plan["target_version"]) == (replay_version, target)
    assert (plan["rows_now"], plan["rows_after"]) == (22, 20)
    assert f"| {DAY.isoformat()} | 22 | 20 |" in plan["partitions_changed"]
    assert not dry.get_asset_materialization_events()

    real = run(False)
    assert real.success
    assert len(_ids(lake, ORDERS_VALID)) == 20
    [mat] = real.get_asset_materialization_events()
    meta = {k: v.value for k, v in mat.materialization.metadata.items()}
    assert mat.materialization.partition == DAY.isoformat()
    assert meta["restored_to"] == target and meta["delta_version"] == replay_version + 1
    assert "undo the replay" in meta["reason"]


def test_the_restore_job_refuses_unknown_tables_and_versions(lake):
    job = lake.definitions().get_job_def(RESTORE_JOB)
    for table, version, words in (
        ("orders; DROP TABLE x", 0, "unknown table"),
        ("orders_valid", 999, "does not exist"),
    ):
        result = job.execute_in_process(
            run_config={
                "ops": {
                    "restore_delta_table_op": {
                        "config": {"table": table, "version": version, "dry_run": False}
                    }
                }
            },
            resources={"lakehouse": lake.resource()},
            raise_on_error=False,
        )
        assert not result.success
        assert words in result.get_step_failure_events()[0].step_failure_data.error.message


def test_re_execution_from_failure_runs_only_the_failed_step(lake, tmp_path, monkeypatch):
    """A run of silver + gold whose gold step fails; re-executed from failure (the CLI)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for var, value in {
        "FOODOPS_LANDING_ROOT": str(lake.landing),
        "FOODOPS_LAKE_ROOT": str(lake.lake),
        "DAGSTER_HOME": str(home),
        "DATABRICKS_TOKEN": SECRET,
        "FOODOPS_FAULTS": "fail_write:restaurant_daily_sales",
    }.items():
        monkeypatch.setenv(var, value)
    selection = ["orders_valid", "restaurant_daily_sales", "city_hourly_demand"]
    with dg.DagsterInstance.get() as instance:
        failed = dg.execute_job(
            reconstructable_job("__ASSET_JOB"),
            instance=instance,
            asset_selection=[dg.AssetKey(a) for a in selection],
            tags={"dagster/partition": DAY.isoformat()},
            run_config={"ops": {"orders_valid": {"config": {"max_dlq_rate": 0.5}}}},
            raise_on_error=False,
        )
        assert not failed.success
        first_run = failed.run_id
        failure = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
        assert [e.step_key for e in failure] == ["restaurant_daily_sales"]
        succeeded = {e.step_key for e in failed.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert succeeded == {"orders_valid", "city_hourly_demand"}
        assert "injected fault" in failure[0].step_failure_data.error.to_string()
        silver_version = lake.store.version(ORDERS_VALID)

    # the fault is fixed; the operator re-executes from failure
    monkeypatch.delenv("FOODOPS_FAULTS")
    out = CliRunner().invoke(foodops, ["rerun", first_run])
    assert out.exit_code == 0, out.output
    assert "SUCCESS" in out.output
    new_run = out.output.split("re-execution run ")[1].split(":")[0]

    with dg.DagsterInstance.get() as instance:
        started = {
            r.dagster_event.step_key
            for r in instance.all_logs(new_run)
            if r.dagster_event and r.dagster_event.event_type_value == "STEP_START"
        }
        assert started == {"restaurant_daily_sales"}
        run = instance.get_run_by_id(new_run)
        assert run.parent_run_id == first_run and run.tags["dagster/partition"] == DAY.isoformat()
        # the silver table was not recomputed
        assert lake.store.version(ORDERS_VALID) == silver_version
        # no secret in the event log of either run (messages, metadata, errors)
        for run_id in (first_run, new_run):
            for record in instance.all_logs(run_id):
                assert SECRET not in str(record)
    assert lake.store.version(RESTAURANT_DAILY_SALES) is not None  # written by the re-execution
