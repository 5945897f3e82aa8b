"""Logging of `azsnap run`: the level setting, kopf's routine per-handler lines and the Azure SDK's HTTP lines at DEBUG."""

from __future__ import annotations

import logging
from typing import Final

__all__ = [
    "ACCESS_LOGGER",
    "AZURE_HTTP_LOGGER",
    "KOPF_OBJECTS_LOGGER",
    "LOG_LEVELS",
    "RoutineKopfLines",
    "configure_logging",
]

#: The levels `AZSNAP_LOG_LEVEL` accepts.
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
#: The Azure SDK logs every request and answer here at INFO.
AZURE_HTTP_LOGGER: Final = "azure.core.pipeline.policies.http_logging_policy"
#: aiohttp logs every request to kopf's liveness endpoint here (a line per kubelet probe).
ACCESS_LOGGER: Final = "aiohttp.access"
#: kopf's per-object logger (handler outcomes, "Creation is processed", ...).
KOPF_OBJECTS_LOGGER: Final = "kopf.objects"

# kopf logs these at INFO for every handler call of every object: a timer that found nothing due, a create or resume
# that azsnap logs itself. They say nothing a person acts on, so they are DEBUG lines here.
_ROUTINE_ENDINGS: Final = (" succeeded.",)
_ROUTINE_PARTS: Final = (" is processed: ",)


class RoutineKopfLines(logging.Filter):
    """Lowers kopf's routine INFO lines (a handler succeeded, an event was processed) to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        message = record.getMessage()
        if not (message.endswith(_ROUTINE_ENDINGS) or any(part in message for part in _ROUTINE_PARTS)):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def configure_logging(level: str, log_format: str) -> None:
    """Root handler and format (kopf's), then `level`; the Azure SDK's HTTP lines and probe access lines only at DEBUG."""
    import kopf

    debug = level == "DEBUG"
    kopf.configure(verbose=debug, log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL)
    logging.getLogger().setLevel(level)
    objects = logging.getLogger(KOPF_OBJECTS_LOGGER)
    if not any(isinstance(f, RoutineKopfLines) for f in objects.filters):
        objects.addFilter(RoutineKopfLines())
    for chatty in (AZURE_HTTP_LOGGER, ACCESS_LOGGER):
        logging.getLogger(chatty).setLevel(logging.DEBUG if debug else logging.WARNING)
