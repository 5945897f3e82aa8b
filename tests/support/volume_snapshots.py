"""Helpers for tests of VolumeSnapshot publishing: our snapshot CRDs in the in-process API, and bound claims."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import yaml
from tests.support.claims import LABELS, claim_of_disk

from azsnap.emulator.kubernetes import KubeEmulator

__all__ = ["CRDS", "LABELS", "claim_of_disk", "install_snapshot_crds"]

CRDS: Final = Path(__file__).resolve().parents[1] / "data" / "crds"


def install_snapshot_crds(kube: KubeEmulator) -> None:
    """The snapshot.storage.k8s.io CRDs (our test manifests), as a cluster with the external-snapshotter has them."""
    for path in sorted(CRDS.glob("*.snapshot.storage.k8s.io.yaml")):
        kube.install_crd(yaml.safe_load(path.read_text()))
