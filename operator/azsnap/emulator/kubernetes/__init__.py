"""An in-process Kubernetes API server (kmock's emulator, extended) for kopf, kubectl, the e2e tests and the demo.

kmock 0.8 serves discovery and a simple object store. kopf and kubectl need more of the real API server's
contract, so this package keeps its own store behind kmock's request routing and implements:

- a global `resourceVersion` bumped on every write; lists and watch events carry it; a watch resumes from it
  (or gets `410 Gone` when the version is older than the retained history);
- `uid`, `creationTimestamp`, `generation` (bumped on spec changes and on deletion, never on status or
  metadata) and `generateName`; 201 for create, 409 on a name clash or a stale `resourceVersion`;
- merge patch, JSON patch (422 when a `test` op fails: kopf adds finalizers that way), strategic merge patch
  for built-in kinds (as a merge patch; custom resources refuse it with 415 as the API server does),
  server-side apply (`application/apply-patch+yaml`, as a merge patch that creates the object if missing:
  no field ownership) and PUT;
- the status subresource: the main endpoint ignores `.status`, `/status` changes only `.status`;
- deletion with finalizers: `deletionTimestamp` is set and the object goes once its finalizers are gone;
- label and field selectors on list and watch, `timeoutSeconds` and `sendInitialEvents` on watch;
- discovery for the built-ins kopf needs (`v1/namespaces`, `v1/events`, `v1/configmaps`, CRDs), kopf's
  peering resources on request, and every CRD created through the API (or `install_crd`);
- `GET /api/v1/namespaces`, on which kmock's own path parser crashes.

Behaviour of kmock kept: user reactions (`kube['patch', kube.resource('azsnap.io/v1alpha1/snapshotpolicies')]
<< 500`) take priority over the emulated API, and recent requests stay available for assertions (only the last
`history` of them, because kmock's matching cost grows with every request it keeps).
"""

from azsnap.emulator.kubernetes.emulator import KubeEmulator
from azsnap.emulator.kubernetes.patching import json_patch, merge_patch
from azsnap.emulator.kubernetes.protocol import CRD_GROUP, CRD_PLURAL
from azsnap.emulator.kubernetes.runner import INACTIVITY_TIMEOUT, OperatorRun, kopf_settings_for_emulator, run_operator
from azsnap.emulator.kubernetes.server import SNAPSHOT_POLICY_SHORT_NAMES, KubeApiServer

__all__ = [
    "CRD_GROUP",
    "CRD_PLURAL",
    "INACTIVITY_TIMEOUT",
    "SNAPSHOT_POLICY_SHORT_NAMES",
    "KubeApiServer",
    "KubeEmulator",
    "OperatorRun",
    "json_patch",
    "kopf_settings_for_emulator",
    "merge_patch",
    "run_operator",
]
