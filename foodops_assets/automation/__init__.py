"""What runs the platform by itself: file-arrival sensors, declarative automation, the
daily schedule, retry policies, freshness policies (the contracts' deadlines), and the run
queue's concurrency lanes (``lanes.py``) and the run launcher with ``foodops ui``'s warm run
worker (``warm_runs.py``), both of which the Dagster instance loads. Loaded by
``definitions.py``; imports the layers below it (assets, checks, lakehouse, transforms,
contracts, settings), never ``definitions`` or ``cli``."""
