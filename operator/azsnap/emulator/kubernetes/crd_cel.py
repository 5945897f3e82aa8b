"""CRD registration rules for `x-kubernetes-validations`: what the server refuses in a rule, with its field paths.

Follows the rule checks of kube-apiserver's CRD validation: the rule, message, messageExpression, reason and
fieldPath fields; the compilation of the rule (a bool) and of its messageExpression (a string); `oldSelf` only
where an old value can be matched to the new one (not under a list that is not `x-kubernetes-list-type: map`);
`optionalOldSelf` only on a rule that uses `oldSelf`; and the estimated cost of each expression and of them all
(`cel_cost.py`). Rules are compiled only where the schema at and below them has no other error, as the server does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from azsnap.emulator.kubernetes.cel import CelCompileError, compile_rule, output_kind, parse_rule, uses_old_self
from azsnap.emulator.kubernetes.cel_cost import (
    CRD_COST_LIMIT,
    RULE_COST_LIMIT,
    cost_error_message,
    max_cardinality,
    rule_cost,
)
from azsnap.emulator.kubernetes.paths import FieldPathError, field_path
from azsnap.emulator.kubernetes.schema import Cause, go_value

__all__ = ["schema_nodes", "validation_rule_causes"]

_REASONS: Final = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")
#: Rules costing less than this share of the CRD's limit are not named when the total is over it.
_NAMED_SHARE: Final = CRD_COST_LIMIT // 100


class _GoRule(dict[str, Any]):
    """A validation rule as the server prints it in a compile error: the Go struct's fields."""

    def __init__(self, rule: Mapping[str, Any]) -> None:
        super().__init__(Rule=rule.get("rule", ""), Message=rule.get("message", ""),
                         MessageExpression=rule.get("messageExpression", ""), Reason=rule.get("reason"),
                         FieldPath=rule.get("fieldPath", ""), OptionalOldSelf=rule.get("optionalOldSelf"))  # fmt: skip


def _growth(node: Mapping[str, Any]) -> int | None:
    """How many times a node's children may occur per occurrence of the node (None: unbounded)."""
    if node.get("type") == "array":
        return int(node["maxItems"]) if "maxItems" in node else None
    if node.get("type") == "object" and "additionalProperties" in node:
        return int(node["maxProperties"]) if "maxProperties" in node else None
    return 1


def schema_nodes(
    node: Mapping[str, Any], path: str, cardinality: int | None, uncorrelatable: str | None
) -> Iterator[tuple[str, Mapping[str, Any], int | None, str | None]]:
    """Every node with its path, how often it may occur (None: unbounded) and the list that hides its old value."""
    yield path, node, cardinality, uncorrelatable
    growth = _growth(node)
    below = None if cardinality is None or growth is None else cardinality * growth
    if node.get("x-kubernetes-map-type") not in (None, "granular", "atomic"):
        uncorrelatable = uncorrelatable or path
    for name, child in (node.get("properties") or {}).items():
        if isinstance(child, Mapping):
            yield from schema_nodes(child, f"{path}.properties[{name}]", below, uncorrelatable)
    items = node.get("items")
    if isinstance(items, Mapping):
        hidden = uncorrelatable or (path if node.get("x-kubernetes-list-type") != "map" else None)
        yield from schema_nodes(items, f"{path}.items", below, hidden)
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        yield from schema_nodes(extra, f"{path}.additionalProperties", below, uncorrelatable)


def _field_causes(rule: Mapping[str, Any], schema: Mapping[str, Any], at: str) -> list[Cause]:
    """What is wrong with the rule's own fields (empty rule or message, line breaks, reason, fieldPath)."""
    causes: list[Cause] = []
    text, message = str(rule.get("rule", "")), str(rule.get("message", ""))
    if not text.strip():
        causes.append(Cause.required(f"{at}.rule", "rule is not specified"))
    elif message and not message.strip():
        causes.append(Cause.invalid(f"{at}.message", message, "must be non-empty if specified"))
    elif "\n" in message.strip() or "\r" in message.strip():
        causes.append(Cause.invalid(f"{at}.message", message, "must not contain line breaks"))
    elif ("\n" in text.strip() or "\r" in text.strip()) and not message.strip():
        causes.append(Cause.required(f"{at}.message", "message must be specified if rule contains line breaks"))
    expression = str(rule.get("messageExpression", ""))
    if expression and not expression.strip():
        causes.append(Cause.required(f"{at}.messageExpression", "messageExpression must be non-empty if specified"))
    reason = rule.get("reason")
    if reason is not None and reason not in _REASONS:
        supported = ", ".join(go_value(r) for r in _REASONS)
        causes.append(Cause("FieldValueNotSupported", f"Unsupported value: {go_value(reason)}: supported values: "
                            f"{supported}", f"{at}.reason"))  # fmt: skip
    path = str(rule.get("fieldPath", ""))
    if path and not path.strip():
        causes.append(Cause.invalid(f"{at}.fieldPath", path, "must be non-empty if specified"))
    if "\n" in path or "\r" in path:
        causes.append(Cause.invalid(f"{at}.fieldPath", path, "must not contain line breaks"))
    if path:
        try:
            field_path(path, schema)
        except FieldPathError:
            causes.append(Cause.invalid(f"{at}.fieldPath", path, "must be a valid path"))
    return causes


