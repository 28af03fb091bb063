"""Start kopf with galleon's settings and handlers.

Rules of this module: every kopf setting the operator relies on (finalizer name,
storage prefixes, reporting component, watch timeouts, peering) is set in
`configure`, and nowhere else; the command line becomes a `Config` in `config_from`
and the controllers' shared `Runtime` is made once in `run` and reaches every
handler as kopf's `memo.runtime`. The ScaleSets' pod watches run beside kopf for the
operator's lifetime (`galleon.controllers.scaleset.follow`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import kopf
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta

from galleon import GROUP, memory, metrics
from galleon.controllers.config import Config
from galleon.controllers.scaleset.follow import following_pods
from galleon.controllers.shared import Runtime
from galleon.kube import client as kube

FINALIZER = f"{GROUP}/finalizer"
DIFFBASE_KEY = "last-handled-configuration"
DIFFBASE_ANNOTATION = f"{GROUP}/{DIFFBASE_KEY}"
"""Where kopf records the spec it last handled (its diff base)."""
REPORTING_COMPONENT = "galleon-operator"

logger = logging.getLogger(__name__)


def configure(settings: kopf.OperatorSettings, *, peering: str, priority: int) -> None:
    """Apply galleon's kopf settings (called from the startup handler)."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key=DIFFBASE_KEY
    )
    settings.posting.reporting_component = REPORTING_COMPONENT
    settings.posting.level = logging.INFO
    # Events come from galleon's own kopf.info/warn calls (state changes), never from
    # kopf's log lines: "Handler 'instance_changed' succeeded." would otherwise
    # become an Event on every pod change of every fleet.
    settings.posting.loggers = False
    # Bounded watches: a silently dead connection is re-established within minutes.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]
    if peering:
        settings.peering.name = peering
        settings.peering.priority = priority
        settings.peering.mandatory = True
        settings.peering.standalone = False
    else:
        settings.peering.standalone = True


ClusterKopfPeering = create_global_resource(
    "kopf.dev", "v1", "ClusterKopfPeering", "clusterkopfpeerings"
)
KopfPeering = create_namespaced_resource("kopf.dev", "v1", "KopfPeering", "kopfpeerings")


async def ensure_peering(name: str, namespaces: list[str]) -> None:
    """Create the peering object(s) the replicas elect a leader through, if missing
    (a Helm release cannot ship a custom resource together with its CRD)."""
    objects: list[Any] = (
        [KopfPeering(metadata=ObjectMeta(name=name, namespace=ns)) for ns in namespaces]
        if namespaces
        else [ClusterKopfPeering(metadata=ObjectMeta(name=name))]
    )
    for obj in objects:
        try:
            await kube.client().create(obj)
        except ApiError as error:
            if error.status.code != 409:
                raise
            continue
        logger.info("created peering object %s", name)


def load_handlers() -> None:
    """Import every controller module so its handlers register with kopf."""
    from galleon.controllers import registered  # noqa: F401


def config_from(args: argparse.Namespace) -> Config:
    """The operator's settings from its command line (read once, here)."""
    return Config(
        replication_concurrency=max(1, args.replication_concurrency),
        namespace_replication_concurrency=min(
            max(1, args.replication_concurrency), max(1, args.namespace_replication_concurrency)
        ),
        region_concurrency=max(1, args.region_concurrency),
        build_concurrency=max(1, args.build_concurrency),
        build_max_step_bytes=max(1, args.build_max_step_mib) << 20,
        status_interval=max(0.0, args.status_interval),
        agent_timeout=max(1.0, args.agent_timeout),
        operator_namespace=args.operator_namespace,
        deny_cidrs=tuple(args.deny_cidr),
        allow_cidrs=tuple(args.allow_cidr),
    )


async def run(args: argparse.Namespace) -> None:
    runtime = Runtime.from_config(config_from(args))
    load_handlers()
    metrics.serve(args.metrics_port, args.bind_address)

    @kopf.on.startup()
    def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, peering=args.peering, priority=args.priority)

    stop_flag: asyncio.Event = asyncio.Event()
    namespaces: list[str] = list(args.namespace)
    if args.peering:
        await ensure_peering(args.peering, namespaces)
    async with following_pods(runtime.wakeups, namespaces, runtime.pods), memory.trimming():
        await kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=not args.peering,
            priority=args.priority,
            peering_name=args.peering or None,
            liveness_endpoint=(
                f"http://{args.bind_address}:{args.health_port}/healthz"
                if args.health_port
                else None
            ),
            stop_flag=stop_flag,
            memo=kopf.Memo(runtime=runtime),
        )
