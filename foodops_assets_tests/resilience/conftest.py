"""The reference snapshots (restaurants, dishes) materialised once for the resilience tests;
each test lake gets a copy of the Delta tables instead of another run."""

from __future__ import annotations

import shutil

import pytest

from foodops_assets.lakehouse.tables import DISHES, RESTAURANTS
from foodops_assets_tests.conftest import Lake, materialize
from foodops_assets_tests.factories import land_reference


@pytest.fixture(scope="session")
def reference_lake(tmp_path_factory, spark_resource) -> Lake:
    lake = Lake.under(tmp_path_factory.mktemp("reference"))
    land_reference(lake)
    assert materialize(lake, spark_resource, ["restaurants", "dishes"]).success
    return lake


@pytest.fixture(scope="session")
def with_reference(reference_lake):
    """``with_reference(lake)``: the reference snapshots and their Delta tables, copied in."""

    def copy(lake: Lake) -> Lake:
        land_reference(lake)
        for table in (RESTAURANTS, DISHES):
            shutil.copytree(reference_lake.store.uri(table), lake.store.uri(table))
        return lake

    return copy
