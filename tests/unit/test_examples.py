from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.crd import ROOT, schema_errors

from azsnap.domain.models import DeletionPolicy, SnapshotPolicySpec, SnapshotSku, parse_disk_id
from azsnap.domain.validation import validate_manifest

EXAMPLES = ROOT / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))
DEMO_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEMO_DISKS = {"disk-0", "disk-1", "disk-2", "disk-3", "pv2-disk-0"}


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def spec_of(name: str) -> SnapshotPolicySpec:
    spec, errors = validate_manifest(load(EXAMPLES / name))
    assert spec is not None, errors
    return spec


def test_the_promised_examples_are_there() -> None:
    names = {p.name for p in FILES}
    assert names >= {
        "minimal-hourly.yaml",
        "cron-timezone.yaml",
        "gfs.yaml",
        "count-and-age.yaml",
        "suspended-retain.yaml",
        "pvc-name.yaml",
        "pvc-selector.yaml",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_is_valid_for_the_crd_and_the_models(path: Path) -> None:
    doc = load(path)
    assert schema_errors(doc) == []
    spec, errors = validate_manifest(doc)
    assert errors == []
    assert spec is not None
    assert doc["metadata"]["namespace"] == "default"
    if spec.disk is None:  # a claim target: its disks are known in a cluster only
        assert path.name.startswith("pvc-") and spec.snapshot.resource_group == "rg-demo"
        return
    disk = parse_disk_id(spec.disk.id)
    assert (disk.subscription_id, disk.resource_group, disk.name in DEMO_DISKS) == (DEMO_SUBSCRIPTION, "rg-demo", True)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_is_one_commented_document(path: Path) -> None:
    text = path.read_text()
    assert len(list(yaml.safe_load_all(text))) == 1
    assert text.startswith("# "), "the first lines say what the policy is for"
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) >= 3, "comments explain the choices"


def test_example_names_are_unique() -> None:
    names = [load(p)["metadata"]["name"] for p in FILES]
    assert len(names) == len(set(names))


def test_minimal_hourly() -> None:
    spec = spec_of("minimal-hourly.yaml")
    assert spec.schedule.every == timedelta(hours=1) and spec.schedule.cron is None
    assert spec.retention.keep_last == 24
    assert spec.schedule.time_zone == "UTC" and spec.schedule.starting_deadline == timedelta(hours=1)
    assert spec.snapshot.incremental and not spec.suspend and spec.deletion_policy is DeletionPolicy.RETAIN


def test_cron_with_a_time_zone() -> None:
    spec = spec_of("cron-timezone.yaml")
    assert (spec.schedule.cron, spec.schedule.time_zone) == ("30 2 * * *", "Europe/Berlin")
    assert spec.retention.daily == 14


def test_gfs() -> None:
    spec = spec_of("gfs.yaml")
    assert spec.schedule.cron == "0 * * * *"
    r = spec.retention
    assert (r.hourly, r.daily, r.weekly, r.monthly) == (24, 7, 4, 12)
    assert spec.snapshot.sku is SnapshotSku.STANDARD_ZRS


def test_count_and_age() -> None:
    spec = spec_of("count-and-age.yaml")
    assert spec.schedule.every == timedelta(hours=4)
    assert (spec.retention.keep_last, spec.retention.max_age) == (10, timedelta(days=7))


def test_suspended_and_retained() -> None:
    spec = spec_of("suspended-retain.yaml")
    assert spec.suspend is True
    assert spec.deletion_policy is DeletionPolicy.RETAIN


def test_claim_targets() -> None:
    named = spec_of("pvc-name.yaml")
    assert (named.disk, named.volume_claim, named.volume_claim_selector) == (None, "data-postgres-0", None)
    selected = spec_of("pvc-selector.yaml")
    assert selected.disk is None and selected.volume_claim is None and selected.volume_claim_selector is not None
    selector = selected.volume_claim_selector.selector
    assert selector.matches({"app": "postgres"}) and not selector.matches({"app": "postgres", "backup": "skip"})
    assert selected.schedule.jitter == timedelta(minutes=10)
