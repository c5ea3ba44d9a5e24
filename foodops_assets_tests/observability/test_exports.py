"""Observability: the numbers the UI plots, metrics in a real Prometheus
Pushgateway, lineage received by a real OpenLineage HTTP endpoint.

One small lake is materialised once for the module (references, then orders
bronze -> silver -> restaurant_daily_sales for one day); the export sensors are
then ticked against it the way the daemon ticks them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from foodops_assets.checks import names
from foodops_assets.definitions import build_definitions
from foodops_assets.observability.exports import (
    OBSERVABILITY_FAILURE_SENSOR,
    OBSERVABILITY_SUCCESS_SENSOR,
)
from foodops_assets.observability.metrics import METRICS
from foodops_assets.settings import Settings
from foodops_assets_tests.conftest import REPO_ROOT, Lake, materialize
from foodops_assets_tests.factories import DAY, land_reference, line, order
from foodops_assets_tests.processes import free_port, stop_process_group

ORDERS_PATH = ["orders_raw", "orders_valid", "restaurant_daily_sales"]
GRAFANA_DASHBOARD = REPO_ROOT / "resources" / "grafana" / "foodops.json"


@dataclasses.dataclass
class Materialised:
    lake: Lake
    instance: dg.DagsterInstance
    cursors: dict[str, str | None]
    run_id: str


def _tick(settings: Settings, name: str, instance, cursor):
    sensor = build_definitions(settings).get_repository_def().get_sensor_def(name)
    with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
        return sensor.evaluate_tick(context)


@pytest.fixture(scope="module")
def materialised(tmp_path_factory, spark_resource):
    lake = Lake.under(tmp_path_factory.mktemp("observability"))
    land_reference(lake)
    lake.land(
        "orders",
        DAY,
        "batch-0001.jsonl",
        [line(order(n)) for n in range(1, 21)]
        + [
            line(order(101, price=0)),  # valid_price
            line(order(102, price=-1, quantity=0)),  # valid_price, valid_quantity
            line(order(103, coupon_code="SAVE10")),  # a field outside the contract: WARN
        ],
    )
    with dg.instance_for_test() as instance:
        # the daemon's first ticks start watching from "now"
        cursors = {
            name: _tick(lake.settings, name, instance, None).cursor
            for name in (OBSERVABILITY_SUCCESS_SENSOR, OBSERVABILITY_FAILURE_SENSOR)
        }
        materialize(lake, spark_resource, ["restaurants", "dishes"], instance=instance)
        result = materialize(
            lake, spark_resource, ORDERS_PATH, partition_key=DAY.isoformat(), instance=instance
        )
        assert result.success
        yield Materialised(lake, instance, cursors, result.run_id)


def test_materialisations_carry_numeric_metadata_the_ui_plots(materialised):
    instance = materialised.instance

    def latest(asset: str) -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        return event.asset_materialization.metadata

    silver = latest("orders_valid")
    assert silver["dagster/row_count"].value == 21  # the rescued line is kept
    assert isinstance(silver["dlq_rate"].value, float) and silver["dlq_rows"].value == 2
    assert silver["dlq_rule/valid_price"].value == 2
    assert silver["dlq_rule/valid_quantity"].value == 1
    assert isinstance(silver["delta_version"].value, int)
    bronze = latest("orders_raw")
    assert isinstance(bronze["landing_lag_seconds"].value, float)
    assert bronze["landing_files"].value == [
        str(materialised.lake.landing / "orders" / f"date={DAY}" / "batch-0001.jsonl")
    ]


@contextlib.contextmanager
def lineage_endpoint():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "event": json.loads(body)})
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


def test_openlineage_events_trace_restaurant_daily_sales_back_to_the_landing_files(
    materialised,
):
    lake = materialised.lake
    with lineage_endpoint() as (url, received):
        settings = dataclasses.replace(lake.settings, openlineage_url=url)
        _tick(
            settings,
            OBSERVABILITY_SUCCESS_SENSOR,
            materialised.instance,
            materialised.cursors[OBSERVABILITY_SUCCESS_SENSOR],
        )
    assert {r["path"] for r in received} == {"/api/v1/lineage"}
    events = [r["event"] for r in received]
    by_job: dict[str, list[dict]] = {}
    for event in events:
        by_job.setdefault(event["job"]["name"], []).append(event)
    # orders_valid also writes its rows of the dead-letter queue
    assert set(by_job) == {"restaurants", "dishes", "dead_letter_queue", *ORDERS_PATH}
    for job, job_events in by_job.items():
        assert [e["eventType"] for e in job_events] == ["START", "COMPLETE"], job
        assert job_events[0]["run"]["runId"] == job_events[1]["run"]["runId"]
    lake_ns = lake.lake.resolve().as_uri()
    landing_ns = lake.landing.resolve().as_uri()

    def complete(output: str) -> dict:
        [event] = [
            e
            for e in events
            if e["eventType"] == "COMPLETE" and [o["name"] for o in e["outputs"]] == [output]
        ]
        assert event["outputs"][0]["namespace"] == lake_ns
        return event

    # walk the lineage back: gold <- silver <- bronze <- landing files
    gold = complete("gold/restaurant_daily_sales")
    assert gold["run"]["facets"]["parent"]["run"]["runId"] == materialised.run_id
    assert "silver/orders_valid" in {i["name"] for i in gold["inputs"]}
    columns = gold["outputs"][0]["facets"]["columnLineage"]["fields"]

    def inputs_of(column: str) -> set:
        return {(f["namespace"], f["name"], f["field"]) for f in columns[column]["inputFields"]}

    assert inputs_of("gross_revenue") == {
        (lake_ns, "silver/orders_valid", c) for c in ("quantity", "price", "status")
    }
    assert inputs_of("restaurant_name") == {(lake_ns, "bronze/restaurants", "name")}
    silver = complete("silver/orders_valid")
    assert "bronze/orders_raw" in {i["name"] for i in silver["inputs"]}
    schema = {f["name"]: f["type"] for f in silver["outputs"][0]["facets"]["schema"]["fields"]}
    assert schema["order_id"] == "string" and "partition_date" in schema
    bronze = complete("bronze/orders_raw")
    assert [(i["namespace"], i["name"]) for i in bronze["inputs"]] == [
        (landing_ns, f"orders/date={DAY}/batch-0001.jsonl")
    ]
    assert [(i["namespace"], i["name"]) for i in complete("bronze/restaurants")["inputs"]] == [
        (landing_ns, "restaurants/snapshot-20261101.jsonl")
    ]


@contextlib.contextmanager
def pushgateway(log_dir: Path):
    """Debian's prometheus-pushgateway on a free loopback port, stopped by PID."""
    port = free_port()
    with open(log_dir / "pushgateway.log", "w") as out:
        proc = subprocess.Popen(
            ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "pushgateway did not start"
            time.sleep(0.2)
        yield url
    finally:
        stop_process_group(proc, grace=10)


def _series(url: str) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("foodops_")
    }


