"""The status a GitOps tool computes for a galleon object, by kstatus' generic rules
(sigs.k8s.io/cli-utils/pkg/kstatus, used by Flux and `kubectl wait`-style tools)
for custom resources without kind-specific rules.

Rules (in order): a deletion timestamp is Terminating; `status.observedGeneration`
below `metadata.generation` is InProgress; a `Reconciling` condition True is
InProgress; a `Stalled` condition True is Failed; anything else is Current.

Example: `compute(scaleset_dict)` → ("InProgress", "upgrading 1.0.0 to 1.0.2: ...").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def compute(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating", "being deleted"
    observed, generation = status.get("observedGeneration"), meta.get("generation")
    if observed is not None and generation is not None and observed < generation:
        return "InProgress", f"generation {generation} not observed yet (at {observed})"
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    reconciling = conditions.get("Reconciling") or {}
    if reconciling.get("status") == "True":
        return "InProgress", str(reconciling.get("message", ""))
    stalled = conditions.get("Stalled") or {}
    if stalled.get("status") == "True":
        return "Failed", str(stalled.get("message", ""))
    return "Current", "resource is current"
