"""Replay the answers recorded from a real kube-apiserver against the in-process Kubernetes API, over HTTP.

`../shared/kube-apiserver-answers/` (beside the repository) holds one request and the real server's answer per
file. Each case is sent in the order and with the set-up the recorder used, and the in-process API must give the
same status code, `reason`, message, causes (field, type and message), Table columns and cells, Warning headers and
watch events, and the same object fields, placeholders aside. The few cases that cannot matter to azsnap are listed with the reason.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from azsnap.clock import ManualClock
from azsnap.emulator.kubernetes import KubeEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

ANSWERS: Final = Path(__file__).resolve().parents[3] / "shared" / "kube-apiserver-answers"
#: Cases that cannot matter to azsnap, with the reason.
SKIPPED: Final = {
    "watch/02-send-initial-events.json": "the real server refused only because its etcd 3.4 lacks progress "
    "requests; neither kopf nor azsnap asks for sendInitialEvents",
    "watch/04-after-etcd-compaction.json": "needs an etcd compaction made with etcdctl; the in-process store has no etcd",
    "watch/05-list-exact-after-compaction.json": "needs an etcd compaction made with etcdctl; the in-process store "
    "has no etcd",
}
#: The day the answers were recorded: Table date cells are relative to it.
RECORDED: Final = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NS: Final = "answers"
CRD_PATH: Final = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_NAME: Final = "snapshotpolicies.azsnap.io"
SP: Final = f"/apis/azsnap.io/v1alpha1/namespaces/{NS}/snapshotpolicies"
MERGE: Final = "application/merge-patch+json"
DISK: Final = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo/providers/Microsoft.Compute/disks/disk-01"
_PLACEHOLDERS: Final = {"<rv>": r"\d+", "<uid>": r".+", "<time>": r".+", "<age>": r".*", "<suffix>": r"[a-z0-9]{5}"}
_METADATA: Final = (
    "name",
    "namespace",
    "generateName",
    "labels",
    "finalizers",
    "generation",
    "deletionGracePeriodSeconds",
)


def _answer_files() -> list[str]:
    return sorted(str(p.relative_to(ANSWERS)) for p in ANSWERS.glob("*/*.json"))


@dataclass
class Answer:
    status: int
    headers: Mapping[str, Any]
    body: Any


@dataclass
class Replay:
    session: aiohttp.ClientSession
    url: str
    results: dict[str, tuple[dict[str, Any], Answer]] = field(default_factory=dict)

    async def call(
        self, method: str, path: str, body: Any = None, ctype: str | None = None, accept: str = "application/json"
    ) -> Answer:
        headers = {"Accept": accept}
        data = None
        if body is not None:
            headers["Content-Type"] = ctype or "application/json"
            data = json.dumps(body)
        async with self.session.request(method, self.url + path, data=data, headers=headers) as response:
            text = await response.text()
            if "watch=" in path:
                payload: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                payload = json.loads(text) if text else None
            return Answer(response.status, {"warning": response.headers.getall("Warning", [])}, payload)

    async def case(self, name: str, **values: str) -> Answer:
        """Send the recorded request of `name`, its `<rv>` placeholders replaced by `values['rv']`."""
        recorded = json.loads((ANSWERS / name).read_text())
        request = recorded["request"]
        path, body = request["path"], copy.deepcopy(request["body"])
        if "rv" in values:
            path = path.replace("<rv>", values["rv"])
            body = json.loads(json.dumps(body).replace('"<rv>"', json.dumps(values["rv"])))
        answer = await self.call(
            request["method"], path, body, request["headers"].get("content-type"), request["headers"].get("accept", "")
        )
        self.results[name] = (recorded["response"], answer)
        return answer

    async def rv(self, path: str) -> str:
        answer = await self.call("GET", path)
        return str(answer.body["metadata"]["resourceVersion"])


def _spec(**over: Any) -> dict[str, Any]:
    return {"disk": {"id": DISK}, "schedule": {"every": "4h"}, "retention": {"keepLast": 7}, **over}


def _policy(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "azsnap.io/v1alpha1", "kind": "SnapshotPolicy", "metadata": {"name": name, **meta},
            "spec": _spec()}  # fmt: skip


def _cond(kind: str, status: str, reason: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": f"{kind} is {status}",
            "lastTransitionTime": "2025-06-01T00:00:00Z", "observedGeneration": 1}  # fmt: skip


async def _crd_area(r: Replay) -> None:
    accepted = json.loads((ANSWERS / "crd/02-metadata-cut-accepted.json").read_text())["request"]["body"]
    await r.case("crd/01-project-crd-as-is.json")
    for name in sorted(n for n in _answer_files() if n.startswith("crd/") and "04" <= n[4:6] <= "35"):
        if (await r.case(name)).status == 201:
            await r.call("DELETE", f"{CRD_PATH}/{CRD_NAME}")
    await r.case("crd/02-metadata-cut-accepted.json")
    await r.case("crd/03-metadata-cut-established-get.json")
    await r.case("crd/36-scope-change-put.json", rv=await r.rv(f"{CRD_PATH}/{CRD_NAME}"))
    await r.case("crd/37-create-existing.json")
    assert accepted["metadata"]["name"] == CRD_NAME


async def _table_area(r: Replay) -> None:
    full = {"diskName": "disk-01", "schedule": "every 4h", "snapshotCount": 7, "nextSnapshotTime": "2099-01-01T00:00:00Z",
            "lastSnapshot": {"name": "azsnap-disk-01-20200101t0000z", "scheduledTime": "2020-01-01T00:00:00Z",
                             "createdTime": "2020-01-01T00:00:00Z", "state": "Succeeded"},
            "conditions": [_cond("Ready", "True", "Succeeded")], "observedGeneration": 1}  # fmt: skip
    partial = {"diskName": "disk-01", "schedule": "every 4h", "snapshotCount": 0,
               "conditions": [_cond("Ready", "False", "InvalidSpec")], "observedGeneration": 1}  # fmt: skip
    noready = {"diskName": "disk-01", "conditions": [_cond("Reconciling", "True", "Progressing")]}
    for name, status in (
        ("tbl-full", full),
        ("tbl-partial", partial),
        ("tbl-noready", noready),
        ("tbl-nostatus", None),
    ):
        assert (await r.call("POST", SP, _policy(name, labels={"corpus": "table"}))).status == 201
        if status:
            assert (await r.call("PATCH", f"{SP}/{name}/status", {"status": status}, MERGE)).status == 200
    for name in (n for n in _answer_files() if n.startswith("table/")):
        await r.case(name)


async def _patch_area(r: Replay) -> None:
    for name in _answer_files():
        if name.startswith("patch/") and name[6:8] <= "10":
            await r.case(name)
    assert (await r.call("POST", SP, _policy("pol-patch"))).status == 201
    stale = await r.rv(f"{SP}/pol-patch")
    await r.case("patch/11-merge-patch-spec.json")
    await r.case("patch/12-json-patch-test-rv-fails.json", rv=stale)
    await r.case("patch/13-json-patch-test-rv-passes.json", rv=await r.rv(f"{SP}/pol-patch"))
    await r.case("patch/14-strategic-merge-patch.json")
    await r.case("patch/15-put-stale-rv.json", rv=stale)
    await r.case("patch/16-merge-patch-stale-rv.json", rv=stale)
    for name in _answer_files():
        if name.startswith("patch/") and name[6:8] >= "17":
            await r.case(name)


async def _watch_area(r: Replay) -> None:
    since = await r.rv(SP)
    assert (await r.call("POST", SP, _policy("w1", labels={"corpus": "watch"}))).status == 201
    await r.call("PATCH", f"{SP}/w1", {"spec": {"suspend": True}}, MERGE)
    await r.call("PATCH", f"{SP}/w1/status", {"status": {"diskName": "disk-01"}}, MERGE)
    await r.call("DELETE", f"{SP}/w1")
    await r.call("POST", SP, _policy("w2", labels={"corpus": "watch"}))
    elsewhere = "/apis/azsnap.io/v1alpha1/namespaces/default/snapshotpolicies"
    await r.call("POST", elsewhere, _policy("elsewhere"))

    async def meanwhile() -> None:
        await asyncio.sleep(1)
        await r.call("PATCH", f"{SP}/w2", {"spec": {"suspend": True}}, MERGE)
        await asyncio.sleep(1)
        await r.call("PATCH", f"{elsewhere}/elsewhere", {"spec": {"suspend": True}}, MERGE)

    side = asyncio.create_task(meanwhile())
    await r.case("watch/01-bookmarks-from-rv.json", rv=since)
    await side
    await r.case("watch/03-too-old-rv.json")


async def _misc_area(r: Replay) -> None:
    for name in _answer_files():
        if name.startswith("misc/") and name[5:7] <= "07":
            await r.case(name)
    assert (await r.call("POST", SP, _policy("plain"))).status == 201
    for number in range(8, 13):
        await r.case(next(n for n in _answer_files() if n.startswith(f"misc/{number:02d}-")))
    target = (await r.call("POST", SP, _policy("evt"))).body
    for name in _answer_files():
        if name.startswith("misc/") and name[5:7] >= "13":
            await r.case(name, rv=target["metadata"]["resourceVersion"])


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, str) and any(p in expected for p in _PLACEHOLDERS):
        pattern = re.escape(expected)
        for placeholder, regex in _PLACEHOLDERS.items():
            pattern = pattern.replace(re.escape(placeholder), regex)
        return isinstance(actual, str) and re.fullmatch(pattern, actual, re.DOTALL) is not None
    if isinstance(expected, Mapping):
        return (
            isinstance(actual, Mapping)
            and expected.keys() == actual.keys()
            and all(_matches(expected[k], actual[k]) for k in expected)
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(_matches, expected, actual))
    return bool(expected == actual) and type(expected) is type(actual)


def _causes(body: Any) -> list[list[str]]:
    causes = ((body or {}).get("details") or {}).get("causes") or []
    return sorted([c.get("field", ""), c["reason"], c.get("message", "")] for c in causes)


def _same_message(wanted: str, got: str) -> bool:
    """The same message; one listing several causes may list them in another order (the causes are compared)."""
    if _matches(wanted, got):
        return True
    prefix = wanted.partition(": [")[0]
    return wanted.endswith("]") and got.startswith(f"{prefix}: [") and len(wanted) == len(got)


def _discovery(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A discovery document without `storageVersionHash` (a hash of the server's storage, not of the API)."""
    resources = [{k: v for k, v in res.items() if k != "storageVersionHash"} for res in doc.get("resources", [])]
    return {**doc, "resources": resources} if "resources" in doc else dict(doc)


