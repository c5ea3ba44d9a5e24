"""OpenLineage run events for each asset step of a finished run.

START and COMPLETE (or FAIL) per asset step, through the openlineage-python
client, to a Marquez-compatible HTTP endpoint (``file://...`` writes JSON lines
instead). Inputs are the upstream tables (bronze: the landing files), outputs
the asset's Delta table, with schema and column-lineage facets taken from
``dagster/column_schema`` and ``dagster/column_lineage``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..lakehouse.tables import TABLES
from ..settings import Settings
from .run_events import AssetStep

OPENLINEAGE_NAMESPACE = "foodops"
OPENLINEAGE_PRODUCER = "https://github.com/foodops/foodops-lakehouse"


def _uri(root: str) -> str:
    return root if "://" in root else Path(root).resolve().as_uri()


def table_path(asset: str) -> str:
    table = TABLES.get(asset)
    return table.path if table is not None else asset


def lineage_client(url: str):
    from openlineage.client import OpenLineageClient

    if url.startswith("file://"):
        from openlineage.client.transport.file import FileConfig, FileTransport

        path = urlparse(url).path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return OpenLineageClient(
            transport=FileTransport(FileConfig(log_file_path=path, append=True))
        )
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    return OpenLineageClient(transport=HttpTransport(HttpConfig(url=url, timeout=10.0)))


def _facets(step: AssetStep, lake_ns: str):
    from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset

    facets: dict[str, Any] = {}
    schema = step.metadata.get("dagster/column_schema")
    schema = getattr(schema, "schema", None)
    if schema is not None:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(
                    name=c.name, type=c.type, description=c.description
                )
                for c in schema.columns
            ]
        )
    lineage = step.metadata.get("dagster/column_lineage")
    lineage = getattr(lineage, "column_lineage", None)
    if lineage is not None:
        facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(
            fields={
                column: column_lineage_dataset.Fields(
                    inputFields=[
                        column_lineage_dataset.InputField(
                            namespace=lake_ns,
                            name=table_path(dep.asset_key.to_user_string()),
                            field=dep.column_name,
                        )
                        for dep in deps
                    ],
                )
                for column, deps in lineage.deps_by_column.items()
            }
        )
    return facets


def lineage_events(
    steps: Iterable[AssetStep],
    run_id: str,
    job_name: str,
    upstream: dict[str, list[str]],
    settings: Settings,
) -> list:
    """START and COMPLETE/FAIL per asset step, with input and output datasets."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import error_message_run, parent_run

    lake_ns, landing_ns = _uri(settings.lake_root), _uri(settings.landing_root)
    landing_root = Path(settings.landing_root).resolve()
    events = []
    for step in steps:
        files = step.metadata.get("landing_files")
        files = getattr(files, "value", files) or []
        inputs = [
            InputDataset(namespace=lake_ns, name=table_path(a))
            for a in upstream.get(step.asset, [])
        ] + [InputDataset(namespace=landing_ns, name=_relative(f, landing_root)) for f in files]
        output = OutputDataset(
            namespace=lake_ns, name=table_path(step.asset), facets=_facets(step, lake_ns)
        )
        ol_run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dagster:{run_id}:{step.asset}"))
        run_facets: dict[str, Any] = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=run_id),
                job=parent_run.Job(namespace=OPENLINEAGE_NAMESPACE, name=job_name),
            )
        }
        job = Job(namespace=OPENLINEAGE_NAMESPACE, name=step.asset)
        start = RunEvent(
            eventType=RunState.START,
            eventTime=_iso(step.started),
            run=Run(runId=ol_run_id, facets=run_facets),
            job=job,
            producer=OPENLINEAGE_PRODUCER,
            inputs=inputs,
            outputs=[OutputDataset(namespace=lake_ns, name=table_path(step.asset))],
        )
        end_facets = dict(run_facets)
        if step.failed:
            end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=step.error or "failed", programmingLanguage="python"
            )
        end = RunEvent(
            eventType=RunState.FAIL if step.failed else RunState.COMPLETE,
            eventTime=_iso(step.ended),
            run=Run(runId=ol_run_id, facets=end_facets),
            job=job,
            producer=OPENLINEAGE_PRODUCER,
            inputs=inputs,
            outputs=[] if step.failed else [output],
        )
        events += [start, end]
    return events


def _relative(path: str, root: Path) -> str:
    local = Path(urlparse(path).path if "://" in path else path).resolve()
    try:
        return local.relative_to(root).as_posix()
    except ValueError:
        return local.as_posix()


def _iso(timestamp: float | None) -> str:
    moment = dt.datetime.fromtimestamp(timestamp or 0, tz=dt.UTC)
    return moment.isoformat().replace("+00:00", "Z")
