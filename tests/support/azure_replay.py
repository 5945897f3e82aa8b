"""Replay recorded real Azure exchanges against the Azure emulator, and compare what matters in each answer.

The recordings (`../shared/azure-recorded-answers/`, one JSON file per exchange, grouped in flows) are sent in
order to a fresh emulator per flow, with only these adaptations: the emulator's base URL and api-version; poll
URLs taken from the emulator's own `Azure-AsyncOperation`/`Location` headers; the emulated clock moved by the
recorded gaps between answers; the disks, resource groups and snapshots a flow finds already there seeded from
what the recordings show of them; and the two faults Azure produced on its own (a 429, a gateway 503) armed
before the exchange that met them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Final

RECORDED: Final = Path(__file__).resolve().parents[2] / ".." / "shared" / "azure-recorded-answers"
COMPARED_HEADERS: Final = (
    "Content-Type",
    "Azure-AsyncOperation",
    "Location",
    "Retry-After",
    "x-ms-ratelimit-remaining-resource",
    "x-ms-ratelimit-remaining-subscription-reads",
    "x-ms-ratelimit-remaining-subscription-writes",
    "x-ms-ratelimit-remaining-subscription-deletes",
)
#: Fields of the api-version the emulator serves that the recorded (older) api-versions did not have.
NEWER_FIELDS: Final = frozenset({"snapshotAccessState"})
#: Query parts of Azure's signed operation URLs (2022 on): partition, ticks, and the signature parts.
SIGNED_QUERY: Final = frozenset({"p", "t", "c", "s", "h"})
_OPERATION_PATH: Final = re.compile(
    r"^/subscriptions/[^/]+/providers/Microsoft\.Compute/locations/(?P<region>[a-z0-9]+)/DiskOperations/"
    r"(?P<id>[0-9a-f-]{36})$"
)
_RESOURCE_PATH: Final = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"(?P<kind>disks|snapshots)/(?P<name>[^/]+)",
    re.I,
)
_GROUP_PATH: Final = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/", re.I)


@dataclass(frozen=True)
class Exchange:
    """One recorded request and answer."""

    name: str  # path relative to the recordings folder, e.g. `create-full/01-put.json`
    case: str
    date: datetime
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    headers: dict[str, str]
    answer: Any

    @property
    def year(self) -> int:
        return self.date.year


@dataclass
class Flow:
    """Exchanges recorded one after the other against one Azure subscription."""

    name: str
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def recorded_flow(self) -> bool:
        """False for the single error answers of `errors/` (one exchange each, not one of the 14 flows)."""
        return not self.name.endswith(".json")


def load_exchange(path: Path) -> Exchange:
    raw = json.loads(path.read_text())
    request, response = raw["request"], raw["response"]
    return Exchange(
        name=path.relative_to(RECORDED).as_posix(),
        case=raw["case"],
        date=parsedate_to_datetime(raw["source"]["date"]),
        method=request["method"],
        path=request["path"],
        query=dict(request.get("query") or {}),
        body=request.get("body"),
        status=response["status"],
        headers=dict(response.get("headers") or {}),
        answer=response.get("body"),
    )


def flows() -> list[Flow]:
    """Every flow: a folder (its `b*` files a second flow), a sub-folder of `errors/`, or one error file."""
    found: dict[str, Flow] = {}
    for path in sorted(RECORDED.rglob("*.json")):
        if path.parent == RECORDED:
            continue  # ratelimit-headers.json, ratelimit-max.json
        relative = path.relative_to(RECORDED)
        if relative.parts[0] == "errors" and len(relative.parts) == 2:
            flow = relative.as_posix()
        else:
            flow = relative.parent.as_posix() + ("/b" if path.name.startswith("b") else "")
        found.setdefault(flow, Flow(flow)).exchanges.append(load_exchange(path))
    return list(found.values())


# ---- what an answer shows ----------------------------------------------------------------------------------------


def resource_of(path: str) -> tuple[str, str, str, str] | None:
    """(subscription, resource group, kind, name) of a disk or snapshot path or ID."""
    match = _RESOURCE_PATH.match(path if path.startswith("/") else "/" + path)
    return (match["sub"], match["rg"], match["kind"].lower(), match["name"]) if match else None


def group_of(path: str) -> tuple[str, str] | None:
    """(subscription, resource group) of any path inside a resource group."""
    match = _GROUP_PATH.match(path)
    return (match["sub"], match["rg"]) if match else None


def operation_of(url_or_path: str) -> tuple[str, str] | None:
    """(region, operation id) of a DiskOperations URL or path."""
    path = re.sub(r"^https://[^/]+", "", url_or_path).split("?", 1)[0]
    match = _OPERATION_PATH.match(path)
    return (match["region"], match["id"]) if match else None


def states(answer: Any) -> tuple[str | None, str | None, str | None]:
    """(provisioningState, diskState, operation status) an answer shows (an operation's output counts)."""
    if not isinstance(answer, dict):
        return (None, None, None)
    status = answer.get("status") if isinstance(answer.get("status"), str) else None
    resource = answer
    output = (answer.get("properties") or {}).get("output") if status else None
    if isinstance(output, dict):
        resource = output
    props = resource.get("properties") if isinstance(resource.get("properties"), dict) else {}
    return (props.get("provisioningState"), props.get("diskState"), status)


def key_sets(answer: Any) -> list[tuple[str, frozenset[str]]]:
    """The key sets compared: top level and `properties`, of the answer, of each listed item, of an output."""
    if not isinstance(answer, dict):
        return [("body", frozenset({"<none>"}))]
    sets: list[tuple[str, frozenset[str]]] = []

    def add(where: str, obj: dict[str, Any]) -> None:
        sets.append((where, frozenset(obj) - NEWER_FIELDS))
        if isinstance(obj.get("properties"), dict) and where != "operation":
            sets.append((where + ".properties", frozenset(obj["properties"]) - NEWER_FIELDS))

    add("operation" if "status" in answer and "startTime" in answer else "body", answer)
    for i, item in enumerate(answer.get("value") or []):
        if isinstance(item, dict):
            add(f"value[{i}]", item)
    output = (answer.get("properties") or {}).get("output") if "status" in answer else None
    if isinstance(output, dict):
        add("output", output)
    return sets


def url_shape(url: str, year: int) -> tuple[str, str, frozenset[str]] | str:
    """An operation URL's shape: its region, whether it is the monitor URL, and its query keys."""
    found = operation_of(url)
    if found is None:
        return f"not a DiskOperations URL: {url}"
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&")) if "?" in url else {}
    keys = frozenset(query)
    if year < 2023:  # older forms: 2021 had only monitor and api-version, 2022 added p; compared without signing
        keys = frozenset(k for k in keys if k not in SIGNED_QUERY or k == "p")
    return (found[0], query.get("monitor", ""), keys)


def header_shape(name: str, value: str, year: int) -> object:
    """What is compared of a header: URL shape, policy names in order, or that a count is a whole number."""
    if name in ("Azure-AsyncOperation", "Location"):
        return url_shape(value, year)
    if name == "Content-Type":
        return value.replace(" ", "").lower()
    if name == "x-ms-ratelimit-remaining-resource":
        pairs = [part.split(";") for part in value.split(",")]
        return tuple((p[0], len(p) == 2 and p[1].isdigit()) for p in pairs)
    return value.isdigit()


def differences(recorded: Exchange, status: int, headers: dict[str, str], answer: Any) -> list[str]:
    """How the emulator's answer differs from Azure's in status, headers, body keys, states and error."""
    found: list[str] = []
    if status != recorded.status:
        found.append(f"status {status}, Azure {recorded.status}")
    lower = {k.lower(): v for k, v in headers.items()}
    for name in COMPARED_HEADERS:
        ours, theirs = lower.get(name.lower()), recorded.headers.get(name)
        if (ours is None) != (theirs is None):
            found.append(f"header {name} {'present' if ours is not None else 'absent'}, Azure the opposite")
        elif ours is not None and theirs is not None:
            mine = header_shape(name, ours, recorded.year)
            if name in ("Azure-AsyncOperation", "Location") and "p" not in _query_keys(theirs):
                mine = header_shape(name, _unsigned(ours), recorded.year)  # 2021: no partition either
            if mine != header_shape(name, theirs, recorded.year):
                found.append(f"header {name}: {ours!r}, Azure {theirs!r}")
    ours_keys, theirs_keys = dict(key_sets(answer)), dict(key_sets(recorded.answer))
    for where in sorted(ours_keys.keys() | theirs_keys.keys()):
        if ours_keys.get(where) != theirs_keys.get(where):
            extra = sorted((ours_keys.get(where) or set()) - (theirs_keys.get(where) or set()))
            missing = sorted((theirs_keys.get(where) or set()) - (ours_keys.get(where) or set()))
            found.append(f"keys of {where}: extra {extra}, missing {missing}")
    if states(answer) != states(recorded.answer):
        found.append(f"states {states(answer)}, Azure {states(recorded.answer)}")
    error, theirs_error = _error(answer), _error(recorded.answer)
    if error[0] != theirs_error[0]:
        found.append(f"error code {error[0]}, Azure {theirs_error[0]}")
    elif recorded.year >= 2023 and error[1] != theirs_error[1]:
        found.append(f"error message {error[1]!r}, Azure {theirs_error[1]!r}")
    return found


def _query_keys(url: str) -> set[str]:
    return {part.split("=", 1)[0] for part in url.split("?", 1)[1].split("&")} if "?" in url else set()


def _unsigned(url: str) -> str:
    """The URL without the partition and signed parts, to compare with the older unsigned form."""
    base, _, query = url.partition("?")
    kept = [part for part in query.split("&") if part.split("=", 1)[0] not in SIGNED_QUERY]
    return base + ("?" + "&".join(kept) if kept else "")


def _error(answer: Any) -> tuple[str | None, str | None]:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return answer["error"].get("code"), answer["error"].get("message")
    return None, None


def every_exchange() -> Iterator[Exchange]:
    for flow in flows():
        yield from flow.exchanges
