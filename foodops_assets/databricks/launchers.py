"""Where a Pipes step runs: a Databricks job run, or (a rehearsal) a local process.

Both are Dagster resources with the same ``run(context, extras)`` method, so
the Pipes assets (:mod:`.assets`) do not know which one they use; the choice is
``FOODOPS_EXECUTION`` (databricks | pipes_subprocess).

The Databricks launcher builds its ``WorkspaceClient`` when a step runs, from
``host`` and ``token`` fields that the definitions fill with
``dagster.EnvVar("DATABRICKS_HOST")`` / ``EnvVar("DATABRICKS_TOKEN")``: the token
is never in the code, the job spec, the Dagster UI, the run config or a log.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from pydantic import Field

from ..settings import ENV_DATABRICKS_JOB_SPEC, ConfigError

JOB_SPEC = Path(__file__).resolve().parents[2] / "resources" / "databricks" / "job.yaml"
COMPUTES = ("classic", "serverless")
TASK_KINDS = ("spark_python_task", "python_wheel_task")
# top-level fields of the spec passed on to runs/submit, with their SDK types
_SUBMIT_FIELDS = ("run_name", "timeout_seconds", "git_source", "environments")


@dataclass(frozen=True)
class JobSpec:
    """``resources/databricks/*.yaml``: the task, its compute, and the run's settings."""

    path: str
    compute: str
    task: dict[str, Any]
    submit: dict[str, Any] = field(default_factory=dict)
    volume_path: str | None = None
    # how the orchestrator watches the run (the spec's optional `pipes:` section)
    poll_interval_seconds: float = 10.0
    message_poll_seconds: float = 10.0

    def submit_task(self):
        from databricks.sdk.service import jobs

        return jobs.SubmitTask.from_dict(_deep_copy(self.task))

    def submit_args(self) -> dict[str, Any]:
        from databricks.sdk.service import jobs

        args: dict[str, Any] = {}
        for key, value in self.submit.items():
            if key == "git_source":
                args[key] = jobs.GitSource.from_dict(value)
            elif key == "environments":
                args[key] = [jobs.JobEnvironment.from_dict(e) for e in value]
            else:
                args[key] = value
        return args


def load_job_spec(path: str | Path | None = None) -> JobSpec:
    """Read and validate a job spec; a mistake fails with the file and what to fix."""
    path = Path(path) if path else JOB_SPEC
    where = f"{path} ({ENV_DATABRICKS_JOB_SPEC})"
    if not path.is_file():
        raise ConfigError(f"Databricks job spec {where} not found")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping with compute, task, ...")
    unknown = set(doc) - {"compute", "task", "volume_path", "pipes", *_SUBMIT_FIELDS}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    compute = doc.get("compute", "classic")
    if compute not in COMPUTES:
        raise ConfigError(f"{where}: compute {compute!r} is not one of {', '.join(COMPUTES)}")
    task = doc.get("task")
    if not isinstance(task, dict) or not task.get("task_key"):
        raise ConfigError(f"{where}: 'task' must be a mapping with a task_key")
    kinds = [k for k in TASK_KINDS if k in task]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: the task needs exactly one of {', '.join(TASK_KINDS)}")
    if compute == "classic" and not ({"new_cluster", "existing_cluster_id"} & set(task)):
        raise ConfigError(f"{where}: a classic task needs new_cluster or existing_cluster_id")
    if compute == "serverless":
        if not doc.get("volume_path"):
            raise ConfigError(f"{where}: serverless compute needs volume_path (a UC volume)")
        if "new_cluster" in task or "existing_cluster_id" in task:
            raise ConfigError(f"{where}: serverless compute takes no cluster")
    if _mentions_secret(doc):
        raise ConfigError(
            f"{where}: holds what looks like a credential; credentials come only from "
            "DATABRICKS_HOST / DATABRICKS_TOKEN in the environment"
        )
    pipes = doc.get("pipes") or {}
    if not isinstance(pipes, dict) or set(pipes) - {
        "poll_interval_seconds",
        "message_poll_seconds",
    }:
        raise ConfigError(
            f"{where}: 'pipes' takes poll_interval_seconds and message_poll_seconds (seconds)"
        )
    spec = JobSpec(
        path=str(path),
        compute=compute,
        task=task,
        submit={k: doc[k] for k in _SUBMIT_FIELDS if k in doc},
        volume_path=doc.get("volume_path"),
        poll_interval_seconds=float(pipes.get("poll_interval_seconds", 10)),
        message_poll_seconds=float(pipes.get("message_poll_seconds", 10)),
    )
    # the SDK silently drops fields it does not know: refuse them instead
    dropped = _dropped(task, spec.submit_task().as_dict())
    if dropped:
        raise ConfigError(f"{where}: the Jobs API has no task field(s) {', '.join(dropped)}")
    return spec


def _dropped(given: Any, kept: Any, prefix: str = "") -> list[str]:
    if isinstance(given, dict):
        out = []
        for key, value in given.items():
            name = f"{prefix}{key}"
            if not isinstance(kept, dict) or key not in kept:
                out.append(name)
            elif key not in ("spark_conf", "spark_env_vars", "custom_tags"):
                out.extend(_dropped(value, kept[key], f"{name}."))
        return out
    if isinstance(given, list) and isinstance(kept, list):
        return [d for g, k in zip(given, kept, strict=False) for d in _dropped(g, k, prefix)]
    return []


def _mentions_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            str(k).lower() in ("token", "password", "client_secret", "databricks_token")
            or _mentions_secret(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_mentions_secret(v) for v in value)
    return isinstance(value, str) and value.startswith("dapi")


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


class PipesLauncher(dg.ConfigurableResource):
    """Runs the FoodOps task (foodops_assets/databricks/task.py) for one Pipes step."""

    def run(
        self, context: dg.AssetExecutionContext, extras: Mapping[str, Any]
    ) -> dg.PipesClientCompletedInvocation:
        raise NotImplementedError


class DatabricksPipesLauncher(PipesLauncher):
    """One Databricks job run per step, through dagster-databricks Pipes."""

    host: str = Field(description="workspace URL; set through EnvVar('DATABRICKS_HOST')")
    token: str = Field(description="access token; set through EnvVar('DATABRICKS_TOKEN')")
    job_spec: str = Field(default=str(JOB_SPEC), description="the job spec YAML to submit")

    def workspace_client(self):
        from databricks.sdk import WorkspaceClient

        return WorkspaceClient(host=self.host, token=self.token, auth_type="pat")

    def run(
        self, context: dg.AssetExecutionContext, extras: Mapping[str, Any]
    ) -> dg.PipesClientCompletedInvocation:
        from dagster_databricks.pipes import (
            PipesDatabricksClient,
            PipesDatabricksServerlessClient,
            PipesDbfsMessageReader,
            PipesUnityCatalogVolumesMessageReader,
        )

        spec = load_job_spec(self.job_spec)
        client = self.workspace_client()
        context.log.info(
            f"Submitting a Databricks job run ({spec.compute} compute, spec {spec.path})"
        )
        if spec.compute == "serverless":
            pipes = PipesDatabricksServerlessClient(
                client=client,
                volume_path=spec.volume_path,
                message_reader=PipesUnityCatalogVolumesMessageReader(
                    client=client, volume_path=spec.volume_path, interval=spec.message_poll_seconds
                ),
                poll_interval_seconds=spec.poll_interval_seconds,
            )
        else:
            pipes = PipesDatabricksClient(
                client=client,
                message_reader=PipesDbfsMessageReader(
                    client=client, interval=spec.message_poll_seconds
                ),
                poll_interval_seconds=spec.poll_interval_seconds,
            )
        return pipes.run(
            context=context,
            task=spec.submit_task(),
            submit_args=spec.submit_args(),
            extras=dict(extras),
        )


class SubprocessPipesLauncher(PipesLauncher):
    """The same task in a local process, through ``PipesSubprocessClient`` (the same
    Pipes protocol): a rehearsal of the Databricks mode on one machine."""

    env: dict[str, str] = Field(
        default_factory=dict, description="extra environment of the task process"
    )

    def run(
        self, context: dg.AssetExecutionContext, extras: Mapping[str, Any]
    ) -> dg.PipesClientCompletedInvocation:
        client = dg.PipesSubprocessClient(env=dict(self.env))
        return client.run(
            command=[sys.executable, "-m", "foodops_assets.databricks.task"],
            context=context,
            extras=dict(extras),
        )
