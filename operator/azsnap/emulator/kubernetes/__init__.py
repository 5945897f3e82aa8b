"""An in-process Kubernetes API server (kmock's emulator, extended) for kopf, kubectl, the e2e tests and the demo.

kmock 0.8 serves discovery and a simple object store. kopf and kubectl need the real API server's contract, and
azsnap's tests must fail where a real cluster would, so this package keeps its own store behind kmock's request
routing and implements, checked against answers recorded from a real kube-apiserver (`tests/e2e/test_kube_answers.py`):

- CRD registration with the server's rules (`crd_rules`): structural schemas (a type on every node, root
  `metadata` only constraining name/generateName, `additionalProperties` beside `properties`,
  `x-kubernetes-*` consistency, defaults valid and not pruned, RE2 patterns; CEL rules (`crd_cel`) compiled
  against the schema with their message, messageExpression, reason and fieldPath checked, `oldSelf` refused under
  a list that is not a map list, `optionalOldSelf` only beside `oldSelf`, and each rule's estimated cost and their
  total held to the server's limits (`cel_cost`)), printer columns, scale paths, names, one storage version, an
  immutable scope;
- custom resources written as the server writes them (`admission`, `schema`, `cel`): kind checked, unknown fields
  pruned with a `Warning` (or a 400 under `fieldValidation=Strict`), defaults applied, schema and CEL violations
  refused with a 422 and the server's causes (including the `<nil>` cause when CEL rules were skipped); on an
  update, transition rules compare with the stored object and a rule that fails on an unchanged value only warns;
- a global `resourceVersion` (starting at 1000, so `resourceVersion=1` is too old) bumped on every write; lists
  in key order; watches resume from a version, answer a too-old one with 200 and an `ERROR` event (410 Expired),
  and send a `BOOKMARK` shortly before `timeoutSeconds` once the store moved past the last event;
- `uid`, `creationTimestamp`, `generation` (custom resources and CRDs; bumped on spec changes and on deletion)
  and `generateName`; names, label and annotation keys and values, and the annotations' size checked; 201 for create, 404 in a namespace that does not exist, 409 on a name clash or a stale
  `resourceVersion`, 422 for a PUT of a custom resource without one;
- merge patch, JSON patch (a failed `test` op is the server's bare 422), strategic merge patch for built-in kinds
  (custom resources refuse it with 415), server-side apply (`application/apply-patch+yaml`, as a merge patch that
  creates the object if missing: no field ownership) and PUT;
- the status subresource: the main endpoint ignores `.status`, `/status` changes only `.status`;
- deletion with finalizers: `deletionTimestamp` is set, no finalizer may be added, the object goes once its
  finalizers are gone; a deletion without finalizers answers a `Status`;
- Tables for `kubectl get` (`tables`): printer columns rendered as the server renders them (`date` as an age,
  `<invalid>` in the future, `null` when missing), `PartialObjectMetadata` rows, v1 and v1beta1;
- PersistentVolumeClaims and PersistentVolumes (`volumes`): defaults, the server's validation, a `Pending` phase
  at creation, immutable claim specs (but for binding and resizing) and volume sources, a claim's `dataSource`
  and `dataSourceRef` filled from each other and checked; custom resources such as the snapshot.storage.k8s.io
  kinds are served from the CRDs a test or the demo installs (`snapshot_controller.install_snapshot_crds`), and
  `snapshot_controller` stands in for the external-snapshotter (binding pre-provisioned pairs, `readyToUse`);
- core and `events.k8s.io` Events; label and field selectors; discovery for the built-ins kopf needs, kopf's
  peering resources on request, and every CRD created through the API (or `install_crd`);
- `audit`: every resource request counted in RBAC terms (verb, group, resource), for checking the chart's Roles.

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
