"""Operator-wide settings, read once at start-up from the command line.

Rules of this module: a `Config` is made once (`galleon.controllers.runtime.run`)
and reaches handlers through `Runtime.config` (kopf's memo); nothing reads the
environment or a flag after start-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    #: Image versions replicating at the same time (each fans out to its regions).
    replication_concurrency: int = 4
    #: Destination registries of one region written to at the same time, all versions together.
    region_concurrency: int = 2
    #: Minimum seconds between two progress writes of one ImageVersion's status.
    status_interval: float = 2.0
    #: Seconds between two verifications of a completely replicated version.
    resync_interval: float = 300.0
    #: The namespace Secrets of cluster-scoped Regions are read from when not given.
    operator_namespace: str = "galleon-system"
