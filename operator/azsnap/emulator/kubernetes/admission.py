"""What the server does to a write before it stores it: CRD registration rules, custom resource schemas, Events.

A custom resource is checked for its kind, loses unknown fields (warned about, or refused under
`fieldValidation=Strict`) and non-nullable nulls, gets its defaults, and is validated against its CRD's schema and
CEL rules. A CRD is checked against the registration rules. Refusals are `Status` errors shaped like the server's.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any, Final

import kmock

from azsnap.emulator.kubernetes.cel import rule_causes
from azsnap.emulator.kubernetes.crd_rules import crd_causes, crd_warnings
from azsnap.emulator.kubernetes.protocol import _error
from azsnap.emulator.kubernetes.schema import (
    SKIPPED_RULES,
    Cause,
    apply_defaults,
    drop_nulls,
    prune,
    skips_rules,
    validate_value,
)

__all__ = ["admit_crd", "admit_custom", "admit_event", "invalid", "metadata_causes"]

_TYPE_FIELDS: Final = ("apiVersion", "kind", "metadata")
_NAME_PART: Final = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_PREFIX: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE: Final = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_NAME_PART_MESSAGE: Final = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_LABEL_VALUE_MESSAGE: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
#: The most all annotations of one object may hold, keys and values together.
_ANNOTATIONS_LIMIT: Final = 256 * 1024


def _key_problems(key: str) -> list[str]:
    """Why a label or annotation key is not a qualified name (`prefix/name`)."""
    prefix, slash, name = key.rpartition("/")
    problems: list[str] = []
    if slash and (not prefix or len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):
        problems.append("prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters")
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    elif not _NAME_PART.fullmatch(name):
        problems.append(_NAME_PART_MESSAGE)
    return problems


def metadata_causes(meta: Mapping[str, Any]) -> list[Cause]:
    """Label and annotation keys and values a real server refuses (ObjectMeta validation)."""
    causes: list[Cause] = []
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    for key, value in labels.items():
        causes.extend(
            Cause("FieldValueInvalid", f"Invalid value: {json.dumps(key)}: {p}", "metadata.labels")
            for p in _key_problems(key)
        )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            detail = (
                "must be no more than 63 characters"
                if isinstance(value, str) and len(value) > 63
                else _LABEL_VALUE_MESSAGE
            )
            causes.append(
                Cause("FieldValueInvalid", f"Invalid value: {json.dumps(value)}: {detail}", "metadata.labels")
            )
    for key in annotations:
        causes.extend(
            Cause("FieldValueInvalid", f"Invalid value: {json.dumps(key)}: {p}", "metadata.annotations")
            for p in _key_problems(key)
        )
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > _ANNOTATIONS_LIMIT:
        causes.append(
            Cause(
                "FieldValueTooLong",
                f"Too long: may not be more than {_ANNOTATIONS_LIMIT} bytes",
                "metadata.annotations",
            )
        )
    return causes


def invalid(
    kind: str, group: str, name: str, causes: list[Cause], *, details_kind: str | None = None
) -> kmock.KubernetesError:
    """A 422 `Invalid` with the server's message (`Kind.group "name" is invalid: field: message`) and causes."""
    listed = list(dict.fromkeys(f"{c.field}: {c.message}" for c in causes))  # a cause listed twice is said once
    text = listed[0] if len(listed) == 1 else f"[{', '.join(listed)}]"
    qualified = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details.update(kind=details_kind or kind, causes=[c.as_json() for c in causes])
    return _error(422, "Invalid", f'{qualified} "{name}" is invalid: {text}', **details)


def _schema(crd: Mapping[str, Any], version: str) -> Mapping[str, Any]:
    for entry in (crd.get("spec") or {}).get("versions") or []:
        if entry.get("name") == version:
            return (entry.get("schema") or {}).get("openAPIV3Schema") or {}
    return {}


def admit_custom(
    crd: Mapping[str, Any],
    version: str,
    obj: dict[str, Any],
    *,
    field_validation: str,
    warnings: list[str],
    old: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The object as the server stores it (pruned, defaulted), or a `Status` error; warnings are appended.

    `old` is the stored object on an update: transition rules compare with it, and rules that fail on a value
    it already had only warn (validation ratcheting).
    """
    names = (crd.get("spec") or {}).get("names") or {}
    group = str((crd.get("spec") or {}).get("group", ""))
    kind, name = str(names.get("kind", "")), str((obj.get("metadata") or {}).get("name", ""))
    if obj.get("kind") != kind:
        given = str(obj.get("kind", ""))
        cause = Cause("FieldValueInvalid", f'Invalid value: "{given}": must be {kind}', "kind")
        raise invalid(given, group, name, [cause])
    schema = _schema(crd, version)
    props = {k: v for k, v in (schema.get("properties") or {}).items() if k not in _TYPE_FIELDS}
    body_schema = {**schema, "properties": props}
    body = {k: v for k, v in obj.items() if k not in _TYPE_FIELDS}
    body, unknown = prune(body_schema, body)
    if unknown and field_validation == "Strict":
        listed = ", ".join(f'unknown field "{path}"' for path in unknown)
        raise _error(
            400,
            "BadRequest",
            f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: {listed}',
        )
    if field_validation != "Ignore":
        warnings.extend(f'unknown field "{path}"' for path in unknown)
    body = apply_defaults(body_schema, drop_nulls(body_schema, body))
    causes = validate_value({**body_schema, "required": schema.get("required", [])}, body, "")
    if skips_rules(causes):
        causes.append(SKIPPED_RULES)
    else:
        before = None if old is None else {k: v for k, v in old.items() if k not in _TYPE_FIELDS}
        causes.extend(rule_causes(body_schema, body, "", before, warnings=warnings, ratchet=before == body))
    if causes:
        raise invalid(kind, group, name, causes)
    return {**{k: obj[k] for k in _TYPE_FIELDS if k in obj}, **body}


def _drop_null_defaults(schema: Any) -> Any:
    if isinstance(schema, Mapping):
        return {k: _drop_null_defaults(v) for k, v in schema.items() if not (k == "default" and v is None)}
    if isinstance(schema, list):
        return [_drop_null_defaults(item) for item in schema]
    return schema


def admit_crd(crd: dict[str, Any], old: Mapping[str, Any] | None, warnings: list[str]) -> dict[str, Any]:
    """The CRD as the server stores it (`default: null` dropped), or a 422 naming every broken rule."""
    name = str((crd.get("metadata") or {}).get("name", ""))
    causes = crd_causes(crd, old)
    if causes:
        raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)
    warnings.extend(crd_warnings(crd))
    stored = copy.deepcopy(crd)
    stored["spec"] = _drop_null_defaults(stored.get("spec") or {})
    return stored


def admit_event(group: str, event: dict[str, Any]) -> dict[str, Any]:
    """An Event as the server stores it: events.k8s.io/v1 needs an eventTime; unset fields get their zero values."""
    name = str((event.get("metadata") or {}).get("name", ""))
    if group == "events.k8s.io":
        if not event.get("eventTime"):
            raise invalid("Event", "", name, [Cause("FieldValueRequired", "Required value", "eventTime")])
        event.setdefault("deprecatedSource", {})
        for key in ("deprecatedFirstTimestamp", "deprecatedLastTimestamp"):
            event.setdefault(key, None)
    else:
        event.setdefault("eventTime", None)
        event.setdefault("reportingComponent", "")
        event.setdefault("reportingInstance", "")
    return event
