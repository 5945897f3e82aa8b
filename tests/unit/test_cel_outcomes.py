"""The in-process API remembers CEL rule outcomes by value: a remembered outcome is the one a fresh run gives."""

from __future__ import annotations

from typing import Any

from azsnap.emulator.kubernetes.cel import rule_causes

_ONE: dict[str, Any] = {"x-kubernetes-validations": [{"rule": "self == 1", "message": "must be one"}]}
_SHORT: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "x-kubernetes-validations": [{"rule": "size(self.name) < 4", "message": "name too long"}],
}


def test_a_refusal_is_refused_again_on_an_equal_value() -> None:
    first = rule_causes(_SHORT, {"name": "longer"}, "spec")
    again = rule_causes(_SHORT, {"name": "longer"}, "spec")
    assert [c.as_json() for c in first] == [c.as_json() for c in again]
    assert [c.message for c in again] == ["Invalid value: name too long"]
    assert rule_causes(_SHORT, {"name": "ok"}, "spec") == []


def test_values_python_calls_equal_but_cel_does_not_keep_their_own_outcomes() -> None:
    # 1 == 1.0 in Python (and they hash alike), but CEL has no int-double equality: the double is refused.
    assert rule_causes(_ONE, 1, "spec.n") == []
    refused = rule_causes(_ONE, 1.0, "spec.n")
    assert [c.field for c in refused] == ["spec.n"]
    assert "no such overload" in refused[0].message
    assert rule_causes(_ONE, 1, "spec.n") == []


def test_a_transition_rule_is_remembered_per_old_value() -> None:
    schema: dict[str, Any] = {
        "type": "string",
        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "is immutable"}],
    }
    assert rule_causes(schema, "a", "spec.id", "a") == []
    assert [c.message for c in rule_causes(schema, "a", "spec.id", "b")] == ['Invalid value: "a": is immutable']
    assert rule_causes(schema, "a", "spec.id", "a") == []
