"""The landing zone: where producers drop JSON Lines files (DESIGN.md section 3).

```
<landing>/<source>/date=YYYY-MM-DD/<batch>.jsonl   daily sources
<landing>/<source>/<snapshot>.jsonl                reference snapshots, newest name wins
```

A snapshot's own time is in its name: ``snapshot-YYYYMMDD.jsonl`` (midnight UTC) or
``snapshot-YYYYMMDDTHHMMSSZ.jsonl``; it orders the versions of the history tables
(:func:`snapshot_time`), never the file's modification time.

Only complete ``*.jsonl`` files count: producers write ``<batch>.jsonl.tmp`` (or
a hidden ``.name``) and rename when done, so a file still being written is
never read.

**Confinement.** Nothing is read from outside the landing root: an entry (a
source or date directory, a landed file) whose real path — every symlink
resolved — is not under the landing root's real path is not followed. It is
reported (:class:`RefusedEntry`: bronze's metadata, and a reason note in the
quarantine, never a copy of its content) and skipped. The quarantine writes only
below the landing root, and the DLQ replay reads its corrections file only from
there (:func:`confined_path`). Object-store roots have no symlinks.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pyarrow import fs as pafs
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..settings import ENV_LANDING_ROOT, is_remote_uri

LANDING_SUFFIX = ".jsonl"
SNAPSHOT_NAME = re.compile(r"^snapshot-(\d{8})(?:T(\d{6})Z?)?\.jsonl$")
SNAPSHOT_NAMING = "snapshot-YYYYMMDD.jsonl or snapshot-YYYYMMDDTHHMMSSZ.jsonl (UTC)"


class LandingError(FileNotFoundError):
    """Expected landing files are missing; the message says where they should be."""


@dataclass(frozen=True)
class LandedFile:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class RefusedEntry:
    """A landing entry that resolves outside the landing root: reported, never read."""

    path: str
    reason: str


@dataclass
class DailyListing:
    files: dict[dt.date, list[LandedFile]]
    refused: list[RefusedEntry] = field(default_factory=list)


def is_complete_landing_file(name: str) -> bool:
    return name.endswith(LANDING_SUFFIX) and not name.startswith((".", "_"))


def outside_root(path: str, root: str) -> str | None:
    """Why the local ``path`` may not be followed (its real path is not under the real
    path of ``root``), or None when it stays inside."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    link = " (a symlink)" if os.path.islink(path) else ""
    return f"{path}{link} resolves to {real}, outside the landing root {real_root}: not read"


def confined_path(path: str, root: str, what: str) -> Path:
    """``path`` (relative ones below ``root``) when it resolves inside ``root``; else a
    ``LandingError`` saying where to put it."""
    candidate = Path(path) if Path(path).is_absolute() else Path(root) / path
    why = outside_root(str(candidate), root)
    if why is not None:
        raise LandingError(
            f"{what} {why.removesuffix(': not read')}. Put it under the landing root "
            f"(e.g. {Path(root) / '_corrections' / candidate.name}); a relative path is "
            "read from there."
        )
    return candidate


