"""The FoodOps task that runs on the cluster (a Databricks job run, or any Pipes process).

Dagster launches it through Pipes (``PipesDatabricksClient`` on Databricks,
``PipesSubprocessClient`` for a local rehearsal). It

1. reads from the Pipes context which assets to materialise, for which
   partitions, and from the extras where the lake and the landing zone are
   and the exact data contracts the orchestrator loaded;
2. executes those assets — the same asset code, transforms, checks,
   audit-before-publish and Delta storage as a local run — in process, on
   the Spark session of the cluster it runs on;
3. reports back through Pipes: one materialisation per asset (row counts,
   Delta version, table URI, schema, lineage — the metadata a local run
   records), every check result, the dead-letter-queue writes, and, when a
   circuit breaker tripped, why nothing was published.

A tripped circuit breaker (or another ``dagster.Failure``, e.g. missing
landing files) is a reported outcome: the task exits 0 and the orchestrator
fails the step with the reason and the failed checks. Anything unexpected
makes the task exit non-zero, so the Databricks run fails too.

Run as ``python -m foodops_assets.databricks.task`` or as the file itself
(Databricks ``spark_python_task``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (spark_python_task): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from foodops_assets.databricks.protocol import MSG_FAILURE, MSG_MATERIALIZATION  # noqa: E402
from foodops_assets.lakehouse.spark import SparkResource  # noqa: E402

ENV_PIPES_TRANSPORT = "FOODOPS_PIPES_TRANSPORT"  # dbfs | volumes | default (see _pipes_io)
ENV_DBFS_MOUNT = "FOODOPS_DBFS_MOUNT"  # where DBFS is mounted (Databricks: /dbfs)
ENV_VOLUMES_MOUNT = "FOODOPS_VOLUMES_MOUNT"  # where /Volumes/... is mounted (Databricks: /)
ON_DATABRICKS = "DATABRICKS_RUNTIME_VERSION"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from dagster_pipes import open_dagster_pipes

    with ExitStack() as stack:
        pipes = stack.enter_context(open_dagster_pipes(**_pipes_io(argv)))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="foodops-task-")))
        run_assets(pipes, workdir)
    return 0


def run_assets(pipes, workdir: Path) -> None:
    import dagster as dg

    from foodops_assets.assets.graph import lakehouse_assets, load_contracts
    from foodops_assets.checks.contract_changes import check_contract_changes
    from foodops_assets.contracts import contract_path
    from foodops_assets.databricks.metadata import to_pipes_metadata
    from foodops_assets.lakehouse.resource import LakehouseResource
    from foodops_assets.partitions import daily_partitions
    from foodops_assets.settings import Settings

    extras = pipes.extras
    contracts_dir = workdir / "contracts"
    contracts_dir.mkdir()
    for name, text in extras["contracts"].items():
        contract_path(name, contracts_dir).write_text(text, encoding="utf-8")
    settings = Settings(
        landing_root=extras["landing_root"],
        lake_root=extras["lake_root"],
        partitions_start=extras["partitions_start"],
        contracts_dir=str(contracts_dir),
        accept_breaking_contract_changes=tuple(extras.get("accept_breaking_contract_changes", ())),
        delta_writer=_delta_writer(),
    )
    # the same asset graph the code location serves (assets/graph.py), without the
    # orchestrator's parts (retries, automation, sensors): this process runs one step
    contracts = load_contracts(settings.contracts_dir)
    # against the lake this task writes, with the acceptances of the orchestrator
    check_contract_changes(
        contracts, settings.lake_root, accepted=settings.accept_breaking_contract_changes
    )
    graph = lakehouse_assets(contracts, daily_partitions(settings.partitions_start))
    assets = [a for a in graph if isinstance(a, dg.AssetsDefinition)]
    selection = list(pipes.asset_keys or [])
    partition_key, tags = _partitions(pipes)
    pipes.log.info(
        f"FoodOps on {_where()}: materialising {', '.join(selection)}"
        + (f" for {tags or partition_key}" if (tags or partition_key) else "")
        + f" (Delta writer {settings.delta_writer}, lake {settings.lake_root})"
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            assets,
            selection=selection,
            partition_key=partition_key,
            tags=tags,
            instance=instance,
            raise_on_error=False,
            resources={
                "spark": _spark_resource(),
                "lakehouse": LakehouseResource(
                    landing_root=settings.landing_root,
                    lake_root=settings.lake_root,
                    delta_writer=settings.delta_writer,
                ),
            },
        )
        report(pipes, result, selection, to_pipes_metadata)


def report(pipes, result, selection: Sequence[str], to_pipes_metadata) -> None:
    """Forward the run's outcome through Pipes; raise if it failed unexpectedly."""
    import dagster as dg

    selected = set(selection)
    reported: set[str] = set()
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        key = materialization.asset_key.to_user_string()
        metadata = to_pipes_metadata(materialization.metadata)
        if key in selected:
            if key in reported:  # a partition range: one result covers every partition
                continue
            reported.add(key)
            pipes.report_asset_materialization(asset_key=key, metadata=metadata)
            summary = {
                k: metadata[k]["raw_value"]
                for k in ("dagster/row_count", "delta_version")
                if k in metadata
            }
            pipes.log.info(f"{key}: {summary}")
        else:  # written by a selected asset on the side (the dead-letter queue)
            pipes.report_custom_message(
                {
                    "type": MSG_MATERIALIZATION,
                    "asset_key": key,
                    "partition": materialization.partition,
                    "description": materialization.description,
                    "metadata": metadata,
                }
            )
    for evaluation in result.get_asset_check_evaluations():
        pipes.report_asset_check(
            asset_key=evaluation.asset_key.to_user_string(),
            check_name=evaluation.check_name,
            passed=evaluation.passed,
            severity=evaluation.severity.value,
            metadata=to_pipes_metadata(evaluation.metadata),
        )
    if result.success:
        return
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    errors = [f.step_failure_data.error for f in failures if f.step_failure_data.error]
    description = (
        "; ".join(f"{f.step_key}: {_message(f.step_failure_data.error)}" for f in failures)
        or "the run failed"
    )
    controlled = bool(errors) and all(_is_dagster_failure(e) for e in errors)
    pipes.report_custom_message(
        {"type": MSG_FAILURE, "description": description, "controlled": controlled}
    )
    if not controlled:
        raise RuntimeError(f"FoodOps task failed: {description}")


