"""Dagster metadata values as Pipes metadata (``{"raw_value": ..., "type": ...}``) and back.

The remote task reports exactly the metadata the local asset would have
recorded; the orchestrator turns it back into the same ``MetadataValue``s, so the
UI shows the same row counts, schemas, column lineage and check tables in both
modes. Pipes does that itself for the materialisations of the step's own assets;
:func:`from_pipes_metadata` does it for what the task reports on the side (the
dead-letter queue, in a custom message), with Dagster's public constructors.
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


def from_pipes_metadata(metadata: Mapping[str, Mapping[str, Any]]) -> dict[str, dg.MetadataValue]:
    """The inverse of :func:`to_pipes_metadata`."""
    return {
        key: from_pipes_value(value["type"], value["raw_value"]) for key, value in metadata.items()
    }


def from_pipes_value(kind: str, raw: Any) -> dg.MetadataValue:
    simple = {
        "bool": dg.MetadataValue.bool,
        "int": dg.MetadataValue.int,
        "float": dg.MetadataValue.float,
        "text": dg.MetadataValue.text,
        "path": dg.MetadataValue.path,
        "url": dg.MetadataValue.url,
        "json": dg.MetadataValue.json,
        "md": dg.MetadataValue.md,
        "timestamp": dg.MetadataValue.timestamp,
    }
    if kind in simple:
        return simple[kind](raw)
    if kind == "null":
        return dg.MetadataValue.null()
    if kind == "table_schema":
        return dg.MetadataValue.table_schema(_schema(raw["columns"]))
    if kind == "table_column_lineage":
        return dg.MetadataValue.column_lineage(
            dg.TableColumnLineage(
                deps_by_column={
                    column: [
                        dg.TableColumnDep(
                            asset_key=dg.AssetKey.from_user_string(dep["asset_key"]),
                            column_name=dep["column_name"],
                        )
                        for dep in deps
                    ]
                    for column, deps in raw["deps_by_column"].items()
                }
            )
        )
    if kind == "table":
        return dg.MetadataValue.table(
            records=[dg.TableRecord(record) for record in raw["records"]],
            schema=_schema(raw["schema"]),
        )
    raise ValueError(f"unknown Pipes metadata type {kind!r} (not one to_pipes_value writes)")


def _schema(columns: list[Mapping[str, Any]]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c["name"], type=c["type"], description=c.get("description"), tags=c.get("tags")
            )
            for c in columns
        ]
    )
