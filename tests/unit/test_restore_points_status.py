from __future__ import annotations

from azsnap.reconciler.accounting import combined_restore_points


def test_restore_points_of_several_disks_combine() -> None:
    def point(name: str, time: str) -> dict[str, str]:
        return {"name": name, "time": time}

    a = {
        "restorePoints": {
            "count": 2,
            "newest": point("a2", "2026-06-15T12:00:00Z"),
            "oldest": point("a1", "2026-06-14T12:00:00Z"),
        }
    }
    b = {
        "restorePoints": {
            "count": 1,
            "newest": point("b1", "2026-06-15T13:00:00Z"),
            "oldest": point("b1", "2026-06-15T13:00:00Z"),
        }
    }
    empty = {"restorePoints": {"count": 0, "newest": None, "oldest": None}}
    assert combined_restore_points([a, b, empty, {}]) == {
        "count": 3,
        "newest": point("b1", "2026-06-15T13:00:00Z"),
        "oldest": point("a1", "2026-06-14T12:00:00Z"),
    }
    assert combined_restore_points([empty]) == {"count": 0, "newest": None, "oldest": None}
    assert combined_restore_points([{}]) is None