def _message(error) -> str:
    cause = error
    while cause.cause is not None and cause.cls_name == "DagsterExecutionStepExecutionError":
        cause = cause.cause
    return cause.message.strip().splitlines()[0] if cause.message else cause.cls_name or "error"


def _is_dagster_failure(error) -> bool:
    cause = error
    while cause is not None:
        if cause.cls_name == "Failure":
            return True
        cause = cause.cause
    return False


# the run tags of a partition range (what `dagster asset materialize --partition-range` and a
# single-run backfill put on their run, shown on every such run in the UI): `dg.materialize`
# takes one partition key, a range only through these tags
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def _partitions(pipes) -> tuple[str | None, dict[str, str] | None]:
    if not pipes.is_partition_step:
        return None, None
    start, end = pipes.partition_key_range["start"], pipes.partition_key_range["end"]
    if start == end:
        return start, None
    return None, {PARTITION_RANGE_START_TAG: start, PARTITION_RANGE_END_TAG: end}


class ClusterSparkResource(SparkResource):
    """The Spark session of the cluster this process runs on (Databricks creates it)."""

    def _init_session(self) -> None:
        if self._spark_session is not None:
            return
        from pyspark.sql import SparkSession

        self._spark_session = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()


def _spark_resource() -> SparkResource:
    if os.environ.get("FOODOPS_SPARK_REMOTE"):
        return SparkResource(remote=os.environ["FOODOPS_SPARK_REMOTE"])
    if os.environ.get(ON_DATABRICKS):
        return ClusterSparkResource()
    return SparkResource()


def _delta_writer() -> str:
    configured = os.environ.get("FOODOPS_DELTA_WRITER")
    if configured:
        return configured
    # Databricks Runtime has Delta on its classpath: let Spark write Delta itself
    return "delta_spark" if os.environ.get(ON_DATABRICKS) else "auto"


