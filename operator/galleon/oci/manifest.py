"""What a registry's manifest must be before galleon believes a word of it.

A registry is not trusted: what it serves decides what galleon copies, and what
galleon writes to an ImageVersion's status (digest, media type, size), which the API
server refuses when out of range. So every manifest is checked once, where it is
read (`RegistryClient.get_manifest`), and anything else is a permanent
`ProtocolError` that names what is wrong: retrying cannot change what the registry
holds.

Rules of this module (the OCI image and distribution specs, and galleon's limits):
- A manifest is at most `MAX_MANIFEST_BYTES` of JSON, an object with
  `schemaVersion` 2 and a media type galleon copies (`MANIFEST_TYPES`).
- An image manifest has a `config` descriptor and a `layers` list; an index has a
  `manifests` list; any of the three present in either kind is checked too.
- A descriptor is an object with a `digest` of the `sha256:<64 hex>` grammar (the
  only algorithm galleon verifies as it copies) and a `size` that is an integer from
  0 to `MAX_SIZE` (OCI's int64).
- The bytes of a whole image (its blobs, those of every child of an index) are at
  most `MAX_SIZE` too: the total is what status.sizeBytes records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from galleon.oci import errors

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[1], MANIFEST_TYPES[3]
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""The OCI distribution spec's manifest size a registry should accept (4 MiB), and
the distribution registry's own limit."""
MAX_SIZE = 2**63 - 1
"""Largest size of a blob or of a whole image: OCI descriptors' sizes are int64, and
so are Kubernetes integers."""
MAX_DESCRIPTORS = 10000
"""Most descriptors galleon reads from one manifest (about 1.6 MB of JSON at the
smallest: far more layers or children than any image has)."""
DIGEST_PATTERN = re.compile(r"sha256:[a-f0-9]{64}")


@dataclass(frozen=True)
class Descriptor:
    """A checked descriptor: a blob or child manifest, by digest and size."""

    digest: str
    size: int


@dataclass(frozen=True)
class Document:
    """A checked manifest or index."""

    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    """Children of an index (empty for an image manifest)."""

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """The config and the layers (what an image manifest's copy streams)."""
        return ((self.config,) if self.config else ()) + self.layers

    @property
    def blob_bytes(self) -> int:
        return sum(blob.size for blob in self.blobs)


def check_digest(digest: object, where: str) -> str:
    """`digest` if it is a sha256 digest, else a ProtocolError saying why.

    >>> check_digest("sha256:" + "a" * 64, "x")[:10]
    'sha256:aaa'
    >>> check_digest("sha512:" + "a" * 128, "reg:5000/os")
    Traceback (most recent call last):
    ...
    galleon.oci.errors.ProtocolError: reg:5000/os: digest 'sha512:aaaa...' is not sha256:...
    """
    if not isinstance(digest, str) or not DIGEST_PATTERN.fullmatch(digest):
        raise errors.ProtocolError(
            f"{where}: digest {_shown(digest)} is not sha256:<64 hex> (the only digest "
            "algorithm galleon verifies)"
        )
    return digest


def media_type_of(header: str, document: Mapping[str, Any], where: str) -> str:
    """The manifest's media type: the Content-Type the registry sent, else the one the
    document names; a ProtocolError when neither is one galleon copies.

    >>> media_type_of("", {"mediaType": MANIFEST_TYPES[0]}, "x") == MANIFEST_TYPES[0]
    True
    """
    for candidate in (header, document.get("mediaType")):
        if isinstance(candidate, str) and candidate in MANIFEST_TYPES:
            return candidate
    raise errors.ProtocolError(
        f"{where}: manifest media type {_shown(header or document.get('mediaType'))} is not "
        f"one galleon copies ({', '.join(MANIFEST_TYPES)})"
    )


