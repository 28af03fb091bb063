"""When is a ScaleSet, an ImageVersion or an ImageBuild "done"? Pure decisions for
`kubectl galleon status` (and `build --wait`), and the durations `--timeout` takes.

Rules of this module:
- Nothing here does I/O: every function takes the object as the API returns it (a
  dict, camelCase) and answers from it alone.
- A status the operator has not yet computed for the object's current
  `metadata.generation` decides nothing: the answer is "waiting" until the
  operator catches up, so a `kubectl apply` followed by `status` never reports
  the previous spec's outcome. (An ImageBuild's spec never changes: its phase is
  believed as written.)
- An object whose `Stalled` condition is True for its current generation has
  failed, whatever its kind (kstatus reads Stalled so: it does not resolve by
  itself); `decide` adds that to each kind's own rules.
- Exit codes (documented in docs/kubectl-plugin.md): 0 done, 1 failed, 2 timed out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from galleon.core import times

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_TIMEOUT = 2

State = Literal["done", "failed", "waiting"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_HELP = "a duration such as 30s, 10m, 1h or 1h30m (a bare number is seconds)"


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration: `30s`, `10m`, `1h`, `1h30m`, `1.5m`, `250ms`, `90`.

    >>> parse_duration("10m"), parse_duration("1h30m"), parse_duration("45")
    (600.0, 5400.0, 45.0)
    >>> parse_duration("ten minutes")
    Traceback (most recent call last):
    ...
    ValueError: invalid duration "ten minutes": use a duration such as 30s, 10m, 1h or 1h30m (a bare number is seconds)
    """  # noqa: E501
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not value or position != len(value):
        raise ValueError(f'invalid duration "{text}": use {DURATION_HELP}')
    return total


def format_duration(seconds: float) -> str:
    """A short human duration: `45s`, `10m`, `1h30m`, `2d3h`.

    >>> [format_duration(s) for s in (0, 45, 600, 5400, 183600, 0.5)]
    ['0s', '45s', '10m', '1h30m', '2d3h', '0.5s']
    """
    if 0 < seconds < 1:
        return f"{seconds:g}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    if not whole:
        return "0s"
    # The two most significant units are enough for a human.
    first = next(i for i, (n, _) in enumerate(parts) if n)
    return "".join(f"{n}{unit}" for n, unit in parts[first : first + 2] if n)


@dataclass(frozen=True)
class Outcome:
    """Where an object stands: done, failed (with why) or still waiting (with what)."""

    state: State
    message: str

    @property
    def exit_code(self) -> int | None:
        """The process exit code this outcome ends with (None: keep waiting)."""
        return {"done": EXIT_DONE, "failed": EXIT_FAILED}.get(self.state)


