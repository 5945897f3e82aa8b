"""The policy status fields that keep copies findable and counted beyond `status.copies` (a mixin of the status model).

`formerCopyTargets`: the copy targets removed from `spec.copies` that still hold the policy's copies
(`domain/former_targets.py`); `copyAccounts`: the copy watermarks of the claim disks `status.disks` leaves out
(`domain/copy_accounts.py`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = ["CopyRecordStatus"]


class CopyRecordStatus(BaseModel):
    """What status keeps of copies besides the targets' entries, as written."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    #: `{region, resourceGroup, subscriptionId, copiesHeld}` per former target, at most 8.
    former_copy_targets: list[dict[str, Any]] | None = None
    #: `<disk key>=<target>:<seconds>[,...]` per disk `status.disks` leaves out.
    copy_accounts: list[str] | None = None
