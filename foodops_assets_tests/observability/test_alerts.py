"""Alerts reach a real HTTP server on 127.0.0.1: a failed run, a failed blocking check, an SLA
breach."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from foodops_assets.definitions import build_definitions
from foodops_assets.observability.alerts import (
    CHECK_FAILURE_SENSOR,
    RUN_FAILURE_SENSOR,
    SLA_SENSOR,
    AlertDeliveryError,
    WebhookResource,
)
from foodops_assets_tests.conftest import materialize
from foodops_assets_tests.factories import delivery, line, order

TODAY = dt.datetime.now(dt.UTC).date()
D = TODAY - dt.timedelta(days=2)


@contextlib.contextmanager
def webhook_server(status: int = 200):
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(
                {"path": self.path, "type": self.headers["Content-Type"], **json.loads(body)}
            )
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/foodops", received
    finally:
        server.shutdown()
        server.server_close()


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


def test_sla_breach_alerts_once_per_partition(lake, instance):
    defs = build_definitions(lake.settings)
    # orders landed for every recent day but one, whose SLA (120 min after its day) is long gone
    missing = TODAY - dt.timedelta(days=3)
    for back in range(1, 8):
        day = TODAY - dt.timedelta(days=back)
        if day != missing:
            lake.land("orders", day, "b.jsonl", [line(order(1, day=day))])
    with webhook_server() as (url, received):
        cursor = tick(defs, SLA_SENSOR, instance, None, url)
        tick(defs, SLA_SENSOR, instance, cursor, url)  # the next tick does not repeat it
    assert sorted(m["foodops"]["partition"] for m in received) == [missing.isoformat()]
    [alert] = received
    assert alert["foodops"]["kind"] == "sla_breach" and alert["foodops"]["assets"] == ["orders_raw"]
    assert f"orders/date={missing.isoformat()}" in alert["foodops"]["error"]


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
