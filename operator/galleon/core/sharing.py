"""Whether a namespace may deploy a gallery's images (the Gallery's sharingProfile).

Rules of this module (the cloud's gallery sharing, with a namespace as the
subscription):
- A gallery's own namespace may always use its images.
- `Private`: no other namespace. `Namespaces`: those listed in `namespaces` and
  those whose labels match `namespaceSelector` (Kubernetes label-selector rules:
  every matchLabels entry and every matchExpressions requirement must hold).
  `Cluster`: every namespace (a community gallery).
- A missing ImageDefinition or Gallery in another namespace reads exactly like one
  that is not shared: a tenant learns nothing of another namespace's contents
  through the operator.
- Nothing here does I/O: the caller passes the definition and gallery (as API
  dicts, None when missing) and the consuming namespace's labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from galleon.api.gallery import NamespaceSelector, SharingProfile
from galleon.core import reasons


@dataclass(frozen=True)
class Sharing:
    """The answer for one ScaleSet's image reference."""

    allowed: bool
    reason: str
    message: str


def selector_matches(selector: NamespaceSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics.

    >>> s = NamespaceSelector.model_validate({"matchLabels": {"tier": "prod"},
    ...     "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]})
    >>> selector_matches(s, {"tier": "prod", "team": "b"}), selector_matches(s, {"tier": "prod"})
    (True, False)
    >>> selector_matches(NamespaceSelector(), {})  # the empty selector matches everything
    True
    """
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for term in selector.match_expressions:
        present = term.key in labels
        if term.operator == "In" and not (present and labels[term.key] in term.values):
            return False
        if term.operator == "NotIn" and present and labels[term.key] in term.values:
            return False
        if term.operator == "Exists" and not present:
            return False
        if term.operator == "DoesNotExist" and present:
            return False
    return True


def needs_labels(profile: SharingProfile) -> bool:
    """Whether the consuming namespace's labels can change the answer (so the caller
    reads them only then)."""
    return profile.permissions == "Namespaces" and profile.namespace_selector is not None


def profile_allows(profile: SharingProfile, namespace: str, labels: Mapping[str, str]) -> bool:
    """Whether `profile` shares with `namespace` (not the gallery's own).

    >>> p = SharingProfile.model_validate({"permissions": "Namespaces", "namespaces": ["b"]})
    >>> profile_allows(p, "b", {}), profile_allows(p, "c", {})
    (True, False)
    >>> profile_allows(SharingProfile(permissions="Cluster"), "c", {})
    True
    """
    if profile.permissions == "Cluster":
        return True
    if profile.permissions == "Private":
        return False
    if namespace in profile.namespaces:
        return True
    selector = profile.namespace_selector
    return selector is not None and selector_matches(selector, labels)


def sharing(
    consumer: str,
    definition_namespace: str,
    definition_name: str,
    definition: Mapping[str, Any] | None,
    gallery: Mapping[str, Any] | None,
    labels: Mapping[str, str],
) -> Sharing:
    """May namespace `consumer` deploy ImageDefinition `definition_namespace/definition_name`?

    >>> sharing("b", "b", "ubuntu", None, None, {}).allowed  # its own: always
    True
    >>> d = {"spec": {"galleryName": "g"}}
    >>> g = {"spec": {"sharingProfile": {"permissions": "Private"}}}
    >>> sharing("b", "a", "ubuntu", d, g, {}).message
    'ImageDefinition a/ubuntu does not exist or its gallery does not share it with namespace b'
    """
    if consumer == definition_namespace:
        return Sharing(True, reasons.SHARED, "the ScaleSet's own namespace")
    refused = Sharing(
        False,
        reasons.IMAGE_NOT_SHARED,
        f"ImageDefinition {definition_namespace}/{definition_name} does not exist or its gallery "
        f"does not share it with namespace {consumer}",
    )
    if definition is None or gallery is None:
        return refused
    profile = SharingProfile.model_validate((gallery.get("spec") or {}).get("sharingProfile") or {})
    if not profile_allows(profile, consumer, labels):
        return refused
    gallery_name = (definition.get("spec") or {}).get("galleryName", "")
    return Sharing(
        True,
        reasons.SHARED,
        f"gallery {definition_namespace}/{gallery_name} shares it with namespace {consumer} "
        f"({profile.permissions})",
    )
