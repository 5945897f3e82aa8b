"""Every emulator answer azsnap relies on validates against the official Disk RP description; its examples are accepted."""

from __future__ import annotations

import copy
import json
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from azsnap.clock import ManualClock
from azsnap.emulator import API_VERSION, BucketSize, Emulator, EmulatorConfig, FaultRule

pytestmark = pytest.mark.e2e

SPEC = Path(__file__).resolve().parents[2] / ".." / "shared" / "azure-compute-spec" / API_VERSION
if not (SPEC / "DiskRP.json").is_file():
    pytest.skip(
        f"the official API description is not beside the repository ({SPEC.resolve()} is missing)",
        allow_module_level=True,
    )

SUB = "11111111-2222-3333-4444-555555555555"
RG = "myResourceGroup"
BASE = "https://spec.invalid/"
#: DiskRP.json points outside its folder; the README maps these paths to the copies beside it.
EXTERNAL = {
    "../../common-types/v1/common.json#": "common.json#",
    "../../../../../../common-types/resource-management/v3/types.json#": "types.json#",
}
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _load(name: str) -> dict[str, Any]:
    text = (SPEC / name).read_text()
    for external, local in EXTERNAL.items():
        text = text.replace(external, local)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _registry() -> Registry:
    resources = [
        (BASE + name, Resource.from_contents(_load(name), DRAFT4))
        for name in ("DiskRP.json", "common.json", "types.json")
    ]
    return Registry().with_resources(resources)


REGISTRY = _registry()


def validator(ref: str) -> Draft4Validator:
    """A validator for `file#/definitions/Name`, resolving every $ref through the registry."""
    return Draft4Validator({"$ref": BASE + ref}, registry=REGISTRY)


def _resolve(schema: dict[str, Any], base: str) -> tuple[dict[str, Any], str]:
    while "$ref" in schema:
        target: str = schema["$ref"]
        if target.startswith("#"):
            uri = base.split("#")[0] + target
        elif target.startswith("https://"):
            uri = target
        else:  # every file sits in one folder
            uri = BASE + target
        schema, base = REGISTRY.resolver().lookup(uri).contents, uri
    return schema, base


def declared(schema: dict[str, Any], base: str) -> dict[str, tuple[dict[str, Any], str]]:
    """The properties an object schema declares, allOf parents included."""
    schema, base = _resolve(schema, base)
    found = {name: (sub, base) for name, sub in schema.get("properties", {}).items()}
    for parent in schema.get("allOf", []):
        found.update(declared(parent, base))
    return found