def _compile_causes(
    rule: Mapping[str, Any], node: Mapping[str, Any], at: str, times: int, uncorrelatable: str | None
) -> tuple[list[Cause], list[tuple[str, int]]]:
    """Compilation, cost and `oldSelf` placement of one rule, and the costs it adds to the CRD's total."""
    causes: list[Cause] = []
    costs: list[tuple[str, int]] = []
    text = str(rule.get("rule", "")).strip()
    optional = bool(rule.get("optionalOldSelf"))
    compiled = False
    try:
        compile_rule(text, node, optional_old_self=optional)
        compiled = True
    except CelCompileError as exc:
        error = Cause.invalid(f"{at}.rule", _GoRule(rule), f"compilation failed: {exc}")
    if compiled:
        cost = min(rule_cost(parse_rule(text), node) * times, 2**64 - 1)
        costs.append((f"{at}.rule", cost))
        if cost > RULE_COST_LIMIT:
            causes.append(
                Cause.forbidden(f"{at}.rule", cost_error_message("estimated rule cost", cost, RULE_COST_LIMIT))
            )
        kind = output_kind(text)
        if kind not in (None, "bool"):
            causes.append(Cause.invalid(f"{at}.rule", _GoRule(rule), "cel expression must evaluate to a bool"))
    else:
        costs.append((f"{at}.rule", 0))
        causes.append(error)
    expression = str(rule.get("messageExpression", "")).strip()
    if compiled and expression:
        causes.extend(_message_causes(rule, expression, node, at, times, optional, costs))
    if compiled and uses_old_self(text):
        if uncorrelatable is not None:
            causes.append(Cause.invalid(f"{at}.rule", rule.get("rule", ""),
                                   f"oldSelf cannot be used on the uncorrelatable portion of the schema within "
                                   f"{uncorrelatable}"))  # fmt: skip
    elif rule.get("optionalOldSelf") is not None:
        causes.append(Cause.invalid(f"{at}.optionalOldSelf", rule["optionalOldSelf"],
                               "may not be set if oldSelf is not used in rule"))  # fmt: skip
    return causes, costs


def _message_causes(
    rule: Mapping[str, Any],
    expression: str,
    node: Mapping[str, Any],
    at: str,
    times: int,
    optional: bool,
    costs: list[tuple[str, int]],
) -> list[Cause]:
    field = f"{at}.messageExpression"
    try:
        compile_rule(expression, node, optional_old_self=optional)
    except CelCompileError as exc:
        return [Cause.invalid(field, _GoRule(rule), f"messageExpression compilation failed: {exc}")]
    if output_kind(expression) not in (None, "string"):
        return [Cause.invalid(field, _GoRule(rule), "messageExpression must evaluate to a string")]
    cost = min(rule_cost(parse_rule(expression), node) * times, 2**64 - 1)
    costs.append((field, cost))
    if cost > RULE_COST_LIMIT:
        return [Cause.forbidden(field, cost_error_message("estimated messageExpression cost", cost, RULE_COST_LIMIT))]
    return []


def validation_rule_causes(schema: Mapping[str, Any], root: str, schema_causes: list[Cause]) -> list[Cause]:
    """Every refusal of the schema's validation rules: their fields first, then compilation and cost."""
    field_causes: list[Cause] = []
    cel_causes: list[Cause] = []
    costs: list[tuple[str, int]] = []
    nodes = list(schema_nodes(schema, root, 1, None))
    for path, node, _, _ in nodes:
        for number, rule in enumerate(node.get("x-kubernetes-validations") or []):
            field_causes.extend(_field_causes(rule, node, f"{path}.x-kubernetes-validations[{number}]"))
    broken = [c.field for c in [*schema_causes, *field_causes]]
    for path, node, cardinality, uncorrelatable in nodes:
        rules = node.get("x-kubernetes-validations") or []
        if not rules or any(f == path or f.startswith((f"{path}.", f"{path}[")) for f in broken):
            continue  # the server compiles no rule where the schema at or below it is broken
        times = cardinality if cardinality is not None else max_cardinality(node)
        for number, rule in enumerate(rules):
            at = f"{path}.x-kubernetes-validations[{number}]"
            causes, rule_costs = _compile_causes(rule, node, at, times, uncorrelatable)
            cel_causes.extend(causes)
            costs.extend(rule_costs)
    total = sum(cost for _, cost in costs)
    if total > CRD_COST_LIMIT:
        named = sorted((c for c in costs if c[1] >= _NAMED_SHARE), key=lambda c: -c[1])[:4]
        cel_causes.extend(
            Cause.forbidden(field, "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 "
                       "schema") for field, _ in named
        )  # fmt: skip
        message = cost_error_message("x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                                     total, CRD_COST_LIMIT)  # fmt: skip
        cel_causes.append(Cause.forbidden(root, message))
    return field_causes + cel_causes
