"""The ``foodops`` command (generate, summary, ui, late-data, rerun, dlq): the top layer,
the only one that may import ``definitions``.

``foodops = foodops_assets.cli:main`` (pyproject.toml)."""

from .commands import main

__all__ = ["main"]
