"""kopf's watch of PersistentVolumeClaims and PersistentVolumes: indexes for claim targets, and wake-ups on change.

The two indexes keep what azsnap reads of each claim and volume (`reconciler/claims.py`), filled by kopf's watches
(list and watch only). kopf starts the policy handlers only once every index holds its first listing, so a policy
never sees a claim as missing because the watch had not caught up. A claim's (or its volume's) change wakes the
policies that cover it, which reconcile at once: a new claim is covered within one reconcile, with no polling.
The handlers are coroutines, so kopf runs them on the event loop rather than in its thread pool: the wake-ups touch
the runtime's asyncio objects, which only the loop's own thread may.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import kopf

from azsnap.handlers.runtime import MEMO_KEY, Runtime
from azsnap.reconciler.claims import slim_claim, slim_volume

__all__ = ["CLAIMS_INDEX", "VOLUMES_INDEX", "IndexedClaims", "azsnap_claims", "azsnap_volumes"]

#: The handler keyword arguments under which kopf passes the indexes (the indexing functions' names).
CLAIMS_INDEX: Final = "azsnap_claims"
VOLUMES_INDEX: Final = "azsnap_volumes"


class IndexedClaims:
    """A `ClaimView` over kopf's indexes: claims by namespace, volumes by name."""

    def __init__(self, claims: Mapping[str, Iterable[Any]], volumes: Mapping[str, Iterable[Any]]) -> None:
        self._claims, self._volumes = claims, volumes

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> IndexedClaims | None:
        """The view from a handler's keyword arguments; None when kopf runs without the indexes."""
        claims, volumes = kwargs.get(CLAIMS_INDEX), kwargs.get(VOLUMES_INDEX)
        return None if claims is None or volumes is None else cls(claims, volumes)

    def claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return next((c for c in self.claims(namespace) if c["metadata"]["name"] == name), None)

    def claims(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return list(self._claims.get(namespace, ()))

    def volume(self, name: str) -> Mapping[str, Any] | None:
        return next(iter(self._volumes.get(name, ())), None)


async def azsnap_claims(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, dict[str, Any]]:
    """Every claim (what azsnap reads of it), by namespace."""
    return {namespace or "": slim_claim(body)}


async def azsnap_volumes(body: kopf.Body, name: str | None, **_: Any) -> dict[str, dict[str, Any]]:
    """Every volume (its claimRef and disk fields), by name."""
    return {name or "": slim_volume(body)}


def _wake(runtime: Runtime, namespace: str, name: str, labels: Mapping[str, str] | None) -> None:
    now = runtime.clock.now()
    for uid in runtime.claim_interest.covering(namespace, name, labels):
        if uid in runtime.wakeups:  # reconciled once already (the create handler does the first one)
            runtime.wakeups[uid] = now
            runtime.woken.add(uid)
            runtime.nudge(uid).set()


async def claim_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A claim was created, changed (bound, relabelled) or deleted: wake the policies that cover it."""
    runtime: Runtime | None = memo.get(MEMO_KEY)
    if runtime is not None:
        meta = body.metadata
        _wake(runtime, meta.namespace or "", meta.name or "", dict(meta.labels))


async def volume_changed(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """A volume was bound, changed or deleted: wake the policies that cover its claim."""
    runtime: Runtime | None = memo.get(MEMO_KEY)
    ref = (body.get("spec") or {}).get("claimRef") or {}
    if runtime is None or not ref.get("namespace") or not ref.get("name"):
        return
    view = IndexedClaims.from_kwargs(kwargs)
    claim = None if view is None else view.claim(ref["namespace"], ref["name"])
    labels = None if claim is None else claim["metadata"]["labels"]
    _wake(runtime, ref["namespace"], ref["name"], labels)


def register(registry: kopf.OperatorRegistry) -> None:
    """Put the indexes of claims and volumes, and the handlers their changes wake policies through, into `registry`."""
    kopf.index("", "v1", "persistentvolumeclaims", registry=registry)(azsnap_claims)
    kopf.index("", "v1", "persistentvolumes", registry=registry)(azsnap_volumes)
    kopf.on.event("", "v1", "persistentvolumeclaims", registry=registry)(claim_changed)
    kopf.on.event("", "v1", "persistentvolumes", registry=registry)(volume_changed)