def parse(data: bytes, header_media_type: str, where: str) -> Document:
    """The manifest `data` (served with Content-Type `header_media_type`), checked by
    the module's rules; `where` (host/repository:reference) starts every message.

    >>> parse(b"<html>", "text/html", "reg:5000/os:1")
    Traceback (most recent call last):
    ...
    galleon.oci.errors.ProtocolError: reg:5000/os:1: the manifest is not JSON ...
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise errors.ProtocolError(
            f"{where}: the manifest is {len(data)} bytes, more than {MAX_MANIFEST_BYTES}"
        )
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise errors.ProtocolError(f"{where}: the manifest is not JSON ({error})") from None
    if not isinstance(document, dict):
        raise errors.ProtocolError(
            f"{where}: the manifest is a JSON {type(document).__name__}, not an object"
        )
    if document.get("schemaVersion") != 2 or isinstance(document.get("schemaVersion"), bool):
        raise errors.ProtocolError(
            f"{where}: schemaVersion is {_shown(document.get('schemaVersion'))}, not 2"
        )
    media_type = media_type_of(header_media_type, document, where)
    index = media_type in INDEX_TYPES
    required = ("manifests",) if index else ("config", "layers")
    for key in required:
        if key not in document:
            kind = "an index" if index else "an image manifest"
            raise errors.ProtocolError(f"{where}: {kind} without {key!r}")
    config = document.get("config")
    parsed = Document(
        media_type=media_type,
        config=None if config is None else descriptor(config, f"{where}: config"),
        layers=descriptors(document.get("layers"), f"{where}: layers"),
        manifests=descriptors(document.get("manifests"), f"{where}: manifests"),
    )
    if parsed.blob_bytes > MAX_SIZE:
        raise errors.ProtocolError(
            f"{where}: its blobs add up to {parsed.blob_bytes} bytes, more than {MAX_SIZE}"
        )
    return parsed


def descriptors(value: object, where: str) -> tuple[Descriptor, ...]:
    """The checked descriptors of a `layers` or `manifests` list (empty when absent)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise errors.ProtocolError(f"{where} is a JSON {type(value).__name__}, not a list")
    if len(value) > MAX_DESCRIPTORS:
        raise errors.ProtocolError(f"{where}: {len(value)} entries, more than {MAX_DESCRIPTORS}")
    return tuple(descriptor(item, f"{where}[{i}]") for i, item in enumerate(value))


def descriptor(value: object, where: str) -> Descriptor:
    """One checked descriptor.

    >>> descriptor({"digest": "sha256:" + "0" * 64, "size": -1}, "layers[0]")
    Traceback (most recent call last):
    ...
    galleon.oci.errors.ProtocolError: layers[0]: size -1 is not an integer from 0 to ...
    """
    if not isinstance(value, dict):
        raise errors.ProtocolError(f"{where} is a JSON {type(value).__name__}, not an object")
    if "digest" not in value or "size" not in value:
        missing = [key for key in ("digest", "size") if key not in value]
        raise errors.ProtocolError(f"{where}: descriptor without {' or '.join(missing)}")
    size = value["size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise errors.ProtocolError(
            f"{where}: size {_shown(size)} is not an integer from 0 to {MAX_SIZE}"
        )
    return Descriptor(check_digest(value["digest"], where), size)


def total_bytes(top: Document, children: Iterable[Document], where: str) -> int:
    """Bytes of every blob of an image (for an index: of every child), at most MAX_SIZE.

    >>> layer = Descriptor("sha256:" + "0" * 64, MAX_SIZE)
    >>> image = Document(MANIFEST_TYPES[0], None, (layer,), ())
    >>> total_bytes(image, [], "x") == MAX_SIZE
    True
    >>> total_bytes(Document(MANIFEST_TYPES[1], None, (), ()), [image, image], "x")
    Traceback (most recent call last):
    ...
    galleon.oci.errors.ProtocolError: x: the image's blobs add up to ... bytes, more than ...
    """
    total = top.blob_bytes + sum(child.blob_bytes for child in children)
    if total > MAX_SIZE:
        raise errors.ProtocolError(
            f"{where}: the image's blobs add up to {total} bytes, more than {MAX_SIZE}"
        )
    return total


def _shown(value: object) -> str:
    """`value` for a message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:36]}...'"
