"""The one place that decides the environment.

Everything else (resources, partitions, thresholds) is derived from a
:class:`Settings` value. Environment variables are read only by
:meth:`Settings.from_env`, which the ``@definitions`` function calls when Dagster
loads the code location — never at import time.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ENV_LANDING_ROOT = "FOODOPS_LANDING_ROOT"
ENV_LAKE_ROOT = "FOODOPS_LAKE_ROOT"
ENV_SPARK_REMOTE = "FOODOPS_SPARK_REMOTE"
ENV_PARTITIONS_START = "FOODOPS_PARTITIONS_START"
ENV_CONTRACTS_DIR = "FOODOPS_CONTRACTS_DIR"
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
    partitions_start: str = DEFAULT_PARTITIONS_START
    contracts_dir: str | None = None  # default: resources/contracts of this repository
    # in_process: one process (one Spark session) per run; multiprocess: one per step
    executor: str = "in_process"
    # how partition writes reach Delta (see lakehouse/spark_files.py, lakehouse/delta_spark.py)
    delta_writer: str = "auto"
    # where the heavy assets run (see foodops_assets/databricks/)
    execution: str = "local"
    databricks_job_spec: str | None = None  # default: resources/databricks/job.yaml

    def __post_init__(self) -> None:
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
        try:
            dt.date.fromisoformat(self.partitions_start)
        except ValueError:
            raise ConfigError(
                f"{ENV_PARTITIONS_START}={self.partitions_start!r} is not a date; "
                "use YYYY-MM-DD, e.g. 2025-01-01"
            ) from None
        check_root(ENV_LANDING_ROOT, self.landing_root)
        check_root(ENV_LAKE_ROOT, self.lake_root)
        if self.spark_remote is not None and not self.spark_remote.startswith("sc://"):
            raise ConfigError(
                f"{ENV_SPARK_REMOTE}={self.spark_remote!r} is not a Spark Connect URL; "
                "use sc://host:port (e.g. sc://localhost:15002) or unset it for local Spark"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            landing_root=_absolute(
                ENV_LANDING_ROOT, env.get(ENV_LANDING_ROOT) or DEFAULT_LANDING_ROOT
            ),
            lake_root=_absolute(ENV_LAKE_ROOT, env.get(ENV_LAKE_ROOT) or DEFAULT_LAKE_ROOT),
            spark_remote=env.get(ENV_SPARK_REMOTE) or None,
            partitions_start=env.get(ENV_PARTITIONS_START) or DEFAULT_PARTITIONS_START,
            contracts_dir=env.get(ENV_CONTRACTS_DIR) or None,
            executor=env.get(ENV_EXECUTOR) or "in_process",
            delta_writer=env.get(ENV_DELTA_WRITER) or "auto",
            execution=env.get(ENV_EXECUTION) or "local",
            databricks_job_spec=env.get(ENV_DATABRICKS_JOB_SPEC) or None,
        )


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
