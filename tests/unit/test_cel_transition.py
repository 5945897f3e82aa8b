"""The in-process API's CEL rules as kube-apiserver runs them: transition rules (`oldSelf`), `optionalOldSelf`,
messageExpression, reason and fieldPath, validation ratcheting, and the CRD registration checks of all of these.

Each case is one small CRD; the expected fields and messages are the server's (its CRD validation and its CEL
validator), the same shape as the recorded answers in `tests/e2e/test_kube_answers.py`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from azsnap.emulator.kubernetes.admission import admit_custom
from azsnap.emulator.kubernetes.cel import parse_rule
from azsnap.emulator.kubernetes.cel_cost import (
    CRD_COST_LIMIT,
    RULE_COST_LIMIT,
    cost_error_message,
    max_cardinality,
    rule_cost,
)
from azsnap.emulator.kubernetes.crd_cel import schema_nodes
from azsnap.emulator.kubernetes.crd_rules import crd_causes

ROOT = "spec.validation.openAPIV3Schema.properties[spec]"
ROOT_DIR = Path(__file__).resolve().parents[2]


def _crd(spec_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.io"},
        "spec": {
            "group": "example.io",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def _target(*rules: dict[str, Any]) -> dict[str, Any]:
    """spec.target (an object with name and zone), with these rules on it."""
    node: dict[str, Any] = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 80}, "zone": {"type": "string", "maxLength": 8}},
    }
    if rules:
        node["x-kubernetes-validations"] = list(rules)
    return {"type": "object", "properties": {"target": node}}


def _widget(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


def _write(crd: dict[str, Any], spec: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Admit the widget (an update when `old` is given); the warnings, or the refusal's causes raised."""
    assert crd_causes(crd) == []
    warnings: list[str] = []
    old_obj = _widget(old) if old is not None else None
    admit_custom(crd, "v1", _widget(spec), field_validation="Strict", warnings=warnings, old=old_obj)
    return warnings


def _refusal(crd: dict[str, Any], spec: dict[str, Any], old: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with pytest.raises(kmock.KubernetesError) as caught:
        _write(crd, spec, old)
    causes: list[dict[str, Any]] = (caught.value.details or {}).get("causes", [])
    assert causes, caught.value
    return causes


IMMUTABLE: dict[str, Any] = {"rule": "self == oldSelf", "message": "target is immutable"}


# --- transition rules at run time ---------------------------------------------------------------------------


def test_a_transition_rule_is_not_run_on_create_and_refuses_a_change_on_update() -> None:
    crd = _crd(_target(IMMUTABLE))
    assert _write(crd, {"target": {"name": "a"}}) == []
    assert _write(crd, {"target": {"name": "a"}}, old={"target": {"name": "a"}}) == []
    assert _refusal(crd, {"target": {"name": "b"}}, old={"target": {"name": "a"}}) == [
        {"reason": "FieldValueInvalid", "message": "Invalid value: target is immutable", "field": "spec.target"}
    ]


def test_a_transition_rule_is_not_run_where_the_old_object_had_no_value() -> None:
    crd = _crd(_target(IMMUTABLE))
    assert _write(crd, {"target": {"name": "b"}}, old={}) == []


def test_a_transition_rule_runs_on_map_list_items_matched_by_key_and_skips_new_items() -> None:
    item = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string", "maxLength": 10}, "size": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.size >= oldSelf.size", "message": "size may only grow"}],
    }
    crd = _crd(
        {
            "type": "object",
            "properties": {
                "disks": {"type": "array", "maxItems": 4, "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"], "items": item}
            },
        }
    )  # fmt: skip
    old = {"disks": [{"name": "a", "size": 4}, {"name": "b", "size": 4}]}
    # reordered, one grown and one new (smaller, but it has no old value to compare with)
    assert (
        _write(crd, {"disks": [{"name": "c", "size": 1}, {"name": "b", "size": 8}, {"name": "a", "size": 4}]}, old)
        == []
    )
    causes = _refusal(crd, {"disks": [{"name": "b", "size": 4}, {"name": "a", "size": 2}]}, old)
    assert causes == [
        {"reason": "FieldValueInvalid", "message": "Invalid value: size may only grow", "field": "spec.disks[1]"}
    ]


def test_an_optional_old_self_rule_runs_on_create_too() -> None:
    rule = {
        "rule": "oldSelf.hasValue() ? self == oldSelf.value() : self.name.startsWith('disk-')",
        "message": "a new target is named disk-..., and then never changes",
        "optionalOldSelf": True,
    }
    crd = _crd(_target(rule))
    assert _write(crd, {"target": {"name": "disk-1"}}) == []
    assert _refusal(crd, {"target": {"name": "vol-1"}})[0]["message"] == (
        "Invalid value: a new target is named disk-..., and then never changes"
    )
    assert _refusal(crd, {"target": {"name": "disk-2"}}, old={"target": {"name": "disk-1"}})
    assert _write(crd, {"target": {"name": "vol-1"}}, old={"target": {"name": "vol-1"}}) == []


