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
    #: Of those, image versions of one namespace (1 to replication_concurrency): a tenant
    #: whose sources fail, crawl or are huge waits for its own slots, the others go on.
    namespace_replication_concurrency: int = 2
    #: Copy attempts of one replica in one replication pass; then the pass ends, frees its
    #: slots, and the next pass (after the daemon's backoff, spec read again) retries.
    copy_attempts_per_pass: int = 3
    #: Seconds after which a replication pass starts no retry (same ending as above).
    retry_seconds_per_pass: float = 120.0
    #: Image builds running at the same time (a build holds its new layers in memory).
    build_concurrency: int = 1
    #: Largest File or Archive step (bytes of content, and of a download or archive
    #: read): a layer is built in memory, about 7 times its content at its peak.
    build_max_step_bytes: int = 64 << 20
    #: Destination registries of one region written to at the same time, all versions together.
    region_concurrency: int = 2
    #: Minimum seconds between two progress writes of one ImageVersion's status.
    status_interval: float = 2.0
    #: Seconds between two verifications of a completely replicated version.
    resync_interval: float = 300.0
    #: Seconds a region agent may leave a ReplicationTask untaken, or stay silent on one it
    #: took, before the copy counts as a transient failure (and is retried).
    agent_timeout: float = 60.0
    #: The namespace Secrets of cluster-scoped Regions are read from when not given.
    operator_namespace: str = "galleon-system"
    #: Networks registries, redirects and token realms may not be reached in, beside
    #: `galleon.oci.addresses.DEFAULT_DENIED` (CIDR texts, checked at start-up).
    deny_cidrs: tuple[str, ...] = ()
    #: Networks they may be reached in (the most specific network decides).
    allow_cidrs: tuple[str, ...] = ()
