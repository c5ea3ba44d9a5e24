"""Re-execute a failed run from failure: only the failed steps and what follows them run;
steps that succeeded are not recomputed (their outputs are Delta tables already written).

In the UI: open the failed run, "Re-execute" -> "From failure". On the command line
(``dagster job execute`` has no from-failure flag): ``foodops rerun RUN_ID``.
"""

from __future__ import annotations

import importlib
import os

import dagster as dg

# named, not imported: operations sit below the code location that lists them
CODE_LOCATION_MODULE = "foodops_assets.definitions"


def code_location_job(job_name: str) -> dg.JobDefinition:
    """``job_name`` as the code location defines it (the implicit ``__ASSET_JOB`` too),
    built from the environment like the CLI builds it."""
    defs = importlib.import_module(CODE_LOCATION_MODULE).defs()
    return defs.resolve_job_def(job_name)


def reconstructable_job(job_name: str):
    """A job of the code location, loadable again by run workers (like the CLI loads it)."""
    return dg.build_reconstructable_job(
        __name__,
        code_location_job.__name__,
        reconstructable_args=(job_name,),
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
    return dg.execute_job(
        reconstructable_job(run.job_name),
        instance=instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance),
        tags=partition_tags,
        raise_on_error=False,
    )
