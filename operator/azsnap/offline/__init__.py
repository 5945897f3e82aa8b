"""The commands that run without a cluster: demo, simulate, preview, capacity, and the sandbox the demo runs in."""
