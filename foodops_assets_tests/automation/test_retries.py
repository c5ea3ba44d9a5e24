"""Retry policies on the real assets: transient failures retried, the rest fail fast."""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
from pathlib import Path

import dagster as dg
import pytest

from foodops_assets.definitions import build_definitions
from foodops_assets.lakehouse import tables
from foodops_assets.lakehouse.resource import LakehouseResource
from foodops_assets.lakehouse.spark import SparkConnectUnreachable
from foodops_assets_tests.factories import line, order

D = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)


class FlakyLakehouse(LakehouseResource):
    """The real lakehouse, whose landing zone fails once while ``fail_marker`` exists
    (fault injection: a disk or network hiccup, or a bug)."""

    fail_marker: str
    error: str = "io"

    @property
    def landing(self):
        marker = Path(self.fail_marker)
        if marker.exists():
            marker.unlink()
            if self.error == "io":
                raise OSError(errno.EIO, "Input/output error (injected)")
            raise KeyError("injected bug")
        return super().landing


def run(lake, spark_resource, selection, instance, marker=None, error="io"):
    settings = dataclasses.replace(lake.settings, retry_delay_seconds=0.2)
    assets = [a for a in build_definitions(settings).assets if isinstance(a, dg.AssetsDefinition)]
    lakehouse = FlakyLakehouse(
        landing_root=str(lake.landing),
        lake_root=str(lake.lake),
        fail_marker=str(marker or lake.root / "no-fault"),
        error=error,
    )
    return dg.materialize(
        assets,
        selection=selection,
        partition_key=D.isoformat(),
        resources={"spark": spark_resource, "lakehouse": lakehouse},
        instance=instance,
        raise_on_error=False,
    )


def retries(result) -> int:
    return sum(
        1 for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    )


def test_every_asset_step_has_a_backoff_retry_policy(lake):
    for asset in build_definitions(lake.settings).assets:
        if isinstance(asset, dg.AssetsDefinition):
            policy = asset.op.retry_policy
            assert policy.max_retries == 3, asset.key
            assert (policy.backoff, policy.jitter) == (dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)


def test_a_transient_failure_is_retried_and_a_bug_fails_fast(lake, spark_resource, spark, instance):
    lake.land("orders", D, "batch-1.jsonl", [line(order(n, day=D)) for n in range(1, 11)])

    # an I/O error reading the landing zone: retried once, then the run succeeds
    marker = lake.root / "fail-once"
    marker.touch()
    result = run(lake, spark_resource, ["orders_raw"], instance, marker)
    assert result.success and retries(result) == 1 and not marker.exists()
    assert lake.read(spark, tables.ORDERS_RAW).count() == 10

    # a bug (a KeyError) is not retried, and the failure names it
    marker.touch()
    result = run(lake, spark_resource, ["orders_raw"], instance, marker, error="bug")
    assert not result.success and retries(result) == 0
    message = result.failure_data_for_node("orders_raw").error.message
    assert "KeyError" in message and "not retried" in message
    # (a contract violation, a tripped circuit breaker, is not retried either: asserted on
    # the failed run of observability/test_alerts.py, which shares its cost)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (OSError(errno.EIO, "I/O error"), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (FileNotFoundError("landing"), False),
        (PermissionError(), False),
        (ValueError("bad"), False),
        (SparkConnectUnreachable("sc://nowhere:15002 did not answer"), False),
        (type("Py4JNetworkError", (Exception,), {})("Answer from Java side is empty"), True),
    ],
)
def test_what_counts_as_transient(exc, transient):
    from foodops_assets.automation.retries import is_transient

    assert is_transient(exc) is transient
