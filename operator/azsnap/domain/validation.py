"""Check a SnapshotPolicy manifest and report each problem against the field it concerns (`spec.schedule.every`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from azsnap.domain.models import API_GROUP, API_VERSION, KIND, SnapshotPolicySpec
from azsnap.domain.schedule import validate_schedule
from azsnap.domain.targets import TARGET_FIELDS, exactly_one_target

__all__ = ["FieldError", "format_errors", "validate_manifest", "validate_spec"]

#: Kubernetes object names (RFC 1123 subdomain), as the API server checks `metadata.name`.
_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_MAX_NAME: Final = 253
#: Pydantic prefixes messages raised by validators with this; the field path already says enough.
_VALUE_ERROR_PREFIX: Final = "Value error, "
_SHOWN_INPUT: Final = 60


@dataclass(frozen=True)
class FieldError:
    """One problem with a policy: where (`spec.retention.keepLast`) and what, in words a person can act on."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def format_errors(errors: Iterable[FieldError], sep: str = "; ") -> str:
    """All problems on one line (or one per line with `sep="\\n"`), each led by its field path."""
    return sep.join(str(error) for error in errors)


def validate_manifest(doc: Mapping[str, Any]) -> tuple[SnapshotPolicySpec | None, list[FieldError]]:
    """Validate a whole manifest; the spec is returned only when there is no problem at all."""
    if not isinstance(doc, Mapping):
        return None, [FieldError("(document)", f"expected a {KIND} manifest (a mapping), got {_kind_of(doc)}")]
    errors: list[FieldError] = []
    expected_api = f"{API_GROUP}/{API_VERSION}"
    if doc.get("apiVersion") != expected_api:
        errors.append(FieldError("apiVersion", f"must be {expected_api!r}, got {_shown(doc.get('apiVersion'))}"))
    if doc.get("kind") != KIND:
        errors.append(FieldError("kind", f"must be {KIND!r}, got {_shown(doc.get('kind'))}"))
    errors.extend(_metadata_errors(doc.get("metadata")))
    if "spec" not in doc:
        errors.append(
            FieldError(
                "spec",
                "required: the policy needs a spec with a target (disk, volumeClaim or "
                "volumeClaimSelector), schedule and retention",
            )
        )
        return None, errors
    spec, spec_errors = validate_spec(doc["spec"])
    errors.extend(spec_errors)
    return (spec if not errors else None), errors


def validate_spec(raw: Any) -> tuple[SnapshotPolicySpec | None, list[FieldError]]:
    """Validate a spec alone (the models, then the schedule rules the schema cannot express)."""
    if not isinstance(raw, Mapping):
        return None, [FieldError("spec", f"must be a mapping with disk, schedule and retention, got {_kind_of(raw)}")]
    try:
        spec = SnapshotPolicySpec.model_validate(dict(raw))
    except ValidationError as exc:
        errors = [_field_error(detail) for detail in exc.errors(include_url=False)]
        return None, errors + [e for e in _target_errors(raw) if e not in errors]
    errors = [_schedule_error(problem) for problem in validate_schedule(spec.schedule)]
    return (None if errors else spec), errors


def _target_errors(raw: Mapping[str, Any]) -> list[FieldError]:
    """Exactly one target, said even when other fields fail first (the model checks it only once they pass)."""
    try:
        exactly_one_target(*(raw.get(name) for name in TARGET_FIELDS))
    except ValueError as exc:
        return [FieldError("spec", str(exc))]
    return []


def _metadata_errors(metadata: Any) -> list[FieldError]:
    if metadata is None:
        return []  # a file given to `azsnap preview` may leave it out; the API server always has one
    if not isinstance(metadata, Mapping):
        return [FieldError("metadata", f"must be a mapping, got {_kind_of(metadata)}")]
    name = metadata.get("name")
    if name is None:
        return []
    if not isinstance(name, str) or len(name) > _MAX_NAME or not _NAME.match(name):
        return [
            FieldError(
                "metadata.name",
                f"{_shown(name)} is not a valid name: at most {_MAX_NAME} lower-case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit",
            )
        ]
    return []


def _field_error(detail: ErrorDetails) -> FieldError:
    path = _path(detail["loc"])
    kind = detail["type"]
    if kind == "missing":
        message = "required"
    elif kind == "extra_forbidden":
        message = f"unknown field; {_known_fields(detail['loc'])}"
    else:
        message = str(detail["msg"]).removeprefix(_VALUE_ERROR_PREFIX)
        if kind not in {"value_error", "assertion_error"}:
            message = f"{message} (got {_shown(detail.get('input'))})"
    return FieldError(path, message)


def _path(loc: Sequence[int | str]) -> str:
    """`("schedule", "every")` -> `spec.schedule.every`; tag keys and list items keep their exact text."""
    path = "spec"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            path += f".{part}"
        else:
            path += f"[{part!r}]"
    return path


def _known_fields(loc: Sequence[int | str]) -> str:
    """The fields allowed beside an unknown one, so a typo is easy to spot."""
    model: type[BaseModel] | None = SnapshotPolicySpec
    for part in loc[:-1]:
        field = model.model_fields.get(_attribute(model, part)) if model is not None else None
        annotation = field.annotation if field is not None else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if model is None:
        return "remove it"
    names = sorted(field.alias or name for name, field in model.model_fields.items())
    return "the fields here are " + ", ".join(names)


def _attribute(model: type[BaseModel], alias: int | str) -> str:
    for name, field in model.model_fields.items():
        if alias in (name, field.alias):
            return name
    return str(alias)


def _schedule_error(problem: str) -> FieldError:
    path, sep, message = problem.partition(": ")
    if sep and path.startswith("spec."):
        return FieldError(path, message)
    return FieldError("spec.schedule", problem)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_INPUT else text[: _SHOWN_INPUT - 3] + "..."


def _kind_of(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
