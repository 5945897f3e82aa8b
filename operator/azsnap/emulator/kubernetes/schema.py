"""Structural schema handling of custom resources, as kube-apiserver does it: prune, default, validate.

An object written to a custom resource loses its unknown fields (reported as warnings, or refused under
`fieldValidation=Strict`) and its nulls where the schema is not nullable, gets its defaults, and is then checked
against the OpenAPI value validations, with the server's causes (field, reason, message). CEL rules run only when
none of the errors that make the server skip them occurred.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any, Final, NamedTuple

__all__ = ["SKIPPED_RULES", "Cause", "apply_defaults", "drop_nulls", "prune", "validate_value"]


class Cause(NamedTuple):
    """One entry of a `Status`'s `details.causes`."""

    reason: str
    message: str
    field: str

    def as_json(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    @classmethod
    def invalid(cls, field: str, value: Any, detail: str) -> Cause:
        """A `FieldValueInvalid` cause, worded as the server's field errors are."""
        return cls("FieldValueInvalid", f"Invalid value: {go_value(value)}: {detail}", field)

    @classmethod
    def forbidden(cls, field: str, detail: str) -> Cause:
        return cls("FieldValueForbidden", f"Forbidden: {detail}", field)

    @classmethod
    def required(cls, field: str, detail: str) -> Cause:
        return cls("FieldValueRequired", f"Required value: {detail}", field)


#: The cause the server adds when errors of these kinds kept it from running the CEL rules.
SKIPPED_RULES: Final = Cause(
    "FieldValueInvalid",
    "Invalid value: null: some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation",
    "<nil>",
)
_SKIPS_RULES: Final = frozenset(
    {"FieldValueRequired", "FieldValueNotSupported", "FieldValueTooLong", "FieldValueTooMany", "FieldValueTypeInvalid"}
)
_TYPES: Final = {"object": "object", "array": "array", "string": "string", "boolean": "boolean",
                 "integer": "integer", "number": "number"}  # fmt: skip


def skips_rules(causes: list[Cause]) -> bool:
    """Whether these causes make the server skip the CEL rules (and add `SKIPPED_RULES`)."""
    return any(cause.reason in _SKIPS_RULES for cause in causes)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _keeps_unknown(schema: Mapping[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def prune(schema: Mapping[str, Any], value: Any, path: str = "") -> tuple[Any, list[str]]:
    """The value without the fields the schema does not know, and the paths of those fields."""
    unknown: list[str] = []
    if isinstance(value, Mapping):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(props, Mapping) and key in props:
                out[key], found = prune(props[key], item, _child(path, key))
                unknown.extend(found)
            elif isinstance(extra, Mapping):
                out[key], found = prune(extra, item, _child(path, key))
                unknown.extend(found)
            elif _keeps_unknown(schema) or extra is True:
                out[key] = copy.deepcopy(item)
            elif props is None and schema.get("type") != "object":
                out[key] = copy.deepcopy(item)  # not an object in the schema: the type check reports it
            else:
                unknown.append(_child(path, key))
        return out, unknown
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        items = [prune(schema["items"], item, f"{path}[{i}]") for i, item in enumerate(value)]
        return [item for item, _ in items], [p for _, found in items for p in found]
    return copy.deepcopy(value), unknown


def drop_nulls(schema: Mapping[str, Any], value: Any) -> Any:
    """Drop `null` fields whose schema is not `nullable` (the server treats them as absent)."""
    if isinstance(value, Mapping):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else {})
            if item is None and not sub.get("nullable"):
                continue
            out[key] = drop_nulls(sub, item)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [drop_nulls(schema["items"], item) for item in value]
    return value


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Fill in the schema's defaults for absent fields of the objects present."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub and sub["default"] is not None:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in value:
                value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def go_value(value: Any) -> str:
    """A value as Go's field errors print it: strings quoted, the rest as JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_matches(expected: str, value: Any) -> bool:
    actual = _json_type(value)
    return (
        actual == expected
        or (expected == "number" and actual == "integer")
        or (expected == "integer" and isinstance(value, float) and value.is_integer())
    )


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _is_date_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return "T" in text.upper()


def validate_value(schema: Mapping[str, Any], value: Any, path: str) -> list[Cause]:
    """The OpenAPI value validations of `schema` on `value` (already pruned and defaulted), with causes."""
    where = f"{path} in body" if path else " in body"
    expected = schema.get("type")
    if expected in _TYPES and not _type_matches(expected, value) and not schema.get("x-kubernetes-int-or-string"):
        if value is None and schema.get("nullable"):
            return []
        return [Cause("FieldValueTypeInvalid", f'Invalid value: {go_value(value)}: {where} must be of type {expected}: '
                      f'"{_json_type(value)}"', path)]  # fmt: skip
    causes: list[Cause] = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(go_value(v) for v in schema["enum"])
        causes.append(
            Cause("FieldValueNotSupported", f"Unsupported value: {go_value(value)}: supported values: {allowed}", path)
        )
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append(
                Cause("FieldValueTooLong", f"Too long: may not be more than {schema['maxLength']} bytes", path)
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_value(value)}: {where} should be at least "
                                f"{schema['minLength']} chars long", path))  # fmt: skip
        if "pattern" in schema and not _regex(schema["pattern"]).search(value):
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_value(value)}: {where} should match "
                                f"'{schema['pattern']}'", path))  # fmt: skip
        if schema.get("format") == "date-time" and not _is_date_time(value):
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_value(value)}: {where} must be of type "
                                f'date-time: "{value}"', path))  # fmt: skip
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "maximum" in schema and value > schema["maximum"]:
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_value(value)}: {where} should be less than or "
                                f"equal to {schema['maximum']}", path))  # fmt: skip
        if "minimum" in schema and value < schema["minimum"]:
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {go_value(value)}: {where} should be greater than "
                                f"or equal to {schema['minimum']}", path))  # fmt: skip
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append(
                Cause(
                    "FieldValueTooMany", f"Too many: {len(value)}: must have at most {schema['maxItems']} items", path
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {len(value)}: {where} should have at least "
                                f"{schema['minItems']} items", path))  # fmt: skip
        if isinstance(schema.get("items"), Mapping):
            for index, item in enumerate(value):
                causes.extend(validate_value(schema["items"], item, f"{path}[{index}]"))
        causes.extend(_list_map_duplicates(schema, value, path))
    if isinstance(value, Mapping):
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            causes.append(
                Cause(
                    "FieldValueTooMany",
                    f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
                    path,
                )
            )
        for key in schema.get("required") or []:
            if key not in value:
                causes.append(Cause("FieldValueRequired", "Required value", _child(path, key)))
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            if isinstance(sub, Mapping):
                causes.extend(validate_value(sub, item, _child(path, key)))
    return causes


def _list_map_duplicates(schema: Mapping[str, Any], value: list[Any], path: str) -> list[Cause]:
    if schema.get("x-kubernetes-list-type") != "map":
        return []
    keys = schema.get("x-kubernetes-list-map-keys") or []
    seen: set[str] = set()
    causes: list[Cause] = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            continue
        key = go_value({k: item.get(k) for k in keys})
        if key in seen:
            causes.append(Cause("FieldValueDuplicate", f"Duplicate value: {key}", f"{path}[{index}]"))
        seen.add(key)
    return causes
