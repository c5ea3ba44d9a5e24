"""The daily schedule: yesterday's partition of the whole daily graph, as a backstop.

The file-arrival sensors start runs as files land; the schedule makes sure
each day is materialised once its day is over even if a sensor was stopped
or a file slipped through. It runs ``foodops_daily`` (bronze to gold) for the
previous UTC day at ``FOODOPS_DAILY_SCHEDULE_CRON`` (default 02:00 UTC).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from ..settings import Settings
from .sensors import run_tags

DAILY_SCHEDULE = "foodops_daily_backstop"
MAINTENANCE_SCHEDULE = "foodops_lake_maintenance"


def daily_schedule(settings: Settings, job, partitions_def) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=DAILY_SCHEDULE,
        cron_schedule=settings.daily_schedule_cron,
        execution_timezone="UTC",
        job=job,
        default_status=(
            dg.DefaultScheduleStatus.RUNNING
            if settings.automation == "on"
            else dg.DefaultScheduleStatus.STOPPED
        ),
        description="Yesterday's (UTC) partition of the daily graph, bronze to gold.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        day = (tick.astimezone(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
        if day not in partitions_def.get_partition_keys(current_time=tick):
            return dg.SkipReason(f"{day} is not a partition (before FOODOPS_PARTITIONS_START)")
        return dg.RunRequest(
            run_key=f"daily:{day}",
            partition_key=day,
            tags={**run_tags(settings), "foodops/trigger": "schedule"},
        )

    return _schedule


def maintenance_schedule(settings: Settings, job) -> dg.ScheduleDefinition:
    """``lake_maintenance`` off-peak at ``FOODOPS_MAINTENANCE_CRON`` (default 03:30 UTC, after
    the backstop's run). A table being written then is maintained once its writer is done."""
    return dg.ScheduleDefinition(
        name=MAINTENANCE_SCHEDULE,
        cron_schedule=settings.maintenance_cron,
        execution_timezone="UTC",
        job=job,
        default_status=(
            dg.DefaultScheduleStatus.RUNNING
            if settings.automation == "on"
            else dg.DefaultScheduleStatus.STOPPED
        ),
        tags={**run_tags(settings), "foodops/trigger": "schedule"},
        description="Purge, compact, vacuum and checkpoint every table (lake_maintenance).",
    )
