"""SCD type 2 history of a reference source, built from its sequence of full snapshots.

A reference source (restaurants, dishes) lands as full snapshots. Its history table holds
one row per key per *version*: a maximal run of consecutive applied snapshots in which the
key was present with the same tracked values (every contract column but the key, hashed
into ``row_hash``). A version is valid from the time of the snapshot that opened it
(``valid_from``) to the time of the first snapshot that no longer had it (``valid_to``,
null while current). A key missing from a newer snapshot is *closed*, not lost: its last
version gets ``valid_to`` and ``is_deleted = true``; a key that reappears opens a new
version. Snapshots are ordered by their own time (the landing file's name), never by
when they arrived.

The history is a pure function of the ordered sequence of applied snapshots, so applying
them in any order must give the same table. :func:`plan_snapshot` applies one snapshot
to a history and returns exactly the rows to insert, update and delete:

- an in-order snapshot (newer than every applied one) closes the current version of each
  key that changed or disappeared and opens a version for each new or changed key;
- a late snapshot (older than some applied one) rewrites only the keys whose state at its
  time differs from what it says: their versions from the snapshot before it onwards are
  folded again over the applied snapshots after it, so the result equals applying every
  snapshot in time order;
- keys whose rows were rejected (to the DLQ: a duplicate key, a broken rule) are *not
  observed* by that snapshot: their state carries over, as if the row had not been there
  at all, so a bad row never closes a good version.

Dimensions are small (thousands to ~100k keys), and the history is committed by a
delta-rs MERGE that takes Arrow, so this works on Python rows (``list[dict]``) rather
than Spark: no JVM is needed to reason about or test it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import decimal
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

# the columns a history table adds to the contract's
VALID_FROM = "valid_from"
VALID_TO = "valid_to"
IS_CURRENT = "is_current"
IS_DELETED = "is_deleted"
ROW_HASH = "row_hash"
SOURCE_FILE = "source_file"
HISTORY_COLUMNS = (ROW_HASH, VALID_FROM, VALID_TO, IS_CURRENT, IS_DELETED, SOURCE_FILE)
HISTORY_FIELDS = [
    pa.field(ROW_HASH, pa.string()),
    pa.field(VALID_FROM, pa.timestamp("us", tz="UTC")),
    pa.field(VALID_TO, pa.timestamp("us", tz="UTC")),
    pa.field(IS_CURRENT, pa.bool_()),
    pa.field(IS_DELETED, pa.bool_()),
    pa.field(SOURCE_FILE, pa.string()),
]
HISTORY_DESCRIPTIONS = {
    ROW_HASH: "SHA-256 of the tracked columns (every contract column but the key): a new value opens a new version.",
    VALID_FROM: "Time of the snapshot that opened this version (the snapshot's own time, from its file name; UTC).",
    VALID_TO: "Time of the first later snapshot without this version (changed or deleted); null while current.",
    IS_CURRENT: "True for the version the newest applied snapshot holds (valid_to is null).",
    IS_DELETED: "True when the version was closed because the key disappeared from the next snapshot.",
    SOURCE_FILE: "Snapshot file (name) that opened this version.",
}

# the rule a row breaks when its key appears more than once in one snapshot
DUPLICATE_KEY_RULE = "unique_key_in_snapshot"

Key = tuple


@dataclass(frozen=True, order=True)
class Snapshot:
    """One landed snapshot: its own time (from its name), its file name, and the keys whose
    rows it rejected (they carry their state over it: a late snapshot before it must
    carry its own state over it too)."""

    time: dt.datetime
    file: str
    rejected: frozenset = field(default=frozenset(), compare=False)


@dataclass
class Plan:
    """What applying one snapshot changes: the version rows to upsert (insert or replace,
    by key and ``valid_from``) and to delete, and the counts the UI shows."""

    snapshot: Snapshot
    late: bool
    upserts: list[dict] = field(default_factory=list)
    deletes: list[dict] = field(default_factory=list)
    opened: int = 0  # versions the snapshot opened (new or changed keys)
    closed: int = 0  # current versions it closed (changed or deleted keys)
    deleted_keys: int = 0  # keys it no longer holds
    unchanged: int = 0  # observed keys whose current version it confirms
    rewritten_keys: list[Key] = field(default_factory=list)  # keys whose versions it changed

    @property
    def changes(self) -> int:
        return len(self.upserts) + len(self.deletes)


def row_hash(values: Sequence) -> str:
    """SHA-256 of the tracked values, stable across runs and Python versions."""
    text = json.dumps([_plain(v) for v in values], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(v):
    if isinstance(v, decimal.Decimal):
        return str(v.normalize()) if v == v.to_integral_value() else str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return v


def history_schema(contract_schema: pa.Schema) -> pa.Schema:
    """The history table's schema: the contract's columns, then the version columns."""
    return pa.schema([*contract_schema, *HISTORY_FIELDS])


def observed_versions(
    rows: Iterable[Mapping], key: Sequence[str], tracked: Sequence[str]
) -> dict[Key, dict]:
    """Valid snapshot rows (one per key) as ``{key: {column: value, ..., row_hash}}``."""
    out = {}
    for r in rows:
        k = tuple(r[c] for c in key)
        if k in out:
            raise ValueError(f"key {k} appears twice: duplicates go to the DLQ first")
        out[k] = {
            **{c: r[c] for c in (*key, *tracked)},
            ROW_HASH: row_hash([r[c] for c in tracked]),
        }
    return out


def _covering(versions: Sequence[dict], t: dt.datetime) -> dict | None:
    """The version of a key valid at ``t`` (versions sorted by valid_from)."""
    for v in reversed(versions):
        if v[VALID_FROM] <= t:
            return v if v[VALID_TO] is None or t < v[VALID_TO] else None
    return None


def plan_snapshot(
    history: Iterable[Mapping],
    applied: Sequence[Snapshot],
    snapshot: Snapshot,
    observed: Mapping[Key, Mapping],
    not_observed: Iterable[Key],
    key: Sequence[str],
) -> Plan:
    """Apply ``snapshot`` (its valid rows ``observed`` by key, with their row hash; the keys
    of its rejected rows ``not_observed``) to ``history`` (the version rows of the
    snapshots ``applied``). See the module docstring."""
    times = sorted(s.time for s in applied)
    if snapshot.time in times:
        raise ValueError(
            f"snapshot {snapshot.file}: a snapshot of {snapshot.time.isoformat()} was already "
            "applied; two snapshots of one time have no order"
        )
    file_at = {s.time: s.file for s in applied}
    rejected_at = {s.time: s.rejected for s in applied}
    file_at[snapshot.time] = snapshot.file
    t = snapshot.time
    i = bisect.bisect_left(times, t)
    prev = times[i - 1] if i > 0 else None
    later = times[i:]
    plan = Plan(snapshot, late=bool(later))

    by_key: dict[Key, list[dict]] = {}
    for row in history:
        by_key.setdefault(tuple(row[c] for c in key), []).append(dict(row))
    for versions in by_key.values():
        versions.sort(key=lambda v: v[VALID_FROM])
    skipped = set(not_observed)

    for k in sorted(set(by_key) | set(observed), key=_sortable):
        if k in skipped:
            continue
        versions = by_key.get(k, [])
        before = _covering(versions, t)
        new = observed.get(k)
        if (before or {}).get(ROW_HASH) == (new or {}).get(ROW_HASH):
            if new is not None:
                plan.unchanged += 1
            continue
        # the key changes at t: fold its versions again from the snapshot before t on
        sequence = ([prev] if prev is not None else []) + [t] + later
        states: list = []
        for tau in sequence:
            if tau == t:
                states.append(new)
            elif tau > t and k in rejected_at.get(tau, ()):
                states.append(states[-1])  # its row was rejected then: the state carries
            else:
                states.append(_covering(versions, tau))
        tail = [v for v in versions if prev is None or v[VALID_TO] is None or v[VALID_TO] > prev]
        folded = _fold(sequence, states, prev, file_at)
        old_by_start = {v[VALID_FROM]: v for v in tail}
        new_by_start = {v[VALID_FROM]: v for v in folded}
        plan.deletes.extend(v for s, v in old_by_start.items() if s not in new_by_start)
        plan.upserts.extend(v for s, v in new_by_start.items() if _differs(old_by_start.get(s), v))
        plan.rewritten_keys.append(k)
        if new is not None:
            plan.opened += 1
        if before is not None:
            plan.closed += 1
            if new is None:
                plan.deleted_keys += 1
    return plan


def _fold(
    sequence: Sequence[dt.datetime],
    states: Sequence[Mapping | None],
    prev: dt.datetime | None,
    file_at: Mapping[dt.datetime, str],
) -> list[dict]:
    """Runs of equal states over ``sequence`` as version rows. A run starting at ``prev``
    continues the version that covered it (its valid_from and source file stay)."""
    versions: list[dict] = []
    start = 0
    for j in range(1, len(sequence) + 1):
        if j < len(sequence) and _hash(states[j]) == _hash(states[start]):
            continue
        state = states[start]
        if state is not None:
            continues = sequence[start] == prev
            row = {c: v for c, v in state.items() if c not in HISTORY_COLUMNS}
            row[ROW_HASH] = state[ROW_HASH]
            row[VALID_FROM] = state[VALID_FROM] if continues else sequence[start]
            row[SOURCE_FILE] = state[SOURCE_FILE] if continues else file_at[sequence[start]]
            ends = sequence[j] if j < len(sequence) else None
            row[VALID_TO] = ends
            row[IS_CURRENT] = ends is None
            row[IS_DELETED] = ends is not None and states[j] is None
            versions.append(row)
        start = j
    return versions


def _hash(state: Mapping | None) -> str | None:
    return None if state is None else state[ROW_HASH]


def _differs(old: Mapping | None, new: Mapping) -> bool:
    return old is None or any(old.get(c) != v for c, v in new.items())


def _sortable(k: Key) -> tuple:
    return tuple("" if v is None else str(v) for v in k)


def apply_plan(history: Iterable[Mapping], plan: Plan, key: Sequence[str]) -> list[dict]:
    """``history`` after ``plan`` (what the MERGE commits, computed in memory: the checks
    audit it before anything is published)."""

    def ident(r: Mapping) -> tuple:
        return (*(r[c] for c in key), r[VALID_FROM])

    gone = {ident(r) for r in plan.deletes} | {ident(r) for r in plan.upserts}
    kept = [dict(r) for r in history if ident(r) not in gone]
    return kept + [dict(r) for r in plan.upserts]


# -- the checks' logic: what must hold of any history -------------------------------------


def overlapping_versions(history: Iterable[Mapping], key: Sequence[str]) -> list[str]:
    """Keys whose validity intervals overlap (or are empty, or have two open ends)."""
    by_key: dict[Key, list[Mapping]] = {}
    for r in history:
        by_key.setdefault(tuple(r[c] for c in key), []).append(r)
    bad = []
    for k, versions in by_key.items():
        versions = sorted(versions, key=lambda v: v[VALID_FROM])
        for a, b in zip(versions, versions[1:], strict=False):
            if a[VALID_TO] is None or a[VALID_TO] > b[VALID_FROM]:
                bad.append(f"{'/'.join(map(str, k))}: {a[VALID_FROM]} overlaps {b[VALID_FROM]}")
        bad.extend(
            f"{'/'.join(map(str, k))}: empty interval at {v[VALID_FROM]}"
            for v in versions
            if v[VALID_TO] is not None and v[VALID_TO] <= v[VALID_FROM]
        )
    return sorted(bad)


def current_version_problems(
    history: Iterable[Mapping], key: Sequence[str], live: Iterable[Key] | None = None
) -> list[str]:
    """Keys without exactly one current version when live (``live``: the keys the newest
    snapshot holds, if known), with a current version when not, or whose ``is_current``
    disagrees with an open ``valid_to``."""
    current: dict[Key, int] = {}
    problems = []
    for r in history:
        k = tuple(r[c] for c in key)
        if r[IS_CURRENT] != (r[VALID_TO] is None):
            problems.append(f"{'/'.join(map(str, k))}: is_current disagrees with valid_to")
        if r[IS_CURRENT] and r[IS_DELETED]:
            problems.append(f"{'/'.join(map(str, k))}: a current version marked deleted")
        current[k] = current.get(k, 0) + int(bool(r[IS_CURRENT]))
    problems.extend(
        f"{'/'.join(map(str, k))}: {n} current versions" for k, n in current.items() if n > 1
    )
    if live is not None:
        live = set(live)
        problems.extend(
            f"{'/'.join(map(str, k))}: live but no current version"
            for k in live
            if current.get(k, 0) != 1
        )
        problems.extend(
            f"{'/'.join(map(str, k))}: not live but current"
            for k, n in current.items()
            if n and k not in live
        )
    return sorted(problems)


def lost_versions(
    before: Iterable[Mapping],
    after: Iterable[Mapping],
    key: Sequence[str],
    rewritten: Iterable[Key],
) -> list[str]:
    """Versions of ``before`` missing from ``after`` outside the keys a late snapshot
    rewrote (only a late snapshot may re-cut a key's versions)."""
    allowed = set(rewritten)

    def ident(r: Mapping) -> tuple:
        return (*(r[c] for c in key), r[VALID_FROM])

    kept = {ident(r) for r in after}
    return sorted(
        f"{'/'.join(map(str, ident(r)[:-1]))} from {r[VALID_FROM]}"
        for r in before
        if ident(r) not in kept and tuple(r[c] for c in key) not in allowed
    )


def live_keys(history: Iterable[Mapping], key: Sequence[str]) -> set[Key]:
    """Keys with a current version."""
    return {tuple(r[c] for c in key) for r in history if r[IS_CURRENT]}
