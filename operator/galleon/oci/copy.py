"""Copy an image (or a multi-arch index, whole) from one registry to many.

Rules of this module:
- Each source blob is read once and streamed to every destination that lacks it
  at the same time (a tee with bounded queues: the slowest destination sets the
  pace, memory stays at a few chunks per destination).
- Blobs already at a destination are skipped (HEAD); in the source registry
  itself they are mounted across repositories instead of copied.
- Each blob's sha256 is computed as it flows, in a worker thread (hashlib releases
  the GIL) while the loop hands the chunk on, in order; the last chunk is held back until
  the digest is known, so a mismatching blob is never committed (and the
  registry checks the `?digest=` of the upload too).
- A blob is read to at most its declared size (more is a ProtocolError, before
  anything is committed) and within a deadline that grows with that size.
- Manifests are pushed byte for byte (their digest is preserved): children of an
  index first, then the top manifest by digest and by each tag.
- One destination failing does not stop the others: the result holds, per
  destination, either a `CopyResult` or the `RegistryError` that stopped it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from galleon.oci import errors
from galleon.oci import manifest as checked
from galleon.oci.client import CHUNK, Manifest, RegistryClient

QUEUE_CHUNKS = 8
_END = object()

Progress = Callable[[int, int, int], None]
"""progress(destination index, bytes done, bytes total)."""


@dataclass(frozen=True)
class Target:
    """Where one copy goes."""

    client: RegistryClient
    repository: str
    tags: tuple[str, ...] = ()


@dataclass
class CopyResult:
    """What one copy did (bytes_total = copied + skipped + mounted)."""

    digest: str
    media_type: str
    bytes_total: int = 0
    bytes_copied: int = 0
    bytes_skipped: int = 0
    bytes_mounted: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    manifests: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


async def read_image(
    source: RegistryClient, repository: str, reference: str
) -> tuple[Manifest, list[Manifest], list[Blob]]:
    """The top manifest, the child manifests of an index, and every distinct blob
    (each manifest checked by `galleon.oci.manifest` as it is read)."""
    where = f"{source.host}/{repository}:{reference}"
    top = await source.get_manifest(repository, reference)
    children: list[Manifest] = []
    documents = [checked.parse(top.data, top.media_type, where)]
    for entry in documents[0].manifests:
        child = await source.get_manifest(repository, entry.digest)
        children.append(child)
        documents.append(checked.parse(child.data, child.media_type, where))
    checked.total_bytes(documents[0], documents[1:], where)
    blobs: dict[str, Blob] = {}
    for document in documents:
        for descriptor in document.blobs:
            blobs[descriptor.digest] = Blob(descriptor.digest, descriptor.size)
    return top, children, sorted(blobs.values(), key=lambda b: -b.size)


class _Fanout:
    def __init__(
        self,
        source: RegistryClient,
        repository: str,
        targets: Sequence[Target],
        progress: Progress | None,
    ) -> None:
        self.source, self.repository, self.targets = source, repository, targets
        self.progress = progress
        self.failed: dict[int, errors.RegistryError] = {}
        self.done = [0] * len(targets)
        self.total = 0

    def fail(self, index: int, error: BaseException) -> None:
        if index not in self.failed:
            self.failed[index] = (
                error
                if isinstance(error, errors.RegistryError)
                else errors.Unavailable(f"{self.targets[index].client.host}: {error!r}")
            )

    def advance(self, index: int, amount: int) -> None:
        self.done[index] += amount
        if self.progress is not None:
            self.progress(index, self.done[index], self.total)

    async def body(self, index: int, queue: asyncio.Queue[object]) -> AsyncIterator[bytes]:
        pending: bytes | None = None
        while True:
            item = await queue.get()
            if item is _END:
                if pending is not None:
                    yield pending
                    self.advance(index, len(pending))
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            if pending is not None:
                yield pending
                self.advance(index, len(pending))
            pending = item

    async def _offer(
        self, index: int, queue: asyncio.Queue[object], task: asyncio.Task[None], item: object
    ) -> None:
        try:
            queue.put_nowait(item)
            return
        except asyncio.QueueFull:
            pass
        put = asyncio.ensure_future(queue.put(item))
        await asyncio.wait({put, task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()

    async def tee(self, blob: Blob, indexes: Sequence[int]) -> None:
        """Stream one blob from the source to every destination in `indexes`."""
        queues: dict[int, asyncio.Queue[object]] = {
            i: asyncio.Queue(maxsize=QUEUE_CHUNKS) for i in indexes
        }
        uploads = {
            i: asyncio.create_task(
                self.targets[i].client.upload_blob(
                    self.targets[i].repository, blob.digest, blob.size, self.body(i, queues[i])
                )
            )
            for i in indexes
        }
        hasher = hashlib.sha256()
        hashing: asyncio.Future[None] | None = None
        outcome: object = _END
        try:
            response = await self.source.open_blob(self.repository, blob.digest, blob.size)
            received = 0
            try:
                async for chunk in response.content.iter_chunked(CHUNK):
                    received += len(chunk)
                    if received > blob.size:
                        raise errors.ProtocolError(
                            f"{self.source.host}: blob {blob.digest} is longer than the "
                            f"{blob.size} bytes its descriptor declares"
                        )
                    # The chunk is hashed in a thread (hashlib releases the GIL) while
                    # it is offered to the destinations; chunks are hashed in order.
                    if hashing is not None:
                        await hashing
                    hashing = asyncio.ensure_future(asyncio.to_thread(hasher.update, chunk))
                    alive = [i for i in indexes if not uploads[i].done()]
                    if not alive:
                        break
                    await asyncio.gather(
                        *(self._offer(i, queues[i], uploads[i], chunk) for i in alive)
                    )
                if hashing is not None:
                    await hashing
            finally:
                response.release()
            actual = "sha256:" + hasher.hexdigest()
            if actual != blob.digest:
                outcome = errors.DigestMismatch(
                    f"{self.source.host}: blob {blob.digest} read as {actual}"
                )
        except errors.RegistryError as error:
            outcome = error
        except TimeoutError:
            outcome = errors.Unavailable(
                f"{self.source.host}: reading {blob.digest}: not complete within its deadline"
            )
        except Exception as error:
            outcome = errors.Unavailable(
                f"{self.source.host}: reading {blob.digest}: {type(error).__name__}: "
                f"{str(error)[:200]}"
            )
        for i in indexes:
            if not uploads[i].done():
                await self._offer(i, queues[i], uploads[i], outcome)
        results = await asyncio.gather(*uploads.values(), return_exceptions=True)
        for i, result in zip(uploads, results, strict=True):
            if isinstance(result, BaseException):
                self.fail(i, outcome if isinstance(outcome, BaseException) else result)


async def copy_image_to_many(
    source: RegistryClient,
    repository: str,
    reference: str,
    targets: Sequence[Target],
    *,
    progress: Progress | None = None,
    blob_concurrency: int = 4,
) -> list[CopyResult | errors.RegistryError]:
    """Copy `repository:reference` from `source` to every target; one outcome per target.

    Raises only for source errors before anything was copied (e.g. NotFound).
    """
    top, children, blobs = await read_image(source, repository, reference)
    fan = _Fanout(source, repository, targets, progress)
    fan.total = sum(b.size for b in blobs)
    results = [CopyResult(top.digest, top.media_type, bytes_total=fan.total) for _ in targets]

    async def prepare(index: int, blob: Blob) -> bool:
        """True when target `index` still needs `blob` streamed to it."""
        target, result = targets[index], results[index]
        try:
            if await target.client.has_blob(target.repository, blob.digest):
                result.bytes_skipped += blob.size
                result.blobs_skipped += 1
                fan.advance(index, blob.size)
                return False
            if target.client.base_url == source.base_url and await target.client.mount_blob(
                target.repository, blob.digest, repository
            ):
                result.bytes_mounted += blob.size
                result.blobs_mounted += 1
                fan.advance(index, blob.size)
                return False
        except errors.RegistryError as error:
            fan.fail(index, error)
            return False
        return True

    slots = asyncio.Semaphore(blob_concurrency)

    async def one_blob(blob: Blob) -> None:
        async with slots:
            live = [i for i in range(len(targets)) if i not in fan.failed]
            needed = await asyncio.gather(*(prepare(i, blob) for i in live))
            indexes = [i for i, need in zip(live, needed, strict=True) if need]
            if not indexes:
                return
            await fan.tee(blob, indexes)
            for i in indexes:
                if i not in fan.failed:
                    results[i].bytes_copied += blob.size
                    results[i].blobs_copied += 1

    await asyncio.gather(*(one_blob(blob) for blob in blobs))

    async def push(index: int) -> None:
        target = targets[index]
        try:
            for child in children:
                await target.client.put_manifest(target.repository, child.digest, child)
            await target.client.put_manifest(target.repository, top.digest, top)
            for tag in target.tags:
                await target.client.put_manifest(target.repository, tag, top)
        except errors.RegistryError as error:
            fan.fail(index, error)
            return
        results[index].manifests = [c.digest for c in children] + [top.digest]

    await asyncio.gather(*(push(i) for i in range(len(targets)) if i not in fan.failed))
    return [fan.failed.get(i, results[i]) for i in range(len(targets))]


async def copy_image(
    source: RegistryClient,
    repository: str,
    reference: str,
    target: Target,
    *,
    progress: Callable[[int, int], None] | None = None,
    blob_concurrency: int = 4,
) -> CopyResult:
    """Copy to one destination; raise its error if it failed."""
    (outcome,) = await copy_image_to_many(
        source,
        repository,
        reference,
        [target],
        progress=(lambda _i, done, total: progress(done, total)) if progress else None,
        blob_concurrency=blob_concurrency,
    )
    if isinstance(outcome, errors.RegistryError):
        raise outcome
    return outcome


async def delete_image(client: RegistryClient, repository: str, digest: str) -> bool:
    """Delete a manifest (and with it every tag pointing at it); False when absent."""
    with contextlib.suppress(errors.NotFound):
        return await client.delete_manifest(repository, digest)
    return False
