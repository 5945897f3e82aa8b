"""kopf handlers for SnapshotPolicy; importing this package registers them (`kopf run -m azsnap.handlers`)."""

from azsnap.handlers import policy, scope, startup, volumes

__all__ = ["policy", "scope", "startup", "volumes"]
