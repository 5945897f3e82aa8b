"""kopf handlers; importing this package registers them (`kopf run -m azsnap.handlers`).

SnapshotPolicy (with the watch of claims and volumes its claim targets read) always; SnapshotRestore only when
`AZSNAP_RESTORES` is on (its CRD and role are opt-in).
"""

import os

import kopf

from azsnap.handlers import policy, restore, scope, startup, volumes

__all__ = ["policy", "restore", "scope", "startup", "volumes"]

if os.environ.get("AZSNAP_RESTORES", "").strip().lower() in ("1", "true", "yes", "on"):
    restore.register(kopf.get_default_registry())
