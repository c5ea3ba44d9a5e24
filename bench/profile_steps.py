"""Where a run's time goes: per-step wall time from the Dagster event log.

    DAGSTER_HOME=... .venv/bin/python bench/profile_steps.py [RUN_ID]

Without RUN_ID, every run of the instance, oldest first. Prints one line per step
(seconds, status), largest first, and the run's total.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg


def step_seconds(dagster_home: Path) -> tuple[float, dict[str, float]]:
    """(wall seconds of the run, {step: seconds}) of the newest run of the instance at
    dagster_home; the run's seconds go from its launch to its end, as the event log has them."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_runs(limit=1)[0]
        stats = instance.get_run_stats(run.run_id)
        total = (stats.end_time or 0) - (stats.launch_time or stats.start_time or 0)
        steps = {
            s.step_key: (s.end_time or 0) - (s.start_time or 0)
            for s in instance.get_run_step_stats(run.run_id)
        }
    return total, steps


def main() -> None:
    with dg.DagsterInstance.get() as instance:
        if len(sys.argv) > 1:
            run_ids = sys.argv[1:]
        else:
            run_ids = [r.run_id for r in reversed(instance.get_runs())]
        for run_id in run_ids:
            run = instance.get_run_by_id(run_id)
            stats = instance.get_run_stats(run_id)
            total = (stats.end_time or 0) - (stats.launch_time or stats.start_time or 0)
            print(
                f"run {run_id[:8]} {run.status.value} partition={run.tags.get('dagster/partition', '-')}"
                f" total={total:.1f}s"
            )
            steps = instance.get_run_step_stats(run_id)
            for s in sorted(steps, key=lambda s: -((s.end_time or 0) - (s.start_time or 0))):
                secs = (s.end_time or 0) - (s.start_time or 0)
                print(f"  {secs:7.1f}s  {s.status.value if s.status else '?':8} {s.step_key}")


if __name__ == "__main__":
    main()
