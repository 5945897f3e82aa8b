"""kopf handlers; importing this package registers them on kopf's default registry (`kopf run -m azsnap.handlers`).

SnapshotPolicy (with start-up and clean-up, and the watch of claims and volumes its claim targets read) always;
SnapshotRestore only when `AZSNAP_RESTORES` is on (its CRD and role are opt-in). `register` puts the same handlers
into a registry of the caller's own (the demo runs the restores too without changing the default one).
"""

import os

import kopf

from azsnap.handlers import policy, restore, scope, startup, volumes

__all__ = ["policy", "register", "restore", "scope", "startup", "volumes"]


def register(registry: kopf.OperatorRegistry, *, restores: bool) -> None:
    """Put the operator's handlers into `registry`: the policies' always, the restores' when `restores`."""
    policy.register(registry)
    startup.register(registry)
    volumes.register(registry)
    if restores:
        restore.register(registry)


register(
    kopf.get_default_registry(),
    restores=os.environ.get("AZSNAP_RESTORES", "").strip().lower() in ("1", "true", "yes", "on"),
)
