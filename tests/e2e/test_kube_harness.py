"""The Kubernetes emulator's contract, over HTTP and with a toy kopf operator running against it under looptime."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import kopf
import pytest
from tests.support.kube import SNAPSHOT_POLICY, eventually, policy_manifest

from azsnap.domain.models import API_GROUP, API_VERSION, PLURAL
from azsnap.emulator.kubernetes import KubeEmulator, run_operator

pytestmark = pytest.mark.e2e

COLLECTION = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/default/{PLURAL}"
FINALIZER = "toy.azsnap.io/finalizer"


@dataclass
class Toy:
    """A toy operator: what it saw, and the registry that holds its handlers."""

    registry: kopf.OperatorRegistry = field(default_factory=kopf.OperatorRegistry)
    created: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def toy_operator() -> Toy:
    toy = Toy()
    where: dict[str, Any] = {"group": API_GROUP, "version": API_VERSION, "plural": PLURAL, "registry": toy.registry}

    @kopf.on.startup(registry=toy.registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER

    @kopf.on.create(**where)
    def create(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        toy.created.append(body.meta["name"])
        patch.status["phase"] = "Ready"
        patch.status["observedGeneration"] = body.meta["generation"]
        kopf.event(body, type="Normal", reason="ToyCreated", message="the toy saw it")

    @kopf.on.update(**where)
    def update(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        patch.status["observedGeneration"] = body.meta["generation"]

    @kopf.on.resume(**where)
    def resume(body: kopf.Body, **_: Any) -> None:
        toy.resumed.append(body.meta["name"])

    @kopf.timer(**where, interval=3600, initial_delay=3600)
    def tick(status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
        patch.status["ticks"] = (status.get("ticks") or 0) + 1

    @kopf.on.delete(**where)
    def delete(body: kopf.Body, **_: Any) -> None:
        toy.deleted.append(body.meta["name"])

    return toy


def policy(kube: KubeEmulator, name: str = "p1") -> dict[str, Any] | None:
    return kube.get(*SNAPSHOT_POLICY, "default", name)


# ---- kopf against the emulator ----------------------------------------------------------------------------


@pytest.mark.looptime
async def test_create_runs_the_handler_patches_status_via_the_subresource_and_posts_an_event(
    kube: KubeEmulator,
) -> None:
    toy = toy_operator()
    async with run_operator(toy.registry, kube=kube, namespaces=["default"]):
        kube.apply(policy_manifest("p1", {"every": "1h"}))
        body = await eventually(lambda: (obj := policy(kube)) and obj.get("status", {}).get("phase") and obj)

    assert toy.created == ["p1"]
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"] == 1
    assert FINALIZER in body["metadata"]["finalizers"]
    status_writes = [r for r in kube.api if r.method == "PATCH" and r.subresource == "status"]
    assert status_writes, "kopf wrote the status through /status"
    assert not any("status" in (r.data or {}) for r in kube.api if r.method == "PATCH" and r.subresource is None)

    (event,) = [e for e in kube.events("default") if e["reason"] == "ToyCreated"]
    assert event["metadata"]["name"].startswith("kopf-event-")  # generateName
    assert event["involvedObject"]["name"] == "p1"
    assert event["involvedObject"]["uid"] == body["metadata"]["uid"]


@pytest.mark.looptime
async def test_generation_follows_spec_only_and_observed_generation_follows_it(kube: KubeEmulator) -> None:
    toy = toy_operator()
    async with run_operator(toy.registry, kube=kube, namespaces=["default"]):
        kube.apply(policy_manifest("p1", {"every": "1h"}))
        await eventually(lambda: (policy(kube) or {}).get("status", {}).get("observedGeneration") == 1)

        kube.patch(*SNAPSHOT_POLICY, "default", "p1", {"metadata": {"labels": {"team": "a"}}})
        kube.patch(*SNAPSHOT_POLICY, "default", "p1", {"status": {"note": "x"}}, subresource="status")
        assert (policy(kube) or {})["metadata"]["generation"] == 1

        kube.patch(*SNAPSHOT_POLICY, "default", "p1", {"spec": {"every": "2h"}})
        assert (policy(kube) or {})["metadata"]["generation"] == 2
        body = await eventually(lambda: (obj := policy(kube)) and obj["status"].get("observedGeneration") == 2 and obj)

    assert body["status"]["note"] == "x"
    assert body["metadata"]["labels"] == {"team": "a"}


@pytest.mark.looptime
async def test_delete_waits_for_the_finalizer_then_the_object_is_gone(kube: KubeEmulator) -> None:
    toy = toy_operator()
    async with run_operator(toy.registry, kube=kube, namespaces=["default"]):
        kube.apply(policy_manifest("p1", {"every": "1h"}))
        await eventually(lambda: FINALIZER in ((policy(kube) or {}).get("metadata", {}).get("finalizers") or []))

        marked = kube.delete(*SNAPSHOT_POLICY, "default", "p1")
        assert marked["metadata"]["deletionTimestamp"]
        await eventually(lambda: policy(kube) is None)

    assert toy.deleted == ["p1"]
    assert kube.list(*SNAPSHOT_POLICY) == []


@pytest.mark.looptime
async def test_a_timer_runs_through_ten_emulated_hours(kube: KubeEmulator) -> None:
    toy = toy_operator()
    loop = asyncio.get_running_loop()
    async with run_operator(toy.registry, kube=kube, namespaces=["default"]):
        kube.apply(policy_manifest("p1", {"every": "1h"}))
        started = loop.time()
        await asyncio.sleep(10 * 3600 + 60)
        ticks = (policy(kube) or {}).get("status", {}).get("ticks")

    assert loop.time() - started >= 10 * 3600
    assert ticks == 10


@pytest.mark.looptime
async def test_a_restarted_operator_resumes_existing_objects_without_creating_them_again(kube: KubeEmulator) -> None:
    toy = toy_operator()
    async with run_operator(toy.registry, kube=kube, namespaces=["default"]) as operator:
        kube.apply(policy_manifest("p1", {"every": "1h"}))
        await eventually(lambda: (policy(kube) or {}).get("status", {}).get("phase"))
        await operator.kill()
    assert toy.resumed == []
    assert operator.task.cancelled()

    kube.apply(policy_manifest("p2", {"every": "1h"}))  # created while the operator is down
    async with run_operator(toy.registry, kube=kube, namespaces=["default"]):
        await eventually(lambda: (policy(kube, "p2") or {}).get("status", {}).get("phase"))
        await eventually(lambda: "p1" in toy.resumed)

    assert toy.created == ["p1", "p2"]


# ---- the API contract over HTTP -----------------------------------------------------------------------------


async def test_create_returns_201_with_server_fields_and_ignores_status(kube: KubeEmulator) -> None:
    async with aiohttp.ClientSession(kube.url) as http:
        response = await http.post(COLLECTION, json=policy_manifest("p1", {"every": "1h"}) | {"status": {"x": 1}})
        created = await response.json()
        again = await http.post(COLLECTION, json=policy_manifest("p1"))
        nameless = await http.post(COLLECTION, json={"metadata": {"generateName": "gen-"}, "spec": {}})

    assert response.status == 201
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1 and meta["resourceVersion"]
    assert "status" not in created
    assert again.status == 409
    assert nameless.status == 201
    assert (await nameless.json())["metadata"]["name"].startswith("gen-")


async def test_json_patch_test_on_a_stale_resource_version_is_422_and_stale_merge_patch_is_409(
    kube: KubeEmulator,
) -> None:
    stale = kube.apply(policy_manifest("p1"))["metadata"]["resourceVersion"]
    kube.patch(*SNAPSHOT_POLICY, "default", "p1", {"metadata": {"labels": {"a": "b"}}})
    test_then_add = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
    ]
    url = f"{COLLECTION}/p1"
    async with aiohttp.ClientSession(kube.url) as http:
        json_patch = await http.patch(
            url, data=json.dumps(test_then_add), headers={"Content-Type": "application/json-patch+json"}
        )
        merge = await http.patch(
            url,
            data=json.dumps({"metadata": {"resourceVersion": stale, "labels": {"c": "d"}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        strategic = await http.patch(
            url, data=json.dumps({"spec": {}}), headers={"Content-Type": "application/strategic-merge-patch+json"}
        )

    assert json_patch.status == 422
    assert merge.status == 409
    assert strategic.status == 415  # as for any custom resource
    assert "finalizers" not in (policy(kube) or {})["metadata"]


async def test_status_subresource_writes_only_status(kube: KubeEmulator) -> None:
    kube.apply(policy_manifest("p1", {"every": "1h"}))
    async with aiohttp.ClientSession(kube.url) as http:
        response = await http.patch(
            f"{COLLECTION}/p1/status",
            data=json.dumps({"status": {"phase": "Ready"}, "spec": {"every": "9h"}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    assert response.status == 200
    body = policy(kube) or {}
    assert body["status"] == {"phase": "Ready"}
    assert body["spec"] == {"every": "1h"}
    assert body["metadata"]["generation"] == 1


@pytest.mark.looptime
async def test_watch_resumes_from_a_resource_version_and_too_old_ones_get_410(kube: KubeEmulator) -> None:
    since = kube.apply(policy_manifest("p1"))["metadata"]["resourceVersion"]
    kube.patch(*SNAPSHOT_POLICY, "default", "p1", {"spec": {"every": "1h"}})
    kube.delete(*SNAPSHOT_POLICY, "default", "p1")
    async with aiohttp.ClientSession(kube.url) as http:
        response = await http.get(COLLECTION, params={"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"})
        events = [json.loads(line) for line in (await response.text()).splitlines()]

    assert [event["type"] for event in events] == ["MODIFIED", "DELETED"]
    versions = [int(event["object"]["metadata"]["resourceVersion"]) for event in events]
    assert int(since) < versions[0] < versions[1]

    async with KubeEmulator.serve(events_kept=2) as small:
        first = small.apply(policy_manifest("p1"))["metadata"]["resourceVersion"]
        for n in range(3):
            small.patch(*SNAPSHOT_POLICY, "default", "p1", {"spec": {"n": n}})
        async with aiohttp.ClientSession(small.url) as http:
            response = await http.get(COLLECTION, params={"watch": "true", "resourceVersion": first})
            (gone,) = [json.loads(line) for line in (await response.text()).splitlines()]
    assert gone["type"] == "ERROR" and gone["object"]["code"] == 410


async def test_discovery_namespaces_and_selectors(kube: KubeEmulator) -> None:
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})  # none appears on use
    kube.apply(policy_manifest("p1") | {"metadata": {"name": "p1", "namespace": "team-a", "labels": {"tier": "gold"}}})
    kube.apply(policy_manifest("p2"))
    async with aiohttp.ClientSession(kube.url) as http:
        namespaces = await (await http.get("/api/v1/namespaces")).json()
        core = await (await http.get("/api/v1")).json()
        ours = await (await http.get(f"/apis/{API_GROUP}/{API_VERSION}")).json()
        gold = await (await http.get(f"/apis/{API_GROUP}/{API_VERSION}/{PLURAL}?labelSelector=tier%3Dgold")).json()
        named = await (await http.get(f"{COLLECTION}?fieldSelector=metadata.name%3Dp2")).json()

    assert {item["metadata"]["name"] for item in namespaces["items"]} == {"default", "team-a"}
    assert {"namespaces", "events", "configmaps"} <= {r["name"] for r in core["resources"]}
    assert {r["name"] for r in ours["resources"]} == {PLURAL, f"{PLURAL}/status"}
    assert [item["metadata"]["name"] for item in gold["items"]] == ["p1"]
    assert [item["metadata"]["name"] for item in named["items"]] == ["p2"]


async def test_a_name_that_is_no_dns_subdomain_is_refused(kube: KubeEmulator) -> None:
    async with aiohttp.ClientSession(kube.url) as http:
        response = await http.post(COLLECTION, json=policy_manifest("Bad_Name"))
        body = await response.json()
    assert response.status == 422
    assert [(c["field"], c["reason"]) for c in body["details"]["causes"]] == [("metadata.name", "FieldValueInvalid")]
    assert kube.get(*SNAPSHOT_POLICY, "default", "Bad_Name") is None


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"labels": {"tier": "gold plated"}}, "metadata.labels"),
        ({"labels": {"Bad Key": "x"}}, "metadata.labels"),
        ({"annotations": {"azsnap.io/" + "n" * 64: "x"}}, "metadata.annotations"),
        ({"annotations": {"Not_A.Domain/key": "x"}}, "metadata.annotations"),
        ({"annotations": {"big": "x" * (256 * 1024)}}, "metadata.annotations"),
    ],
)
async def test_labels_and_annotations_a_real_server_refuses(
    kube: KubeEmulator, metadata: dict[str, Any], field: str
) -> None:
    manifest = policy_manifest("p1")
    manifest["metadata"].update(metadata)
    async with aiohttp.ClientSession(kube.url) as http:
        response = await http.post(COLLECTION, json=manifest)
        body = await response.json()
    assert response.status == 422
    assert {c["field"] for c in body["details"]["causes"]} == {field}
    assert kube.get(*SNAPSHOT_POLICY, "default", "p1") is None
