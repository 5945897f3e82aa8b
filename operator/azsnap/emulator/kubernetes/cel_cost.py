"""The estimated cost of a CEL rule, as the server estimates it when a CRD is registered (worst case, in CEL units).

This follows the shape of CEL's static cost estimate over the schema's sizes: a string is up to `maxLength` x 4
bytes (else the 3 MiB request), a list or map up to `maxItems`/`maxProperties` (else as many of its smallest items
as fit in a request); a field read or a variable costs 1, a function call 1 plus its arguments, a comparison the
smaller operand's size x 0.1, string search the product of the sizes x 0.1, a comprehension its range's size times
its body; a rule under lists or maps runs once per element (their maximum sizes multiplied, or as many copies of
the rule's node as fit in a request). The server refuses a rule estimated above 10,000,000 and a CRD whose rules
add up to more than 100,000,000. The figures are close to the server's, not equal to them: a rule well inside the
limits here is inside them there; one near a limit needs a real server to judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import lark

__all__ = [
    "CRD_COST_LIMIT",
    "RULE_COST_LIMIT",
    "cost_error_message",
    "max_cardinality",
    "min_size",
    "rule_cost",
]

RULE_COST_LIMIT: Final = 10_000_000
CRD_COST_LIMIT: Final = 100_000_000
_REQUEST: Final = 3 * 1024 * 1024
_MAX: Final = 2**64 - 1
_FACTOR: Final = 0.1
_FORMAT_SIZES: Final = {"date-time": (21, 32), "duration": (3, 32), "date": (12, 12)}
_MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
_SEARCH: Final = frozenset({"contains", "matches"})

#: A CEL value's type as far as cost goes: its kind, its largest size and the schema node it comes from.
_Type = tuple[str, int, Mapping[str, Any] | None]
_DYN: Final[_Type] = ("dyn", _MAX, None)
#: A number, a bool, a duration...: CEL sizes each of these as 1.
_SCALAR: Final[_Type] = ("scalar", 1, None)


def _cap(value: float) -> int:
    return _MAX if value >= _MAX else int(value)


def _factor(size: int) -> int:
    return _cap(math.ceil(size * _FACTOR))


def min_size(schema: Mapping[str, Any]) -> int:
    """The fewest bytes a value of this schema takes in JSON (the server's MinSerializedSize)."""
    kind = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        return 1
    if kind == "string":
        return _FORMAT_SIZES.get(str(schema.get("format")), (2, 0))[0]
    if kind == "boolean":
        return 4
    if kind in ("integer", "number"):
        return 1
    if kind == "object" and isinstance(schema.get("properties"), Mapping):
        required = set(schema.get("required") or [])
        return 2 + sum(
            len(name) + min_size(prop) + 4
            for name, prop in schema["properties"].items()
            if name in required and isinstance(prop, Mapping) and "default" not in prop
        )
    return 2


def max_elements(schema: Mapping[str, Any]) -> int:
    """The largest size of a value of this schema: bytes of a string, items of a list or map, 0 for the rest."""
    kind = schema.get("type")
    if kind == "string" or schema.get("x-kubernetes-int-or-string"):
        if "maxLength" in schema:
            return max(int(schema["maxLength"]), 0) * 4
        if schema.get("format") in _FORMAT_SIZES and not schema.get("x-kubernetes-int-or-string"):
            return _FORMAT_SIZES[str(schema["format"])][1]
        if schema.get("enum"):
            return max((len(v) for v in schema["enum"] if isinstance(v, str)), default=0)
        return _REQUEST - 2
    if kind == "array":
        items = schema.get("items")
        if "maxItems" in schema:
            return max(int(schema["maxItems"]), 0)
        return (_REQUEST - 2) // (min_size(items if isinstance(items, Mapping) else {}) + 1)
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        if "maxProperties" in schema:
            return max(int(schema["maxProperties"]), 0)
        return (_REQUEST - 2) // (min_size(schema["additionalProperties"]) + 6)
    return 0


def max_cardinality(schema: Mapping[str, Any]) -> int:
    """How often a rule on this node may run when it sits under unbounded lists or maps."""
    return _REQUEST // (min_size(schema) + 1)


def _type(schema: Mapping[str, Any] | None) -> _Type:
    if schema is None:
        return _DYN
    return (str(schema.get("type") or "dyn"), max_elements(schema), schema)


def _select(operand: _Type, name: str) -> _Type:
    schema = operand[2]
    if schema is None:
        return _DYN
    props, extra = schema.get("properties"), schema.get("additionalProperties")
    if isinstance(props, Mapping) and isinstance(props.get(name), Mapping):
        return _type(props[name])
    return _type(extra) if isinstance(extra, Mapping) else _DYN


def _element(container: _Type) -> _Type:
    schema = container[2]
    if schema is None:
        return _DYN
    if container[0] == "array" and isinstance(schema.get("items"), Mapping):
        return _type(schema["items"])
    if isinstance(schema.get("additionalProperties"), Mapping):
        return ("string", _REQUEST - 2, {"type": "string"})  # a comprehension over a map walks its keys
    return _DYN


class _Coster:
    """Walks the parsed rule, giving each expression its worst-case cost and its type."""

    def __init__(self, variables: dict[str, _Type]) -> None:
        self.variables = variables

    def cost(self, node: Any) -> tuple[int, _Type]:
        if isinstance(node, lark.Token):
            return 0, _DYN
        kids = node.children
        data = node.data
        if data == "literal":
            token = kids[0]
            text = str(token)
            if token.type in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
                return 0, ("string", max(len(text) - 2, 0), None)
            return 0, _SCALAR
        if data == "ident":
            return 1, self.variables.get(str(kids[0]), _DYN)
        if data == "expr" and len(kids) == 3:
            test, (then, then_type), (other, _) = self.cost(kids[0])[0], self.cost(kids[1]), self.cost(kids[2])
            return _cap(test + max(then, other)), then_type
        if data in ("conditionalor", "conditionaland") and len(kids) == 2:
            return _cap(self.cost(kids[0])[0] + self.cost(kids[1])[0]), _SCALAR
        if data == "relation" and len(kids) == 2:
            return self._relation(kids[0], kids[1])
        if data in ("addition", "multiplication") and len(kids) == 2:
            (left, left_type), (right, right_type) = self.cost(kids[0].children[0]), self.cost(kids[1])
            if left_type[0] == "string" and right_type[0] == "string":
                size = _cap(left_type[1] + right_type[1])
                return _cap(_factor(size) + left + right), ("string", size, None)
            return _cap(1 + left + right), _SCALAR
        if data == "unary" and len(kids) == 2:
            return _cap(1 + self.cost(kids[1])[0]), _SCALAR
        if data == "member_dot":
            operand, operand_type = self.cost(kids[0])
            return _cap(operand + 1), _select(operand_type, str(kids[1]))
        if data == "member_dot_arg":
            return self._method(kids)
        if data == "member_index":
            (operand, operand_type), (index, _) = self.cost(kids[0]), self.cost(kids[1])
            return _cap(1 + operand + index), _element(operand_type)
        if data == "ident_arg":
            args = self._args(kids[1] if len(kids) > 1 else None)
            name = str(kids[0])
            if name == "has":
                return (args[0][0] if args else 1), _SCALAR
            return _cap(1 + sum(c for c, _ in args)), _SCALAR if name in ("size", "int", "double", "bool") else _DYN
        if data == "list_lit":
            args = self._args(kids[0] if kids else None)
            return _cap(10 + sum(c for c, _ in args)), ("list", len(args), None)
        if data == "map_lit":
            return _cap(30 + sum(self.cost(kid)[0] for kid in kids)), _DYN
        total, last = 0, _DYN
        for kid in kids:
            kid_cost, last = self.cost(kid)
            total = _cap(total + kid_cost)
        return total, last

    def _args(self, exprlist: Any) -> list[tuple[int, _Type]]:
        if not isinstance(exprlist, lark.Tree):
            return []
        return [self.cost(kid) for kid in exprlist.children]

    def _relation(self, op_node: Any, right_node: Any) -> tuple[int, _Type]:
        (left, left_type), (right, right_type) = self.cost(op_node.children[0]), self.cost(right_node)
        args = _cap(left + right)
        if op_node.data == "relation_in":
            return _cap(args + max(right_type[1], 1) if right_type[1] != _MAX else _MAX), _SCALAR
        return _cap(_factor(min(left_type[1], right_type[1])) + args), _SCALAR

    def _method(self, kids: list[Any]) -> tuple[int, _Type]:
        method = str(kids[1])
        target, target_type = self.cost(kids[0])
        exprlist = kids[2] if len(kids) > 2 else None
        if method in _MACROS and isinstance(exprlist, lark.Tree) and len(exprlist.children) == 2:
            variable = _variable_name(exprlist.children[0])
            inner = _Coster({**self.variables, variable: _element(target_type)} if variable else self.variables)
            body = inner.cost(exprlist.children[1])[0]
            per_item = body + (13 if method in ("map", "filter") else 3)
            result = ("array", target_type[1], None) if method in ("map", "filter") else _SCALAR
            return _cap(target + _cap(target_type[1] * per_item) + 1), result
        args = self._args(exprlist)
        arg_cost = _cap(target + sum(c for c, _ in args))
        if method in _SEARCH and args:
            return _cap(_factor(_cap(target_type[1] * max(args[0][1][1], 1))) + arg_cost), _SCALAR
        if method in ("startsWith", "endsWith") and args:
            return _cap(_factor(args[0][1][1]) + arg_cost), _SCALAR
        return _cap(1 + arg_cost), _SCALAR if method in ("size", "hasValue") else _DYN


def _variable_name(expr: Any) -> str | None:
    node = expr
    while isinstance(node, lark.Tree) and node.data != "ident" and len(node.children) == 1:
        node = node.children[0]
    return str(node.children[0]) if isinstance(node, lark.Tree) and node.data == "ident" else None


def rule_cost(tree: lark.Tree[Any], schema: Mapping[str, Any]) -> int:
    """The rule's worst-case cost for one evaluation on a node of this schema (`self` and `oldSelf` alike)."""
    own = _type(schema)
    return _Coster({"self": own, "oldSelf": own}).cost(tree)[0]


def cost_error_message(name: str, cost: int, limit: int) -> str:
    """The server's words for a cost over its limit, with the factor it exceeds it by."""
    factor = cost / limit
    shown = "more than 100x" if factor > 100 else f"{factor:f}x" if factor < 1.5 else f"{factor:.1f}x"
    return (
        f"{name} exceeds budget by factor of {shown} (try simplifying the rule, or adding maxItems, "
        "maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
