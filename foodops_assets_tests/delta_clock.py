"""The tests' clock for Delta tables: date a table's commits in the past.

VACUUM, checkpoints and log cleanup compare the times a Delta log records (a commit's
``timestamp``, a remove action's ``deletionTimestamp``, a data file's modification
time) with the wall clock. A test cannot wait a week, so it writes a real table and then
rewrites those times as if each commit had happened days ago: the same thing delta-rs
would have written had the commits really been made then. Only the JSON commits are
rewritten; checkpoints (a cache of them, written again by the next maintenance) are
dropped, so the table is read from its JSON commits, which must all still be there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path


def date_commits(table_uri: str | Path, when: Mapping[int, dt.datetime]) -> None:
    """Make commit ``v`` (its log file, its add/remove actions, the data files it added)
    carry the time ``when[v]``. Versions not named keep their times."""
    root = Path(table_uri)
    log = root / "_delta_log"
    if not (log / f"{0:020d}.json").exists():
        raise AssertionError(f"{root}: the log was cleaned up, its commits cannot be redated")
    for checkpoint in [*log.glob("*.checkpoint*.parquet"), log / "_last_checkpoint"]:
        checkpoint.unlink(missing_ok=True)
    for version, moment in when.items():
        path = log / f"{version:020d}.json"
        ms = int(moment.timestamp() * 1000)
        actions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for action in actions:
            if "commitInfo" in action:
                action["commitInfo"]["timestamp"] = ms
            if "add" in action:
                action["add"]["modificationTime"] = ms
                _touch(root / _unquote(action["add"]["path"]), ms)
            if "remove" in action and action["remove"].get("deletionTimestamp") is not None:
                action["remove"]["deletionTimestamp"] = ms
        path.write_text("".join(json.dumps(a) + "\n" for a in actions))
        _touch(path, ms)


def days_ago(days: float, now: dt.datetime | None = None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)


def _touch(path: Path, ms: int) -> None:
    if path.exists():
        os.utime(path, ns=(ms * 1_000_000, ms * 1_000_000))


def _unquote(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)
