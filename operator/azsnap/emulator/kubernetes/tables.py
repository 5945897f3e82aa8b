"""`meta.k8s.io` Tables (what `kubectl get` shows), rendered from a CRD's `additionalPrinterColumns` as the server does.

A `date` column is the age of the time (`humanDuration`: `45s`, `12m`, `6y336d`) and `<invalid>` for a time more than
a second in the future; a path that matches nothing gives `null`; `integer`, `number` and `boolean` cells keep their
JSON type; `string` cells print the value. Rows carry a `PartialObjectMetadata` unless `includeObject=Object`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

__all__ = ["human_duration", "jsonpath_first", "render_table", "table_version"]

NAME_DESCRIPTION: Final = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources may "
    "allow a client to request the generation of an appropriate name automatically. Name is primarily intended "
    "for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_COLUMN: Final = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_TOKEN: Final = re.compile(r"\.([^.\[]+)|\[\?\(@\.([\w.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]|\[(\d+|\*)\]")


def table_version(accept: str) -> str | None:
    """The Table version the Accept header asks for first (`v1` or `v1beta1`), or None for plain JSON."""
    for entry in accept.split(","):
        params = dict(
            part.strip().split("=", 1) for part in entry.split(";")[1:] if "=" in part
        )  # fmt: skip
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return params["v"]
        if entry.split(";")[0].strip() in ("application/json", "*/*") and "as" not in params:
            return None
    return None


def human_duration(seconds: float) -> str:
    """Kubernetes' `duration.HumanDuration` of a time span."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return f"{minutes}m" if whole % 60 == 0 else f"{minutes}m{whole % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def jsonpath_first(obj: Any, path: str) -> tuple[bool, Any]:
    """The first value a simple JSONPath (`.a.b`, `[0]`, `[*]`, `[?(@.k=="v")]`) finds: (found, value)."""
    values = [obj]
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            return False, None
        position = match.end()
        field, key, wanted, index = match.groups()
        found: list[Any] = []
        for value in values:
            if field is not None and isinstance(value, Mapping) and field in value:
                found.append(value[field])
            elif key is not None and isinstance(value, list):
                found.extend(v for v in value if isinstance(v, Mapping) and str(v.get(key)) == wanted)
            elif index == "*" and isinstance(value, list):
                found.extend(value)
            elif index is not None and index != "*" and isinstance(value, list) and int(index) < len(value):
                found.append(value[int(index)])
        values = found
    return (True, values[0]) if values else (False, None)


def _print(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _cell(kind: str, found: bool, value: Any, now: datetime) -> Any:
    if not found or value is None:
        return None
    if kind == "string":
        return _print(value)
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        when = _parse_time(value)
        return "<invalid>" if when is None else human_duration((now - when).total_seconds())
    return None


def _columns(crd: Mapping[str, Any] | None, version: str) -> list[Mapping[str, Any]]:
    if crd is None:
        return [_AGE_COLUMN]
    for entry in (crd.get("spec") or {}).get("versions") or []:
        if entry.get("name") == version and entry.get("additionalPrinterColumns"):
            return list(entry["additionalPrinterColumns"])
    return [_AGE_COLUMN]


def render_table(
    objects: Sequence[Mapping[str, Any]],
    *,
    crd: Mapping[str, Any] | None,
    version: str,
    table_api: str,
    resource_version: str,
    now: datetime,
    include: str = "Metadata",
) -> dict[str, Any]:
    """A Table of `objects` (each as served, with apiVersion and kind) for the CRD's printer columns."""
    columns = _columns(crd, version)
    definitions = [{"name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION, "priority": 0}]
    for column in columns:
        definitions.append({
            "name": column["name"], "type": column["type"], "format": column.get("format", ""),
            "description": column.get("description")
            or f"Custom resource definition column (in JSONPath format): {column['jsonPath']}",
            "priority": int(column.get("priority", 0)),
        })  # fmt: skip
    rows = []
    for obj in objects:
        cells: list[Any] = [obj["metadata"]["name"]]
        for column in columns:
            cells.append(_cell(column["type"], *jsonpath_first(obj, column["jsonPath"]), now))
        row: dict[str, Any] = {"cells": cells}
        if include == "Object":
            row["object"] = dict(obj)
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{table_api}",
                             "metadata": dict(obj["metadata"])}  # fmt: skip
        rows.append(row)
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{table_api}", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": definitions, "rows": rows}  # fmt: skip
