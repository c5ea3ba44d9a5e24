"""Fault injection for resilience drills and tests: ``FOODOPS_FAULTS``.

A comma-separated list of fault points, read when a write happens (never at
import time). Unset in production; the drills in ``foodops_assets_tests`` and
the README's operator how-tos use it to prove that a failed, killed or buggy
write leaves readers on the last good version.

| point | effect |
|---|---|
| ``fail_write:<table>`` | the write of ``<table>`` raises before anything is written |
| ``hang_write:<table>`` | the write streams its first batch of Parquet data (``spark_files``: writes and moves all its files; ``delta_spark``: nothing yet), then blocks before its commit (a SIGKILL target); touches ``FOODOPS_FAULT_MARKER`` when it blocks, and goes on writing once the file ``FOODOPS_FAULT_RELEASE`` exists (a writer held mid-write) |
| ``hang_write:<table>@<YYYY-MM-DD>`` | the same, only for a write that includes that partition (the other partitions' writes go through: one run held while others run) |
| ``duplicate_write:<table>`` | the write commits every row twice (a buggy writer the published checks must catch) |
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_FAULTS = "FOODOPS_FAULTS"
ENV_FAULT_MARKER = "FOODOPS_FAULT_MARKER"
ENV_FAULT_RELEASE = "FOODOPS_FAULT_RELEASE"


class InjectedFault(RuntimeError):
    """Raised by a ``fail_write`` fault point."""


def active(point: str) -> bool:
    raw = os.environ.get(ENV_FAULTS, "")
    return point in {p.strip() for p in raw.split(",") if p.strip()}


def fail_if_injected(table: str) -> None:
    if active(f"fail_write:{table}"):
        raise InjectedFault(
            f"injected fault: the write of {table} failed ({ENV_FAULTS}=fail_write:{table})"
        )


def hang(table: str) -> None:
    """Block, after signalling where, until the process is killed or the release file
    (``FOODOPS_FAULT_RELEASE``, when set) appears."""
    marker = os.environ.get(ENV_FAULT_MARKER)
    release = os.environ.get(ENV_FAULT_RELEASE)
    if marker:
        Path(marker).write_text(f"hanging in the write of {table}\n")
    while not (release and Path(release).exists()):
        time.sleep(0.2)