class LandingZone:
    def __init__(self, root: str):
        self.root = root.rstrip("/") if is_remote_uri(root) else str(Path(root))

    def _fs(self) -> tuple[pafs.FileSystem, str]:
        if is_remote_uri(self.root):
            return pafs.FileSystem.from_uri(self.root)
        return pafs.LocalFileSystem(), str(Path(self.root).resolve())

    def source_dir(self, source: str) -> str:
        return f"{self.root}/{source}"

    def partition_dir(self, source: str, day: dt.date) -> str:
        return f"{self.root}/{source}/date={day.isoformat()}"

    def _list(
        self, relative: str, refused: list[RefusedEntry] | None = None
    ) -> list[LandedFile] | None:
        """Complete landing files directly under ``relative``; None if it does not exist.
        Entries resolving outside the landing root are appended to ``refused``, not listed."""
        fs, base = self._fs()
        directory = f"{base}/{relative}"
        info = fs.get_file_info(directory)
        if info.type == pafs.FileType.NotFound:
            return None
        local = not is_remote_uri(self.root)
        refused = [] if refused is None else refused
        if local and (why := outside_root(directory, base)) is not None:
            refused.append(RefusedEntry(directory, why))
            return []
        if info.type != pafs.FileType.Directory:
            raise LandingError(f"{self.root}/{relative} is not a directory")
        found = fs.get_file_info(pafs.FileSelector(directory, recursive=False))
        files = []
        for f in found:
            if not is_complete_landing_file(f.base_name):
                continue
            if local and (why := outside_root(f.path, base)) is not None:
                refused.append(RefusedEntry(self._uri(f.path), why))
                continue
            if f.type == pafs.FileType.File:
                files.append(
                    LandedFile(path=self._uri(f.path), size=f.size or 0, mtime_ns=f.mtime_ns or 0)
                )
        return sorted(files, key=lambda f: f.path)

    def quarantine(self, source_file: str, reason: str, copy: bool = True) -> str:
        """Copy a landed file aside (landing files are immutable: it stays where it is, and
        its lines stay accounted for) with a note saying why; returns the copy's path.
        With ``copy=False`` (an entry refused for resolving outside the root) only the note
        is written. Nothing is written unless the quarantine resolves inside the root."""
        fs, base = self._fs()
        local = source_file.split("://", 1)[1] if is_remote_uri(source_file) else source_file
        target = quarantine_path(base, local)
        folder = target.rsplit("/", 1)[0]
        if not is_remote_uri(self.root):
            # the folder may not exist yet: its nearest existing ancestor must stay inside
            existing = folder
            while not os.path.lexists(existing) and existing != base:
                existing = existing.rsplit("/", 1)[0]
            for path in (existing, target, target + ".reason.txt"):
                if os.path.lexists(path) and (why := outside_root(path, base)) is not None:
                    raise LandingError(f"quarantine refused: {why}")
        fs.create_dir(folder, recursive=True)
        if copy:
            fs.copy_file(local, target)
        with fs.open_output_stream(target + ".reason.txt") as out:
            out.write(f"{reason}\n".encode())
        return self._uri(target + ("" if copy else ".reason.txt"))

    def _uri(self, fs_path: str) -> str:
        if is_remote_uri(self.root):
            return f"{self.root.split('://', 1)[0]}://{fs_path}"
        return fs_path

    def daily_files(self, source: str, days: Iterable[dt.date]) -> dict[dt.date, list[LandedFile]]:
        """The landed files of each day; fails naming every day that has none."""
        return self.daily_listing(source, days).files

    def daily_listing(self, source: str, days: Iterable[dt.date]) -> DailyListing:
        """The landed files of each day and the entries refused for resolving outside the
        landing root; fails naming every day that has no file to read."""
        result: dict[dt.date, list[LandedFile]] = {}
        refused: list[RefusedEntry] = []
        missing: list[str] = []
        for day in sorted(set(days)):
            before = len(refused)
            files = self._list(f"{source}/date={day.isoformat()}", refused)
            if files is None:
                missing.append(f"{self.partition_dir(source, day)} (directory missing)")
            elif not files:
                note = (
                    "; ".join(r.reason for r in refused[before:])
                    if len(refused) > before
                    else "no *.jsonl files"
                )
                missing.append(f"{self.partition_dir(source, day)} ({note})")
            else:
                result[day] = files
        if missing:
            raise LandingError(
                f"No landed {source} files for: {'; '.join(missing)}. Land the day's files there "
                f"(or check {ENV_LANDING_ROOT}={self.root}), or pick partitions that have data."
            )
        return DailyListing(result, refused)

    def newest_snapshot(self, source: str, refused: list[RefusedEntry] | None = None) -> LandedFile:
        """The newest complete snapshot; entries resolving outside the landing root are
        appended to ``refused`` instead."""
        refused = [] if refused is None else refused
        files = self._list(source, refused)
        if not files:
            why = f" ({'; '.join(r.reason for r in refused)})" if refused else ""
            raise LandingError(
                f"No {source} snapshot in {self.source_dir(source)}{why}: land a full snapshot as "
                f"<name>{LANDING_SUFFIX} there (or check {ENV_LANDING_ROOT}={self.root})."
            )
        # the newest by the time in the name (snapshot-20261102T120000Z is older than
        # snapshot-20261103), the name alone for names without a time
        return max(files, key=lambda f: _newest_key(Path(f.path).name))

    def snapshots(self, source: str) -> list[tuple[dt.datetime, LandedFile]]:
        """Every landed snapshot of ``source`` with its own time, oldest first; fails naming
        a file whose name carries no time (it cannot be placed in the history)."""
        files = self._list(source)
        if not files:
            raise LandingError(
                f"No {source} snapshot in {self.source_dir(source)}: land a full snapshot as "
                f"{SNAPSHOT_NAMING} there (or check {ENV_LANDING_ROOT}={self.root})."
            )
        timed, unnamed = [], []
        for f in files:
            t = snapshot_time(Path(f.path).name)
            (unnamed.append(f.path) if t is None else timed.append((t, f)))
        if unnamed:
            raise LandingError(
                f"{source} snapshots without a time in their name: {', '.join(unnamed)}. "
                f"Name a snapshot {SNAPSHOT_NAMING}: its time orders the history."
            )
        return sorted(timed, key=lambda tf: (tf[0], tf[1].path))


def _newest_key(name: str) -> tuple:
    t = snapshot_time(name)
    return (t is not None, t.isoformat() if t else "", name)


def snapshot_time(name: str) -> dt.datetime | None:
    """The time a snapshot file's name says (UTC), None when it says none."""
    m = SNAPSHOT_NAME.match(name)
    if not m:
        return None
    try:
        return dt.datetime.strptime(m.group(1) + (m.group(2) or "000000"), "%Y%m%d%H%M%S").replace(
            tzinfo=dt.UTC
        )
    except ValueError:
        return None


QUARANTINE_DIR = "_quarantine"


def quarantine_path(root: str, source_file: str) -> str:
    """Where a whole-file problem is copied aside: ``<landing>/_quarantine/<path below landing>``."""
    base = root.rstrip("/")
    relative = (
        source_file[len(base) :].lstrip("/")
        if source_file.startswith(base)
        else Path(source_file).name
    )
    return f"{base}/{QUARANTINE_DIR}/{relative}"


def read_whole_files(spark: SparkSession, paths: list[str]) -> DataFrame:
    """One row per file: ``path`` (as given), ``landed_at`` (its modification
    time) and its decoded text ``content``."""
    # wholetext goes through text()'s own argument: text() sets every option it
    # names, so .option("wholetext", ...) before it would be reset to one row per line
    df = spark.read.text(paths, wholetext=True)
    raw_path = F.col("_metadata.file_path")
    local_path = F.url_decode(F.regexp_replace(raw_path, r"^file:(//)?", ""))
    return df.select(
        F.when(raw_path.startswith("file:"), local_path).otherwise(raw_path).alias("path"),
        F.col("_metadata.file_modification_time").alias("landed_at"),
        F.col("value").alias("content"),
    )
