import socket
import time

import pytest

from foodops_assets.lakehouse.spark import SparkConnectUnreachable, SparkResource
from foodops_assets.settings import ConfigError, Settings


def test_unset_environment_gives_the_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.landing_root == str(tmp_path / ".foodops" / "landing")
    assert settings.lake_root == str(tmp_path / ".foodops" / "lake")
    assert settings.spark_remote is None
    assert settings.partitions_start == "2025-01-01"


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
