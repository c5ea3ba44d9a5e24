"""FoodOps Lakehouse: the Dagster code location (``dagster ... -m foodops_assets``)."""

from .definitions import defs

__all__ = ["defs"]
