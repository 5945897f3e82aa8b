"""Claim-to-disk resolution and label selectors over claims: the pure rules issue 16 builds on."""

from __future__ import annotations

from typing import Any, Final

import pytest

from azsnap.domain.selectors import LabelSelector, Operator, Requirement, parse_label_selector
from azsnap.domain.volumes import AZURE_DISK_CSI_DRIVER, ClaimProblem, resolve_claim_disk

DISK: Final = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/mc_rg_aks_westeurope"
    "/providers/Microsoft.Compute/disks/pvc-6f1c2a9e-3b1d-4c55-9b2e-0c8d7e5f4a21"
)


def _pvc(phase: str = "Bound", volume: str = "pv-data", uid: str = "claim-uid") -> dict[str, Any]:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "4Gi"}}}
    if volume:
        spec["volumeName"] = volume
    return {"metadata": {"name": "data", "namespace": "shop", "uid": uid}, "spec": spec, "status": {"phase": phase}}


def _pv(source: dict[str, Any], name: str = "pv-data", claim_uid: str = "claim-uid") -> dict[str, Any]:
    ref = {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "data", "uid": claim_uid}
    return {"metadata": {"name": name}, "spec": {"capacity": {"storage": "4Gi"}, "claimRef": ref, **source}}


def _csi(handle: str = DISK, driver: str = AZURE_DISK_CSI_DRIVER) -> dict[str, Any]:
    return {"csi": {"driver": driver, "volumeHandle": handle}}


def test_a_bound_csi_claim_resolves_to_its_volume_handle() -> None:
    found = resolve_claim_disk("shop/data", _pvc(), _pv(_csi()))
    assert (found.disk_id, found.problem, found.claim) == (DISK, None, "shop/data")


def test_an_in_tree_azure_disk_resolves_to_its_disk_uri() -> None:
    source = {"azureDisk": {"diskName": "data", "diskURI": DISK, "kind": "Managed"}}
    assert resolve_claim_disk("shop/data", _pvc(), _pv(source)).disk_id == DISK


def test_disk_ids_are_read_case_insensitively_as_azure_reads_them() -> None:
    shouted = DISK.upper()
    lowered = DISK.lower()
    assert resolve_claim_disk("shop/data", _pvc(), _pv(_csi(shouted))).disk_id == shouted
    assert resolve_claim_disk("shop/data", _pvc(), _pv(_csi(lowered))).disk_id == lowered


@pytest.mark.parametrize(
    ("pvc", "pv", "problem", "words"),
    [
        (None, None, ClaimProblem.CLAIM_NOT_FOUND, ["shop/data does not exist"]),
        (_pvc("Pending", volume=""), None, ClaimProblem.CLAIM_PENDING, ["is Pending", "not bound"]),
        (_pvc("Bound", volume=""), None, ClaimProblem.CLAIM_PENDING, ["not bound"]),
        (_pvc("Lost"), None, ClaimProblem.CLAIM_LOST, ["lost its volume pv-data"]),
        (_pvc(), None, ClaimProblem.VOLUME_NOT_FOUND, ["PersistentVolume pv-data", "does not exist"]),
        (_pvc(), _pv(_csi(driver="file.csi.azure.com")), ClaimProblem.NOT_AZURE_DISK, ["'file.csi.azure.com'"]),
        (_pvc(), _pv({"nfs": {"server": "10.0.0.4", "path": "/x"}}), ClaimProblem.NOT_AZURE_DISK, ["uses nfs"]),
        (_pvc(), _pv({}), ClaimProblem.NOT_AZURE_DISK, ["uses no volume source"]),
        (_pvc(), _pv(_csi("vol-0abc")), ClaimProblem.NOT_A_DISK_ID, ["spec.csi.volumeHandle 'vol-0abc'"]),
        (_pvc(), _pv(_csi(DISK.replace("/disks/", "/snapshots/"))), ClaimProblem.NOT_A_DISK_ID, ["not the ARM ID"]),
        (_pvc(), _pv(_csi(DISK + "/")), ClaimProblem.NOT_A_DISK_ID, ["not the ARM ID"]),
        (
            _pvc(),
            _pv({"azureDisk": {"diskName": "d", "diskURI": "https://acct.blob.core.windows.net/vhds/d.vhd"}}),
            ClaimProblem.NOT_A_DISK_ID,
            ["spec.azureDisk.diskURI"],
        ),
        (_pvc(), _pv(_csi(), claim_uid="older-uid"), ClaimProblem.VOLUME_BOUND_ELSEWHERE, ["uid older-uid"]),
    ],
)
def test_each_claim_without_a_disk_says_why(
    pvc: dict[str, Any] | None, pv: dict[str, Any] | None, problem: ClaimProblem, words: list[str]
) -> None:
    found = resolve_claim_disk("shop/data", pvc, pv)
    assert (found.disk_id, found.problem) == (None, problem)
    for word in words:
        assert word in found.message


def test_a_volume_claimed_by_another_claim_names_that_claim() -> None:
    pv = _pv(_csi())
    pv["spec"]["claimRef"].update(namespace="other", name="logs")
    found = resolve_claim_disk("shop/data", _pvc(), pv)
    assert found.problem is ClaimProblem.VOLUME_BOUND_ELSEWHERE
    assert "PersistentVolumeClaim other/logs" in found.message


def test_the_wrong_volume_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="pv-other"):
        resolve_claim_disk("shop/data", _pvc(), _pv(_csi(), name="pv-other"))


LABELS: Final = {"app": "shop", "tier": "db"}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ({}, True),
        ({"matchLabels": {"app": "shop"}}, True),
        ({"matchLabels": {"app": "shop", "tier": "web"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db", "cache"]}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),  # missing key passes
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"app": "shop"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}],
            },
            False,
        ),
    ],
)
def test_label_selectors_select_as_kubernetes_defines_them(selector: dict[str, Any], selected: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is selected


def test_label_values_are_case_sensitive() -> None:
    assert not parse_label_selector({"matchLabels": {"app": "Shop"}}).matches(LABELS)


def test_match_labels_are_in_terms() -> None:
    parsed = parse_label_selector({"matchLabels": {"app": "shop"}})
    assert parsed == LabelSelector((Requirement("app", Operator.IN, frozenset({"shop"})),))


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "must be specified when `operator` is 'In'"),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}, "must be specified"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "may not be specified"),
        ({"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}, "'in' is not a valid operator"),
        ({"matchExpressions": [{"operator": "Exists"}]}, "matchExpressions[0].key"),
        ({"matchLabels": {"a": 1}}, "must be strings"),
        ({"matchLabels": {"a": "b"}, "match": {}}, "not match"),
        ({"matchExpressions": {"key": "a"}}, "must be a list"),
    ],
)
def test_bad_selectors_say_what_to_fix(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        parse_label_selector(selector)
    assert message in str(caught.value)
