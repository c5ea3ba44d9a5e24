"""The Spark assets as Pipes multi-assets: same keys, specs and checks, run remotely.

With ``FOODOPS_EXECUTION=databricks`` (or ``pipes_subprocess``) every asset
that needs Spark is replaced by a multi-asset carrying exactly its specs —
key, group, description, owners, partitions, metadata, dependencies — and
its check specs (and the specs of separate asset checks that need Spark:
they run on the cluster too). One multi-asset for the reference snapshots, and
as few as possible for the daily assets: a step materialises the selected
subset of its multi-asset in ONE remote run (one Databricks job run), in
dependency order, with the same audit-before-publish behaviour as a local
run. A Dagster asset definition reads each upstream through one partition
mapping, so the daily assets are cut where two read the same upstream
differently: deliveries_valid and reviews_valid read orders_valid over
lookback windows of their own, restaurant_daily_sales reads the same day.
The orders path (bronze, silver, gold) is two job runs; the whole daily
graph three.

The remote task (:mod:`.task`) reports what it did through Pipes; this
side turns it back into Dagster results: materialisations with their
metadata, check results, the dead-letter-queue writes, and a failed step
(with the reason) when a circuit breaker tripped on the cluster.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from ..contracts import contract_files
from ..settings import Settings
from .launchers import PipesLauncher
from .metadata import from_pipes_metadata
from .protocol import MSG_FAILURE, MSG_MATERIALIZATION

LAUNCHER_KEY = "pipes_launcher"


def uses_spark(asset: Any) -> bool:
    return isinstance(asset, dg.AssetsDefinition) and "spark" in asset.required_resource_keys


def run_spark_assets_on_pipes(
    assets: Sequence[Any],
    settings: Settings,
    contracts_dir: str | Path,
    kind: str,
    asset_checks: Sequence[dg.AssetChecksDefinition] = (),
) -> list[Any]:
    """``assets`` with every Spark asset moved into a Pipes multi-asset; the specs of
    ``asset_checks`` (checks that need Spark) join the multi-asset of their asset."""
    # the exact contract files the orchestrator loaded travel in the context
    contracts = {
        name: path.read_text(encoding="utf-8")
        for name, path in contract_files(contracts_dir).items()
    }
    extras = {
        "landing_root": settings.landing_root,
        "lake_root": settings.lake_root,
        "partitions_start": settings.partitions_start,
        "contracts": contracts,
        # the task loads the code location on the cluster, against the lake it writes:
        # the same breaking contract changes are accepted there
        "accept_breaking_contract_changes": list(settings.accept_breaking_contract_changes),
    }
    extra_checks: dict[dg.AssetKey, list[dg.AssetCheckSpec]] = {}
    for checks in asset_checks:
        for spec in checks.check_specs:
            extra_checks.setdefault(spec.asset_key, []).append(spec)
    groups: dict[str, list[dg.AssetsDefinition]] = {}
    kept: list[Any] = []
    for asset in assets:
        if uses_spark(asset):
            name = "foodops_daily" if asset.partitions_def is not None else "foodops_reference"
            groups.setdefault(name, []).append(asset)
        else:
            kept.append(asset)
    return [
        *kept,
        *(
            pipes_multi_asset(
                f"{name}_{n}_on_{kind}" if len(stages) > 1 else f"{name}_on_{kind}",
                stage,
                extras,
                kind,
                extra_checks,
            )
            for name, members in groups.items()
            for stages in [_stages(members)]
            for n, stage in enumerate(stages, start=1)
        ),
    ]


def _stages(members: Sequence[dg.AssetsDefinition]) -> list[list[dg.AssetsDefinition]]:
    """``members`` in dependency order, cut into as few consecutive groups as possible so
    that each group reads every upstream through one partition mapping. Groups only
    depend on earlier groups, so the steps form a chain, never a cycle."""
    by_key = {key: asset for asset in members for key in asset.keys}
    ordered: list[dg.AssetsDefinition] = []
    done: set[dg.AssetKey] = set()

    def visit(asset: dg.AssetsDefinition) -> None:  # depth first, in the listed order
        if all(k in done for k in asset.keys):
            return
        done.update(asset.keys)
        for key in asset.keys:
            for dep in asset.asset_deps[key]:
                if dep in by_key and dep not in done:
                    visit(by_key[dep])
        ordered.append(asset)

    for asset in members:
        visit(asset)
    stages: list[list[dg.AssetsDefinition]] = []
    seen: dict[dg.AssetKey, Any] = {}
    for asset in ordered:
        mappings = {
            dep.asset_key: dep.partition_mapping for spec in asset.specs for dep in spec.deps
        }
        if not stages or any(seen.get(k, m) != m for k, m in mappings.items()):
            stages.append([])
            seen = {}
        stages[-1].append(asset)
        seen.update(mappings)
    return stages


def pipes_multi_asset(
    name: str,
    members: Sequence[dg.AssetsDefinition],
    extras: Mapping[str, Any],
    kind: str,
    extra_checks: Mapping[dg.AssetKey, Sequence[dg.AssetCheckSpec]] | None = None,
) -> dg.AssetsDefinition:
    partitions_def = members[0].partitions_def
    specs = [
        spec.replace_attributes(skippable=True, kinds={*spec.kinds, kind})
        for asset in members
        for spec in asset.specs
    ]
    check_specs = [check for asset in members for check in asset.check_specs]
    check_specs += [
        check
        for asset in members
        for key in asset.keys
        for check in (extra_checks or {}).get(key, [])
    ]

    @dg.multi_asset(
        name=name,
        specs=specs,
        check_specs=check_specs,
        can_subset=True,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
        description=f"The Spark assets, run remotely through Dagster Pipes ({kind}).",
    )
    def _remote(context: dg.AssetExecutionContext, pipes_launcher: PipesLauncher):
        invocation = pipes_launcher.run(context, extras)
        yield from invocation.get_results(implicit_materializations=False)
        failure = None
        for message in invocation.get_custom_messages():
            if not isinstance(message, dict):
                continue
            if message.get("type") == MSG_MATERIALIZATION:
                yield dg.AssetMaterialization(
                    asset_key=dg.AssetKey.from_user_string(message["asset_key"]),
                    partition=message.get("partition"),
                    description=message.get("description"),
                    metadata=from_pipes_metadata(message.get("metadata") or {}),
                )
            elif message.get("type") == MSG_FAILURE:
                failure = message
        if failure is not None:
            raise dg.Failure(
                description=f"{failure['description']} (reported by the remote FoodOps task)",
                allow_retries=False,
            )

    return _remote