def _section(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The condition of `type_` in `status.conditions`, if any."""
    for item in status.get("conditions") or []:
        if isinstance(item, Mapping) and item.get("type") == type_:
            return item
    return None


def _stale(obj: Mapping[str, Any]) -> str | None:
    """Why the status does not describe the current spec yet (None when it does)."""
    generation = _section(obj, "metadata").get("generation")
    observed = _section(obj, "status").get("observedGeneration")
    if observed is None:
        return "waiting for the operator to report a status"
    if generation is not None and observed < generation:
        return f"waiting for the operator to observe generation {generation} (observed {observed})"
    return None


def arrow(source: str | None, target: str | None) -> str:
    """`1.0.0 → 1.0.2` (a dash for an unknown side)."""
    return f"{source or '-'} → {target or '-'}"


def scaleset_outcome(obj: Mapping[str, Any]) -> Outcome:
    """Done when Ready is True for the current generation and no upgrade is rolling
    forward; failed when the upgrade is Faulted; otherwise waiting.

    >>> scaleset_outcome({"metadata": {"generation": 2}, "status": {"observedGeneration": 1}})
    Outcome(state='waiting', message='waiting for the operator to observe generation 2 (observed 1)')
    """  # noqa: E501
    stale = _stale(obj)
    if stale:
        return Outcome("waiting", stale)
    generation = _section(obj, "metadata").get("generation")
    spec, status = _section(obj, "spec"), _section(obj, "status")
    upgrade = _section(status, "rollingUpgrade")
    code = _section(upgrade, "runningStatus").get("code")
    versions = arrow(upgrade.get("fromVersion"), upgrade.get("toVersion"))
    if code == "Faulted":
        error = _section(upgrade, "error")
        reason = error.get("code") or "Faulted"
        detail = f": {error['message']}" if error.get("message") else ""
        return Outcome("failed", f"the upgrade {versions} faulted ({reason}){detail}")
    capacity = spec.get("capacity", status.get("replicas"))
    if code == "RollingForward":
        progress = _section(upgrade, "progress")
        done = progress.get("successfulInstanceCount", 0)
        batch = f"batch {upgrade.get('currentBatch') or 0}/{upgrade.get('totalBatches') or '?'}"
        paused = ", paused" if spec.get("paused") else ""
        return Outcome(
            "waiting", f"upgrading {versions}: {batch}, {done} of {capacity} upgraded{paused}"
        )
    ready = condition(status, "Ready")
    if ready is not None and ready.get("status") == "True":
        observed = ready.get("observedGeneration")
        if observed is None or generation is None or observed >= generation:
            current = status.get("currentVersion") or "-"
            return Outcome(
                "done",
                f"{status.get('readyReplicas', 0)} of {capacity} instances ready on {current}",
            )
    if ready is None:
        return Outcome("waiting", "waiting for the Ready condition")
    reason = ready.get("reason") or "NotReady"
    message = ready.get("message") or ""
    return Outcome("waiting", f"not ready ({reason}){': ' + message if message else ''}")


def imageversion_outcome(obj: Mapping[str, Any]) -> Outcome:
    """Done when replication is Completed everywhere, failed when it Failed.

    >>> imageversion_outcome({"metadata": {"generation": 1}, "status": {
    ...     "observedGeneration": 1,
    ...     "replicationStatus": {"aggregatedState": "Completed", "completedRegions": "2/2"}}})
    Outcome(state='done', message='replicated to 2/2 regions')
    """
    stale = _stale(obj)
    if stale:
        return Outcome("waiting", stale)
    status = _section(obj, "status")
    replication = _section(status, "replicationStatus")
    state = replication.get("aggregatedState") or "Unknown"
    ratio = replication.get("completedRegions") or "?"
    summary = [s for s in replication.get("summary") or [] if isinstance(s, Mapping)]
    if state == "Completed":
        return Outcome("done", f"replicated to {ratio} regions")
    if state == "Failed":
        failed = [
            f"{s.get('region')}: {s.get('details') or 'Failed'}"
            for s in summary
            if s.get("state") == "Failed"
        ]
        if not failed:
            ready = condition(status, "Ready") or {}
            failed = [ready.get("message") or "replication failed"]
        return Outcome("failed", "replication failed: " + "; ".join(failed))
    regions = ", ".join(
        f"{s.get('region')} {s.get('state')} {s.get('progress', 0)}%" for s in summary
    )
    return Outcome(
        "waiting", f"{state}: {ratio} regions replicated{' (' + regions + ')' if regions else ''}"
    )


def build_duration(status: Mapping[str, Any]) -> str | None:
    """How long a finished build took (`completionTime - startTime`), if both are written.

    >>> build_duration({"startTime": "2026-11-23T13:40:00Z",
    ...                 "completionTime": "2026-11-23T13:42:10Z"})
    '2m10s'
    """
    began = times.parse_or_none(status.get("startTime"))
    ended = times.parse_or_none(status.get("completionTime"))
    if began is None or ended is None:
        return None
    return format_duration(max(0.0, (ended - began).total_seconds()))


def _steps(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in status.get("steps") or [] if isinstance(s, Mapping)]


def imagebuild_outcome(obj: Mapping[str, Any]) -> Outcome:
    """Done when the build Succeeded, failed when it Failed (why: its status.message,
    else its failed step's); otherwise waiting, with its phase and running step. A
    build's spec never changes, so its phase needs no generation to be believed.

    >>> imagebuild_outcome({"status": {"phase": "Failed",
    ...     "message": "step agent: https://example.com/agent.tgz: 404 Not Found"}})
    Outcome(state='failed', message='step agent: https://example.com/agent.tgz: 404 Not Found')
    >>> imagebuild_outcome({"status": {"phase": "Building", "steps": [
    ...     {"name": "motd", "phase": "Succeeded"}, {"name": "agent", "phase": "Running"}]}})
    Outcome(state='waiting', message='Building: step 2 of 2 (agent)')
    """
    status = _section(obj, "status")
    phase = status.get("phase")
    steps = _steps(status)
    if phase == "Succeeded":
        published = _section(status, "imageVersion")
        what = (
            f"published imageversion {published.get('name') or '-'} "
            f"(version {published.get('version') or '-'})"
            if published
            else "published no version"
        )
        took = build_duration(status)
        image = f", image {status['outputDigest']}" if status.get("outputDigest") else ""
        return Outcome("done", f"Succeeded{' in ' + took if took else ''}: {what}{image}")
    if phase == "Failed":
        if status.get("message"):
            return Outcome("failed", str(status["message"]))
        failed = next((s for s in steps if s.get("phase") == "Failed"), None)
        if failed is not None:
            detail = f": {failed['message']}" if failed.get("message") else ""
            return Outcome("failed", f"step {failed.get('name')} failed{detail}")
        return Outcome("failed", "the build failed")
    if not phase:
        return Outcome("waiting", "Pending: not started by the builder yet")
    running = next((i for i, s in enumerate(steps) if s.get("phase") == "Running"), None)
    if running is not None:
        name = steps[running].get("name")
        return Outcome("waiting", f"{phase}: step {running + 1} of {len(steps)} ({name})")
    message = status.get("message")
    return Outcome("waiting", f"{phase}: {message}" if message else str(phase))


def stalled(obj: Mapping[str, Any]) -> Outcome | None:
    """Failed, with the reason and message, when `Stalled` is True for the object's
    current generation; None otherwise (also while the status is stale).

    >>> stalled({"metadata": {"generation": 2}, "status": {"observedGeneration": 2,
    ...     "conditions": [{"type": "Stalled", "status": "True", "observedGeneration": 2,
    ...                     "reason": "RegionNotFound", "message": "Region mars does not exist"}]}})
    Outcome(state='failed', message='stalled (RegionNotFound): Region mars does not exist')
    """
    if _stale(obj):
        return None
    status = _section(obj, "status")
    found = condition(status, "Stalled")
    if found is None or found.get("status") != "True":
        return None
    generation = _section(obj, "metadata").get("generation")
    observed = found.get("observedGeneration", status.get("observedGeneration"))
    if generation is not None and observed is not None and observed < generation:
        return None  # said of an older spec, which the current one may have fixed
    reason = found.get("reason") or "Stalled"
    message = found.get("message") or ""
    return Outcome("failed", f"stalled ({reason}){': ' + message if message else ''}")


def decide(obj: Mapping[str, Any], kind_outcome: Callable[[Mapping[str, Any]], Outcome]) -> Outcome:
    """The outcome `status` acts on: the kind's own failure (its message is the most
    precise), else Stalled, else the kind's answer.

    >>> never_done = lambda obj: Outcome("waiting", "still replicating")
    >>> decide({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
    ...     "conditions": [{"type": "Stalled", "status": "True", "reason": "VersionConflict"}]}},
    ...     never_done)
    Outcome(state='failed', message='stalled (VersionConflict)')
    """
    own = kind_outcome(obj)
    if own.state == "failed":
        return own
    return stalled(obj) or own
