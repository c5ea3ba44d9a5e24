"""FOODOPS_EXECUTION=databricks, against a stand-in for Databricks on 127.0.0.1.

Databricks cannot be reached from the test machines, so these tests submit to
``fake_databricks`` (named as such: a local HTTP server speaking the Jobs and
DBFS REST endpoints the client calls, which executes the submitted task like a
job cluster would). Everything on the Dagster side is real: the CLI, the
instance, dagster-databricks' PipesDatabricksClient and the databricks-sdk.
"""

import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from deltalake import DeltaTable

from foodops_assets.databricks.launchers import JOB_SPEC, load_job_spec
from foodops_assets.definitions import build_definitions
from foodops_assets.lakehouse.tables import ORDERS_VALID, RESTAURANTS
from foodops_assets.settings import ConfigError, Settings
from foodops_assets_tests.conftest import REPO_ROOT, subprocess_env
from foodops_assets_tests.databricks.fake_databricks import fake_databricks
from foodops_assets_tests.factories import land_reference, line, order

pytestmark = pytest.mark.e2e

D2 = dt.date(2026, 11, 20)
DAGSTER = str(Path(sys.executable).parent / "dagster")
DAILY = "orders_raw,orders_valid,restaurant_daily_sales,city_hourly_demand"
ENDPOINTS = {
    ("POST", "/api/2.2/jobs/runs/submit"),
    ("GET", "/api/2.2/jobs/runs/get"),
    ("POST", "/api/2.0/dbfs/mkdirs"),
    ("POST", "/api/2.0/dbfs/put"),
    ("POST", "/api/2.0/dbfs/delete"),
    ("GET", "/api/2.0/dbfs/get-status"),
    ("GET", "/api/2.0/dbfs/read"),
}


def _spec_with_fast_polling(tmp_path: Path, source: Path = JOB_SPEC) -> Path:
    """A real job spec; only how often Dagster polls is shortened for the test."""
    doc = yaml.safe_load(source.read_text())
    doc["pipes"] = {"poll_interval_seconds": 0.5, "message_poll_seconds": 1}
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(doc))
    return path


def _materialize(env, *args, check=True):
    proc = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "foodops_assets", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check:
        assert proc.returncode == 0, f"{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _files_containing(root: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.timeout(1800)
