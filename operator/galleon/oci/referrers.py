"""OCI referrers: artifacts that name an image as their `subject` (a build's
provenance, a signature, an SBOM), pushed, listed and kept next to the image.

    manifest = artifact(subject, PROVENANCE_TYPE, [(PROVENANCE_TYPE, document)])
    await push(client, "built/os", subject, manifest, [document])
    found = await listed(client, "built/os", subject.digest)

Rules of this module (OCI distribution spec 1.1):
- An artifact is an OCI image manifest with `artifactType`, the empty config
  (`{}`), its blobs as layers and the image as `subject`, written as compact JSON in
  a fixed key order: the same content gives the same digest.
- A registry that answers the referrers API (`GET /v2/<name>/referrers/<digest>`)
  is asked; one that does not (404, as distribution 2.x) is read and written
  through the fallback tag `sha256-<hex>`, an OCI index of the referrers'
  descriptors. A push adds to that index only when the registry did not say it
  indexed the subject itself (the `OCI-Subject` answer header).
- What a registry lists is untrusted: at most `MAX_REFERRERS` descriptors are
  read, each checked as any descriptor (`galleon.oci.manifest`), and only image
  manifests are returned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from galleon.oci import errors
from galleon.oci import manifest as checked
from galleon.oci.client import Manifest, RegistryClient, read_at_most, sha256_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
PROVENANCE_TYPE = "application/vnd.galleon.build.provenance.v1+json"
MAX_REFERRERS = 64
MAX_INDEX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Subject:
    """The image an artifact refers to."""

    media_type: str
    digest: str
    size: int

    def document(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Referrer:
    """A referrer as an index lists it."""

    digest: str
    size: int
    artifact_type: str
    annotations: tuple[tuple[str, str], ...] = ()

    def document(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "mediaType": OCI_MANIFEST,
            "digest": self.digest,
            "size": self.size,
            "artifactType": self.artifact_type,
        }
        if self.annotations:
            described["annotations"] = dict(self.annotations)
        return described


def fallback_tag(digest: str) -> str:
    """The tag of a subject's referrers index on a registry without the API.

    >>> fallback_tag("sha256:" + "ab" * 32)[:11]
    'sha256-abab'
    """
    algorithm, _, hexadecimal = digest.partition(":")
    return f"{algorithm}-{hexadecimal}"


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def artifact(
    subject: Subject,
    artifact_type: str,
    blobs: Sequence[tuple[str, bytes]],
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    """The artifact manifest of `blobs` (media type, bytes) about `subject`.

    >>> s = Subject(OCI_MANIFEST, "sha256:" + "0" * 64, 10)
    >>> m = artifact(s, PROVENANCE_TYPE, [(PROVENANCE_TYPE, b'{"a":1}')])
    >>> json.loads(m.data)["subject"]["digest"] == s.digest, m.media_type == OCI_MANIFEST
    (True, True)
    """
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256_digest(EMPTY), "size": len(EMPTY)},
        "layers": [
            {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}
            for media_type, data in blobs
        ],
        "subject": subject.document(),
    }
    if annotations:
        document["annotations"] = dict(sorted(annotations.items()))
    data = _compact(document)
    return Manifest(data, OCI_MANIFEST, sha256_digest(data))


async def push(
    client: RegistryClient,
    repository: str,
    subject: Subject,
    manifest: Manifest,
    blobs: Sequence[bytes],
) -> Referrer:
    """Push artifact `manifest` (with its `blobs` and the empty config) and make it a
    listed referrer of `subject`."""
    for data in (EMPTY, *blobs):
        digest = sha256_digest(data)
        if not await client.has_blob(repository, digest):
            await client.upload_blob(repository, digest, len(data), data)
    indexed = await client.put_manifest(repository, manifest.digest, manifest)
    document = json.loads(manifest.data)
    referrer = Referrer(
        manifest.digest,
        len(manifest.data),
        str(document.get("artifactType", "")),
        tuple(sorted((document.get("annotations") or {}).items())),
    )
    if indexed != subject.digest:
        await add_to_fallback(client, repository, subject.digest, [referrer])
    return referrer


def _referrers_of(data: bytes, where: str) -> list[Referrer]:
    try:
        document = json.loads(data)
    except ValueError as error:
        raise errors.ProtocolError(f"{where}: the referrers index is not JSON") from error
    if not isinstance(document, dict) or not isinstance(document.get("manifests"), list):
        raise errors.ProtocolError(f"{where}: the referrers index has no manifests list")
    found: list[Referrer] = []
    for item in document["manifests"][:MAX_REFERRERS]:
        if not isinstance(item, dict) or item.get("mediaType") != OCI_MANIFEST:
            continue  # only image manifests are artifacts galleon copies
        descriptor = checked.descriptor(item, where)
        annotations = item.get("annotations")
        pairs = (
            tuple(sorted((str(k), str(v)) for k, v in annotations.items()))
            if isinstance(annotations, dict)
            else ()
        )
        found.append(
            Referrer(descriptor.digest, descriptor.size, str(item.get("artifactType", "")), pairs)
        )
    return found


async def supports_api(client: RegistryClient, repository: str, digest: str) -> bool | None:
    """Whether the registry answers the referrers API for `digest` (None: it failed)."""
    return (await _api(client, repository, digest)) is not None


async def _api(client: RegistryClient, repository: str, digest: str) -> list[Referrer] | None:
    where = f"{client.host}/{repository}@{digest}"
    checked.check_digest(digest, where)
    try:
        response = await client.request(
            "GET",
            f"/v2/{repository}/referrers/{digest}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": OCI_INDEX},
            stream=True,
        )
    except (errors.NotFound, errors.ProtocolError):
        return None  # 404 (no API) or another refusal of the path: use the fallback tag
    try:
        if response.content_type != OCI_INDEX:
            return None
        data = await read_at_most(response, MAX_INDEX_BYTES, where, "the referrers index")
    finally:
        response.release()
    return _referrers_of(data, where)


async def listed(client: RegistryClient, repository: str, digest: str) -> list[Referrer]:
    """The referrers of `repository@digest`: from the API, else the fallback tag."""
    from_api = await _api(client, repository, digest)
    if from_api is not None:
        return from_api
    return await _fallback(client, repository, digest)


async def _fallback(client: RegistryClient, repository: str, digest: str) -> list[Referrer]:
    where = f"{client.host}/{repository}:{fallback_tag(digest)}"
    try:
        index = await client.get_manifest(repository, fallback_tag(digest))
    except errors.NotFound:
        return []
    if index.media_type != OCI_INDEX:
        return []
    return _referrers_of(index.data, where)


async def add_to_fallback(
    client: RegistryClient, repository: str, digest: str, referrers: Sequence[Referrer]
) -> None:
    """Add `referrers` to the fallback index of `digest` (kept in digest order, each once)."""
    existing = {r.digest: r for r in await _fallback(client, repository, digest)}
    wanted = {**existing, **{r.digest: r for r in referrers}}
    if wanted.keys() == existing.keys():
        return
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [wanted[d].document() for d in sorted(wanted)][:MAX_REFERRERS],
    }
    data = _compact(document)
    await client.put_manifest(
        repository, fallback_tag(digest), Manifest(data, OCI_INDEX, sha256_digest(data))
    )
