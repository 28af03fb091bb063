"""The extra columns of `kubectl galleon get <kind> -o wide`, one tuple per kind,
shown after the kind's own columns and before AGE (as `kubectl get -o wide` adds
columns to the right).

Rules of this module: pure functions of the object, a dash for what is not there
yet; the Ready condition's message is every kind's last wide column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text

from galleon.cli.render.imagebuild import short_digest, truncate
from galleon.cli.render.pieces import Column, dig, entries, section, text, value_at


def ready_message(obj: Mapping[str, Any]) -> Text:
    """The Ready condition's message on one line, cut to fit a row.

    >>> ready_message({"status": {"conditions": [
    ...     {"type": "Ready", "status": "False", "message": "2 of 3 regions"}]}}).plain
    '2 of 3 regions'
    >>> ready_message({}).plain
    '-'
    """
    for condition in entries(section(obj, "status"), "conditions"):
        if condition.get("type") == "Ready":
            return text(truncate(condition.get("message")) or None)
    return text(None)


def image(obj: Mapping[str, Any]) -> Text:
    """The ScaleSet's image as `[namespace/]definition:version`.

    >>> image({"spec": {"imageReference": {"imageDefinitionName": "ubuntu"}}}).plain
    'ubuntu:latest'
    """
    reference = dig(obj, "spec.imageReference") or {}
    namespace = reference.get("namespace")
    definition = reference.get("imageDefinitionName")
    if not definition:
        return text(None)
    where = f"{namespace}/" if namespace else ""
    return text(f"{where}{definition}:{reference.get('version') or 'latest'}")


def targets(obj: Mapping[str, Any]) -> Text:
    """The ImageVersion's target regions as `--target-regions` takes them.

    >>> targets({"spec": {"publishingProfile": {"replicaCount": 2, "targetRegions": [
    ...     {"name": "westus"}, {"name": "eastus2", "regionalReplicaCount": 1}]}}}).plain
    'westus=2,eastus2=1'
    """
    profile = section(section(obj, "spec"), "publishingProfile")
    default = profile.get("replicaCount") or 1
    regions = [
        f"{region.get('name')}={region.get('regionalReplicaCount') or default}"
        for region in entries(profile, "targetRegions")
    ]
    return text(",".join(regions) or None)


def _source_digest(obj: Mapping[str, Any]) -> Text:
    return text(short_digest(dig(obj, "status.sourceDigest")))


SCALESET_WIDE = (
    Column("IMAGE", image),
    Column("CAPACITY", value_at("spec.capacity")),
    Column("MODE", value_at("spec.upgradePolicy.mode")),
    Column("MESSAGE", ready_message),
)
"""`get scalesets -o wide`: ... UPGRADE IMAGE CAPACITY MODE MESSAGE AGE."""

IMAGEVERSION_WIDE = (
    Column("SOURCE", value_at("spec.source.image")),
    Column("DIGEST", _source_digest),
    Column("TARGETS", targets),
    Column("MESSAGE", ready_message),
)
"""`get imageversions -o wide`: ... REGIONS SOURCE DIGEST TARGETS MESSAGE AGE."""

IMAGEBUILD_WIDE = (
    Column("SOURCE", value_at("status.source")),
    Column("STARTED", value_at("status.startTime")),
    Column("MESSAGE", ready_message),
)
"""`get imagebuilds -o wide`: ... DIGEST SOURCE STARTED MESSAGE AGE."""
