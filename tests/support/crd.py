"""Validate objects against the SnapshotPolicy CRD the way the API server would: schema, strict fields, CEL rules.

The OpenAPI schema is checked with `jsonschema` after the steps the API server takes first (null values pruned,
unknown fields refused as `kubectl`'s strict field validation does). The `x-kubernetes-validations` rules are the
CRD's own CEL expressions, evaluated with a CEL interpreter at each object they are attached to.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "snapshotpolicies.azsnap.io.yaml"


@dataclass(frozen=True)
class SchemaError:
    """One refusal: the dotted field path (`spec.schedule.every`) and the reason."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@cache
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return loaded


def openapi_schema() -> dict[str, Any]:
    """The v1alpha1 openAPIV3Schema (a copy, so tests may not change the cached CRD)."""
    (version,) = [v for v in crd()["spec"]["versions"] if v["name"] == "v1alpha1"]
    return copy.deepcopy(version["schema"]["openAPIV3Schema"])


def walk(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema node with its dotted path; list items get `[]`, map values `{}`."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), Mapping):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def _to_jsonschema(node: Any, *, strict: bool) -> Any:
    if isinstance(node, list):
        return [_to_jsonschema(item, strict=strict) for item in node]
    if not isinstance(node, Mapping):
        return node
    out = {k: _to_jsonschema(v, strict=strict) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if strict and "properties" in node and node.get("type") == "object":
        out["additionalProperties"] = False
    return out


@cache
def _validator(strict: bool) -> jsonschema.protocols.Validator:
    schema = _to_jsonschema(openapi_schema(), strict=strict)
    # `metadata` is the API server's business; everything under it is allowed here.
    schema["properties"]["metadata"] = {"type": "object"}
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator_class.check_schema(schema)
    return validator_class(schema)


@cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def prune_nulls(value: Any) -> Any:
    """Drop `null` object fields, as the API server does for fields that are not `nullable`."""
    if isinstance(value, Mapping):
        return {k: prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_nulls(v) for v in value]
    return value


def cel_errors(schema: Mapping[str, Any], value: Any, path: str = "") -> list[SchemaError]:
    """Evaluate every `x-kubernetes-validations` rule on the objects of `value` it applies to."""
    errors: list[SchemaError] = []
    if isinstance(value, Mapping):
        for rule in schema.get("x-kubernetes-validations", []):
            result = _program(rule["rule"]).evaluate({"self": celpy.json_to_cel(dict(value))})
            if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
                errors.append(SchemaError(path or "(root)", rule.get("message", rule["rule"])))
        for name, child in schema.get("properties", {}).items():
            if name in value:
                errors.extend(cel_errors(child, value[name], f"{path}.{name}" if path else name))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            errors.extend(cel_errors(schema["items"], item, f"{path}[{i}]"))
    return errors


def schema_errors(doc: Any, *, strict: bool = True) -> list[SchemaError]:
    """What the API server would refuse in `doc` (a whole SnapshotPolicy object), each with its field path."""
    doc = prune_nulls(doc)
    errors = [
        SchemaError(".".join(str(p) for p in error.absolute_path) or "(root)", error.message)
        for error in _validator(strict).iter_errors(doc)
    ]
    if isinstance(doc, Mapping) and not errors:
        errors.extend(cel_errors(openapi_schema(), doc))
    return errors
