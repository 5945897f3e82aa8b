"""`azsnap emulator`: seed the demo disks, print one line of JSON saying where to connect, serve until signalled."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from azsnap.clock import Clock, WallClock
from azsnap.emulator.config import API_VERSION, DEMO_LOCATION, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, EmulatorConfig
from azsnap.emulator.emulator import Emulator

__all__ = ["StandaloneOptions", "run_standalone", "seed_demo"]


@dataclass(frozen=True)
class StandaloneOptions:
    """What the command line asked for."""

    host: str = "127.0.0.1"
    port: int = 0
    disks: int = 3
    premium_v2_disks: int = 0
    throttling: bool = True
    state: Path | None = None
    #: The emulator's named timing (`azure`, `gentle`, `instant`).
    timing: str = "azure"


def seed_demo(emulator: Emulator, disks: int, premium_v2_disks: int) -> None:
    """`disk-0..` (Standard SSD) and `pv2-disk-0..` (Premium SSD v2) in the demo group; existing ones are kept."""
    present = {d["name"] for d in emulator.disks(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP)}
    wanted = [(f"disk-{i}", "StandardSSD_LRS") for i in range(disks)]
    wanted += [(f"pv2-disk-{i}", "PremiumV2_LRS") for i in range(premium_v2_disks)]
    for name, sku in wanted:
        if name not in present:
            emulator.seed_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, name, location=DEMO_LOCATION, sku=sku)


async def run_standalone(
    options: StandaloneOptions,
    *,
    clock: Clock | None = None,
    out: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> Emulator:
    """Serve until SIGINT/SIGTERM (or `stop` is set); with `options.state`, load it first and save it at the end."""
    clock = clock or WallClock()
    config = EmulatorConfig.named(options.timing, throttling=options.throttling)
    if options.state is not None and options.state.exists():
        emulator = Emulator.load(options.state, clock, config)
    else:
        emulator = Emulator(clock, config)
    seed_demo(emulator, options.disks, options.premium_v2_disks)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals on this platform
            pass
    try:
        async with emulator.serve(options.host, options.port) as server:
            line = {
                "base_url": server.base_url,
                "ca_bundle": server.ca_bundle,
                "subscription_id": DEMO_SUBSCRIPTION,
                "resource_group": DEMO_RESOURCE_GROUP,
                "api_version": API_VERSION,
            }
            stream = out or sys.stdout
            stream.write(json.dumps(line) + "\n")
            stream.flush()
            await stop.wait()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        if options.state is not None:
            emulator.save(options.state)
    return emulator
