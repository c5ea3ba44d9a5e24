"""Jobs that the warm run worker's tests launch (loaded by the worker's children by module)."""

import os
import time
from pathlib import Path

import dagster as dg


@dg.op
def write_pid(context: dg.OpExecutionContext) -> None:
    context.log.info(f"ran in pid {os.getpid()}")
    marker = os.environ.get("WARM_RUNS_TEST_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()))


@dg.job(executor_def=dg.in_process_executor)
def quick():
    write_pid()


@dg.op
def wait_a_minute(context: dg.OpExecutionContext) -> None:
    context.log.info(f"waiting in pid {os.getpid()}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)


@dg.job(executor_def=dg.in_process_executor)
def slow():
    wait_a_minute()
