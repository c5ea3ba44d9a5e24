"""Dagster's freshness daemon judges the contracts' deadlines, the UI shows it, alerts follow.

One ``dagster dev`` (webserver + daemon, as ``make ui`` starts it) on a real instance:
``restaurant_daily_sales`` was last materialised two days ago, so its policy (materialised
since the day ended, by 03:00 UTC) fails; the daemon flips its state, the webserver shows it
as the UI does, and the freshness sensor posts the failure to a real HTTP server. A new
materialisation flips it back and the recovery is posted too.
"""

from __future__ import annotations

import datetime as dt
import time

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time  # Dagster's own clock for tests

from foodops_assets_tests.conftest import subprocess_env
from foodops_assets_tests.processes import dagster_dev, webhook_server

pytestmark = pytest.mark.e2e

STALE = "restaurant_daily_sales"
WAIT_SECONDS = 240

QUERY = """
query ($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    freshnessStatusInfo { freshnessStatus }
    internalFreshnessPolicy {
      ... on CronFreshnessPolicy { deadlineCron lowerBoundDeltaSeconds timezone }
    }
  }
}
"""


def _freshness(dev) -> dict[str, dict]:
    keys = [{"path": [STALE]}, {"path": ["orders_valid"]}, {"path": ["orders_raw"]}]
    nodes = dev.graphql(QUERY, {"keys": keys})["assetNodes"]
    return {n["assetKey"]["path"][0]: n for n in nodes}


def _status(dev, asset: str = STALE) -> str | None:
    info = _freshness(dev)[asset]["freshnessStatusInfo"]
    return info["freshnessStatus"] if info else None


def _alerts(received, kind: str) -> list[dict]:
    return [m["foodops"] for m in received if m["foodops"]["kind"] == kind]


def _wait(what, probe, dev, received):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert dev.proc.poll() is None, dev.log_tail()
        found = probe()
        if found:
            return found
        time.sleep(2)
    raise AssertionError(
        f"no {what} within {WAIT_SECONDS}s; alerts: {[m['foodops']['kind'] for m in received]}\n"
        + dev.log_tail()
    )


def test_the_daemon_flips_freshness_the_ui_shows_it_and_the_webhook_hears_it(lake):
    with webhook_server() as (url, received):
        env = subprocess_env(
            lake,
            FOODOPS_ALERT_WEBHOOK_URL=url,
            FOODOPS_SENSOR_INTERVAL_SECONDS="2",
            FRESHNESS_DAEMON_INTERVAL_SECONDS="2",
        )
        two_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            with freeze_time(two_days_ago):
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(STALE, partition=two_days_ago.date().isoformat())
                )

            with dagster_dev(env, lake.root) as dev:
                _wait("DEGRADED in the UI", lambda: _status(dev) == "DEGRADED", dev, received)
                nodes = _freshness(dev)
                [failure] = _wait(
                    "a freshness alert",
                    lambda: _alerts(received, "freshness_failure"),
                    dev,
                    received,
                )

                # fresh data: the daemon flips it back, and the recovery is posted
                yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(STALE, partition=yesterday.isoformat())
                )
                _wait("HEALTHY in the UI", lambda: _status(dev) == "HEALTHY", dev, received)
                [recovered] = _wait(
                    "a recovery alert",
                    lambda: _alerts(received, "freshness_recovered"),
                    dev,
                    received,
                )

    # the policy the UI shows is the orders contract's: by 03:00 UTC, since the day ended
    assert nodes[STALE]["internalFreshnessPolicy"] == {
        "deadlineCron": "0 3 * * *",
        "lowerBoundDeltaSeconds": 3 * 3600,
        "timezone": "UTC",
    }
    # never materialised: unknown, not failing (and not alerted); bronze has no policy
    assert nodes["orders_valid"]["freshnessStatusInfo"]["freshnessStatus"] == "UNKNOWN"
    assert nodes["orders_raw"]["freshnessStatusInfo"] is None
    assert failure["assets"] == [STALE]
    assert failure["freshness_state"] == "FAIL" and failure["deadline_cron"] == "0 3 * * *"
    assert f"last materialised {two_days_ago:%Y-%m-%d}" in failure["error"]
    assert "by 03:00 UTC" in failure["error"] and "latency SLA (120 min" in failure["error"]
    assert failure["asset_url"].endswith(f"/assets/{STALE}")
    assert recovered["assets"] == [STALE] and recovered["previous_state"] == "FAIL"
    kinds = [m["foodops"]["kind"] for m in received]
    assert kinds.count("freshness_failure") == 1 and kinds.count("freshness_recovered") == 1