def test_a_databricks_run_submits_the_configured_spec_and_never_leaks_the_token(lake, tmp_path):
    land_reference(lake)
    lake.land("orders", D2, "batch-0001.jsonl", [line(order(n, day=D2)) for n in range(1, 31)])
    spec_path = _spec_with_fast_polling(tmp_path)
    spec = yaml.safe_load(spec_path.read_text())
    token = f"dapi{uuid.uuid4().hex}"

    with fake_databricks(
        tmp_path / "databricks",
        token=token,
        checkout=REPO_ROOT,
        # the stand-in cluster's Spark has no Delta on its classpath (Databricks' has):
        # the spec's delta_spark writer is swapped for the writer that needs none
        cluster_env_overrides={
            "FOODOPS_DELTA_WRITER": "spark_files",
            "FOODOPS_PIPES_FLUSH_SECONDS": "1",
        },
    ) as fake:
        env = subprocess_env(
            lake,
            FOODOPS_EXECUTION="databricks",
            FOODOPS_DATABRICKS_JOB_SPEC=str(spec_path),
            DATABRICKS_HOST=fake.url,
            DATABRICKS_TOKEN=token,
        )
        reference = _materialize(env, "--select", "restaurants,dishes")
        daily = _materialize(env, "--select", DAILY, "--partition", D2.isoformat())
        driver_logs = [fake.driver_log(run_id) for run_id in fake.runs]

    # one job run per Dagster step, each carrying the configured spec: the reference
    # snapshots; bronze and silver; gold (it reads orders_valid through another partition
    # mapping than deliveries_valid does, so it is a multi-asset of its own)
    submits = [r for r in fake.requests if r.path.endswith("/runs/submit")]
    assert len(submits) == 3
    for request in submits:
        body = request.body
        assert body["run_name"] == spec["run_name"]
        assert body["timeout_seconds"] == spec["timeout_seconds"]
        assert body["git_source"] == spec["git_source"]
        [task] = body["tasks"]
        assert task["task_key"] == spec["task"]["task_key"]
        assert task["spark_python_task"] == spec["task"]["spark_python_task"]
        assert task["libraries"] == spec["task"]["libraries"]
        cluster = dict(task["new_cluster"])
        env_vars = cluster.pop("spark_env_vars")
        expected = dict(spec["task"]["new_cluster"])
        assert env_vars == {
            **expected.pop("spark_env_vars"),
            "DAGSTER_PIPES_CONTEXT": env_vars["DAGSTER_PIPES_CONTEXT"],
            "DAGSTER_PIPES_MESSAGES": env_vars["DAGSTER_PIPES_MESSAGES"],
        }
        assert cluster == expected
    # the client used exactly these endpoints, each request authenticated with the token
    assert {(r.method, r.path) for r in fake.requests} <= ENDPOINTS
    assert all(r.headers["Authorization"] == f"Bearer {token}" for r in fake.requests)

    # the assets ran on the "cluster" and reported back through Pipes
    assert DeltaTable(str(lake.lake / RESTAURANTS.path)).to_pyarrow_table().num_rows == 2
    silver = DeltaTable(str(lake.lake / ORDERS_VALID.path))
    assert silver.to_pyarrow_table().num_rows == 30
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("orders_valid"))
        meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        checks = [
            r.event_log_entry.dagster_event.event_specific_data
            for run in instance.get_runs()
            for r in instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ).records
        ]
    assert meta["dagster/row_count"] == 30 and meta["delta_version"] == silver.version()
    assert meta["delta_writer"] == "spark_files"
    assert meta["Databricks Job Run ID"] in {str(i) for i in fake.runs}
    assert len(checks) == 10 and all(c.passed for c in checks)

    # no secret anywhere: requests (bar the Authorization header), CLI output, the Dagster
    # instance (event log, run storage, compute logs), DBFS, the cluster's logs, the lake
    for request in fake.requests:
        assert token not in json.dumps(request.body or {}) + json.dumps(request.query)
        assert token not in json.dumps(
            {k: v for k, v in request.headers.items() if k != "Authorization"}
        )
    for output in (reference.stdout, reference.stderr, daily.stdout, daily.stderr, *driver_logs):
        assert token not in output
    for root in (Path(env["DAGSTER_HOME"]), tmp_path / "databricks", lake.lake):
        assert _files_containing(root, token) == []
    assert "[pipes] external process successfully opened dagster pipes" in daily.stderr


def test_the_serverless_spec_runs_through_a_unity_catalog_volume(lake, tmp_path):
    land_reference(lake)
    spec_path = _spec_with_fast_polling(tmp_path, JOB_SPEC.parent / "serverless.yaml")
    spec = yaml.safe_load(spec_path.read_text())
    token = f"dapi{uuid.uuid4().hex}"
    with fake_databricks(
        tmp_path / "databricks",
        token=token,
        checkout=REPO_ROOT,
        cluster_env_overrides={"FOODOPS_PIPES_FLUSH_SECONDS": "1"},
    ) as fake:
        env = subprocess_env(
            lake,
            FOODOPS_EXECUTION="databricks",
            FOODOPS_DATABRICKS_JOB_SPEC=str(spec_path),
            DATABRICKS_HOST=fake.url,
            DATABRICKS_TOKEN=token,
        )
        proc = _materialize(env, "--select", "restaurants,dishes")

    [submit] = [r.body for r in fake.requests if r.path.endswith("/runs/submit")]
    assert submit["environments"] == spec["environments"]
    assert submit["git_source"] == spec["git_source"]
    [task] = submit["tasks"]
    assert "new_cluster" not in task and task["environment_key"] == "foodops"
    assert (
        task["spark_python_task"]["python_file"] == spec["task"]["spark_python_task"]["python_file"]
    )
    # serverless has no env vars: the Pipes bootstrap arrives as task arguments, and the
    # context and messages travel through the configured volume
    assert "--dagster-pipes-context" in task["spark_python_task"]["parameters"]
    volume_requests = [r.path for r in fake.requests if "/api/2.0/fs/" in r.path]
    assert volume_requests and all(spec["volume_path"] in p for p in volume_requests)
    assert DeltaTable(str(lake.lake / RESTAURANTS.path)).to_pyarrow_table().num_rows == 2
    assert token not in proc.stdout + proc.stderr
    assert _files_containing(Path(env["DAGSTER_HOME"]), token) == []


