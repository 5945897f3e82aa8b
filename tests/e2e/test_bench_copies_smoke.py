"""The copy benchmark, small: every snapshot of the counted hours copied or counted, the figures it prints."""

from __future__ import annotations

import looptime
import pytest
from bench import copies

pytestmark = pytest.mark.e2e


def test_a_small_run_copies_every_counted_snapshot() -> None:
    loop = looptime.new_event_loop(start=0)
    try:
        figures = loop.run_until_complete(copies.run(5, 2, 30, 20.0, 1))
    finally:
        loop.close()
    assert figures["snapshots_counted"] == 10
    assert (figures["copies_complete"], figures["copies_missed"], figures["copies_unaccounted"]) == (10, 0, 0)
    assert figures["throttled_429"] == figures["refused_409"] == figures["violations"] == 0
    assert 5 * 60 < figures["copy_lag_true_p50_s"] <= figures["copy_lag_seen_p50_s"] < 15 * 60
    assert 1 <= figures["most_copies_running_at_once"] <= 5
