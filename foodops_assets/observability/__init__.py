"""Telling people what happened: alerts to a webhook, metrics to Prometheus, lineage to
OpenLineage, all read from Dagster's event log. Loaded by ``definitions.py``; imports
lakehouse, settings and the automation's sensor defaults and deadlines, never ``definitions``."""
