"""CEL validation rules (`x-kubernetes-validations`): compiled against the schema at registration, run on writes.

Compilation checks the syntax and that every `self.a.b` field a rule names is in the schema, as the server's
type-checker does. The cost estimate is a narrow stand-in for the server's: a rule that nests comprehensions over
a list or map with no `maxItems`/`maxProperties` is refused as over budget (the server's estimate for it is
millions of times the limit); simpler rules pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any, Final

import celpy
import lark
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError

from azsnap.emulator.kubernetes.schema import Cause

__all__ = ["CelCompileError", "compile_rule", "estimated_over_budget", "rule_causes"]

_MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})


class CelCompileError(ValueError):
    """A rule that does not compile; the message is shaped like the server's (`ERROR: <input>:1:5: ...`)."""


def _pointer(rule: str, column: int) -> str:
    return f"\n | {rule}\n | {'.' * max(column - 1, 0)}^"


@cache
def _parse(rule: str) -> lark.Tree[Any]:
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


def _self_paths(tree: lark.Tree[Any]) -> Iterator[tuple[list[str], int]]:
    """Every `self.a.b...` chain in the rule, with the column of its first field."""
    for node in tree.iter_subtrees():
        if node.data != "member_dot":
            continue
        chain: list[str] = []
        current: Any = node
        while isinstance(current, lark.Tree) and current.data == "member_dot":
            chain.insert(0, str(current.children[1]))
            current = current.children[0]
        while isinstance(current, lark.Tree) and current.data in ("member", "primary"):
            current = current.children[0] if current.children else None
        if isinstance(current, lark.Tree) and current.data == "ident" and str(current.children[0]) == "self":
            token = node.children[1]
            yield chain, int(getattr(token, "column", 2) or 2) - 1  # CEL points at the `.` selecting the field


def compile_rule(rule: str, schema: Mapping[str, Any]) -> None:
    """Raise `CelCompileError` when the rule does not parse or names a field the schema does not have."""
    tree = _parse(rule)
    seen: set[tuple[str, ...]] = set()
    for chain, column in _self_paths(tree):
        if tuple(chain) in seen:
            continue
        seen.add(tuple(chain))
        node: Mapping[str, Any] = schema
        for name in chain:
            props = node.get("properties")
            if node.get("x-kubernetes-preserve-unknown-fields") or not isinstance(props, Mapping):
                break
            if name not in props:
                raise CelCompileError(f"ERROR: <input>:1:{column}: undefined field '{name}'{_pointer(rule, column)}")
            node = props[name]


def _macro_depth(tree: Any) -> int:
    if not isinstance(tree, lark.Tree):
        return 0
    inner = max((_macro_depth(child) for child in tree.children), default=0)
    is_macro = tree.data == "member_dot_arg" and len(tree.children) > 1 and str(tree.children[1]) in _MACROS
    return inner + (1 if is_macro else 0)


def estimated_over_budget(rule: str, schema: Mapping[str, Any]) -> bool:
    """Nested comprehensions over an unbounded list or map (see the module docstring)."""
    unbounded = (schema.get("type") == "array" and "maxItems" not in schema) or (
        schema.get("type") == "object" and "additionalProperties" in schema and "maxProperties" not in schema
    )
    return unbounded and _macro_depth(_parse(rule)) >= 2


@cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(_parse(rule))


def rule_causes(schema: Mapping[str, Any], value: Any, path: str = "") -> list[Cause]:
    """Run every rule on the parts of `value` it is attached to; a failed rule gives its message."""
    causes: list[Cause] = []
    if value is None:
        return causes
    for rule in schema.get("x-kubernetes-validations") or []:
        result = _program(str(rule["rule"])).evaluate({"self": json_to_cel(value)})
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            message = rule.get("message") or f"failed rule: {rule['rule']}"
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {message}", path or "<nil>"))
    if isinstance(value, Mapping):
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            if isinstance(sub, Mapping):
                causes.extend(rule_causes(sub, item, f"{path}.{key}" if path else key))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            causes.extend(rule_causes(schema["items"], item, f"{path}[{index}]"))
    return causes
