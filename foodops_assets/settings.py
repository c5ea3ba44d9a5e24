"""The one place that decides the environment.

Everything else (resources, partitions, thresholds) is derived from a
:class:`Settings` value. Environment variables are read only by
:meth:`Settings.from_env`, which the ``@definitions`` function calls when Dagster
loads the code location — never at import time.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ENV_LANDING_ROOT = "FOODOPS_LANDING_ROOT"
ENV_LAKE_ROOT = "FOODOPS_LAKE_ROOT"
ENV_SPARK_REMOTE = "FOODOPS_SPARK_REMOTE"
ENV_SPARK_DRIVER_MEMORY = "FOODOPS_SPARK_DRIVER_MEMORY"
# the local JVM's heap: 2g ran out at 1M orders a day while bronze cached whole landing
# texts; 3g leaves headroom at that scale (bench/: peak RSS of the whole run 4.5 GiB)
DEFAULT_SPARK_DRIVER_MEMORY = "3g"
ENV_PARTITIONS_START = "FOODOPS_PARTITIONS_START"
ENV_CONTRACTS_DIR = "FOODOPS_CONTRACTS_DIR"
# breaking contract changes the operator accepts against the existing tables, as
# <contract>@<version>, comma-separated (logged at every load; README "Data contracts")
ENV_ACCEPT_BREAKING_CONTRACT_CHANGES = "FOODOPS_ACCEPT_BREAKING_CONTRACT_CHANGES"
_ACCEPTED_CHANGE = re.compile(r"[a-z][a-z0-9_]*@[^\s,@]+")
ENV_EXECUTOR = "FOODOPS_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess")
ENV_DELTA_WRITER = "FOODOPS_DELTA_WRITER"
# auto: spark_files when Spark is remote (Spark Connect), arrow when it is embedded
DELTA_WRITERS = ("auto", "arrow", "spark_files", "delta_spark")
ENV_EXECUTION = "FOODOPS_EXECUTION"
# local: assets run in the Dagster run (embedded Spark or Spark Connect);
# databricks: the heavy assets run as Databricks job runs through Dagster Pipes;
# pipes_subprocess: the same Pipes path, in a local process (a rehearsal of databricks)
EXECUTIONS = ("local", "databricks", "pipes_subprocess")
ENV_DATABRICKS_JOB_SPEC = "FOODOPS_DATABRICKS_JOB_SPEC"
# automation (sensors, schedule, declarative automation, alerts)
ENV_AUTOMATION = "FOODOPS_AUTOMATION"
AUTOMATION_MODES = ("on", "off")
ENV_SENSOR_INTERVAL = "FOODOPS_SENSOR_INTERVAL_SECONDS"
ENV_ARRIVAL_INTERVAL = "FOODOPS_ARRIVAL_INTERVAL_SECONDS"
ENV_LANDING_SETTLE = "FOODOPS_LANDING_SETTLE_SECONDS"
ENV_ARRIVAL_WAIT = "FOODOPS_ARRIVAL_WAIT_SECONDS"
ENV_DAILY_SCHEDULE_CRON = "FOODOPS_DAILY_SCHEDULE_CRON"
ENV_ML_CRON = "FOODOPS_ML_CRON"
ENV_ALERT_WEBHOOK_URL = "FOODOPS_ALERT_WEBHOOK_URL"  # a secret: read only through dg.EnvVar
ENV_WEBSERVER_URL = "FOODOPS_WEBSERVER_URL"
ENV_RUN_TIMEOUT = "FOODOPS_RUN_TIMEOUT_SECONDS"
ENV_RETRY_DELAY = "FOODOPS_RETRY_DELAY_SECONDS"
ENV_AUTOMATION_LOOKBACK_DAYS = "FOODOPS_AUTOMATION_LOOKBACK_DAYS"
ENV_PROMETHEUS_PUSHGATEWAY_URL = "FOODOPS_PROMETHEUS_PUSHGATEWAY_URL"
ENV_OPENLINEAGE_URL = "FOODOPS_OPENLINEAGE_URL"
# table maintenance (operations/maintenance.py): when it runs, what it must keep restorable
ENV_MAINTENANCE_CRON = "FOODOPS_MAINTENANCE_CRON"
ENV_ROLLBACK_WINDOW_DAYS = "FOODOPS_ROLLBACK_WINDOW_DAYS"
ENV_VACUUM_RETENTION_HOURS = "FOODOPS_VACUUM_RETENTION_HOURS"

DEFAULT_LANDING_ROOT = "./.foodops/landing"
DEFAULT_LAKE_ROOT = "./.foodops/lake"
DEFAULT_PARTITIONS_START = "2025-01-01"

_REMOTE_SCHEMES = ("s3", "s3a", "abfss", "gs", "az", "file")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names what to fix."""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one FoodOps deployment."""

    landing_root: str = DEFAULT_LANDING_ROOT
    lake_root: str = DEFAULT_LAKE_ROOT
    spark_remote: str | None = None
    spark_driver_memory: str = DEFAULT_SPARK_DRIVER_MEMORY  # local Spark only
    partitions_start: str = DEFAULT_PARTITIONS_START
    contracts_dir: str | None = None  # default: resources/contracts of this repository
    # contract versions whose breaking changes load anyway (see checks/contract_changes.py)
    accept_breaking_contract_changes: tuple[str, ...] = ()
    # in_process: one process (one Spark session) per run; multiprocess: one per step
    executor: str = "in_process"
    # how partition writes reach Delta: a module of lakehouse/writers/ by that name
    delta_writer: str = "auto"
    # where the heavy assets run (see foodops_assets/databricks/)
    execution: str = "local"
    databricks_job_spec: str | None = None  # default: resources/databricks/job.yaml
    # on: sensors, the daily schedule and declarative automation start running with
    # the daemon; off: they are defined but stopped (turn them on in the UI)
    automation: str = "on"
    # the automation and alert sensors' interval (an automation tick evaluates the whole graph)
    sensor_interval_seconds: int = 30
    # the file-arrival sensors' interval: an incremental tick costs ~35 ms at 10,000 landed
    # files (bench/sensor_tick.py), so they tick each time Dagster's sensor daemon looks at its
    # sensors (a loop of 5 s). An interval of exactly 5 s made that every OTHER loop (a look
    # 4.99 s after the last tick skips it): ticks 10 s apart, measured
    arrival_interval_seconds: int = 1
    # how long a daily file-arrival tick keeps looking (every 0.2 s) when nothing has landed
    # yet: a file landing during the wait is requested as soon as it settles, not at the next
    # look of the daemon (5 s later). Under 5 s so that the daemon's next look finds the tick
    # done and starts another one; 0: a tick looks once
    arrival_wait_seconds: float = 4.0
    # a landing file modified more recently than this is still being written; producers that
    # write <batch>.jsonl.tmp and rename it (the landing convention) are never read half-written
    # whatever this is, so it only has to cover a producer writing a .jsonl in place
    landing_settle_seconds: float = 1.0
    daily_schedule_cron: str = "0 2 * * *"  # UTC: the previous day's partition, as a backstop
    # UTC: the ML features and recommendations of the day just completed, once a day, after
    # the last source's deadline (reviews: published by D+1 05:00); never after a late file
    ml_cron: str = "0 5 * * *"
    # whether FOODOPS_ALERT_WEBHOOK_URL is set (its value is a secret and never held here)
    alert_webhook_configured: bool = False
    webserver_url: str = "http://127.0.0.1:3000"  # base of the run links in alerts
    run_timeout_seconds: int = 7200  # a run still going after this is failed by run monitoring
    retry_delay_seconds: float = 10.0  # first retry of a transient failure (then x2, x4, jitter)
    # declarative automation follows upstream updates of the last N daily partitions
    automation_lookback_days: int = 35
    # observability exports (unset = off): a Prometheus Pushgateway, an OpenLineage endpoint
    prometheus_pushgateway_url: str | None = None
    openlineage_url: str | None = None
    # lake maintenance: off-peak (UTC), after the daily backstop; every version of a table
    # live in the last rollback_window_days stays restorable (a contract may ask for more)
    maintenance_cron: str = "30 3 * * *"
    rollback_window_days: int = 7
    vacuum_retention_hours: int | None = None  # None: the window (never less)

    def __post_init__(self) -> None:
        for item in self.accept_breaking_contract_changes:
            if not _ACCEPTED_CHANGE.fullmatch(item):
                raise ConfigError(
                    f"{ENV_ACCEPT_BREAKING_CONTRACT_CHANGES}: {item!r} is not <contract>@<version>; "
                    "name the contract version whose breaking change you accept, e.g. orders@2.0.0"
                )
        if self.executor not in EXECUTORS:
            raise ConfigError(
                f"{ENV_EXECUTOR}={self.executor!r} is not one of {', '.join(EXECUTORS)}"
            )
        if self.delta_writer not in DELTA_WRITERS:
            raise ConfigError(
                f"{ENV_DELTA_WRITER}={self.delta_writer!r} is not one of {', '.join(DELTA_WRITERS)}"
            )
        if self.execution not in EXECUTIONS:
            raise ConfigError(
                f"{ENV_EXECUTION}={self.execution!r} is not one of {', '.join(EXECUTIONS)}"
            )
        if self.automation not in AUTOMATION_MODES:
            raise ConfigError(
                f"{ENV_AUTOMATION}={self.automation!r} is not one of {', '.join(AUTOMATION_MODES)}"
            )
        _check_positive(ENV_SENSOR_INTERVAL, self.sensor_interval_seconds, minimum=1)
        _check_positive(ENV_ARRIVAL_INTERVAL, self.arrival_interval_seconds, minimum=1)
        _check_positive(ENV_LANDING_SETTLE, self.landing_settle_seconds, minimum=0)
        _check_positive(ENV_ARRIVAL_WAIT, self.arrival_wait_seconds, minimum=0)
        _check_positive(ENV_RUN_TIMEOUT, self.run_timeout_seconds, minimum=1)
        _check_positive(ENV_RETRY_DELAY, self.retry_delay_seconds, minimum=0)
        _check_positive(ENV_AUTOMATION_LOOKBACK_DAYS, self.automation_lookback_days, minimum=1)
        for var, cron, example in (
            (
                ENV_DAILY_SCHEDULE_CRON,
                self.daily_schedule_cron,
                "'0 2 * * *' (02:00 UTC every day)",
            ),
            (ENV_MAINTENANCE_CRON, self.maintenance_cron, "'30 3 * * *' (03:30 UTC every day)"),
            (ENV_ML_CRON, self.ml_cron, "'0 5 * * *' (05:00 UTC every day)"),
        ):
            if not _valid_cron(cron):
                raise ConfigError(
                    f"{var}={cron!r} is not a cron expression; use five fields, e.g. {example}"
                )
        _check_positive(ENV_ROLLBACK_WINDOW_DAYS, self.rollback_window_days, minimum=1)
        if (
            self.vacuum_retention_hours is not None
            and self.vacuum_retention_hours < self.rollback_window_days * 24
        ):
            raise ConfigError(
                f"{ENV_VACUUM_RETENTION_HOURS}={self.vacuum_retention_hours} is shorter than the "
                f"rollback window ({ENV_ROLLBACK_WINDOW_DAYS}={self.rollback_window_days}, "
                f"{self.rollback_window_days * 24} hours): VACUUM would delete files a restore "
                f"inside the window needs. Set it to at least {self.rollback_window_days * 24}, "
                f"or unset it to use the window"
            )
        for var, url, schemes in (
            (
                ENV_PROMETHEUS_PUSHGATEWAY_URL,
                self.prometheus_pushgateway_url,
                ("http://", "https://"),
            ),
            (ENV_OPENLINEAGE_URL, self.openlineage_url, ("http://", "https://", "file://")),
        ):
            if url is not None and not url.startswith(schemes):
                raise ConfigError(
                    f"{var}={url!r} is not a URL starting with {' or '.join(schemes)}; "
                    "unset it to turn the export off"
                )
        if not self.webserver_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{ENV_WEBSERVER_URL}={self.webserver_url!r} is not an http(s) URL "
                "(the Dagster UI's address, e.g. http://127.0.0.1:3000)"
            )
        try:
            dt.date.fromisoformat(self.partitions_start)
        except ValueError:
            raise ConfigError(
                f"{ENV_PARTITIONS_START}={self.partitions_start!r} is not a date; "
                "use YYYY-MM-DD, e.g. 2025-01-01"
            ) from None
        check_root(ENV_LANDING_ROOT, self.landing_root)
        check_root(ENV_LAKE_ROOT, self.lake_root)
        if not re.fullmatch(r"[1-9][0-9]*[mMgG]", self.spark_driver_memory):
            raise ConfigError(
                f"{ENV_SPARK_DRIVER_MEMORY}={self.spark_driver_memory!r} is not a heap size; "
                f"use a number with m or g, e.g. {DEFAULT_SPARK_DRIVER_MEMORY}"
            )
        if self.spark_remote is not None and not self.spark_remote.startswith("sc://"):
            raise ConfigError(
                f"{ENV_SPARK_REMOTE}={self.spark_remote!r} is not a Spark Connect URL; "
                "use sc://host:port (e.g. sc://localhost:15002) or unset it for local Spark"
            )

    @property
    def retention_hours(self) -> int:
        """VACUUM retention: the setting, or the rollback window when it is unset."""
        if self.vacuum_retention_hours is None:
            return self.rollback_window_days * 24
        return self.vacuum_retention_hours

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            landing_root=_absolute(
                ENV_LANDING_ROOT, env.get(ENV_LANDING_ROOT) or DEFAULT_LANDING_ROOT
            ),
            lake_root=_absolute(ENV_LAKE_ROOT, env.get(ENV_LAKE_ROOT) or DEFAULT_LAKE_ROOT),
            spark_remote=env.get(ENV_SPARK_REMOTE) or None,
            spark_driver_memory=env.get(ENV_SPARK_DRIVER_MEMORY) or DEFAULT_SPARK_DRIVER_MEMORY,
            partitions_start=env.get(ENV_PARTITIONS_START) or DEFAULT_PARTITIONS_START,
            contracts_dir=env.get(ENV_CONTRACTS_DIR) or None,
            accept_breaking_contract_changes=tuple(
                item.strip()
                for item in (env.get(ENV_ACCEPT_BREAKING_CONTRACT_CHANGES) or "").split(",")
                if item.strip()
            ),
            executor=env.get(ENV_EXECUTOR) or "in_process",
            delta_writer=env.get(ENV_DELTA_WRITER) or "auto",
            execution=env.get(ENV_EXECUTION) or "local",
            databricks_job_spec=env.get(ENV_DATABRICKS_JOB_SPEC) or None,
            automation=env.get(ENV_AUTOMATION) or "on",
            sensor_interval_seconds=_number(env, ENV_SENSOR_INTERVAL, 30, int),
            arrival_interval_seconds=_number(env, ENV_ARRIVAL_INTERVAL, 1, int),
            landing_settle_seconds=_number(env, ENV_LANDING_SETTLE, 1.0, float),
            arrival_wait_seconds=_number(env, ENV_ARRIVAL_WAIT, 4.0, float),
            daily_schedule_cron=env.get(ENV_DAILY_SCHEDULE_CRON) or "0 2 * * *",
            ml_cron=env.get(ENV_ML_CRON) or "0 5 * * *",
            alert_webhook_configured=bool(env.get(ENV_ALERT_WEBHOOK_URL)),
            webserver_url=(env.get(ENV_WEBSERVER_URL) or "http://127.0.0.1:3000").rstrip("/"),
            run_timeout_seconds=_number(env, ENV_RUN_TIMEOUT, 7200, int),
            retry_delay_seconds=_number(env, ENV_RETRY_DELAY, 10.0, float),
            automation_lookback_days=_number(env, ENV_AUTOMATION_LOOKBACK_DAYS, 35, int),
            prometheus_pushgateway_url=env.get(ENV_PROMETHEUS_PUSHGATEWAY_URL) or None,
            openlineage_url=env.get(ENV_OPENLINEAGE_URL) or None,
            maintenance_cron=env.get(ENV_MAINTENANCE_CRON) or "30 3 * * *",
            rollback_window_days=_number(env, ENV_ROLLBACK_WINDOW_DAYS, 7, int),
            vacuum_retention_hours=_number(env, ENV_VACUUM_RETENTION_HOURS, None, int),
        )


def _number(env: Mapping[str, str], var: str, default, kind):
    raw = env.get(var)
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number (default {default})") from None


def _valid_cron(expression: str) -> bool:
    """Five fields Dagster accepts as a schedule (its own check, through its public API)."""
    try:
        import dagster as dg
    except ImportError:  # a process without Dagster (a Databricks task) schedules nothing
        return True
    if len(expression.split()) != 5:
        return False
    try:
        dg.ScheduleDefinition(name="cron_check", cron_schedule=expression, job_name="cron_check")
    except dg.DagsterInvalidDefinitionError:
        return False
    return True


def _check_positive(var: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"{var}={value!r} must be at least {minimum}")


def is_remote_uri(path: str) -> bool:
    return urlparse(path).scheme in _REMOTE_SCHEMES and "://" in path


def _absolute(var: str, path: str) -> str:
    """Local paths are made absolute so that every process (CLI, webserver,
    run workers) resolves them the same way; URIs are kept as they are."""
    check_root(var, path)
    if is_remote_uri(path):
        return path
    return str(Path(path).expanduser().resolve())


def check_root(var: str, value: str) -> None:
    if not value or not value.strip():
        raise ConfigError(f"{var} is empty; set it to a directory or a storage URI")
    if "://" in value and not is_remote_uri(value):
        raise ConfigError(
            f"{var}={value!r} uses an unsupported scheme; "
            f"use a local path or one of {', '.join(s + '://' for s in _REMOTE_SCHEMES)}"
        )