def test_message_expression_reason_and_field_path_shape_the_answer() -> None:
    rule = {
        "rule": "self.name == oldSelf.name",
        "messageExpression": "'name was ' + oldSelf.name + ', it stays so'",
        "message": "name is immutable",
        "reason": "FieldValueForbidden",
        "fieldPath": ".name",
    }
    crd = _crd(_target(rule))
    assert _refusal(crd, {"target": {"name": "b"}}, old={"target": {"name": "a"}}) == [
        {"reason": "FieldValueForbidden", "message": "Forbidden: name was a, it stays so", "field": "spec.target.name"}
    ]


def test_a_message_expression_that_fails_falls_back_to_the_message() -> None:
    rule = {"rule": "self == oldSelf", "messageExpression": "'zone was ' + oldSelf.zone", "message": "immutable"}
    crd = _crd(_target(rule))  # the old target has no zone: the expression fails to evaluate
    causes = _refusal(crd, {"target": {"name": "b"}}, old={"target": {"name": "a"}})
    assert causes[0]["message"] == "Invalid value: immutable"


def test_a_rule_on_a_scalar_names_the_value_and_one_without_a_message_names_the_rule() -> None:
    node = {"type": "string", "maxLength": 20, "x-kubernetes-validations": [{"rule": "self.startsWith('disk-')"}]}
    crd = _crd({"type": "object", "properties": {"name": node}})
    assert _refusal(crd, {"name": "vol-1"}) == [
        {"reason": "FieldValueInvalid", "message": "Invalid value: \"vol-1\": failed rule: self.startsWith('disk-')",
         "field": "spec.name"}
    ]  # fmt: skip


def test_an_unchanged_value_that_breaks_a_rule_only_warns_but_a_changed_one_is_refused() -> None:
    node = {"type": "string", "maxLength": 20, "x-kubernetes-validations": [{"rule": "self.size() <= 5", "message": "at most 5"}]}  # fmt: skip
    crd = _crd({"type": "object", "properties": {"name": node, "other": {"type": "integer"}}})
    old = {"name": "too-long", "other": 1}
    assert _write(crd, {"name": "too-long", "other": 2}, old) == ['spec.name: Invalid value: "too-long": at most 5']
    assert _refusal(crd, {"name": "still-long", "other": 2}, old)[0]["field"] == "spec.name"


def test_transition_rules_are_never_ratcheted() -> None:
    crd = _crd(_target(IMMUTABLE, {"rule": "self.name != 'x'", "message": "not x"}))
    causes = _refusal(crd, {"target": {"name": "b"}}, old={"target": {"name": "a"}})
    assert [c["message"] for c in causes] == ["Invalid value: target is immutable"]


def test_an_evaluation_error_is_reported_with_the_rule() -> None:
    crd = _crd(_target({"rule": "self.zone == 'a'", "message": "zone a"}))
    assert _refusal(crd, {"target": {"name": "b"}}) == [
        {"reason": "FieldValueInvalid", "message": 'Invalid value: "object": no such key: zone evaluating rule: zone a',
         "field": "spec.target"}
    ]  # fmt: skip


# --- where the server refuses such rules at registration ----------------------------------------------------


def _listed(items_rules: list[dict[str, Any]], **list_extra: Any) -> dict[str, Any]:
    item = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 10}},
            "x-kubernetes-validations": items_rules}  # fmt: skip
    return _crd(
        {"type": "object", "properties": {"disks": {"type": "array", "maxItems": 4, "items": item, **list_extra}}}
    )


@pytest.mark.parametrize(
    "list_extra",
    [{}, {"x-kubernetes-list-type": "atomic"}, {"x-kubernetes-list-type": "set", "items_atomic": True}],
    ids=["unset", "atomic", "set"],
)
def test_old_self_under_a_list_that_is_not_a_map_is_refused(list_extra: dict[str, Any]) -> None:
    extra = {k: v for k, v in list_extra.items() if k != "items_atomic"}
    crd = _listed([IMMUTABLE], **extra)
    if list_extra.get("items_atomic"):
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["disks"]["items"][
            "x-kubernetes-map-type"
        ] = "atomic"
    assert [c.as_json() for c in crd_causes(crd)] == [
        {"reason": "FieldValueInvalid",
         "message": 'Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the '
                    f"schema within {ROOT}.properties[disks]",
         "field": f"{ROOT}.properties[disks].items.x-kubernetes-validations[0].rule"}
    ]  # fmt: skip


def test_old_self_under_a_map_list_and_on_an_atomic_list_itself_is_accepted() -> None:
    assert (
        crd_causes(_listed([IMMUTABLE], **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}))
        == []
    )
    crd = _listed([])
    disks = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["disks"]
    disks["items"].pop("x-kubernetes-validations")
    disks["x-kubernetes-validations"] = [IMMUTABLE]
    assert crd_causes(crd) == []


