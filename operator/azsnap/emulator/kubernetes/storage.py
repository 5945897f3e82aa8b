"""Object storage for the emulated API: resourceVersions, generations, create/update/delete, finalizers, events."""

from __future__ import annotations

import copy
import random
import re
import string
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from azsnap.clock import Clock, WallClock
from azsnap.emulator.kubernetes.admission import admit_crd, admit_custom, admit_event, invalid, metadata_causes
from azsnap.emulator.kubernetes.discovery import ApiDiscovery
from azsnap.emulator.kubernetes.patching import _matches_fields, _matches_labels
from azsnap.emulator.kubernetes.protocol import CRD_GROUP, CRD_PLURAL, _error, _Key, _Watch
from azsnap.emulator.kubernetes.schema import Cause
from azsnap.emulator.kubernetes.volumes import VOLUME_PLURALS, admit_volume, initial_status

__all__ = ["ApiStorage"]

_NAME_ALPHABET: Final = string.ascii_lowercase + string.digits
_SERVER_MANAGED: Final = ("uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp")
_DNS1123_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_MESSAGE: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
#: The first resourceVersion handed out: like a real server's, older ones (`resourceVersion=1`) are too old to watch.
FIRST_RESOURCE_VERSION: Final = 1000


@attrs.define(kw_only=True)
class ApiStorage(ApiDiscovery):
    """The storage half of `KubeApiServer`: its settings, the object store, the event log and open watches."""

    clock: Clock = attrs.field(factory=WallClock)
    history: int = 512
    events_kept: int = 10_000
    peering: bool = False
    seed: int = 0

    _store: dict[_Key, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=FIRST_RESOURCE_VERSION - 1, init=False)
    _log: deque[tuple[int, str, str, str, dict[str, Any]]] = attrs.field(init=False)
    _log_floor: int = attrs.field(default=FIRST_RESOURCE_VERSION, init=False)
    _watches: set[_Watch] = attrs.field(factory=set, init=False)
    _random: random.Random = attrs.field(init=False)

    def _stored(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._store.get((group, plural, namespace, name))

    def _crd_for(self, group: str, plural: str) -> dict[str, Any] | None:
        """The stored CRD that defines this resource (None for built-ins)."""
        return self._store.get((CRD_GROUP, CRD_PLURAL, None, f"{plural}.{group}"))

    def _admit(
        self, group: str, version: str, plural: str, obj: dict[str, Any], old: dict[str, Any] | None,
        field_validation: str, warnings: list[str],
    ) -> dict[str, Any]:  # fmt: skip
        """The object as the server would store it, after the checks its kind gets (CRD rules, schema, Events)."""
        causes = metadata_causes(obj.get("metadata") or {})
        if causes:
            meta = obj.get("metadata") or {}
            raise invalid(str(obj.get("kind", "")), group, str(meta.get("name", "")), causes)
        if (group, plural) == (CRD_GROUP, CRD_PLURAL):
            return admit_crd(obj, old, warnings)
        if plural == "events" and group in ("", "events.k8s.io"):
            return admit_event(group, obj)
        if group == "" and plural in VOLUME_PLURALS:
            return admit_volume(plural, obj, old)
        crd = self._crd_for(group, plural)
        if crd is None:
            return obj
        return admit_custom(crd, version, obj, field_validation=field_validation, warnings=warnings, old=old)

    @staticmethod
    def _out(obj: Mapping[str, Any], group: str, version: str) -> dict[str, Any]:
        api_version = f"{group}/{version}" if group else version
        return {"apiVersion": api_version, "kind": obj.get("kind"), **copy.deepcopy(dict(obj))}

    def _select(
        self, group: str, plural: str, namespace: str | None, name: str | None, labels: str, fields: str
    ) -> list[dict[str, Any]]:
        matches = [
            obj
            for (g, p, ns, n), obj in self._store.items()
            if (g, p) == (group, plural) and namespace in (None, ns) and name in (None, n)
            and _matches_labels(obj["metadata"].get("labels") or {}, labels) and _matches_fields(obj, fields)
        ]  # fmt: skip
        return matches  # the store keeps creation order

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _now(self) -> str:
        return self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _fresh(self, body: Mapping[str, Any], namespace: str | None) -> dict[str, Any]:
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        for field in (*_SERVER_MANAGED, "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(field, None)
        if namespace is not None:
            meta["namespace"] = namespace
        obj.pop("apiVersion", None)  # added on the way out, in the version asked for
        rv = self._next_rv()
        meta.update(
            uid=str(uuid.UUID(int=self._random.getrandbits(128), version=4)),
            creationTimestamp=self._now(), resourceVersion=rv,
        )  # fmt: skip
        return obj

    def _emit(self, kind: str, group: str, plural: str, obj: dict[str, Any]) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        if len(self._log) == self._log.maxlen:
            self._log_floor = self._log[0][0]
        self._log.append((rv, kind, group, plural, obj))
        for watch in self._watches:
            if watch.wants(group, plural, obj):
                watch.queue.put_nowait((kind, obj))

    def _create(
        self, group: str, version: str, plural: str, namespace: str | None, body: Any, *, dry_run: bool = False,
        field_validation: str = "Warn", warnings: list[str] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        info = self._info(group, version, plural)
        if not isinstance(body, Mapping) or not isinstance(body.get("metadata", {}), Mapping):
            raise _error(400, "BadRequest", "the object must be a JSON object with an object `metadata`")
        meta = body.get("metadata", {})
        if info.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise _error(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            namespace = namespace or meta.get("namespace") or "default"
        else:
            namespace = None
        name = meta.get("name")
        if not name and meta.get("generateName"):
            while not name or self._stored(group, plural, namespace, name) is not None:
                name = meta["generateName"] + "".join(self._random.choices(_NAME_ALPHABET, k=5))
        if not name:
            raise _error(422, "Invalid", "metadata.name: Required value: name or generateName is required")
        if not _DNS1123_SUBDOMAIN.fullmatch(str(name)) or len(str(name)) > 253:
            cause = Cause("FieldValueInvalid", f'Invalid value: "{name}": {_DNS1123_MESSAGE}', "metadata.name")
            raise invalid(str(info.kind), group, str(name), [cause])
        if self._stored(group, plural, namespace, name) is not None:
            raise _error(
                409, "AlreadyExists", f'{plural}.{group or "core"} "{name}" already exists', name=name, kind=plural
            )
        if namespace is not None and self._stored("", "namespaces", None, namespace) is None:
            raise _error(404, "NotFound", f'namespaces "{namespace}" not found', name=namespace, kind="namespaces")
        obj = self._fresh(body, namespace)
        obj["metadata"]["name"] = name
        if group not in ("", "events.k8s.io"):
            obj["metadata"]["generation"] = 1  # custom resources and CRDs count generations; Events do not
        obj.setdefault("kind", info.kind)
        obj = self._admit(group, version, plural, obj, None, field_validation, warnings if warnings is not None else [])
        obj["kind"] = info.kind
        if "status" in info.subresources:
            obj.pop("status", None)
            obj.update({"status": status} if (status := initial_status(group, plural)) else {})
        answer: dict[str, Any] | None = None
        if (group, plural) == (CRD_GROUP, CRD_PLURAL):
            # The create answer has no conditions and no accepted names yet; they are set at once afterwards.
            stored = [v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")]
            answer = copy.deepcopy(obj)
            answer["status"] = {
                "conditions": None,
                "acceptedNames": {"plural": "", "kind": ""},
                "storedVersions": stored,
            }
            obj["status"] = {"conditions": [
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": self._now(), "reason": "NoConflicts",
                 "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": self._now(),
                 "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
            ], "acceptedNames": copy.deepcopy(obj["spec"].get("names", {})), "storedVersions": stored}  # fmt: skip
        if dry_run:
            self._rv -= 1
            return self._out(answer or obj, group, version)
        self._store[(group, plural, namespace, name)] = obj
        if (group, plural) == (CRD_GROUP, CRD_PLURAL):
            self._declare_crd(obj)
        self._emit("ADDED", group, plural, obj)
        return self._out(answer or obj, group, version)

    def _update(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        change: Callable[[dict[str, Any]], Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: list[str] | None = None,
    ) -> dict[str, Any]:
        info = self._info(group, version, plural)
        namespace = namespace if info.namespaced else None
        if subresource not in (None, *info.subresources):
            raise _error(404, "NotFound", f"{plural} has no subresource {subresource!r}")
        old = self._stored(group, plural, namespace, name)
        if old is None:
            raise _error(404, "NotFound", f'{plural}.{group or "core"} "{name}" not found', name=name, kind=plural)
        try:
            wanted = change(copy.deepcopy(old))
        except ValueError as exc:
            raise _error(422, "Invalid", str(exc), name=name, kind=plural) from exc
        if not isinstance(wanted, dict) or not isinstance(wanted.get("metadata", {}), dict):
            raise _error(422, "Invalid", "the patched object is not a JSON object with an object `metadata`")
        wanted_rv = wanted.get("metadata", {}).get("resourceVersion")
        if wanted_rv not in (None, old["metadata"]["resourceVersion"]):
            raise _error(
                409, "Conflict",
                f'Operation cannot be fulfilled on {plural}.{group or "core"} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again", name=name, kind=plural,
            )  # fmt: skip
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in wanted:
                new["status"] = wanted["status"]
            else:
                new.pop("status", None)
        else:
            new = wanted
            if "status" in info.subresources:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        meta = new.setdefault("metadata", {})
        for field in (*_SERVER_MANAGED, "deletionGracePeriodSeconds", "name", "namespace"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        new["kind"] = info.kind
        new = self._admit(group, version, plural, new, old, field_validation, warnings if warnings is not None else [])
        meta = new["metadata"]
        new.pop("apiVersion", None)
        old_finalizers = set(old["metadata"].get("finalizers") or [])
        added = [f for f in meta.get("finalizers") or [] if f not in old_finalizers]
        if meta.get("deletionTimestamp") and added:
            listed = ", ".join(f'"{f}"' for f in added)
            detail = f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{listed}}}"
            cause = Cause("FieldValueForbidden", detail, "metadata.finalizers")
            raise invalid(str(info.kind), group, name, [cause, cause])  # the server lists it twice
        if new == old:
            return self._out(old, group, version)  # no-op writes keep the version and notify nobody
        if _spec(new) != _spec(old) and "generation" in old["metadata"]:
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = self._next_rv()
        if dry_run:
            self._rv -= 1
            return self._out(new, group, version)
        self._store[(group, plural, namespace, name)] = new
        if (group, plural) == (CRD_GROUP, CRD_PLURAL):
            self._declare_crd(new)
        self._emit("MODIFIED", group, plural, new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(group, plural, namespace, name)
        return self._out(new, group, version)

    def _delete(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        options: Any,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        info = self._info(group, version, plural)
        namespace = namespace if info.namespaced else None
        old = self._stored(group, plural, namespace, name)
        if old is None:
            raise _error(404, "NotFound", f'{plural}.{group or "core"} "{name}" not found', name=name, kind=plural)
        preconditions = (options.get("preconditions") if isinstance(options, Mapping) else None) or {}
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) not in (None, old["metadata"].get(field)):
                raise _error(
                    409,
                    "Conflict",
                    f"Precondition failed: {field} in precondition does not match the object",
                    name=name,
                    kind=plural,
                )
        if dry_run:
            return self._out(old, group, version)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return self._out(old, group, version)
            new = copy.deepcopy(old)
            new["metadata"].update(
                deletionTimestamp=self._now(), deletionGracePeriodSeconds=0, resourceVersion=self._next_rv()
            )  # fmt: skip
            if "generation" in old["metadata"]:
                new["metadata"]["generation"] = int(old["metadata"]["generation"]) + 1
            self._store[(group, plural, namespace, name)] = new
            self._emit("MODIFIED", group, plural, new)
            return self._out(new, group, version)
        return self._out(self._remove(group, plural, namespace, name), group, version)

    def _remove(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        gone = copy.deepcopy(self._store.pop((group, plural, namespace, name)))
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("DELETED", group, plural, gone)
        return gone


def _spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a generation counts: all but metadata, status and the type fields."""
    return {key: value for key, value in obj.items() if key not in ("metadata", "status", "apiVersion", "kind")}
