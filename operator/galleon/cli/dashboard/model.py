"""What the dashboard page shows, as one JSON-ready document computed from what the
watches hold: galleries with their image definitions and each definition's versions
on a region-by-version grid, and every ScaleSet with its rollout, instances, history,
conditions and recent events.

Rules of this module:
- Pure: `page(observed)` reads plain dicts (objects as the API server sent them) and
  returns plain dicts, lists, strings and numbers; no I/O, no clock (the page shows
  times as the cluster wrote them).
- Every string that comes from the cluster is passed through as data, never as
  markup: the page puts it into the DOM with `textContent` only.
- A field the operator has not written yet is None (the page shows a dash); nothing
  here fails on a partial or malformed status.
- Lists are bounded (`EVENTS_PER_OBJECT`, `HISTORY_ENTRIES`), so a noisy object cannot
  grow the page without end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from galleon import GROUP
from galleon.core.instances import INDEX_LABEL, SCALESET_LABEL, VERSION_LABEL
from galleon.core.versions import InvalidVersion, version_key

EVENTS_PER_OBJECT = 10
"""Recent events shown per ScaleSet (newest first)."""
HISTORY_ENTRIES = 10
"""Upgrade history entries shown per ScaleSet (the operator keeps its own bound)."""


@dataclass(frozen=True)
class Observed:
    """What the dashboard's watches hold at one moment.

    Example: `Observed(scope="namespace team-a", scalesets=(obj,), synced=True)` is a
    namespace with one ScaleSet whose watch has delivered its first list.
    """

    scope: str
    """What the dashboard watches, in words: "namespace team-a" or "all namespaces"."""
    galleries: Sequence[Mapping[str, Any]] = ()
    definitions: Sequence[Mapping[str, Any]] = ()
    versions: Sequence[Mapping[str, Any]] = ()
    scalesets: Sequence[Mapping[str, Any]] = ()
    pods: Sequence[Mapping[str, Any]] = ()
    """Pods labelled galleon.dev/scaleset (the ScaleSets' instances)."""
    events: Sequence[Mapping[str, Any]] = ()
    """Events about galleon's objects (others are dropped when they arrive)."""
    problems: Sequence[str] = field(default_factory=tuple)
    """One sentence per watch that is failing now ("watch of pods: forbidden ...")."""
    synced: bool = False
    """Every watch has delivered its first list or failed (before: the page says
    "loading")."""


def page(observed: Observed) -> dict[str, Any]:
    """The whole page as one document (sent to the browser as JSON on each change).

    >>> page(Observed(scope="namespace a", synced=True))["galleries"]
    []
    """
    events = _events_by_object(observed.events)
    return {
        "scope": observed.scope,
        "synced": observed.synced,
        "problems": list(observed.problems),
        "galleries": galleries(observed.galleries, observed.definitions, observed.versions),
        "scalesets": [
            scaleset(obj, observed.pods, events.get(_key("ScaleSet", obj), []))
            for obj in _ordered(observed.scalesets)
        ],
    }


# -- reading objects ------------------------------------------------------------------


def _section(obj: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    value = (obj or {}).get(key)
    return value if isinstance(value, Mapping) else {}


def _entries(obj: Mapping[str, Any] | None, key: str) -> list[Mapping[str, Any]]:
    value = (obj or {}).get(key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _number(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _where(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = _section(obj, "metadata")
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _key(kind: str, obj: Mapping[str, Any]) -> tuple[str, str, str]:
    return (kind, *_where(obj))


def _ordered(objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(objects, key=_where)


def _conditions(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "type": _text(c.get("type")),
            "status": _text(c.get("status")),
            "reason": _text(c.get("reason")),
            "message": _text(c.get("message")),
            "lastTransitionTime": _text(c.get("lastTransitionTime")),
        }
        for c in _entries(_section(obj, "status"), "conditions")
    ]


def _ready(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Ready condition, as the page's badge shows it."""
    return next((c for c in _conditions(obj) if c["type"] == "Ready"), None)


# -- images -----------------------------------------------------------------------------


def _newest_first(versions: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """By `spec.version`, highest first (the operator's order); unparsable last.

    >>> [v["spec"]["version"] for v in _newest_first(
    ...     [{"spec": {"version": "x"}}, {"spec": {"version": "1.0.10"}},
    ...      {"spec": {"version": "1.0.9"}}])]
    ['1.0.10', '1.0.9', 'x']
    """

    def key(obj: Mapping[str, Any]) -> tuple[bool, tuple[int, ...]]:
        try:
            return (True, version_key(str(_section(obj, "spec").get("version") or "")))
        except InvalidVersion:
            return (False, ())

    return sorted(versions, key=key, reverse=True)


def _cell(line: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "state": _text(line.get("state")) or "Unknown",
        "progress": _number(line.get("progress")),
        "replicas": f"{_number(line.get('completedReplicas'))}/"
        f"{_number(line.get('desiredReplicas'))}",
        "bytesCopied": _number(line.get("bytesCopied")),
        "bytesTotal": _number(line.get("bytesTotal")),
        "details": _text(line.get("details")),
    }


def version_row(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One ImageVersion: its row of the grid, a cell per region it targets or reports.

    >>> row = version_row({"metadata": {"name": "os-1"}, "spec": {"version": "1.0.0",
    ...     "publishingProfile": {"targetRegions": [{"name": "east"}, {"name": "west"}]}},
    ...     "status": {"replicationStatus": {"aggregatedState": "Replicating",
    ...     "summary": [{"region": "east", "state": "Completed", "progress": 100}]}}})
    >>> row["state"], row["cells"]["east"]["state"], row["cells"]["west"]["state"]
    ('Replicating', 'Completed', 'Pending')
    """
    spec, status = _section(obj, "spec"), _section(obj, "status")
    replication = _section(status, "replicationStatus")
    cells: dict[str, dict[str, Any]] = {}
    for target in _entries(_section(spec, "publishingProfile"), "targetRegions"):
        if target.get("name"):
            cells[str(target["name"])] = _cell({"state": "Pending"})
    for line in _entries(replication, "summary"):
        if line.get("region"):
            cells[str(line["region"])] = _cell(line)
    return {
        "name": _where(obj)[1],
        "version": _text(spec.get("version")),
        "state": _text(replication.get("aggregatedState")) or "Unknown",
        "completedRegions": _text(replication.get("completedRegions")),
        "ready": _ready(obj),
        "cells": cells,
    }


def definition_view(
    obj: Mapping[str, Any] | None, name: str, versions: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """One ImageDefinition (None: its versions name it but it is not there) and its
    versions, newest first, with the regions of the grid's columns in name order."""
    spec, status = _section(obj, "spec"), _section(obj, "status")
    identifier = _section(spec, "identifier")
    rows = [version_row(v) for v in _newest_first(versions)]
    return {
        "name": name,
        "found": obj is not None,
        "identifier": "/".join(
            str(identifier.get(k)) for k in ("publisher", "offer", "sku") if identifier.get(k)
        )
        or None,
        "latestVersion": _text(status.get("latestVersion")),
        "latestByRegion": [
            {"region": _text(e.get("region")), "version": _text(e.get("version"))}
            for e in _entries(status, "latestVersionByRegion")
        ],
        "ready": _ready(obj) if obj is not None else None,
        "regions": sorted({region for row in rows for region in row["cells"]}),
        "versions": rows,
    }


def galleries(
    gallery_objects: Sequence[Mapping[str, Any]],
    definitions: Sequence[Mapping[str, Any]],
    versions: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Galleries by namespace and name, each with its definitions (spec.galleryName)
    and their versions (spec.imageDefinitionName in the same namespace). A definition
    whose gallery is not there, and versions whose definition is not, still show,
    under a gallery or definition marked not found.

    >>> [g["name"] for g in galleries([], [{"metadata": {"namespace": "a", "name": "os"},
    ...     "spec": {"galleryName": "g"}}], [])]
    ['g']
    """
    by_definition: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for v in versions:
        name = _text(_section(v, "spec").get("imageDefinitionName"))
        if name:
            by_definition.setdefault((_where(v)[0], name), []).append(v)
    definition_objects = {_where(d): d for d in definitions}
    gallery_of = {
        key: str(_section(d, "spec").get("galleryName") or "")
        for key, d in definition_objects.items()
    }
    by_gallery: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for key in sorted(set(definition_objects) | set(by_definition)):
        by_gallery.setdefault((key[0], gallery_of.get(key, "")), []).append(key)
    gallery_objects_by_key = {_where(g): g for g in gallery_objects}
    result = []
    for key in sorted(set(gallery_objects_by_key) | set(by_gallery)):
        obj = gallery_objects_by_key.get(key)
        spec = _section(obj, "spec")
        result.append(
            {
                "namespace": key[0],
                "name": key[1] or None,
                "found": obj is not None,
                "location": _text(spec.get("location")),
                "description": _text(spec.get("description")),
                "ready": _ready(obj) if obj is not None else None,
                "definitions": [
                    definition_view(definition_objects.get(d), d[1], by_definition.get(d, []))
                    for d in by_gallery.get(key, [])
                ],
            }
        )
    return result


# -- ScaleSets ---------------------------------------------------------------------------


def _ready_pod(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in _entries(_section(pod, "status"), "conditions")
    )


def instance(pod: Mapping[str, Any]) -> dict[str, Any]:
    """One instance (pod) of a ScaleSet: index, version and health.

    >>> instance({"metadata": {"name": "web-3", "labels": {"galleon.dev/index": "3",
    ...     "galleon.dev/version": "1.0.2"}}, "status": {"phase": "Running",
    ...     "conditions": [{"type": "Ready", "status": "True"}]}})["health"]
    'Healthy'
    """
    meta, status = _section(pod, "metadata"), _section(pod, "status")
    labels = _section(meta, "labels")
    if meta.get("deletionTimestamp"):
        health = "Terminating"
    elif _ready_pod(pod):
        health = "Healthy"
    elif status.get("phase") == "Failed":
        health = "Failed"
    else:
        health = "NotReady"
    index = str(labels.get(INDEX_LABEL) or "")
    return {
        "name": _text(meta.get("name")),
        "index": int(index) if index.isdigit() else None,
        "version": _text(labels.get(VERSION_LABEL)),
        "health": health,
        "phase": _text(status.get("phase")),
    }


def _instances(obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    namespace, name = _where(obj)
    mine = [
        instance(p)
        for p in pods
        if _where(p)[0] == namespace
        and _section(_section(p, "metadata"), "labels").get(SCALESET_LABEL) == name
    ]
    return sorted(mine, key=lambda i: (i["index"] is None, i["index"] or 0, i["name"] or ""))


def _upgrade(upgrade: Mapping[str, Any]) -> dict[str, Any] | None:
    if not upgrade:
        return None
    running, counts = _section(upgrade, "runningStatus"), _section(upgrade, "progress")
    error, rollback = _section(upgrade, "error"), _section(upgrade, "rollbackInfo")
    return {
        "code": _text(running.get("code")),
        "fromVersion": _text(upgrade.get("fromVersion")),
        "toVersion": _text(upgrade.get("toVersion")),
        "startedBy": _text(upgrade.get("startedBy")),
        "startTime": _text(running.get("startTime")),
        "lastAction": _text(running.get("lastAction")),
        "phase": _text(upgrade.get("phase")),
        "currentBatch": _number(upgrade.get("currentBatch")),
        "totalBatches": _number(upgrade.get("totalBatches")),
        "batchInstances": [_number(i) for i in upgrade.get("batchInstances") or []],
        "successful": _number(counts.get("successfulInstanceCount")),
        "failed": _number(counts.get("failedInstanceCount")),
        "inProgress": _number(counts.get("inProgressInstanceCount")),
        "pending": _number(counts.get("pendingInstanceCount")),
        "cancelRequested": bool(upgrade.get("cancelRequested")),
        "error": (
            {"code": _text(error.get("code")), "message": _text(error.get("message"))}
            if error
            else None
        ),
        "rolledBack": _number(rollback.get("successfullyRolledbackInstanceCount")),
    }


def _history(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "fromVersion": _text(entry.get("fromVersion")),
            "toVersion": _text(entry.get("toVersion")),
            "startedBy": _text(entry.get("startedBy")),
            "startTime": _text(entry.get("startTime")),
            "endTime": _text(entry.get("endTime")),
            "result": _text(entry.get("result")),
            "successful": _number(_section(entry, "progress").get("successfulInstanceCount")),
            "failed": _number(_section(entry, "progress").get("failedInstanceCount")),
            "error": _text(_section(entry, "error").get("code")),
        }
        for entry in _entries(status, "upgradeHistory")[:HISTORY_ENTRIES]
    ]


def scaleset(
    obj: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    events: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One ScaleSet: versions, instances (each pod, and counts by version from the
    status), the rolling upgrade, history, conditions and recent events.

    >>> view = scaleset({"metadata": {"namespace": "a", "name": "web"},
    ...     "spec": {"capacity": 2}, "status": {"instancesByVersion":
    ...     [{"version": "1.0.0", "instances": 2, "healthy": 1}]}}, [])
    >>> view["capacity"], view["byVersion"][0]["notHealthy"], view["upgrade"]
    (2, 1, None)
    """
    namespace, name = _where(obj)
    meta, spec, status = _section(obj, "metadata"), _section(obj, "spec"), _section(obj, "status")
    reference = _section(spec, "imageReference")
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    return {
        "namespace": namespace,
        "name": name,
        "region": _text(spec.get("region")),
        "image": (
            f"{reference.get('imageDefinitionName') or '-'}:{reference.get('version') or '-'}"
            if reference
            else None
        ),
        "capacity": _number(spec.get("capacity")),
        "readyReplicas": _number(status.get("readyReplicas")),
        "currentVersion": _text(status.get("currentVersion")),
        "targetVersion": _text(status.get("targetVersion")),
        "waitingForReplication": _text(status.get("waitingForReplication")),
        "paused": bool(spec.get("paused")),
        "generationObserved": generation is None or observed == generation,
        "ready": _ready(obj),
        "byVersion": [
            {
                "version": _text(row.get("version")),
                "instances": _number(row.get("instances")),
                "healthy": _number(row.get("healthy")),
                "notHealthy": max(0, _number(row.get("instances")) - _number(row.get("healthy"))),
            }
            for row in _entries(status, "instancesByVersion")
        ],
        "instances": _instances(obj, pods),
        "upgrade": _upgrade(_section(status, "rollingUpgrade")),
        "history": _history(status),
        "conditions": _conditions(obj),
        "events": list(events),
    }


# -- events ------------------------------------------------------------------------------


def is_galleon_event(event: Mapping[str, Any]) -> bool:
    """An event about one of galleon's objects (the only events the dashboard keeps).

    >>> is_galleon_event({"involvedObject": {"apiVersion": "galleon.dev/v1alpha1"}})
    True
    >>> is_galleon_event({"involvedObject": {"apiVersion": "v1", "kind": "Pod"}})
    False
    """
    api_version = str(_section(event, "involvedObject").get("apiVersion") or "")
    return api_version.split("/", 1)[0] == GROUP


def _event_time(event: Mapping[str, Any]) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or _section(event, "series").get("lastObservedTime")
        or event.get("firstTimestamp")
        or _section(event, "metadata").get("creationTimestamp")
        or ""
    )


def _events_by_object(
    events: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """The newest `EVENTS_PER_OBJECT` events of each object, newest first."""
    grouped: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for event in events:
        involved = _section(event, "involvedObject")
        key = (
            str(involved.get("kind") or ""),
            str(involved.get("namespace") or _where(event)[0]),
            str(involved.get("name") or ""),
        )
        grouped.setdefault(key, []).append(event)
    return {
        key: [
            {
                "type": _text(e.get("type")),
                "reason": _text(e.get("reason")),
                "message": _text(e.get("message")),
                "time": _text(_event_time(e)),
                "count": _number(e.get("count")) or 1,
            }
            for e in sorted(found, key=_event_time, reverse=True)[:EVENTS_PER_OBJECT]
        ]
        for key, found in grouped.items()
    }
