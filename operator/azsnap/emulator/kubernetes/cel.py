"""CEL validation rules (`x-kubernetes-validations`): compiled against the schema at registration, run on writes.

Compilation checks the syntax, that every `self.a.b` (and `oldSelf.a.b`) field a rule names is in the schema, and
the result type where the expression shows it, as the server's type-checker does. A rule that names `oldSelf` is a
transition rule: on an update it runs only where the old object has a value to compare (object fields, map values,
items of `x-kubernetes-list-type: map` lists matched by their keys), never on a create, unless it sets
`optionalOldSelf`, when `oldSelf` is an optional (`hasValue()`, `value()`, `orValue()`) and the rule runs always.
A failed rule answers with its `messageExpression` (when it evaluates to one line of text), its `message` or
`failed rule: <rule>`, as its `reason` (FieldValueInvalid unless set), on `fieldPath` below the rule's node. Like
the server (validation ratcheting), an update does not fail a rule that is not a transition rule on a value that
did not change: the failure becomes a warning.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any, Final

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from azsnap.emulator.kubernetes.paths import normalized_field_path
from azsnap.emulator.kubernetes.schema import Cause

__all__ = ["CelCompileError", "compile_rule", "output_kind", "parse_rule", "rule_causes", "uses_old_self"]

_MESSAGE_LIMIT: Final = 5 * 1024
_PASS_THROUGH: Final = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member", "primary"}
)
_BOOL_METHODS: Final = frozenset(
    {"all", "exists", "exists_one", "startsWith", "endsWith", "contains", "matches", "hasValue", "isSorted"}
)
_LITERALS: Final = {"STRING_LIT": "string", "MLSTRING_LIT": "string", "INT_LIT": "int", "UINT_LIT": "uint",
                    "FLOAT_LIT": "double", "BOOL_LIT": "bool", "BYTES_LIT": "bytes", "NULL_LIT": "null"}  # fmt: skip


class CelCompileError(ValueError):
    """A rule that does not compile; the message is shaped like the server's (`ERROR: <input>:1:5: ...`)."""


class _Optional:
    """CEL's `optional_type`: what `oldSelf` is for a rule with `optionalOldSelf: true`."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _has_value(opt: _Optional) -> celtypes.BoolType:
    return celtypes.BoolType(opt.value is not None)


def _value(opt: _Optional) -> Any:
    if opt.value is None:
        raise ValueError("optional.none() dereference")
    return opt.value


def _or_value(opt: _Optional, default: Any) -> Any:
    return default if opt.value is None else opt.value


_OPTIONAL_FUNCTIONS: Final[dict[str, Any]] = {"hasValue": _has_value, "value": _value, "orValue": _or_value}


def _pointer(rule: str, column: int) -> str:
    return f"\n | {rule}\n | {'.' * max(column - 1, 0)}^"


@cache
def parse_rule(rule: str) -> lark.Tree[Any]:
    """The rule's syntax tree, or `CelCompileError` with the server's syntax error."""
    env = celpy.Environment()
    try:
        tree = env.compile(rule)
    except CELParseError as exc:
        if rule.count("(") > rule.count(")"):  # the parser ran out of input: CEL names the missing parenthesis
            column, problem = len(rule) + 1, "missing ')' at '<EOF>'"
        else:
            column, problem = int(getattr(exc, "column", 0) or 0) + 1, _first_line(exc)
        raise CelCompileError(f"ERROR: <input>:1:{column}: Syntax error: {problem}{_pointer(rule, column)}") from exc
    return tree


def _first_line(exc: Exception) -> str:
    text = str(exc.args[0] if exc.args else exc).strip().splitlines()
    return "unexpected input" if not text else "mismatched input" if len(text) > 1 else text[0]


def _root_name(node: Any) -> str | None:
    while isinstance(node, lark.Tree) and node.data in ("member", "primary"):
        node = node.children[0] if node.children else None
    if isinstance(node, lark.Tree) and node.data == "ident":
        return str(node.children[0])
    return None


def _variable_paths(tree: lark.Tree[Any], variable: str) -> Iterator[tuple[list[str], int]]:
    """Every `<variable>.a.b...` chain in the rule, with the column of its first field."""
    for node in tree.iter_subtrees():
        if node.data != "member_dot":
            continue
        chain: list[str] = []
        current: Any = node
        while isinstance(current, lark.Tree) and current.data == "member_dot":
            chain.insert(0, str(current.children[1]))
            current = current.children[0]
        if _root_name(current) == variable:
            token = node.children[1]
            yield chain, int(getattr(token, "column", 2) or 2) - 1  # CEL points at the `.` selecting the field


@cache
def uses_old_self(rule: str) -> bool:
    """Whether the rule names `oldSelf` (a transition rule)."""
    tree = parse_rule(rule)
    return any(node.data == "ident" and str(node.children[0]) == "oldSelf" for node in tree.iter_subtrees())


def compile_rule(rule: str, schema: Mapping[str, Any], *, optional_old_self: bool = False) -> None:
    """Raise `CelCompileError` when the rule does not parse or names a field the schema does not have."""
    tree = parse_rule(rule)
    variables = ("self",) if optional_old_self else ("self", "oldSelf")  # an optional has no fields to check
    seen: set[tuple[str, ...]] = set()
    for variable in variables:
        for chain, column in _variable_paths(tree, variable):
            if tuple(chain) in seen:
                continue
            seen.add(tuple(chain))
            node: Mapping[str, Any] = schema
            for name in chain:
                props = node.get("properties")
                if node.get("x-kubernetes-preserve-unknown-fields") or not isinstance(props, Mapping):
                    break
                if name not in props:
                    raise CelCompileError(
                        f"ERROR: <input>:1:{column}: undefined field '{name}'{_pointer(rule, column)}"
                    )
                node = props[name]


def output_kind(rule: str) -> str | None:
    """The expression's result type where its shape shows it (bool, string, int, list...), None when it does not."""
    return _kind(parse_rule(rule))