def _differences(expected: Mapping[str, Any], actual: Answer) -> list[str]:
    """What the in-process answer gets wrong, in words (empty when it is the real server's answer)."""
    wanted = expected["body"]
    problems: list[str] = []
    if actual.status != expected["status"]:
        problems.append(f"status {actual.status}, want {expected['status']}")
    if list(actual.headers["warning"]) != list(expected["headers"].get("warning", [])):
        problems.append(f"warnings {actual.headers['warning']}, want {expected['headers'].get('warning', [])}")
    got = actual.body
    if isinstance(wanted, list):  # a watch: the events in order
        shape = [(e["type"], e["object"].get("code"), e["object"].get("reason")) for e in wanted]
        seen = [(e["type"], e["object"].get("code"), e["object"].get("reason")) for e in got or []]
        if shape != seen:
            problems.append(f"watch events {seen}, want {shape}")
        return problems
    if not isinstance(wanted, Mapping) or not isinstance(got, Mapping):
        return problems + ([] if wanted == got else [f"body {got!r}, want {wanted!r}"])
    kind = wanted.get("kind")
    if kind == "Status":
        for key in ("status", "reason", "code"):
            if got.get(key) != wanted.get(key):
                problems.append(f"{key} {got.get(key)!r}, want {wanted.get(key)!r}")
        if not _matches(_causes(wanted), _causes(got)):
            problems.append(f"causes {_causes(got)}, want {_causes(wanted)}")
        if not _same_message(str(wanted.get("message", "")), str(got.get("message", ""))):
            problems.append(f"message {got.get('message')!r}, want {wanted.get('message')!r}")
        if wanted.get("status") == "Success" and not _matches(wanted.get("details"), got.get("details")):
            problems.append(f"details {got.get('details')}, want {wanted.get('details')}")
    elif kind == "Table":
        columns = lambda table: [(c["name"], c["type"], c["format"], c["description"], c["priority"])  # noqa: E731
                                 for c in table.get("columnDefinitions", [])]  # fmt: skip
        rows = lambda table: [[r["cells"], (r.get("object") or {}).get("kind")] for r in table.get("rows", [])]  # noqa: E731
        if got.get("apiVersion") != wanted["apiVersion"] or columns(got) != columns(wanted):
            problems.append(
                f"table {got.get('apiVersion')} {columns(got)}, want {wanted['apiVersion']} {columns(wanted)}"
            )
        if not _matches(rows(wanted), rows(got)):
            problems.append(f"rows {rows(got)}, want {rows(wanted)}")
    elif kind in ("APIResourceList", "APIGroup"):
        if not _matches(_discovery(wanted), _discovery(got)):
            problems.append(f"discovery {got}, want {wanted}")
    elif kind == "CustomResourceDefinition":
        if not _matches(wanted.get("status"), got.get("status")):
            problems.append(f"CRD status {got.get('status')}, want {wanted.get('status')}")
    else:  # an object: every field but server-managed metadata, and the metadata azsnap relies on
        for key in sorted(set(wanted) | set(got)):
            if key != "metadata" and not _matches(wanted.get(key), got.get(key)):
                problems.append(f"{key} {got.get(key)!r}, want {wanted.get(key)!r}")
        meta, got_meta = wanted.get("metadata") or {}, got.get("metadata") or {}
        for key in (*_METADATA, "deletionTimestamp"):
            if not _matches(meta.get(key), got_meta.get(key)):
                problems.append(f"metadata.{key} {got_meta.get(key)!r}, want {meta.get(key)!r}")
    return problems


