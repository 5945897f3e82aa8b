"""core/v1 PersistentVolumeClaims and PersistentVolumes: their declaration, defaults and the server's validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from azsnap.emulator.kubernetes.admission import invalid
from azsnap.emulator.kubernetes.schema import Cause

__all__ = ["VOLUME_PLURALS", "admit_volume", "declare_volumes", "initial_status"]

VOLUME_PLURALS: Final = ("persistentvolumeclaims", "persistentvolumes")
_KINDS: Final = {"persistentvolumeclaims": "PersistentVolumeClaim", "persistentvolumes": "PersistentVolume"}
_ACCESS_MODES: Final = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
_VOLUME_MODES: Final = ("Block", "Filesystem")
#: PersistentVolume spec fields that are not a volume source (every other field is one).
_NOT_A_SOURCE: Final = frozenset(
    {
        "accessModes", "capacity", "claimRef", "mountOptions", "nodeAffinity", "persistentVolumeReclaimPolicy",
        "storageClassName", "volumeAttributesClassName", "volumeMode",
    }
)  # fmt: skip
#: Required fields of the volume sources azsnap reads.
_SOURCE_REQUIRED: Final = {"csi": ("driver", "volumeHandle"), "azureDisk": ("diskName", "diskURI")}
#: PVC spec fields that may change after creation (`volumeName` only from empty, as the binder sets it).
_PVC_MUTABLE: Final = ("resources", "volumeAttributesClassName")
_PVC_IMMUTABLE: Final = (
    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
)


class _Declaring(Protocol):
    def declare(
        self, group: str, version: str, plural: str, kind: str, *, namespaced: bool,
        short_names: tuple[str, ...] = (), subresources: tuple[str, ...] = (),
    ) -> None: ...  # fmt: skip


def declare_volumes(server: _Declaring) -> None:
    """Serve PersistentVolumeClaims (namespaced) and PersistentVolumes (cluster-scoped), both with `/status`."""
    server.declare("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", namespaced=True,
                   short_names=("pvc",), subresources=("status",))  # fmt: skip
    server.declare("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False,
                   short_names=("pv",), subresources=("status",))  # fmt: skip


def initial_status(group: str, plural: str) -> dict[str, Any] | None:
    """The status a new object starts with (a claim or volume is `Pending` until the controllers bind it)."""
    return {"phase": "Pending"} if group == "" and plural in VOLUME_PLURALS else None


def admit_volume(plural: str, obj: dict[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
    """The claim or volume with the server's defaults, or the 422 the server answers for it."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    spec.setdefault("volumeMode", "Filesystem")
    if plural == "persistentvolumes":
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    elif old is None:
        _mirror_data_source(spec)
    causes = _modes(spec)
    causes += _claim_causes(spec, old) if plural == "persistentvolumeclaims" else _volume_causes(spec, old)
    if causes:
        raise invalid(_KINDS[plural], "", str((obj.get("metadata") or {}).get("name", "")), causes)
    return obj


def _modes(spec: Mapping[str, Any]) -> list[Cause]:
    causes = []
    modes = spec.get("accessModes") or []
    for mode in modes:
        if mode not in _ACCESS_MODES:
            listed = ", ".join(f'"{m}"' for m in _ACCESS_MODES)
            causes.append(Cause("FieldValueNotSupported", f'Unsupported value: "{mode}": supported values: {listed}',
                                "spec.accessModes"))  # fmt: skip
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        causes.append(Cause("FieldValueForbidden", "Forbidden: may not use ReadWriteOncePod with other access modes",
                            "spec.accessModes"))  # fmt: skip
    if spec["volumeMode"] not in _VOLUME_MODES:
        causes.append(Cause("FieldValueNotSupported", f'Unsupported value: "{spec["volumeMode"]}": supported values: '
                            '"Block", "Filesystem"', "spec.volumeMode"))  # fmt: skip
    return causes


