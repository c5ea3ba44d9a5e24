"""Running FoodOps assets as Databricks job runs through Dagster Pipes.

``FOODOPS_EXECUTION=databricks`` replaces the Spark assets of the graph by
Pipes multi-assets (:mod:`.assets`) that submit one Databricks job run per
Dagster step (:mod:`.launchers`, spec in ``resources/databricks/``). On the
cluster, :mod:`.task` executes the very same asset code (transforms, checks,
audit-before-publish, Delta storage) and reports materialisations, row
counts, Delta versions and check results back through Pipes; :mod:`.protocol` holds the
messages both sides share. Imports assets (the task builds the same graph), lakehouse and
settings; never ``definitions``, which imports it.
"""
