"""What landed since the last look: the scan behind the file-arrival sensors.

Pure Python (no Dagster, no Spark). A scan of a daily source lists the
``date=YYYY-MM-DD`` directories (one ``os.scandir`` of the source directory)
and re-lists only the directories whose modification time changed since the
cursor: adding or renaming a file into a directory changes its mtime, so a
tick over 100,000 landed files reads a few directory entries, not 100,000
file entries. Each directory's state in the cursor is its mtime and a digest
of its complete files (names and sizes); a directory whose digest changed
has new files and yields one :class:`Arrival` for its partition.

Not picked up (a producer is still writing): ``*.tmp`` and any name not
ending in ``.jsonl``, hidden or ``_``-prefixed names, and files modified
less than ``settle_seconds`` ago. A directory holding such an unsettled file
keeps its old cursor entry, so the next tick looks at it again. A directory
modified within the last moments is always re-listed (a file landing in the
same clock tick as a scan would otherwise leave its mtime unchanged).

Reference snapshots (restaurants, dishes) have no date directories: the
newest complete snapshot (by name, as bronze loads it) is the cursor.

Confinement (as the landing reader, :mod:`.landing`): given the landing root, a
date directory or file whose real path is outside it (a symlink to elsewhere on
the machine) is not followed; it is listed in :attr:`ScanResult.refused` and
requests nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .landing import is_complete_landing_file, outside_root

DATE_DIR_PREFIX = "date="
# a directory modified this recently is re-listed on the next tick too: file
# system timestamps are coarse (a jiffy), so a file landing in the same tick as
# a scan may leave the directory's mtime where the scan saw it
RECENT_DIR_SECONDS = 2.0


@dataclass(frozen=True)
class Arrival:
    """New complete files of one partition (or a new snapshot)."""

    source: str
    partition: str | None  # YYYY-MM-DD, None for a snapshot
    digest: str  # of every complete file of the partition: same files, same digest
    files: tuple[str, ...]  # names of the complete files
    newest_mtime_ns: int = 0  # of the newest complete file

    @property
    def run_key(self) -> str:
        """Stable: the same files never make two run requests."""
        return f"{self.source}:{self.partition or 'snapshot'}:{self.digest}"


@dataclass
class ScanResult:
    arrivals: list[Arrival] = field(default_factory=list)
    cursor: dict = field(default_factory=dict)
    directories_listed: int = 0  # how many date directories were opened
    unsettled: list[str] = field(default_factory=list)  # files still being written
    # when each of them will have settled (epoch seconds), if nothing writes to it again
    unsettled_until: list[float] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # date directories that are not partitions
    # entries resolving outside the landing root, with the reason: never followed
    refused: list[str] = field(default_factory=list)


def load_cursor(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def dump_cursor(cursor: dict) -> str:
    return json.dumps(cursor, sort_keys=True, separators=(",", ":"))


def _digest(entries: list[tuple[str, int]]) -> str:
    h = hashlib.sha256()
    for name, size in sorted(entries):
        h.update(f"{name}\0{size}\n".encode())
    return h.hexdigest()[:16]


def _complete_files(
    directory: str,
    settle_seconds: float,
    now: float,
    root: str | None = None,
    refused: list[str] | None = None,
) -> tuple[list[tuple[str, int, int]], list[tuple[str, float]]]:
    """(complete settled files as (name, size, mtime_ns), unsettled files as (name, settled
    at)) of a directory;
    with ``root``, a file resolving outside it is appended to ``refused`` instead."""
    complete, unsettled = [], []
    with os.scandir(directory) as entries:
        for entry in entries:
            if not is_complete_landing_file(entry.name):
                continue
            if root is not None and (why := outside_root(entry.path, root)) is not None:
                if refused is not None:
                    refused.append(why)
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except FileNotFoundError:  # renamed away while we looked
                continue
            if now - st.st_mtime < settle_seconds:
                unsettled.append((entry.name, st.st_mtime + settle_seconds))
            else:
                complete.append((entry.name, st.st_size, st.st_mtime_ns))
    return complete, unsettled


def scan_daily(
    source: str,
    source_dir: str,
    cursor: dict,
    *,
    settle_seconds: float,
    is_partition: Callable[[str], bool] = lambda _key: True,
    now: float | None = None,
    landing_root: str | None = None,
) -> ScanResult:
    """New files per partition of a daily source, and the cursor to store.

    ``cursor`` maps ``YYYY-MM-DD`` to ``[dir_mtime_ns, digest]``. ``is_partition``
    says whether a date is a partition yet (today's is not: it is still open);
    a directory of a date that is not keeps its cursor entry, so it is picked
    up once its partition exists. With ``landing_root``, entries resolving outside it are
    refused (:attr:`ScanResult.refused`).
    """
    now = time.time() if now is None else now
    result = ScanResult(cursor=dict(cursor))
    if landing_root is not None and (why := outside_root(source_dir, landing_root)) is not None:
        result.refused.append(why)
        return result
    try:
        entries = list(os.scandir(source_dir))
    except FileNotFoundError:
        return result
    for entry in sorted(entries, key=lambda e: e.name):
        if not entry.name.startswith(DATE_DIR_PREFIX) or not entry.is_dir():
            continue
        if landing_root is not None and (why := outside_root(entry.path, landing_root)):
            result.refused.append(why)
            continue
        key = entry.name[len(DATE_DIR_PREFIX) :]
        try:
            dt.date.fromisoformat(key)
        except ValueError:
            result.skipped.append(entry.name)
            continue
        try:
            mtime_ns = entry.stat().st_mtime_ns
        except FileNotFoundError:
            continue
        seen = cursor.get(key)
        if seen and seen[0] == mtime_ns:
            continue  # nothing added, renamed or removed since the last look
        if not is_partition(key):
            result.skipped.append(entry.name)
            continue
        result.directories_listed += 1
        files, unsettled = _complete_files(
            entry.path, settle_seconds, now, landing_root, result.refused
        )
        if unsettled:
            result.unsettled.extend(f"{entry.name}/{n}" for n, _ in unsettled)
            result.unsettled_until.extend(t for _, t in unsettled)
        digest = _digest([(name, size) for name, size, _ in files])
        if files and (not seen or seen[1] != digest):
            result.arrivals.append(
                Arrival(
                    source,
                    key,
                    digest,
                    tuple(sorted(name for name, _, _ in files)),
                    max(m for _, _, m in files),
                )
            )
        if unsettled:
            # look again next tick; what settled now is requested now (run keys dedupe)
            result.cursor[key] = [-1, digest]
        else:
            recent = now - mtime_ns / 1e9 < RECENT_DIR_SECONDS
            result.cursor[key] = [-1 if recent else mtime_ns, digest]
    return result


def scan_snapshot(
    source: str,
    source_dir: str,
    cursor: dict,
    *,
    settle_seconds: float,
    now: float | None = None,
    landing_root: str | None = None,
) -> ScanResult:
    """The newest complete snapshot of a reference source, when it is new or when any
    snapshot landed since (a late one, older than the newest: the history tables apply it).

    ``cursor`` is ``{"snapshot": name, "digest": ...}``; the digest covers every snapshot.
    """
    now = time.time() if now is None else now
    result = ScanResult(cursor=dict(cursor))
    if landing_root is not None and (why := outside_root(source_dir, landing_root)) is not None:
        result.refused.append(why)
        return result
    try:
        files, unsettled = _complete_files(
            source_dir, settle_seconds, now, landing_root, result.refused
        )
    except FileNotFoundError:
        return result
    result.directories_listed = 1
    result.unsettled = [n for n, _ in unsettled]
    result.unsettled_until = [t for _, t in unsettled]
    if not files:
        return result
    name, size, mtime_ns = max(files)
    newest = [(name, size), (str(mtime_ns), 0)]
    older = [(n, sz) for n, sz, _ in sorted(files) if n != name]
    digest = _digest(newest + older) if older else _digest(newest)
    if cursor.get("snapshot") != name or cursor.get("digest") != digest:
        result.arrivals.append(Arrival(source, None, digest, (name,), mtime_ns))
        result.cursor = {"snapshot": name, "digest": digest}
    return result