@asynccontextmanager
async def _replay() -> AsyncIterator[Replay]:
    async with KubeEmulator.serve(clock=ManualClock(RECORDED)) as kube, aiohttp.ClientSession() as session:
        replay = Replay(session, kube.url)
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        assert (await replay.call("POST", "/api/v1/namespaces", namespace)).status == 201
        yield replay


_MISSING: Final = "(the recorded answers are missing)"
#: The replay runs once, in the first case's test; every case then reads its own result.
_REPLAYED: dict[str, tuple[dict[str, Any], Answer]] = {}


async def _replayed() -> dict[str, tuple[dict[str, Any], Answer]]:
    if not _REPLAYED:
        async with _replay() as replay:
            for area in (_crd_area, _table_area, _patch_area, _watch_area, _misc_area):
                await area(replay)
        _REPLAYED.update(replay.results)
    return _REPLAYED


def test_the_recorded_answers_are_beside_the_repository() -> None:
    assert ANSWERS.is_dir(), f"{ANSWERS} is missing: the real kube-apiserver answers belong beside the clone"
    assert len(_answer_files()) >= 90
    assert set(SKIPPED) <= set(_answer_files())


@pytest.mark.parametrize("name", _answer_files() if ANSWERS.is_dir() else [_MISSING])
async def test_the_in_process_api_answers_as_the_real_server(name: str) -> None:
    assert ANSWERS.is_dir(), f"{ANSWERS} is missing: the real kube-apiserver answers belong beside the clone"
    if name in SKIPPED:
        pytest.skip(SKIPPED[name])
    results = await _replayed()
    assert name in results, f"{name} is neither replayed nor skipped with a reason"
    expected, actual = results[name]
    problems = _differences(expected, actual)
    assert not problems, "; ".join(problems)