def test_optional_old_self_without_old_self_is_refused() -> None:
    crd = _crd(_target({"rule": "has(self.name)", "message": "m", "optionalOldSelf": False}))
    assert [c.as_json() for c in crd_causes(crd)] == [
        {"reason": "FieldValueInvalid", "message": "Invalid value: false: may not be set if oldSelf is not used in rule",
         "field": f"{ROOT}.properties[target].x-kubernetes-validations[0].optionalOldSelf"}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"reason": "FieldValueWrong"}, "reason",
         'Unsupported value: "FieldValueWrong": supported values: "FieldValueDuplicate", "FieldValueForbidden", '
         '"FieldValueInvalid", "FieldValueRequired"'),
        ({"fieldPath": ".size"}, "fieldPath", 'Invalid value: ".size": must be a valid path'),
        ({"fieldPath": "name"}, "fieldPath", 'Invalid value: "name": must be a valid path'),
        ({"messageExpression": "  "}, "messageExpression", "Required value: messageExpression must be non-empty if specified"),
        ({"message": " "}, "message", 'Invalid value: " ": must be non-empty if specified'),
        ({"rule": " "}, "rule", "Required value: rule is not specified"),
    ],
)  # fmt: skip
def test_a_rule_field_the_server_refuses(change: dict[str, Any], field: str, message: str) -> None:
    crd = _crd(_target({**IMMUTABLE, **change}))
    assert [(c.field, c.message) for c in crd_causes(crd)] == [
        (f"{ROOT}.properties[target].x-kubernetes-validations[0].{field}", message)
    ]


def test_a_field_path_into_a_property_or_a_quoted_key_is_accepted() -> None:
    assert crd_causes(_crd(_target({**IMMUTABLE, "fieldPath": ".name"}))) == []
    assert crd_causes(_crd(_target({**IMMUTABLE, "fieldPath": "['zone']"}))) == []


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        ({"rule": "'immutable'"}, "rule", "cel expression must evaluate to a bool"),
        ({"messageExpression": "size(self.name)"}, "messageExpression", "messageExpression must evaluate to a string"),
        ({"messageExpression": "'a' + self.colour"}, "messageExpression",
         "messageExpression compilation failed: ERROR: <input>:1:11: undefined field 'colour'"),
        ({"rule": "self.colour == oldSelf.colour"}, "rule", "compilation failed: ERROR: <input>:1:5: undefined field 'colour'"),
    ],
)  # fmt: skip
def test_expressions_the_server_does_not_compile(change: dict[str, Any], field: str, detail: str) -> None:
    rule = {**IMMUTABLE, **change}
    (cause,) = crd_causes(_crd(_target(rule)))
    assert cause.field == f"{ROOT}.properties[target].x-kubernetes-validations[0].{field}"
    assert cause.message.startswith('Invalid value: {"Rule":')
    assert cause.message.split("}: ", 1)[1].startswith(detail)


# --- cost -------------------------------------------------------------------------------------------------


def test_a_transition_rule_on_an_object_costs_little_but_under_an_unbounded_map_list_runs_per_item() -> None:
    target = _target(IMMUTABLE)["properties"]["target"]
    assert rule_cost(parse_rule("self == oldSelf"), target) < 10
    crd = _listed([{"rule": "self.name.contains(oldSelf.name)", "message": "m"}],
                  **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})  # fmt: skip
    disks = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["disks"]
    assert crd_causes(crd) == []  # 4 items of 10-character names
    disks.pop("maxItems")
    disks["items"]["properties"]["name"].pop("maxLength")
    causes = crd_causes(copy.deepcopy(crd))
    assert causes[0].field == f"{ROOT}.properties[disks].items.x-kubernetes-validations[0].rule"
    assert causes[0].message == "Forbidden: " + cost_error_message("estimated rule cost", 10**12, RULE_COST_LIMIT)
    assert causes[-1].field == "spec.validation.openAPIV3Schema"


def test_the_cost_message_gives_the_factor_as_the_server_prints_it() -> None:
    assert "by factor of 1.200000x (" in cost_error_message("estimated rule cost", 12_000_000, RULE_COST_LIMIT)
    assert "by factor of 3.5x (" in cost_error_message("estimated rule cost", 35_000_000, RULE_COST_LIMIT)
    assert "by factor of more than 100x (" in cost_error_message("estimated rule cost", 2 * 10**9, RULE_COST_LIMIT)


@pytest.mark.parametrize("name", ["snapshotpolicies.azsnap.io.yaml", "snapshotrestores.azsnap.io.yaml"])
def test_every_rule_azsnap_ships_is_far_inside_the_servers_cost_limits(name: str) -> None:
    """A hundredth of the limit: the estimate follows the server's, it is not equal to it, so keep a wide margin."""
    doc = yaml.safe_load((ROOT_DIR / "crds" / name).read_text())
    schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    costs = [
        (path, rule["rule"], rule_cost(parse_rule(rule["rule"]), node) * (times or max_cardinality(node)))
        for path, node, times, _ in schema_nodes(schema, "", 1, None)
        for rule in node.get("x-kubernetes-validations") or []
    ]
    assert costs
    for path, rule, cost in costs:
        assert cost <= RULE_COST_LIMIT // 100, (path, rule, cost)
    assert sum(cost for *_, cost in costs) <= CRD_COST_LIMIT // 100
