"""What every controller shares: Events on condition changes, API objects as dicts,
the reconcile metrics.

Rules of this module: an Event reports a change, never a pass (`post_once`);
conditions themselves are computed by `galleon.core.conditions`. A pass that fails
in a way no rule foresaw is said on its object by `report_failure`: Ready False
with reason ReconcileError and the error, Reconciling True (it is retried), one
Event per change.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import kopf

from galleon import clock
from galleon.core import reasons
from galleon.core.conditions import kstatus, merged, reason_of
from galleon.kube import client as kube
from galleon.metrics import RECONCILE_DURATION, RECONCILE_TOTAL


def post_once(
    body: Any,
    status: Mapping[str, Any] | None,
    type_: str,
    ok: bool,
    reason: str,
    message: str,
    *,
    warning: bool | None = None,
) -> None:
    """Post an Event only when condition `type_` is about to change status or reason
    (so a pass that finds the same problem again stays quiet). Normal when `ok`,
    Warning otherwise, unless `warning` says which."""
    if reason_of(status, type_) != ("True" if ok else "False", reason):
        post = kopf.warn if (warning if warning is not None else not ok) else kopf.info
        post(body, reason=reason, message=message)


MAX_FAILURE_MESSAGE = 1024


def failure_message(error: BaseException) -> str:
    """What a condition says of an unforeseen error: its type and text, bounded.

    >>> failure_message(KeyError("size"))
    "a pass failed and is retried with backoff: KeyError: 'size'"
    """
    text = f"{type(error).__name__}: {error}"[:MAX_FAILURE_MESSAGE]
    return f"a pass failed and is retried with backoff: {text}"


async def report_failure(resource: Any, namespace: str, name: str, error: BaseException) -> None:
    """Say on the object that its pass failed (see the module rules)."""
    obj = await kube.get_or_none(resource, name, namespace)
    if obj is None:
        return
    body = as_dict(obj)
    status = body.get("status") or {}
    message = failure_message(error)
    post_once(body, status, reasons.READY, False, reasons.RECONCILE_ERROR, message)
    generation = body["metadata"].get("generation")
    updates = kstatus(False, reasons.RECONCILE_ERROR, message, progressing=True)
    await kube.patch_status(
        resource,
        name,
        {"conditions": merged(status, generation, updates, clock.now())},
        namespace,
    )


def as_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object (generic or typed) as a plain dict."""
    if isinstance(obj, dict):
        return obj
    result = obj.to_dict()
    return result if isinstance(result, dict) else dict(result)


@contextmanager
def measured(controller: str) -> Iterator[None]:
    """Count and time one reconciliation for the controller metrics."""
    began = time.perf_counter()
    try:
        yield
    except Exception:
        RECONCILE_TOTAL.labels(controller, "error").inc()
        raise
    else:
        RECONCILE_TOTAL.labels(controller, "success").inc()
    finally:
        RECONCILE_DURATION.labels(controller).observe(time.perf_counter() - began)
