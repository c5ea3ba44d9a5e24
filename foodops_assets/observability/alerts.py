"""Alerts: run failures, failed checks, stale assets and late partitions, posted to a webhook.

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
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import dagster as dg

from ..automation.freshness import Deadline
from ..automation.sensors import default_status
from ..lakehouse.landing import LandingError, LandingZone
from ..settings import Settings

RUN_FAILURE_SENSOR = "foodops_run_failure_alert"
CHECK_FAILURE_SENSOR = "foodops_check_failure_alert"
FRESHNESS_SENSOR = "foodops_freshness_alert"
PARTITION_DEADLINE_SENSOR = "foodops_partition_deadlines"
DEADLINE_LOOKBACK_DAYS = 7
# Dagster stores runless asset events (the freshness daemon's state changes) under this run id
RUNLESS_RUN_ID = ""
# FreshnessState values (FreshnessState itself is not exported by dagster)
FRESHNESS_FAIL = "FAIL"
FRESHNESS_PASS = "PASS"


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


def freshness_alert(settings: Settings, due: Mapping[dg.AssetKey, Deadline]) -> dg.SensorDefinition:
    """Posts each change of an asset's freshness state to FAIL (and back to PASS).

    Dagster's freshness daemon evaluates every asset's ``FreshnessPolicy`` and records each
    change of its state as a ``FRESHNESS_STATE_CHANGE`` event; Dagster has no sensor type for
    them (its alert policies are Dagster+ only), so this sensor reads them, in order, from
    the event log. They are runless events, stored under the empty run id.
    """

    @dg.sensor(
        name=FRESHNESS_SENSOR,
        description=(
            "Posts every silver or gold asset that fails its freshness policy (the contract's "
            "deadline, evaluated by Dagster's freshness daemon) to the alert webhook, and its "
            "recovery."
        ),
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=default_status(settings),
    )
    def _alert(context: dg.SensorEvaluationContext, webhook: WebhookResource):
        changes, cursor = _freshness_changes(context.instance, context.cursor)
        if context.cursor is None:
            # first tick: the current state of each asset, so one failing now is reported once
            changes = list({c.key: c for c in changes}.values())
        sent = 0
        for change in changes:
            new, previous = str(change.new_state.value), str(change.previous_state.value)
            if new == FRESHNESS_FAIL:
                kind = "freshness_failure"
            elif new == FRESHNESS_PASS and previous == FRESHNESS_FAIL and context.cursor:
                kind = "freshness_recovered"
            else:
                continue
            message = _freshness_message(context, webhook, change, kind, due.get(change.key))
            _send(context, webhook, message)
            sent += 1
        context.update_cursor(cursor)
        return None if sent else dg.SkipReason("no asset changed to or from a failing freshness")

    return _alert


def _freshness_changes(instance: dg.DagsterInstance, cursor: str | None) -> tuple[list, str | None]:
    changes = []
    for _ in range(100):  # pages of 500 state changes (they are rare: a few a day per asset)
        page = instance.get_records_for_run(
            RUNLESS_RUN_ID,
            cursor=cursor,
            of_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE,
            limit=500,
        )
        changes += [r.event_log_entry.dagster_event.event_specific_data for r in page.records]
        cursor = page.cursor or cursor
        if not page.has_more:
            break
    return changes, cursor


def _freshness_message(
    context, webhook: WebhookResource, change, kind: str, deadline: Deadline | None
) -> dict[str, Any]:
    key: dg.AssetKey = change.key
    name = key.to_user_string()
    changed = dt.datetime.fromtimestamp(change.state_change_timestamp, dt.UTC)
    latest = context.instance.get_latest_materialization_event(key)
    if latest is None:
        materialised = "never materialised"
    else:
        partition = latest.asset_materialization and latest.asset_materialization.partition
        materialised = f"last materialised {_utc(latest.timestamp)}" + (
            f" (partition {partition})" if partition else ""
        )
    if kind == "freshness_failure":
        title = "freshness: stale"
        expected = (
            f"expected a materialisation since the day ended, by {deadline.time_of_day}: "
            f"{deadline.describe()}"
            if deadline
            else "it fails its freshness policy"
        )
        error = f"{name} is stale since {_utc(changed.timestamp())}: {materialised}; {expected}"
    else:
        title = "freshness: fresh again"
        error = f"{name} passes its freshness policy again: {materialised}"
    return alert_message(
        kind,
        title,
        error=error,
        assets=[name],
        partition=deadline.last_due_day(changed).isoformat() if deadline else None,
        extra={
            "freshness_state": str(change.new_state.value),
            "previous_state": str(change.previous_state.value),
            "deadline_cron": deadline.cron if deadline else None,
            "asset_url": f"{webhook.webserver_url.rstrip('/')}/assets/{name}",
        },
    )


def partition_deadline_alert(
    settings: Settings,
    due: Mapping[dg.AssetKey, Deadline],
    partitions_def: dg.TimeWindowPartitionsDefinition,
) -> dg.SensorDefinition:
    """What the asset-level freshness policy cannot say, per partition of the last days.

    - the producer's deadline: no file of ``source`` landed for day D by D+1 00:00 + the
      contract's ``latency`` SLA (kind ``sla_breach``; a missing landing file is the
      producer's lateness, and no asset changes when nothing lands);
    - the platform's deadline: partition D of a silver or gold asset not materialised by its
      deadline (kind ``partition_late``), with what the landing zone and the asset's
      partition status say about why.

    Once per source and day each (the cursor keeps what was sent).
    """
    by_source: dict[str, tuple[Deadline, list[dg.AssetKey]]] = {}
    for key, deadline in sorted(due.items(), key=lambda kv: kv[0].to_user_string()):
        by_source.setdefault(deadline.source, (deadline, []))[1].append(key)

    @dg.sensor(
        name=PARTITION_DEADLINE_SENSOR,
        description=(
            "Per day of the last week: alerts when a source's files did not land by the "
            "contract's deadline, and when a silver or gold partition is not materialised by "
            "its deadline (the partition-level view of the freshness policies)."
        ),
        minimum_interval_seconds=max(settings.sensor_interval_seconds, 60),
        default_status=default_status(settings),
    )
    def _alert(context: dg.SensorEvaluationContext, webhook: WebhookResource):
        now = dt.datetime.now(dt.UTC)
        alerted: list[str] = json.loads(context.cursor) if context.cursor else []
        zone = LandingZone(settings.landing_root)
        keys = set(
            partitions_def.get_partition_keys(current_time=now)[-DEADLINE_LOOKBACK_DAYS - 2 :]
        )
        sent: list[str] = []
        for source, (deadline, assets) in sorted(by_source.items()):
            landed = {}
            for day in _due_days(deadline.landing_due, now, keys):
                landed[day] = _landed_files(zone, source, day)
                alert_id = f"sla_breach:{source}:{day.isoformat()}"
                if not landed[day] and alert_id not in alerted:
                    _send(context, webhook, _landing_message(zone, source, day, deadline))
                    sent.append(alert_id)
            late = [
                day
                for day in _due_days(deadline.due, now, keys)
                if f"partition_late:{source}:{day.isoformat()}" not in alerted
            ]
            if not late:
                continue
            status = {
                key: context.instance.get_status_by_partition(
                    key, [d.isoformat() for d in late], partitions_def
                )
                or {}
                for key in assets
            }
            for day in late:
                missing = {
                    key: status[key].get(day.isoformat())
                    for key in assets
                    if status[key].get(day.isoformat()) != dg.AssetPartitionStatus.MATERIALIZED
                }
                if missing:
                    files = len(landed[day] if day in landed else _landed_files(zone, source, day))
                    _send(
                        context, webhook, _late_message(zone, source, day, deadline, missing, files)
                    )
                    sent.append(f"partition_late:{source}:{day.isoformat()}")
        # what was sent for days still inside the window (older ones are never looked at again)
        oldest = (now - dt.timedelta(days=DEADLINE_LOOKBACK_DAYS + 3)).date().isoformat()
        kept = {a for a in set(alerted) | set(sent) if a.rsplit(":", 1)[-1] >= oldest}
        context.update_cursor(json.dumps(sorted(kept)))
        if not sent:
            return dg.SkipReason(
                "every recent partition landed and was materialised by its deadline"
            )
        return None

    return _alert


def _due_days(due, now: dt.datetime, partition_keys: set[str]) -> list[dt.date]:
    """The last DEADLINE_LOOKBACK_DAYS days (partitions) whose ``due(day)`` has passed."""
    day = now.date()
    while due(day) > now:
        day -= dt.timedelta(days=1)
    days = (day - dt.timedelta(days=n) for n in range(DEADLINE_LOOKBACK_DAYS))
    return sorted(d for d in days if d.isoformat() in partition_keys)


def _landed_files(zone: LandingZone, source: str, day: dt.date) -> list:
    try:
        return zone.daily_files(source, [day])[day]
    except LandingError:
        return []


def _landing_message(zone, source: str, day: dt.date, deadline: Deadline) -> dict[str, Any]:
    due = deadline.landing_due(day)
    return alert_message(
        "sla_breach",
        f"SLA breach: no {source} landed",
        error=(
            f"no {source} file landed in {zone.partition_dir(source, day)}/ by {due.isoformat()} "
            f"(the contract's latency SLA: {deadline.landing_minutes} min after the day ends): "
            "the producer is late"
        ),
        assets=[f"{source}_raw"],
        partition=day.isoformat(),
        extra={"deadline": due.isoformat(), "source": source},
    )


def _late_message(zone, source, day, deadline, missing, landed: int) -> dict[str, Any]:
    due = deadline.due(day)
    why = {
        dg.AssetPartitionStatus.FAILED: "its last run failed",
        dg.AssetPartitionStatus.IN_PROGRESS: "still running",
        None: "never materialised",
    }
    assets = ", ".join(f"{k.to_user_string()} ({why.get(v, str(v))})" for k, v in missing.items())
    landing = (
        f"{landed} {source} file(s) landed in {zone.partition_dir(source, day)}/"
        if landed
        else f"no {source} file landed in {zone.partition_dir(source, day)}/ (the producer is late)"
    )
    return alert_message(
        "partition_late",
        f"partition late: {source} {day.isoformat()}",
        error=f"not materialised by {due.isoformat()}: {assets}; {landing}",
        assets=[k.to_user_string() for k in missing],
        partition=day.isoformat(),
        extra={"deadline": due.isoformat(), "source": source, "landed_files": landed},
    )


def _utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def alert_sensors(
    settings: Settings,
    due: Mapping[dg.AssetKey, Deadline],
    partitions_def: dg.TimeWindowPartitionsDefinition,
) -> list[dg.SensorDefinition]:
    return [
        run_failure_alert(settings),
        check_failure_alert(settings),
        freshness_alert(settings, due),
        partition_deadline_alert(settings, due, partitions_def),
    ]


def webhook_resource(settings: Settings) -> WebhookResource:
    return WebhookResource(
        url=dg.EnvVar("FOODOPS_ALERT_WEBHOOK_URL") if settings.alert_webhook_configured else None,
        webserver_url=settings.webserver_url,
    )