def _kind(node: Any) -> str | None:
    while isinstance(node, lark.Tree) and node.data in _PASS_THROUGH and len(node.children) == 1:
        node = node.children[0]
    if not isinstance(node, lark.Tree):
        return None
    if node.data == "expr" and len(node.children) == 3:  # the conditional: both branches agree or it is unknown
        then, other = _kind(node.children[1]), _kind(node.children[2])
        return then if then == other else None
    if node.data in ("conditionalor", "conditionaland") or node.data.startswith("relation_"):
        return "bool"
    if node.data == "unary" and len(node.children) == 2 and isinstance(node.children[0], lark.Tree):
        return "bool" if node.children[0].data == "unary_not" else _kind(node.children[1])
    if node.data == "literal":
        return _LITERALS.get(str(getattr(node.children[0], "type", "")))
    if node.data == "addition_add":
        left, right = _kind(node.children[0]), _kind(node.children[1])
        return left if left == right or right is None else right if left is None else None
    if node.data in ("list_lit", "map_lit"):
        return node.data.removesuffix("_lit")
    if node.data == "ident_arg":
        return "bool" if str(node.children[0]) == "has" else "int" if str(node.children[0]) == "size" else None
    if node.data == "member_dot_arg":
        method = str(node.children[1])
        return "bool" if method in _BOOL_METHODS else "int" if method == "size" else None
    return None


@cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(parse_rule(rule), functions=_OPTIONAL_FUNCTIONS)


def _evaluate(rule: str, activation: dict[str, Any]) -> tuple[Any, str | None]:
    """The result, or the error the server would name (`no such key: x`, `optional.none() dereference`...)."""
    result: Any
    try:
        result = _program(rule).evaluate(activation)
    except CELEvalError as exc:
        result = exc
    if not isinstance(result, CELEvalError):
        return result, None
    text = str(result.args[0]) if result.args else str(result)
    cause = result.args[2] if len(result.args) > 2 else None
    if text.startswith("no such member in mapping: "):
        return None, f"no such key: {text.removeprefix('no such member in mapping: ').strip(chr(39))}"
    if isinstance(cause, tuple) and cause:
        return None, str(cause[0])
    return None, text


def _message(rule: Mapping[str, Any], activation: dict[str, Any]) -> str:
    """The failure's detail: the messageExpression's text when it gives one line, else the message."""
    expression = str(rule.get("messageExpression") or "").strip()
    if expression:
        result, error = _evaluate(expression, activation)
        if error is None and isinstance(result, str):
            text = str(result).strip()
            if text and "\n" not in text and len(text) <= _MESSAGE_LIMIT:
                return text
    return _rule_text(rule)


def _rule_error_string(rule: Mapping[str, Any]) -> str:
    """How the server names a rule in an error: its message, else its expression."""
    return str(rule.get("message") or "").strip() or str(rule.get("rule", "")).strip()


def _rule_text(rule: Mapping[str, Any]) -> str:
    """The detail of a failed rule without a usable messageExpression: its message, else `failed rule: <rule>`."""
    message = str(rule.get("message") or "").strip()
    return message if message else f"failed rule: {_rule_error_string(rule)}"


def _cause(reason: str | None, field: str, value: Any, detail: str) -> Cause:
    """The field error the rule's reason asks for (`value` None: an object or list, whose value is not printed)."""
    shown = "" if value is None else f"{_go(value)}"
    if reason == "FieldValueForbidden":
        return Cause(reason, f"Forbidden: {detail}", field)
    if reason == "FieldValueRequired":
        return Cause(reason, f"Required value: {detail}", field)
    if reason == "FieldValueDuplicate":
        return Cause(reason, f"Duplicate value: {shown}" if shown else "Duplicate value", field)
    return Cause(
        "FieldValueInvalid", f"Invalid value: {shown}: {detail}" if shown else f"Invalid value: {detail}", field
    )


