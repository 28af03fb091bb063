"""lightkube resource classes for galleon's kinds, generated from `galleon.api.crd.KINDS`.

Example: `client.get(ImageVersion, "ubuntu-1-0-0", namespace="team-a")` returns a
generic resource whose `.spec`/`.status` are plain dicts (validate them with the
pydantic models in `galleon.api`).
"""

from __future__ import annotations

from typing import Any

from lightkube.core import resource as lkr
from lightkube.generic_resource import (
    Generic,
    create_global_resource,
    create_namespaced_resource,
)

from galleon import GROUP, VERSION
from galleon.api.crd import kind_named


def _resource(kind: str) -> Any:
    spec = kind_named(kind)
    if spec.scope == "Cluster":
        return create_global_resource(GROUP, VERSION, spec.kind, spec.plural)
    return create_namespaced_resource(GROUP, VERSION, spec.kind, spec.plural)


Region = _resource("Region")
Gallery = _resource("Gallery")
ImageDefinition = _resource("ImageDefinition")
ImageVersion = _resource("ImageVersion")
ScaleSet = _resource("ScaleSet")
ImageTemplate = _resource("ImageTemplate")
ImageBuild = _resource("ImageBuild")
ReplicationTask = _resource("ReplicationTask")


class PodBody(lkr.NamespacedResourceG, Generic):  # type: ignore[misc]
    """A Pod as a plain dict, on hot paths (list, watch, create): no typed model is
    built from what the apiserver sent, and none is converted back. Not registered
    with lightkube, so `codecs` still decode Pods into the typed `Pod`."""

    _api_info = lkr.ApiInfo(
        resource=lkr.ResourceDef("", "v1", "Pod"),
        plural="pods",
        verbs=["list", "watch", "global_list", "global_watch", "post"],
    )
