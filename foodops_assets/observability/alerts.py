"""Alerts: run failures, failed checks and SLA breaches, posted to a webhook.

The message is Slack-compatible JSON (``text`` plus ``blocks``; any incoming
webhook that takes Slack's format shows it) and carries the same facts in a
machine-readable ``foodops`` object: kind, run link, asset, partition, error.
The webhook URL comes only from ``FOODOPS_ALERT_WEBHOOK_URL`` through
``dg.EnvVar`` (it is a secret: it is never logged or put in a message); when
it is unset the alert sensors log what they would have sent.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

import dagster as dg

from ..automation.sensors import default_status
from ..contracts import Contract
from ..lakehouse.arrivals import DATE_DIR_PREFIX
from ..lakehouse.landing import LandingZone, is_complete_landing_file
from ..settings import Settings

RUN_FAILURE_SENSOR = "foodops_run_failure_alert"
CHECK_FAILURE_SENSOR = "foodops_check_failure_alert"
SLA_SENSOR = "foodops_orders_sla_alert"
SLA_LOOKBACK_DAYS = 7


class AlertDeliveryError(RuntimeError):
    """The webhook did not accept the alert (the message never names the URL)."""


class WebhookResource(dg.ConfigurableResource):
    """Posts alerts to a Slack-compatible incoming webhook."""

    url: str | None = None  # secret: from FOODOPS_ALERT_WEBHOOK_URL through dg.EnvVar
    webserver_url: str = "http://127.0.0.1:3000"
    timeout_seconds: float = 10.0

    def run_url(self, run_id: str) -> str:
        return f"{self.webserver_url.rstrip('/')}/runs/{run_id}"

    def post(self, message: dict[str, Any]) -> bool:
        """Send ``message``; False when no webhook is configured."""
        if not self.url:
            return False
        request = urllib.request.Request(
            self.url,
            data=json.dumps(message).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise AlertDeliveryError(
                f"the alert webhook answered HTTP {exc.code} (FOODOPS_ALERT_WEBHOOK_URL)"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AlertDeliveryError(
                f"the alert webhook could not be reached: {type(reason).__name__} "
                "(check FOODOPS_ALERT_WEBHOOK_URL)"
            ) from None
        return True


def alert_message(
    kind: str,
    title: str,
    *,
    error: str,
    assets: list[str],
    partition: str | None,
    run_id: str | None = None,
    run_url: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Slack-compatible message (text + blocks) with the facts also as JSON."""
    asset_text = ", ".join(assets) or "-"
    fields = [
        {"type": "mrkdwn", "text": f"*Asset*\n{asset_text}"},
        {"type": "mrkdwn", "text": f"*Partition*\n{partition or '-'}"},
    ]
    if run_url:
        fields.append({"type": "mrkdwn", "text": f"*Run*\n<{run_url}|{run_id}>"})
    short_error = error if len(error) <= 2500 else error[:2500] + " ..."
    return {
        "text": f":rotating_light: FoodOps {title}: {asset_text} {partition or ''} — {short_error[:300]}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"FoodOps {title}"}},
            {"type": "section", "fields": fields},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{short_error}```"}},
        ],
        "foodops": {
            "kind": kind,
            "assets": assets,
            "partition": partition,
            "run_id": run_id,
            "run_url": run_url,
            "error": short_error,
            **(extra or {}),
        },
    }


def _send(context, webhook: WebhookResource, message: dict) -> None:
    if webhook.post(message):
        context.log.info(f"alert sent: {message['text'][:200]}")
    else:
        context.log.warning(
            f"FOODOPS_ALERT_WEBHOOK_URL is not set; alert not sent: {message['text'][:500]}"
        )


def _run_partition(tags: dict[str, str]) -> str | None:
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = (
        tags.get("dagster/asset_partition_range_start"),
        tags.get("dagster/asset_partition_range_end"),
    )
    return f"{start}...{end}" if start and end else None


def run_failure_alert(settings: Settings) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        description="Posts every failed run (asset, partition, error, run link) to the alert webhook.",
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=default_status(settings),
    )
    def _alert(context: dg.RunFailureSensorContext, webhook: WebhookResource) -> None:
        run = context.dagster_run
        errors = []
        for event in context.get_step_failure_events():
            data = event.step_failure_data
            message = data.error.message.strip() if data and data.error else event.message
            errors.append(f"{event.step_key}: {message}")
        error = "\n".join(errors) or context.failure_event.message or "run failed"
        assets = sorted(
            {k.to_user_string() for k in (run.asset_selection or [])}
            | {
                r.event_log_entry.dagster_event.asset_key.to_user_string()
                for r in context.instance.get_records_for_run(
                    run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
                ).records
            }
        )
        _send(
            context,
            webhook,
            alert_message(
                "run_failure",
                "run failed",
                error=error,
                assets=assets,
                partition=_run_partition(dict(run.tags)),
                run_id=run.run_id,
                run_url=webhook.run_url(run.run_id),
                extra={"job": run.job_name},
            ),
        )

    return _alert


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]


def check_failure_alert(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name=CHECK_FAILURE_SENSOR,
        description=(
            "Posts every failed asset check of severity ERROR (circuit breakers) of a finished "
            "run to the alert webhook, with the check, asset, partition and run link."
        ),
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=default_status(settings),
    )
    def _alert(context: dg.SensorEvaluationContext, webhook: WebhookResource):
        # cursor: the update time of the newest finished run looked at, and the runs seen
        # around it (run-scoped reads: the SQLite event log is sharded per run)
        state = json.loads(context.cursor) if context.cursor else None
        if state is None:
            context.update_cursor(json.dumps({"after": time.time(), "seen": []}))
            return dg.SkipReason("started watching the check results of finished runs")
        seen = list(state["seen"])
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(
                statuses=FINISHED,
                updated_after=dt.datetime.fromtimestamp(state["after"] - 1, dt.UTC),
            ),
            order_by="update_timestamp",
            ascending=True,
            limit=100,
        )
        after, sent = state["after"], 0
        for record in records:
            run_id = record.dagster_run.run_id
            after = max(after, record.update_timestamp.timestamp())
            if run_id in seen:
                continue
            seen.append(run_id)
            for event in context.instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ).records:
                evaluation = event.event_log_entry.dagster_event.event_specific_data
                if evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
                    continue
                check = evaluation.check_name
                _send(
                    context,
                    webhook,
                    alert_message(
                        "check_failure",
                        f"check failed: {check}",
                        error=evaluation.description or f"{check} failed",
                        assets=[evaluation.asset_key.to_user_string()],
                        partition=evaluation.partition
                        or _run_partition(dict(record.dagster_run.tags)),
                        run_id=run_id,
                        run_url=webhook.run_url(run_id),
                        extra={"check": check, "blocking": bool(evaluation.blocking)},
                    ),
                )
                sent += 1
        context.update_cursor(json.dumps({"after": after, "seen": seen[-200:]}))
        if not sent:
            return dg.SkipReason("no failed checks")
        return None

    return _alert


def orders_sla_alert(
    settings: Settings, contract: Contract, partitions_def: dg.TimeWindowPartitionsDefinition
) -> dg.SensorDefinition:
    """No orders landed for a day within the contract's SLA after the day ended."""
    freshness = dt.timedelta(minutes=int(contract.sla.get("freshness_minutes", 120)))
    source = contract.name

    @dg.sensor(
        name=SLA_SENSOR,
        description=(
            f"Alerts when a day's {source} partition has no landed file "
            f"{int(freshness.total_seconds() // 60)} minutes after the day ended (contract SLA)."
        ),
        minimum_interval_seconds=max(settings.sensor_interval_seconds, 60),
        default_status=default_status(settings),
    )
    def _alert(context: dg.SensorEvaluationContext, webhook: WebhookResource):
        now = dt.datetime.now(dt.UTC)
        alerted: list[str] = json.loads(context.cursor) if context.cursor else []
        zone = LandingZone(settings.landing_root)
        keys = partitions_def.get_partition_keys(current_time=now)[-SLA_LOOKBACK_DAYS:]
        new_alerts = []
        for key in keys:
            day = dt.date.fromisoformat(key)
            deadline = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
            deadline += freshness
            if now < deadline or key in alerted or _has_files(zone, source, key):
                continue
            _send(
                context,
                webhook,
                alert_message(
                    "sla_breach",
                    f"SLA breach: no {source} landed",
                    error=(
                        f"no {source} file landed in {zone.source_dir(source)}/"
                        f"{DATE_DIR_PREFIX}{key}/ by {deadline.isoformat()} "
                        f"(contract SLA freshness_minutes={int(freshness.total_seconds() // 60)})"
                    ),
                    assets=[f"{source}_raw"],
                    partition=key,
                    extra={"deadline": deadline.isoformat(), "source": source},
                ),
            )
            new_alerts.append(key)
        context.update_cursor(json.dumps(sorted(set(alerted) | set(new_alerts))[-60:]))
        if not new_alerts:
            return dg.SkipReason(f"every {source} partition within its SLA")
        return None

    return _alert


def _has_files(zone: LandingZone, source: str, key: str) -> bool:
    directory = f"{zone.source_dir(source)}/{DATE_DIR_PREFIX}{key}"
    try:
        with os.scandir(directory) as entries:
            return any(is_complete_landing_file(e.name) for e in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


def alert_sensors(
    settings: Settings, contracts: dict[str, Contract], partitions_def
) -> list[dg.SensorDefinition]:
    return [
        run_failure_alert(settings),
        check_failure_alert(settings),
        orders_sla_alert(settings, contracts["orders"], partitions_def),
    ]


def webhook_resource(settings: Settings) -> WebhookResource:
    return WebhookResource(
        url=dg.EnvVar("FOODOPS_ALERT_WEBHOOK_URL") if settings.alert_webhook_configured else None,
        webserver_url=settings.webserver_url,
    )
