"""The FoodOps code location: every asset, check, job, sensor, schedule and resource.

Dagster calls ``defs`` when it loads the code location (CLI, webserver,
daemon, run workers); that is when the environment is read and the contracts
are loaded — never at import time. Tests call :func:`build_definitions` with
their own :class:`Settings`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

from .assets.graph import lakehouse_assets, load_contracts
from .automation.conditions import automation_sensor, with_automation
from .automation.freshness import asset_deadlines, with_freshness
from .automation.retries import transient_retries
from .automation.schedules import daily_schedule, maintenance_schedule
from .automation.sensors import file_arrival_sensors, run_tags
from .checks.contract_changes import check_contract_changes
from .contracts import CONTRACTS_DIR
from .lakehouse import tables
from .lakehouse.resource import LakehouseResource
from .lakehouse.spark import SparkResource
from .observability.alerts import alert_sensors, webhook_resource
from .observability.exports import observability_sensors, upstream_assets
from .operations.dlq_replay import dlq_replay_job
from .operations.maintenance import lake_maintenance_job, table_policies
from .operations.restore import restore_delta_table_job
from .partitions import daily_partitions
from .settings import Settings

DAILY_JOB = "foodops_daily"
REFERENCE_JOB = "foodops_reference_data"
ML_JOB = "foodops_ml"

DAILY_ASSETS = [
    tables.ORDERS_RAW.name,
    tables.ORDERS_VALID.name,
    tables.DELIVERIES_RAW.name,
    tables.DELIVERIES_VALID.name,
    tables.REVIEWS_RAW.name,
    tables.REVIEWS_VALID.name,
    tables.RESTAURANT_DAILY_SALES.name,
    tables.CITY_HOURLY_DEMAND.name,
    tables.DELIVERY_PERFORMANCE_DAILY.name,
    tables.RESTAURANT_RATINGS_DAILY.name,
]
REFERENCE_ASSETS = [
    tables.RESTAURANTS.name,
    tables.DISHES.name,
    tables.RESTAURANTS_HISTORY.name,
    tables.DISHES_HISTORY.name,
]
# as-of-date features and recommendations over the trailing window of silver partitions
ML_ASSETS = [
    tables.USER_FEATURES.name,
    tables.DISH_FEATURES.name,
    tables.DISH_RECOMMENDATIONS.name,
]


def build_definitions(
    settings: Settings, contracts_dir: str | Path | None = None
) -> dg.Definitions:
    daily = daily_partitions(settings.partitions_start)
    contracts_dir = contracts_dir or settings.contracts_dir
    contracts = load_contracts(contracts_dir)
    # against the tables already written: breaking changes stop the load here
    check_contract_changes(
        contracts, settings.lake_root, accepted=settings.accept_breaking_contract_changes
    )

    with warnings.catch_warnings():
        # BackfillPolicy is marked beta; single-run backfills are a deliberate choice here
        warnings.simplefilter("ignore", dg.BetaWarning)
        if settings.execution == "local":
            # transient failures retried with backoff and jitter; the rest fail fast
            assets = lakehouse_assets(
                contracts, daily, transient_retries(settings.retry_delay_seconds)
            )
        else:
            # the Spark assets run remotely (Databricks, or a local Pipes process)
            from .databricks.assets import run_spark_assets_on_pipes

            assets = run_spark_assets_on_pipes(
                lakehouse_assets(contracts, daily),
                settings,
                contracts_dir or CONTRACTS_DIR,
                kind="databricks" if settings.execution == "databricks" else "pipes",
            )
        assets = with_automation(assets, settings)
        # silver and gold carry their contract's deadline as Dagster freshness policies
        assets = with_freshness(assets, contracts)
    maintenance = lake_maintenance_job(table_policies(contracts, settings))

    jobs = [
        dg.define_asset_job(
            DAILY_JOB,
            selection=dg.AssetSelection.assets(*DAILY_ASSETS),
            description="Bronze to gold for one day (or a range, in a single run).",
            tags=run_tags(settings),
        ),
        dg.define_asset_job(
            REFERENCE_JOB,
            selection=dg.AssetSelection.assets(*REFERENCE_ASSETS),
            description=(
                "Load the newest restaurants and dishes snapshots, and apply every new "
                "snapshot to their history (restaurants_history, dishes_history)."
            ),
            tags=run_tags(settings),
        ),
        dg.define_asset_job(
            ML_JOB,
            selection=dg.AssetSelection.assets(*ML_ASSETS),
            description="Features and dish recommendations as of a day (reads the trailing window of silver).",
            tags=run_tags(settings),
        ),
        # operators: rollback by hand, DLQ replay, lake maintenance (foodops_assets/operations/)
        restore_delta_table_job,
        dlq_replay_job(contracts, daily),
        maintenance,
    ]
    sensors = [
        *file_arrival_sensors(settings, daily),
        automation_sensor(settings),
        *alert_sensors(settings, asset_deadlines(assets, contracts), daily),
        # metrics to a Prometheus Pushgateway, lineage to OpenLineage (off unless configured)
        *observability_sensors(settings, upstream_assets(assets)),
    ]

    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=[
            daily_schedule(settings, jobs[0], daily),
            maintenance_schedule(settings, maintenance),
        ],
        sensors=sensors,
        resources={
            "webhook": webhook_resource(settings),
            **_pipes_resources(settings),
            "spark": SparkResource.from_settings(settings),
            "lakehouse": LakehouseResource(
                landing_root=settings.landing_root,
                lake_root=settings.lake_root,
                delta_writer=settings.delta_writer,
            ),
        },
        # One process (and so one Spark session) per run: a run does not pay a
        # JVM start per asset (bench/executor_overhead.py measures the difference).
        # Different runs still execute in parallel.
        executor=(
            dg.in_process_executor
            if settings.executor == "in_process"
            else dg.multiprocess_executor
        ),
    )


def _pipes_resources(settings: Settings) -> dict:
    """The launcher of the remote steps, when the Spark assets do not run locally."""
    if settings.execution == "local":
        return {}
    from .databricks.launchers import (
        DatabricksPipesLauncher,
        SubprocessPipesLauncher,
        load_job_spec,
    )

    if settings.execution == "pipes_subprocess":
        return {"pipes_launcher": SubprocessPipesLauncher()}
    spec = load_job_spec(settings.databricks_job_spec)  # a bad spec fails when the code loads
    return {
        "pipes_launcher": DatabricksPipesLauncher(
            # secrets only through the environment: never in code, spec, UI or logs
            host=dg.EnvVar("DATABRICKS_HOST"),
            token=dg.EnvVar("DATABRICKS_TOKEN"),
            job_spec=spec.path,
        )
    }


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
