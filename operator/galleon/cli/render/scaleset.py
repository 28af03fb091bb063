"""What `kubectl galleon` shows of a ScaleSet: the detail view (`get scaleset NAME`),
the list's columns (`get scalesets`) and the upgrade history (`history NAME`).

Rules of this module: those of `galleon.cli.render`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from galleon.cli.outcome import arrow
from galleon.cli.render.pieces import (
    DASH,
    Column,
    conditions_table,
    entries,
    fields,
    heading,
    listing,
    progress,
    section,
    state,
    table,
    text,
    timestamp,
    value_at,
)
from galleon.core import times

# -- get scaleset NAME ----------------------------------------------------------------


def _image(spec: Mapping[str, Any]) -> str:
    reference = section(spec, "imageReference")
    if not reference:
        return DASH
    return f"{reference.get('imageDefinitionName', DASH)}:{reference.get('version', DASH)}"


def _mode(spec: Mapping[str, Any]) -> str:
    policy = section(spec, "upgradePolicy")
    automatic = section(policy, "automaticOSUpgradePolicy").get("enableAutomaticOSUpgrade")
    mode = policy.get("mode") or "Manual"
    return f"{mode}, automatic OS upgrades {'on' if automatic else 'off'}"


def instances_table(status: Mapping[str, Any]) -> RenderableType:
    """Instances per version: how many, how many healthy, how many not (yet)."""
    rows = entries(status, "instancesByVersion")
    if not rows:
        return Text("no instances", style="dim")
    grid = table("VERSION", "INSTANCES", "HEALTHY", "NOT HEALTHY")
    for row in rows:
        instances, healthy = int(row.get("instances") or 0), int(row.get("healthy") or 0)
        grid.add_row(
            text(row.get("version")),
            text(instances),
            text(healthy, "green" if healthy == instances else ""),
            text(instances - healthy, "red" if instances > healthy else ""),
        )
    return grid


def _counters(progress_: Mapping[str, Any]) -> str:
    return (
        f"successful {progress_.get('successfulInstanceCount', 0)} · "
        f"failed {progress_.get('failedInstanceCount', 0)} · "
        f"in progress {progress_.get('inProgressInstanceCount', 0)} · "
        f"pending {progress_.get('pendingInstanceCount', 0)}"
    )


def upgrade_view(upgrade: Mapping[str, Any], capacity: int) -> RenderableType:
    """The latest rolling upgrade: code, versions, batch, progress bar and counters,
    error and rollback."""
    if not upgrade:
        return heading("ROLLING UPGRADE", Text("none yet", style="dim"))
    running = section(upgrade, "runningStatus")
    code = running.get("code")
    counts = section(upgrade, "progress")
    successful = int(counts.get("successfulInstanceCount") or 0)
    title = heading(
        "ROLLING UPGRADE",
        state(code),
        text(arrow(upgrade.get("fromVersion"), upgrade.get("toVersion"))),
    )
    rows: list[tuple[str, RenderableType]] = [
        (
            "started",
            text(
                f"{timestamp(running.get('startTime'))} by {upgrade.get('startedBy') or DASH}"
                f" (last action {running.get('lastAction') or DASH}"
                f" at {timestamp(running.get('lastActionTime'))})"
            ),
        ),
        ("batch", text(_batch(upgrade, code))),
        ("progress", progress(successful, capacity, "successful")),
        ("instances", text(_counters(counts))),
    ]
    if upgrade.get("cancelRequested") and code == "RollingForward":
        rows.append(("cancel", text("requested: the upgrade stops after this batch", "yellow")))
    error = section(upgrade, "error")
    if error:
        message = f": {error['message']}" if error.get("message") else ""
        rows.append(("error", text(f"{error.get('code') or DASH}{message}", "red")))
    rollback = section(upgrade, "rollbackInfo")
    if rollback or upgrade.get("rolledBackInstances"):
        rows.append(
            (
                "rollback",
                text(
                    f"{rollback.get('successfullyRolledbackInstanceCount', 0)} rolled back, "
                    f"{rollback.get('failedRolledbackInstanceCount', 0)} failed"
                    + (
                        f" (instances {_indexes(upgrade.get('rolledBackInstances'))})"
                        if upgrade.get("rolledBackInstances")
                        else ""
                    )
                ),
            )
        )
    return Group(title, fields(rows))


def _batch(upgrade: Mapping[str, Any], code: Any) -> str:
    line = f"{upgrade.get('currentBatch') or 0}/{upgrade.get('totalBatches') or 0}"
    if upgrade.get("phase"):
        line += f", phase {upgrade['phase']}"
    if upgrade.get("batchInstances") and code == "RollingForward":
        line += f", instances {_indexes(upgrade['batchInstances'])}"
    return line


def _indexes(values: Any) -> str:
    return ", ".join(str(v) for v in values or [])


def scaleset_view(obj: Mapping[str, Any]) -> RenderableType:
    """Everything `get scaleset NAME` shows about one ScaleSet."""
    meta, spec, status = section(obj, "metadata"), section(obj, "spec"), section(obj, "status")
    capacity = int(spec.get("capacity") or status.get("replicas") or 0)
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    summary: list[tuple[str, RenderableType]] = [
        ("region", text(spec.get("region"))),
        ("image", text(_image(spec))),
        (
            "capacity",
            text(
                f"{capacity} ({status.get('readyReplicas', 0)} ready, "
                f"{status.get('replicas', 0)} exist)"
            ),
        ),
        ("current version", text(status.get("currentVersion"))),
        ("target version", text(status.get("targetVersion"))),
    ]
    if status.get("waitingForReplication"):
        summary.append(
            (
                "waiting for replication",
                text(f"{status['waitingForReplication']} (not yet replicated here)", "yellow"),
            )
        )
    summary.append(("upgrade mode", text(_mode(spec))))
    if spec.get("paused"):
        summary.append(("paused", text("yes: no new batch starts until resumed", "yellow")))
    if generation is not None and observed != generation:
        summary.append(
            (
                "generation",
                text(f"{generation} (the operator has observed {observed or 'none'})", "yellow"),
            )
        )
    title = Text.assemble(
        ("ScaleSet ", "bold"),
        (str(meta.get("name", DASH)), "bold cyan"),
        f" in {meta.get('namespace', DASH)}",
    )
    return Group(
        title,
        fields(summary),
        Text(""),
        heading("INSTANCES"),
        instances_table(status),
        Text(""),
        upgrade_view(section(status, "rollingUpgrade"), capacity),
        Text(""),
        heading("CONDITIONS"),
        conditions_table(entries(status, "conditions")),
    )


# -- get scalesets ------------------------------------------------------------------------


def _ready_cell(obj: Mapping[str, Any]) -> Text:
    ready = section(obj, "status").get("readyReplicas", 0)
    return text(f"{ready}/{section(obj, 'spec').get('capacity', 0)}")


def _upgrade_cell(obj: Mapping[str, Any]) -> Text:
    upgrade = section(section(obj, "status"), "rollingUpgrade")
    code = section(upgrade, "runningStatus").get("code")
    if not code:
        return text(None)
    cell = state(code)
    if code == "RollingForward":
        cell.append(
            f" {arrow(upgrade.get('fromVersion'), upgrade.get('toVersion'))}"
            f" batch {upgrade.get('currentBatch') or 0}/{upgrade.get('totalBatches') or 0}"
        )
    return cell


SCALESET_COLUMNS = (
    Column("REGION", value_at("spec.region")),
    Column("READY", _ready_cell),
    Column("CURRENT", value_at("status.currentVersion")),
    Column("TARGET", value_at("status.targetVersion")),
    Column("UPGRADE", _upgrade_cell),
)
"""`get scalesets`: NAME REGION READY CURRENT TARGET UPGRADE AGE."""


def scaleset_list(
    objects: Sequence[Mapping[str, Any]], now: datetime, all_namespaces: bool = False
) -> RenderableType:
    """One line per ScaleSet, as `kubectl get` would print them."""
    return listing(objects, SCALESET_COLUMNS, now, all_namespaces, "scalesets")


# -- history NAME ---------------------------------------------------------------------------


def _end(start: Any, end: Any) -> str:
    """The end time, as a time of day when it is the start's day (history stays narrow).

    >>> _end("2026-11-23T13:40:00Z", "2026-11-23T13:52:30Z")
    '13:52:30Z'
    """
    began, ended = times.parse_or_none(start), times.parse_or_none(end)
    if ended is None:
        return DASH
    day, _, time_of_day = times.format(ended).partition("T")
    if began is not None and times.format(began).partition("T")[0] == day:
        return time_of_day
    return times.format(ended)


def history_view(obj: Mapping[str, Any]) -> RenderableType:
    """status.upgradeHistory of a ScaleSet, newest first: versions, who started it,
    when, the result, instance counters, rollbacks and the error code; then each
    error in full (codes are long: the table cuts them in a narrow terminal)."""
    history = entries(section(obj, "status"), "upgradeHistory")
    if not history:
        return Text("no upgrade recorded yet", style="dim")
    grid = table(
        "FROM", "TO", "BY", "START", "END", "RESULT", "OK", "FAILED", "ROLLED BACK", "ERROR"
    )
    for column in grid.columns:
        column.no_wrap = True
    # The error code takes the room left (the table spans the console) and is cut
    # with an ellipsis when there is not enough; ERRORS below has it in full.
    grid.expand = True
    grid.columns[-1].ratio = 1
    grid.columns[-1].overflow = "ellipsis"
    errors: list[Text] = []
    for entry in history:
        counts = section(entry, "progress")
        failed = int(counts.get("failedInstanceCount") or 0)
        rollback = section(entry, "rollbackInfo")
        rolled: str | None = None
        if rollback:
            rolled = str(rollback.get("successfullyRolledbackInstanceCount", 0))
            if rollback.get("failedRolledbackInstanceCount"):
                rolled += f" ({rollback['failedRolledbackInstanceCount']} failed)"
        error = section(entry, "error")
        grid.add_row(
            text(entry.get("fromVersion")),
            text(entry.get("toVersion")),
            text(entry.get("startedBy")),
            text(timestamp(entry.get("startTime"))),
            text(_end(entry.get("startTime"), entry.get("endTime"))),
            state(entry.get("result")),
            text(counts.get("successfulInstanceCount", 0)),
            text(failed, "red" if failed else ""),
            text(rolled),
            text(error.get("code"), "red"),
        )
        if error:
            errors.append(
                Text.assemble(
                    f"{arrow(entry.get('fromVersion'), entry.get('toVersion'))} started "
                    f"{timestamp(entry.get('startTime'))}: ",
                    (str(error.get("code") or DASH), "red"),
                    f": {error['message']}" if error.get("message") else "",
                )
            )
    if not errors:
        return grid
    return Group(grid, Text(""), heading("ERRORS"), *errors)
