"""A CEL rule's `fieldPath` (`.spec.target`, `['key']`): checked against the schema as the server checks it.

The path is a JSON path of field (`.name`) and quoted-key (`['name']`) steps only; a step names a property of an
object or, on a map, any key. The server reports the failure on the rule's node joined with the normalized path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["FieldPathError", "field_path", "normalized_field_path"]

_ESCAPES: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "'": "'", "\\": "\\"}


class FieldPathError(ValueError):
    """A path the schema does not have, or that is not of the accepted shape."""


def _tokens(path: str) -> list[str]:
    """Split into `.`, `[`, `]`, quoted strings (kept whole) and the names between them."""
    tokens: list[str] = []
    index = 0
    while index < len(path):
        char = path[index]
        if char == "'":
            end = index + 1
            while end < len(path) and not (path[end] == "'" and path[end - 1] != "\\"):
                end += 1
            tokens.append(path[index : end + 1])
            index = end + 1
        elif char in ".[]":
            tokens.append(char)
            index += 1
        else:
            end = index
            while end < len(path) and path[end] not in ".[]":
                end += 1
            tokens.append(path[index:end])
            index = end
    return tokens


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        if text[index] == "\\" and index + 1 < len(text):
            directive = text[index + 1]
            if directive not in _ESCAPES:
                raise FieldPathError(f"invalid string literal: invalid escape char \\{directive}")
            out.append(_ESCAPES[directive])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def field_path(path: str, schema: Mapping[str, Any]) -> str:
    """The normalized path (`target.name`, `labels[app]`), or `FieldPathError` saying what is wrong."""
    tokens = _tokens(path)
    out, node = "", schema
    while tokens:
        token = tokens.pop(0)
        if token not in ("[", "."):
            raise FieldPathError(f"expected [ or . but got: {token}")
        if not tokens:
            raise FieldPathError("unexpected end of JSON path")
        name = tokens.pop(0)
        if token == "[":
            if len(name) < 2 or name[0] != "'" or name[-1] != "'":
                raise FieldPathError(f"expected single quoted string but got {name}")
            name = _unescape(name[1:-1])
        if isinstance(node.get("properties"), Mapping):
            if name not in node["properties"]:
                raise FieldPathError("does not refer to a valid field")
            out, node = (f"{out}.{name}" if out else name), node["properties"][name]
        elif "additionalProperties" in node:
            extra = node["additionalProperties"]
            out, node = f"{out}[{name}]", extra if isinstance(extra, Mapping) else {}
        else:
            raise FieldPathError("does not refer to a valid field")
        if token == "[":
            if not tokens:
                raise FieldPathError("unexpected end of JSON path")
            closing = tokens.pop(0)
            if closing != "]":
                raise FieldPathError(f"expected ] but got {closing}")
    return out


def normalized_field_path(path: str, schema: Mapping[str, Any]) -> str:
    """The normalized path, or "" for none (or one registration would have refused)."""
    if not path:
        return ""
    try:
        return field_path(path, schema)
    except FieldPathError:
        return ""
