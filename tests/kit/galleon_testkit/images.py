"""Generated test images: real tar layers of seeded random bytes, an OCI config
and manifest, written to disk and pushed with galleon's own client.

    image = build_image(tmp_path / "img", size=8 << 20, layers=4, seed=1)
    await push_image(client, "sources/os", image, tags=["1.0.0"])

Rules of this module: the same (size, layers, seed) always gives the same digests;
layers are written and uploaded in chunks (a 512 MiB image never sits in memory);
`build_image(..., base=other)` shares every layer but the last with `other`, as a
patch release would.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from galleon.oci.client import CHUNK, Manifest, RegistryClient

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class BlobFile:
    digest: str
    size: int
    path: Path


@dataclass(frozen=True)
class TestImage:
    __test__ = False  # not a pytest test class

    manifest: Manifest
    config: BlobFile
    layers: tuple[BlobFile, ...]

    @property
    def blobs(self) -> tuple[BlobFile, ...]:
        return (self.config, *self.layers)

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs)


class _RandomStream(io.RawIOBase):
    """`size` seeded random bytes, produced as they are read."""

    def __init__(self, seed: int, size: int) -> None:
        self._random = random.Random(seed)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self._left, CHUNK)
        if count <= 0:
            return 0
        buffer[:count] = self._random.randbytes(count)
        self._left -= count
        return count


def _write_layer(folder: Path, seed: int, payload: int) -> BlobFile:
    temporary = folder / f"layer-{seed}.tar.partial"
    with (
        temporary.open("wb") as out,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        info = tarfile.TarInfo(f"galleon/layer-{seed}.bin")
        info.size, info.mtime, info.mode = payload, 0, 0o644
        tar.addfile(info, io.BufferedReader(_RandomStream(seed, payload), CHUNK))
    hasher = hashlib.sha256()
    with temporary.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            hasher.update(chunk)
    digest = "sha256:" + hasher.hexdigest()
    final = folder / digest.replace(":", "-")
    temporary.rename(final)
    return BlobFile(digest, final.stat().st_size, final)


def _write_bytes(folder: Path, data: bytes) -> BlobFile:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = folder / digest.replace(":", "-")
    path.write_bytes(data)
    return BlobFile(digest, len(data), path)


def build_image(
    folder: Path,
    *,
    size: int,
    layers: int,
    seed: int,
    base: TestImage | None = None,
    architecture: str = "amd64",
) -> TestImage:
    """An image of about `size` bytes in `layers` layers (or `base`'s layers but the last)."""
    folder.mkdir(parents=True, exist_ok=True)
    if base is not None:
        blobs = [*base.layers[:-1], _write_layer(folder, seed * 1000 + 999, base.layers[-1].size)]
    else:
        payload = max(1, size // layers - 1024)
        blobs = [_write_layer(folder, seed * 1000 + i, payload) for i in range(layers)]
    config = _write_bytes(
        folder,
        json.dumps(
            {
                "architecture": architecture,
                "os": "linux",
                "config": {"Labels": {"galleon.test/seed": str(seed)}},
                "rootfs": {"type": "layers", "diff_ids": [b.digest for b in blobs]},
            },
            sort_keys=True,
        ).encode(),
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": OCI_LAYER, "digest": b.digest, "size": b.size} for b in blobs],
        },
        sort_keys=True,
    ).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    return TestImage(Manifest(manifest, OCI_MANIFEST, digest), config, tuple(blobs))


def build_index(images: list[TestImage]) -> Manifest:
    """A multi-arch index over `images` (each built with its own architecture)."""
    entries = []
    for image in images:
        config = json.loads(image.config.path.read_bytes())
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": image.manifest.digest,
                "size": len(image.manifest.data),
                "platform": {"architecture": config["architecture"], "os": "linux"},
            }
        )
    data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return Manifest(data, OCI_INDEX, "sha256:" + hashlib.sha256(data).hexdigest())


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            yield chunk


async def push_image(
    client: RegistryClient, repository: str, image: TestImage, tags: list[str]
) -> str:
    """Upload the blobs (skipping those present) and the manifest; return its digest."""
    for blob in image.blobs:
        if not await client.has_blob(repository, blob.digest):
            await client.upload_blob(repository, blob.digest, blob.size, _file_chunks(blob.path))
    await client.put_manifest(repository, image.manifest.digest, image.manifest)
    for tag in tags:
        await client.put_manifest(repository, tag, image.manifest)
    return image.manifest.digest


async def push_index(
    client: RegistryClient, repository: str, images: list[TestImage], tags: list[str]
) -> Manifest:
    for image in images:
        await push_image(client, repository, image, [])
    index = build_index(images)
    await client.put_manifest(repository, index.digest, index)
    for tag in tags:
        await client.put_manifest(repository, tag, index)
    return index


async def blob_digest(client: RegistryClient, repository: str, digest: str) -> tuple[str, int]:
    """Read a blob back from a registry: (its actual sha256 digest, its size)."""
    hasher, size = hashlib.sha256(), 0
    response = await client.open_blob(repository, digest)
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    finally:
        response.release()
    return "sha256:" + hasher.hexdigest(), size
