"""Writing an ImageVersion's status: at once on every state change, throttled while
bytes flow.

Rules of this module: the patch is computed by `galleon.core.imageversion_status`
from the pass's `ReplicationRecord`; a progress write happens at most once per
`status_interval` seconds and only when progress moved; a forced write always
happens. The replication-state gauges follow what was written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from galleon.metrics import forget_replication_state, set_replication_state


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
        self.interval = status_interval
        self._last_write = 0.0
        self._dirty = False

    def touch(self) -> None:
        """Progress moved: the next due `flush` writes it."""
        self._dirty = True

    async def flush(self, record: ReplicationRecord, *, force: bool = False) -> None:
        """Write the replication status now if forced, else only when due and dirty."""
        due = clock.monotonic() - self._last_write >= self.interval
        if not force and not (self._dirty and due):
            return
        patch = imageversion_status(record, self.status, self.generation, clock.now())
        self._gauges(patch["replicationStatus"]["summary"])
        self._dirty = False
        self._last_write = clock.monotonic()
        await self._write(patch)

    async def set_conditions(self, updates: Sequence[Update], **fields: Any) -> None:
        """Write conditions (and other status fields) before any replica is planned."""
        await self._write(
            waiting_status(self.status, self.generation, updates, clock.now(), **fields)
        )

    async def _write(self, patch: dict[str, Any]) -> None:
        self.status.update(patch)
        await kube.patch_status(ImageVersion, self.name, patch, self.namespace)

    def _gauges(self, lines: Sequence[Mapping[str, Any]]) -> None:
        previous = {
            s["region"] for s in (self.status.get("replicationStatus") or {}).get("summary") or []
        }
        for line in lines:
            set_replication_state(
                self.namespace, self.definition, self.version, line["region"], line["state"]
            )
        for region in previous - {line["region"] for line in lines}:
            forget_replication_state(self.namespace, self.definition, self.version, region)
