"""Region controller: the region's nodes and which of its registries answer.

Rules of this module: a Region is re-checked on every change and every
`CHECK_INTERVAL_SECONDS` seconds; a check is cheap (one node list by label
selector, one `GET /v2/` per registry, in parallel, each bounded by a short
timeout). Ready is True when the region has at least one Ready node and every
registry answers; an unreachable registry makes it Ready=False with the
registries named, and posts an Event when that changes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from lightkube.resources.core_v1 import Node

from galleon import GROUP, VERSION, clock
from galleon.api.region import RegistryEndpoint, endpoints_of, node_selector
from galleon.controllers.common import failure_message, measured, post_once
from galleon.controllers.registries import Registries
from galleon.core import reasons, times
from galleon.core.conditions import kstatus, merged
from galleon.kube import client as kube
from galleon.metrics import forget_region, region_exists, set_registries_reachable

logger = logging.getLogger(__name__)

REGIONS = (GROUP, VERSION, "regions")
CHECK_INTERVAL_SECONDS = 30.0
"""Seconds between two checks of a Region's nodes and registries."""


def _node_ready(node: Node) -> bool:
    conditions_ = (node.status.conditions or []) if node.status else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions_)


async def _check(registries: Registries, endpoint: RegistryEndpoint) -> dict[str, Any]:
    reachable, message = await registries.ping(endpoint)
    return {
        "name": endpoint.name,
        "url": endpoint.url,
        "reachable": reachable,
        "lastChecked": times.format(clock.now()),
        "message": message[:1024],
    }


@kopf.on.event(*REGIONS)
async def region_series(event: Any, name: str, **_: Any) -> None:
    """Every watch event of a Region, the initial listing included: a Region that
    exists may label series; a deleted one takes its series with it."""
    if event.get("type") == "DELETED":
        forget_region(name)
    else:
        region_exists(name)


@kopf.on.resume(*REGIONS)
@kopf.on.create(*REGIONS)
@kopf.on.update(*REGIONS)
@kopf.timer(*REGIONS, interval=CHECK_INTERVAL_SECONDS)
async def reconcile_region(
    body: Any, spec: Any, status: Any, meta: Any, name: str, patch: Any, memo: Any, **_: Any
) -> None:
    try:
        await check_region(body, spec, status, meta, name, patch, memo)
    except Exception as error:  # said on the Region, checked again by the timer
        logger.exception("region %s: the check failed", name)
        message = failure_message(error)
        post_once(body, status, reasons.READY, False, reasons.RECONCILE_ERROR, message)
        patch.status["conditions"] = merged(
            status,
            meta.get("generation"),
            kstatus(False, reasons.RECONCILE_ERROR, message, progressing=True),
            clock.now(),
        )


async def check_region(
    body: Any, spec: Any, status: Any, meta: Any, name: str, patch: Any, memo: Any
) -> None:
    """Count the Region's Ready nodes, ping its registries, write what was found."""
    with measured("region"):
        selector: dict[str, Any] = node_selector(spec, name)
        nodes = [n async for n in kube.client().list(Node, labels=selector)]
        ready_nodes = sum(1 for n in nodes if _node_ready(n))
        endpoints, refused = endpoints_of(spec)
        checks = await asyncio.gather(*(_check(memo.runtime.registries, e) for e in endpoints))
        reachable = [c for c in checks if c["reachable"]]
        set_registries_reachable(name, len(reachable))
        down = [f"{c['name']} ({c['message']})" for c in checks if not c["reachable"]]
        if refused:
            ready, reason = False, reasons.INVALID_SPEC
            message = "; ".join(refused) + " (stored before the API server refused it: fix the URL)"
        elif not endpoints:
            ready, reason, message = False, reasons.NO_REGISTRIES, "the region lists no registries"
        elif down:
            ready, reason = False, reasons.REGISTRIES_UNREACHABLE
            message = f"{len(reachable)}/{len(endpoints)} registries answer; down: " + ", ".join(
                down
            )
        elif ready_nodes == 0:
            ready, reason = False, reasons.NO_NODES
            labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            message = f"no Ready node matches {labels}"
        else:
            ready, reason = True, reasons.RECONCILED
            message = f"{ready_nodes}/{len(nodes)} nodes Ready, {len(endpoints)} registries answer"
        post_once(body, status, reasons.READY, ready, reason, message)
        patch.status["observedGeneration"] = meta.get("generation")
        patch.status["nodes"] = len(nodes)
        patch.status["readyNodes"] = ready_nodes
        patch.status["registries"] = checks
        patch.status["reachableRegistries"] = len(reachable)
        patch.status["totalRegistries"] = len(endpoints)
        patch.status["conditions"] = merged(
            status,
            meta.get("generation"),
            # Registries and nodes come back by themselves: not ready is Reconciling;
            # a URL the API server now refuses needs a human: Stalled.
            kstatus(
                ready, reason, message, progressing=not ready and not refused, stalled=bool(refused)
            ),
            clock.now(),
        )
