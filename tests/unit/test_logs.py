"""`azsnap run` logging: kopf's routine lines and the Azure SDK's HTTP lines stay out of INFO; the level is a setting."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from azsnap.logs import ACCESS_LOGGER, AZURE_HTTP_LOGGER, KOPF_OBJECTS_LOGGER, RoutineKopfLines, configure_logging
from azsnap.settings import Settings, SettingsError


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    names = (KOPF_OBJECTS_LOGGER, AZURE_HTTP_LOGGER, ACCESS_LOGGER)
    levels = {name: (logging.getLogger(name).level, list(logging.getLogger(name).filters)) for name in names}
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, (level, filters) in levels.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).filters[:] = filters


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(KOPF_OBJECTS_LOGGER, level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    "message",
    ["Timer 'tick' succeeded.", "Handler 'reconcile' succeeded.", "Creation is processed: 1 succeeded; 0 failed."],
)
def test_routine_kopf_lines_become_debug(message: str, restore_logging: None) -> None:
    logging.getLogger(KOPF_OBJECTS_LOGGER).setLevel(logging.INFO)
    record = _record(message)
    assert RoutineKopfLines().filter(record) is False, "dropped while the level is INFO"
    assert record.levelno == logging.DEBUG
    logging.getLogger(KOPF_OBJECTS_LOGGER).setLevel(logging.DEBUG)
    assert RoutineKopfLines().filter(_record(message)) is True, "kept at DEBUG"


@pytest.mark.parametrize(
    ("message", "level"),
    [
        ("Handler 'reconcile' failed temporarily: boom", logging.ERROR),
        ("Throttling is over. Switching back to normal operations.", logging.INFO),
    ],
)
def test_other_kopf_lines_pass_unchanged(message: str, level: int) -> None:
    record = _record(message, level)
    assert RoutineKopfLines().filter(record) is True
    assert record.levelno == level


def test_info_level_hides_the_sdk_http_lines(restore_logging: None) -> None:
    configure_logging("INFO", "json")
    assert logging.getLogger().level == logging.INFO
    assert not logging.getLogger(AZURE_HTTP_LOGGER).isEnabledFor(logging.INFO)
    assert logging.getLogger(AZURE_HTTP_LOGGER).isEnabledFor(logging.WARNING)
    assert not logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO), "no line per liveness probe"
    configure_logging("INFO", "json")
    assert sum(isinstance(f, RoutineKopfLines) for f in logging.getLogger(KOPF_OBJECTS_LOGGER).filters) == 1


def test_debug_level_shows_the_sdk_http_lines(restore_logging: None) -> None:
    configure_logging("DEBUG", "plain")
    assert logging.getLogger(AZURE_HTTP_LOGGER).isEnabledFor(logging.DEBUG)


def test_log_level_setting() -> None:
    assert Settings.from_env({}).log_level == "INFO"
    assert Settings.from_env({"AZSNAP_LOG_LEVEL": "WARNING"}).log_level == "WARNING"
    with pytest.raises(SettingsError, match="AZSNAP_LOG_LEVEL"):
        Settings.from_env({"AZSNAP_LOG_LEVEL": "loud"})
