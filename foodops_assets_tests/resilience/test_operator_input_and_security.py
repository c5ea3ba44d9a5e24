"""Bad operator input fails fast with a message that says what to fix; security basics.

(The Dagster CLI's own handling of a bad partition key and of a malformed contract is proven
as subprocesses in cli/test_commands_e2e.py; a missing landing directory in assets/test_orders_path.py.
Here the rest, in process.)
"""

from __future__ import annotations

import datetime as dt
import re
import shutil

import dagster as dg
import pytest

from foodops_assets.contracts.model import ContractError
from foodops_assets.definitions import build_definitions
from foodops_assets.lakehouse.delta import PredicateError, partition_predicate
from foodops_assets.lakehouse.tables import ORDERS_VALID
from foodops_assets.operations.dlq_replay import DLQ_REPLAY_JOB
from foodops_assets.settings import Settings
from foodops_assets_tests.conftest import REPO_ROOT, materialize
from foodops_assets_tests.factories import line, order

DAY = dt.date(2026, 11, 20)
INJECTION = "2026-11-20' OR '1'='1"


@pytest.mark.parametrize(
    "key, words",
    [
        ("2026-02-30", "2026-02-30"),  # not a date
        ("2024-12-31", "2024-12-31"),  # before the first partition
        ("2999-01-01", "2999-01-01"),  # after the last one
        (INJECTION, INJECTION),  # an injection attempt is just an unknown key
    ],
)
def test_a_partition_key_outside_the_partitions_is_refused_before_anything_runs(
    lake, spark_resource, key, words
):
    with pytest.raises(dg.DagsterError, match=re.escape(words)) as info:
        materialize(lake, spark_resource, ["orders_raw"], partition_key=key)
    assert "partition" in str(info.value).lower()
    assert not lake.lake.exists() or not any(lake.lake.iterdir())


def test_partition_values_are_never_spliced_unvalidated_into_predicates():
    for bad in (INJECTION, "x) OR (1=1", "a'b", ""):
        with pytest.raises(PredicateError, match="not a safe partition value"):
            partition_predicate(ORDERS_VALID, {"partition_date": [bad]})
    # datetimes are not dates either; only typed dates (or plain identifiers) make literals
    with pytest.raises(PredicateError, match="expected a date"):
        partition_predicate(ORDERS_VALID, {"partition_date": [dt.datetime(2026, 11, 20)]})
    assert partition_predicate(ORDERS_VALID, {"partition_date": [DAY]}) == (
        "partition_date IN ('2026-11-20')"
    )


@pytest.mark.parametrize(
    "partitions, words",
    [
        ([INJECTION], "is not a date: use YYYY-MM-DD"),
        (["2024-12-31"], "outside the daily partitions"),
    ],
)
def test_dlq_replay_refuses_bad_partitions(lake, spark_resource, partitions, words):
    job = lake.definitions().get_job_def(DLQ_REPLAY_JOB)
    result = job.execute_in_process(
        run_config={"ops": {"replay_dead_letters": {"config": {"partitions": partitions}}}},
        resources={"spark": spark_resource, "lakehouse": lake.resource()},
        raise_on_error=False,
    )
    assert not result.success
    assert words in result.get_step_failure_events()[0].step_failure_data.error.message


def test_an_unusable_lake_path_fails_at_resource_setup_naming_the_variable(lake, spark_resource):
    lake.land("orders", DAY, "batch-0001.jsonl", [line(order(1, day=DAY))])
    not_a_dir = lake.root / "lake-is-a-file"
    not_a_dir.write_text("oops")
    lake.lake = not_a_dir
    result = materialize(
        lake, spark_resource, ["orders_raw"], partition_key=DAY.isoformat(), raise_on_error=False
    )
    assert not result.success
    [event] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"] or [
        e for e in result.all_events if e.is_failure
    ]
    text = str(event.event_specific_data)
    assert "FOODOPS_LAKE_ROOT" in text and "is a file, not a directory" in text


def test_a_malformed_contract_file_fails_when_the_code_location_loads(tmp_path):
    contracts = tmp_path / "contracts"
    shutil.copytree(REPO_ROOT / "resources" / "contracts", contracts)
    (contracts / "deliveries.odcs.yaml").write_text("name: deliveries\nschema: [unclosed\n")
    with pytest.raises(ContractError) as info:
        build_definitions(Settings(contracts_dir=str(contracts)))
    assert "deliveries.odcs.yaml" in str(info.value)


def test_the_webserver_binds_to_loopback_by_default():
    # `make ui` runs `foodops ui`, which starts dagster dev on loopback unless told otherwise
    makefile = (REPO_ROOT / "Makefile").read_text()
    [ui] = [x for x in makefile.splitlines() if "foodops ui" in x and not x.startswith("#")]
    assert "-h 127.0.0.1" in ui
    assert "0.0.0.0" not in makefile
    from foodops_assets.cli.commands import ui as ui_command

    [host] = [p for p in ui_command.params if p.name == "host"]
    assert host.default == "127.0.0.1"


@pytest.mark.parametrize("how", ["absolute_path_elsewhere", "symlink_out_of_the_root"])
def test_dlq_replay_reads_corrections_only_from_under_the_landing_root(
    lake, spark_resource, tmp_path, how
):
    # issue 17: a run's configuration must not make the platform read a file from elsewhere
    # on the machine into the lake
    elsewhere = tmp_path / "elsewhere" / "fixes.jsonl"
    elsewhere.parent.mkdir()
    elsewhere.write_text('{"source_file": "x", "source_line": 1, "record": {}}\n')
    if how == "absolute_path_elsewhere":
        path = str(elsewhere)
    else:
        (lake.landing / "_corrections").mkdir()
        (lake.landing / "_corrections" / "fixes.jsonl").symlink_to(elsewhere)
        path = "_corrections/fixes.jsonl"  # relative: taken from the landing root
    job = lake.definitions().get_job_def(DLQ_REPLAY_JOB)
    config = {"partitions": [DAY.isoformat()], "corrections_path": path}
    result = job.execute_in_process(
        run_config={"ops": {"replay_dead_letters": {"config": config}}},
        resources={"spark": spark_resource, "lakehouse": lake.resource()},
        raise_on_error=False,
    )
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "outside the landing root" in message and "_corrections" in message
