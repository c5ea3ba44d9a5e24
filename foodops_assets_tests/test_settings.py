import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from foodops_assets.lakehouse.spark import SparkConnectUnreachable, SparkResource
from foodops_assets.settings import ConfigError, Settings
from foodops_assets_tests.conftest import REPO_ROOT, subprocess_env

BIN = Path(sys.executable).parent


def test_unset_environment_gives_the_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.landing_root == str(tmp_path / ".foodops" / "landing")
    assert settings.lake_root == str(tmp_path / ".foodops" / "lake")
    assert settings.spark_remote is None
    assert settings.partitions_start == "2025-01-01"
    # react to a landed file within a daemon loop (5 s), a settle of 1 s
    assert (settings.arrival_interval_seconds, settings.landing_settle_seconds) == (1, 1.0)
    assert (
        Settings.from_env({"FOODOPS_ARRIVAL_INTERVAL_SECONDS": "30"}).arrival_interval_seconds == 30
    )


def test_cluster_and_databricks_are_chosen_by_configuration():
    settings = Settings.from_env(
        {
            "FOODOPS_SPARK_REMOTE": "sc://spark.internal:15002",
            "FOODOPS_DELTA_WRITER": "delta_spark",
            "FOODOPS_EXECUTION": "databricks",
            "FOODOPS_DATABRICKS_JOB_SPEC": "/etc/foodops/job.yaml",
        }
    )
    assert (settings.spark_remote, settings.delta_writer, settings.execution) == (
        "sc://spark.internal:15002",
        "delta_spark",
        "databricks",
    )
    assert settings.databricks_job_spec == "/etc/foodops/job.yaml"
    assert (Settings.from_env({}).delta_writer, Settings.from_env({}).execution) == (
        "auto",
        "local",
    )