def _claim_causes(spec: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes = []
    if not spec.get("accessModes"):
        causes.append(Cause("FieldValueRequired", "Required value: at least 1 access mode is required",
                            "spec.accessModes"))  # fmt: skip
    if "storage" not in ((spec.get("resources") or {}).get("requests") or {}):
        causes.append(Cause("FieldValueRequired", "Required value", "spec.resources[storage]"))
    for key in ("dataSource", "dataSourceRef"):
        causes += _data_source_causes(spec.get(key), f"spec.{key}")
    ref, source = spec.get("dataSourceRef") or {}, spec.get("dataSource")
    # The server names the field as its value here, which prints as `{}` (a recorded dry run shows it so).
    if source and ref.get("namespace"):
        causes.append(Cause("FieldValueInvalid", "Invalid value: {}: may not be specified when "
                            "dataSourceRef.namespace is specified", "spec"))  # fmt: skip
    elif source and ref and any(source.get(k) != ref.get(k) for k in ("apiGroup", "kind", "name")):
        causes.append(Cause("FieldValueInvalid", "Invalid value: {}: must match dataSourceRef", "spec"))
    if old is not None:
        before = dict(old.get("spec") or {})
        if not before.get("volumeName"):
            before["volumeName"] = spec.get("volumeName")
        # As the real server: a claim's storage request may change only once it is bound, never below its capacity.
        bound = (old.get("status") or {}).get("phase") == "Bound"
        mutable = _PVC_MUTABLE if bound else _PVC_MUTABLE[1:]
        if _without(before, mutable) != _without(spec, mutable):
            causes.append(Cause("FieldValueForbidden", f"Forbidden: {_PVC_IMMUTABLE}", "spec"))
        elif bound and _below_capacity(old, spec):
            causes.append(Cause("FieldValueForbidden", "Forbidden: field can not be less than status.capacity",
                                "spec.resources.requests.storage"))  # fmt: skip
    return causes


def _mirror_data_source(spec: dict[str, Any]) -> None:
    """As the server does at a claim's creation: `dataSource` and `dataSourceRef` each filled from the other."""
    source, ref = spec.get("dataSource"), spec.get("dataSourceRef")
    if isinstance(source, Mapping) and not ref:
        spec["dataSourceRef"] = dict(source)
    elif isinstance(ref, Mapping) and not source and not ref.get("namespace"):
        spec["dataSource"] = {k: v for k, v in ref.items() if k != "namespace"}


def _data_source_causes(source: Any, path: str) -> list[Cause]:
    """The server's checks of a claim's data source: a name and a kind, and an API group unless it is a claim."""
    if not isinstance(source, Mapping):
        return []
    causes = [Cause("FieldValueRequired", "Required value", f"{path}.{key}") for key in ("name", "kind")
              if not source.get(key)]  # fmt: skip
    kind = source.get("kind") or ""
    if not source.get("apiGroup") and kind != "PersistentVolumeClaim":
        causes.append(Cause("FieldValueInvalid", f'Invalid value: "{kind}": must be \'PersistentVolumeClaim\' when '
                            "referencing the default apiGroup", path))  # fmt: skip
    return causes


_SUFFIXES: Final = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
                    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip


def _bytes(quantity: object) -> float | None:
    """A storage quantity in bytes (the suffixes Kubernetes accepts), or None when it cannot be read."""
    text = str(quantity)
    number = text.rstrip("kMGTPEi")
    try:
        return float(number) * _SUFFIXES[text[len(number) :]]
    except (KeyError, ValueError):
        return None


def _below_capacity(old: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    was = _bytes(((old.get("status") or {}).get("capacity") or {}).get("storage"))
    now = _bytes(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
    return was is not None and now is not None and now < was


def _volume_causes(spec: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    causes = []
    if not spec.get("accessModes"):
        causes.append(Cause("FieldValueRequired", "Required value", "spec.accessModes"))
    capacity = spec.get("capacity") or {}
    if not capacity:
        causes.append(Cause("FieldValueRequired", "Required value", "spec.capacity"))
    elif set(capacity) != {"storage"}:
        listed = ", ".join(f'"{k}"' for k in sorted(capacity))
        causes.append(Cause("FieldValueNotSupported", f'Unsupported value: []core.ResourceName{{{listed}}}: '
                            'supported values: "storage"', "spec.capacity"))  # fmt: skip
    sources = [key for key in spec if key not in _NOT_A_SOURCE]
    if not sources:
        causes.append(Cause("FieldValueRequired", "Required value: must specify a volume type", "spec"))
    elif len(sources) > 1:
        causes.append(Cause("FieldValueForbidden", "Forbidden: may not specify more than 1 volume type",
                            f"spec.{sources[1]}"))  # fmt: skip
    for source in sources:
        for field in _SOURCE_REQUIRED.get(source, ()):
            if not (spec.get(source) or {}).get(field):
                causes.append(Cause("FieldValueRequired", "Required value", f"spec.{source}.{field}"))
    if old is not None:
        before = old.get("spec") or {}
        if {k: v for k, v in before.items() if k not in _NOT_A_SOURCE} != {k: spec[k] for k in sources}:
            causes.append(Cause("FieldValueForbidden", "Forbidden: spec.persistentvolumesource is immutable after "
                                "creation", "spec.persistentvolumesource"))  # fmt: skip
    return causes


def _without(spec: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if key not in fields}
