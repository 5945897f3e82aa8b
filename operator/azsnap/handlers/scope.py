"""The tenancy allow-list as a mounted file, re-read when it changes (kubelet refreshes mounted ConfigMaps)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from azsnap.domain.models import Policy
from azsnap.domain.scope import ScopeError, ScopeGuard

__all__ = ["ScopeFile"]

logger = logging.getLogger(__name__)


class ScopeFile:
    """A `ScopeCheck` backed by a YAML file; a missing or malformed file refuses every policy (fail closed)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._guard: ScopeGuard | None = None
        self._problem = f"the scope allow-list {self.path} has not been read yet"

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except OSError as exc:
            self._stamp, self._guard = None, None
            self._problem = f"the scope allow-list {self.path} cannot be read ({exc.strerror})"
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._guard = ScopeGuard.from_yaml(self.path.read_text(), source=str(self.path))
            logger.info("scope allow-list loaded", extra={"rules": len(self._guard.rules), "path": str(self.path)})
        except (OSError, ScopeError) as exc:
            self._guard = None
            self._problem = f"the scope allow-list is invalid: {exc}"
            logger.error("scope allow-list refused", extra={"problem": str(exc)})

    def check(self, policy: Policy) -> str | None:
        self._reload()
        if self._guard is None:
            return f"No policy is allowed while {self._problem}. Ask the cluster admin to fix it."
        return self._guard.check(policy)

    def check_restore(self, namespace: str, subscription_id: str, target_rg: str, source_rg: str) -> str | None:
        self._reload()
        if self._guard is None:
            return f"No restore is allowed while {self._problem}. Ask the cluster admin to fix it."
        return self._guard.check_restore(namespace, subscription_id, target_rg, source_rg)
