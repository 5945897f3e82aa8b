"""Fault injection: rules matched per operation, drawn from a seeded RNG, each hitting at most `count` requests."""

from __future__ import annotations

import random
from dataclasses import dataclass

from azsnap.emulator.config import FaultRule

__all__ = ["FaultInjector"]

#: Requests whose long-running operation a fault can make end `Failed`.
_LRO_OPERATIONS = frozenset({"snapshots.put", "snapshots.delete", "disks.put", "disks.delete"})


@dataclass
class _Armed:
    rule: FaultRule
    hits: int = 0

    def exhausted(self) -> bool:
        return self.rule.count is not None and self.hits >= self.rule.count


class FaultInjector:
    """Decide, request by request, which faults apply. Rules are tried in the order they were added."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self._rules: list[_Armed] = []

    def add(self, rule: FaultRule) -> None:
        self._rules.append(_Armed(rule))

    def clear(self) -> None:
        self._rules.clear()
        self._rng = random.Random(self._seed)

    @property
    def rules(self) -> list[FaultRule]:
        return [armed.rule for armed in self._rules if not armed.exhausted()]

    def draw(self, operation: str) -> list[FaultRule]:
        """The faults that hit this request: every matching latency rule, then at most one other fault."""
        hit: list[FaultRule] = []
        failed = False
        for armed in self._rules:
            rule = armed.rule
            if armed.exhausted() or (rule.operation is not None and rule.operation != operation):
                continue
            if rule.kind in ("lro_failed", "failed_after_limit") and operation not in _LRO_OPERATIONS:
                continue
            if rule.kind == "linked_forbidden" and operation not in ("snapshots.put", "disks.put"):
                continue
            if rule.kind in ("failed_after_limit", "copy_failed") and operation != "snapshots.put":
                continue
            if rule.kind != "latency" and failed:
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            armed.hits += 1
            hit.append(rule)
            failed = failed or rule.kind != "latency"
        return hit