def test_metrics_round_trip_through_a_real_pushgateway(materialised, tmp_path):
    with pushgateway(tmp_path) as url:
        settings = dataclasses.replace(materialised.lake.settings, prometheus_pushgateway_url=url)
        _tick(
            settings,
            OBSERVABILITY_SUCCESS_SENSOR,
            materialised.instance,
            materialised.cursors[OBSERVABILITY_SUCCESS_SENSOR],
        )
        series = _series(url)

    def value(name: str, asset: str, **labels) -> float:
        key = (
            name,
            frozenset({"job": "foodops", "asset": asset, "instance": "", **labels}.items()),
        )
        if key not in series:
            key = (name, frozenset({"job": "foodops", "asset": asset, **labels}.items()))
        return series[key]

    for asset in ("restaurants", "dishes", *ORDERS_PATH):
        assert value("foodops_asset_duration_seconds", asset) > 0
        assert value("foodops_asset_success", asset) == 1
    assert value("foodops_asset_rows_in", "orders_raw") == 23
    assert value("foodops_asset_rows_out", "orders_raw") == 23
    assert value("foodops_asset_rows_in", "orders_valid") == 23
    assert value("foodops_asset_rows_out", "orders_valid") == 21
    assert value("foodops_dlq_rate", "orders_valid") == pytest.approx(2 / 23)
    assert value("foodops_dlq_rule_rows", "orders_valid", rule="valid_price") == 2
    assert value("foodops_dlq_rule_rows", "orders_valid", rule="valid_quantity") == 1
    assert value("foodops_dlq_rule_rate", "orders_valid", rule="valid_price") == pytest.approx(
        2 / 23
    )
    # the field outside the contract is a WARN of the landing schema check
    assert value("foodops_check_failures", "orders_raw", check=names.LANDING_SCHEMA) == 1
    assert 0 <= value("foodops_landing_file_lag_seconds", "orders_raw") < 3600


def test_grafana_dashboard_plots_every_exported_metric():
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {m for expr in exprs for m in re.findall(r"\bfoodops_[a-z0-9_]+", expr)}
    assert used == set(METRICS)


def test_a_failed_step_emits_fail_with_its_error_to_a_lineage_file(materialised, spark_resource):
    missing_day = "2026-11-25"  # nothing landed: bronze fails fast with a message
    result = materialize(
        materialised.lake,
        spark_resource,
        ["orders_raw"],
        partition_key=missing_day,
        instance=materialised.instance,
        raise_on_error=False,
    )
    assert not result.success
    events_file = materialised.lake.root / "lineage" / "events.jsonl"
    settings = dataclasses.replace(materialised.lake.settings, openlineage_url=events_file.as_uri())
    _tick(
        settings,
        OBSERVABILITY_FAILURE_SENSOR,
        materialised.instance,
        materialised.cursors[OBSERVABILITY_FAILURE_SENSOR],
    )
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("orders_raw", "START"),
        ("orders_raw", "FAIL"),
    ]
    error = events[1]["run"]["facets"]["errorMessage"]["message"]
    assert missing_day in error and events[1]["outputs"] == []
