"""The status write of the image builder's controllers (ImageTemplate, ImageBuild).

Rules of this module: a write is one merge PATCH of the status: the fields given,
`observedGeneration`, and the conditions merged with `updates` when there are any
(`galleon.core.conditions.merged`: the other types are kept). A write that would
change nothing is skipped: no request. The patch handed back is a copy: a caller
that keeps it as its status and then changes a list it wrote (a check's results)
still compares against what was written.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from galleon.core.conditions import Update, merged
from galleon.kube import client as kube


def status_patch(
    status: Mapping[str, Any],
    generation: int | None,
    updates: list[Update] | None,
    now: datetime,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """The merge patch of a status: `fields`, observedGeneration, the conditions.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> status_patch({}, 2, None, t, {"phase": "Building"})
    {'phase': 'Building', 'observedGeneration': 2}
    >>> [c["type"] for c in status_patch({}, 2, [("Ready", "True", "Ok", "")], t, {})[
    ...     "conditions"]]
    ['Ready']
    """
    patch = dict(fields)
    if updates:
        patch["conditions"] = merged(status, generation, updates, now)
    patch["observedGeneration"] = generation
    return patch


def unchanged(status: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """Whether `patch` would leave `status` as it is (a None deletes an absent key).

    >>> unchanged({"phase": "Building"}, {"phase": "Building", "message": None})
    True
    >>> unchanged({"phase": "Building"}, {"phase": "Validating"})
    False
    """
    return all(status.get(key) == value for key, value in patch.items())


async def write_status(
    resource: Any,
    name: str,
    namespace: str,
    status: Mapping[str, Any],
    generation: int | None,
    updates: list[Update] | None,
    now: datetime,
    **fields: Any,
) -> dict[str, Any]:
    """Write one object's status (see the module rules); a copy of the patch, written
    or not."""
    patch = status_patch(status, generation, updates, now, fields)
    if not unchanged(status, patch):
        await kube.patch_status(resource, name, patch, namespace)
    return copy.deepcopy(patch)
