"""Dagster metadata values as Pipes metadata (``{"raw_value": ..., "type": ...}``).

The remote task reports exactly the metadata the local asset would have
recorded; the orchestrator turns it back into the same ``MetadataValue``s
(``dagster._core.definitions.metadata.external_metadata``), so the UI shows the
same row counts, schemas, column lineage and check tables in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg


def to_pipes_metadata(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {key: to_pipes_value(value) for key, value in metadata.items()}


def to_pipes_value(value: Any) -> dict[str, Any]:
    if not isinstance(value, dg.MetadataValue):
        value = dg.MetadataValue.text(str(value)) if value is not None else dg.MetadataValue.null()
    if isinstance(value, dg.BoolMetadataValue):
        return _v("bool", value.value)
    if isinstance(value, dg.IntMetadataValue):
        return _v("int", value.value)
    if isinstance(value, dg.FloatMetadataValue):
        return _v("float", value.value)
    if isinstance(value, dg.TextMetadataValue):
        return _v("text", value.value)
    if isinstance(value, dg.PathMetadataValue):
        return _v("path", value.value)
    if isinstance(value, dg.UrlMetadataValue):
        return _v("url", value.value)
    if isinstance(value, dg.JsonMetadataValue):
        return _v("json", value.value)
    if isinstance(value, dg.MarkdownMetadataValue):
        return _v("md", value.value)
    if isinstance(value, dg.TimestampMetadataValue):
        return _v("timestamp", value.value)
    if isinstance(value, dg.NullMetadataValue):
        return _v("null", None)
    if isinstance(value, dg.TableSchemaMetadataValue):
        return _v("table_schema", {"columns": _columns(value.schema)})
    if isinstance(value, dg.TableColumnLineageMetadataValue):
        return _v(
            "table_column_lineage",
            {
                "deps_by_column": {
                    column: [
                        {
                            "asset_key": dep.asset_key.to_user_string(),
                            "column_name": dep.column_name,
                        }
                        for dep in deps
                    ]
                    for column, deps in value.column_lineage.deps_by_column.items()
                }
            },
        )
    if isinstance(value, dg.TableMetadataValue):
        return _v(
            "table",
            {
                "records": [dict(record.data) for record in value.records],
                "schema": _columns(value.schema),
            },
        )
    return _v("text", str(value.value))


def _v(kind: str, raw: Any) -> dict[str, Any]:
    return {"type": kind, "raw_value": raw}


def _columns(schema: dg.TableSchema) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "type": c.type,
            "description": c.description,
            **({"tags": dict(c.tags)} if c.tags else {}),
        }
        for c in schema.columns
    ]
