"""What a build reads before it builds: the source (a gallery version or any image),
each File and Archive step's bytes, each Layer step's image.

Rules of this module:
- ImageVersions, Regions, ImageDefinitions and Galleries are read from the kopf
  indexes (`Sources`, fed by watches): choosing a source makes no request. Two reads
  are fresh: the versions a build publishes next to (`definition_versions`, a LIST:
  the next version number and the same-digest check must not miss one created a
  moment ago), and a refusal to share (`check_shared` confirms it with GETs before it
  fails a build: an index a moment behind a Gallery just shared must not end one).
- A gallery version of another namespace is read only when that namespace's Gallery
  shares its definition with the template's namespace (`galleon.core.sharing`), and
  then from a completed replica, with the Region registry's access (never with a
  Secret of either tenant). Which version "latest" is: the highest version not
  excluded from latest that has at least one completed replica.
- ConfigMaps and Secrets are read from the template's own namespace only.
- A download is used only when its sha256 matches (`galleon.oci.download`).
- Every failure is a `BuildFailed` with a reason of `galleon.core.reasons` and a
  message naming the step; a Secret's value never appears in one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import ConfigMap, Secret

from galleon.api.customize import ConfigMapKeyReference, CustomizeStep, SecretKeyReference
from galleon.api.imagetemplate import ImageVersionSource
from galleon.api.region import RegistryEndpoint, endpoints_of
from galleon.controllers.common import as_dict
from galleon.controllers.scaleset.snapshot import Sources
from galleon.controllers.sharing_check import read_sharing
from galleon.core import reasons
from galleon.core.observed import version_facts
from galleon.core.versions import LATEST, VersionFacts, latest_overall
from galleon.kube import client as kube
from galleon.kube.resources import Gallery, ImageDefinition, ImageVersion


class BuildFailed(Exception):
    """A build that cannot succeed as it stands: `reason` and a message for its status."""

    def __init__(self, reason: str, message: str, step: str | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.step = reason, message, step


@dataclass(frozen=True)
class GallerySource:
    """A gallery version chosen as a build's source, and where to read it."""

    namespace: str
    definition: str
    version: str
    name: str
    repository: str
    digest: str
    endpoint: RegistryEndpoint


