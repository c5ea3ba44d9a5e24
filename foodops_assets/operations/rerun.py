"""Re-execute a failed run from failure: only the failed steps and what follows them run;
steps that succeeded are not recomputed (their outputs are Delta tables already written).

In the UI: open the failed run, "Re-execute" -> "From failure". On the command line
(``dagster job execute`` has no from-failure flag): ``foodops rerun RUN_ID``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence

import dagster as dg

# named, not imported: operations sit below the code location that lists them
CODE_LOCATION_MODULE = "foodops_assets.definitions"
# Dagster's job for `dagster asset materialize`, sensors and automation; a job rebuilt outside
# the code location cannot carry that reserved name, so its runs re-execute as RERUN_JOB: the
# same assets, so the same step keys, partitions and selection
IMPLICIT_ASSET_JOB = "__ASSET_JOB"
RERUN_JOB = "foodops_rerun"


def code_location_job(job_name: str, assets: Sequence[str] = ()) -> dg.JobDefinition:
    """``job_name`` as the code location defines it, built from the environment like the CLI
    builds it; the implicit asset job as ``RERUN_JOB`` over ``assets`` (all when empty)."""
    defs = importlib.import_module(CODE_LOCATION_MODULE).defs()
    if job_name not in (IMPLICIT_ASSET_JOB, RERUN_JOB):
        return defs.resolve_job_def(job_name)
    selection = dg.AssetSelection.assets(*assets) if assets else dg.AssetSelection.all()
    rerun = dg.define_asset_job(RERUN_JOB, selection=selection)
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[rerun])).resolve_job_def(RERUN_JOB)


def reconstructable_job(job_name: str, assets: Sequence[str] = ()):
    """A job of the code location, loadable again by run workers (like the CLI loads it)."""
    return dg.build_reconstructable_job(
        __name__,
        code_location_job.__name__,
        reconstructable_args=(job_name, list(assets)),
        reconstructor_working_directory=os.getcwd(),
    )


def rerun_from_failure(run_id: str, instance: dg.DagsterInstance) -> dg.ExecutionResult:
    """Execute the failed steps of ``run_id`` and everything downstream, as a new run."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ValueError(f"no run {run_id} in the Dagster instance at {instance.root_directory}")
    if run.status != dg.DagsterRunStatus.FAILURE:
        raise ValueError(
            f"run {run_id} is {run.status.value}, not FAILURE: only a failed run is re-executed "
            "from failure"
        )
    # the partition (or range) of the failed run travels with the re-execution, as in the UI
    partition_tags = {
        k: v
        for k, v in run.tags.items()
        if k.startswith(("dagster/partition", "dagster/asset_partition_range"))
    }
    assets = sorted(key.to_user_string() for key in run.asset_selection or ())
    return dg.execute_job(
        reconstructable_job(run.job_name, assets),
        instance=instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance),
        tags=partition_tags,
        raise_on_error=False,
    )
