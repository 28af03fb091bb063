"""Build an image from a base image and steps, registry to registry, with no container engine.

    result = await build_image(
        source, "sources/ubuntu", "sha256:…",
        [File("/etc/motd", b"hello\\n"), Environment.of({"LANG": "C.UTF-8"})],
        destination, "built/ubuntu", "1.0.0-custom",
    )
    result.digest, result.bytes_uploaded, result.bytes_mounted

Rules of this module:
- The base and every Layer step's image are read by digest (a tag would make the
  build depend on when it ran), and must be one image manifest: an index is
  refused (`BuildRefused`) with its platforms and their digests, so the caller
  picks one; nothing is chosen silently.
- No layer of the base (or of a Layer step's image) is downloaded to build: only
  manifests and configs are read. Each is made present at the destination the
  cheapest way: already there (HEAD) → skipped; in the same registry → mounted
  across repositories; else streamed registry to registry by `galleon.oci.copy`
  (read once, digest-checked as it flows, never held whole) → copied.
- New layers (`galleon.core.layers`: tar and gzip are CPU work) are built in a
  worker thread, so the loop keeps serving, their gzip blocks deflated on one
  thread per CPU (the bytes do not depend on it), and uploaded unless already there;
  then the config; then the manifest by digest, and only then by tag: a tag never
  names an image whose blobs are not all there.
- The output is an OCI image manifest with an OCI config whatever the base's kind
  (Docker media types of layers are mapped to their OCI equals: the same bytes),
  written as compact JSON in a fixed key order, with the base's digest as its
  `org.opencontainers.image.base.digest` annotation and no `base.name` (where the
  base was read from would change the digest of a mirror's build). Same base
  digest, same steps, same deflate: same bytes, same digest.
- Failures: a `RegistryError` from a registry (transient or permanent, as
  `galleon.oci.errors` says; a config that is not what its digest says, or not an
  image config, is one too); a `BuildRefused` for what no retry fixes (a step, an
  index, layers of another platform, an artifact that is not an image, too many
  layers), its message starting with the step it is about.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from galleon.core import layers
from galleon.core.layers import (
    EPOCH,
    LIMITS,
    Archive,
    BuildRefused,
    Compression,
    File,
    Layer,
    Limits,
    Step,
)
from galleon.oci import copy as copying
from galleon.oci import errors
from galleon.oci.client import Manifest, RegistryClient, read_at_most, sha256_digest
from galleon.oci.manifest import INDEX_TYPES

__all__ = ["BuildResult", "LayerResult", "StepResult", "build_image", "read_image"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
CONFIG_TYPES = (OCI_CONFIG, "application/vnd.docker.container.image.v1+json")
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": (
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ),
}
"""Layer media types galleon builds on → the OCI type written in the output."""
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_LAYERS = 125
"""Most layers of a built image: Docker refuses more ("max depth exceeded"), and
overlayfs mounts of many more lower directories fail."""
BASE_DIGEST_ANNOTATION = "org.opencontainers.image.base.digest"

How = Literal["uploaded", "mounted", "copied", "skipped"]
"""How a blob came to be at the destination: uploaded (built here), mounted from
another repository of the same registry, copied (streamed from another registry),
skipped (it was there already)."""


@dataclass(frozen=True)
class LayerDescriptor:
    """A layer as the output manifest lists it (media type already the OCI one)."""

    media_type: str
    digest: str
    size: int
    annotations: tuple[tuple[str, str], ...] = ()

    def document(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            described["annotations"] = dict(self.annotations)
        return described


@dataclass(frozen=True)
class SourceImage:
    """An image read by digest: its manifest's layers and its config (never its layers' bytes)."""

    where: str
    """host/repository@digest, for messages."""
    digest: str
    config: dict[str, Any]
    layers: tuple[LayerDescriptor, ...]
    diff_ids: tuple[str, ...]

    @property
    def platform(self) -> str:
        """os/architecture[/variant] from the config ("" when it names neither)."""
        parts = [self.config.get(key) for key in ("os", "architecture", "variant")]
        if not parts[0] and not parts[1]:
            return ""
        return "/".join(str(part) for part in parts if part)


@dataclass(frozen=True)
class LayerResult:
    digest: str
    size: int
    how: How


@dataclass(frozen=True)
class StepResult:
    """What one step did: the layers it added (none for a config step) and how long it took."""

    index: int
    """1-based, as messages say it."""
    description: str
    seconds: float
    layers: tuple[LayerResult, ...] = ()

    @property
    def bytes(self) -> int:
        return sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class BuildResult:
    """What a build pushed. The byte counts are over distinct blobs (layers, config)."""

    manifest: Manifest
    config_digest: str
    base: tuple[LayerResult, ...]
    steps: tuple[StepResult, ...]
    config: LayerResult
    seconds: float

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def _blobs(self) -> dict[str, LayerResult]:
        every = [*self.base, *(layer for step in self.steps for layer in step.layers), self.config]
        return {blob.digest: blob for blob in reversed(every)}  # the first occurrence's how

    def _bytes(self, how: How) -> int:
        return sum(blob.size for blob in self._blobs().values() if blob.how == how)

    @property
    def size(self) -> int:
        """Bytes of every distinct blob of the image (what a pull of it moves at most)."""
        return sum(blob.size for blob in self._blobs().values())

    @property
    def bytes_uploaded(self) -> int:
        return self._bytes("uploaded")

    @property
    def bytes_mounted(self) -> int:
        return self._bytes("mounted")

    @property
    def bytes_copied(self) -> int:
        return self._bytes("copied")

    @property
    def bytes_skipped(self) -> int:
        return self._bytes("skipped")


def _said(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:56]}...'"


def layer_descriptor(value: Mapping[str, Any], where: str) -> LayerDescriptor:
    """The output descriptor of a base layer's descriptor (already checked by
    `galleon.oci.manifest` for its digest and size); BuildRefused for a layer
    galleon cannot place.

    >>> layer_descriptor({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ...                   "digest": "sha256:" + "0" * 64, "size": 3}, "r/os").media_type
    'application/vnd.oci.image.layer.v1.tar+gzip'
    >>> layer_descriptor({"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ...                   "digest": "sha256:" + "0" * 64, "size": 3}, "r/os")
    Traceback (most recent call last):
    ...
    galleon.core.layers.BuildRefused: r/os: layer sha256:000000000000 of media type ...
    """
    media_type = value.get("mediaType")
    digest = str(value.get("digest"))
    if media_type not in LAYER_TYPES or "urls" in value:
        raise BuildRefused(
            f"{where}: layer {digest[:19]} of media type {_said(media_type)} is not one "
            f"galleon builds on ({', '.join(LAYER_TYPES)}; no foreign or non-distributable "
            "layers)"
        )
    annotations = value.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise BuildRefused(f"{where}: layer {digest[:19]} has annotations that are not strings")
    return LayerDescriptor(
        LAYER_TYPES[media_type], digest, int(value["size"]), tuple(annotations.items())
    )


def _platforms(document: Mapping[str, Any]) -> str:
    """An index's children for a message: `linux/amd64 sha256:…, linux/arm64 sha256:…`."""
    said = []
    for child in (document.get("manifests") or [])[:8]:
        platform = child.get("platform") if isinstance(child, dict) else None
        platform = platform if isinstance(platform, dict) else {}
        name = "/".join(
            str(platform[key]) for key in ("os", "architecture", "variant") if platform.get(key)
        )
        said.append(f"{name or 'unknown platform'} {str(child.get('digest'))[:19]}…")
    return ", ".join(said)


async def read_image(client: RegistryClient, repository: str, digest: str) -> SourceImage:
    """The image `repository@digest`: its layer descriptors and its config, checked."""
    where = f"{client.host}/{repository}@{digest}"
    if not layers.DIGEST.fullmatch(digest):
        raise BuildRefused(f"{client.host}/{repository}: {_said(digest)} is not a sha256 digest")
    manifest = await client.get_manifest(repository, digest)
    document = json.loads(manifest.data)  # parsed and checked by get_manifest already
    if manifest.media_type in INDEX_TYPES:
        count = len(document.get("manifests") or [])
        raise BuildRefused(
            f"{where} is an index of {count} images ({_platforms(document)}); build from "
            "one of them by its digest (multi-platform builds are not supported yet)"
        )
    config = document["config"]
    if config.get("mediaType") not in CONFIG_TYPES:
        raise BuildRefused(
            f"{where} is not a container image: its config's media type is "
            f"{_said(config.get('mediaType'))}, not one of {', '.join(CONFIG_TYPES)}"
        )
    found = tuple(layer_descriptor(layer, where) for layer in document["layers"])
    if config["size"] > MAX_CONFIG_BYTES:
        raise errors.ProtocolError(
            f"{where}: the config is {config['size']} bytes, more than {MAX_CONFIG_BYTES}"
        )
    response = await client.open_blob(repository, config["digest"], config["size"])
    try:
        data = await read_at_most(response, config["size"], where, "the image config")
    finally:
        response.release()
    if sha256_digest(data) != config["digest"]:
        raise errors.DigestMismatch(
            f"{where}: the config served is {sha256_digest(data)}, not {config['digest']}"
        )
    try:
        parsed = json.loads(data)
        ids = layers.diff_ids(parsed)
    except (ValueError, RecursionError) as error:  # BuildRefused is a ValueError
        raise errors.ProtocolError(f"{where}: the config is not an image config: {error}") from None
    if len(ids) != len(found):
        raise errors.ProtocolError(
            f"{where}: the config names {len(ids)} diff_ids for {len(found)} layers"
        )
    return SourceImage(where, manifest.digest, parsed, found, tuple(ids))


class _Placer:
    """Makes blobs present at one destination repository, each digest once, a few at a time."""

    def __init__(self, destination: RegistryClient, repository: str, concurrency: int) -> None:
        self.destination, self.repository = destination, repository
        self.slots = asyncio.Semaphore(concurrency)
        self.placed: dict[str, asyncio.Task[How]] = {}

    def existing(
        self, blob: LayerDescriptor, origin: RegistryClient, origin_repository: str
    ) -> asyncio.Task[How]:
        """Place a blob that is in `origin_repository` of `origin` (starts now)."""
        if blob.digest not in self.placed:
            self.placed[blob.digest] = asyncio.create_task(
                self._existing(blob, origin, origin_repository)
            )
        return self.placed[blob.digest]

    def new(self, digest: str, data: bytes) -> asyncio.Task[How]:
        """Upload blob `data` (of `digest`) unless it is there already (starts now)."""
        if digest not in self.placed:
            self.placed[digest] = asyncio.create_task(self._new(digest, data))
        return self.placed[digest]

    async def _existing(
        self, blob: LayerDescriptor, origin: RegistryClient, origin_repository: str
    ) -> How:
        async with self.slots:
            if await self.destination.has_blob(self.repository, blob.digest):
                return "skipped"
            if origin.base_url == self.destination.base_url and await self._mounted(
                blob.digest, origin_repository
            ):
                return "mounted"
            # The copy module's tee: read once, hashed as it flows, the last chunk held
            # back until the digest is known. (Its `_Fanout` is the one blob copier.)
            fan = copying._Fanout(
                origin, origin_repository, [copying.Target(self.destination, self.repository)], None
            )
            fan.total = blob.size
            await fan.tee(copying.Blob(blob.digest, blob.size), [0])
            if fan.failed:
                raise fan.failed[0]
            return "copied"

    async def _mounted(self, digest: str, origin_repository: str) -> bool:
        try:
            return await self.destination.mount_blob(self.repository, digest, origin_repository)
        except (errors.Denied, errors.Unauthorized, errors.NotFound):
            # Why not a failure: the destination's credentials may not read the origin
            # repository; the origin's client can still stream the blob across.
            return False

    async def _new(self, digest: str, data: bytes) -> How:
        async with self.slots:
            if await self.destination.has_blob(self.repository, digest):
                return "skipped"
            await self.destination.upload_blob(self.repository, digest, len(data), data)
            return "uploaded"

    async def close(self) -> None:
        """Cancel what is still under way (after a failure) and wait for it to end."""
        for task in self.placed.values():
            task.cancel()  # a task already done is left as it is
        # Awaited all, so that a failure nobody awaited is not reported as never retrieved.
        await asyncio.gather(*self.placed.values(), return_exceptions=True)


def canonical_json(document: Any) -> bytes:
    """The bytes galleon writes a config or manifest as: compact, keys in their order, ASCII.

    >>> canonical_json({"b": 1, "a": ["é"]})
    b'{"b":1,"a":["\\\\u00e9"]}'
    """
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()


def image_manifest(
    config_digest: str, config_size: int, image_layers: Sequence[LayerDescriptor], base_digest: str
) -> Manifest:
    """The OCI image manifest of a built image.

    >>> m = image_manifest("sha256:" + "c" * 64, 2, [], "sha256:" + "b" * 64)
    >>> m.media_type, m.data[:40]
    ('application/vnd.oci.image.manifest.v1+json', b'{"schemaVersion":2,"mediaType":"applicat')
    """
    data = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [layer.document() for layer in image_layers],
            "annotations": {BASE_DIGEST_ANNOTATION: base_digest},
        }
    )
    return Manifest(data, OCI_MANIFEST, sha256_digest(data))


