"""What to re-materialise when a file lands late in an old ``date=`` directory.

A late file for day D of a daily source changes that source's bronze and
silver partition D, and every downstream partition that reads it through a
partition mapping: a review of D changes ``restaurant_ratings_daily`` for
D..D+29 (its rolling window), a late order of D changes the deliveries and
reviews of the following days that look orders up (their references'
lookback). The plan is computed from the asset graph — the same partition
mappings Dagster uses to mark those partitions stale — not from date math
kept next to it, so it stays right when assets are added.

``foodops late-data --source reviews --date 2026-11-01`` prints the plan as
``dagster asset materialize`` commands, in dependency order.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

import dagster as dg


@dataclass(frozen=True)
class Step:
    """One run: these assets, this contiguous range of daily partitions."""

    assets: tuple[str, ...]
    first: str
    last: str

    def command(self, module: str = "foodops_assets") -> str:
        partitions = (
            f"--partition {self.first}"
            if self.first == self.last
            else f"--partition-range {self.first}...{self.last}"
        )
        return (
            f"dagster asset materialize -m {module} --select {','.join(self.assets)} {partitions}"
        )


def replan(defs: dg.Definitions, source: str, day: dt.date) -> list[Step]:
    """The runs that bring every asset downstream of ``<source>_raw`` partition ``day``
    up to date, in dependency order (each step only reads what earlier steps wrote)."""
    graph = defs.resolve_asset_graph()
    root = dg.AssetKey(f"{source}_raw")
    if not graph.has(root) or graph.get(root).partitions_def is None:
        raise ValueError(
            f"{source!r} is not a daily landing source (no partitioned {root.path[0]})"
        )
    key = day.isoformat()
    if not graph.get(root).partitions_def.has_partition_key(key):
        raise ValueError(f"{key} is not a partition of {root.path[0]}")

    partitions: dict[dg.AssetKey, set[str]] = defaultdict(set)
    partitions[root].add(key)
    frontier = [(root, key)]
    while frontier:
        asset, partition = frontier.pop()
        for child in graph.get(asset).child_keys:
            node = graph.get(child)
            if node.partitions_def is None:
                continue
            for child_key in graph.get_child_partition_keys_of_parent(partition, asset, child):
                if child_key not in partitions[child]:
                    partitions[child].add(child_key)
                    frontier.append((child, child_key))

    order = {k: i for i, k in enumerate(graph.toposorted_asset_keys)}
    by_range: dict[tuple[str, str], list[dg.AssetKey]] = defaultdict(list)
    for asset, keys in partitions.items():
        if not graph.get(asset).is_executable:
            continue  # written by another asset's step (dead_letter_queue)
        by_range[(min(keys), max(keys))].append(asset)
    groups = list(by_range.items())
    ordered = _dependency_order(graph, groups, order)
    if ordered is None:
        # two ranges need each other: one step per range and depth in the graph instead
        depth: dict[dg.AssetKey, int] = {}
        for a in sorted(partitions, key=order.get):
            parents = [p for p in graph.get(a).parent_keys if p in partitions]
            depth[a] = 1 + max((depth[p] for p in parents), default=-1)
        split: dict[tuple[str, str, int], list[dg.AssetKey]] = defaultdict(list)
        for (first, last), assets in groups:
            for a in assets:
                split[(first, last, depth[a])].append(a)
        groups = [((f, la), assets) for (f, la, _), assets in split.items()]
        ordered = _dependency_order(graph, groups, order)
        assert ordered is not None  # deeper steps only read shallower ones
    return [
        Step(tuple(a.to_user_string() for a in sorted(assets, key=order.get)), first, last)
        for (first, last), assets in ordered
    ]


def _dependency_order(graph, groups, order):
    """The groups so that each comes after every group holding one of its parents
    (ties: graph order, then range); None if two groups depend on each other."""
    owner = {a: i for i, (_, assets) in enumerate(groups) for a in assets}
    needs = {
        i: {owner[p] for a in assets for p in graph.get(a).parent_keys if owner.get(p, i) != i}
        for i, (_, assets) in enumerate(groups)
    }

    def rank(i):
        (first, last), assets = groups[i]
        return (min(order[a] for a in assets), first, last)

    done: list[int] = []
    while len(done) < len(groups):
        ready = [i for i in needs if i not in done and needs[i] <= set(done)]
        if not ready:
            return None
        done.append(min(ready, key=rank))
    return [groups[i] for i in done]
