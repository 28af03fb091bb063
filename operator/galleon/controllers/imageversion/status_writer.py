"""Writing an ImageVersion's status: at once on every decision, throttled while
bytes flow.

Rules of this module:
- The patch is computed by `galleon.core.imageversion_status` from the pass's
  `ReplicationRecord` and the status last seen; a progress write happens at most
  once per `status_interval` seconds and only when progress moved; a forced write
  always happens. Writes of one writer never overlap.
- Others write this status too (the deletion path sets DeletionHeld while a pass
  runs), so every write carries the resourceVersion last seen (read with the body,
  then from each write's response) and is refused by the API server (409) when the
  object changed since. The writer then re-reads the object, takes its status as
  the base, and computes and sends the patch again, so conditions it does not set
  are kept; at most `MAX_WRITE_ATTEMPTS` times. An object being deleted (or gone)
  raises `VersionDeleting`: its status belongs to the deletion path now.
- A patch that would change nothing in the status last seen is not sent (a pass
  that ends as its copy did writes once, not twice).
- What a pass finds before it plans (the source resolved) is staged and goes with
  the plan's write (`stage`): nothing acts on it before that write, which comes
  before any byte is copied.
- The replication-state gauges follow what was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from galleon import clock
from galleon.core.conditions import Update
from galleon.core.imageversion_status import (
    ReplicationRecord,
    imageversion_status,
    waiting_status,
)
from galleon.kube import client as kube
from galleon.kube.resources import ImageVersion
from galleon.metrics import set_replication_states

MAX_WRITE_ATTEMPTS = 5
"""Writes of one patch (the first and its recomputations after a conflict)."""

Patch = Callable[[Mapping[str, Any]], dict[str, Any]]
"""The status patch, computed from the status it is written over."""


class VersionDeleting(Exception):
    """The ImageVersion is being deleted (or is gone): the pass must stop writing."""


class StatusWriter:
    """The status of one version being replicated, as written so far."""

    def __init__(self, body: Mapping[str, Any], status_interval: float) -> None:
        meta, spec = body["metadata"], body.get("spec") or {}
        self.namespace, self.name = meta["namespace"], meta["name"]
        self.generation = meta.get("generation")
        self.definition = spec.get("imageDefinitionName", "")
        self.version = spec.get("version", "")
        self.status: dict[str, Any] = dict(body.get("status") or {})
        """The status as last written (or read)."""
        self.resource_version: str | None = meta.get("resourceVersion")
        """The object's resourceVersion after the last write (or read): the next write's
        precondition (None: no precondition)."""
        self.interval = status_interval
        self._last_write = 0.0
        self._dirty = False
        self._writing = asyncio.Lock()
        self._staged: dict[str, Any] = {}
        """Fields and conditions that go with the next write (`stage`)."""
        self.writes = 0
        """Status writes the API server took from this writer."""

    def touch(self) -> None:
        """Progress moved: the next due `flush` writes it."""
        self._dirty = True

    async def flush(self, record: ReplicationRecord, *, force: bool = False) -> None:
        """Write the replication status now if forced, else only when due and dirty."""
        due = clock.monotonic() - self._last_write >= self.interval
        if not force and not (self._dirty and due):
            return
        self._dirty = False
        self._last_write = clock.monotonic()
        now = clock.now()
        written = await self._write(
            lambda base: imageversion_status(record, base, self.generation, now)
        )
        self._gauges(written["replicationStatus"]["summary"])

    async def set_conditions(self, updates: Sequence[Update], **fields: Any) -> None:
        """Write conditions (and other status fields) before any replica is planned."""
        now = clock.now()
        await self._write(
            lambda base: waiting_status(base, self.generation, updates, now, **fields)
        )

    def stage(self, updates: Sequence[Update], **fields: Any) -> None:
        """Conditions (and other status fields) that the next write sends with its own:
        what a pass found that nothing acts on before that write."""
        self._staged = waiting_status(
            {**self.status, **self._staged}, self.generation, updates, clock.now(), **fields
        )

    async def _write(self, patch_of: Patch) -> dict[str, Any]:
        """Send `patch_of(status)` over the status last seen (with what is staged), again
        over a fresh read after each conflict (the module's rules); the patch written."""
        async with self._writing:
            attempt = 1
            while True:
                staged = self._staged
                patch = {**staged, **patch_of({**self.status, **staged})}
                if all(self.status.get(key) == value for key, value in patch.items()):
                    self._staged = {}
                    return patch
                try:
                    written = await kube.patch_status(
                        ImageVersion,
                        self.name,
                        patch,
                        self.namespace,
                        resource_version=self.resource_version,
                    )
                except kube.Conflict:
                    if attempt == MAX_WRITE_ATTEMPTS:
                        raise
                    attempt += 1
                    await self._reread()
                    continue
                if written is None:
                    raise VersionDeleting(f"imageversion {self.namespace}/{self.name} is gone")
                self._staged = {}
                self.status.update(patch)
                self.resource_version = written or None
                self.writes += 1
                return patch

    async def _reread(self) -> None:
        """The object as it is now: its status becomes the base of the next write."""
        found = await kube.get_or_none(ImageVersion, self.name, self.namespace)
        body = found.to_dict() if found is not None else None
        if body is None or body["metadata"].get("deletionTimestamp"):
            raise VersionDeleting(
                f"imageversion {self.namespace}/{self.name} is being deleted: "
                "its status is no longer the pass's to write"
            )
        self.status = dict(body.get("status") or {})
        self.resource_version = body["metadata"].get("resourceVersion")

    def _gauges(self, lines: Sequence[Mapping[str, Any]]) -> None:
        set_replication_states(
            self.namespace,
            self.definition,
            self.version,
            {line["region"]: line["state"] for line in lines},
        )
