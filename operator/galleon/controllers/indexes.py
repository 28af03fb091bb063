"""The kopf indexes the controllers read instead of listing: kept current by kopf's
watches, so a pass reads Regions and ImageVersions from memory.

Rules of this module: each index holds deep copies of whole objects (a handler
may keep them past the event); handlers receive the indexes as keyword arguments
named after these functions.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kopf

from galleon import GROUP, VERSION


def first(index: Mapping[Any, Any], key: Any) -> dict[str, Any] | None:
    """The one object an index holds under `key` (None: nothing there).

    >>> first({"east": [{"metadata": {"name": "east"}}]}, "east")
    {'metadata': {'name': 'east'}}
    >>> first({}, "west") is None
    True
    """
    found = next(iter(index.get(key, ())), None)
    return dict(found) if found is not None else None


@kopf.index(GROUP, VERSION, "imageversions")
def image_versions_by_definition(namespace: Any, body: Any, **_: Any) -> dict[Any, Any]:
    """ImageVersions by (namespace, image definition name)."""
    snapshot = copy.deepcopy(dict(body))
    definition = (snapshot.get("spec") or {}).get("imageDefinitionName")
    return {(namespace, definition): snapshot}


@kopf.index(GROUP, VERSION, "regions")
def regions_by_name(name: str, body: Any, **_: Any) -> dict[Any, Any]:
    """Regions by name (cluster-scoped)."""
    return {name: copy.deepcopy(dict(body))}


@kopf.index(GROUP, VERSION, "imagedefinitions")
def definitions_by_name(namespace: Any, name: str, body: Any, **_: Any) -> dict[Any, Any]:
    """ImageDefinitions by (namespace, name)."""
    return {(namespace, name): copy.deepcopy(dict(body))}


@kopf.index(GROUP, VERSION, "galleries")
def galleries_by_name(namespace: Any, name: str, body: Any, **_: Any) -> dict[Any, Any]:
    """Galleries by (namespace, name)."""
    return {(namespace, name): copy.deepcopy(dict(body))}


@kopf.index(GROUP, VERSION, "scalesets")
def scalesets_by_definition(
    namespace: Any, name: str, spec: Any, status: Any, **_: Any
) -> dict[Any, Any]:
    """ScaleSets by the (namespace, name) of the ImageDefinition they follow, with the
    versions they run or move to: who uses an image, across namespaces, without a list."""
    reference = spec.get("imageReference") or {}
    source = (reference.get("namespace") or namespace, reference.get("imageDefinitionName"))
    return {
        source: {
            "namespace": namespace,
            "name": name,
            "versions": versions_in_use(status),
            "release": release_facts(spec, status),
        }
    }


def release_facts(spec: Any, status: Any) -> dict[str, Any]:
    """What the release waves and quarantine read of a ScaleSet (`galleon.core.waves.Member`).

    >>> facts = release_facts({"region": "eastus2", "capacity": 2,
    ...     "imageReference": {"version": "latest"}},
    ...     {"currentVersion": "1.0.1", "rollingUpgrade": {"fromVersion": "1.0.0",
    ...      "toVersion": "1.0.1", "runningStatus": {"code": "Completed"}}})
    >>> facts["region"], facts["followsLatest"], facts["upgradeCode"]
    ('eastus2', True, 'Completed')
    """
    spec, status = spec or {}, status or {}
    upgrade = status.get("rollingUpgrade") or {}
    running = upgrade.get("runningStatus") or {}
    return {
        "region": spec.get("region"),
        "followsLatest": (spec.get("imageReference") or {}).get("version") == "latest",
        "capacity": spec.get("capacity") or 0,
        "currentVersion": status.get("currentVersion"),
        "healthy": tuple(
            (v.get("version"), v.get("healthy") or 0)
            for v in status.get("instancesByVersion") or []
        ),
        "upgradeFrom": upgrade.get("fromVersion"),
        "upgradeTo": upgrade.get("toVersion"),
        "upgradeCode": running.get("code"),
        "upgradeSince": upgrade.get("phaseSince"),
        "upgradeMessage": (upgrade.get("error") or {}).get("message") or "",
    }


def versions_in_use(status: Any) -> tuple[str, ...]:
    """The versions a ScaleSet's status says it runs or moves to.

    >>> versions_in_use({"currentVersion": "1.0.0", "targetVersion": "1.0.1",
    ...     "instancesByVersion": [{"version": "0.9.0", "instances": 1}]})
    ('0.9.0', '1.0.0', '1.0.1')
    """
    status = status or {}
    found = {status.get("currentVersion"), status.get("targetVersion")}
    found |= {
        v.get("version") for v in status.get("instancesByVersion") or [] if v.get("instances")
    }
    return tuple(sorted(v for v in found if v))