def _client_for(
    step: Layer, index: int, source: RegistryClient, registries: Mapping[str, RegistryClient]
) -> RegistryClient:
    if not step.registry:
        return source
    if step.registry not in registries:
        raise BuildRefused(
            f"step {index} ({layers.describe(step)}): no client for registry {step.registry}"
        )
    return registries[step.registry]


async def build_image(
    source: RegistryClient,
    source_repository: str,
    source_digest: str,
    steps: Sequence[Step],
    destination: RegistryClient,
    destination_repository: str,
    tag: str | None,
    *,
    registries: Mapping[str, RegistryClient] | None = None,
    compression: Compression = "gzip",
    created: str | None = EPOCH,
    limits: Limits = LIMITS,
    blob_concurrency: int = 4,
    monotonic: Callable[[], float] = time.monotonic,
) -> BuildResult:
    """Build `source_repository@source_digest` + `steps` into `destination_repository`
    (tagged `tag` unless None); `registries` maps a Layer step's `registry` to its
    client ("" is `source`)."""
    began = monotonic()
    base = await read_image(source, source_repository, source_digest)
    if len(base.layers) > MAX_LAYERS:
        raise BuildRefused(f"{base.where} has {len(base.layers)} layers, more than {MAX_LAYERS}")
    placer = _Placer(destination, destination_repository, max(1, blob_concurrency))
    try:
        base_placed = [placer.existing(layer, source, source_repository) for layer in base.layers]
        image_layers = list(base.layers)
        added: list[list[str]] = []
        results: list[StepResult] = []
        for index, step in enumerate(steps, start=1):
            started = monotonic()
            new_ids, placed = await _run_step(
                step, index, base, source, registries or {}, placer, compression, limits
            )
            image_layers.extend(layer for layer, _ in placed)
            if len(image_layers) > MAX_LAYERS:
                raise BuildRefused(
                    f"step {index} ({layers.describe(step)}): the image would have "
                    f"{len(image_layers)} layers, more than {MAX_LAYERS}"
                )
            hows = [await task for _, task in placed]
            added.append(new_ids)
            results.append(
                StepResult(
                    index,
                    layers.describe(step),
                    monotonic() - started,
                    tuple(
                        LayerResult(layer.digest, layer.size, how)
                        for (layer, _), how in zip(placed, hows, strict=True)
                    ),
                )
            )
        base_hows = [await task for task in base_placed]
        config = canonical_json(layers.image_config(base.config, steps, added, created=created))
        config_digest = sha256_digest(config)
        config_how = await placer.new(config_digest, config)
        manifest = image_manifest(config_digest, len(config), image_layers, base.digest)
        await destination.put_manifest(destination_repository, manifest.digest, manifest)
        if tag is not None:
            await destination.put_manifest(destination_repository, tag, manifest)
    finally:
        await placer.close()
    return BuildResult(
        manifest=manifest,
        config_digest=config_digest,
        base=tuple(
            LayerResult(layer.digest, layer.size, how)
            for layer, how in zip(base.layers, base_hows, strict=True)
        ),
        steps=tuple(results),
        config=LayerResult(config_digest, len(config), config_how),
        seconds=monotonic() - began,
    )


