"""Tenancy allow-list: which Azure subscriptions and resource groups each namespace's policies may target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol

import yaml

from azsnap.domain.models import Policy

__all__ = ["ScopeCheck", "ScopeError", "ScopeGuard", "ScopeRule"]


class ScopeCheck(Protocol):
    """Anything that can say whether a policy stays inside its namespace's Azure scope."""

    def check(self, policy: Policy) -> str | None:
        """None when allowed; otherwise a message for a person."""
        ...


class ScopeError(ValueError):
    """The allow-list document is malformed; the message names the entry."""


def _globs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ScopeError(f"{where}: expected a list of non-empty strings")
    return tuple(v.lower() for v in value)


def _match(value: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(value.lower(), p) for p in patterns)


@dataclass(frozen=True)
class ScopeRule:
    """Namespaces matching `namespaces` may use disks and snapshot groups matching the other globs."""

    namespaces: tuple[str, ...]
    subscriptions: tuple[str, ...]
    disk_resource_groups: tuple[str, ...]
    snapshot_resource_groups: tuple[str, ...]

    def allows(self, namespace: str, subscription: str, disk_rg: str | None, snapshot_rg: str) -> bool:
        """`disk_rg` None: the disk came through a claim of the namespace, which is its fence (no group to check)."""
        return (
            _match(namespace, self.namespaces)
            and _match(subscription, self.subscriptions)
            and (disk_rg is None or _match(disk_rg, self.disk_resource_groups))
            and _match(snapshot_rg, self.snapshot_resource_groups or self.disk_resource_groups)
        )


class ScopeGuard:
    """Checks a policy against the allow-list. No rule matching means refused (deny by default)."""

    def __init__(self, rules: Sequence[ScopeRule], *, source: str = "the scope allow-list") -> None:
        self.rules = tuple(rules)
        self.source = source

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "the scope allow-list") -> ScopeGuard:
        """Parse the `scopes.yaml` document: a list of rules with glob lists (case-insensitive)."""
        try:
            doc = yaml.safe_load(text) or []
        except yaml.YAMLError as exc:
            raise ScopeError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(doc, list):
            raise ScopeError(f"{source}: expected a list of rules")
        rules: list[ScopeRule] = []
        for i, entry in enumerate(doc):
            where = f"{source}[{i}]"
            if not isinstance(entry, Mapping):
                raise ScopeError(f"{where}: expected a mapping")
            unknown = set(entry) - {"namespaces", "subscriptions", "diskResourceGroups", "snapshotResourceGroups"}
            if unknown:
                raise ScopeError(f"{where}: unknown keys {sorted(unknown)}")
            rule = ScopeRule(
                namespaces=_globs(entry.get("namespaces"), f"{where}.namespaces"),
                subscriptions=_globs(entry.get("subscriptions"), f"{where}.subscriptions"),
                disk_resource_groups=_globs(entry.get("diskResourceGroups"), f"{where}.diskResourceGroups"),
                snapshot_resource_groups=_globs(entry.get("snapshotResourceGroups"), f"{where}.snapshotResourceGroups"),
            )
            if not (rule.namespaces and rule.subscriptions and rule.disk_resource_groups):
                raise ScopeError(f"{where}: namespaces, subscriptions and diskResourceGroups are required")
            rules.append(rule)
        return cls(rules, source=source)

    def check_restore(self, namespace: str, subscription_id: str, target_rg: str, source_rg: str) -> str | None:
        """A restore: its disk goes in `target_rg` (a disk group of the rule), its snapshot is read in `source_rg`
        (a snapshot group of the rule, or else a disk group). None when allowed; otherwise what to change."""
        if any(r.allows(namespace, subscription_id, target_rg, source_rg) for r in self.rules):
            return None
        return (
            f"Namespace {namespace!r} may not restore into resource group {target_rg!r} of subscription "
            f"{subscription_id} from snapshots in resource group {source_rg!r}: no rule in {self.source} allows it "
            "(the disk's group must match the rule's diskResourceGroups, the snapshot's its snapshotResourceGroups). "
            "Ask the cluster admin to add a rule, or restore into a group your namespace may use; azsnap made no "
            "Azure call."
        )

    def check(self, policy: Policy) -> str | None:
        """None when allowed; otherwise a message that says what to change.

        A claim target is checked disk by disk, once its claims are resolved (`reconciler/targets.py`): the claim
        belongs to the policy's namespace, which is the fence for its disk, so the disk's resource group (the
        cluster's node resource group) is not checked; the subscription and the snapshot group, where azsnap writes,
        are.
        """
        spec = policy.spec
        if spec.disk is None:
            return None  # no disk yet: each resolved disk is checked on its own
        coords = spec.disk.coordinates
        snapshot_rg = spec.snapshot.resource_group or coords.resource_group
        ns = policy.ref.namespace
        of_claim = spec.volume_claim is not None or spec.volume_claim_selector is not None
        disk_rg = None if of_claim else coords.resource_group
        if any(r.allows(ns, coords.subscription_id, disk_rg, snapshot_rg) for r in self.rules):
            return self._check_copies(policy, disk_rg)
        if of_claim:
            return (
                f"Namespace {ns!r} may not write snapshots to subscription {coords.subscription_id} and resource "
                f"group {snapshot_rg!r}: no rule in {self.source} allows it (for a PersistentVolumeClaim's disk the "
                "rule's snapshotResourceGroups, or else its diskResourceGroups, must match the snapshot group). Ask the "
                "cluster admin to add a rule, or set spec.snapshot.resourceGroup to a group your namespace may use."
            )
        return (
            f"Namespace {ns!r} may not target subscription {coords.subscription_id}, disk resource group "
            f"{coords.resource_group!r} and snapshot resource group {snapshot_rg!r}: no rule in {self.source} allows "
            "it. Ask the cluster admin to add a rule, or use a disk inside your namespace's scope."
        )

    def _check_copies(self, policy: Policy, disk_rg: str | None) -> str | None:
        """Each copy target is a snapshot group of the policy's namespace: a rule must allow it as one."""
        assert policy.spec.disk is not None  # checked by the caller
        coords = policy.spec.disk.coordinates
        ns = policy.ref.namespace
        for target in policy.spec.copies or []:
            sub = target.subscription_id or coords.subscription_id
            if not any(r.allows(ns, sub, disk_rg, target.resource_group) for r in self.rules):
                return (
                    f"Namespace {ns!r} may not copy snapshots to subscription {sub}, resource group "
                    f"{target.resource_group!r} (spec.copies): no rule in {self.source} allows it as a snapshot "
                    "resource group. Ask the cluster admin to add it to snapshotResourceGroups, or drop the target."
                )
        return None
