"""CustomResourceDefinition registration rules: what a real API server refuses in a CRD, with its field paths.

The rules follow the apiextensions validation (`apiextensions/validation/validation.go`) and the structural schema
checks (`apiserver/schema/validation.go`) of kube-apiserver, for everything a CRD like azsnap's can carry. Paths
name the internal fields as the server does: a single version's schema, columns and subresources are hoisted to
`spec.validation.openAPIV3Schema`, `spec.additionalPrinterColumns` and `spec.subresources`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from azsnap.emulator.kubernetes.crd_cel import validation_rule_causes
from azsnap.emulator.kubernetes.schema import Cause, go_value, prune, validate_value

__all__ = ["Cause", "crd_causes", "crd_warnings"]

_DNS1035: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_MESSAGE: Final = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    "is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_COLUMN_TYPES: Final = ("boolean", "date", "integer", "number", "string")
_COLUMN_FORMATS: Final = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
#: Formats the server knows (kube-openapi's format registry and the OpenAPI ones); others draw a warning.
KNOWN_FORMATS: Final = frozenset(
    {"bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid", "uuid3", "uuid4", "uuid5",
     "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor", "rgbcolor", "byte", "password", "date",
     "duration", "datetime", "date-time", "int32", "int64", "float", "double"}
)  # fmt: skip
#: Perl syntax Go's RE2 refuses (look-around, atomic groups, back-references, possessive quantifiers).
_NOT_RE2: Final = re.compile(r"\(\?<?[=!]|\(\?>|\\[1-9]|[*+?}]\+")
_ROOT: Final = "spec.validation.openAPIV3Schema"


def _versions(crd: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [v for v in crd.get("spec", {}).get("versions") or [] if isinstance(v, Mapping)]


def crd_causes(crd: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[Cause]:
    """Every reason the server would refuse this CRD (`old`: the stored one, for an update)."""
    spec: Mapping[str, Any] = crd.get("spec") or {}
    names: Mapping[str, Any] = spec.get("names") or {}
    causes: list[Cause] = []
    name = (crd.get("metadata") or {}).get("name", "")
    if name != f"{names.get('plural', '')}.{spec.get('group', '')}":
        causes.append(Cause.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    for key in ("plural", "singular"):
        if names.get(key) and not _DNS1035.match(str(names[key])):
            causes.append(Cause.invalid(f"spec.names.{key}", names[key], _DNS1035_MESSAGE))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            Cause("FieldValueNotSupported", f'Unsupported value: {go_value(spec.get("scope"))}: supported values: '
                  '"Cluster", "Namespaced"', "spec.scope")
        )  # fmt: skip
    if old is not None and (old.get("spec") or {}).get("scope") != spec.get("scope"):
        causes.append(Cause.invalid("spec.scope", spec.get("scope"), "field is immutable"))
    versions = _versions(crd)
    storage = [v.get("name") for v in versions if v.get("storage")]
    if len(storage) != 1:
        hoisted = [{"Name": v.get("name"), "Served": bool(v.get("served")), "Storage": bool(v.get("storage")),
                    "Deprecated": bool(v.get("deprecated")), "DeprecationWarning": None, "Schema": None,
                    "Subresources": None, "AdditionalPrinterColumns": None, "SelectableFields": None}
                   for v in versions]  # fmt: skip
        causes.append(
            Cause.invalid("spec.versions", hoisted, "must have exactly one version marked as storage version")
        )
        if storage and storage[-1] != storage[0]:
            causes.append(
                Cause.invalid("status.storedVersions", storage[:1], f"must have the storage version {storage[-1]}")
            )
    hoist = len(versions) == 1
    for index, version in enumerate(versions):
        prefix = "spec" if hoist else f"spec.versions[{index}]"
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        root = _ROOT if hoist else f"{prefix}.schema.openAPIV3Schema"
        if isinstance(schema, Mapping):
            causes.extend(_schema_causes(schema, root))
        for number, column in enumerate(version.get("additionalPrinterColumns") or []):
            causes.extend(_column_causes(column, f"{prefix}.additionalPrinterColumns[{number}]"))
        scale = (version.get("subresources") or {}).get("scale")
        if isinstance(scale, Mapping):
            causes.extend(_scale_causes(scale, f"{prefix}.subresources.scale"))
    return causes


def crd_warnings(crd: Mapping[str, Any]) -> list[str]:
    """The `Warning` headers a CRD draws (unrecognized formats)."""
    warnings: list[str] = []
    for version in _versions(crd):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if isinstance(schema, Mapping):
            for _, node, _ in _walk(schema, _ROOT, "root"):
                fmt = node.get("format")
                if fmt and fmt not in KNOWN_FORMATS and f'unrecognized format "{fmt}"' not in warnings:
                    warnings.append(f'unrecognized format "{fmt}"')
    return warnings


def _walk(node: Mapping[str, Any], path: str, level: str) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """Every schema node with its server-style path and its level: root, item, property or map value."""
    yield path, node, level
    for name, child in (node.get("properties") or {}).items():
        if isinstance(child, Mapping):
            yield from _walk(child, f"{path}.properties[{name}]", "property")
    items = node.get("items")
    if isinstance(items, Mapping):
        yield from _walk(items, f"{path}.items", "item")
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        yield from _walk(extra, f"{path}.additionalProperties", "map")


def _schema_causes(schema: Mapping[str, Any], root: str) -> list[Cause]:
    causes = _metadata_causes(schema, root)
    for path, node, level in _walk(schema, root, "root"):
        untyped = not node.get("type") and not any(
            node.get(f"x-kubernetes-{flag}")
            for flag in ("int-or-string", "preserve-unknown-fields", "embedded-resource")
        )
        if untyped:
            detail = {"root": "must not be empty at the root", "item": "must not be empty for specified array items"}
            causes.append(
                Cause.required(f"{path}.type", detail.get(level, "must not be empty for specified object fields"))
            )
        elif level == "root" and node.get("type") != "object":
            causes.append(Cause.invalid(f"{path}.type", node.get("type"), "must be object at the root"))
        if "properties" in node and "additionalProperties" in node and node["additionalProperties"] is not False:
            causes.append(
                Cause.forbidden(
                    f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive"
                )
            )
        if node.get("x-kubernetes-preserve-unknown-fields") is False:
            causes.append(
                Cause.invalid(f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined")
            )
        if node.get("uniqueItems") is True:
            causes.append(
                Cause.forbidden(
                    f"{path}.uniqueItems",
                    "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                )
            )
        if "pattern" in node:
            causes.extend(_pattern_causes(node["pattern"], f"{path}.pattern"))
        causes.extend(_list_causes(node, path))
        if "default" in node and node["default"] is not None:
            default = node["default"]
            if prune(node, default)[1]:
                causes.append(Cause.invalid(f"{path}.default", default, "must not have unknown fields"))
            else:
                causes.extend(Cause(c.reason, c.message, f"{path}.default") for c in validate_value(node, default, ""))
    return [*causes, *validation_rule_causes(schema, root, causes)]


def _metadata_causes(schema: Mapping[str, Any], root: str) -> list[Cause]:
    metadata = (schema.get("properties") or {}).get("metadata")
    if not isinstance(metadata, Mapping):
        return []
    path = f"{root}.properties[metadata]"
    causes: list[Cause] = []
    if metadata.get("type") != "object":
        causes.append(Cause.invalid(f"{path}.type", metadata.get("type"), "must be object"))
    props = metadata.get("properties") or {}
    for key in ("name", "generateName"):
        if isinstance(props.get(key), Mapping) and "default" in props[key]:
            causes.append(Cause.forbidden(f"{path}.properties[{key}].default", "must not be set in top-level metadata"))
    rest = {k: v for k, v in metadata.items() if k not in ("type", "properties", "default")}
    if rest or set(props) - {"name", "generateName"}:
        causes.append(
            Cause.forbidden(
                path, "must not specify anything other than name and generateName, but metadata is implicitly specified"
            )
        )
    return causes


def _pattern_causes(pattern: Any, field: str) -> list[Cause]:
    text = str(pattern)
    found = _NOT_RE2.search(text)
    problem = f"invalid or unsupported Perl syntax: `{found.group(0)[:3]}`" if found else None
    if problem is None:
        try:
            re.compile(text)
        except re.error as exc:
            problem = f"invalid regular expression: {exc}"
    if problem is None:
        return []
    return [
        Cause.invalid(field, text, f"must be a valid regular expression, but isn't: error parsing regexp: {problem}")
    ]


def _list_causes(node: Mapping[str, Any], path: str) -> list[Cause]:
    kind = node.get("x-kubernetes-list-type")
    items: Mapping[str, Any] = node["items"] if isinstance(node.get("items"), Mapping) else {}
    causes: list[Cause] = []
    if kind == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        if not keys:
            causes.append(
                Cause.required(
                    f"{path}.x-kubernetes-list-map-keys", "must not be empty if x-kubernetes-list-type is map"
                )
            )
        for key in keys:
            prop = (items.get("properties") or {}).get(key)
            if isinstance(prop, Mapping) and prop.get("nullable"):
                causes.append(
                    Cause.forbidden(f"{path}.items.properties[{key}].nullable", "this property is in x-kubernetes-list-map-keys, so it cannot be nullable")
                )  # fmt: skip
    elif kind == "set" and items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
        causes.append(
            Cause.invalid(f"{path}.items.x-kubernetes-map-type", items.get("x-kubernetes-map-type"), "must be atomic as item of a list with x-kubernetes-list-type=set")
        )  # fmt: skip
    elif kind is None and node.get("x-kubernetes-list-map-keys"):
        causes.append(
            Cause.forbidden(f"{path}.x-kubernetes-list-map-keys", "must be empty if x-kubernetes-list-type is not map")
        )
    return causes


def _column_causes(column: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not column.get("name"):
        causes.append(Cause("FieldValueRequired", "Required value", f"{path}.name"))
    if column.get("type") not in _COLUMN_TYPES:
        causes.append(Cause.invalid(f"{path}.type", column.get("type"), f"must be one of {','.join(_COLUMN_TYPES)}"))
    if column.get("format") and column["format"] not in _COLUMN_FORMATS:
        causes.append(Cause.invalid(f"{path}.format", column["format"], f"must be one of {','.join(_COLUMN_FORMATS)}"))
    json_path = str(column.get("jsonPath") or "")
    if not json_path:
        causes.append(Cause("FieldValueRequired", "Required value", f"{path}.JSONPath"))
    elif not json_path.startswith("."):
        causes.append(Cause.invalid(f"{path}.JSONPath", json_path, "must be a simple json path starting with ."))
    return causes


def _scale_causes(scale: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for key, under in (("specReplicasPath", ".spec"), ("statusReplicasPath", ".status")):
        value = str(scale.get(key) or "")
        if not value:
            causes.append(Cause("FieldValueRequired", "Required value", f"{path}.{key}"))
        elif not value.startswith(f"{under}."):
            causes.append(Cause.invalid(f"{path}.{key}", value, f"should be a json path under {under}"))
    return causes
