"""Observe Azure through `azsnap.cloud`, ask the planner, act, and report a status: no kopf in here."""

from azsnap.reconciler.core import Reconciler, ReconcilerConfig
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, FinalizeReport, StatusReport

__all__ = ["Event", "FinalizeReport", "Observer", "Reconciler", "ReconcilerConfig", "StatusReport"]
