"""ARM's 403s for a missing permission, in the words Azure uses: `AuthorizationFailed`, `LinkedAuthorizationFailed`."""

from __future__ import annotations

from typing import Any, Final

from azsnap.emulator.arm import ArmError

__all__ = ["ACTIONS", "LINKED_ACTION", "forbidden", "linked_forbidden"]

#: The RBAC action each operation needs on its own scope.
ACTIONS: Final = {
    "snapshots.put": "Microsoft.Compute/snapshots/write",
    "snapshots.get": "Microsoft.Compute/snapshots/read",
    "snapshots.list": "Microsoft.Compute/snapshots/read",
    "snapshots.delete": "Microsoft.Compute/snapshots/delete",
    "snapshots.access": "Microsoft.Compute/snapshots/beginGetAccess/action",
    "disks.get": "Microsoft.Compute/disks/read",
    "disks.list": "Microsoft.Compute/disks/read",
    "disks.put": "Microsoft.Compute/disks/write",
    "disks.delete": "Microsoft.Compute/disks/delete",
    "operations.get": "Microsoft.Compute/locations/DiskOperations/read",
}
#: The linked-access check Azure makes on the source a disk or snapshot is copied from (as public reports of the
#: 403 name it, for a snapshot source and a disk source alike).
LINKED_ACTION: Final = "Microsoft.Compute/disks/beginGetAccess/action"
#: The identity the emulator's 403s name (Azure names the caller's object ID).
CLIENT: Final = "00000000-0000-0000-0000-00000000a25a"


def forbidden(operation: str, scope: str) -> ArmError:
    """403 `AuthorizationFailed`: the caller lacks the operation's action on `scope` (ARM answers: no rate headers)."""
    action = ACTIONS.get(operation, "Microsoft.Compute/*")
    return ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{CLIENT}' with object id '{CLIENT}' does not have authorization to perform action '{action}' "
        f"over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your "
        "credentials.",
        arm_level=True,
    )


def linked_forbidden(operation: str, scope: str, body: Any) -> ArmError:
    """403 `LinkedAuthorizationFailed`: allowed on `scope`, not on the source the PUT's body names."""
    creation = body.get("properties", {}).get("creationData", {}) if isinstance(body, dict) else {}
    source = creation.get("sourceResourceId", "") if isinstance(creation, dict) else ""
    action = ACTIONS.get(operation, "Microsoft.Compute/*")
    return ArmError(
        403,
        "LinkedAuthorizationFailed",
        f"The client '{CLIENT}' with object id '{CLIENT}' has permission to perform action '{action}' on scope "
        f"'{scope}'; however, it does not have permission to perform action '{LINKED_ACTION}' on the linked "
        f"scope(s) '{source}' or the linked scope(s) are invalid.",
        arm_level=True,
    )
