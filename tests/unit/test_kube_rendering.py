"""Table cells and schema causes of the in-process API, at the boundaries the recorded answers do not reach."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.crd import openapi_schema

from azsnap.emulator.kubernetes.schema import SKIPPED_RULES, skips_rules, validate_value
from azsnap.emulator.kubernetes.tables import human_duration, jsonpath_first, render_table, table_version


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-2, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (125, "2m5s"), (600, "10m"),
        (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
        (48 * 3600, "2d"), (49 * 3600, "2d1h"), (8 * 86400, "8d"), (730 * 86400, "2y"), (731 * 86400, "2y1d"),
        (8 * 365 * 86400, "8y"),
    ],
)  # fmt: skip
def test_ages_read_as_kubernetes_prints_them(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_jsonpath_filters_index_and_miss() -> None:
    obj = {"status": {"conditions": [{"type": "Reconciling", "status": "False"}, {"type": "Ready", "status": "True"}]}}
    assert jsonpath_first(obj, '.status.conditions[?(@.type=="Ready")].status') == (True, "True")
    assert jsonpath_first(obj, ".status.conditions[0].type") == (True, "Reconciling")
    assert jsonpath_first(obj, '.status.conditions[?(@.type=="Stalled")].status') == (False, None)
    assert jsonpath_first(obj, ".status.nothing") == (False, None)


def test_table_version_follows_the_accept_header() -> None:
    assert table_version("application/json;as=Table;v=v1;g=meta.k8s.io,application/json") == "v1"
    assert table_version("application/json;as=Table;g=meta.k8s.io;v=v1beta1") == "v1beta1"
    assert table_version("application/json") is None
    assert table_version("application/json, application/json;as=Table;g=meta.k8s.io;v=v1") is None


def test_cells_keep_their_json_types_and_a_column_of_the_wrong_type_is_null() -> None:
    crd = {"spec": {"versions": [{"name": "v1", "additionalPrinterColumns": [
        {"name": "N", "type": "integer", "jsonPath": ".spec.n"},
        {"name": "B", "type": "boolean", "jsonPath": ".spec.b"},
        {"name": "S", "type": "string", "jsonPath": ".spec.n"},
        {"name": "D", "type": "date", "jsonPath": ".spec.b"},
    ]}]}}  # fmt: skip
    obj: dict[str, Any] = {"metadata": {"name": "x"}, "spec": {"n": 3, "b": True}}
    table = render_table([obj], crd=crd, version="v1", table_api="v1", resource_version="1",
                         now=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    assert table["rows"][0]["cells"] == ["x", 3, True, "3", None]


def test_errors_that_skip_the_cel_rules_are_the_servers() -> None:
    spec = openapi_schema()["properties"]["spec"]
    too_long = validate_value(spec["properties"]["disk"], {"id": "x" * 301}, "spec.disk")
    assert {c.reason for c in too_long} >= {"FieldValueTooLong"} and skips_rules(too_long)
    wrong_type = validate_value(spec["properties"]["retention"], {"keepLast": "3"}, "spec.retention")
    assert [c.reason for c in wrong_type] == ["FieldValueTypeInvalid"] and skips_rules(wrong_type)
    below = validate_value(spec["properties"]["retention"], {"keepLast": 0}, "spec.retention")
    assert [c.reason for c in below] == ["FieldValueInvalid"] and not skips_rules(below)
    assert SKIPPED_RULES.field == "<nil>"
