"""A local emulator of the Azure Resource Manager Compute API for managed disks and snapshots (tests, demo)."""

from azsnap.emulator.config import (
    API_VERSION,
    DEMO_LOCATION,
    DEMO_RESOURCE_GROUP,
    DEMO_SUBSCRIPTION,
    BucketSize,
    EmulatorConfig,
    FaultRule,
    RecordedRequest,
)
from azsnap.emulator.emulator import Emulator, RunningServer

__all__ = [
    "API_VERSION",
    "DEMO_LOCATION",
    "DEMO_RESOURCE_GROUP",
    "DEMO_SUBSCRIPTION",
    "BucketSize",
    "Emulator",
    "EmulatorConfig",
    "FaultRule",
    "RecordedRequest",
    "RunningServer",
]
