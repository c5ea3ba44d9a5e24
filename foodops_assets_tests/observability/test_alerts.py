"""Alerts reach a real HTTP server on 127.0.0.1: a failed run, a failed blocking check, a late
landing and a late partition (stale assets: test_freshness_e2e.py, with Dagster's daemon)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import dagster as dg
import pytest

from foodops_assets.definitions import build_definitions
from foodops_assets.observability.alerts import (
    CHECK_FAILURE_SENSOR,
    PARTITION_DEADLINE_SENSOR,
    RUN_FAILURE_SENSOR,
    AlertDeliveryError,
    WebhookResource,
)
from foodops_assets_tests.conftest import materialize
from foodops_assets_tests.factories import delivery, line, order
from foodops_assets_tests.processes import webhook_server

TODAY = dt.datetime.now(dt.UTC).date()
D = TODAY - dt.timedelta(days=2)


def tick(defs, name, instance, cursor, url):
    sensor = defs.get_repository_def().get_sensor_def(name)
    webhook = WebhookResource(url=url, webserver_url="http://dagster.example:3000")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"webhook": webhook}
    ) as context:
        data = sensor.evaluate_tick(context)
    return data.cursor


def test_run_failure_and_check_failure_alerts_post_to_the_webhook_and_are_not_retried(
    lake, spark_resource, instance
):
    defs = build_definitions(lake.settings)
    with webhook_server() as (url, received):
        # first ticks start watching from now
        run_cursor = tick(defs, RUN_FAILURE_SENSOR, instance, None, url)
        check_cursor = tick(defs, CHECK_FAILURE_SENSOR, instance, None, url)
        assert received == []

        # a circuit breaker trips: deliveries of orders that were never loaded
        lake.land("deliveries", D, "batch-1.jsonl", [line(delivery(n, day=D)) for n in (1, 2)])
        result = materialize(
            lake,
            spark_resource,
            ["deliveries_raw", "deliveries_valid"],
            partition_key=D.isoformat(),
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        run_id = result.run_id
        # a contract violation (the circuit breaker) fails fast: no retry despite the policy
        failure = result.failure_data_for_node("deliveries_valid").error
        assert failure.cls_name == "Failure" and "Circuit breaker tripped" in failure.message
        assert not [
            e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
        ]

        tick(defs, RUN_FAILURE_SENSOR, instance, run_cursor, url)
        tick(defs, CHECK_FAILURE_SENSOR, instance, check_cursor, url)

    by_kind = {}
    for message in received:
        by_kind.setdefault(message["foodops"]["kind"], []).append(message)
    assert all(m["path"] == "/hooks/foodops" and m["type"] == "application/json" for m in received)

    [run_alert] = by_kind["run_failure"]
    facts = run_alert["foodops"]
    assert facts["run_id"] == run_id
    assert facts["run_url"] == f"http://dagster.example:3000/runs/{run_id}"
    assert facts["assets"] == ["deliveries_raw", "deliveries_valid"]
    assert facts["partition"] == D.isoformat()
    assert "Circuit breaker tripped" in facts["error"] and "known_orders" in facts["error"]
    # Slack-compatible: text and blocks that carry the same facts
    assert "deliveries_valid" in run_alert["text"]
    fields = " ".join(f["text"] for b in run_alert["blocks"] for f in b.get("fields", []))
    assert D.isoformat() in fields and run_id in fields

    [check_alert] = by_kind["check_failure"]
    facts = check_alert["foodops"]
    assert (facts["check"], facts["assets"], facts["partition"]) == (
        "known_orders",
        ["deliveries_valid"],
        D.isoformat(),
    )
    assert facts["blocking"] is True and facts["run_id"] == run_id
    assert facts["run_url"].endswith(f"/runs/{run_id}")


def test_a_late_landing_and_a_late_partition_alert_once_each(lake, instance):
    defs = build_definitions(lake.settings)
    # orders landed and were published (silver and gold) for every recent day but two: one
    # day nothing landed (the producer is late), another landed but was never materialised
    missing, unpublished = TODAY - dt.timedelta(days=3), TODAY - dt.timedelta(days=4)
    for back in range(1, 10):
        day = TODAY - dt.timedelta(days=back)
        if day != missing:
            lake.land("orders", day, "b.jsonl", [line(order(1, day=day))])
        if day not in (missing, unpublished):
            for asset in ("orders_valid", "restaurant_daily_sales", "city_hourly_demand"):
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(asset, partition=day.isoformat())
                )
    with webhook_server() as (url, received):
        cursor = tick(defs, PARTITION_DEADLINE_SENSOR, instance, None, url)
        tick(defs, PARTITION_DEADLINE_SENSOR, instance, cursor, url)  # nothing repeats
    orders = [m["foodops"] for m in received if m["foodops"]["source"] == "orders"]
    assert sorted((m["kind"], m["partition"]) for m in orders) == sorted(
        [
            ("sla_breach", missing.isoformat()),
            ("partition_late", missing.isoformat()),
            ("partition_late", unpublished.isoformat()),
        ]
    )
    landing = next(m for m in orders if m["kind"] == "sla_breach")
    assert landing["assets"] == ["orders_raw"] and "producer is late" in landing["error"]
    assert f"orders/date={missing.isoformat()}" in landing["error"]
    assert landing["deadline"].startswith(f"{missing + dt.timedelta(days=1)}T02:00")
    late = {m["partition"]: m for m in orders if m["kind"] == "partition_late"}
    for day in (missing, unpublished):
        facts = late[day.isoformat()]
        assert facts["assets"] == ["city_hourly_demand", "orders_valid", "restaurant_daily_sales"]
        assert facts["deadline"].startswith(f"{day + dt.timedelta(days=1)}T03:00")
        assert "never materialised" in facts["error"]
    # why: nothing landed, or the files are there and the runs are what to look at
    assert late[missing.isoformat()]["landed_files"] == 0
    assert late[unpublished.isoformat()]["landed_files"] == 1
    # deliveries and reviews landed nothing at all: their producers are reported too
    assert {m["foodops"]["source"] for m in received} == {"orders", "deliveries", "reviews"}


def test_webhook_errors_never_reveal_the_url(lake):
    with webhook_server(status=500) as (url, _):
        secret_url = url + "?token=s3cr3t"
        with pytest.raises(AlertDeliveryError) as info:
            WebhookResource(url=secret_url).post({"text": "x"})
    assert "500" in str(info.value) and "s3cr3t" not in str(info.value)
    # no webhook configured: nothing is sent, nothing fails
    assert WebhookResource().post({"text": "x"}) is False
    settings = dataclasses.replace(lake.settings, alert_webhook_configured=True)
    resources = build_definitions(settings).resources
    assert isinstance(resources["webhook"].url, dg.EnvVar)