def test_roots_can_point_anywhere_and_uris_are_kept():
    settings = Settings.from_env(
        {"FOODOPS_LANDING_ROOT": "/data/landing", "FOODOPS_LAKE_ROOT": "s3://bucket/lake"}
    )
    assert (settings.landing_root, settings.lake_root) == ("/data/landing", "s3://bucket/lake")


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"FOODOPS_PARTITIONS_START": "01/01/2025"},
            "FOODOPS_PARTITIONS_START='01/01/2025' is not a date",
        ),
        ({"FOODOPS_SPARK_REMOTE": "localhost:15002"}, "use sc://host:port"),
        (
            {"FOODOPS_LAKE_ROOT": "ftp://host/lake"},
            "FOODOPS_LAKE_ROOT='ftp://host/lake' uses an unsupported scheme",
        ),
        (
            {"FOODOPS_DELTA_WRITER": "parquet"},
            "FOODOPS_DELTA_WRITER='parquet' is not one of auto, arrow, spark_files, delta_spark",
        ),
        (
            {"FOODOPS_EXECUTION": "cloud"},
            "FOODOPS_EXECUTION='cloud' is not one of local, databricks, pipes_subprocess",
        ),
        (
            {"FOODOPS_DAILY_SCHEDULE_CRON": "every day at 2"},
            "FOODOPS_DAILY_SCHEDULE_CRON='every day at 2' is not a cron expression",
        ),
        ({"FOODOPS_AUTOMATION": "yes"}, "FOODOPS_AUTOMATION='yes' is not one of on, off"),
        ({"FOODOPS_SENSOR_INTERVAL_SECONDS": "soon"}, "FOODOPS_SENSOR_INTERVAL_SECONDS='soon'"),
        (
            {"FOODOPS_ARRIVAL_INTERVAL_SECONDS": "0"},
            "FOODOPS_ARRIVAL_INTERVAL_SECONDS=0 must be at least 1",
        ),
        ({"FOODOPS_RUN_TIMEOUT_SECONDS": "0"}, "FOODOPS_RUN_TIMEOUT_SECONDS=0 must be at least 1"),
        ({"FOODOPS_WEBSERVER_URL": "dagster:3000"}, "FOODOPS_WEBSERVER_URL='dagster:3000'"),
        (
            {"FOODOPS_PROMETHEUS_PUSHGATEWAY_URL": "pushgateway:9091"},
            "FOODOPS_PROMETHEUS_PUSHGATEWAY_URL='pushgateway:9091' is not a URL",
        ),
        (
            {"FOODOPS_MAINTENANCE_CRON": "nightly"},
            "FOODOPS_MAINTENANCE_CRON='nightly' is not a cron expression",
        ),
        (
            {"FOODOPS_ML_CRON": "after the day"},
            "FOODOPS_ML_CRON='after the day' is not a cron expression",
        ),
        (
            {"FOODOPS_VACUUM_RETENTION_HOURS": "24"},
            "FOODOPS_VACUUM_RETENTION_HOURS=24 is shorter than the rollback window "
            "(FOODOPS_ROLLBACK_WINDOW_DAYS=7, 168 hours)",
        ),
        (
            {"FOODOPS_ROLLBACK_WINDOW_DAYS": "14", "FOODOPS_VACUUM_RETENTION_HOURS": "168"},
            "FOODOPS_VACUUM_RETENTION_HOURS=168 is shorter than the rollback window "
            "(FOODOPS_ROLLBACK_WINDOW_DAYS=14, 336 hours)",
        ),
        (
            {"FOODOPS_ROLLBACK_WINDOW_DAYS": "0"},
            "FOODOPS_ROLLBACK_WINDOW_DAYS=0 must be at least 1",
        ),
        (
            {"FOODOPS_OPENLINEAGE_URL": "/tmp/events.jsonl"},
            "FOODOPS_OPENLINEAGE_URL='/tmp/events.jsonl' is not a URL starting with http:// or "
            "https:// or file://",
        ),
    ],
)
def test_a_bad_config_value_names_the_variable_to_fix(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_an_unreachable_spark_connect_server_fails_fast_with_the_url():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    resource = SparkResource(remote=f"sc://127.0.0.1:{port}", connect_timeout_seconds=3)
    started = time.monotonic()
    with pytest.raises(SparkConnectUnreachable, match=f"127.0.0.1:{port}.*FOODOPS_SPARK_REMOTE"):
        _ = resource.spark_session
    assert time.monotonic() - started < 30  # bounded, not a hang


@pytest.fixture
def black_hole_port():
    """A port that accepts TCP connections and then never says a word (a hung
    server, a proxy, the wrong service): a bare connect check would pass."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    server.close()


def test_a_server_that_accepts_but_never_answers_fails_in_bounded_time(black_hole_port):
    resource = SparkResource(
        remote=f"sc://127.0.0.1:{black_hole_port}/;token=s3cr3t-value", connect_timeout_seconds=3
    )
    started = time.monotonic()
    with pytest.raises(SparkConnectUnreachable) as raised:
        _ = resource.spark_session
    assert time.monotonic() - started < 30  # bounded, not a hang
    message = str(raised.value)
    assert f"127.0.0.1:{black_hole_port}" in message and "did not answer within 3s" in message
    assert "s3cr3t-value" not in message  # URL parameters (tokens) are never echoed


@pytest.mark.e2e
def test_the_cli_fails_with_the_connect_url_when_nothing_answers(lake, black_hole_port):
    lake.land("restaurants", None, "snapshot-1.jsonl", [{"restaurant_id": "r-1"}])
    env = subprocess_env(lake, FOODOPS_SPARK_REMOTE=f"sc://127.0.0.1:{black_hole_port}")
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "foodops_assets",
            "--select",
            "restaurants",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert f"Spark Connect server 127.0.0.1:{black_hole_port}" in output
    assert "did not answer within 10s" in output and "unset FOODOPS_SPARK_REMOTE" in output
    assert time.monotonic() - started < 240
    assert not (lake.lake / "bronze" / "restaurants").exists()  # nothing was written
