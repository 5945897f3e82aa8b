"""The demo's restores: the SnapshotRestore handlers beside the policy ones, and one restore applied mid-run.

`gfs`'s newest snapshot (of disk-2) is restored to a new disk, `disk-2-restored`, a quarter of an hour after the
middle of the run (between two hourly slots). The drill is the examples' own: `minimal-hourly` asks for one a day.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import kopf
import yaml

from azsnap import handlers
from azsnap.domain.models import API_GROUP, API_VERSION
from azsnap.domain.restore import KIND, PLURAL
from azsnap.emulator import DEMO_RESOURCE_GROUP

if TYPE_CHECKING:
    from azsnap.emulator.kubernetes import KubeEmulator

__all__ = [
    "RESTORE_NAME",
    "RestoreResult",
    "demo_registry",
    "drill_results",
    "install_restore_crd",
    "restore_manifest",
    "restore_results",
    "start_restore",
]

RESTORE_NAME: Final = "restore-gfs"
#: The policy whose newest snapshot is restored, and the new disk's name.
SOURCE_POLICY: Final = "gfs"
TARGET_DISK: Final = "disk-2-restored"
_CRD_FILE: Final = Path("crds") / f"{PLURAL}.{API_GROUP}.yaml"


@dataclass(frozen=True)
class RestoreResult:
    """One SnapshotRestore at the end of the run (or a policy's last restore drill)."""

    name: str
    ready: str
    message: str


def demo_registry() -> kopf.OperatorRegistry:
    """A registry of the demo's own with every handler of the operator, the restore handlers included.

    The default registry is left as it is: restores are opt-in in a real operator (`AZSNAP_RESTORES`).
    """
    registry = kopf.OperatorRegistry()
    handlers.register(registry, restores=True)
    return registry


def install_restore_crd(kube: KubeEmulator, roots: Iterable[Path]) -> None:
    """The SnapshotRestore CRD from the first `crds/` found under `roots`."""
    crd = next((root / _CRD_FILE for root in roots if (root / _CRD_FILE).is_file()), None)
    if crd is None:
        raise FileNotFoundError(f"no {_CRD_FILE} found; run the demo from the azsnap checkout")
    kube.install_crd(yaml.safe_load(crd.read_text()))


def restore_manifest(namespace: str = "default") -> dict[str, Any]:
    """Restore the newest good snapshot of `gfs` to a new Standard SSD disk in the demo's resource group."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": RESTORE_NAME, "namespace": namespace},
        "spec": {
            "source": {"policy": SOURCE_POLICY},
            "target": {"name": TARGET_DISK, "resourceGroup": DEMO_RESOURCE_GROUP},
        },
    }


def start_restore(kube: KubeEmulator, manifests: Iterable[Mapping[str, Any]], hours: float) -> None:
    """When `gfs` is among the policies: apply the restore 15 minutes after the middle hour (on emulated time)."""
    if not any((m.get("metadata") or {}).get("name") == SOURCE_POLICY for m in manifests):
        return
    asyncio.get_running_loop().call_later((hours / 2 + 0.25) * 3600, kube.apply, restore_manifest())


def _ready(obj: Mapping[str, Any]) -> tuple[str, str]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready: Mapping[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
    status = str(ready.get("status") or "-")
    reason = str(ready.get("reason") or "")
    return (f"{status} ({reason})" if status != "True" and reason else status), str(ready.get("message") or "")


def restore_results(kube: KubeEmulator) -> list[RestoreResult]:
    """Every SnapshotRestore: its Ready condition and message."""
    found = []
    for obj in kube.list(API_GROUP, API_VERSION, PLURAL):
        meta = obj.get("metadata") or {}
        ready, message = _ready(obj)
        found.append(RestoreResult(f"{meta.get('namespace') or 'default'}/{meta.get('name')}", ready, message))
    return found


def drill_results(objects: Iterable[Mapping[str, Any]], drills: Mapping[str, int]) -> list[RestoreResult]:
    """Each drilled policy's last restore drill (`status.lastVerifiedRestore`), with how many succeeded in the run."""
    found = []
    for obj in objects:
        if not (obj.get("spec") or {}).get("restoreDrill"):
            continue
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
        last = (obj.get("status") or {}).get("lastVerifiedRestore") or {}
        if not last:
            found.append(RestoreResult(key, "-", "no drill finished yet"))
            continue
        finished = str(last.get("finishedTime") or "")[5:16].replace("T", " ")  # MM-DD HH:MM, as the tables show
        message = (
            f"{drills.get(key, 0)} succeeded in the run; last: {last.get('snapshot')} usable in "
            f"{last.get('durationSeconds')} s, {finished}"
        )
        found.append(RestoreResult(key, str(last.get("result") or "-"), message))
    return found
