"""Whether a namespace may use an image definition, read from what the controllers
already hold: the ScaleSet controller and the image builder ask it the same way.

Rules of this module: the ImageDefinition and its Gallery come from a lookup (the
kopf indexes of `galleon.controllers.indexes`, or objects just read), never from a
request made here; the consumer's Namespace is read (one GET) only when the Gallery
selects namespaces by label. A definition of the consumer's own namespace is
always allowed and reads nothing. The verdict itself is `galleon.core.sharing`'s.
"""

from __future__ import annotations

from typing import Any, Protocol

from lightkube.resources.core_v1 import Namespace

from galleon.api.gallery import SharingProfile
from galleon.core.sharing import Sharing, needs_labels, sharing
from galleon.kube import client as kube


class SharingLookup(Protocol):
    """Where the ImageDefinition and its Gallery are read from (None: not there)."""

    def definition(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def gallery(self, namespace: str, name: str) -> dict[str, Any] | None: ...


async def read_sharing(
    consumer: str, namespace: str, definition: str, lookup: SharingLookup
) -> Sharing:
    """Whether namespace `consumer` may use ImageDefinition `namespace/definition`."""
    found = lookup.definition(namespace, definition) if namespace != consumer else None
    gallery = (
        lookup.gallery(namespace, (found.get("spec") or {}).get("galleryName", ""))
        if found is not None
        else None
    )
    labels: dict[str, str] = {}
    profile = SharingProfile.model_validate(
        ((gallery or {}).get("spec") or {}).get("sharingProfile") or {}
    )
    if gallery is not None and needs_labels(profile):
        stored = await kube.get_or_none(Namespace, consumer)
        labels = dict((stored.metadata.labels or {}) if stored and stored.metadata else {})
    return sharing(consumer, namespace, definition, found, gallery, labels)
