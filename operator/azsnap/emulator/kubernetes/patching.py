"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and label and field selectors, as the API server applies them."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["json_patch", "merge_patch"]


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch; returns a new document and leaves both arguments untouched."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class _PatchError(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchError(f"invalid JSON pointer {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _index(container: list[Any], token: str, *, append: bool = False) -> int:
    if append and token == "-":
        return len(container)
    if not token.isdigit() or int(token) > len(container) - (0 if append else 1):
        raise _PatchError(f"index {token!r} is out of range")
    return int(token)


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token)]
        else:
            raise _PatchError(f"path /{'/'.join(tokens)} does not exist")
    return node


def _resolve(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    if isinstance(parent, dict) and tokens[-1] in parent:
        return parent[tokens[-1]]
    if isinstance(parent, list):
        return parent[_index(parent, tokens[-1])]
    raise _PatchError(f"path /{'/'.join(tokens)} does not exist")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], append=True), value)
    else:
        raise _PatchError(f"cannot add to a scalar at /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    _resolve(doc, tokens)  # must exist
    if not tokens:
        return None
    parent = _parent(doc, tokens)
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[_index(parent, tokens[-1])]
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply a JSON patch; raises `ValueError` naming the failed operation (a `test` or a bad path)."""
    if not isinstance(ops, list):
        raise ValueError("a JSON patch must be a list of operations")
    result = copy.deepcopy(doc)
    for number, op in enumerate(ops):
        try:
            kind, tokens = op["op"], _pointer(op["path"])
            if kind == "test":
                if _resolve(result, tokens) != op.get("value"):
                    raise _PatchError(f"test failed: {op['path']} is not {op.get('value')!r}")
            elif kind == "add":
                result = _add(result, tokens, copy.deepcopy(op["value"]))
            elif kind == "remove":
                result = _remove(result, tokens)
            elif kind == "replace":
                result = _add(_remove(result, tokens), tokens, copy.deepcopy(op["value"]))
            elif kind in ("move", "copy"):
                source = _pointer(op["from"])
                value = copy.deepcopy(_resolve(result, source))
                if kind == "move":
                    result = _remove(result, source)
                result = _add(result, tokens, value)
            else:
                raise _PatchError(f"unknown op {kind!r}")
        except (_PatchError, KeyError, TypeError) as exc:
            raise ValueError(f"JSON patch operation {number}: {exc}") from exc
    return result


# ---- selectors -------------------------------------------------------------------------------------------


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    terms.append(current.strip())
    return [term for term in terms if term]


_SET_TERM: Final = re.compile(r"^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$")


def _matches_labels(labels: Mapping[str, str], selector: str) -> bool:
    for term in _split_terms(selector):
        if found := _SET_TERM.match(term):
            key, operator, values = found[1], found[2], {v.strip() for v in found[3].split(",")}
            if (labels.get(key) in values) != (operator == "in") or (operator == "in" and key not in labels):
                return False
        elif "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: Mapping[str, Any], path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return None if node is None else str(node)


def _matches_fields(obj: Mapping[str, Any], selector: str) -> bool:
    for term in _split_terms(selector):
        negate = "!=" in term
        key, value = (part.strip() for part in term.replace("!=", "=").replace("==", "=").split("=", 1))
        if (_field(obj, key) == value) == negate:
            return False
    return True
