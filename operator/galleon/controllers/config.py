"""Operator-wide settings that the controllers read (set once at start-up from flags).

Example: `config.current().replication_concurrency` is how many versions replicate
at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    #: Image versions replicating at the same time (each fans out to its regions).
    replication_concurrency: int = 4
    #: Destination registries of one region written to at the same time, all versions together.
    region_concurrency: int = 2
    #: Minimum seconds between two progress writes of one ImageVersion's status.
    status_interval: float = 2.0
    #: Seconds between two checks of a Region's nodes and registries.
    region_check_interval: float = 30.0
    #: Seconds between two verifications of a completely replicated version.
    resync_interval: float = 300.0
    #: The namespace Secrets of cluster-scoped Regions are read from when not given.
    operator_namespace: str = "galleon-system"


_current = Config(operator_namespace=os.environ.get("GALLEON_NAMESPACE", "galleon-system"))


def current() -> Config:
    return _current


def set_current(config: Config) -> None:
    global _current
    _current = config
