"""`azsnap snapshots` by disk for claim policies: `--disk` finds a disk reached through claims (listed in
`status.disks`, left out with an account, or known only by the policy's snapshots), and a disk shows once, under its
claim's name, when a left-out claim lost its volume and got it back."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from tests.support.status import fold_status as fold
from tests.unit.test_hidden_disks import SELECTOR, _first_round
from tests.unit.test_targets import NODE_RG, SUB, bound

from azsnap.domain import naming
from azsnap.domain.models import Policy
from azsnap.domain.observed import Limits
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler import Reconciler
from azsnap.reconciler.gone_disks import unnamed_claim
from azsnap.tools.cluster import Selection, select
from azsnap.tools.policy_disks import disk_targets
from azsnap.tools.snapshots import SnapshotsOptions, gather, parse_policy, run_snapshots


def _object(policy: Policy, status: SnapshotPolicyStatus) -> dict[str, Any]:
    ref = policy.ref
    return {
        "metadata": {"namespace": ref.namespace, "name": ref.name, "uid": ref.uid},
        "spec": {**SELECTOR, "schedule": {"every": "1h"}, "retention": {"keepLast": 3}},
        "status": status.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }


async def test_disk_finds_a_claim_policys_disk_listed_left_out_or_known_only_by_its_snapshots() -> None:
    clock, cloud, _store, disks, the_policy, status = await _first_round()
    obj = _object(the_policy, status)
    listed, left_out = disks[0], disks[-1]
    assert listed.id in {e.disk for e in status.disks or []} and left_out.id not in {e.disk for e in status.disks or []}

    rows = await gather([obj], cloud, clock, Limits(), disk=listed.id.upper())
    assert [(r.claim, r.disk_id, len(r.snapshots)) for r in rows] == [("data-000", listed.id, 1)]
    rows = await gather([obj], cloud, clock, Limits(), disk=left_out.id)  # through its account in diskAccounts
    assert [(r.claim, r.disk_id, len(r.snapshots)) for r in rows] == [(None, left_out.id, 1)]
    no_accounts = {**obj, "status": {k: v for k, v in obj["status"].items() if k != "diskAccounts"}}
    rows = await gather([no_accounts], cloud, clock, Limits(), disk=left_out.id)  # through the snapshots' tags
    assert [(r.claim, r.disk_id, len(r.snapshots)) for r in rows] == [(None, left_out.id, 1)]

    other = cloud.add_disk(SUB, NODE_RG, "pvc-not-the-policys")
    assert await gather([obj, no_accounts], cloud, clock, Limits(), disk=other.id) == []


def test_the_cluster_selection_by_disk_keeps_claim_policies_for_their_status_to_decide() -> None:
    def obj(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"namespace": "shop", "name": name}, "spec": spec}

    by_disk = obj("by-disk", {"disk": {"id": "/subscriptions/x/other"}})
    by_claims = obj("by-claims", SELECTOR)
    assert select([by_disk, by_claims], Selection("shop", disk="/subscriptions/x/asked")) == [by_claims]


def test_a_disk_that_is_not_an_arm_id_is_refused_before_anything_is_read() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run_snapshots(SnapshotsOptions(disk="pvc-000"), out=out, err=err, environ={})
    assert code == 2 and out.getvalue() == ""
    assert err.getvalue().startswith("azsnap snapshots: --disk: 'pvc-000' is not the ARM ID of a managed disk")


async def test_a_left_out_claim_that_lost_its_volume_and_got_it_back_shows_once_under_its_name() -> None:
    clock, cloud, store, disks, the_policy, status = await _first_round()
    disk = disks[-1]
    reconciler = Reconciler(cloud, clock)

    async def hours(count: int) -> SnapshotPolicyStatus:
        nonlocal status
        for _ in range(count):
            clock.advance(timedelta(hours=1))
            status = fold(status, await reconciler.reconcile(the_policy, status, claims=store))
        return status

    store.remove_volume("pv-shop-data-054")  # data-054 is left out of status.disks
    await hours(2)
    assert unnamed_claim(disk.id) in {e.claim for e in status.disks or []}  # its disk's snapshots are kept

    bound(store, "data-054", disk.id, labels={"app": "pg"})  # the volume is back
    await hours(2)
    named = [e.claim for e in status.disks or [] if (e.disk or "").lower() == disk.id.lower()]
    assert unnamed_claim(disk.id) not in {e.claim for e in status.disks or []}
    assert named == ["data-054"]  # listed once, under its claim's name
    held = [s for s in cloud.snapshots if naming.tag(s.tags, naming.TAG_POLICY_UID) == the_policy.ref.uid]
    assert status.snapshot_count == len(held)  # the disk is counted once
    rows = await gather([_object(the_policy, status)], cloud, clock, Limits())
    assert [r.claim for r in rows if r.disk_id == disk.id] == ["data-054"]


def test_a_disk_named_by_its_claim_and_kept_under_claim_of_disk_is_shown_once_under_the_claims_name() -> None:
    disk_id = f"/subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/disks/pvc-054"
    named = {"claim": "data-054", "disk": disk_id, "state": "Ready"}
    kept = {"claim": unnamed_claim(disk_id), "disk": disk_id.upper(), "state": "Unresolved", "count": 3}
    for entries in ([kept, named], [named, kept]):
        obj = {
            "metadata": {"namespace": "shop", "name": "pg", "uid": "uid-pg"},
            "spec": {**SELECTOR, "schedule": {"every": "1h"}, "retention": {"keepLast": 3}},
            "status": {"disks": entries},
        }
        policy, _ = parse_policy(obj)
        assert policy is not None
        assert disk_targets(obj, policy) == [("data-054", disk_id)]