def test_a_rejected_token_fails_clearly_without_echoing_it(lake, tmp_path):
    land_reference(lake)
    wrong = f"dapi{uuid.uuid4().hex}"
    with fake_databricks(
        tmp_path / "databricks", token="dapi-the-right-one", checkout=REPO_ROOT
    ) as fake:
        env = subprocess_env(
            lake,
            FOODOPS_EXECUTION="databricks",
            DATABRICKS_HOST=fake.url,
            DATABRICKS_TOKEN=wrong,
        )
        proc = _materialize(env, "--select", "restaurants,dishes", check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "Invalid access token" in output
    assert wrong not in output
    assert _files_containing(Path(env["DAGSTER_HOME"]), wrong) == []
    assert not [r for r in fake.requests if r.path.endswith("/runs/submit")]


def test_the_databricks_mode_reads_credentials_only_from_the_environment(monkeypatch):
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)
    defs = build_definitions(Settings(execution="databricks"))
    launcher = defs.resources["pipes_launcher"]
    assert (
        isinstance(launcher.token, dg.EnvVar) and launcher.token.env_var_name == "DATABRICKS_TOKEN"
    )
    assert isinstance(launcher.host, dg.EnvVar) and launcher.host.env_var_name == "DATABRICKS_HOST"
    # the Spark assets are Pipes multi-assets with the local assets' keys and checks
    keys = {
        k.to_user_string()
        for a in defs.assets
        if isinstance(a, dg.AssetsDefinition)
        for k in a.keys
    }
    assert {"orders_raw", "orders_valid", "restaurants", "restaurant_daily_sales"} <= keys
    checks = {
        c.name for a in defs.assets if isinstance(a, dg.AssetsDefinition) for c in a.check_specs
    }
    assert "conservation" in checks and "revenue_reconciles_with_silver" in checks


def test_the_job_specs_pin_what_requirements_lock_pins():
    locked = dict(
        line.split("==", 1)
        for line in (REPO_ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line
    )
    locked = {k.lower().replace("_", "-"): v for k, v in locked.items()}
    classic = load_job_spec(JOB_SPEC)
    serverless = load_job_spec(JOB_SPEC.parent / "serverless.yaml")
    pins = [lib["pypi"]["package"] for lib in classic.task["libraries"]]
    pins += serverless.submit["environments"][0]["spec"]["dependencies"]
    for pin in pins:
        name, version = pin.split("==")
        assert locked[name.lower()] == version, pin
    assert not any(p.lower().startswith("pyspark") for p in pins)  # the runtime provides Spark


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["task"].pop("new_cluster"), "needs new_cluster or existing_cluster_id"),
        (lambda d: d["task"]["new_cluster"].update(num_wrkers=2), "no task field"),
        (
            lambda d: d["task"]["new_cluster"]["spark_env_vars"].update(DATABRICKS_TOKEN="x"),
            "credential",
        ),
        (lambda d: d.update(compute="gpu"), "compute 'gpu' is not one of"),
    ],
)
def test_a_bad_job_spec_fails_when_the_code_location_loads(tmp_path, mutate, message):
    doc = yaml.safe_load(JOB_SPEC.read_text())
    mutate(doc)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=message):
        build_definitions(Settings(execution="databricks", databricks_job_spec=str(path)))
