"""The kopf indexes the controllers read instead of listing: kept current by kopf's
watches, so a pass reads Regions and ImageVersions from memory.

Rules of this module: each index holds deep copies of whole objects (a handler
may keep them past the event); handlers receive the indexes as keyword arguments
named after these functions.
"""

from __future__ import annotations

import copy
from typing import Any

import kopf

from galleon import GROUP, VERSION


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
