"""The opt-in Azure role for restores: exactly the actions a restore's calls need, and documented."""

import json
import re
from pathlib import Path

from azsnap.emulator.authz import ACTIONS, LINKED_ACTION

ROOT = Path(__file__).resolve().parents[2]
#: What a restore and a drill call: read the snapshot, read, create and delete the disk; and the linked check.
RESTORE_OPERATIONS = ("snapshots.get", "disks.get", "disks.put", "disks.delete")


def test_the_restore_role_holds_exactly_what_the_restore_calls_need() -> None:
    role = json.loads((ROOT / "docs" / "azure" / "azsnap-restore-role.json").read_text())
    needed = {ACTIONS[op] for op in RESTORE_OPERATIONS} | {LINKED_ACTION}
    assert role["IsCustom"] is True
    assert len(role["Actions"]) == len(set(role["Actions"])) and set(role["Actions"]) == needed
    assert role["NotActions"] == role["DataActions"] == role["NotDataActions"] == []
    assert not any("*" in action for action in role["Actions"])
    for scope in role["AssignableScopes"]:
        assert re.fullmatch(r"/subscriptions/[^/*]+/resourceGroups/[^/*]+", scope), f"{scope} is not a resource group"
    snapshot_role = json.loads((ROOT / "docs" / "azure" / "azsnap-role.json").read_text())
    assert "Microsoft.Compute/disks/write" not in snapshot_role["Actions"]  # restores stay opt-in


def test_azure_setup_documents_every_restore_action_and_the_commands() -> None:
    doc = (ROOT / "docs" / "azure-setup.md").read_text()
    role = json.loads((ROOT / "docs" / "azure" / "azsnap-restore-role.json").read_text())
    for action in role["Actions"]:
        assert f"`{action}`" in doc
    assert "docs/azure/azsnap-restore-role.json" in doc and "LinkedAuthorizationFailed" in doc
    assert f'--role "{role["Name"]}"' in doc
