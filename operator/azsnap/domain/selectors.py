"""Kubernetes label selectors (`matchLabels` and `matchExpressions`) parsed and matched, as the API defines them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["LabelSelector", "Operator", "Requirement", "parse_label_selector"]


class Operator(StrEnum):
    """The `matchExpressions` operators a `metav1.LabelSelector` accepts."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class Requirement:
    """One term of a selector: a key, an operator and (for `In`/`NotIn`) the values."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` meet this term (`NotIn` and `DoesNotExist` hold when the key is missing)."""
        if self.operator is Operator.IN:
            return self.key in labels and labels[self.key] in self.values
        if self.operator is Operator.NOT_IN:
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator is Operator.EXISTS:
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class LabelSelector:
    """A parsed selector: every requirement must hold (the empty selector matches everything)."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with these labels is selected."""
        return all(term.matches(labels) for term in self.requirements)


def parse_label_selector(selector: Mapping[str, Any]) -> LabelSelector:
    """Read a `metav1.LabelSelector` mapping; a `ValueError` says which part is wrong and how to fix it."""
    if not isinstance(selector, Mapping):
        raise ValueError("a label selector must be an object with matchLabels and/or matchExpressions")
    unknown = sorted(set(selector) - {"matchLabels", "matchExpressions"})
    if unknown:
        raise ValueError(f"a label selector has only matchLabels and matchExpressions, not {', '.join(unknown)}")
    terms: list[Requirement] = []
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise ValueError("matchLabels must be a map of label keys to values")
    for key, value in match_labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"matchLabels[{key!r}]: keys and values must be strings, got {value!r}")
        terms.append(Requirement(key, Operator.IN, frozenset({value})))
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise ValueError("matchExpressions must be a list of {key, operator, values}")
    for index, expression in enumerate(expressions):
        terms.append(_requirement(index, expression))
    return LabelSelector(tuple(terms))


def _requirement(index: int, expression: Any) -> Requirement:
    where = f"matchExpressions[{index}]"
    if not isinstance(expression, Mapping):
        raise ValueError(f"{where} must be an object with key, operator and values")
    key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}.key: a label key is required")
    try:
        op = Operator(str(operator))
    except ValueError:
        allowed = ", ".join(o.value for o in Operator)
        raise ValueError(f"{where}.operator: {operator!r} is not a valid operator; use one of {allowed}") from None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where}.values must be a list of strings")
    if op in (Operator.IN, Operator.NOT_IN) and not values:
        raise ValueError(f"{where}.values: must be specified when `operator` is 'In' or 'NotIn'")
    if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        raise ValueError(f"{where}.values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
    return Requirement(key, op, frozenset(values))
