"""Benchmarks of azsnap against the Azure emulator (see docs/performance.md)."""