def undeclared(value: Any, schema: dict[str, Any], base: str, path: str = "") -> list[str]:
    """Fields the emulator sends that the description does not declare (jsonschema alone allows extras)."""
    schema, base = _resolve(schema, base)
    problems: list[str] = []
    if isinstance(value, dict) and (schema.get("properties") or schema.get("allOf")):
        props = declared(schema, base)
        for key, item in value.items():
            if key not in props:
                problems.append(f"{path}/{key}")
            else:
                problems += undeclared(item, *props[key], f"{path}/{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += undeclared(item, schema["items"], base, f"{path}/{i}")
    return problems


def conforms(body: Any, definition: str, *, strict: bool = True) -> None:
    ref = f"DiskRP.json#/definitions/{definition}" if "#" not in definition else definition
    errors = sorted(validator(ref).iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    if strict:
        assert undeclared(body, {"$ref": ref}, BASE + "DiskRP.json") == []


class Raw:
    """A bare HTTPS client: the emulator's JSON exactly as sent."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def call(self, method: str, path: str, body: Any = None, **query: str) -> tuple[int, Any, dict[str, str]]:
        url = path if path.startswith("https://") else self.base_url + path
        params = {} if "api-version=" in url else {"api-version": API_VERSION, **query}
        async with self.session.request(
            method, url, params=params, json=body, headers={"Authorization": "Bearer t"}
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None, dict(response.headers)


@pytest.fixture
async def env() -> AsyncIterator[tuple[Emulator, ManualClock, Raw]]:
    clock = ManualClock(START)
    buckets = {"Microsoft.Compute/HighCostGet3Min": BucketSize(5, timedelta(minutes=3))}
    emu = Emulator(clock, EmulatorConfig(page_size=2, buckets=buckets, lro_duration=timedelta(seconds=2)))
    async with emu.serve() as server:
        ssl_context = ssl.create_default_context(cafile=server.ca_bundle)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context)) as session:
            yield emu, clock, Raw(session, server.base_url)


def rid(kind: str, name: str, rg: str = RG) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}"


def snapshot_body(disk_id: str, location: str = "westus", **props: Any) -> dict[str, Any]:
    return {
        "location": location,
        "tags": {"managed-by": "azsnap"},
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
            "incremental": True,
            **props,
        },
    }


def test_the_validator_accepts_the_official_examples() -> None:
    # Snapshot_GetIncrementalSnapshot.json is left out: it sends "0" for two `modelAsString` enums, which
    # AutoRest treats as open; this validator holds the emulator to the listed values.
    for name, definition in [
        ("snapshotExamples/Snapshot_Get.json", "Snapshot"),
        ("snapshotExamples/Snapshot_ListByResourceGroup.json", "SnapshotList"),
        ("snapshotExamples/Snapshot_ListBySubscription.json", "SnapshotList"),
        ("diskExamples/Disk_Get.json", "Disk"),
    ]:
        example = json.loads((SPEC / "examples" / name).read_text())
        conforms(example["responses"]["200"]["body"], definition)


def test_the_validator_catches_undeclared_fields_and_wrong_values() -> None:
    example = json.loads((SPEC / "examples" / "snapshotExamples" / "Snapshot_Get.json").read_text())
    body = example["responses"]["200"]["body"]
    extra = {**body, "properties": {**body["properties"], "copyPercent": 5}}
    with pytest.raises(AssertionError, match="copyPercent"):
        conforms(extra, "Snapshot")
    wrong = {**body, "sku": {"name": "PremiumV2_LRS"}}
    with pytest.raises(AssertionError, match="PremiumV2_LRS"):
        conforms(wrong, "Snapshot")


async def test_snapshot_disk_and_operation_answers_conform(env: tuple[Emulator, ManualClock, Raw]) -> None:
    emu, clock, raw = env
    disk = emu.seed_disk(SUB, RG, "myDisk", location="westus")
    pv2 = emu.seed_disk(SUB, RG, "myPv2Disk", location="westus", sku="PremiumV2_LRS")

    status, body, headers = await raw.call("GET", rid("disks", "myDisk"))
    assert status == 200
    conforms(body, "Disk")

    status, put, headers = await raw.call("PUT", rid("snapshots", "snap-1"), snapshot_body(disk["id"]))
    assert status == 202 and put["properties"]["provisioningState"] == "Updating"
    conforms(put, "Snapshot")
    status, operation, _ = await raw.call("GET", headers["Azure-AsyncOperation"])
    assert status == 200 and operation["status"] == "InProgress"
    conforms(operation, "types.json#/definitions/OperationStatusResult", strict=False)
    status, _, _ = await raw.call("GET", headers["Location"])
    assert status == 202

    clock.advance(timedelta(seconds=2))
    status, operation, _ = await raw.call("GET", headers["Azure-AsyncOperation"])
    assert operation["status"] == "Succeeded"
    conforms(operation, "types.json#/definitions/OperationStatusResult", strict=False)
    status, final, _ = await raw.call("GET", headers["Location"])
    assert status == 200
    conforms(final, "Snapshot")

    await raw.call("PUT", rid("snapshots", "pv2-1"), snapshot_body(pv2["id"]))
    for name in ("snap-2", "snap-3"):
        await raw.call("PUT", rid("snapshots", name), snapshot_body(disk["id"]))
    clock.advance(timedelta(seconds=2))
    status, got, _ = await raw.call("GET", rid("snapshots", "pv2-1"))
    assert got["properties"]["completionPercent"] < 100
    conforms(got, "Snapshot")

    status, page, _ = await raw.call(
        "GET", f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/snapshots"
    )
    assert (
        status == 200 and page["nextLink"].startswith("https://") and f"api-version={API_VERSION}" in page["nextLink"]
    )
    conforms(page, "SnapshotList")
    status, last, _ = await raw.call("GET", page["nextLink"])
    assert status == 200 and "nextLink" not in last
    conforms(last, "SnapshotList")
    status, every, _ = await raw.call("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/snapshots")
    conforms(every, "SnapshotList")
    status, disks, _ = await raw.call(
        "GET", f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/disks"
    )
    conforms(disks, "DiskList")

    status, _, headers = await raw.call("DELETE", rid("snapshots", "snap-1"))
    assert status == 202
    clock.advance(timedelta(seconds=2))
    status, operation, _ = await raw.call("GET", headers["Azure-AsyncOperation"])
    assert operation["status"] == "Succeeded"
    conforms(operation, "types.json#/definitions/OperationStatusResult")


async def test_error_answers_conform_to_cloud_error(env: tuple[Emulator, ManualClock, Raw]) -> None:
    emu, clock, raw = env
    disk = emu.seed_disk(SUB, RG, "myDisk", location="westus")
    cloud_error = "common.json#/definitions/CloudError"
    answers = [
        await raw.call("GET", rid("snapshots", "missing")),
        await raw.call("GET", rid("snapshots", "x", rg="no-such-group")),
        await raw.call("PUT", rid("snapshots", "-bad-"), snapshot_body(disk["id"])),
        await raw.call("PUT", rid("snapshots", "no-location"), {"properties": {}}),
    ]
    for i in range(8):
        answers.append(await raw.call("PUT", rid("snapshots", f"s{i}"), snapshot_body(disk["id"])))
    emu.add_fault(FaultRule(operation="disks.get", kind="503", count=1))
    answers.append(await raw.call("GET", rid("disks", "myDisk")))
    for _ in range(6):
        answers.append(await raw.call("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/snapshots"))
    emu.add_fault(FaultRule(operation="snapshots.put", kind="lro_failed", count=1))
    clock.advance(timedelta(minutes=10))
    _, _, headers = await raw.call("PUT", rid("snapshots", "doomed"), snapshot_body(disk["id"]))
    clock.advance(timedelta(seconds=3))
    _, failed_operation, _ = await raw.call("GET", headers["Azure-AsyncOperation"])

    errors = [(status, body) for status, body, _ in answers if status >= 400]
    codes = sorted({body["error"]["code"] for _, body in errors})
    assert codes == [
        "InvalidResourceName",
        "LocationRequired",
        "OperationNotAllowed",
        "ResourceGroupNotFound",
        "ResourceNotFound",
        "ServerTimeout",
    ]
    assert {status for status, _ in errors} == {400, 404, 409, 429, 503}
    for _, body in errors:
        conforms(body, cloud_error)
    assert failed_operation["status"] == "Failed" and failed_operation["error"]["code"] == "InternalOperationError"
    conforms(failed_operation, "types.json#/definitions/OperationStatusResult")


@pytest.mark.parametrize(
    "example", sorted(p.name for p in (SPEC / "examples" / "snapshotExamples").glob("Snapshot_Create_*.json"))
)
async def test_official_create_examples_are_accepted(env: tuple[Emulator, ManualClock, Raw], example: str) -> None:
    emu, clock, raw = env
    spec = json.loads((SPEC / "examples" / "snapshotExamples" / example).read_text())
    params = spec["parameters"]
    body = json.loads(json.dumps(params["snapshot"]).replace("{subscription-id}", SUB))
    rg = params["resourceGroupName"]
    location = body["location"]
    source = body["properties"]["creationData"]["sourceResourceId"]
    kind, source_name = source.split("/")[-2:]
    disk = emu.seed_disk(SUB, rg, "sourceDisk" if kind == "snapshots" else source_name, location=location)
    if kind == "snapshots":  # the example copies a snapshot: make that snapshot first
        status, _, _ = await raw.call("PUT", rid("snapshots", source_name, rg), snapshot_body(disk["id"], location))
        assert status == 202
        clock.advance(timedelta(seconds=2))

    status, answer, headers = await raw.call("PUT", rid("snapshots", params["snapshotName"], rg), copy.deepcopy(body))

    assert str(status) in spec["responses"] and status in (200, 202)
    conforms(answer, "Snapshot")
    assert answer["properties"]["creationData"]["createOption"] == body["properties"]["creationData"]["createOption"]
    assert answer["properties"]["creationData"]["sourceResourceId"] == source
    clock.advance(timedelta(seconds=2))
    _, operation, _ = await raw.call("GET", headers["Azure-AsyncOperation"])
    assert operation["status"] == "Succeeded"
    _, final, _ = await raw.call("GET", rid("snapshots", params["snapshotName"], rg))
    assert final["properties"]["provisioningState"] == "Succeeded"
    conforms(final, "Snapshot")