_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def _deflate_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads a layer's gzip blocks are deflated on, one per CPU, shared by every
    build of the process (zlib lets go of the GIL: the blocks deflate in parallel)."""
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(
            max_workers=os.cpu_count() or 1, thread_name_prefix="deflate"
        )
    return _POOL


async def _run_step(
    step: Step,
    index: int,
    base: SourceImage,
    source: RegistryClient,
    registries: Mapping[str, RegistryClient],
    placer: _Placer,
    compression: Compression,
    limits: Limits,
) -> tuple[list[str], list[tuple[LayerDescriptor, asyncio.Task[How]]]]:
    """One step's diff_ids and its layers with the tasks placing them (none for a config step)."""
    if isinstance(step, File | Archive):
        try:
            mapper = _deflate_pool().map
            if isinstance(step, File):
                built = await asyncio.to_thread(
                    layers.file_layer, step, compression=compression, limits=limits, mapper=mapper
                )
            else:
                built = await asyncio.to_thread(
                    layers.archive_layer,
                    step,
                    compression=compression,
                    limits=limits,
                    mapper=mapper,
                )
        except BuildRefused as error:
            raise BuildRefused(f"step {index}: {error}") from None
        layer = LayerDescriptor(built.media_type, built.digest, built.size)
        return [built.diff_id], [(layer, placer.new(built.digest, built.data))]
    if isinstance(step, Layer):
        client = _client_for(step, index, source, registries)
        try:
            image = await read_image(client, step.repository, step.digest)
        except BuildRefused as error:
            raise BuildRefused(f"step {index} ({layers.describe(step)}): {error}") from None
        if base.platform and image.platform and image.platform != base.platform:
            raise BuildRefused(
                f"step {index} ({layers.describe(step)}): its layers are for {image.platform}, "
                f"the base is {base.platform}"
            )
        placed = [
            (layer, placer.existing(layer, client, step.repository)) for layer in image.layers
        ]
        return list(image.diff_ids), placed
    return [], []