def _where() -> str:
    runtime = os.environ.get(ON_DATABRICKS)
    return f"Databricks Runtime {runtime}" if runtime else f"host {os.uname().nodename}"


def _pipes_io(argv: Sequence[str]) -> dict[str, Any]:
    """Context loader, message writer and params loader for where the task runs.

    - a new job cluster: bootstrap params in env vars, context and messages on DBFS;
    - an existing cluster or serverless: params as task arguments; serverless exchanges
      context and messages through a Unity Catalog volume (``/Volumes/...``);
    - a local process (PipesSubprocessClient): Dagster's default files.
    """
    from dagster_pipes import (
        PipesCliArgsParamsLoader,
        PipesUnityCatalogVolumesContextLoader,
        PipesUnityCatalogVolumesMessageWriter,
    )

    io: dict[str, Any] = {}
    default = "dbfs" if os.environ.get(ON_DATABRICKS) else "default"
    if "--dagster-pipes-context" in argv:
        loader = PipesCliArgsParamsLoader()
        io["params_loader"] = loader
        if str(loader.load_context_params().get("path", "")).startswith("/Volumes/"):
            default = "volumes"
    transport = os.environ.get(ENV_PIPES_TRANSPORT) or default
    flush = float(os.environ.get("FOODOPS_PIPES_FLUSH_SECONDS", "5"))
    if transport == "dbfs":
        mount = os.environ.get(ENV_DBFS_MOUNT, "/dbfs")
        io["context_loader"] = _dbfs_context_loader(mount)
        io["message_writer"] = _dbfs_message_writer(mount, flush)
    elif transport == "volumes":
        mount = os.environ.get(ENV_VOLUMES_MOUNT, "/")
        io["context_loader"] = _mounted(PipesUnityCatalogVolumesContextLoader, mount)()
        io["message_writer"] = _mounted(PipesUnityCatalogVolumesMessageWriter, mount)(
            interval=flush
        )
    elif transport != "default":
        raise ValueError(f"{ENV_PIPES_TRANSPORT}={transport!r}: use dbfs, volumes or default")
    return io


def _mounted(cls, mount: str):
    """``cls`` (a loader or writer taking ``params["path"]``) reading under ``mount``."""

    class Mounted(cls):
        def load_context(self, params):
            return super().load_context({**params, "path": _under(mount, params["path"])})

        def make_channel(self, params):
            return super().make_channel({**params, "path": _under(mount, params["path"])})

    Mounted.__name__ = f"Mounted{cls.__name__}"
    return Mounted


def _under(mount: str, path: str) -> str:
    return os.path.join(mount, str(path).lstrip("/")) if mount != "/" else str(path)


def _dbfs_context_loader(mount: str):
    import json
    from contextlib import contextmanager

    from dagster_pipes import PipesContextLoader

    class MountedDbfsContextLoader(PipesContextLoader):
        """``PipesDbfsContextLoader`` with the DBFS mount point as a parameter."""

        @contextmanager
        def load_context(self, params: Mapping[str, Any]):
            path = os.path.join(mount, str(params["path"]).lstrip("/"))
            with open(path, encoding="utf-8") as f:
                yield json.load(f)

    return MountedDbfsContextLoader()


def _dbfs_message_writer(mount: str, flush: float):
    from dagster_pipes import PipesBufferedFilesystemMessageWriterChannel, PipesDbfsMessageWriter

    class MountedDbfsMessageWriter(PipesDbfsMessageWriter):
        """``PipesDbfsMessageWriter`` with the DBFS mount point as a parameter."""

        def make_channel(self, params):
            return PipesBufferedFilesystemMessageWriterChannel(
                path=os.path.join(mount, str(params["path"]).lstrip("/")),
                interval=self.interval,
            )

        def get_opened_extras(self):
            if not os.environ.get(ON_DATABRICKS):
                return {}  # cluster log delivery is a Databricks feature
            return super().get_opened_extras()

    return MountedDbfsMessageWriter(interval=flush)


if __name__ == "__main__":
    sys.exit(main())
