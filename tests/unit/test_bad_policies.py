"""Hostile and mistaken policies: refused by the CRD schema or the models, always with the field named."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.crd import ROOT, SchemaError, schema_errors

from azsnap.domain.models import SnapshotPolicySpec
from azsnap.domain.validation import FieldError, validate_manifest

CORPUS = yaml.safe_load((ROOT / "tests" / "data" / "bad_policies.yaml").read_text())
BASE: dict[str, Any] = CORPUS["base"]


def build(case: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    for path, value in (case.get("set") or {}).items():
        *parents, last = path.split(".")
        target = spec
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    for path in case.get("unset") or []:
        *parents, last = path.split(".")
        target = spec
        for part in parents:
            target = target[part]
        del target[last]
    return {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": case["case"].lower(), "namespace": "default"},
        "spec": spec,
    }


def names(error: FieldError | SchemaError, field: str) -> bool:
    """The error is about `field`: at its path, or at its parent with the field's name in the message."""
    if error.path == field:
        return True
    parent, _, leaf = field.rpartition(".")
    return error.path == parent and leaf in error.message


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["case"] for c in cases]


def test_corpus_is_wide() -> None:
    bad = CORPUS["bad"]
    assert len(bad) >= 60
    assert len(set(ids(bad))) == len(bad), "case names are unique"
    assert {c["schema"] for c in bad} == {True, False}, "both layers are exercised"


@pytest.mark.parametrize("case", CORPUS["bad"], ids=ids(CORPUS["bad"]))
def test_bad_policy_is_refused_naming_the_field(case: dict[str, Any]) -> None:
    doc = build(case)
    field = case["field"]

    spec, errors = validate_manifest(doc)
    assert spec is None
    assert errors, "the models must refuse every bad policy"
    assert any(names(e, field) for e in errors), f"no error names {field}: {errors}"
    assert all(e.path.startswith("spec") and e.message for e in errors)

    refused = schema_errors(doc)
    assert bool(refused) is case["schema"], f"schema said {refused}"
    if refused:
        assert any(names(e, field) for e in refused), f"no schema error names {field}: {refused}"


@pytest.mark.parametrize("case", CORPUS["odd"], ids=ids(CORPUS["odd"]))
def test_odd_but_valid_policy_is_accepted(case: dict[str, Any]) -> None:
    doc = build(case)
    assert schema_errors(doc) == []
    spec, errors = validate_manifest(doc)
    assert errors == []
    assert isinstance(spec, SnapshotPolicySpec)


# -- random malformed specs ---------------------------------------------------------------------------------------

#: Every field of the spec, so mutations land where the validation is.
FIELDS = [
    "disk",
    "disk.id",
    "schedule",
    "schedule.cron",
    "schedule.every",
    "schedule.timeZone",
    "schedule.startingDeadline",
    "schedule.jitter",
    "retention",
    "retention.keepLast",
    "retention.maxAge",
    "retention.hourly",
    "retention.daily",
    "retention.weekly",
    "retention.monthly",
    "retention.yearly",
    "retention.minKeep",
    "snapshot",
    "snapshot.incremental",
    "snapshot.resourceGroup",
    "snapshot.sku",
    "snapshot.tags",
    "suspend",
    "deletionPolicy",
    "unknownField",
    "schedule.unknownField",
]

near_valid_text = st.sampled_from(
    [
        "0h",
        "1h",
        "-1h",
        "59m",
        "4h",
        "5h",
        "7d",
        "366d",
        "367d",
        "1w",
        "999999w",
        " 1h",
        "1h\n",
        "0 * * * *",
        "* * * * *",
        "0 0 30 2 *",
        "@daily",
        "@DAILY",
        "@never",
        "UTC",
        "Europe/Berlin",
        "europe/berlin",
        "Mars/Base",
        "Standard_LRS",
        "standard_lrs",
        "Retain",
        "Delete",
        "rg-demo",
        "rg.",
        "azsnap-hold",
        "",
        BASE["disk"]["id"],
        BASE["disk"]["id"].upper(),
        BASE["disk"]["id"].replace("disks", "snapshots"),
    ]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, -1, 24, 100, 101, 500, 501, 2**31, 2**63, 10**30, -(10**30)]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    near_valid_text,
    st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(near_valid_text, st.text(max_size=8)), children, max_size=4),
    ),
    max_leaves=8,
)
mutations = st.lists(
    st.tuples(st.sampled_from(FIELDS), st.one_of(values, st.just("<delete>"))),
    min_size=1,
    max_size=4,
)


def mutate(changes: list[tuple[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(BASE)
    for path, value in changes:
        *parents, last = path.split(".")
        target: Any = spec
        for part in parents:
            if not isinstance(target, dict):
                break
            target = target.setdefault(part, {})
        else:
            if isinstance(target, dict):
                if value == "<delete>":
                    target.pop(last, None)
                else:
                    target[last] = value
    return {"apiVersion": "azsnap.io/v1alpha1", "kind": "SnapshotPolicy", "metadata": {"name": "p"}, "spec": spec}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=mutations)
def test_random_malformed_specs_only_ever_give_field_errors(changes: list[tuple[str, Any]]) -> None:
    doc = mutate(changes)
    spec, errors = validate_manifest(doc)
    assert (spec is None) == bool(errors)
    for error in errors:
        assert isinstance(error, FieldError)
        assert error.path.startswith("spec") and error.message
    refused = schema_errors(doc)
    if spec is not None:
        # What the operator accepts, the API server accepts too: the schema is never stricter than the models.
        assert refused == [], f"models accept but the schema refuses: {refused}"
