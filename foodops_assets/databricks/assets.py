"""The Spark assets as Pipes multi-assets: same keys, specs and checks, run remotely.

With ``FOODOPS_EXECUTION=databricks`` (or ``pipes_subprocess``) every asset
that needs Spark is replaced by a multi-asset carrying exactly its specs —
key, group, description, owners, partitions, metadata, dependencies — and
its check specs. One multi-asset per partitioning (the reference snapshots,
the daily assets); a step materialises the selected subset in ONE remote
run (one Databricks job run, one cluster start), in dependency order, with
the same audit-before-publish behaviour as a local run.

The remote task (:mod:`.task`) reports what it did through Pipes; this
side turns it back into Dagster results: materialisations with their
metadata, check results, the dead-letter-queue writes, and a failed step
(with the reason) when a circuit breaker tripped on the cluster.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.metadata.external_metadata import metadata_map_from_external

from ..settings import Settings
from .launchers import PipesLauncher
from .task import MSG_FAILURE, MSG_MATERIALIZATION

LAUNCHER_KEY = "pipes_launcher"


def uses_spark(asset: Any) -> bool:
    return isinstance(asset, dg.AssetsDefinition) and "spark" in asset.required_resource_keys


def run_spark_assets_on_pipes(
    assets: Sequence[Any], settings: Settings, contracts_dir: str | Path, kind: str
) -> list[Any]:
    """``assets`` with every Spark asset moved into a Pipes multi-asset."""
    contracts = {p.stem: p.read_text(encoding="utf-8") for p in Path(contracts_dir).glob("*.yaml")}
    extras = {
        "landing_root": settings.landing_root,
        "lake_root": settings.lake_root,
        "partitions_start": settings.partitions_start,
        "contracts": contracts,
    }
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
        *(pipes_multi_asset(f"{n}_on_{kind}", m, extras, kind) for n, m in groups.items()),
    ]


def pipes_multi_asset(
    name: str, members: Sequence[dg.AssetsDefinition], extras: Mapping[str, Any], kind: str
) -> dg.AssetsDefinition:
    partitions_def = members[0].partitions_def
    specs = [
        spec.replace_attributes(skippable=True, kinds={*spec.kinds, kind})
        for asset in members
        for spec in asset.specs
    ]
    check_specs = [check for asset in members for check in asset.check_specs]

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
                    metadata=metadata_map_from_external(message.get("metadata") or {}),
                )
            elif message.get("type") == MSG_FAILURE:
                failure = message
        if failure is not None:
            raise dg.Failure(
                description=f"{failure['description']} (reported by the remote FoodOps task)",
                allow_retries=False,
            )

    return _remote