def _go(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


#: Rule outcomes by (rule, optionalOldSelf, repr of self, repr of oldSelf): CEL is deterministic, so a value
#: written again (a status update leaves the spec as it was) is not evaluated again. Emptied when full.
_OUTCOMES: Final[dict[tuple[str, bool, str, str], tuple[Any, str | None]]] = {}
_OUTCOMES_KEPT: Final = 4096


def _activation(value: Any, old: Any, activation: dict[str, Any]) -> dict[str, Any]:
    """The values as CEL sees them, converted once for all the node's rules (filled in on first use)."""
    if not activation:
        activation["self"] = json_to_cel(value)
        if old is not None:
            activation["oldSelf"] = json_to_cel(old)
    return activation


def _outcome(
    text: str, optional: bool, value: Any, old: Any, keys: list[str], activation: dict[str, Any]
) -> tuple[Any, str | None]:
    """The rule's result or error on these values, from the cache when it ran on equal ones before."""
    if not keys:
        keys.extend((repr(value), repr(old)))  # repr tells apart what CEL does (1, 1.0, True, "1", key order)
    key = (text, optional, keys[0], keys[1])
    known = _OUTCOMES.get(key)
    if known is not None:
        return known
    values = _activation(value, old, activation)
    run = {**values, "oldSelf": _Optional(values.get("oldSelf"))} if optional else values
    outcome = _evaluate(text, run)
    if len(_OUTCOMES) >= _OUTCOMES_KEPT:
        _OUTCOMES.clear()
    _OUTCOMES[key] = outcome
    return outcome


def _node_causes(
    schema: Mapping[str, Any], value: Any, old: Any, path: str, ratchet: bool, warnings: list[str]
) -> list[Cause]:
    causes: list[Cause] = []
    field = path or "<nil>"
    kind = str(schema.get("type", ""))
    activation: dict[str, Any] = {}
    keys: list[str] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        text = str(rule.get("rule", "")).strip()
        if not text:
            continue
        transition, optional = uses_old_self(text), bool(rule.get("optionalOldSelf"))
        if transition and old is None and not optional:
            continue  # a transition rule runs only where there is an old value to compare
        result, error = _outcome(text, optional, value, old, keys, activation)
        if error is not None:
            detail = f"{error} evaluating rule: {_rule_error_string(rule)}"
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {_go(kind)}: {detail}", field))
            continue
        if isinstance(result, celtypes.BoolType) and bool(result):
            continue
        relative = normalized_field_path(str(rule.get("fieldPath") or ""), schema)
        at = f"{path}.{relative}" if path and relative else relative or field
        shown = None if kind in ("object", "array") else value
        cause = _cause(rule.get("reason"), at, shown, _message(rule, _activation(value, old, activation)))
        if ratchet and not transition:
            warnings.append(f"{cause.field}: {cause.message}")  # an unchanged value is not failed again
        else:
            causes.append(cause)
    return causes


def _map_list(schema: Mapping[str, Any], old: Any) -> dict[tuple[Any, ...], Any]:
    """The old items of a `map` list by their keys (other lists correlate nothing)."""
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(old, list):
        return {}
    keys = list(schema.get("x-kubernetes-list-map-keys") or [])
    return {tuple(i.get(k) for k in keys): i for i in old if isinstance(i, Mapping)}


def rule_causes(
    schema: Mapping[str, Any],
    value: Any,
    path: str = "",
    old: Any = None,
    *,
    warnings: list[str] | None = None,
    ratchet: bool = False,
) -> list[Cause]:
    """Run every rule on the parts of `value` it is attached to (`old`: the stored value, for an update).

    `ratchet` says whether the nearest part of the object that has an old value is unchanged; failures of rules
    that are not transition rules are then appended to `warnings` instead.
    """
    warned = warnings if warnings is not None else []
    if value is None:
        return []
    causes = _node_causes(schema, value, old, path, ratchet, warned)
    if isinstance(value, Mapping):
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        olds = old if isinstance(old, Mapping) else {}
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            if isinstance(sub, Mapping):
                before = olds.get(key)
                same = before == item if before is not None else ratchet
                sub_path = f"{path}.{key}" if path else key
                causes.extend(rule_causes(sub, item, sub_path, before, warnings=warned, ratchet=same))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        items, keys = schema["items"], list(schema.get("x-kubernetes-list-map-keys") or [])
        olds_by_key = _map_list(schema, old)
        for index, item in enumerate(value):
            key = tuple(item.get(k) for k in keys) if isinstance(item, Mapping) else None
            before = olds_by_key.get(key) if key is not None else None
            same = before == item if before is not None else ratchet
            causes.extend(rule_causes(items, item, f"{path}[{index}]", before, warnings=warned, ratchet=same))
    return causes
