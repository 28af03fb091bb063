"""Upgrade deferral on the pod: the pending-upgrade notice and the approval.

With `osRollingUpgradeDeferral`, a batch member is told of its upgrade through an
annotation on its pod, which the workload reads through the downward API, and is
replaced once it approves (an annotation it or its controller sets) or the deadline
it was told passed (`galleon.core.rollout` decides; docs/rollout.md, "Upgrade
deferral").

Rules of this module: pure conversions between the annotations and the planner's
`UpgradeNotice`; no I/O, no clock.
- `galleon.dev/upgrade-pending` is a JSON object: the target `version`, its
  `revision`, `noticeTime` and `deadline` (RFC 3339, UTC, to the second). A value
  galleon cannot read is no notice: the instance is told again.
- `galleon.dev/upgrade-approved`, any non-empty value, approves the pending upgrade.
  galleon removes it whenever it writes a notice, so an approval of an earlier
  notice (a cancelled upgrade's) never approves the next one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from galleon import GROUP
from galleon.core import instances as inst
from galleon.core import times
from galleon.core.rollout.model import Notify, UpgradeNotice

PENDING_ANNOTATION = f"{GROUP}/upgrade-pending"
"""Set by galleon on a pod whose upgrade is deferred: what replaces it, and by when."""
APPROVED_ANNOTATION = f"{GROUP}/upgrade-approved"
"""Set (to anything) by the workload or its controller: replace the pod now."""


def notice_text(revision: str, noticed: Any, deadline: Any) -> str:
    """The pending annotation's value.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 12, 2, 18, 0, tzinfo=timezone.utc)
    >>> notice_text("1.0.2-ab", t, t.replace(hour=19))
    '{"version": "1.0.2", "revision": "1.0.2-ab", "noticeTime": "2026-12-02T18:00:00Z", \
"deadline": "2026-12-02T19:00:00Z"}'
    """
    return json.dumps(
        {
            "version": inst.version_of(revision),
            "revision": revision,
            "noticeTime": times.format(noticed),
            "deadline": times.format(deadline),
        }
    )


def read_notice(annotations: Mapping[str, str]) -> UpgradeNotice | None:
    """The notice on a pod (None: none, or not one galleon wrote).

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 12, 2, 18, 0, tzinfo=timezone.utc)
    >>> told = read_notice({PENDING_ANNOTATION: notice_text("1.0.2-ab", t, t)})
    >>> told.revision, told.deadline == t
    ('1.0.2-ab', True)
    >>> read_notice({PENDING_ANNOTATION: "soon"}) is None
    True
    """
    text = annotations.get(PENDING_ANNOTATION)
    if not text:
        return None
    try:
        found = json.loads(text)
        revision = found["revision"]
        noticed = times.parse(found["noticeTime"])
        deadline = times.parse(found["deadline"])
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(revision, str) or noticed is None or deadline is None:
        return None
    return UpgradeNotice(revision, noticed, deadline)


def approved(annotations: Mapping[str, str]) -> bool:
    """The pod carries an approval (any non-empty value)."""
    return bool(annotations.get(APPROVED_ANNOTATION))


def notice_patch(action: Notify, resource_version: str | None) -> dict[str, Any]:
    """The pod metadata merge patch that gives the notice and removes an earlier
    approval; with `resource_version`, the apiserver applies it only to the pod as
    observed (two passes never both notify, an approval set since is never lost)."""
    metadata: dict[str, Any] = {
        "annotations": {
            PENDING_ANNOTATION: notice_text(action.revision, action.noticed, action.deadline),
            APPROVED_ANNOTATION: None,
        }
    }
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {"metadata": metadata}
