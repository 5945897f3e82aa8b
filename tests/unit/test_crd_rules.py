"""The in-process API's CRD registration rules: each rule refuses a CRD that breaks it, naming the server's field.

The recorded answers of a real server (`tests/e2e/test_kube_answers.py`) cover the rules azsnap's CRD came close
to; these cover every rule, one broken CRD each, starting from the project's own CRD (which passes them all).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from tests.support.crd import crd

from azsnap.emulator.kubernetes.crd_rules import crd_causes, crd_warnings
from azsnap.emulator.kubernetes.schema import Cause

ROOT = "spec.validation.openAPIV3Schema"


def _schema(doc: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _node(doc: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = _schema(doc)
    for key in dotted.split("."):
        node = node["properties"][key]
    return node


def _set(dotted: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: _node(doc, dotted).update(values)


def _drop(dotted: str, key: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: _node(doc, dotted).pop(key)


def _column(index: int, **values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["spec"]["versions"][0]["additionalPrinterColumns"][index].update(values)


def _metadata(node: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda doc: _schema(doc)["properties"].__setitem__("metadata", node)


def _rule(dotted: str, rule: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: _node(doc, dotted)["x-kubernetes-validations"][0].update(rule=rule)


def _conditions_items(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: _node(doc, "status.conditions")["items"].update(values)


def _second_storage_version(doc: dict[str, Any]) -> None:
    doc["spec"]["versions"].append(dict(copy.deepcopy(doc["spec"]["versions"][0]), name="v1alpha2"))


def _nested_macro_over_unbounded_list(doc: dict[str, Any]) -> None:
    _node(doc, "spec.snapshot")["properties"]["excludeNames"] = {
        "type": "array", "items": {"type": "string"},
        "x-kubernetes-validations": [{"rule": "self.all(a, self.all(b, a == b || !a.contains(b)))", "message": "m"}],
    }  # fmt: skip


SP = f"{ROOT}.properties[spec]"
STATUS = f"{ROOT}.properties[status]"
CONDITIONS = f"{STATUS}.properties[conditions]"
BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("metadata described", _metadata({"type": "object", "description": "x"}), f"{ROOT}.properties[metadata]", "FieldValueForbidden"),
    ("metadata labels", _metadata({"type": "object", "properties": {"labels": {"type": "object"}}}),
     f"{ROOT}.properties[metadata]", "FieldValueForbidden"),
    ("metadata not an object", _metadata({"type": "string"}), f"{ROOT}.properties[metadata].type", "FieldValueInvalid"),
    ("generateName default", _metadata({"type": "object", "properties": {"generateName": {"type": "string", "default": "p-"}}}),
     f"{ROOT}.properties[metadata].properties[generateName].default", "FieldValueForbidden"),
    ("root not an object", lambda doc: _schema(doc).update(type="array"), f"{ROOT}.type", "FieldValueInvalid"),
    ("field without type", _drop("spec.disk.id", "type"), f"{SP}.properties[disk].properties[id].type", "FieldValueRequired"),
    ("object without type", _drop("spec.snapshot", "type"), f"{SP}.properties[snapshot].type", "FieldValueRequired"),
    ("items without type", lambda doc: _node(doc, "status.conditions")["items"].pop("type"), f"{CONDITIONS}.items.type",
     "FieldValueRequired"),
    ("properties and additionalProperties", _set("spec.snapshot.tags", properties={"a": {"type": "string"}}),
     f"{SP}.properties[snapshot].properties[tags].additionalProperties", "FieldValueForbidden"),
    ("preserve-unknown-fields false", _set("spec.snapshot", **{"x-kubernetes-preserve-unknown-fields": False}),
     f"{SP}.properties[snapshot].x-kubernetes-preserve-unknown-fields", "FieldValueInvalid"),
    ("default against its pattern", _set("spec.schedule.timeZone", default="Not a zone!"),
     f"{SP}.properties[schedule].properties[timeZone].default", "FieldValueInvalid"),
    ("default outside its enum", _set("spec.deletionPolicy", default="Orphan"), f"{SP}.properties[deletionPolicy].default",
     "FieldValueNotSupported"),
    ("default of the wrong type", _set("spec.suspend", default="no"), f"{SP}.properties[suspend].default", "FieldValueTypeInvalid"),
    ("default over its maximum", _set("spec.retention.minKeep", default=501), f"{SP}.properties[retention].properties[minKeep].default",
     "FieldValueInvalid"),
    ("default that would be pruned", _set("spec.snapshot", default={"incremental": True, "forever": True}),
     f"{SP}.properties[snapshot].default", "FieldValueInvalid"),
    ("nullable list-map key", lambda doc: _node(doc, "status.conditions")["items"]["properties"]["type"].update(nullable=True),
     f"{CONDITIONS}.items.properties[type].nullable", "FieldValueForbidden"),
    ("list-map without keys", _drop("status.conditions", "x-kubernetes-list-map-keys"),
     f"{CONDITIONS}.x-kubernetes-list-map-keys", "FieldValueRequired"),
    ("list-map keys without list-type", _drop("status.conditions", "x-kubernetes-list-type"),
     f"{CONDITIONS}.x-kubernetes-list-map-keys", "FieldValueForbidden"),
    ("set of objects", lambda doc: (_set("status.conditions", **{"x-kubernetes-list-type": "set"})(doc),
                                    _drop("status.conditions", "x-kubernetes-list-map-keys")(doc)),
     f"{CONDITIONS}.items.x-kubernetes-map-type", "FieldValueInvalid"),
    ("uniqueItems", _set("status.conditions", uniqueItems=True), f"{CONDITIONS}.uniqueItems", "FieldValueForbidden"),
    ("lookahead pattern", _set("spec.snapshot.resourceGroup", pattern="^(?!azsnap).*$"),
     f"{SP}.properties[snapshot].properties[resourceGroup].pattern", "FieldValueInvalid"),
    ("back-reference pattern", _set("spec.snapshot.resourceGroup", pattern=r"^(a)\1$"),
     f"{SP}.properties[snapshot].properties[resourceGroup].pattern", "FieldValueInvalid"),
    ("CEL syntax error", _rule("spec.schedule", "has(self.cron) != has(self.every"),
     f"{SP}.properties[schedule].x-kubernetes-validations[0].rule", "FieldValueInvalid"),
    ("CEL unknown field", _rule("spec.schedule", "self.interval != ''"),
     f"{SP}.properties[schedule].x-kubernetes-validations[0].rule", "FieldValueInvalid"),
    ("CEL over budget", _nested_macro_over_unbounded_list,
     f"{SP}.properties[snapshot].properties[excludeNames].x-kubernetes-validations[0].rule", "FieldValueForbidden"),
    ("column type", _column(3, type="datetime"), "spec.additionalPrinterColumns[3].type", "FieldValueInvalid"),
    ("column format", _column(5, format="duration"), "spec.additionalPrinterColumns[5].format", "FieldValueInvalid"),
    ("column path without a dot", _column(0, jsonPath="status.diskName"), "spec.additionalPrinterColumns[0].JSONPath", "FieldValueInvalid"),
    ("column without a name", _column(0, name=""), "spec.additionalPrinterColumns[0].name", "FieldValueRequired"),
    ("two storage versions", _second_storage_version, "spec.versions", "FieldValueInvalid"),
    ("upper-case plural", lambda doc: doc["spec"]["names"].update(plural="SnapshotPolicies"), "spec.names.plural", "FieldValueInvalid"),
    ("name not plural.group", lambda doc: doc["metadata"].update(name="policies.azsnap.io"), "metadata.name", "FieldValueInvalid"),
    ("unknown scope", lambda doc: doc["spec"].update(scope="Everywhere"), "spec.scope", "FieldValueNotSupported"),
    ("scale path under status", lambda doc: doc["spec"]["versions"][0]["subresources"].update(
        scale={"specReplicasPath": ".status.snapshotCount", "statusReplicasPath": ".status.snapshotCount"}),
     "spec.subresources.scale.specReplicasPath", "FieldValueInvalid"),
]  # fmt: skip


def test_the_project_crd_passes_every_rule_without_a_warning() -> None:
    assert crd_causes(crd()) == []
    assert crd_warnings(crd()) == []


@pytest.mark.parametrize(("mutate", "field", "reason"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_broken_crd_is_refused_naming_the_field(
    mutate: Callable[[dict[str, Any]], None], field: str, reason: str
) -> None:
    doc = copy.deepcopy(crd())
    mutate(doc)
    causes = crd_causes(doc)
    assert (field, reason) in {(c.field, c.reason) for c in causes}, causes
    assert all(isinstance(c, Cause) and c.message for c in causes)


def test_the_scope_cannot_change() -> None:
    changed = copy.deepcopy(crd())
    changed["spec"]["scope"] = "Cluster"
    assert [(c.field, c.message) for c in crd_causes(changed, crd())] == [
        ("spec.scope", 'Invalid value: "Cluster": field is immutable')
    ]


def test_an_unknown_format_is_accepted_with_a_warning() -> None:
    doc = copy.deepcopy(crd())
    _set("spec.disk.id", format="arm-resource-id")(doc)
    assert crd_causes(doc) == []
    assert crd_warnings(doc) == ['unrecognized format "arm-resource-id"']
