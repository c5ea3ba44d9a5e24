"""resources/dagster-prod.yaml: a production instance Dagster accepts.

Here the file is validated the way Dagster loads it (the instance schema), and
each configured class (the Postgres storage, the queued run coordinator, the
compute log manager, the run launcher) validates and resolves its own config,
environment variables included; test_production_instance_e2e.py runs the
platform on it against a real PostgreSQL server.
"""

import shutil

import pytest
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes import class_from_code_pointer
from dagster_postgres import DagsterPostgresStorage

from foodops_assets.automation import lanes
from foodops_assets_tests.conftest import REPO_ROOT

PROD = REPO_ROOT / "resources" / "dagster-prod.yaml"
ENV = {
    "DAGSTER_PG_HOST": "pg.internal",
    "DAGSTER_PG_PORT": "5433",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "from-the-secret-store",
    "DAGSTER_COMPUTE_LOG_DIR": "/var/dagster/compute_logs",
}


@pytest.fixture
def prod_config(tmp_path, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    shutil.copy(PROD, tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    return config


def _resolved(section: dict) -> dict:
    cls = class_from_code_pointer(section["module"], section["class"])
    result = process_config(cls.config_type(), section.get("config") or {})
    assert result.success, result.errors
    return result.value


def test_the_production_instance_loads_with_postgres_and_a_bounded_run_queue(prod_config):
    storage = process_config(
        DagsterPostgresStorage.config_type(), prod_config["storage"]["postgres"]
    )
    assert storage.success, storage.errors
    db = storage.value["postgres_db"]
    assert (db["hostname"], db["port"], db["password"]) == (
        "pg.internal",
        5433,
        "from-the-secret-store",
    )

    queue = _resolved(prod_config["run_coordinator"])
    assert queue["max_concurrent_runs"] == 6
    limits = {limit["key"]: limit for limit in queue["tag_concurrency_limits"]}
    # one run per lane (the tables of one source) and partition at a time
    # (automation/test_lanes.py: what the queue then starts)
    for lane in lanes.LANES:
        assert limits[lanes.lane_tag(lane)]["limit"] == 1
        assert limits[lanes.lane_tag(lane)]["value"] == {"applyLimitPerUniqueValue": True}
    assert "dagster/partition" not in limits  # an orders file never waits for deliveries
    assert _resolved(prod_config["compute_logs"])["base_dir"] == ENV["DAGSTER_COMPUTE_LOG_DIR"]
    _resolved(prod_config["run_launcher"])
    assert prod_config["run_monitoring"]["enabled"] is True


def test_the_production_instance_takes_every_credential_from_the_environment(prod_config):
    db = prod_config["storage"]["postgres"]["postgres_db"]
    for key in ("hostname", "port", "db_name", "username", "password"):
        assert set(db[key]) == {"env"} and db[key]["env"].startswith("DAGSTER_PG_"), key
    assert ENV["DAGSTER_PG_PASSWORD"] not in PROD.read_text()


def test_a_missing_credential_is_named(prod_config, monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    result = process_config(
        DagsterPostgresStorage.config_type(), prod_config["storage"]["postgres"]
    )
    assert not result.success
    assert "DAGSTER_PG_PASSWORD" in str(result.errors)


def test_the_local_instance_runs_one_run_per_lane_and_partition_and_times_runs_out(tmp_path):
    import dagster as dg

    shutil.copy(REPO_ROOT / "resources" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, lanes.LaneRunCoordinator)
        queue = instance.run_coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs == 2  # different lanes or partitions side by side
        assert list(queue.tag_concurrency_limits) == lanes.tag_concurrency_limits()
        assert instance.run_monitoring_enabled
        settings = instance.run_monitoring_settings
        assert settings["max_runtime_seconds"] == 21600 and settings["start_timeout_seconds"] == 300
