"""Shared fixtures: one small local Spark session for the whole run, temporary lakes."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import DataFrame, SparkSession

from foodops_assets.definitions import build_definitions
from foodops_assets.lakehouse import writers
from foodops_assets.lakehouse.delta import DeltaStore
from foodops_assets.lakehouse.resource import LakehouseResource
from foodops_assets.lakehouse.spark import SparkResource
from foodops_assets.lakehouse.tables import TableRef
from foodops_assets.lakehouse.writers.base import DeltaWriter
from foodops_assets.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark_resource() -> SparkResource:
    # the Delta Lake package's own test session is the model: local[2], no UI,
    # few shuffle partitions
    return SparkResource(
        master="local[2]",
        driver_memory="2g",
        spark_config={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"},
    )


@pytest.fixture(scope="session")
def spark(spark_resource):
    return spark_resource.spark_session


@pytest.fixture(scope="session")
def connect_cluster(tmp_path_factory):
    """A Spark standalone master + worker and a Spark Connect server in front of them,
    real processes on 127.0.0.1; started only by the tests that ask for it."""
    from foodops_assets_tests.spark_cluster import spark_connect_cluster

    with spark_connect_cluster(tmp_path_factory.mktemp("spark-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the whole test session (per xdist worker: the tests
    that use it live in one module), stopped and deleted at the end. Fails, never skips,
    when the server binaries are missing."""
    from foodops_assets_tests.postgres import PostgresMissing, bindir, postgres_server

    missing = None
    try:
        bindir()
    except PostgresMissing as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    with postgres_server() as server:
        yield server


@dataclass
class Lake:
    """A landing zone and the Delta tables under one temporary root, with its resources."""

    root: Path
    landing: Path
    lake: Path
    settings: Settings

    @classmethod
    def under(cls, root: Path, *, landing: Path | None = None, lake: str = "lake") -> Lake:
        """The lake at ``root/<lake>``, fed by ``landing`` (``root/landing`` unless another
        lake's landing zone is shared)."""
        landing = landing or root / "landing"
        root.mkdir(parents=True, exist_ok=True)
        landing.mkdir(parents=True, exist_ok=True)
        lake_dir = root / lake
        return cls(root, landing, lake_dir, Settings(str(landing), str(lake_dir)))

    @property
    def store(self) -> DeltaStore:
        return DeltaStore(str(self.lake))

    def resource(self, delta_writer: str = "auto") -> LakehouseResource:
        return LakehouseResource(
            landing_root=str(self.landing), lake_root=str(self.lake), delta_writer=delta_writer
        )

    def writer(self, name: str = "arrow", spark: SparkSession | None = None) -> DeltaWriter:
        """The Delta backend ``name`` (a FOODOPS_DELTA_WRITER value) writing this lake."""
        return writers.writer(name, self.store, spark)

    def read(self, spark: SparkSession, table: TableRef, where=None) -> DataFrame:
        """A table of this lake as the assets read it."""
        return self.resource().read(spark, table, where)

    def land(
        self, source: str, day: dt.date | None, name: str, lines: Iterable[str | dict]
    ) -> Path:
        """Write a landing file (dicts are serialised as JSON, strings written as given)."""
        directory = self.landing / source
        if day is not None:
            directory = directory / f"date={day.isoformat()}"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        text = "".join(
            (json.dumps(line) if isinstance(line, dict) else line) + "\n" for line in lines
        )
        path.write_text(text, encoding="utf-8")
        return path

    def definitions(self) -> dg.Definitions:
        return build_definitions(self.settings)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake.under(tmp_path)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def materialize(
    lake: Lake,
    spark_resource: SparkResource,
    selection: list[str],
    partition_key: str | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
    run_config: dict | None = None,
    tags: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialise a slice of the real asset graph against ``lake``."""
    defs = lake.definitions()
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    return dg.materialize(
        assets,
        selection=selection,
        partition_key=partition_key,
        resources={"spark": spark_resource, "lakehouse": lake.resource()},
        instance=instance,
        raise_on_error=raise_on_error,
        run_config=run_config,
        tags=tags,
    )


def subprocess_env(lake: Lake, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FOODOPS_LANDING_ROOT=str(lake.landing),
        FOODOPS_LAKE_ROOT=str(lake.lake),
        DAGSTER_HOME=str(lake.root / "dagster_home"),
        **extra,
    )
    (lake.root / "dagster_home").mkdir(exist_ok=True)
    (lake.root / "dagster_home" / "dagster.yaml").write_text(
        (REPO_ROOT / "resources" / "dagster.yaml").read_text()
    )
    return env