def _completed_registries(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(region, registry) of every completed replica of a version."""
    summary = ((obj.get("status") or {}).get("replicationStatus") or {}).get("summary") or []
    return [
        (line.get("region", ""), replica.get("registry", ""))
        for line in summary
        for replica in line.get("replicas") or []
        if replica.get("state") == "Completed"
    ]


async def definition_versions(namespace: str, definition: str) -> list[dict[str, Any]]:
    """Every ImageVersion of `namespace/definition`, as stored now (one LIST)."""
    listed = [as_dict(v) async for v in kube.client().list(ImageVersion, namespace=namespace)]
    return [v for v in listed if (v.get("spec") or {}).get("imageDefinitionName") == definition]


async def stored_sharing(namespace: str, definition: str) -> Sources:
    """ImageDefinition `namespace/definition` and its Gallery as stored now (two GETs,
    one when the definition is missing), as a lookup `read_sharing` reads."""
    definitions: dict[Any, list[dict[str, Any]]] = {}
    galleries: dict[Any, list[dict[str, Any]]] = {}
    found = await kube.get_or_none(ImageDefinition, definition, namespace)
    if found is not None:
        stored = as_dict(found)
        definitions[(namespace, definition)] = [stored]
        gallery_name = (stored.get("spec") or {}).get("galleryName", "")
        gallery = await kube.get_or_none(Gallery, gallery_name, namespace)
        if gallery is not None:
            galleries[(namespace, gallery_name)] = [as_dict(gallery)]
    return Sources({}, {}, definitions, galleries)


async def check_shared(consumer: str, namespace: str, definition: str, lookup: Sources) -> None:
    """Refuse (ImageNotShared) unless `consumer` may use `namespace/definition`: the
    indexes answer, and a refusal is confirmed from the API server (it ends a build)."""
    verdict = await read_sharing(consumer, namespace, definition, lookup)
    if not verdict.allowed:
        # The index may be a moment behind a Gallery that was just shared.
        stored = await stored_sharing(namespace, definition)
        verdict = await read_sharing(consumer, namespace, definition, stored)
    if not verdict.allowed:
        raise BuildFailed(reasons.IMAGE_NOT_SHARED, verdict.message)


def choose_version(
    versions: Sequence[Mapping[str, Any]], requested: str
) -> Mapping[str, Any] | None:
    """The version object a source asks for: `requested` itself, or for "latest" the
    highest eligible one with a completed replica and a recorded digest."""
    usable = [
        v
        for v in versions
        if (v.get("status") or {}).get("sourceDigest")
        and _completed_registries(v)
        and not (v.get("metadata") or {}).get("deletionTimestamp")
    ]
    if requested != LATEST:
        return next((v for v in usable if (v.get("spec") or {}).get("version") == requested), None)
    facts: dict[str, VersionFacts] = {}
    by_version: dict[str, Mapping[str, Any]] = {}
    for v in usable:
        fact = version_facts(v)
        facts[fact.version] = fact
        by_version[fact.version] = v
    chosen = latest_overall(facts.values())
    return by_version.get(chosen) if chosen else None


def region_endpoints(region: Mapping[str, Any] | None) -> tuple[RegistryEndpoint, ...]:
    """The usable registries of a Region object, in its order (none: no Region).

    >>> region = {"spec": {"registries": [{"name": "a", "url": "http://10.0.0.5:5000"}]}}
    >>> [e.name for e in region_endpoints(region)], region_endpoints(None)
    (['a'], ())
    """
    if region is None:
        return ()
    usable, _ = endpoints_of(region.get("spec") or {})  # the Region reports the others
    return tuple(usable)


async def gallery_source(
    consumer: str, source: ImageVersionSource, prefer: RegistryEndpoint | None, lookup: Sources
) -> GallerySource:
    """The version a build's source names, and the registry to read it from (the
    staging registry `prefer` when it holds a replica: its layers then mount)."""
    namespace = source.namespace or consumer
    definition = source.image_definition_name
    await check_shared(consumer, namespace, definition, lookup)
    versions = lookup.definition_versions(namespace, definition)
    chosen = choose_version(versions, source.version)
    if chosen is None:
        wanted = "no version" if source.version == LATEST else f"version {source.version}"
        raise BuildFailed(
            reasons.SOURCE_NOT_FOUND,
            f"ImageDefinition {namespace}/{definition} has {wanted} with a completed replica "
            "to build from",
        )
    status = chosen.get("status") or {}
    places = _completed_registries(chosen)
    endpoints: list[RegistryEndpoint] = []
    for region in dict.fromkeys(r for r, _ in places):
        by_name = {e.name: e for e in region_endpoints(lookup.region(region))}
        endpoints.extend(by_name[reg] for r, reg in places if r == region and reg in by_name)
    if not endpoints:
        raise BuildFailed(
            reasons.SOURCE_NOT_FOUND,
            f"ImageVersion {namespace}/{chosen['metadata']['name']}: no registry of its "
            "completed replicas is usable",
        )
    endpoint = next((e for e in endpoints if prefer and e.url == prefer.url), endpoints[0])
    return GallerySource(
        namespace=namespace,
        definition=definition,
        version=str(chosen["spec"]["version"]),
        name=str(chosen["metadata"]["name"]),
        repository=str(status.get("repository", "")),
        digest=str(status["sourceDigest"]),
        endpoint=endpoint,
    )


async def latest_source_digest(
    consumer: str, source: ImageVersionSource, lookup: Sources
) -> str | None:
    """The digest the source would resolve to now (None: none, or not shared), from
    the indexes: a pass a moment behind triggers at the next one."""
    namespace = source.namespace or consumer
    definition = source.image_definition_name
    if not (await read_sharing(consumer, namespace, definition, lookup)).allowed:
        return None
    chosen = choose_version(lookup.definition_versions(namespace, definition), source.version)
    return None if chosen is None else str((chosen.get("status") or {}).get("sourceDigest"))


def _decoded(value: str, where: str, step: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BuildFailed(reasons.INPUT_NOT_FOUND, f"{where} is not base64", step) from error


async def config_map_bytes(ref: ConfigMapKeyReference, namespace: str, step: str) -> bytes:
    where = f"ConfigMap {namespace}/{ref.name}"
    try:
        found = await kube.get_or_none(ConfigMap, ref.name, namespace)
    except ApiError as error:
        raise BuildFailed(
            reasons.INPUT_NOT_FOUND, f"step {step}: {where} cannot be read ({error.status.code})"
        ) from error
    if found is None:
        raise BuildFailed(reasons.INPUT_NOT_FOUND, f"step {step}: {where} not found", step)
    if found.data and ref.key in found.data:
        return str(found.data[ref.key]).encode()
    if found.binaryData and ref.key in found.binaryData:
        return _decoded(found.binaryData[ref.key], f"step {step}: {where} key {ref.key}", step)
    raise BuildFailed(reasons.INPUT_NOT_FOUND, f"step {step}: {where} has no key {ref.key}", step)


async def secret_bytes(ref: SecretKeyReference, namespace: str, step: str) -> bytes:
    where = f"Secret {namespace}/{ref.name}"
    try:
        found = await kube.get_or_none(Secret, ref.name, namespace)
    except ApiError as error:
        raise BuildFailed(
            reasons.INPUT_NOT_FOUND, f"step {step}: {where} cannot be read ({error.status.code})"
        ) from error
    if found is None:
        raise BuildFailed(reasons.INPUT_NOT_FOUND, f"step {step}: {where} not found", step)
    if not found.data or ref.key not in found.data:
        raise BuildFailed(
            reasons.INPUT_NOT_FOUND, f"step {step}: {where} has no key {ref.key}", step
        )
    return _decoded(found.data[ref.key], f"step {step}: {where} key {ref.key}", step)


def step_reference(step: CustomizeStep) -> tuple[str, Any] | None:
    """("configMap" | "secret" | "url" | "inline", reference) of a File or Archive step."""
    if step.file is not None:
        content = step.file.content
        if content.inline is not None:
            return "inline", content.inline
        if content.config_map_key_ref is not None:
            return "configMap", content.config_map_key_ref
        if content.secret_key_ref is not None:
            return "secret", content.secret_key_ref
        return "url", content.url
    if step.archive is not None:
        archive = step.archive.source
        if archive.config_map_key_ref is not None:
            return "configMap", archive.config_map_key_ref
        if archive.secret_key_ref is not None:
            return "secret", archive.secret_key_ref
        return "url", archive.url
    return None
